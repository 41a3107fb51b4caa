"""``may_goto`` (BPF_JMP | BPF_JCOND, opcode 0xe5): pybpf verifies it as Linux 6.18 does.

The walk takes the jump at once and explores the fall-through (one more iteration) later, one
level deeper, with the imprecise scalars that changed since the previous visit widened; a
visit contained in one at another depth still being explored ends the loop. pybpf's assembler
has no ``may_goto`` mnemonic, so the programs are written with ``goto`` placeholders that are
turned into 0xe5 instructions. Every verdict and processed-instruction count is the
kernel's.
"""

from __future__ import annotations

import re

import pytest

from pybpf.asm import assemble
from pybpf.isa import Instruction
from pybpf.verifier import verify

from .oracle import kernel_verdict

MAY_GOTO = 0xE5


def may_goto_program(text: str):
    """Assemble ``text``; every ``may_goto LABEL`` line becomes a 0xe5 instruction."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    program = assemble("\n".join("goto " + line.split()[1] if line.startswith("may_goto")
                                 else line for line in lines))
    insn_lines = [line for line in lines if not line.endswith(":")]
    marks = {i for i, line in enumerate(insn_lines) if line.startswith("may_goto")}
    program.insns = [Instruction(MAY_GOTO, 0, 0, insn.off, 0) if i in marks else insn
                     for i, insn in enumerate(program.insns)]
    program.prog_type = "socket_filter"
    return program


PROGRAMS = {
    "counter nothing depends on": """
        r0 = 0
        r1 = 0
    loop:
        may_goto out
        r1 += 1
        r0 += 2
        goto loop
    out:
        r0 = 0
        exit
    """,
    "bounded stack index": """
        r6 = 0
    loop:
        may_goto out
        if r6 > 7 goto out
        r2 = r10
        r2 += -64
        r2 += r6
        r1 = 1
        *(u8 *)(r2 + 0) = r1
        r6 += 1
        goto loop
    out:
        r0 = 0
        exit
    """,
    "unbounded stack index": """
        r6 = 0
    loop:
        may_goto out
        r2 = r10
        r2 += -64
        r2 += r6
        r1 = 1
        *(u8 *)(r2 + 0) = r1
        r6 += 1
        goto loop
    out:
        r0 = 0
        exit
    """,
    "precise counter with a bound": """
        r6 = 0
        r7 = 0
    loop:
        may_goto out
        r7 += 3
        r6 += 1
        if r6 < 300 goto loop
    out:
        r0 = r7
        exit
    """,
    "may_goto in a packet loop": """
        r6 = *(u32 *)(r1 + 0)
        r0 = 0
    loop:
        may_goto out
        if r6 == 0 goto out
        r6 -= 1
        r0 += 1
        goto loop
    out:
        r0 = 0
        exit
    """,
}


def _processed(log: str) -> int | None:
    m = re.search(r"processed (\d+) insns", log)
    return int(m.group(1)) if m else None


@pytest.mark.kernel
@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_may_goto_program_gets_the_kernels_verdict_and_count(name):
    program = may_goto_program(PROGRAMS[name])
    ours = verify(program, prog_type="socket_filter")
    kernel = kernel_verdict(program, "socket_filter")
    assert ours.accepted == kernel.accepted, (ours.error, kernel.log[-500:])
    assert ours.insns_processed == _processed(kernel.log)
    if not kernel.accepted:
        assert ours.error in kernel.log


@pytest.mark.kernel
def test_a_may_goto_with_an_immediate_is_refused_like_the_kernel():
    program = may_goto_program(PROGRAMS["counter nothing depends on"])
    bad = program.insns[2]
    program.insns[2] = Instruction(MAY_GOTO, 0, 0, bad.off, 1)
    ours = verify(program, prog_type="socket_filter")
    kernel = kernel_verdict(program, "socket_filter")
    assert not ours.accepted and not kernel.accepted
    assert ours.error in kernel.log, (ours.error, kernel.log[-300:])


def test_the_widened_counter_converges_in_a_few_visits():
    """Without widening the counter would be explored until the complexity limit."""
    result = verify(may_goto_program(PROGRAMS["counter nothing depends on"]))
    assert result.accepted and result.insns_processed < 100
