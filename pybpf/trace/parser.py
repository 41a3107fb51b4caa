"""A parser for bpftrace's language (0.17 reference guide), written by hand.

No well-kept Python library parses bpftrace scripts, and its grammar has one quirk a generic
tokenizer gets wrong: outside braces a probe specification is raw text (``uprobe:/bin/bash:
readline``, ``tracepoint:syscalls:sys_enter_*``) where ``/`` and ``*`` are not operators. So
the lexer switches mode: probe text at the top level, C-like tokens inside predicates and
blocks. Expressions use precedence climbing with C's levels, as bpftrace does.

Errors are :class:`TraceSyntaxError` with the script's line and column.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from ..errors import BPFError
from . import ast


class TraceSyntaxError(BPFError):
    """A script that does not parse or type-check; names the line and column."""

    kind = "trace"

    def __init__(self, message: str, filename: str = "<script>", line: int | None = None,
                 col: int | None = None, source_line: str | None = None):
        self.message = message
        self.filename = filename
        self.line = line
        self.col = col
        where = filename if line is None else f"{filename}:{line}:{col}"
        text = f"{where}: {message}"
        if source_line is not None and col is not None:
            text += f"\n    {source_line}\n    {' ' * (col - 1)}^"
        super().__init__(text)


BUILTINS = {
    "pid", "tid", "uid", "gid", "nsecs", "elapsed", "numaid", "cpu", "comm", "kstack",
    "ustack", "arg0", "arg1", "arg2", "arg3", "arg4", "arg5", "arg6", "arg7", "arg8", "arg9",
    "sarg0", "sarg1", "sarg2", "sarg3", "sarg4", "sarg5", "retval", "func", "probe",
    "curtask", "rand", "cgroup", "cpid", "args", "username", "jiffies",
}

#: identifiers read as C constants (macros, enumerators): upper case, as C writes them
_CONSTANT = re.compile(r"^[A-Z_][A-Z0-9_]*$")

PROVIDER_ALIASES = {
    "t": "tracepoint", "tracepoint": "tracepoint", "rawtracepoint": "rawtracepoint",
    "rt": "rawtracepoint", "u": "uprobe", "uprobe": "uprobe", "ur": "uretprobe",
    "uretprobe": "uretprobe", "k": "kprobe", "kprobe": "kprobe", "kr": "kretprobe",
    "kretprobe": "kretprobe", "f": "kfunc", "kfunc": "kfunc", "fr": "kretfunc",
    "kretfunc": "kretfunc", "p": "profile", "profile": "profile", "i": "interval",
    "interval": "interval", "s": "software", "software": "software", "h": "hardware",
    "hardware": "hardware", "BEGIN": "BEGIN", "END": "END", "usdt": "usdt", "U": "usdt",
    "watchpoint": "watchpoint", "w": "watchpoint",
}

_TOKEN = re.compile(r"""
    (?P<ws>[ \t\r\n]+)
  | (?P<comment>//[^\n]*|/\*.*?\*/)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<number>0[xX][0-9a-fA-F]+|\d+(?:_\d+)*(?:[eE]\d+)?)
  | (?P<map>@[A-Za-z_0-9]*)
  | (?P<var>\$[A-Za-z_0-9]+)
  | (?P<ident>[A-Za-z_][A-Za-z_0-9]*)
  | (?P<op><<=|>>=|->|\+\+|--|==|!=|<=|>=|&&|\|\||<<|>>|\+=|-=|\*=|/=|%=|&=|\|=|\^=
            |[-+*/%&|^!~<>=?:;,.(){}\[\]])
""", re.VERBOSE | re.DOTALL)


@dataclass
class Token:
    kind: str   # "number", "string", "map", "var", "ident", "op", "probe", "eof"
    text: str
    line: int
    col: int


class _Lexer:
    def __init__(self, source: str, filename: str):
        self.src = source
        self.filename = filename
        self.pos = 0
        self.line = 1
        self.line_start = 0

    def error(self, message: str, line: int, col: int) -> TraceSyntaxError:
        lines = self.src.splitlines()
        text = lines[line - 1] if 0 < line <= len(lines) else None
        return TraceSyntaxError(message, self.filename, line, col, text)

    def _advance(self, text: str) -> None:
        newlines = text.count("\n")
        if newlines:
            self.line += newlines
            self.line_start = self.pos + text.rindex("\n") + 1
        self.pos += len(text)

    def _skip_space(self) -> None:
        while self.pos < len(self.src):
            m = _TOKEN.match(self.src, self.pos)
            if m and m.lastgroup in ("ws", "comment"):
                self._advance(m.group())
            else:
                return

    def probe_text(self) -> Token | None:
        """Raw probe specification text at the top level (or None at '{', '/', ',')."""
        self._skip_space()
        if self.pos >= len(self.src):
            return None
        start = self.pos
        col = start - self.line_start + 1
        if self.src[start] in "{/,":
            return None
        end = start
        while end < len(self.src) and not self.src[end].isspace() and self.src[end] not in "{,":
            # a predicate may follow directly: "kprobe:f/pid == 1/" has no space before '/'
            if self.src[end] == "/" and end > start and self.src[end - 1] not in ":/" \
                    and not self.src[start:end].startswith(("u", "uprobe", "ur", "uretprobe",
                                                             "usdt", "U")):
                break
            end += 1
        text = self.src[start:end]
        self._advance(text)
        return Token("probe", text, self.line, col)

    def next(self) -> Token:
        self._skip_space()
        if self.pos >= len(self.src):
            return Token("eof", "", self.line, self.pos - self.line_start + 1)
        m = _TOKEN.match(self.src, self.pos)
        col = self.pos - self.line_start + 1
        line = self.line
        if not m:
            raise self.error(f"unexpected character {self.src[self.pos]!r}", line, col)
        text = m.group()
        self._advance(text)
        return Token(m.lastgroup, text, line, col)

    def peek_char(self) -> str:
        self._skip_space()
        return self.src[self.pos] if self.pos < len(self.src) else ""


# binary operators by precedence level (lowest first), as in C
_BINARY_LEVELS = [
    ("||",), ("&&",), ("|",), ("^",), ("&",), ("==", "!="), ("<", "<=", ">", ">="),
    ("<<", ">>"), ("+", "-"), ("*", "/", "%"),
]
_ASSIGN_OPS = {"=", "+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=", "<<=", ">>="}
_TYPE_NAMES = {"int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
               "int", "char", "short", "long", "unsigned"}


class Parser:
    def __init__(self, source: str, filename: str = "<script>"):
        # preprocessor state: the open #if branches (taken or not) and the defined names
        self._conditions: list[bool] = []
        self._macros: dict[str, str] = {}
        self._includes: list[str] = []
        self._defined = {"BPFTRACE_HAVE_BTF"} if os.path.exists("/sys/kernel/btf/vmlinux") \
            else set()
        self.lexer = _Lexer(source, filename)
        self.filename = filename
        self.source = source
        self.tok: Token | None = None

    # token plumbing (inside predicates and blocks)
    def _next(self) -> Token:
        tok = self.tok if self.tok is not None else self.lexer.next()
        self.tok = None
        return tok

    def _peek(self) -> Token:
        if self.tok is None:
            self.tok = self.lexer.next()
        return self.tok

    def _accept(self, text: str) -> Token | None:
        tok = self._peek()
        if tok.kind in ("op", "ident") and tok.text == text:
            return self._next()
        return None

    def _expect(self, text: str, what: str | None = None) -> Token:
        tok = self._peek()
        if tok.kind in ("op", "ident") and tok.text == text:
            return self._next()
        found = "end of input" if tok.kind == "eof" else repr(tok.text)
        raise self.lexer.error(f"expected {what or repr(text)}, found {found}", tok.line, tok.col)

    def _error(self, message: str, tok: Token) -> TraceSyntaxError:
        return self.lexer.error(message, tok.line, tok.col)

    # --- top level -------------------------------------------------------------------------
    def parse(self) -> ast.Script:
        probes = []
        while True:
            self._skip_preamble()
            if self.lexer.peek_char() == "":
                break
            probes.append(self._probe())
        if not probes:
            raise TraceSyntaxError("no probes in script", self.filename, 1, 1)
        return ast.Script(1, 1, probes, self.source, self.filename, self._macros,
                          self._includes)

    def _skip_preamble(self) -> None:
        """Preprocessor lines between probes. ``#include`` and ``#define`` are accepted and
        ignored (types come from the kernel's BTF); ``#ifdef``/``#ifndef``/``#else``/``#endif``
        choose lines as the C preprocessor does, with ``BPFTRACE_HAVE_BTF`` defined as
        bpftrace defines it on a kernel with BTF, so a script's fallback struct declarations
        for kernels without BTF are skipped (a ``struct`` declaration outside them is
        refused: the kernel's own types are the ones used)."""
        lexer = self.lexer
        while True:
            lexer._skip_space()
            src, pos = lexer.src, lexer.pos
            end = src.find("\n", pos)
            end = len(src) if end < 0 else end
            line = src[pos:end]
            if line.startswith("#"):
                self._directive(line, lexer.line, pos - lexer.line_start + 1)
                lexer._advance(line)
                continue
            if self._skipping() and pos < len(src):
                lexer._advance(src[pos:end])
                continue
            if self._conditions and pos >= len(src):
                raise TraceSyntaxError("#if without #endif", self.filename, lexer.line, 1)
            if line.startswith(("struct ", "union ")) and "{" in src[pos:src.find(";", pos)]:
                raise TraceSyntaxError("struct declarations are not supported: the kernel's "
                                       "own types (BTF) are used", self.filename, lexer.line,
                                       pos - lexer.line_start + 1)
            return

    def _skipping(self) -> bool:
        return not all(self._conditions)

    def _directive(self, line: str, lineno: int, col: int) -> None:
        if line.startswith("#!"):  # the interpreter line of an executable script
            return
        words = line[1:].split()
        word = words[0] if words else ""
        if word in ("ifdef", "ifndef"):
            if len(words) < 2:
                raise TraceSyntaxError(f"#{word} needs a name", self.filename, lineno, col)
            defined = words[1] in self._defined
            self._conditions.append(defined if word == "ifdef" else not defined)
        elif word == "else":
            if not self._conditions:
                raise TraceSyntaxError("#else without #if", self.filename, lineno, col)
            self._conditions[-1] = not self._conditions[-1]
        elif word == "endif":
            if not self._conditions:
                raise TraceSyntaxError("#endif without #if", self.filename, lineno, col)
            self._conditions.pop()
        elif word == "define" and len(words) > 1 and not self._skipping():
            self._defined.add(words[1].split("(")[0])
            if "(" not in words[1]:  # an object-like macro: a constant the script may use
                self._macros[words[1]] = " ".join(words[2:])
        elif word == "include" and len(words) > 1 and not self._skipping():
            self._includes.append(words[1].strip('<>"'))
        elif word not in ("include", "define", "undef", "pragma", ""):
            raise TraceSyntaxError(f"preprocessor directive #{word} is not supported",
                                   self.filename, lineno, col)

    def _probe(self) -> ast.Probe:
        points = []
        first = None
        while True:
            tok = self.lexer.probe_text()
            if tok is None:
                t = self.lexer.next()
                raise self._error(f"expected a probe, found {t.text!r}", t)
            first = first or tok
            points.append(self._attach_point(tok))
            if self.lexer.peek_char() == ",":
                self.lexer.next()
                continue
            break
        predicate = None
        if self.lexer.peek_char() == "/":
            self._expect("/")
            predicate = self._expr(stop_at_slash=True)
            self._expect("/", "'/' closing the predicate")
        body = self._block()
        return ast.Probe(first.line, first.col, points, predicate, body)

    def _attach_point(self, tok: Token) -> ast.AttachPoint:
        text = tok.text
        if text in ("BEGIN", "END"):
            return ast.AttachPoint(tok.line, tok.col, text, raw=text)
        parts = text.split(":")
        provider = PROVIDER_ALIASES.get(parts[0])
        if provider is None:
            raise self._error(f"unknown probe type '{parts[0]}' (expected tracepoint, "
                              "rawtracepoint, uprobe, uretprobe, kprobe, kretprobe, kfunc, "
                              "profile, interval, software, BEGIN or END)", tok)
        ap = ast.AttachPoint(tok.line, tok.col, provider, raw=text)
        rest = parts[1:]
        if provider == "tracepoint":
            if len(rest) != 2 or not all(rest):
                raise self._error("tracepoint needs 'tracepoint:category:event'", tok)
            ap.target, ap.func = rest
        elif provider in ("uprobe", "uretprobe", "usdt"):
            if len(rest) < 2 or not rest[0] or not rest[-1]:
                raise self._error(f"{provider} needs '{provider}:/path/to/binary:function'", tok)
            ap.target, ap.func = ":".join(rest[:-1]), rest[-1]
        elif provider in ("kprobe", "kretprobe", "kfunc", "kretfunc", "rawtracepoint"):
            if len(rest) != 1 or not rest[0]:
                raise self._error(f"{provider} needs '{provider}:function'", tok)
            ap.func = rest[0]
        elif provider in ("profile", "interval"):
            units = {"profile": ("hz", "s", "ms", "us"), "interval": ("s", "ms", "us", "hz")}
            if len(rest) != 2 or rest[0] not in units[provider] or not rest[1].isdigit():
                raise self._error(f"{provider} needs '{provider}:UNIT:N' with UNIT one of "
                                  f"{', '.join(units[provider])}", tok)
            ap.unit, ap.freq = rest[0], int(rest[1])
            if ap.freq <= 0:
                raise self._error(f"{provider} rate must be positive", tok)
        elif provider in ("software", "hardware"):
            if len(rest) not in (1, 2) or not rest[0]:
                raise self._error(f"{provider} needs '{provider}:event[:count]'", tok)
            ap.target = rest[0]
            if len(rest) == 2:
                if not rest[1].isdigit():
                    raise self._error("event count must be a number", tok)
                ap.freq = int(rest[1])
        return ap

    # --- statements ------------------------------------------------------------------------
    def _block(self) -> list[ast.Stmt]:
        self._expect("{", "'{' starting the probe's actions")
        return self._stmts_until_brace()

    def _stmts_until_brace(self) -> list[ast.Stmt]:
        stmts: list[ast.Stmt] = []
        while True:
            if self._accept("}"):
                return stmts
            if self._peek().kind == "eof":
                raise self._error("missing '}'", self._peek())
            if self._accept(";"):
                continue
            stmt, needs_semi = self._stmt()
            stmts.append(stmt)
            if needs_semi and not self._accept(";"):
                if self._peek().text != "}":
                    tok = self._peek()
                    raise self._error(f"expected ';' or '}}', found {tok.text!r}", tok)

    def _stmt(self) -> tuple[ast.Stmt, bool]:
        tok = self._peek()
        if tok.kind == "ident":
            if tok.text == "if":
                return self._if(), False
            if tok.text == "unroll":
                self._next()
                self._expect("(")
                count = self._next()
                if count.kind != "number":
                    raise self._error("unroll needs a constant count", count)
                n = self._integer(count)
                if not 1 <= n <= 100:
                    raise self._error("unroll count must be between 1 and 100", count)
                self._expect(")")
                return ast.Unroll(tok.line, tok.col, n, self._block()), False
            if tok.text == "while":
                self._next()
                self._expect("(")
                cond = self._expr()
                self._expect(")")
                return ast.While(tok.line, tok.col, cond, self._block()), False
            if tok.text in ("return", "break", "continue"):
                self._next()
                return ast.Jump(tok.line, tok.col, tok.text), True
        expr = self._expr()
        nxt = self._peek()
        if nxt.kind == "op" and nxt.text in _ASSIGN_OPS:
            if not isinstance(expr, (ast.Map, ast.Variable)):
                raise self._error("only maps (@name) and variables ($name) can be assigned",
                                  nxt)
            self._next()
            value = self._expr()
            return ast.Assign(tok.line, tok.col, expr, nxt.text, value), True
        return ast.ExprStmt(tok.line, tok.col, expr), True

    def _if(self) -> ast.If:
        tok = self._next()
        self._expect("(")
        cond = self._expr()
        self._expect(")")
        then = self._block()
        other: list[ast.Stmt] = []
        if self._accept("else"):
            if self._peek().text == "if":
                other = [self._if()]
            else:
                other = self._block()
        return ast.If(tok.line, tok.col, cond, then, other)

    # --- expressions -----------------------------------------------------------------------
    def _expr(self, stop_at_slash: bool = False) -> ast.Expr:
        self._stop_at_slash = stop_at_slash
        try:
            return self._ternary()
        finally:
            self._stop_at_slash = False

    def _ternary(self) -> ast.Expr:
        cond = self._binary(0)
        tok = self._peek()
        if tok.kind == "op" and tok.text == "?":
            self._next()
            then = self._ternary()
            self._expect(":", "':' of the conditional expression")
            other = self._ternary()
            return ast.Ternary(tok.line, tok.col, cond, then, other)
        return cond

    def _binary(self, level: int) -> ast.Expr:
        if level == len(_BINARY_LEVELS):
            return self._unary()
        left = self._binary(level + 1)
        while True:
            tok = self._peek()
            if tok.kind != "op" or tok.text not in _BINARY_LEVELS[level]:
                return left
            if tok.text == "/" and getattr(self, "_stop_at_slash", False):
                return left
            self._next()
            right = self._binary(level + 1)
            left = ast.Binary(tok.line, tok.col, tok.text, left, right)

    def _unary(self) -> ast.Expr:
        tok = self._peek()
        if tok.kind == "op" and tok.text in ("!", "~", "-", "*", "&"):
            self._next()
            return ast.Unary(tok.line, tok.col, tok.text, self._unary())
        if tok.kind == "op" and tok.text in ("++", "--"):
            self._next()
            target = self._unary()
            self._check_lvalue(target, tok)
            return ast.IncDec(tok.line, tok.col, tok.text, target, True)
        if tok.kind == "op" and tok.text == "(":
            # a cast "(uint32)x" or a parenthesised expression / tuple
            self._next()
            nxt = self._peek()
            if nxt.kind == "ident" and nxt.text in ("struct", "union"):
                # "(struct task_struct *)curtask": a kernel type, from the kernel's BTF
                self._next()
                name = self._next()
                if name.kind != "ident":
                    raise self._error(f"expected the {nxt.text}'s name", name)
                type_name = f"{nxt.text} {name.text}"
                while self._accept("*"):
                    type_name += "*"
                self._expect(")")
                return ast.Cast(tok.line, tok.col, type_name, self._unary())
            if nxt.kind == "ident" and nxt.text in _TYPE_NAMES:
                type_tok = self._next()
                type_name = type_tok.text
                while self._accept("*"):
                    type_name += "*"
                self._expect(")")
                return ast.Cast(tok.line, tok.col, type_name, self._unary())
            first = self._ternary()
            if self._accept(","):
                items = [first, self._ternary()]
                while self._accept(","):
                    items.append(self._ternary())
                self._expect(")")
                return self._postfix(ast.Tuple(tok.line, tok.col, items))
            self._expect(")")
            return self._postfix(first)
        return self._postfix(self._primary())

    def _check_lvalue(self, target: ast.Expr, tok: Token) -> None:
        if not isinstance(target, (ast.Map, ast.Variable)):
            raise self._error(f"'{tok.text}' needs a map or a variable", tok)

    def _postfix(self, expr: ast.Expr) -> ast.Expr:
        while True:
            tok = self._peek()
            if tok.kind != "op":
                return expr
            if tok.text in ("->", "."):
                self._next()
                name = self._next()
                if name.kind not in ("ident", "number"):
                    raise self._error("expected a field name", name)
                expr = ast.FieldAccess(name.line, name.col, expr, name.text)
            elif tok.text == "[" and not isinstance(expr, ast.Map):
                self._next()
                index = self._ternary()
                self._expect("]")
                expr = ast.Index(tok.line, tok.col, expr, index)
            elif tok.text in ("++", "--"):
                self._next()
                self._check_lvalue(expr, tok)
                expr = ast.IncDec(tok.line, tok.col, tok.text, expr, False)
            else:
                return expr

    def _sizeof(self, tok: Token) -> ast.Expr:
        """sizeof(TYPE) -- an integer type name or struct/union NAME -- or sizeof(expr)."""
        self._expect("(")
        nxt = self._peek()
        if nxt.kind == "ident" and (nxt.text in _TYPE_NAMES or nxt.text in ("struct", "union")):
            self._next()
            name = nxt.text
            if name in ("struct", "union"):
                what = self._next()
                if what.kind != "ident":
                    raise self._error(f"expected the {name}'s name", what)
                name += " " + what.text
            self._expect(")", "')' closing sizeof")
            return ast.SizeOf(tok.line, tok.col, name, None)
        expr = self._ternary()
        self._expect(")", "')' closing sizeof")
        return ast.SizeOf(tok.line, tok.col, None, expr)

    def _integer(self, tok) -> int:
        """``42``, ``0x2a``, ``1_000`` or, as bpftrace writes it, ``1e6`` (an integer: the
        mantissa times a power of ten)."""
        text = tok.text.replace("_", "")
        if text[:2] in ("0x", "0X"):
            return int(text, 16)
        mantissa, _, exponent = text.lower().partition("e")
        value = int(mantissa) * 10 ** int(exponent or 0)
        if value >= 1 << 64:
            raise self._error(f"integer literal {tok.text} does not fit in 64 bits", tok)
        return value

    def _primary(self) -> ast.Expr:
        tok = self._next()
        if tok.kind == "number":
            return ast.Integer(tok.line, tok.col, self._integer(tok))
        if tok.kind == "string":
            return ast.String(tok.line, tok.col, _unescape(tok.text[1:-1]))
        if tok.kind == "var":
            return ast.Variable(tok.line, tok.col, tok.text[1:])
        if tok.kind == "map":
            keys: list[ast.Expr] = []
            if self._peek().text == "[":
                self._next()
                keys.append(self._ternary())
                while self._accept(","):
                    keys.append(self._ternary())
                self._expect("]", "']' closing the map key")
            return ast.Map(tok.line, tok.col, tok.text[1:], keys)
        if tok.kind == "ident":
            if tok.text == "sizeof" and self._peek().text == "(":
                return self._sizeof(tok)
            if self._peek().text == "(" and self._peek().kind == "op":
                self._next()
                args: list[ast.Expr] = []
                if not self._accept(")"):
                    args.append(self._ternary())
                    while self._accept(","):
                        args.append(self._ternary())
                    self._expect(")", "')' closing the call")
                return ast.Call(tok.line, tok.col, tok.text, args)
            if tok.text in BUILTINS:
                return ast.Builtin(tok.line, tok.col, tok.text)
            if _CONSTANT.match(tok.text):  # resolved by the compiler (macros, kernel enums)
                return ast.Identifier(tok.line, tok.col, tok.text)
            raise self._error(f"unknown identifier '{tok.text}'", tok)
        found = "end of input" if tok.kind == "eof" else repr(tok.text)
        raise self._error(f"expected an expression, found {found}", tok)


_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", '"': '"', "r": "\r", "0": "\0", "e": "\x1b"}


def _unescape(text: str) -> str:
    out = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            out.append(_ESCAPES.get(text[i + 1], "\\" + text[i + 1]))
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def parse(source: str, filename: str = "<script>") -> ast.Script:
    """Parse a bpftrace script into its syntax tree."""
    return Parser(source, filename).parse()
