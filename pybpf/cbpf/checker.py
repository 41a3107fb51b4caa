"""The kernel's rules for classic programs (``bpf_check_classic`` in net/core/filter.c).

A program is accepted by SO_ATTACH_FILTER exactly when :func:`check` returns; otherwise
:class:`CheckError` names the first offending instruction and the rule, in the kernel's order:

1. length between 1 and BPF_MAXINSNS (4096);
2. every opcode on the kernel's whitelist (note: ``ret x`` is not on it);
3. division/modulo by the constant 0, constant shifts of 32 or more, M[k] with k >= 16,
   ``ja`` past the end, conditional jumps past the end, unknown ancillary loads;
4. the last instruction is ``ret k`` or ``ret a``;
5. every load from M[k] is preceded on every path by a store to M[k]
   (``check_load_and_stores``: a forward data-flow pass over the jump graph).
"""

from __future__ import annotations

from typing import Sequence

from ..errors import VerifierError
from . import isa
from .isa import (ABS, ADD, ALU, AND, B, DIV, H, IMM, IND, JA, JEQ, JGE, JGT, JMP, JSET, K,
                  LD, LDX, LEN, LSH, MEM, MISC, MOD, MSH, MUL, NEG, OR, RET, RSH, ST, STX, SUB,
                  TAX, TXA, W, XOR, A)


class CheckError(VerifierError):
    """A classic program the kernel's checker refuses (EINVAL from SO_ATTACH_FILTER)."""

    kind = "cbpf-check"


#: the kernel's ``codes[]`` whitelist in chk_code_allowed()
ALLOWED_CODES = frozenset(
    [ALU | op | src for op in (ADD, SUB, MUL, DIV, MOD, AND, OR, XOR, LSH, RSH)
     for src in (K, isa.X)]
    + [ALU | NEG]
    + [LD | size | mode for size in (W, H, B) for mode in (ABS, IND)]
    + [LD | W | LEN, LD | W | MEM, LD | W | IMM,
       LDX | W | LEN, LDX | B | MSH, LDX | W | IMM, LDX | W | MEM,
       ST, STX, MISC | TAX, MISC | TXA, RET | K, RET | A, JMP | JA]
    + [JMP | op | src for op in (JEQ, JGT, JGE, JSET) for src in (K, isa.X)]
)

_COND_JUMPS = frozenset(JMP | op | src for op in (JEQ, JGT, JGE, JSET) for src in (K, isa.X))
_MEM_OPS = frozenset([LD | MEM, LDX | MEM, ST, STX])


def check(insns: Sequence[isa.Instruction]) -> None:
    """Raise :class:`CheckError` unless the kernel would accept ``insns``."""
    flen = len(insns)
    if flen == 0 or flen > isa.MAXINSNS:
        raise CheckError(f"program length {flen} is not between 1 and {isa.MAXINSNS}")
    ad_base = isa.SKF_AD_OFF & isa.U32
    for pc, ins in enumerate(insns):
        code, k = ins.code, ins.k & isa.U32
        if code not in ALLOWED_CODES:
            raise CheckError(f"opcode 0x{code:02x} is not allowed in a classic program", pc)
        if code in (ALU | DIV | K, ALU | MOD | K) and k == 0:
            raise CheckError("division by the constant 0", pc)
        elif code in (ALU | LSH | K, ALU | RSH | K) and k >= 32:
            raise CheckError(f"shift by {k} (must be below 32)", pc)
        elif code in _MEM_OPS and k >= isa.MEMWORDS:
            raise CheckError(f"scratch memory M[{k}] out of range (0..15)", pc)
        elif code == JMP | JA and k >= flen - 1 - pc:
            raise CheckError(f"ja {k} jumps past the end", pc)
        elif code in _COND_JUMPS and (pc + ins.jt + 1 >= flen or pc + ins.jf + 1 >= flen):
            raise CheckError("conditional jump past the end", pc)
        elif (code in (LD | W | ABS, LD | H | ABS, LD | B | ABS) and k >= ad_base
              and isa.ancillary_field(k) is None):
            raise CheckError(f"unknown ancillary load at offset {k - (1 << 32)}", pc)
    if insns[-1].code not in (RET | K, RET | A):
        raise CheckError("the last instruction must be 'ret #k' or 'ret a'", flen - 1)
    _check_loads_and_stores(insns)


def _check_loads_and_stores(insns: Sequence[isa.Instruction]) -> None:
    """M[k] must be written on every path before it is read (kernel's check_load_and_stores).

    Like the kernel, the state after a ``ret`` simply flows into the next instruction, and a
    jump resets the fall-through state to "everything valid" (the jump's targets carry it)."""
    flen = len(insns)
    masks = [0xFFFF] * flen
    memvalid = 0
    for pc, ins in enumerate(insns):
        memvalid &= masks[pc]
        code = ins.code
        if code in (ST, STX):
            memvalid |= 1 << ins.k
        elif code in (LD | MEM, LDX | MEM):
            if not memvalid & (1 << ins.k):
                raise CheckError(f"M[{ins.k}] is read before it is written on some path", pc)
        elif code == JMP | JA:
            masks[pc + 1 + ins.k] &= memvalid
            memvalid = 0xFFFF
        elif code in _COND_JUMPS:
            masks[pc + 1 + ins.jt] &= memvalid
            masks[pc + 1 + ins.jf] &= memvalid
            memvalid = 0xFFFF


def is_valid(insns: Sequence[isa.Instruction]) -> bool:
    try:
        check(insns)
    except CheckError:
        return False
    return True
