"""A clang-compiled program that guards a map value with bpf_spin_lock counts like the kernel
(the kernel needs the value's BTF to find the lock; pybpf's lock word is the same field)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pybpf.maps import create_map
from pybpf.vm import Interpreter

from .harness import one_cpu

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def program(tmp_path_factory):
    from pybpf.elf import load_object
    from pybpf.pytest_plugin import compile_c, find_clang

    if find_clang() is None:
        pytest.skip("clang is not installed")
    path = compile_c(HERE / "fixtures" / "spin_lock.c", tmp_path_factory.mktemp("obj"),
                     f"-I{HERE.parent / 'fixtures'}")
    return load_object(path).programs["count_locked"]


@pytest.mark.kernel
def test_spin_locked_counter_matches_the_kernel(program):
    from pybpf import kernel

    ours = create_map(program.maps[0])
    vm = Interpreter(program, maps=[ours], prog_type=program.prog_type)  # skb context
    packets = [bytes(n) for n in (60, 61, 64, 99, 100, 128, 129)]
    with one_cpu(), kernel.load_program(program) as kp:
        for packet in packets:
            assert vm.run(packet) & 0xFFFFFFFF == kp.test_run(packet).retval
        assert dict(ours.items()) == dict(kp.maps[0].items())
