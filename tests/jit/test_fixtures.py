"""Every program of every C fixture (tests/fixtures/*.c, compiled by clang) under both
engines: the JIT must give the interpreter's r0, packet and map contents, with the program's
own type (its context built as BPF_PROG_TEST_RUN builds it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pybpf.errors import BPFError
from pybpf.jit import JITProgram
from pybpf.vm import Interpreter

FIXTURES_DIR = Path(__file__).resolve().parent.parent / "fixtures"
FIXTURES = sorted(p.stem for p in FIXTURES_DIR.glob("*.c"))
#: Ethernet + IPv4/TCP header + payload
PACKET = (bytes.fromhex("ffffffffffff0011223344550800")
          + bytes.fromhex("4500003c1c4640004006b1e6c0a80001c0a800c7") + bytes(range(40)))


@pytest.fixture(scope="module")
def objects(tmp_path_factory):
    from pybpf.pytest_plugin import compile_c, find_clang

    if find_clang() is None:
        pytest.skip("clang is not installed")
    out = tmp_path_factory.mktemp("jit-fixtures")
    return {name: compile_c(FIXTURES_DIR / f"{name}.c", out) for name in FIXTURES}


def observe(make) -> tuple:
    try:
        engine = make()
        r0 = engine.run(PACKET)
    except BPFError as exc:
        return (type(exc).__name__, str(exc))
    maps = [sorted(map(repr, m.items())) if hasattr(m, "items") else None
            for m in engine.maps]
    return ("ok", r0, engine.data_out(), maps)


@pytest.mark.parametrize("name", FIXTURES)
def test_every_fixture_program_runs_the_same_under_the_jit(objects, name):
    from pybpf.elf import load_object

    obj = load_object(objects[name])
    assert obj.programs
    ran = 0
    for prog_name, prog in obj.programs.items():
        expected = observe(lambda: Interpreter(prog, prog_type=prog.prog_type))
        for checked in (True, False):
            if not checked and expected[0] != "ok":
                continue    # unchecked code is only for programs that run cleanly
            got = observe(lambda: JITProgram(prog, prog_type=prog.prog_type, checked=checked))
            assert got == expected, f"{name}:{prog_name} checked={checked}"
        ran += expected[0] == "ok"
    # a fixture whose programs all fail to load would prove nothing; core_read's helpers
    # (bpf_get_current_task) have no userspace implementation
    assert ran or name == "core_read"
