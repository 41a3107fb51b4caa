"""bpf_spin_lock/bpf_spin_unlock: pybpf's verdict on every program of
``fixtures/spinlocks.c`` is the running kernel's.

The kernel finds the lock in a map value through the map's BTF, so these programs come from
clang objects and are loaded with their BTF (:func:`oracle.kernel_verdict_btf`).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pybpf.asm import assemble
from pybpf.verifier import verify

from .oracle import kernel_verdict, kernel_verdict_btf

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "fixtures" / "spinlocks.c"


def _names() -> list[str]:
    """Program names, read from the C source so every new SEC function becomes a case."""
    return re.findall(r'SEC\("(?:tc|socket)"\)\s*\nint (\w+)\(', SOURCE.read_text())


@pytest.fixture(scope="module")
def programs(tmp_path_factory):
    from pybpf.pytest_plugin import compile_c, find_clang
    if find_clang() is None:
        pytest.skip("clang is not installed")
    from pybpf.elf import load_object
    out = tmp_path_factory.mktemp("verifier-spinlocks")
    obj = load_object(compile_c(SOURCE, out, "-I", str(HERE.parent / "fixtures")))
    return obj.programs


@pytest.mark.kernel
@pytest.mark.parametrize("name", _names())
def test_spin_lock_program_gets_the_kernels_verdict(programs, name):
    prog = programs[name]
    ours = verify(prog)
    kernel = kernel_verdict_btf(prog)
    assert ours.accepted == kernel.accepted, (ours.error, kernel.log[-600:])
    if not kernel.accepted:
        assert ours.error in kernel.log, (ours.error, kernel.log[-600:])


def test_the_fixture_has_accepted_and_rejected_lock_programs():
    names = _names()
    assert len(names) >= 15
    assert {"lock_unlock", "double_lock", "unlock_without_lock", "exit_while_locked",
            "helper_call_while_locked"} <= set(names)


LOCK_WITHOUT_BTF = """
.map arr array key=4 value=16 max_entries=1
*(u32 *)(r10 - 4) = 0
r2 = r10
r2 += -4
r1 = arr ll
call bpf_map_lookup_elem
if r0 == 0 goto out
r1 = r0
call bpf_spin_lock
out:
r0 = 0
exit
"""


@pytest.mark.kernel
def test_a_lock_in_a_map_without_btf_is_refused_like_the_kernel():
    program = assemble(LOCK_WITHOUT_BTF)
    ours = verify(program, prog_type="sched_cls")
    kernel = kernel_verdict(program, "sched_cls")
    assert not kernel.accepted and not ours.accepted
    # the test oracle creates maps without names: the kernel's message says map ''
    assert re.sub(r"map '\w*'", "map ''", ours.error) in kernel.log, (ours.error,
                                                                       kernel.log[-400:])


@pytest.mark.parametrize("name", ["exit_while_locked", "double_lock", "unlock_without_lock",
                                  "helper_call_while_locked", "lock_wrong_offset"])
def test_a_lock_rejection_is_explained_with_its_c_line_and_a_fix(programs, name):
    result = verify(programs[name])
    assert not result.accepted
    exp = result.explain()
    assert exp.source is not None and "spinlocks.c:" in exp.source
    assert "lock" in exp.suggestion
