"""Hypothesis strategies for single valid instructions, built from :data:`pybpf.isa.OPCODES`.

``instructions(objdump_exact=True)`` keeps to encodings whose llvm-objdump text is complete
(no bpf-to-bpf or kfunc calls, no indirect packet load with an immediate, no ``ld_pseudo`` with
a high half, ``gotol`` within llvm-mc's 16-bit literal range), so the text can be compared with
llvm-objdump and fed to llvm-mc. Without it every encoding pybpf's own round trip must keep is
drawn.
"""

from __future__ import annotations

from hypothesis import strategies as st

from pybpf import isa

OPCODES = sorted(isa.OPCODES)
INT16 = st.integers(-(1 << 15), (1 << 15) - 1)
INT32 = st.one_of(st.integers(-(1 << 31), (1 << 31) - 1),
                  st.sampled_from([0, 1, -1, 0x7FFF_FFFF, -(1 << 31), 8, 16, 32, 64]))
REG = st.integers(0, 10)


@st.composite
def instructions(draw, objdump_exact: bool = False) -> isa.Instruction:
    opcode = draw(st.sampled_from(OPCODES))
    info = isa.OPCODES[opcode]
    uses = info.uses
    dst = draw(REG) if "dst" in uses else 0
    if info.srcs is not None:
        srcs = sorted(info.srcs)
        if opcode == isa.JMP | isa.CALL:
            srcs = [isa.CALL_HELPER]  # local and kfunc calls: see programs_with_local_calls
        src = draw(st.sampled_from(srcs))
    else:
        src = draw(REG) if "src" in uses else 0
    if info.offs is not None and info.offs != {0}:
        off = draw(st.sampled_from(sorted(info.offs)))
    else:
        off = draw(INT16) if "off" in uses and info.offs is None else 0
    if info.imms is not None:
        imm = draw(st.sampled_from(sorted(info.imms)))
    else:
        imm = draw(INT32) if "imm" in uses else 0
    imm_hi = None
    if opcode == isa.LDDW:
        imm_hi = 0 if (objdump_exact and src) else draw(INT32)
    if objdump_exact:
        if opcode & ~0x18 == isa.LD | isa.IND:  # indirect packet load of any size
            imm = 0
        if opcode == isa.JMP32 | isa.JA:
            imm = draw(INT16)
    insn = isa.Instruction(opcode, dst, src, off, imm, imm_hi)
    isa.validate(insn)
    return insn


def programs(objdump_exact: bool = False, max_size: int = 40):
    return st.lists(instructions(objdump_exact), min_size=1, max_size=max_size)


@st.composite
def programs_with_local_calls(draw) -> list[isa.Instruction]:
    """A body plus bpf-to-bpf calls whose targets are instruction starts."""
    body = draw(programs(max_size=20))
    starts = isa.slot_starts(body)
    calls = draw(st.lists(st.sampled_from(range(len(body))), max_size=3))
    out = list(body)
    for index in calls:
        out.append(isa.Instruction(isa.JMP | isa.CALL, src=isa.CALL_LOCAL))
    # resolve each appended call to its chosen target now that positions are known
    starts = isa.slot_starts(out)
    for k, index in enumerate(calls):
        pos = len(body) + k
        out[pos] = isa.Instruction(isa.JMP | isa.CALL, src=isa.CALL_LOCAL,
                                   imm=starts[index] - (starts[pos] + 1))
    return out
