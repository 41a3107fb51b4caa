"""What each eBPF operation computes, as plain Python functions on unsigned register values.

This is the stepping interpreter's truth table (the translator in :mod:`.translate` emits
equivalent Python source; tests run both against each other and against the kernel). Values
are always unsigned: 64-bit registers hold ``0 <= v < 2**64``; 32-bit operations see only the
low halves and their results are zero-extended into the full register, as RFC 9669 §4.1 and
the kernel's interpreter (kernel/bpf/core.c) do.

Division follows Linux, not C (RFC 9669 §4.1 and the verifier's rewrite of BPF_DIV/BPF_MOD):
division by zero yields 0, modulo by zero leaves the dividend (for 32-bit modulo: its low half,
zero-extended), signed division truncates toward zero and ``INT_MIN / -1`` wraps to ``INT_MIN``
(the modulo is 0). Shift counts are masked to the operand width (63 or 31).
"""

from __future__ import annotations

from typing import Callable

from .. import isa

M64 = isa.U64
M32 = isa.U32


def sext(value: int, bits: int) -> int:
    """The low ``bits`` of ``value`` as a signed integer."""
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def _udiv(a: int, b: int, bits: int) -> int:
    return a // b if b else 0


def _umod(a: int, b: int, bits: int) -> int:
    return a % b if b else a


def _sdiv(a: int, b: int, bits: int) -> int:
    if b == 0:
        return 0
    sa, sb = sext(a, bits), sext(b, bits)
    q = abs(sa) // abs(sb)
    if (sa < 0) != (sb < 0):
        q = -q
    return q & ((1 << bits) - 1)


def _smod(a: int, b: int, bits: int) -> int:
    if b == 0:
        return a
    sa, sb = sext(a, bits), sext(b, bits)
    r = abs(sa) % abs(sb)
    if sa < 0:
        r = -r          # the remainder takes the dividend's sign (truncating division)
    return r & ((1 << bits) - 1)


def _lsh(a: int, b: int, bits: int) -> int:
    return (a << (b & (bits - 1))) & ((1 << bits) - 1)


def _rsh(a: int, b: int, bits: int) -> int:
    return a >> (b & (bits - 1))


def _arsh(a: int, b: int, bits: int) -> int:
    return (sext(a, bits) >> (b & (bits - 1))) & ((1 << bits) - 1)


def _mask(fn: Callable[[int, int], int]) -> Callable[[int, int, int], int]:
    return lambda a, b, bits: fn(a, b) & ((1 << bits) - 1)


#: binary ALU operations by (operation nibble, signed flag from ``off``): f(a, b, bits) where
#: a and b are already truncated to ``bits``; the result is truncated too.
BINARY: dict[tuple[int, int], Callable[[int, int, int], int]] = {
    (isa.ADD, 0): _mask(lambda a, b: a + b),
    (isa.SUB, 0): _mask(lambda a, b: a - b),
    (isa.MUL, 0): _mask(lambda a, b: a * b),
    (isa.DIV, 0): _udiv,
    (isa.DIV, 1): _sdiv,
    (isa.MOD, 0): _umod,
    (isa.MOD, 1): _smod,
    (isa.OR, 0): lambda a, b, bits: a | b,
    (isa.AND, 0): lambda a, b, bits: a & b,
    (isa.XOR, 0): lambda a, b, bits: a ^ b,
    (isa.LSH, 0): _lsh,
    (isa.RSH, 0): _rsh,
    (isa.ARSH, 0): _arsh,
}


def bswap(value: int, bits: int) -> int:
    """Reverse the bytes of the low ``bits`` of ``value`` (zero-extended result)."""
    n = bits // 8
    return int.from_bytes((value & ((1 << bits) - 1)).to_bytes(n, "little"), "big")


def truncate(value: int, bits: int) -> int:
    return value & ((1 << bits) - 1)


#: byte-order operations: (opcode) -> f(value, width).  This host is little-endian, so
#: ``le`` only truncates and ``be``/``bswap`` reverse (RFC 9669 §4.2).
ENDIAN: dict[int, Callable[[int, int], int]] = {
    isa.ALU | isa.K | isa.END: truncate,      # le16/32/64
    isa.ALU | isa.X | isa.END: bswap,         # be16/32/64
    isa.ALU64 | isa.K | isa.END: bswap,       # bswap16/32/64 (unconditional)
}


def _signed(cmp: Callable[[int, int], bool]) -> Callable[[int, int, int], bool]:
    return lambda a, b, bits: cmp(sext(a, bits), sext(b, bits))


def _unsigned(cmp: Callable[[int, int], bool]) -> Callable[[int, int, int], bool]:
    return lambda a, b, bits: cmp(a, b)


#: conditional jumps by operation nibble: f(a, b, bits) on operands truncated to ``bits``
CONDITIONS: dict[int, Callable[[int, int, int], bool]] = {
    isa.JEQ: _unsigned(lambda a, b: a == b),
    isa.JNE: _unsigned(lambda a, b: a != b),
    isa.JGT: _unsigned(lambda a, b: a > b),
    isa.JGE: _unsigned(lambda a, b: a >= b),
    isa.JLT: _unsigned(lambda a, b: a < b),
    isa.JLE: _unsigned(lambda a, b: a <= b),
    isa.JSET: _unsigned(lambda a, b: (a & b) != 0),
    isa.JSGT: _signed(lambda a, b: a > b),
    isa.JSGE: _signed(lambda a, b: a >= b),
    isa.JSLT: _signed(lambda a, b: a < b),
    isa.JSLE: _signed(lambda a, b: a <= b),
}


#: atomic read-modify-write operations (imm without the FETCH bit): new = f(old, src)
ATOMIC_UPDATE: dict[int, Callable[[int, int], int]] = {
    isa.ATOMIC_ADD: lambda old, v: old + v,
    isa.ATOMIC_OR: lambda old, v: old | v,
    isa.ATOMIC_AND: lambda old, v: old & v,
    isa.ATOMIC_XOR: lambda old, v: old ^ v,
    isa.ATOMIC_XCHG & ~isa.ATOMIC_FETCH: lambda old, v: v,
}
