"""Callback helpers (bpf_loop, bpf_for_each_map_elem): pybpf's verdict on every program of
``fixtures/callbacks.c`` is the running kernel's.

The kernel needs the object's BTF (func_info) to accept a callback, so these programs come
from clang objects and are loaded with :func:`pybpf.kernel.load_program`, which passes the
BTF, func_info and line_info along.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from pybpf.verifier import verify

from .oracle import kernel_verdict_btf

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "fixtures" / "callbacks.c"


#: programs on which the kernel (and pybpf) runs into the 1,000,000 instruction limit:
#: about a minute each in pybpf, so only under PYBPF_SLOW=1
SLOW = {"loop_guarded_counter_unknown_count", "each_counter"}
#: pybpf is knowingly stricter (docs/verifier-differences.md, "Callback helpers"): none since
#: precision tracking (a counter nothing depends on is widened, as in the kernel)
KNOWN_STRICTER: set[str] = set()


def _names() -> list[str]:
    """Program names, read from the C source so every new SEC function becomes a case."""
    text = SOURCE.read_text()
    names = re.findall(r'SEC\("socket"\)\s*\nint (\w+)\(', text)
    if not os.environ.get("PYBPF_SLOW"):
        names = [n for n in names if n not in SLOW]
    return names


@pytest.fixture(scope="module")
def programs(tmp_path_factory):
    from pybpf.pytest_plugin import compile_c, find_clang
    if find_clang() is None:
        pytest.skip("clang is not installed")
    from pybpf.elf import load_object
    out = tmp_path_factory.mktemp("verifier-callbacks")
    obj = load_object(compile_c(SOURCE, out, "-I", str(HERE.parent / "fixtures")))
    return obj.programs


def summary(log: str) -> tuple[int, ...] | None:
    """(processed, total_states, peak_states) of the log's closing line."""
    m = re.search(r"processed (\d+) insns .*?total_states (\d+) peak_states (\d+)", log)
    return tuple(int(x) for x in m.groups()) if m else None


def kernel_verdict_with_btf(prog) -> tuple[bool, str]:
    v = kernel_verdict_btf(prog)
    return v.accepted, v.log


@pytest.mark.kernel
@pytest.mark.parametrize("name", _names())
def test_callback_program_gets_the_kernels_verdict(programs, name):
    prog = programs[name]
    ours = verify(prog)
    accepted, log = kernel_verdict_with_btf(prog)
    if name in KNOWN_STRICTER:
        assert accepted and not ours.accepted
        return
    assert ours.accepted == accepted, (ours.error, log[-600:])
    # the walk is the kernel's: same processed instructions and stored states
    assert summary(ours.log) == summary(log), (summary(ours.log), summary(log))
    if not accepted:
        # the reason is the kernel's own words
        assert ours.error in log, (ours.error, log[-600:])


def test_the_fixture_has_accepted_and_rejected_programs_of_each_helper():
    names = _names()
    assert len(names) >= 20
    assert any(n.startswith("loop_") for n in names)
    assert any(n.startswith("each_") for n in names)


def test_callback_without_btf_func_info_is_refused_like_the_kernel(programs):
    """Without func_info the kernel refuses the callback's address load (check_ld_imm)."""
    from dataclasses import replace
    prog = replace(programs["loop_nop"], func_info=[], btf=None, line_info=[])
    ours = verify(prog)
    assert not ours.accepted and ours.error == "missing btf func_info"


@pytest.mark.kernel
def test_the_kernel_also_refuses_a_callback_without_func_info(programs):
    from dataclasses import replace
    prog = replace(programs["loop_nop"], func_info=[], btf=None, line_info=[])
    accepted, log = kernel_verdict_with_btf(prog)
    assert not accepted and "missing btf func_info" in log


@pytest.mark.parametrize("name", ["loop_bad_return", "each_returns_value",
                                  "loop_global_callback"])
def test_a_callback_rejection_is_explained_with_its_c_line_and_a_fix(programs, name):
    result = verify(programs[name])
    assert not result.accepted
    exp = result.explain()
    assert exp.source is not None and "callbacks.c:" in exp.source
    assert exp.suggestion and ("return" in exp.suggestion or "static" in exp.suggestion)


@pytest.mark.kernel
@pytest.mark.parametrize("name", [n for n in _names() if n not in SLOW])
def test_accepted_callback_programs_run_in_the_interpreter_like_the_kernel(programs, name):
    """Every program pybpf accepts runs in the interpreter without a memory fault, and its r0
    is the kernel's (BPF_PROG_TEST_RUN), skb fields included."""
    from pybpf import kernel
    from pybpf.vm import Interpreter
    prog = programs[name]
    if not verify(prog).accepted:
        pytest.skip("rejected by pybpf")
    data = bytes(range(64))
    # the program's own type: the interpreter builds the __sk_buff BPF_PROG_TEST_RUN builds
    r0 = Interpreter(prog, prog_type=prog.prog_type).run(data)
    assert r0 & 0xFFFFFFFF == kernel.test_run(prog, data=data).retval
