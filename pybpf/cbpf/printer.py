"""tcpdump's three dump formats of a classic program (libpcap's ``bpf_image``/``bpf_dump``).

``-d``   one human-readable line per instruction: ``(004) jeq      #0x800           jt 5\tjf 9``
``-dd``  C initialiser lines: ``{ 0x28, 0, 0, 0x0000000c },``
``-ddd`` the count, then ``code jt jf k`` in decimal per line.

Operand spellings follow libpcap 1.10 (``#0x%x`` for jump and logic constants, ``#%d`` for
arithmetic, Linux ancillary loads by name such as ``[vlan_tci]``); the tables below are the
documentation.
"""

from __future__ import annotations

from typing import Sequence

from . import isa
from .isa import (ABS, ADD, ALU, AND, DIV, IMM, IND, JA, JEQ, JGE, JGT, JMP, JSET, LD, LDX, LEN,
                  LSH, MEM, MISC, MOD, MSH, MUL, NEG, OR, RET, RSH, ST, STX, SUB, TAX, TXA, XOR)


def _s32(k: int) -> int:
    k &= isa.U32
    return k - (1 << 32) if k & 0x80000000 else k


def _abs_operand(k: int) -> str:
    field = isa.ancillary_field(k)
    if field is not None:
        return f"[{isa.ANCILLARY[field][1]}]"
    return f"[{_s32(k)}]"


_LOAD_NAMES = {isa.W: "ld", isa.H: "ldh", isa.B: "ldb"}
_ALU_NAMES = {ADD: "add", SUB: "sub", MUL: "mul", DIV: "div", MOD: "mod", AND: "and", OR: "or",
              XOR: "xor", LSH: "lsh", RSH: "rsh"}
_HEX_ALU = {AND, OR, XOR}
_JMP_NAMES = {JEQ: "jeq", JGT: "jgt", JGE: "jge", JSET: "jset"}


def _op_operand(ins: isa.Instruction, n: int) -> tuple[str, str]:
    code, k = ins.code, ins.k & isa.U32
    cls = code & 7
    if cls == LD:
        mode, size = code & 0xE0, code & 0x18
        if mode == ABS and size in _LOAD_NAMES:
            return _LOAD_NAMES[size], _abs_operand(k)
        if mode == IND and size in _LOAD_NAMES:
            return _LOAD_NAMES[size], f"[x + {_s32(k)}]"
        if code == LD | LEN:
            return "ld", "#pktlen"
        if code == LD | IMM:
            return "ld", f"#0x{k:x}"
        if code == LD | MEM:
            return "ld", f"M[{_s32(k)}]"
    elif cls == LDX:
        if code == LDX | LEN:
            return "ldx", "#pktlen"
        if code == LDX | IMM:
            return "ldx", f"#0x{k:x}"
        if code == LDX | MEM:
            return "ldx", f"M[{_s32(k)}]"
        if code == LDX | isa.B | MSH:
            return "ldxb", f"4*([{_s32(k)}]&0xf)"
    elif code == ST:
        return "st", f"M[{_s32(k)}]"
    elif code == STX:
        return "stx", f"M[{_s32(k)}]"
    elif cls == RET:
        src = code & 0x18
        if src == isa.K:
            return "ret", f"#{_s32(k)}"
        if src == isa.A:
            return "ret", "a"
        if src == isa.X:
            return "ret", "x"
    elif cls == JMP:
        op = code & 0xF0
        if code == JMP | JA:
            return "ja", f"{n + 1 + k}"
        if op in _JMP_NAMES:
            return _JMP_NAMES[op], "x" if code & isa.X else f"#0x{k:x}"
    elif cls == ALU:
        op = code & 0xF0
        if code == ALU | NEG:
            return "neg", ""
        if op in _ALU_NAMES:
            if code & isa.X:
                return _ALU_NAMES[op], "x"
            return _ALU_NAMES[op], f"#0x{k:x}" if op in _HEX_ALU else f"#{_s32(k)}"
    elif cls == MISC:
        if code == MISC | TAX:
            return "tax", ""
        if code == MISC | TXA:
            return "txa", ""
    return "unimp", f"0x{code:x}"


def image(ins: isa.Instruction, n: int) -> str:
    """One ``-d`` line for instruction number ``n``."""
    op, operand = _op_operand(ins, n)
    if ins.is_cond_jump:
        return f"({n:03d}) {op:<8s} {operand:<16s} jt {n + 1 + ins.jt}\tjf {n + 1 + ins.jf}"
    return f"({n:03d}) {op:<8s} {operand}"


def format_d(insns: Sequence[isa.Instruction]) -> str:
    return "".join(image(ins, n) + "\n" for n, ins in enumerate(insns))


def format_dd(insns: Sequence[isa.Instruction]) -> str:
    return "".join(f"{{ 0x{i.code:x}, {i.jt}, {i.jf}, 0x{i.k & isa.U32:08x} }},\n" for i in insns)


def format_ddd(insns: Sequence[isa.Instruction]) -> str:
    return f"{len(insns)}\n" + "".join(f"{i.code} {i.jt} {i.jf} {i.k & isa.U32}\n" for i in insns)


FORMATS = {1: format_d, 2: format_dd, 3: format_ddd}
