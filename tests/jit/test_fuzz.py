"""Fuzzing: thousands of random unverified programs through the JIT in checked mode.

Every program either returns or raises a :mod:`pybpf.errors` exception -- never a crash of the
process, never another exception -- and does what the interpreter does on the same memory
(outcome, r0, the input data afterwards, the faulting pc). The programs are compiled a few
hundred to an LLVM module without optimisation (``opt=0``), so thousands take seconds; a
smaller set goes through the optimiser too, since LLVM must not turn a checked access into
something unchecked.
"""

from __future__ import annotations

import random

import pytest

from pybpf.errors import BPFError
from pybpf.jit import compile_many

from .fuzz import random_program
from .test_differential import outcome

DATA = bytes(range(48))


def _fuzz(seed: int, count: int, opt: int) -> dict[str, int]:
    rng = random.Random(seed)
    programs = [random_program(rng) for _ in range(count)]
    kinds: dict[str, int] = {}
    mismatches = []
    for jit, program in zip(compile_many(programs, budget=2000, opt=opt, sandbox=True), programs):
        expected = outcome(jit.vm, DATA)
        try:
            got = outcome(jit, DATA)
        except BaseException as exc:    # outcome() lets only pybpf errors through
            pytest.fail(f"{type(exc).__name__} escaped the JIT: {exc}")
        kinds[got[0]] = kinds.get(got[0], 0) + 1
        if got != expected:
            mismatches.append((got, expected, program))
    assert not mismatches, mismatches[:3]
    return kinds


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_random_unverified_programs_only_raise_pybpf_errors_and_match_the_interpreter(seed):
    kinds = _fuzz(seed, 250, opt=0)
    # the generator must exercise both ends: programs that run and programs that fault
    assert kinds.get("ok", 0) > 20 and kinds.get("VMError", 0) > 20, kinds


def test_optimised_random_programs_keep_their_checks():
    _fuzz(99, 60, opt=2)


def test_the_process_is_healthy_after_the_faults():
    from pybpf.jit import JITProgram
    from pybpf.program import Program

    ok = JITProgram(Program.from_bytes(bytes.fromhex("b7000000070000009500000000000000")), sandbox=True)
    assert ok.run() == 7
    assert isinstance(BPFError(), Exception)
