"""Hostile inputs end in a verdict within the complexity limit: no hang, no RecursionError."""

from __future__ import annotations

import os
import sys
import time

import pytest

from pybpf import isa
from pybpf.asm import assemble
from pybpf.isa import Instruction as I
from pybpf.program import Program
from pybpf.verifier import verify


def test_a_program_over_the_size_limit_is_refused_before_the_walk():
    insns = [I(0xB7, 0, 0, 0, 0)] * 1_000_001 + [I(0x95)]
    t = time.perf_counter()
    result = verify(Program(insns))
    assert not result.accepted and result.error_id == "too-large"
    assert time.perf_counter() - t < 10


def test_a_long_straight_line_program_verifies():
    insns = [I(0xB7, 0, 0, 0, 0)] + [I(0x07, 0, 0, 0, 1)] * 50_000 + [I(0x95)]
    result = verify(Program(insns))
    assert result.accepted
    assert result.insns_processed == 50_002


def _explosion() -> str:
    # 24 diamonds, each giving r6 a different constant: 2^24 paths that never prune, as
    # the final comparison makes r6 precise (the kernel also runs into its limit)
    lines = ["r7 = *(u32 *)(r1 + 0)", "r6 = 0"]
    for i in range(24):
        lines += [f"if r7 & {1 << (i % 31)} goto a{i}", f"r6 += {i + 1}", f"goto b{i}",
                  f"a{i}:", f"r6 += {(i + 1) * 1000}", f"b{i}:"]
    lines += ["if r6 > 1000000000 goto out", "out:", "r0 = 0", "exit"]
    return "\n".join(lines)


def test_path_explosion_ends_at_the_complexity_limit_with_a_verdict(monkeypatch):
    # the limit is a parameter of the walk; a tenth of it keeps the test quick
    check_mod = sys.modules["pybpf.verifier.check"]
    monkeypatch.setattr(check_mod, "COMPLEXITY_LIMIT", 100_000)
    t = time.perf_counter()
    result = verify(assemble(_explosion()))
    assert not result.accepted and result.error_id == "too-complex"
    assert result.error == "BPF program is too large. Processed 100001 insn"
    assert time.perf_counter() - t < 30


@pytest.mark.skipif(not os.environ.get("PYBPF_SLOW"), reason="about a minute; PYBPF_SLOW=1")
def test_path_explosion_hits_the_real_one_million_limit():
    result = verify(assemble(_explosion()))
    assert result.error == "BPF program is too large. Processed 1000001 insn"


def test_deeply_nested_branches_do_not_recurse():
    # 3,000 nested forward branches on an unknown value: the pending-branch stack grows, the
    # walk stays iterative
    n = 3000
    lines = ["r7 = *(u32 *)(r1 + 0)", "r0 = 0"]
    lines += [f"if r7 == {i} goto end" for i in range(n)]
    lines += ["end:", "exit"]
    result = verify(assemble("\n".join(lines)))
    assert result.accepted


def test_an_infinite_loop_is_detected_quickly():
    result = verify(assemble("r0 = 0\nl:\nif r0 == 0 goto l\nexit"))
    assert not result.accepted and result.error_id == "infinite-loop"


def test_recursion_through_bpf_calls_stops_at_eight_frames():
    result = verify(assemble("call f\nexit\nf:\ncall f\nr0 = 0\nexit"))
    assert not result.accepted and result.error == "the call stack of 9 frames is too deep"
