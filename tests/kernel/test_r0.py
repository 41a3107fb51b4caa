"""The full 64-bit r0 from one kernel run: the rewritten program (exits store r0 to a map)
must agree with the two-run method (low half, then ``r0 >>= 32``) on generated programs, and
keep subprograms, callbacks and line info working on compiled objects."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from pybpf import isa, kernel
from pybpf.kernel.r0 import capture_r0
from pybpf.program import Program
from tests.strategies import sketches

pytestmark = pytest.mark.kernel
PACKET = bytes(14)
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sketches(max_body=24))
def test_one_run_gives_the_r0_two_runs_give(sketch):
    program = sketch.build()
    low = kernel.test_run(program, PACKET).retval
    high = kernel.test_run(sketch.with_high_half(), PACKET).retval
    result = kernel.test_run(program, PACKET, capture_r0=True)
    assert result.r0 == (high << 32) | low and result.retval == low


def test_the_rewrite_moves_jumps_over_the_inserted_stores():
    I = isa.Instruction
    prog = Program([
        I.lddw(0, 0x1_0000_0002),
        I(isa.JMP | isa.JEQ | isa.K, 1, 0, 1, 0),     # r1 (ctx) != 0: fall through
        I(isa.JMP | isa.EXIT),
        I(isa.ALU64 | isa.ADD | isa.K, 0, 0, 0, 5),
        I(isa.JMP | isa.EXIT),
    ])
    rewritten = capture_r0(prog)
    assert sum(i.opcode == isa.JMP | isa.EXIT for i in rewritten.insns) == 2
    assert len(rewritten.maps) == 1
    assert kernel.test_run(prog, PACKET, capture_r0=True).r0 == 0x1_0000_0002


@pytest.mark.parametrize("name, function", [("bpf2bpf", "xdp_checksum"),
                                            ("loops", "sum_bpf_loop"),
                                            ("tail_call", "dispatch")])
def test_objects_with_subprograms_and_callbacks_keep_their_results(tmp_path, name, function):
    from pybpf.elf import load_object
    from pybpf.pytest_plugin import compile_c, find_clang

    if find_clang() is None:
        pytest.skip("clang is not installed")
    program = load_object(str(compile_c(FIXTURES / f"{name}.c", tmp_path))).program(function)
    packet = bytes(12) + b"\x08\x00" + bytes(range(50))
    with kernel.load_program(program) as plain, \
            kernel.load_program(program, capture_r0=True) as captured:
        want = plain.test_run(packet).retval
        got = captured.test_run(packet)
    assert got.retval == want and got.r0 & 0xFFFFFFFF == want
