"""bpf_for_each_map_elem from a C program compiled by clang: the callback sees every element
(keys and values it may modify), its return value stops the walk, and the helper returns the
number of elements visited -- as in the kernel."""

from __future__ import annotations

from pathlib import Path

import pytest

from pybpf.maps import create_map
from pybpf.vm import Interpreter

from .harness import one_cpu

HERE = Path(__file__).resolve().parent
FIXTURES = HERE.parent / "fixtures"


@pytest.fixture(scope="module")
def obj(tmp_path_factory):
    from pybpf.elf import load_object
    from pybpf.pytest_plugin import compile_c, find_clang

    if find_clang() is None:
        pytest.skip("clang is not installed")
    path = compile_c(HERE / "fixtures" / "for_each.c", tmp_path_factory.mktemp("obj"),
                     f"-I{FIXTURES}")
    return load_object(path)


@pytest.mark.kernel
@pytest.mark.parametrize("name, map_name", [("sum_hash", "h"), ("sum_array", "a")])
def test_for_each_map_elem_visits_and_updates_like_the_kernel(obj, name, map_name):
    from pybpf import kernel

    program = obj.programs[name]
    spec = program.maps[[m.name for m in program.maps].index(map_name)]
    ours = {m.name: create_map(m) for m in program.maps}
    with one_cpu():
        kmaps = {m.name: kernel.KernelMap.create(m) for m in program.maps}
        try:
            for i in range(1, 7):
                for m in (ours[map_name], kmaps[map_name]):
                    m.update(i, i * 10)
            with kernel.load_program(program, maps=[kmaps[m.name] for m in program.maps]) as kp:
                vm = Interpreter(program, maps=[ours[m.name] for m in program.maps])
                for _ in range(3):
                    assert vm.run(bytes(50)) & 0xFFFFFFFF == kp.test_run(bytes(64)).retval
            assert dict(ours[spec.name].items()) == dict(kmaps[spec.name].items())
        finally:
            for km in kmaps.values():
                km.close()
