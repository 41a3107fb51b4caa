"""Differential tests: the JIT against the interpreter (and the running kernel).

Hypothesis generates verifier-valid programs (:mod:`tests.strategies`, every ALU/JMP
operation, stack accesses of every width and sign, atomics) and seeds for random *unverified*
programs (:mod:`tests.jit.fuzz`). The JIT, checked and unchecked, must give the interpreter's
r0; for unverified programs it must give the same outcome -- r0 and the input data after the
run, or the same error class at the same instruction. Both engines of one comparison share one
:class:`pybpf.vm.Interpreter`'s memory, so pointers a program leaks into r0 or memory compare
equal too. The kernel comparison (marked ``kernel``) runs each program as a socket filter
through BPF_PROG_TEST_RUN, reading r0's high half with a second program (the kernel reports
32 bits).
"""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pybpf.errors import BPFError, BudgetExceeded
from pybpf.jit import JITProgram
from tests.strategies import describe, sketches

from .fuzz import random_program

SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
PACKET = bytes(range(14))


def outcome(engine, data: bytes):
    """What a run shows: r0 and the data afterwards, or the error class and pc."""
    try:
        r0 = engine.run(data)
    except BudgetExceeded:
        return ("budget",)   # the JIT tests its budget at loop heads, not every instruction
    except BPFError as exc:
        return (type(exc).__name__, exc.pc)
    return ("ok", r0, engine.vm.data_region.bytes() if hasattr(engine, "vm")
            else engine.data_region.bytes())


def compare(program, *, checked: bool, budget: int | None = None, data: bytes = PACKET):
    # checked: an unverified (sandboxed) program; unchecked: native code for a verified one
    jit = JITProgram(program, checked=checked, budget=budget, sandbox=checked)
    expected = outcome(jit.vm, data)        # the interpreter on the same memory
    got = outcome(jit, data)
    assert got == expected, f"JIT {got} != interpreter {expected} for:\n{describe(program)}"


@SETTINGS
@given(sketches(max_body=28), st.booleans())
def test_valid_programs_give_the_interpreters_r0_checked_and_unchecked(sketch, checked):
    compare(sketch.build(), checked=checked)


@SETTINGS
@given(sketches(branches=False, max_body=24))
def test_straight_line_programs_with_stack_and_atomics_agree_unchecked(sketch):
    compare(sketch.build(), checked=False)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32))
def test_unverified_programs_fail_like_the_interpreter_in_checked_mode(seed):
    compare(random_program(random.Random(seed)), checked=True, budget=3000,
            data=bytes(range(32)))


@pytest.mark.kernel
@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(sketches(max_body=24))
def test_valid_programs_give_the_kernels_r0(sketch):
    from pybpf import kernel

    low = kernel.test_run(sketch.build(), PACKET).retval
    high = kernel.test_run(sketch.with_high_half(), PACKET).retval
    jit_r0 = JITProgram(sketch.build(), checked=False).run(PACKET)
    assert jit_r0 == (high << 32) | low, describe(sketch.build())
