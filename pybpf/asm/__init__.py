"""Assembler and disassembler for eBPF text.

Two syntaxes are read (DESIGN.md section 3): the LLVM / kernel syntax that
``llvm-mc-19 -triple bpfel -mcpu=v4`` assembles and ``llvm-objdump-19 -d`` prints
(:mod:`.llvm`; for the same text the bytes are llvm-mc's), and the uBPF / bpf_conformance
syntax of the conformance ``.data`` files (:mod:`.ubpf`). ``syntax="auto"`` picks uBPF when the
text has ``%r`` registers or a line starting with a uBPF-only mnemonic (``mov``, ``ldxw``,
``jeq``, ``lddw``, ...), else LLVM.

LLVM syntax at a glance (one instruction per line; ``#``, ``;``, ``//`` and ``/* */`` comments;
``NAME:`` labels, also before an instruction on the same line)::

    r0 = 1          w1 += w2        r0 s/= r1       r0 s%= 3        r1 s>>= r2
    r1 = (s8)r2     w1 = (s16)w2    r0 = -r0        r0 = be16 r0    r0 = bswap64 r0
    r0 = *(u32 *)(r1 + 4)           r0 = *(s8 *)(r1 - 3)            w0 = *(u8 *)(r1 + 0)
    *(u64 *)(r10 - 8) = r1          *(u32 *)(r10 - 8) = 5           r0 = *(u16 *)skb[12]
    lock *(u64 *)(r10 - 8) += r1    r0 = atomic_fetch_or((u64 *)(r10 - 8), r0)
    r0 = xchg_64(r10 - 8, r0)       w0 = cmpxchg32_32(r10 - 8, w0, w1)
    if w1 s< 5 goto LABEL           if r1 & r2 goto +3      goto LABEL      gotol LABEL
    call 1          call bpf_map_lookup_elem        call LABEL      callx r1        exit
    r1 = 0x123456789 ll             r1 = MAP ll     r1 = MAP + 8 ll r1 = LABEL ll
    .map MAP hash key=4 value=8 max_entries=1024 [flags=N]

``call NAME`` is a bpf-to-bpf call when NAME is a label, else a helper named as the kernel does
(``bpf_`` prefix optional). ``r1 = MAP ll`` loads a map (``lddw`` with PSEUDO_MAP_IDX and the
map's index, plus a :class:`~pybpf.program.MapRef`); ``MAP + OFF`` a pointer into its value
(PSEUDO_MAP_IDX_VALUE); ``LABEL`` a function pointer (PSEUDO_FUNC).

Output is LLVM syntax in llvm-objdump's layout (:mod:`.printer`). A listing -- ours or
llvm-objdump's -- is itself valid input (addresses, bytes and jump annotations are skipped,
block headers become labels), so ``assemble(disassemble(p))`` gives back ``p``.

    >>> from pybpf.asm import assemble, disassemble
    >>> prog = assemble("r0 = 1\\nexit\\n")
    >>> prog.bytecode().hex()
    'b7000000010000009500000000000000'

Errors are :class:`~pybpf.errors.AssemblyError` with ``file:line:column`` and what to do.
"""

from __future__ import annotations

import re

from ..errors import AssemblyError
from ..program import Program
from . import llvm, ubpf
from .builder import MAP_TYPES, ProgramBuilder
from .directives import handle_directive
from .lexer import listing_line, split_lines, take_labels
from .printer import disassemble, format_instruction

__all__ = ["assemble", "disassemble", "format_instruction", "detect_syntax", "SYNTAXES",
           "MAP_TYPES", "AssemblyError"]

SYNTAXES = ("auto", "llvm", "ubpf")

_FIRST_WORD = re.compile(r"\s*(?:[A-Za-z_.$][\w.$]*\s*:\s*)*([A-Za-z_][\w]*)(?=\s|\Z)")
#: mnemonic-first words that only uBPF syntax uses (``exit``, ``call``, ``lock`` are shared)
_UBPF_ONLY = frozenset(ubpf.MNEMONICS) - llvm.KEYWORDS


def detect_syntax(text: str) -> str:
    """``ubpf`` if the text uses ``%r`` registers or a uBPF mnemonic starts a line, else
    ``llvm``."""
    return _detect(split_lines(text, None))


def _detect(lines) -> str:
    for line in lines:
        code = line.text
        if "%r" in code:
            return "ubpf"
        m = _FIRST_WORD.match(code)
        if m and m.group(1) in _UBPF_ONLY:
            return "ubpf"
    return "llvm"


def assemble(text: str, filename: str | None = None, syntax: str = "auto") -> Program:
    """Assemble ``text`` into a :class:`~pybpf.program.Program`.

    ``syntax`` is ``llvm``, ``ubpf`` or ``auto`` (:func:`detect_syntax`). Errors are
    :class:`~pybpf.errors.AssemblyError` naming ``filename:line:column``.
    """
    if syntax not in SYNTAXES:
        raise AssemblyError(f"unknown syntax '{syntax}' (one of: {', '.join(SYNTAXES)})",
                            filename)
    lines = split_lines(text, filename)
    if syntax == "auto":
        syntax = _detect(lines)
    front = ubpf if syntax == "ubpf" else llvm
    assemble_line = front.assemble_line
    builder = ProgramBuilder(filename)
    first_exit = None
    for line in lines:
        if front is llvm:
            kind, value = listing_line(line)
            if kind == "insn":
                line = value
            elif kind == "label":
                if value not in builder.labels or builder.labels[value] != builder.slot:
                    builder.define_label(value, line, 0)
                continue
            elif kind == "section":
                if value and builder.section is None:
                    builder.section = value
                continue
        labels, rest = take_labels(line)
        for name, pos in labels:
            builder.define_label(name, line, pos)
        if rest is None or handle_directive(builder, rest):
            continue
        if first_exit is None and rest.text.strip() == "exit":
            first_exit = builder.slot
        assemble_line(builder, rest)
    if not builder.insns:
        raise AssemblyError("no instructions: a program needs at least 'exit'", filename)
    if front is ubpf:
        ubpf.finish(builder, first_exit)
    program = builder.finish()
    if filename:
        program.name = re.sub(r"\.[^./]*$", "", filename.rsplit("/", 1)[-1]) or program.name
    return program
