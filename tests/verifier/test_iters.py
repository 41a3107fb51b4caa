"""Open-coded numeric iterators (kfuncs bpf_iter_num_new/next/destroy, libbpf's ``bpf_for``
and ``bpf_repeat``): pybpf's verdict on every program of ``fixtures/iters.c`` is the running
kernel's, with the same processed-instruction and stored-state counts and, on rejection, the
kernel's own error line.

The programs come from a clang object whose ``__ksym`` externs the ELF loader resolves to the
kernel's BTF ids (as libbpf does) and are loaded through :func:`pybpf.kernel.load_program`.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pybpf.verifier import verify

from .oracle import kernel_verdict_btf

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "fixtures" / "iters.c"

#: both reject, pybpf because the kfunc is not modelled (the kernel's reason differs)
UNMODELLED = {"rcu_and_coarse_time"}
#: accepted by both, but the walk differs slightly (docs/verifier-differences.md): the
#: processed-instruction count is within 5% of the kernel's, the stored states within one
COUNTS_DIFFER = {"stack_index", "iterator_in_a_subprogram_frame"}


def _names() -> list[str]:
    return re.findall(r'SEC\("socket"\)\s*\nint (\w+)\(', SOURCE.read_text())


@pytest.fixture(scope="module")
def programs(tmp_path_factory):
    from pybpf.pytest_plugin import compile_c, find_clang
    if find_clang() is None:
        pytest.skip("clang is not installed")
    if not Path("/sys/kernel/btf/vmlinux").exists():
        pytest.skip("no kernel BTF: kfunc ids cannot be resolved")
    from pybpf.elf import load_object
    out = tmp_path_factory.mktemp("verifier-iters")
    obj = load_object(compile_c(SOURCE, out, "-I", str(HERE.parent / "fixtures")))
    return obj.programs


def summary(log: str) -> tuple[int, int] | None:
    """(processed, total_states) of the log's closing line."""
    m = re.search(r"processed (\d+) insns .*?total_states (\d+)", log or "")
    return tuple(int(x) for x in m.groups()) if m else None


@pytest.mark.kernel
@pytest.mark.parametrize("name", _names())
def test_iterator_program_gets_the_kernels_verdict(programs, name):
    prog = programs[name]
    ours = verify(prog)
    theirs = kernel_verdict_btf(prog)
    assert ours.accepted == theirs.accepted, (ours.error, theirs.log[-600:])
    if name in UNMODELLED:
        assert "not supported by pybpf's verifier" in ours.error
        return
    if name in COUNTS_DIFFER:
        (n1, s1), (n2, s2) = summary(ours.log), summary(theirs.log)
        assert abs(n1 - n2) <= n2 // 20 and abs(s1 - s2) <= 1, ((n1, s1), (n2, s2))
    else:
        assert summary(ours.log) == summary(theirs.log), (summary(ours.log),
                                                          summary(theirs.log))
    if not theirs.accepted:
        assert ours.error in theirs.log, (ours.error, theirs.log[-600:])


def test_the_loop_body_sees_a_non_null_pointer_to_the_int(programs):
    """At level 2 the instruction after ``next`` on the iteration path has R0 = read-only
    memory of 4 bytes tied to the iterator's reference (the kernel's
    ``rdonly_mem(id=2,ref_obj_id=1,sz=4)``), not null, and the iterator slot shows its
    reference, state and depth."""
    ours = verify(programs["explicit_calls"], log_level=2)
    assert ours.accepted
    assert "R0=rdonly_mem(id=2,ref_obj_id=1,sz=4)" in ours.log, ours.log[:2000]
    assert "iter_num(ref_id=1,state=active,depth=1)" in ours.log


@pytest.mark.kernel
def test_a_bpf_for_loop_verifies_in_fewer_instructions_than_it_runs(programs):
    """sum_range runs 100 iterations of several instructions; the walk converges after a
    couple of visits of the loop body (imprecise scalars widened)."""
    ours = verify(programs["sum_range"])
    assert ours.accepted and summary(ours.log)[0] < 200


ACCEPTED = ["sum_range", "nested_loops", "early_break", "repeat_count", "stack_index",
            "iterator_in_a_subprogram_frame",
            "explicit_calls"]


@pytest.mark.kernel
@pytest.mark.parametrize("name", ACCEPTED)
def test_an_accepted_iterator_program_runs_in_the_interpreter_as_in_the_kernel(programs, name):
    """The interpreter (built only for programs the verifier accepts) returns what the
    kernel's BPF_PROG_TEST_RUN returns."""
    from pybpf import kernel
    from pybpf.vm import Interpreter
    prog = programs[name]
    data = bytes(64)
    ours = Interpreter(prog).run(data)
    ours = ours if isinstance(ours, int) else ours.retval
    with kernel.load_program(prog, log_level=0) as kp:
        assert ours == kp.test_run(data).retval


def test_a_leaked_iterator_is_explained_with_its_c_line_and_the_destroy_fix(programs):
    from pybpf.verifier.explain import explain
    ours = verify(programs["missing_destroy"])
    e = explain(ours)
    assert e.error_id == "reference-leak"
    assert "iters.c" in e.source and "return sum;" in e.source
    assert "iterator" in e.rule and "bpf_iter_num_destroy" in e.suggestion


@pytest.mark.kernel
def test_the_log_names_the_kfunc_as_the_kernel_does(programs):
    """The kernel prints ``call bpf_iter_num_new#<btf id>``."""
    prog = programs["explicit_calls"]
    ours = verify(prog, log_level=2)
    theirs = kernel_verdict_btf(prog)
    names = set(re.findall(r"call (bpf_iter_num_\w+#\d+)", ours.log))
    assert names and names <= set(re.findall(r"call (bpf_iter_num_\w+#\d+)",
                                             theirs.log + _kernel_log2(prog)))


def _kernel_log2(prog) -> str:
    from pybpf import kernel
    with kernel.load_program(prog, log_level=2) as kp:
        return kp.log or ""
