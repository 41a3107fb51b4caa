"""Tristate numbers: what the verifier knows about each bit of a scalar.

A :class:`Tnum` is a pair ``(value, mask)``: bits set in ``mask`` are unknown, the others are
known and equal to the matching bit of ``value``. The operations follow the kernel's
``kernel/bpf/tnum.c`` (the algorithms of Vishwanathan et al., "Sound, Precise, and Fast
Abstract Interpretation with Tristate Numbers"), so that pybpf learns exactly the bits the
Linux verifier learns. Everything is unsigned 64-bit.
"""

from __future__ import annotations

from typing import NamedTuple

U64 = 0xFFFF_FFFF_FFFF_FFFF
U32 = 0xFFFF_FFFF


class Tnum(NamedTuple):
    value: int
    mask: int

    def is_const(self) -> bool:
        return self.mask == 0

    def is_unknown(self) -> bool:
        return self.mask == U64

    def contains(self, other: "Tnum") -> bool:
        """``other`` is a subset of ``self`` (the kernel's ``tnum_in(self, other)``)."""
        if other.mask & ~self.mask:
            return False
        return self.value == (other.value & ~self.mask)

    def __str__(self) -> str:
        return f"(0x{self.value:x}; 0x{self.mask:x})"


UNKNOWN = Tnum(0, U64)
ZERO = Tnum(0, 0)


def const(value: int) -> Tnum:
    return Tnum(value & U64, 0)


def trange(lo: int, hi: int) -> Tnum:
    """The smallest tnum covering the unsigned range [lo, hi]."""
    chi = lo ^ hi
    bits = chi.bit_length()
    if bits > 63:
        return UNKNOWN
    delta = (1 << bits) - 1
    return Tnum(lo & ~delta & U64, delta)


def lshift(a: Tnum, shift: int) -> Tnum:
    return Tnum((a.value << shift) & U64, (a.mask << shift) & U64)


def rshift(a: Tnum, shift: int) -> Tnum:
    return Tnum(a.value >> shift, a.mask >> shift)


def _s(v: int, bits: int) -> int:
    return v - (1 << bits) if v >> (bits - 1) else v


def arshift(a: Tnum, shift: int, bits: int) -> Tnum:
    """Arithmetic right shift in a ``bits``-wide (32 or 64) register."""
    m = (1 << bits) - 1
    return Tnum((_s(a.value & m, bits) >> shift) & m, (_s(a.mask & m, bits) >> shift) & m)


def add(a: Tnum, b: Tnum) -> Tnum:
    sm = (a.mask + b.mask) & U64
    sv = (a.value + b.value) & U64
    sigma = (sm + sv) & U64
    chi = sigma ^ sv
    mu = chi | a.mask | b.mask
    return Tnum(sv & ~mu & U64, mu)


def sub(a: Tnum, b: Tnum) -> Tnum:
    dv = (a.value - b.value) & U64
    alpha = (dv + a.mask) & U64
    beta = (dv - b.mask) & U64
    chi = alpha ^ beta
    mu = chi | a.mask | b.mask
    return Tnum(dv & ~mu & U64, mu)


def neg(a: Tnum) -> Tnum:
    return sub(ZERO, a)


def and_(a: Tnum, b: Tnum) -> Tnum:
    alpha = a.value | a.mask
    beta = b.value | b.mask
    v = a.value & b.value
    return Tnum(v, alpha & beta & ~v & U64)


def or_(a: Tnum, b: Tnum) -> Tnum:
    v = a.value | b.value
    mu = a.mask | b.mask
    return Tnum(v, mu & ~v & U64)


def xor(a: Tnum, b: Tnum) -> Tnum:
    v = a.value ^ b.value
    mu = a.mask | b.mask
    return Tnum(v & ~mu & U64, mu)


def union(a: Tnum, b: Tnum) -> Tnum:
    v = a.value & b.value
    mu = (a.value ^ b.value) | a.mask | b.mask
    return Tnum(v & ~mu & U64, mu)


def mul(a: Tnum, b: Tnum) -> Tnum:
    """Long multiplication over tristate bits (the kernel's current ``tnum_mul``)."""
    acc = ZERO
    while a.value or a.mask:
        if a.value & 1:
            acc = add(acc, b)
        elif a.mask & 1:
            acc = union(acc, add(acc, b))
        a = rshift(a, 1)
        b = lshift(b, 1)
    return acc


def intersect(a: Tnum, b: Tnum) -> Tnum:
    v = a.value | b.value
    mu = a.mask & b.mask
    return Tnum(v & ~mu & U64, mu)


def cast(a: Tnum, size: int) -> Tnum:
    m = (1 << (size * 8)) - 1
    return Tnum(a.value & m, a.mask & m)


def subreg(a: Tnum) -> Tnum:
    return Tnum(a.value & U32, a.mask & U32)


def clear_subreg(a: Tnum) -> Tnum:
    return Tnum(a.value & ~U32 & U64, a.mask & ~U32 & U64)


def with_subreg(reg: Tnum, sub32: Tnum) -> Tnum:
    return or_(clear_subreg(reg), subreg(sub32))


def const_subreg(a: Tnum, value: int) -> Tnum:
    return with_subreg(a, const(value & U32))


def sbin(a: Tnum, bits: int = 64) -> str:
    """Bit string with ``x`` for unknown bits (the kernel's ``tnum_sbin``)."""
    out = []
    for i in reversed(range(bits)):
        out.append("x" if a.mask >> i & 1 else str(a.value >> i & 1))
    return "".join(out)
