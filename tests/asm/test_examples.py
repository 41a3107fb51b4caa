"""The bundled examples assemble and do what their comments say, on the running kernel."""

from __future__ import annotations

from pathlib import Path

import pytest

from pybpf.asm import assemble

EXAMPLES = Path(__file__).resolve().parents[2] / "pybpf" / "examples"


def _example(name: str):
    path = EXAMPLES / name
    return assemble(path.read_text(), str(path))


@pytest.mark.kernel
def test_sum_example_returns_the_sum_of_1_to_100_in_the_kernel():
    from pybpf import kernel
    assert kernel.test_run(_example("sum.s"), data=bytes(16)).retval == sum(range(1, 101))


@pytest.mark.kernel
def test_counter_example_counts_runs_in_its_map_in_the_kernel():
    from pybpf import kernel
    program = _example("counter.s")
    assert [m.name for m in program.maps] == ["counters"]
    with kernel.load_program(program) as loaded:
        assert [loaded.test_run(bytes(16)).retval for _ in range(3)] == [1, 2, 3]


def test_sum_example_runs_in_the_interpreter():
    vm = pytest.importorskip("pybpf.vm")
    assert vm.Interpreter(_example("sum.s")).run(b"") == sum(range(1, 101))
