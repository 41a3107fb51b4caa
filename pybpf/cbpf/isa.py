"""Classic BPF: opcode tables and the Instruction record.

Follows the 1992 BSD Packet Filter as libpcap's ``pcap/bpf.h`` defines it, plus Linux's
extensions from ``include/uapi/linux/filter.h``: ancillary loads at ``SKF_AD_OFF + n`` (packet
metadata such as the protocol or the VLAN tag) and the negative offsets ``SKF_NET_OFF`` /
``SKF_LL_OFF`` that address the network and link-layer headers.

A classic instruction is ``struct sock_filter {u16 code; u8 jt; u8 jf; u32 k}``; jumps are
forward only (``jt``/``jf`` count instructions after the next one).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

# --- classes -----------------------------------------------------------------------------
LD, LDX, ST, STX, ALU, JMP, RET, MISC = range(8)
CLASS_NAMES = {LD: "ld", LDX: "ldx", ST: "st", STX: "stx", ALU: "alu", JMP: "jmp",
               RET: "ret", MISC: "misc"}

# sizes and modes of LD/LDX
W, H, B = 0x00, 0x08, 0x10
SIZE_BYTES = {W: 4, H: 2, B: 1}
IMM, ABS, IND, MEM, LEN, MSH = 0x00, 0x20, 0x40, 0x60, 0x80, 0xA0

# ALU operations
ADD, SUB, MUL, DIV, OR, AND, LSH, RSH, NEG, MOD, XOR = (
    0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xA0)
# JMP operations
JA, JEQ, JGT, JGE, JSET = 0x00, 0x10, 0x20, 0x30, 0x40
# operand source for ALU/JMP, and RET's value source
K, X, A = 0x00, 0x08, 0x10
# MISC operations
TAX, TXA = 0x00, 0x80

MEMWORDS = 16          # scratch memory M[0..15]
MAXINSNS = 4096        # Linux's BPF_MAXINSNS
U32 = 0xFFFFFFFF

# --- Linux ancillary data (include/uapi/linux/filter.h) -----------------------------------
SKF_AD_OFF = -0x1000
SKF_NET_OFF = -0x100000
SKF_LL_OFF = -0x200000

#: ancillary field offset -> (name used in our API, name libpcap's bpf_image prints)
ANCILLARY = {
    0: ("protocol", "proto"),
    4: ("pkttype", "type"),
    8: ("ifindex", "ifidx"),
    12: ("nlattr", "nla"),
    16: ("nlattr_nest", "nlan"),
    20: ("mark", "mark"),
    24: ("queue", "queue"),
    28: ("hatype", "hatype"),
    32: ("rxhash", "rxhash"),
    36: ("cpu", "cpu"),
    40: ("alu_xor_x", "xor_x"),
    44: ("vlan_tag", "vlan_tci"),
    48: ("vlan_tag_present", "vlanp"),
    52: ("pay_offset", "poff"),
    56: ("random", "rand"),
    60: ("vlan_tpid", "vlan_tpid"),
}
SKF_AD_MAX = 64
SKF_AD = {name: off for off, (name, _) in ANCILLARY.items()}


def ancillary_field(k: int) -> int | None:
    """The ancillary field offset addressed by an absolute load of ``k``, else None."""
    k &= U32
    base = SKF_AD_OFF & U32
    if base <= k < base + SKF_AD_MAX and (k - base) in ANCILLARY:
        return k - base
    return None


@dataclass(frozen=True, slots=True)
class Instruction:
    """One ``struct sock_filter``: 16-bit code, 8-bit jump offsets, 32-bit constant k."""

    code: int
    jt: int = 0
    jf: int = 0
    k: int = 0

    @property
    def cls(self) -> int:
        return self.code & 0x07

    @property
    def size(self) -> int:
        return self.code & 0x18

    @property
    def mode(self) -> int:
        return self.code & 0xE0

    @property
    def op(self) -> int:
        return self.code & 0xF0

    @property
    def src(self) -> int:
        return self.code & 0x08

    @property
    def is_cond_jump(self) -> bool:
        return self.cls == JMP and self.op != JA

    def encode(self) -> bytes:
        return _SOCK_FILTER.pack(self.code, self.jt, self.jf, self.k & U32)

    def astuple(self) -> tuple[int, int, int, int]:
        return (self.code, self.jt, self.jf, self.k & U32)


_SOCK_FILTER = struct.Struct("<HBBI")


def stmt(code: int, k: int = 0) -> Instruction:
    """BPF_STMT(code, k)"""
    return Instruction(code, 0, 0, k & U32)


def jump(code: int, k: int, jt: int, jf: int) -> Instruction:
    """BPF_JUMP(code, k, jt, jf)"""
    return Instruction(code, jt, jf, k & U32)


def encode(insns) -> bytes:
    """The bytes of a ``struct sock_filter`` array (host order, little-endian here)."""
    return b"".join(i.encode() for i in insns)


def decode(data: bytes) -> list[Instruction]:
    from ..errors import DecodeError
    if len(data) % 8:
        raise DecodeError(f"classic BPF bytecode length {len(data)} is not a multiple of 8",
                          len(data) // 8)
    return [Instruction(*t) for t in _SOCK_FILTER.iter_unpack(data)]


def parse_ddd(text: str) -> list[Instruction]:
    """Instructions from tcpdump's ``-ddd`` output (a count, then ``code jt jf k`` lines)."""
    from ..errors import DecodeError
    lines = [ln.split() for ln in text.strip().splitlines() if ln.strip()]
    if not lines:
        raise DecodeError("empty -ddd text")
    try:
        count = int(lines[0][0])
        insns = [Instruction(int(a), int(b), int(c), int(d) & U32) for a, b, c, d in lines[1:]]
    except (ValueError, IndexError) as exc:
        raise DecodeError(f"malformed -ddd line: {exc}") from None
    if count != len(insns):
        raise DecodeError(f"-ddd count {count} but {len(insns)} instructions")
    return insns
