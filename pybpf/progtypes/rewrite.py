"""Load-time context rewriting, the way the kernel's ``convert_ctx_accesses`` does it.

The kernel knows from the verifier which instructions access the context, checks each access
against the type's rules (``*_is_valid_access``) and rewrites it into an access of the real
kernel object: the 32-bit ``ctx->data`` load of ``xdp_md`` becomes a 64-bit load of
``xdp_buff->data``. pybpf has no verifier pass at load time, so a small forward data-flow
analysis finds the registers (and 8-byte stack spills) that may hold the context pointer:
r1 at the entry of the main program, copies of it, its spills and reloads, and the arguments
of bpf-to-bpf calls that receive it. Each memory access through such a register is checked and
pointer-field loads are redirected to the context's 64-bit slots (:mod:`.base`).
"""

from __future__ import annotations

import dataclasses

from .. import isa
from ..errors import VMError
from ..program import Program
from .base import ProgType

State = tuple[frozenset[int], frozenset[int]]   # ctx registers, ctx stack slots (r10 offsets)
_EMPTY: State = (frozenset(), frozenset())
_CALLER_SAVED = frozenset(range(0, 6))


def _slots(insns: list[isa.Instruction]) -> list[isa.Instruction | None]:
    code: list[isa.Instruction | None] = []
    for insn in insns:
        code.append(insn)
        if insn.slots == 2:
            code.append(None)
    return code


def _transfer(insn: isa.Instruction, state: State) -> State:
    regs, stack = state
    cls, op = insn.cls, insn.opcode
    if cls == isa.ALU64 and op == isa.ALU64 | isa.MOV | isa.X and insn.off == 0:
        return (regs | {insn.dst} if insn.src in regs else regs - {insn.dst}), stack
    if cls in (isa.ALU, isa.ALU64) or op == isa.LDDW:
        return regs - {insn.dst}, stack
    if cls == isa.LD:   # legacy packet loads scratch r0-r5
        return regs - _CALLER_SAVED, stack
    if cls == isa.LDX:
        if insn.src == isa.FRAME_POINTER and op & 0x18 == isa.DW and insn.off in stack:
            return regs | {insn.dst}, stack
        return regs - {insn.dst}, stack
    if cls in (isa.ST, isa.STX) and insn.dst == isa.FRAME_POINTER:
        if cls == isa.STX and op & 0xE0 == isa.MEM and op & 0x18 == isa.DW and insn.src in regs:
            return regs, stack | {insn.off}
        return regs, stack - {insn.off}
    if cls == isa.STX and op & 0xE0 == isa.ATOMIC:
        if insn.imm == isa.ATOMIC_CMPXCHG:
            return regs - {0}, stack
        if insn.imm & isa.ATOMIC_FETCH:
            return regs - {insn.src}, stack
    if cls in (isa.JMP, isa.JMP32) and op & 0xF0 == isa.CALL:
        return regs - _CALLER_SAVED, stack
    return state


def _successors(code: list, pc: int) -> list[int]:
    insn = code[pc]
    nxt = pc + insn.slots
    op = insn.opcode & 0xF0
    if insn.cls in (isa.JMP, isa.JMP32):
        if op == isa.EXIT:
            return []
        if op == isa.CALL:
            return [nxt]
        target = insn.jump_target(pc)
        if op == isa.JA:
            return [target]
        return [nxt, target]
    return [nxt]


def ctx_registers(code: list[isa.Instruction | None]) -> list[State | None]:
    """For each slot, the registers and stack slots that may hold the context pointer."""
    states: list[State | None] = [None] * len(code)
    work = [0]
    states[0] = (frozenset({1}), frozenset())
    while work:
        pc = work.pop()
        state = states[pc]
        insn = code[pc]
        if insn is None or state is None:
            continue
        out = _transfer(insn, state)
        targets = [(s, out) for s in _successors(code, pc)]
        if insn.opcode == isa.JMP | isa.CALL and insn.src == isa.CALL_LOCAL:
            entry = pc + 1 + insn.imm
            targets.append((entry, (state[0] & frozenset(range(1, 6)), frozenset())))
        for succ, new in targets:
            if not 0 <= succ < len(code) or code[succ] is None:
                continue
            old = states[succ]
            merged = new if old is None else (old[0] | new[0], old[1] | new[1])
            if merged != old:
                states[succ] = merged
                work.append(succ)
    return states


def _access(insn: isa.Instruction) -> tuple[int, bool] | None:
    """(base register, is_write) of a memory access, None for other instructions."""
    cls, mode = insn.cls, insn.opcode & 0xE0
    if cls == isa.LDX and mode in (isa.MEM, isa.MEMSX):
        return insn.src, False
    if cls == isa.ST and mode == isa.MEM:
        return insn.dst, True
    if cls == isa.STX and mode in (isa.MEM, isa.ATOMIC):
        return insn.dst, True
    return None


def rewrite_context_accesses(program: Program, prog_type: ProgType) -> Program:
    """A copy of ``program`` whose context accesses are checked and rewritten for pybpf's real
    context; raises :class:`VMError` naming the instruction for an access the type forbids."""
    code = _slots(program.insns)
    states = ctx_registers(code)
    out: list[isa.Instruction] = []
    for pc, insn in enumerate(code):
        if insn is None:
            continue
        state = states[pc]
        access = _access(insn)
        if state is not None and access is not None and access[0] in state[0]:
            base, write = access
            size = isa.SIZE_BYTES[insn.opcode & 0x18]
            if insn.cls == isa.STX and insn.opcode & 0xE0 == isa.ATOMIC:
                raise VMError(f"atomic operation on the {prog_type.ctx_name} context is not "
                              "allowed", pc=pc)
            if insn.opcode & 0xE0 == isa.MEMSX:
                raise VMError(f"sign-extending load from the {prog_type.ctx_name} context is "
                              "not allowed", pc=pc)
            why = prog_type.check_access(insn.off, size, write)
            if why is not None:
                raise VMError(f"invalid {prog_type.name} context access: {why}", pc=pc)
            slot = prog_type.pointer_slots.get(insn.off)
            if slot is not None and not write:
                insn = dataclasses.replace(insn, opcode=isa.LDX | isa.MEM | isa.DW, off=slot)
        out.append(insn)
    return dataclasses.replace(program, insns=out)
