"""Stack-slot liveness in state pruning: pybpf ignores dead stack slots as Linux 6.18 does.

Two loops the kernel verifies in a few thousand (ring buffer) or tens of thousands (hash-map
churn) of instructions took pybpf to the 1,000,000 limit while it compared every stack slot
(or required the same reference ids): both must now be accepted, as the kernel accepts them,
in the kernel's number of processed instructions (which also needs the kernel's eviction
of in-progress states that keep missing). The other programs join two paths
that differ only in a stack slot that *looks* dead at the join but is read later -- directly,
through a pointer kept in a register or spilled to the stack, by a callee through a pointer to
the caller's frame: pruning there would accept a dereference of a scalar the kernel rejects.
Every verdict is the kernel's, through bpf(2).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pybpf.asm import assemble
from pybpf.verifier import verify
from pybpf.verifier.cfg import build_layout
from pybpf.verifier.stacklive import ALL

from .oracle import kernel_verdict

ROOT = Path(__file__).resolve().parents[2]


def _summary(log: str) -> int:
    line = [x for x in log.splitlines() if x.startswith("processed ")][-1]
    return int(line.split()[1])


def _churn():
    sys.path.insert(0, str(ROOT))
    from tests.jit.test_hash_lookup import churn
    return churn(8)


def _ringbuf():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import jit
    return jit.program("ringbuf_events")


LOOPS = {"hash-map churn (paths differ in a dead spilled value)": (_churn, "socket_filter"),
         "ring buffer records reserved and submitted per iteration": (_ringbuf, "sched_cls")}


@pytest.mark.kernel
@pytest.mark.parametrize("name", list(LOOPS))
def test_loops_the_kernel_prunes_with_dead_slots_are_accepted_in_the_kernels_count(name):
    build, ptype = LOOPS[name]
    program = build()
    ours = verify(program, prog_type=ptype, log_level=1)
    theirs = kernel_verdict(program, ptype)
    assert theirs.accepted and ours.accepted, ours.log[-400:]
    assert _summary(ours.log) == _summary(theirs.log)


@pytest.mark.parametrize("name", list(LOOPS))
@pytest.mark.parametrize("data_size", [0, 64])
def test_loops_verify_as_raw_programs_too(name, data_size):
    program = LOOPS[name][0]()
    result = verify(program, prog_type="raw", data_size=data_size)
    assert result.accepted, result.log[-400:]


#: path 1 (explored first) keeps the ctx pointer at fp-8, path 2 a scalar; after the join the
#: slot is read in the way ``{read}`` shows and dereferenced: the kernel rejects path 2
JOIN = """
{maps}
    r6 = r1
    call bpf_get_prandom_u32
    r7 = r10
    r7 += -8
{pre}
    if r0 > 5 goto bad
    *(u64 *)(r10 - 8) = r6
    goto join
bad:
    r1 = 0
    *(u64 *)(r10 - 8) = r1
join:
{read}
"""

READS = {
    "a fill of the slot": """
    r1 = *(u64 *)(r10 - 8)
    r0 = *(u32 *)(r1 + 0)
    r0 = 0
    exit""",
    "a load through a register holding fp-8": """
    r1 = *(u64 *)(r7 + 0)
    r0 = *(u32 *)(r1 + 0)
    r0 = 0
    exit""",
    "a load through fp-8 spilled to the stack and filled": """
    *(u64 *)(r10 - 16) = r7
---
    r2 = *(u64 *)(r10 - 16)
    r1 = *(u64 *)(r2 + 0)
    r0 = *(u32 *)(r1 + 0)
    r0 = 0
    exit""",
    "a callee given a pointer to another slot of the frame": """
    r1 = r10
    r1 += -16
    call sub
    r0 = 0
    exit
sub:
    r1 = *(u64 *)(r1 + 8)
    r0 = *(u32 *)(r1 + 0)
    r0 = 0
    exit""",
    "a load at a variable offset covering the slot": """
    r2 = *(u32 *)(r6 + 0)
    r2 &= 8
    r1 = r10
    r1 += -16
    r1 += r2
    r1 = *(u64 *)(r1 + 0)
    r0 = *(u32 *)(r1 + 0)
    r0 = 0
    exit""",
    "an overwrite before any read (the slot is dead: accepted)": """
    *(u64 *)(r10 - 8) = r6
    r1 = *(u64 *)(r10 - 8)
    r0 = *(u32 *)(r1 + 0)
    r0 = 0
    exit""",
    "a four-byte overwrite, then a fill": """
    r1 = 0
    *(u32 *)(r10 - 8) = r1
    r1 = *(u64 *)(r10 - 8)
    r0 = *(u32 *)(r1 + 0)
    r0 = 0
    exit""",
}


def _join_program(read: str, maps: str = ""):
    pre, _, read = read.rpartition("---")
    return assemble(JOIN.format(maps=maps, pre=pre, read=read))


@pytest.mark.kernel
@pytest.mark.parametrize("name", list(READS))
def test_a_slot_read_after_the_join_keeps_the_paths_apart_as_in_the_kernel(name):
    program = _join_program(READS[name])
    program.prog_type = "socket_filter"
    ours = verify(program, prog_type="socket_filter", log_level=1)
    theirs = kernel_verdict(program, "socket_filter")
    assert ours.accepted == theirs.accepted, (ours.log[-600:], theirs.log[-600:])
    if theirs.accepted:
        assert _summary(ours.log) == _summary(theirs.log), (ours.log, theirs.log)


def _live_at_join(read: str, maps: str = "") -> int:
    program = _join_program(read, maps)
    layout = build_layout(program.insns)
    join = program.labels and {v: k for k, v in program.labels.items()}["join"]
    return layout.stack_live[join]


def test_a_helper_reading_from_a_stack_pointer_keeps_every_slot_above_it_live():
    live = _live_at_join("""
    r1 = h ll
    r2 = r10
    r2 += -16
    call bpf_map_lookup_elem
    r0 = 0
    exit""", ".map h hash key=16 value=8 max_entries=4")
    assert live & 0b11 == 0b11


def test_an_escaped_frame_address_makes_every_load_read_every_slot():
    live = _live_at_join("""
    *(u64 *)(r10 - 16) = r7
---
    r2 = *(u64 *)(r10 - 16)
    r0 = *(u64 *)(r2 + 0)
    exit""")
    # fp-8 was spilled at fp-16 before the join: the filled pointer may point anywhere in
    # the frame, so the load through it reads every slot
    assert live == ALL


def test_slots_written_before_any_read_are_dead():
    live = _live_at_join("""
    r1 = 0
    *(u64 *)(r10 - 8) = r1
    *(u64 *)(r10 - 16) = r1
    r0 = *(u64 *)(r10 - 8)
    exit""")
    assert live & 0b11 == 0
