"""Differential tests: the interpreter and the running kernel agree on generated programs.

Hypothesis generates programs the verifier accepts (see :mod:`tests.strategies`): ALU and ALU64
with every operation (division and modulo by zero registers, signed division, shifts, byte
swaps, sign-extending moves), JMP and JMP32 with every condition in nested forward branches,
stack loads and stores of every width and sign, every atomic operation in 32 and 64 bits, and
bpf-to-bpf calls into subprograms with their own stack frames.
Each program runs in :class:`pybpf.vm.Interpreter` and in the kernel as a socket filter
(BPF_PROG_TEST_RUN). The kernel reports only the low 32 bits of r0, so each program also runs
with ``r0 >>= 32`` before ``exit`` and both halves must match the interpreter's 64-bit r0.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings

from pybpf import kernel
from pybpf.errors import KernelError
from tests.strategies import Sketch, describe, sketches

pytestmark = pytest.mark.kernel

vm_module = pytest.importorskip("pybpf.vm")
Interpreter = vm_module.Interpreter

#: every skb test run needs an Ethernet header's worth of data; the programs ignore it
PACKET = bytes(14)
#: examples per test; PYBPF_DIFF_EXAMPLES=2000 for a deep run
SETTINGS = settings(max_examples=int(os.environ.get("PYBPF_DIFF_EXAMPLES", "60")), deadline=None, derandomize=False,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def check_against_kernel(sketch: Sketch) -> None:
    low_prog = sketch.build()
    high_prog = sketch.with_high_half()
    vm_r0 = Interpreter(low_prog).run(PACKET)
    try:
        low = kernel.test_run(low_prog, PACKET).retval
        high = kernel.test_run(high_prog, PACKET).retval
    except KernelError as exc:  # the generator promises verifier-valid programs
        pytest.fail(f"the kernel rejected a generated program ({exc}):\n{describe(low_prog)}"
                    f"\n{exc.log}")
    kernel_r0 = (high << 32) | low
    assert vm_r0 == kernel_r0, (
        f"interpreter r0 = {vm_r0:#018x}, kernel r0 = {kernel_r0:#018x} for:\n"
        f"{describe(low_prog)}")


@SETTINGS
@given(sketches(branches=False, memory=False, atomics=False, max_body=16))
def test_straight_line_alu_programs_give_the_kernels_r0(sketch):
    check_against_kernel(sketch)


@SETTINGS
@given(sketches(branches=False, max_body=20))
def test_straight_line_programs_with_stack_and_atomics_give_the_kernels_r0(sketch):
    check_against_kernel(sketch)


@SETTINGS
@given(sketches(max_body=28))
def test_branching_programs_give_the_kernels_r0(sketch):
    check_against_kernel(sketch)


@SETTINGS
@given(sketches(max_body=20, calls=2))
def test_programs_with_bpf_to_bpf_calls_give_the_kernels_r0(sketch):
    check_against_kernel(sketch)
