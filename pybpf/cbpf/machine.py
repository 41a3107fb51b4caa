"""The classic BPF machine: accumulator A, index register X, scratch memory M[0..15].

Semantics follow the Linux kernel's socket filter (``net/core/filter.c``), which agrees with
libpcap's ``bpf_filter()`` on everything libpcap emits:

* a packet load that falls outside the packet ends the program with return value 0;
* division or modulo by a zero X ends the program with return value 0;
* shifts by X use the low five bits of X (what x86 and the kernel's JITs do);
* absolute loads at ``SKF_AD_OFF + n`` read packet metadata (:class:`SkbContext`), loads at
  ``SKF_NET_OFF + k`` / ``SKF_LL_OFF + k`` address the network / link-layer header.

The interpreter accepts unchecked programs too: anything the kernel's checker would refuse
and that the machine cannot execute (an unknown opcode, falling off the end, M[k] beyond 15)
raises :class:`pybpf.errors.VMError` with the instruction index.
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass, field
from typing import Callable, Sequence

from ..errors import VMError
from . import isa
from .isa import U32

_BE16 = struct.Struct(">H").unpack_from
_BE32 = struct.Struct(">I").unpack_from


@dataclass
class SkbContext:
    """Metadata an ancillary load can read (the fields of the kernel's ``sk_buff``).

    ``net_offset`` is where the network header starts relative to the link-layer header
    (``skb_network_offset``); ``SKF_NET_OFF`` loads are relative to it.
    """

    protocol: int = 0          # host order, like SKF_AD_PROTOCOL returns it (ntohs(skb->protocol))
    pkttype: int = 0           # PACKET_HOST ...
    ifindex: int = 0
    mark: int = 0
    queue: int = 0
    hatype: int = 1            # ARPHRD_ETHER
    rxhash: int = 0
    cpu: int = 0
    vlan_tci: int = 0
    vlan_present: int = 0
    vlan_tpid: int = 0
    net_offset: int = 14
    pay_offset: int | None = None
    random: Callable[[], int] = field(default=lambda: random.getrandbits(32))

    @classmethod
    def for_ethernet(cls, packet: bytes, **kw) -> "SkbContext":
        """The context the kernel computes for an Ethernet frame (eth_type_trans)."""
        proto = _BE16(packet, 12)[0] if len(packet) >= 14 else 0
        if proto < 0x600:
            proto = 0x0004 if len(packet) >= 16 and packet[14:16] != b"\xff\xff" else 0x0001
        kw.setdefault("protocol", proto)
        return cls(**kw)


class _Reject(Exception):
    """Internal: the program ends with 0 (bad load, division by zero)."""


def _ancillary(field_off: int, ctx: SkbContext, packet: bytes, a: int, x: int) -> int:
    if field_off == 0:
        return ctx.protocol
    if field_off == 4:
        return ctx.pkttype
    if field_off == 8:
        return ctx.ifindex
    if field_off == 20:
        return ctx.mark
    if field_off == 24:
        return ctx.queue
    if field_off == 28:
        return ctx.hatype
    if field_off == 32:
        return ctx.rxhash
    if field_off == 36:
        return ctx.cpu
    if field_off == 40:
        return a ^ x
    if field_off == 44:
        return ctx.vlan_tci
    if field_off == 48:
        return ctx.vlan_present
    if field_off == 52:
        return payload_offset(packet, ctx) if ctx.pay_offset is None else ctx.pay_offset
    if field_off == 56:
        return ctx.random() & U32
    if field_off == 60:
        return ctx.vlan_tpid
    return 0   # netlink attributes: a packet socket carries none


def payload_offset(packet: bytes, ctx: SkbContext) -> int:
    """SKF_AD_PAY_OFFSET: where the transport payload starts (the flow dissector's answer),
    for IPv4/IPv6 with TCP/UDP; other packets give the network header offset."""
    n = ctx.net_offset
    try:
        if ctx.protocol == 0x0800:
            ihl = (packet[n] & 0xF) * 4
            proto = packet[n + 9]
            t = n + ihl
        elif ctx.protocol == 0x86DD:
            proto = packet[n + 6]
            t = n + 40
        else:
            return n
        if proto == 6:
            return t + ((packet[t + 12] >> 4) * 4)
        if proto == 17:
            return t + 8
        return t
    except IndexError:
        return 0


def _load(packet: bytes, offset: int, size: int, ctx: SkbContext) -> int:
    offset &= U32
    if offset & 0x80000000:
        offset -= 1 << 32
        if offset >= isa.SKF_NET_OFF:
            offset = ctx.net_offset + (offset - isa.SKF_NET_OFF)
        elif offset >= isa.SKF_LL_OFF:
            offset = offset - isa.SKF_LL_OFF
        else:
            raise _Reject
    if offset + size > len(packet):
        raise _Reject
    if size == 4:
        return _BE32(packet, offset)[0]
    if size == 2:
        return _BE16(packet, offset)[0]
    return packet[offset]


_ALU = {
    isa.ADD: lambda a, b: a + b,
    isa.SUB: lambda a, b: a - b,
    isa.MUL: lambda a, b: a * b,
    isa.OR: lambda a, b: a | b,
    isa.AND: lambda a, b: a & b,
    isa.XOR: lambda a, b: a ^ b,
    isa.LSH: lambda a, b: a << (b & 31),
    isa.RSH: lambda a, b: a >> (b & 31),
}
_JMP = {
    isa.JEQ: lambda a, b: a == b,
    isa.JGT: lambda a, b: a > b,
    isa.JGE: lambda a, b: a >= b,
    isa.JSET: lambda a, b: (a & b) != 0,
}


def run(insns: Sequence[isa.Instruction], packet: bytes, ctx: SkbContext | None = None,
        *, wirelen: int | None = None) -> int:
    """Run a classic program over ``packet``; returns the unsigned 32-bit return value."""
    if ctx is None:
        ctx = SkbContext()
    try:
        return _run(insns, packet, ctx, len(packet) if wirelen is None else wirelen)
    except _Reject:
        return 0


_MAX_BACKWARD_JUMPS = 100_000


def _run(insns, packet, ctx, wirelen) -> int:
    a = x = 0
    mem = [0] * isa.MEMWORDS
    pc = 0
    backward = 0
    n = len(insns)
    while True:
        if pc >= n:
            raise VMError("fell off the end of the classic program", pc=pc)
        ins = insns[pc]
        code, k = ins.code, ins.k & U32
        cls = code & 7
        pc += 1
        if cls == isa.LD or cls == isa.LDX:
            mode, size = code & 0xE0, code & 0x18
            if cls == isa.LD and mode == isa.ABS and size in isa.SIZE_BYTES:
                fo = isa.ancillary_field(k)
                a = (_ancillary(fo, ctx, packet, a, x) if fo is not None
                     else _load(packet, k, isa.SIZE_BYTES[size], ctx)) & U32
            elif cls == isa.LD and mode == isa.IND and size in isa.SIZE_BYTES:
                a = _load(packet, x + k, isa.SIZE_BYTES[size], ctx)
            elif mode == isa.IMM and size == isa.W:
                v = k
                if cls == isa.LD:
                    a = v
                else:
                    x = v
            elif mode == isa.LEN and size == isa.W:
                if cls == isa.LD:
                    a = wirelen & U32
                else:
                    x = wirelen & U32
            elif mode == isa.MEM and size == isa.W:
                if k >= isa.MEMWORDS:
                    raise VMError(f"scratch memory index {k} out of range", pc=pc - 1)
                if cls == isa.LD:
                    a = mem[k]
                else:
                    x = mem[k]
            elif cls == isa.LDX and mode == isa.MSH and size == isa.B:
                x = (_load(packet, k, 1, ctx) & 0xF) << 2
            else:
                raise VMError(f"invalid classic opcode 0x{code:02x}", pc=pc - 1)
        elif cls == isa.ST or cls == isa.STX:
            if k >= isa.MEMWORDS:
                raise VMError(f"scratch memory index {k} out of range", pc=pc - 1)
            mem[k] = a if cls == isa.ST else x
        elif cls == isa.ALU:
            op = code & 0xF0
            b = x if code & isa.X else k
            if op == isa.NEG:
                a = -a & U32
            elif op == isa.DIV or op == isa.MOD:
                if b == 0:
                    raise _Reject
                a = a // b if op == isa.DIV else a % b
            elif op in _ALU:
                a = _ALU[op](a, b) & U32
            else:
                raise VMError(f"invalid classic ALU opcode 0x{code:02x}", pc=pc - 1)
        elif cls == isa.JMP:
            op = code & 0xF0
            if op == isa.JA:
                # 32-bit wrap-around as in libpcap's bpf_filter: a "negative" k jumps
                # backwards (libpcap's own protochain loop); the kernel refuses such
                # programs, and a bound on backward jumps keeps a bad loop from hanging
                target = (pc + k) & U32
                if target < pc:
                    backward += 1
                    if backward > _MAX_BACKWARD_JUMPS:
                        raise VMError("backward jumps do not terminate", pc=pc - 1)
                pc = target
            elif op in _JMP:
                pc += ins.jt if _JMP[op](a, x if code & isa.X else k) else ins.jf
            else:
                raise VMError(f"invalid classic jump opcode 0x{code:02x}", pc=pc - 1)
        elif cls == isa.RET:
            src = code & 0x18
            if src == isa.K:
                return k
            if src == isa.A:
                return a
            if src == isa.X:
                return x
            raise VMError(f"invalid classic return opcode 0x{code:02x}", pc=pc - 1)
        else:  # MISC
            if code & 0xF8 == isa.TAX:
                x = a
            elif code & 0xF8 == isa.TXA:
                a = x
            else:
                raise VMError(f"invalid classic misc opcode 0x{code:02x}", pc=pc - 1)


class Machine:
    """A classic program bound to a context: ``Machine(insns).run(packet)``."""

    def __init__(self, insns: Sequence[isa.Instruction], ctx: SkbContext | None = None):
        self.insns = list(insns)
        self.ctx = ctx or SkbContext()

    def run(self, packet: bytes, wirelen: int | None = None) -> int:
        return run(self.insns, packet, self.ctx, wirelen=wirelen)
