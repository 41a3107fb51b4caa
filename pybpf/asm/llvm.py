"""The LLVM / kernel assembly syntax, as ``llvm-mc-19 -triple bpfel -mcpu=v4`` accepts it.

Each instruction form is one regular expression mapped to an encoder (the table :data:`FORMS`),
looked up by the line's first token, so adding a form is adding a line. The accepted spellings
and the encodings were learned by running llvm-mc-19 on every form (see tests/asm/): for the
same text the bytes are llvm-mc's. Where llvm-mc is lax pybpf is stricter and says why:
immediates that do not fit their field are refused instead of silently truncated, ``dst`` and
``src`` must be equal where the instruction has one register (``r1 = be16 r1``, ``r1 = -r1``),
and r0 is required where the instruction implies it (``cmpxchg``, ``skb[]`` loads).

Extensions beyond llvm-mc (documented in DESIGN.md section 3): ``call NAME`` with a helper
name; ``r1 = MAP ll`` / ``r1 = MAP + OFF ll`` for a ``.map``; ``r1 = LABEL ll`` (PSEUDO_FUNC);
``skb[rX + IMM]`` for an indirect packet load with an immediate; ``gotol`` with any 32-bit
offset; ``ld_pseudo`` keeping a 64-bit immediate.
"""

from __future__ import annotations

import re
from typing import Callable

from .. import isa
from ..isa import Instruction
from .builder import ProgramBuilder
from .ubpf import MNEMONICS as UBPF_MNEMONICS
from .lexer import (INT32_MIN, INT64_MIN, UINT64_MAX, NUMBER_PATTERN,
                    SourceLine, check_range, imm32, off16, parse_int, register)

_REG = r"[rRwW]\d+"
_NUM = NUMBER_PATTERN
_UNUM = r"(?:0[xX][0-9a-fA-F]+|0[bB][01]+|\d+)"
_IDENT = r"[A-Za-z_.$][\w.$]*"
_SZ = r"\*\s*\(\s*(?P<sz>[us](?:8|16|32|64))\s*\*\s*\)"
_MEM = rf"\(\s*(?P<base>{_REG})\s*(?P<sign>[+-])\s*(?P<off>{_UNUM})\s*\)"
_TARGET = rf"(?P<target>[+-]?\s*{_UNUM}|{_IDENT})"

ALU_OPS = {"+": (isa.ADD, 0), "-": (isa.SUB, 0), "*": (isa.MUL, 0), "/": (isa.DIV, 0),
           "|": (isa.OR, 0), "&": (isa.AND, 0), "<<": (isa.LSH, 0), ">>": (isa.RSH, 0),
           "%": (isa.MOD, 0), "^": (isa.XOR, 0), "s>>": (isa.ARSH, 0), "s/": (isa.DIV, 1),
           "s%": (isa.MOD, 1), "": (isa.MOV, 0)}
JMP_OPS = {"==": isa.JEQ, "!=": isa.JNE, ">": isa.JGT, ">=": isa.JGE, "<": isa.JLT,
           "<=": isa.JLE, "s>": isa.JSGT, "s>=": isa.JSGE, "s<": isa.JSLT, "s<=": isa.JSLE,
           "&": isa.JSET}
SIZES = {"8": isa.B, "16": isa.H, "32": isa.W, "64": isa.DW}
ATOMIC_OPS = {"+": isa.ATOMIC_ADD, "|": isa.ATOMIC_OR, "&": isa.ATOMIC_AND,
              "^": isa.ATOMIC_XOR, "add": isa.ATOMIC_ADD, "or": isa.ATOMIC_OR,
              "and": isa.ATOMIC_AND, "xor": isa.ATOMIC_XOR}
ENDIAN = {"le": isa.ALU | isa.K | isa.END, "be": isa.ALU | isa.X | isa.END,
          "bswap": isa.ALU64 | isa.K | isa.END}

Encoder = Callable[[ProgramBuilder, SourceLine, "re.Match[str]"], None]


# --- operand helpers --------------------------------------------------------------------------

def _reg(line: SourceLine, m: re.Match, group: str, prefix: str | None = None) -> int:
    name = m.group(group)
    return register(line, name, m.start(group), prefix or name[0].lower())


def _width(m: re.Match, group: str = "dst") -> str:
    """``r`` or ``w``: the register file the instruction's destination names."""
    return m.group(group)[0].lower()


def _num(line: SourceLine, m: re.Match, group: str) -> int:
    return parse_int(line, m.group(group), m.start(group))


def _imm(line: SourceLine, m: re.Match, group: str) -> int:
    return imm32(line, _num(line, m, group), m.start(group))


def _mem_off(line: SourceLine, m: re.Match) -> int:
    value = _num(line, m, "off")
    if m.group("sign") == "-":
        value = -value
    return off16(line, value, m.start("sign"), "memory offset")


def _same(line: SourceLine, m: re.Match, a: str, b: str, why: str) -> None:
    if m.group(a).lower() != m.group(b).lower():
        raise line.error(f"{why}: '{m.group(b)}' must be the same register as '{m.group(a)}'",
                         m.start(b))


def _jump(b: ProgramBuilder, line: SourceLine, m: re.Match, insn: Instruction,
          wide: bool = False) -> None:
    """Emit a jump whose target is a number (slot offset) or a label."""
    target = m.group("target")
    pos = m.start("target")
    if target[0].isdigit() or target[0] in "+-":
        value = parse_int(line, target, pos)
        if wide:
            insn = Instruction(insn.opcode, imm=check_range(line, value, INT32_MIN,
                                                           (1 << 31) - 1, "jump offset", pos))
        else:
            insn = Instruction(insn.opcode, insn.dst, insn.src,
                               off16(line, value, pos, "jump offset"), insn.imm)
        b.emit(insn, line)
    else:
        b.emit_symbolic(insn, line, "jump32" if wide else "jump", target, pos)


# --- encoders ---------------------------------------------------------------------------------

def _alu(b: ProgramBuilder, line: SourceLine, m: re.Match) -> None:
    w = _width(m)
    cls = isa.ALU if w == "w" else isa.ALU64
    dst = _reg(line, m, "dst")
    op, off = ALU_OPS[m.group("op") or ""]
    if m.group("srcreg"):
        src = _reg(line, m, "srcreg", w)
        b.emit(Instruction(cls | isa.X | op, dst, src, off), line)
    else:
        b.emit(Instruction(cls | isa.K | op, dst, 0, off, _imm(line, m, "srcimm")), line)


def _movsx(b: ProgramBuilder, line: SourceLine, m: re.Match) -> None:
    w = _width(m)
    bits = int(m.group("bits"))
    if w == "w" and bits == 32:
        raise line.error("w registers sign-extend from 8 or 16 bits only; "
                         "use 'r1 = (s32)r2'", m.start("bits"))
    cls = isa.ALU if w == "w" else isa.ALU64
    b.emit(Instruction(cls | isa.X | isa.MOV, _reg(line, m, "dst"), _reg(line, m, "src", w),
                       bits), line)


def _neg(b: ProgramBuilder, line: SourceLine, m: re.Match) -> None:
    w = _width(m)
    _reg(line, m, "src", w)
    _same(line, m, "dst", "src", "negation works in place")
    cls = isa.ALU if w == "w" else isa.ALU64
    b.emit(Instruction(cls | isa.NEG, _reg(line, m, "dst")), line)


def _endian(b: ProgramBuilder, line: SourceLine, m: re.Match) -> None:
    dst = _reg(line, m, "dst", "r")
    _reg(line, m, "src", "r")
    _same(line, m, "dst", "src", "byte swaps work in place")
    b.emit(Instruction(ENDIAN[m.group("kind")], dst, 0, 0, int(m.group("bits"))), line)


def _lddw(b: ProgramBuilder, line: SourceLine, m: re.Match) -> None:
    dst = _reg(line, m, "dst", "r")
    if m.group("num") is not None:
        value = check_range(line, _num(line, m, "num"), INT64_MIN, UINT64_MAX,
                            "64-bit immediate", m.start("num"))
        b.emit(Instruction.lddw(dst, value), line)
        return
    addend = None
    if m.group("add") is not None:
        addend = _num(line, m, "add") * (-1 if m.group("asign") == "-" else 1)
        addend = imm32(line, addend, m.start("add"), "map value offset")
    b.emit_symbolic(Instruction(isa.LDDW, dst, 0, 0, 0, 0), line, "load", m.group("sym"),
                    m.start("sym"), addend)


def _ld_pseudo(b: ProgramBuilder, line: SourceLine, m: re.Match) -> None:
    dst = _reg(line, m, "dst", "r")
    src = check_range(line, _num(line, m, "src"), 0, 15, "pseudo source", m.start("src"))
    value = check_range(line, _num(line, m, "num"), INT64_MIN, UINT64_MAX, "64-bit immediate",
                        m.start("num"))
    b.emit(Instruction.lddw(dst, value, src), line)


def _size(line: SourceLine, m: re.Match) -> tuple[bool, int]:
    sz = m.group("sz")
    return sz[0] == "s", SIZES[sz[1:]]


def _ldx(b: ProgramBuilder, line: SourceLine, m: re.Match) -> None:
    signed, size = _size(line, m)
    w = _width(m)
    if signed and size == isa.DW:
        raise line.error("there is no sign-extending 64-bit load; use '*(u64 *)'", m.start("sz"))
    if w == "w" and (signed or size == isa.DW):
        raise line.error(f"'*({m.group('sz')} *)' loads into a 64-bit register r0–r10",
                         m.start("dst"))
    mode = isa.MEMSX if signed else isa.MEM
    b.emit(Instruction(isa.LDX | mode | size, _reg(line, m, "dst"), _reg(line, m, "base", "r"),
                       _mem_off(line, m)), line)


def _ld_packet(b: ProgramBuilder, line: SourceLine, m: re.Match) -> None:
    signed, size = _size(line, m)
    if signed or size == isa.DW:
        raise line.error("packet loads are '*(u8 *)', '*(u16 *)' or '*(u32 *)'", m.start("sz"))
    if m.group("dst").lower() != "r0":
        raise line.error("legacy packet loads always load into r0", m.start("dst"))
    if m.group("num") is not None:
        b.emit(Instruction(isa.LD | isa.ABS | size, imm=_imm(line, m, "num")), line)
        return
    imm = 0
    if m.group("add") is not None:
        imm = _num(line, m, "add") * (-1 if m.group("asign") == "-" else 1)
        imm = imm32(line, imm, m.start("add"))
    b.emit(Instruction(isa.LD | isa.IND | size, 0, _reg(line, m, "src", "r"), 0, imm), line)


def _store(b: ProgramBuilder, line: SourceLine, m: re.Match) -> None:
    signed, size = _size(line, m)
    if signed:
        raise line.error("stores are unsigned: use '*(u8 *)' .. '*(u64 *)'", m.start("sz"))
    dst = _reg(line, m, "base", "r")
    off = _mem_off(line, m)
    if m.group("srcreg"):
        prefix = "r" if size == isa.DW else _width(m, "srcreg")
        b.emit(Instruction(isa.STX | isa.MEM | size, dst, _reg(line, m, "srcreg", prefix), off),
               line)
    else:
        b.emit(Instruction(isa.ST | isa.MEM | size, dst, 0, off, _imm(line, m, "srcimm")), line)


def _atomic_size(line: SourceLine, m: re.Match) -> int:
    sz = m.group("sz")
    if sz not in ("u32", "u64"):
        raise line.error(f"atomic operations work on u32 or u64, not {sz}", m.start("sz"))
    return isa.W if sz == "u32" else isa.DW


def _lock(b: ProgramBuilder, line: SourceLine, m: re.Match) -> None:
    size = _atomic_size(line, m)
    src = _reg(line, m, "src", "r" if size == isa.DW else _width(m, "src"))
    b.emit(Instruction(isa.STX | isa.ATOMIC | size, _reg(line, m, "base", "r"), src,
                       _mem_off(line, m), ATOMIC_OPS[m.group("op")]), line)


def _fetch(b: ProgramBuilder, line: SourceLine, m: re.Match) -> None:
    size = _atomic_size(line, m)
    prefix = "r" if size == isa.DW else "w"
    _reg(line, m, "dst", prefix)
    src = _reg(line, m, "src", prefix)
    _same(line, m, "dst", "src", "atomic_fetch returns the old value in its source register")
    b.emit(Instruction(isa.STX | isa.ATOMIC | size, _reg(line, m, "base", "r"), src,
                       _mem_off(line, m), ATOMIC_OPS[m.group("op")] | isa.ATOMIC_FETCH), line)


def _xchg(b: ProgramBuilder, line: SourceLine, m: re.Match) -> None:
    size = isa.DW if m.group("fn") == "xchg_64" else isa.W
    prefix = "r" if size == isa.DW else "w"
    _reg(line, m, "dst", prefix)
    src = _reg(line, m, "src", prefix)
    _same(line, m, "dst", "src", "xchg returns the old value in its source register")
    b.emit(Instruction(isa.STX | isa.ATOMIC | size, _reg(line, m, "base", "r"), src,
                       _mem_off(line, m), isa.ATOMIC_XCHG), line)


def _cmpxchg(b: ProgramBuilder, line: SourceLine, m: re.Match) -> None:
    size = isa.DW if m.group("fn") == "cmpxchg_64" else isa.W
    prefix = "r" if size == isa.DW else "w"
    for group in ("dst", "old"):
        if m.group(group).lower() != prefix + "0":
            raise line.error(f"cmpxchg compares with and returns into {prefix}0, "
                             f"not '{m.group(group)}'", m.start(group))
    src = _reg(line, m, "src", prefix)
    b.emit(Instruction(isa.STX | isa.ATOMIC | size, _reg(line, m, "base", "r"), src,
                       _mem_off(line, m), isa.ATOMIC_CMPXCHG), line)


def _cond_jump(b: ProgramBuilder, line: SourceLine, m: re.Match) -> None:
    w = _width(m)
    cls = isa.JMP32 if w == "w" else isa.JMP
    dst = _reg(line, m, "dst")
    op = JMP_OPS[m.group("op")]
    if m.group("srcreg"):
        insn = Instruction(cls | isa.X | op, dst, _reg(line, m, "srcreg", w))
    else:
        insn = Instruction(cls | isa.K | op, dst, 0, 0, _imm(line, m, "srcimm"))
    _jump(b, line, m, insn)


def _goto(b: ProgramBuilder, line: SourceLine, m: re.Match) -> None:
    _jump(b, line, m, Instruction(isa.JMP | isa.JA))


def _gotol(b: ProgramBuilder, line: SourceLine, m: re.Match) -> None:
    _jump(b, line, m, Instruction(isa.JMP32 | isa.JA), wide=True)


def _call(b: ProgramBuilder, line: SourceLine, m: re.Match) -> None:
    target = m.group("target")
    if target[0].isdigit() or target[0] in "+-":
        b.emit(Instruction(isa.JMP | isa.CALL, imm=_imm(line, m, "target")), line)
    else:
        b.emit_symbolic(Instruction(isa.JMP | isa.CALL), line, "call", target,
                        m.start("target"))


def _callx(b: ProgramBuilder, line: SourceLine, m: re.Match) -> None:
    b.emit(Instruction(isa.CALLX, _reg(line, m, "dst", "r")), line)


def _exit(b: ProgramBuilder, line: SourceLine, m: re.Match) -> None:
    b.emit(Instruction(isa.JMP | isa.EXIT), line)


# --- the table --------------------------------------------------------------------------------

def _form(pattern: str) -> re.Pattern[str]:
    return re.compile(r"\s*" + pattern + r"\s*\Z")


_ASSIGN = rf"(?P<dst>{_REG})\s*=\s*"
#: first token -> [(form, encoder, what it looks like)]; "reg" is any line starting with a
#: register, "*" a store
FORMS: dict[str, list[tuple[re.Pattern[str], Encoder, str]]] = {
    "reg": [
        (_form(rf"(?P<dst>{_REG})\s*(?P<op>s>>|s/|s%|<<|>>|[-+*/|&%^])?=\s*"
               rf"(?:(?P<srcreg>{_REG})|(?P<srcimm>{_NUM}))"), _alu, "r1 += r2"),
        (_form(_ASSIGN + rf"(?:(?P<num>{_NUM})|(?P<sym>{_IDENT})"
               rf"(?:\s*(?P<asign>[+-])\s*(?P<add>{_UNUM}))?)\s+ll"), _lddw, "r1 = 0x1234 ll"),
        (_form(_ASSIGN + _SZ + r"\s*" + _MEM), _ldx, "r0 = *(u32 *)(r1 + 4)"),
        (_form(_ASSIGN + _SZ + rf"\s*skb\s*\[\s*(?:(?P<num>{_NUM})|(?P<src>{_REG})"
               rf"(?:\s*(?P<asign>[+-])\s*(?P<add>{_UNUM}))?)\s*\]"), _ld_packet,
         "r0 = *(u16 *)skb[12]"),
        (_form(_ASSIGN + rf"\(\s*s(?P<bits>8|16|32)\s*\)\s*(?P<src>{_REG})"), _movsx,
         "r1 = (s8)r2"),
        (_form(_ASSIGN + rf"-\s*(?P<src>{_REG})"), _neg, "r0 = -r0"),
        (_form(_ASSIGN + rf"(?P<kind>bswap|be|le)(?P<bits>16|32|64)\s+(?P<src>{_REG})"),
         _endian, "r0 = be16 r0"),
        (_form(_ASSIGN + r"atomic_fetch_(?P<op>add|or|and|xor)\s*\(\s*\(\s*(?P<sz>[us]\d+)"
               rf"\s*\*\s*\)\s*{_MEM}\s*,\s*(?P<src>{_REG})\s*\)"), _fetch,
         "r0 = atomic_fetch_add((u64 *)(r10 - 8), r0)"),
        (_form(_ASSIGN + rf"(?P<fn>xchg_64|xchg32_32)\s*\(\s*(?P<base>{_REG})\s*(?P<sign>[+-])"
               rf"\s*(?P<off>{_UNUM})\s*,\s*(?P<src>{_REG})\s*\)"), _xchg,
         "r0 = xchg_64(r10 - 8, r0)"),
        (_form(_ASSIGN + rf"(?P<fn>cmpxchg_64|cmpxchg32_32)\s*\(\s*(?P<base>{_REG})\s*"
               rf"(?P<sign>[+-])\s*(?P<off>{_UNUM})\s*,\s*(?P<old>{_REG})\s*,\s*"
               rf"(?P<src>{_REG})\s*\)"), _cmpxchg, "r0 = cmpxchg_64(r10 - 8, r0, r1)"),
    ],
    "*": [
        (_form(_SZ + r"\s*" + _MEM + rf"\s*=\s*(?:(?P<srcreg>{_REG})|(?P<srcimm>{_NUM}))"),
         _store, "*(u64 *)(r10 - 8) = r1"),
    ],
    "lock": [
        (_form(r"lock\s+" + _SZ + r"\s*" + _MEM + rf"\s*(?P<op>[+|&^])=\s*(?P<src>{_REG})"),
         _lock, "lock *(u64 *)(r10 - 8) += r1"),
    ],
    "if": [
        (_form(rf"if\s+(?P<dst>{_REG})\s*(?P<op>==|!=|s>=|s<=|s>|s<|>=|<=|>|<|&)\s*"
               rf"(?:(?P<srcreg>{_REG})|(?P<srcimm>{_NUM}))\s*goto\s*{_TARGET}"), _cond_jump,
         "if r1 > r2 goto LABEL"),
    ],
    "goto": [(_form(rf"goto\s*{_TARGET}"), _goto, "goto LABEL")],
    "gotol": [(_form(rf"gotol\s*{_TARGET}"), _gotol, "gotol LABEL")],
    "call": [(_form(rf"call\s+(?P<target>{_NUM}|{_IDENT})"), _call, "call bpf_map_lookup_elem")],
    "callx": [(_form(rf"callx\s+(?P<dst>{_REG})"), _callx, "callx r1")],
    "exit": [(_form(r"exit"), _exit, "exit")],
    "ld_pseudo": [(_form(rf"ld_pseudo\s+(?P<dst>{_REG})\s*,\s*(?P<src>{_NUM})\s*,\s*"
                         rf"(?P<num>{_NUM})"), _ld_pseudo, "ld_pseudo r1, 1, 3")],
}

_FIRST = re.compile(r"\s*(\*|[A-Za-z_][\w]*)")
_REGISTER = re.compile(_REG + r"\Z")
#: words that start an instruction in this syntax (for syntax detection)
KEYWORDS = frozenset(k for k in FORMS if k not in ("reg", "*"))


def assemble_line(b: ProgramBuilder, line: SourceLine) -> None:
    """Encode one instruction line into ``b``."""
    first = _FIRST.match(line.text)
    key = first.group(1) if first else ""
    forms = FORMS.get(key)
    if forms is None and _REGISTER.match(key):
        forms = FORMS["reg"]
    if forms is None:
        pos = first.start(1) if first else None
        if key in UBPF_MNEMONICS:
            raise line.error(f"'{key}' is uBPF syntax, but this file is read as LLVM syntax "
                             f"(use --syntax ubpf, or write e.g. 'r0 = 1')", pos)
        raise line.error(f"unknown instruction '{line.text.strip()}' (expected LLVM BPF syntax "
                         f"such as 'r0 = 1', 'if r1 > 2 goto LABEL', 'exit')", pos)
    for pattern, encoder, _ in forms:
        m = pattern.match(line.text)
        if m:
            encoder(b, line, m)
            return
    _explain_mismatch(line, key, forms)


def _explain_mismatch(line: SourceLine, key: str, forms) -> None:
    """No form matched: say what was expected, pointing at a bad register if there is one."""
    for m in re.finditer(r"\b([rRwW]\d+)\b", line.text):
        name = m.group(1)
        if int(name[1:]) > 10 or (len(name) > 2 and name[1] == "0"):
            register(line, name, m.start(1), name[0].lower())
    examples = "', '".join(example for _, _, example in forms)
    raise line.error(f"invalid instruction '{line.text.strip()}' (expected a form like "
                     f"'{examples}')")
