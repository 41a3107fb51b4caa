"""Classic BPF -> eBPF, following the kernel's ``bpf_convert_filter`` (net/core/filter.c).

Register mapping as the kernel's: A lives in w0 (r0), X in w7, the context (``struct
__sk_buff *``) is saved in r6 for the legacy packet loads, r8 is a temporary that survives
them, and M[0..15] are 32-bit stack slots at ``r10 - 4*(16-k)``. Everything A and X touch
is 32-bit (ALU32, JMP32), so the results are the classic machine's. Packet loads become
``LD_ABS``/``LD_IND`` (which end the program with 0 when out of bounds, like the classic
machine); a division by a zero X returns 0 as classic BPF does.

Ancillary loads become ``__sk_buff`` field reads (protocol and VLAN TPID byte-swapped to host
order) or helper calls (``SKF_AD_CPU`` -> bpf_get_smp_processor_id, ``SKF_AD_RANDOM`` ->
bpf_get_prandom_u32). ``SKF_AD_HATYPE``, ``SKF_AD_PAY_OFFSET`` and the netlink attribute
loads have no eBPF-visible equivalent for a socket filter; translating them raises
:class:`pybpf.errors.DecodeError` naming the instruction.
"""

from __future__ import annotations

from typing import Sequence

from .. import isa as e
from ..errors import DecodeError
from ..program import Program
from . import isa as c
from .checker import check

A, X, CTX, TMP, FP = 0, 7, 6, 8, 10

#: __sk_buff offsets (include/uapi/linux/bpf.h)
SKB = {"len": 0, "pkt_type": 4, "mark": 8, "queue_mapping": 12, "protocol": 16,
       "vlan_present": 20, "vlan_tci": 24, "vlan_proto": 28, "ifindex": 40, "hash": 68}

#: ancillary field -> (__sk_buff field, byte-swap from network order)
ANC_FIELDS = {
    c.SKF_AD["protocol"]: ("protocol", True),
    c.SKF_AD["pkttype"]: ("pkt_type", False),
    c.SKF_AD["ifindex"]: ("ifindex", False),
    c.SKF_AD["mark"]: ("mark", False),
    c.SKF_AD["queue"]: ("queue_mapping", False),
    c.SKF_AD["rxhash"]: ("hash", False),
    c.SKF_AD["vlan_tag"]: ("vlan_tci", False),
    c.SKF_AD["vlan_tag_present"]: ("vlan_present", False),
    c.SKF_AD["vlan_tpid"]: ("vlan_proto", True),
}
ANC_HELPERS = {c.SKF_AD["cpu"]: 8, c.SKF_AD["random"]: 7}   # bpf_get_smp_processor_id, prandom

_ALU = {c.ADD: e.ADD, c.SUB: e.SUB, c.MUL: e.MUL, c.DIV: e.DIV, c.MOD: e.MOD, c.AND: e.AND,
        c.OR: e.OR, c.XOR: e.XOR, c.LSH: e.LSH, c.RSH: e.RSH}
_JMP = {c.JEQ: e.JEQ, c.JGT: e.JGT, c.JGE: e.JGE, c.JSET: e.JSET}
_INVERSE = {c.JEQ: e.JNE, c.JGT: e.JLE, c.JGE: e.JLT}
_SIZE = {c.W: e.W, c.H: e.H, c.B: e.B}


def I(opcode, dst=0, src=0, off=0, imm=0):
    return e.Instruction(opcode, dst, src, off, e.sext(imm & 0xFFFFFFFF, 32))


def mov32(dst, imm):
    return I(e.ALU | e.MOV | e.K, dst, 0, 0, imm)


def mov32_reg(dst, src):
    return I(e.ALU | e.MOV | e.X, dst, src)


def mem_off(k: int) -> int:
    return -(c.MEMWORDS - k) * 4


def _jump(target_pc):
    """A placeholder jump to classic instruction ``target_pc``, resolved later."""
    return ("goto", target_pc)


def translate(insns: Sequence[c.Instruction], *, name: str = "cbpf", checked: bool = True) -> Program:
    """A socket_filter :class:`Program` computing what ``insns`` compute."""
    if checked:
        check(insns)
    # A = 0, X = 0 (as moves: the eBPF verifier will not read an unset register, not even
    # for the kernel's own ``xor a, a``)
    out: list = [I(e.ALU64 | e.MOV | e.X, CTX, 1), mov32(A, 0), mov32(X, 0)]
    start: list[int] = []
    live = reachable(insns)
    for pc, ins in enumerate(insns):
        start.append(len(out))
        if live[pc]:      # the eBPF verifier refuses unreachable code; classic BPF allows it
            out.extend(_one(ins, pc))
    # resolve classic targets to eBPF slot offsets (all eBPF instructions here take one slot)
    code: list[e.Instruction] = []
    for idx, item in enumerate(out):
        if isinstance(item, tuple):
            kind, ins = item[0], item
            if kind == "goto":
                code.append(I(e.JMP | e.JA, off=start[ins[1]] - idx - 1))
            else:   # ("cond", opcode, dst, src, imm, target)
                _, opcode, dst, src, imm, target = ins
                code.append(I(opcode, dst, src, start[target] - idx - 1, imm))
        else:
            code.append(item)
    lines = {}
    from .printer import image
    for pc, s in enumerate(start):
        if live[pc]:
            lines[s] = image(insns[pc], pc)
    return Program(code, name=name, prog_type="socket_filter", lines=lines)


def reachable(insns: Sequence[c.Instruction]) -> list[bool]:
    """Which classic instructions some path from the first one reaches (jumps go forward)."""
    live = [False] * len(insns)
    if insns:
        live[0] = True
    for pc, ins in enumerate(insns):
        if not live[pc]:
            continue
        cls, op = ins.code & 7, ins.code & 0xF0
        if cls == c.RET:
            continue
        if cls == c.JMP:
            targets = [pc + 1 + ins.k] if op == c.JA else [pc + 1 + ins.jt, pc + 1 + ins.jf]
        else:
            targets = [pc + 1]
        for t in targets:
            if t < len(insns):
                live[t] = True
    return live


def _one(ins: c.Instruction, pc: int) -> list:
    code, k = ins.code, ins.k & c.U32
    cls = code & 7
    if cls == c.LD:
        mode, size = code & 0xE0, code & 0x18
        if mode == c.ABS:
            fld = c.ancillary_field(k)
            if fld is not None:
                return _ancillary(fld, pc)
            return [I(e.LD | e.ABS | _SIZE[size], imm=k)]
        if mode == c.IND:
            return [I(e.LD | e.IND | _SIZE[size], 0, X, imm=k)]
        if mode == c.LEN:
            return [I(e.LDX | e.MEM | e.W, A, CTX, SKB["len"])]
        if mode == c.IMM:
            return [mov32(A, k)]
        if mode == c.MEM:
            return [I(e.LDX | e.MEM | e.W, A, FP, mem_off(k))]
    elif cls == c.LDX:
        mode = code & 0xE0
        if mode == c.LEN:
            return [I(e.LDX | e.MEM | e.W, X, CTX, SKB["len"])]
        if mode == c.IMM:
            return [mov32(X, k)]
        if mode == c.MEM:
            return [I(e.LDX | e.MEM | e.W, X, FP, mem_off(k))]
        if mode == c.MSH:
            return [I(e.ALU64 | e.MOV | e.X, TMP, A), I(e.LD | e.ABS | e.B, imm=k),
                    I(e.ALU | e.AND | e.K, A, imm=0xF), I(e.ALU | e.LSH | e.K, A, imm=2),
                    mov32_reg(X, A), mov32_reg(A, TMP)]
    elif cls == c.ST:
        return [I(e.STX | e.MEM | e.W, FP, A, mem_off(k))]
    elif cls == c.STX:
        return [I(e.STX | e.MEM | e.W, FP, X, mem_off(k))]
    elif cls == c.ALU:
        op = code & 0xF0
        if op == c.NEG:
            return [I(e.ALU | e.NEG, A)]
        if code & c.X:
            pre = []
            if op in (c.DIV, c.MOD):
                # classic BPF: division by zero ends the filter with 0
                pre = [I(e.JMP32 | e.JNE | e.K, X, 0, 2, 0), mov32(A, 0), I(e.JMP | e.EXIT)]
            return pre + [I(e.ALU | _ALU[op] | e.X, A, X)]
        return [I(e.ALU | _ALU[op] | e.K, A, imm=k)]
    elif cls == c.JMP:
        op = code & 0xF0
        if op == c.JA:
            return [_jump(pc + 1 + k)]
        src_x = bool(code & c.X)
        opcode = e.JMP32 | _JMP[op] | (e.X if src_x else e.K)
        t, f = pc + 1 + ins.jt, pc + 1 + ins.jf
        if t == f:
            return [_jump(t)]
        if t == pc + 1 and op in _INVERSE:   # fall through on true: test the opposite
            opcode = e.JMP32 | _INVERSE[op] | (e.X if src_x else e.K)
            t, f = f, t
        out = [("cond", opcode, A, X if src_x else 0, 0 if src_x else k, t)]
        if f != pc + 1:
            out.append(_jump(f))
        return out
    elif cls == c.RET:
        src = code & 0x18
        if src == c.K:
            return [mov32(A, k), I(e.JMP | e.EXIT)]
        if src == c.A:
            return [I(e.JMP | e.EXIT)]
        return [mov32_reg(A, X), I(e.JMP | e.EXIT)]
    elif cls == c.MISC:
        if code & 0xF8 == c.TAX:
            return [mov32_reg(X, A)]
        return [mov32_reg(A, X)]
    raise DecodeError(f"cannot translate classic opcode 0x{code:02x}", pc)


def _ancillary(fld: int, pc: int) -> list:
    if fld in ANC_FIELDS:
        name, swap = ANC_FIELDS[fld]
        out = [I(e.LDX | e.MEM | e.W, A, CTX, SKB[name])]
        if swap:
            out.append(I(e.ALU | e.END | e.X, A, imm=16))   # be16: network to host order
        return out
    if fld in ANC_HELPERS:
        # helpers clobber r1-r5 only; A (r0) receives the result, X (r7) survives
        return [I(e.JMP | e.CALL, imm=ANC_HELPERS[fld])]
    if fld == c.SKF_AD["alu_xor_x"]:
        return [I(e.ALU | e.XOR | e.X, A, X)]
    raise DecodeError(f"ancillary load '{c.ANCILLARY[fld][0]}' has no eBPF socket-filter "
                      "equivalent", pc)
