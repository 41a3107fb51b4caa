"""Source lines, numbers and registers shared by both assembly syntaxes.

Both front ends (:mod:`pybpf.asm.llvm` and :mod:`pybpf.asm.ubpf`) see the input one logical
line at a time, with comments removed and the label prefix split off, and report errors through
:class:`SourceLine` so every message names ``file:line:column``.

Numbers follow llvm-mc's integer literals (decimal, ``0x`` hex, ``0b`` binary, C-style octal with
a leading ``0``). Range checks are stricter than llvm-mc, which silently truncates an immediate
that does not fit its field (``r1 = 0x100000000`` becomes ``r1 = 0``); pybpf refuses instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import AssemblyError

#: a comment runs from any of these to the end of the line (``;`` and ``//`` as DESIGN.md asks;
#: llvm-mc itself only knows ``#`` and ``//`` for BPF and treats ``;`` as a statement separator)
_COMMENT = re.compile(r"#|;|//")
_BLOCK_COMMENT = re.compile(r"/\*.*?\*/")
#: a label definition at the start of a line; several may precede one instruction
LABEL_DEF = re.compile(r"\s*([A-Za-z_.$][\w.$]*)\s*:")
IDENT = re.compile(r"[A-Za-z_.$][\w.$]*\Z")

NUMBER_PATTERN = r"[+-]?[ \t]*(?:0[xX][0-9a-fA-F]+|0[bB][01]+|\d+)"

INT32_MIN, UINT32_MAX = -(1 << 31), (1 << 32) - 1
INT16_MIN, INT16_MAX = -(1 << 15), (1 << 15) - 1
INT64_MIN, UINT64_MAX = -(1 << 63), (1 << 64) - 1


@dataclass(slots=True)
class SourceLine:
    """One line of assembly after comment removal.

    ``text`` is the code part (comments removed, trailing blanks stripped) and ``start`` the
    0-based column where it begins in the original ``raw`` line, so a regex match position
    inside ``text`` converts to a 1-based column with :meth:`column`.
    """

    file: str | None
    number: int
    raw: str
    text: str
    start: int = 0

    def column(self, pos: int) -> int:
        return self.start + pos + 1

    def error(self, message: str, pos: int | None = None) -> AssemblyError:
        """An :class:`AssemblyError` at ``pos`` (an index into :attr:`text`)."""
        col = self.column(pos) if pos is not None else self.column(_first_non_blank(self.text))
        return AssemblyError(message, self.file, self.number, col)


def _first_non_blank(text: str) -> int:
    return len(text) - len(text.lstrip())


def strip_comment(line: str) -> str:
    """The code part of ``line``: block comments blanked, then everything after a comment
    marker dropped. Blanking (rather than deleting) keeps column numbers right."""
    if "/*" in line:
        line = _BLOCK_COMMENT.sub(lambda m: " " * len(m.group()), line)
    m = _COMMENT.search(line)
    if m:
        line = line[:m.start()]
    return line.rstrip()


def split_lines(text: str, file: str | None) -> list[SourceLine]:
    """Every non-empty code line of ``text``, numbered from 1."""
    out = []
    for number, raw in enumerate(text.splitlines(), 1):
        code = strip_comment(raw)
        if code.strip():
            out.append(SourceLine(file, number, raw, code, 0))
    return out


def take_labels(line: SourceLine) -> tuple[list[tuple[str, int]], SourceLine | None]:
    """Split leading ``NAME:`` definitions off ``line``.

    Returns the labels with their positions and the rest of the line (``None`` when only labels
    were on it).
    """
    text = line.text
    if ":" not in text:
        return [], line
    labels = []
    pos = 0
    while True:
        m = LABEL_DEF.match(text, pos)
        if not m:
            break
        labels.append((m.group(1), m.start(1)))
        pos = m.end()
    if not labels:
        return labels, line
    rest = text[pos:]
    if not rest.strip():
        return labels, None
    return labels, SourceLine(line.file, line.number, line.raw, rest, line.start + pos)


def parse_int(line: SourceLine, token: str, pos: int) -> int:
    """An integer literal as llvm-mc reads it (``0x``, ``0b``, leading-zero octal, decimal)."""
    body = token.replace(" ", "").replace("\t", "")
    sign = -1 if body.startswith("-") else 1
    body = body.lstrip("+-")
    try:
        if len(body) > 1 and body[0] == "0" and body[1].isdigit():
            return sign * int(body, 8)
        return sign * int(body, 0)
    except ValueError:
        raise line.error(f"invalid number '{token}'", pos) from None


def check_range(line: SourceLine, value: int, low: int, high: int, what: str, pos: int) -> int:
    """``value`` if ``low <= value <= high``, else an :class:`AssemblyError` saying the range."""
    if not low <= value <= high:
        raise line.error(f"{what} {value} is out of range ({low}..{high})", pos)
    return value


def imm32(line: SourceLine, value: int, pos: int, what: str = "immediate") -> int:
    """A 32-bit immediate stored signed; unsigned spellings up to 0xffffffff are accepted,
    as llvm-mc accepts them (``w1 = 0xffffffff`` is ``w1 = -1``)."""
    check_range(line, value, INT32_MIN, UINT32_MAX, what, pos)
    return value - (1 << 32) if value > 0x7FFF_FFFF else value


def off16(line: SourceLine, value: int, pos: int, what: str = "offset") -> int:
    """A signed 16-bit offset, the range llvm-mc enforces."""
    return check_range(line, value, INT16_MIN, INT16_MAX, what, pos)


_REGISTERS = {f"{p}{n}": n for p in "rwRW" for n in range(11)}


def register(line: SourceLine, name: str, pos: int, prefix: str = "r") -> int:
    """The number of register ``name`` (``r0``..``r10``, or ``w0``..``w10`` when prefix is
    ``w``); anything else is an error that lists the valid names."""
    number = _REGISTERS.get(name)
    if number is not None and name[0].lower() == prefix:
        return number
    if name[:1].lower() == prefix and name[1:].isdigit():
        raise line.error(f"unknown register '{name}' (registers are {prefix}0–{prefix}10)", pos)
    raise line.error(f"expected a {'64' if prefix == 'r' else '32'}-bit register "
                     f"{prefix}0–{prefix}10, got '{name}'", pos)


# --- llvm-objdump listings ----------------------------------------------------------------------
# An llvm-objdump -d listing (or pybpf disasm's) assembles too: block headers define labels and
# instruction lines contribute their text, without the address, the bytes and the jump-target
# annotation. That is what makes disassemble -> assemble the identity.
_LISTING_INSN = re.compile(r"\s*\d+:\t[0-9a-f]{2}(?: [0-9a-f]{2})*\t(.*?)(?:\s+<[^<>]*>)?\Z")
_LISTING_HEADER = re.compile(r"[0-9a-f]{16} <([^<>]+)>:\Z")
_LISTING_NOISE = re.compile(r"\S+:\s+file format \S+\Z|Disassembly of section (\S+):\Z"
                            r"|\s*[0-9a-f]+:\s+R_BPF_\w+\s.*")


def listing_line(line: SourceLine) -> tuple[str, SourceLine | str | None]:
    """Classify an llvm-objdump listing line: ("insn", code line), ("label", name),
    ("section", name or None) or ("", None) for ordinary assembly."""
    text = line.text
    first = text.lstrip()[:1]
    if ":" not in text or not (first.isdigit() or first in "abcdefD" or "file format" in text):
        return "", None
    m = _LISTING_INSN.match(text)
    if m:
        return "insn", SourceLine(line.file, line.number, line.raw, m.group(1),
                                  line.start + m.start(1))
    m = _LISTING_HEADER.match(text)
    if m:
        return "label", m.group(1)
    m = _LISTING_NOISE.match(text)
    if m:
        return "section", m.group(1)
    return "", None
