"""The interpreter's speed target (issue #2): <= 100 ns per executed instruction in pure
Python, i.e. the 300,003-instruction sum loop in <= 30 ms. Measured in CPU time of this
thread (best of several runs) so that other processes on a shared machine do not count."""

from __future__ import annotations

import sys
import time

import pytest

from pybpf import isa
from pybpf.program import Program
from pybpf.vm import Interpreter, translate

I = isa.Instruction


def sum_loop(n: int) -> Program:
    return Program([I(isa.ALU64 | isa.MOV, 0, imm=0), I(isa.ALU64 | isa.MOV, 1, imm=n),
                    I(isa.ALU64 | isa.X | isa.ADD, 0, 1), I(isa.ALU64 | isa.SUB, 1, imm=1),
                    I(isa.JMP | isa.JNE, 1, off=-3), I(isa.JMP | isa.EXIT)])


@pytest.mark.skipif(sys.gettrace() is not None, reason="a tracer (coverage, debugger) is active")
def test_the_sum_loop_of_300003_instructions_runs_within_30_ms():
    vm = Interpreter(sum_loop(100_000))
    assert vm.run() == 100_000 * 100_001 // 2
    assert vm.insn_count == 300_003
    best = min(_cpu_ns(vm) for _ in range(5))
    assert best <= 30_000_000, f"{best / 1e6:.1f} ms ({best / 300_003:.0f} ns/insn)"


def _cpu_ns(vm: Interpreter) -> int:
    start = time.thread_time_ns()
    vm.run()
    return time.thread_time_ns() - start


def test_translation_is_done_once_per_bytecode(monkeypatch):
    program = sum_loop(10)
    Interpreter(program).run()

    def fail(*args, **kwargs):
        raise AssertionError("translated again")

    monkeypatch.setattr(translate, "program_source", fail)
    assert Interpreter(sum_loop(10)).run() == 55
