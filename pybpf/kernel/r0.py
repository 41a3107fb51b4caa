"""The whole 64-bit r0 of a kernel test run.

BPF_PROG_TEST_RUN reports only the low 32 bits of r0. To see all of it in *one* run (so map
side effects happen once), the program is rewritten before loading: every ``exit`` of the main
program (not of bpf-to-bpf subprograms, whose r0 is a return value) first stores r0 into an
extra one-element array map::

    r1 = <r0 map value> ll      ; PSEUDO_MAP_IDX_VALUE, r1 is dead at exit
    *(u64 *)(r1 + 0) = r0
    exit

Jump offsets, local calls, callback addresses (PSEUDO_FUNC), func_info and line_info are moved
to the new slot numbers. The verifier sees an ordinary store to a map value, so any program
type that may use maps accepts it.
"""

from __future__ import annotations

import dataclasses

from .. import isa
from ..program import MapSpec, Program

R0_MAP = "pybpf_r0"


def _subprogram_starts(insns: list[isa.Instruction], starts: list[int]) -> set[int]:
    out = set()
    for pc, insn in zip(starts, insns):
        if insn.opcode == isa.JMP | isa.CALL and insn.src == isa.CALL_LOCAL:
            out.add(pc + 1 + insn.imm)
        elif insn.opcode == isa.LDDW and insn.src == isa.PSEUDO_FUNC:
            out.add(pc + 1 + insn.imm)
    return out


def capture_r0(program: Program) -> Program:
    """A copy of ``program`` that leaves its final r0 in an extra map (the last of its maps)."""
    insns = list(program.insns)
    starts = isa.slot_starts(insns)
    total = starts[-1] + insns[-1].slots if insns else 0
    subs = _subprogram_starts(insns, starts)
    main_end = min(subs) if subs else total
    index = len(program.maps)
    store = [isa.Instruction(isa.LDDW, 1, isa.PSEUDO_MAP_IDX_VALUE, 0, index, 0),
             isa.Instruction(isa.STX | isa.MEM | isa.DW, 1, 0, 0, 0)]
    extra = sum(i.slots for i in store)
    # old slot -> new slot (each main-program exit grows by the store in front of it)
    moved: dict[int, int] = {}
    shift = 0
    for pc, insn in zip(starts, insns):
        moved[pc] = pc + shift
        if insn.opcode == isa.JMP | isa.EXIT and pc < main_end:
            shift += extra
    moved[total] = total + shift

    def retarget(pc: int, target: int) -> int:
        return moved[target] - moved[pc] - 1

    out: list[isa.Instruction] = []
    for pc, insn in zip(starts, insns):
        if insn.opcode == isa.JMP | isa.EXIT and pc < main_end:
            out.extend(store)
            out.append(insn)
            continue
        new_pc = moved[pc]
        if insn.is_jump:
            target = insn.jump_target(pc)
            if insn.opcode == isa.JMP32 | isa.JA:
                insn = dataclasses.replace(insn, imm=moved[target] - new_pc - 1)
            else:
                insn = dataclasses.replace(insn, off=moved[target] - new_pc - 1)
        elif (insn.opcode == isa.JMP | isa.CALL and insn.src == isa.CALL_LOCAL) or \
                (insn.opcode == isa.LDDW and insn.src == isa.PSEUDO_FUNC):
            insn = dataclasses.replace(insn, imm=moved[pc + 1 + insn.imm] - new_pc - 1)
        out.append(insn)
    del retarget
    return dataclasses.replace(
        program, insns=out,
        maps=list(program.maps) + [MapSpec(R0_MAP, "array", 4, 8, 1)],
        func_info=[(moved.get(slot, slot), tid) for slot, tid in program.func_info],
        line_info=[(moved.get(rec[0], rec[0]), *rec[1:]) for rec in program.line_info],
        lines={moved.get(k, k): v for k, v in program.lines.items()},
        labels={moved.get(k, k): v for k, v in program.labels.items()},
        map_refs=list(program.map_refs))
