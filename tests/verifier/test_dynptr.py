"""Dynamic pointers (``struct bpf_dynptr``: local dynptrs over a map value, ring buffer dynptrs,
data slices, and the packet dynptrs of the kfuncs bpf_dynptr_from_skb/xdp with
bpf_dynptr_slice[_rdwr]): pybpf's verdict on every program of ``fixtures/dynptr.c`` and
``fixtures/dynptr_pkt.c`` is the running kernel's, with the same processed-instruction and stored-state counts and, on rejection, the
kernel's own error line; at log level 2 the logs are the kernel's line for line (map
addresses and names and BTF source lines aside), dynptr slot notation included.

The programs come from a clang object loaded through :func:`pybpf.kernel.load_program` with the
object's BTF.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path

import pytest

from pybpf.verifier import verify

from .oracle import kernel_verdict_btf
from .test_log_level2 import _comparable as _printed

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "fixtures" / "dynptr.c"
PKT_SOURCE = HERE / "fixtures" / "dynptr_pkt.c"

ACCEPTED = ["local_read_write", "local_data_slice", "local_reinitialised", "ringbuf_submit",
            "ringbuf_discard_on_failure", "ringbuf_in_a_loop", "dynptr_passed_to_a_subprogram",
            "either_kind_then_release_both"]


PKT_ACCEPTED = ["skb_slice_read", "skb_slice_rdwr_without_buffer", "skb_dynptr_read",
                "xdp_slice_read", "skb_write_then_fresh_slice", "socket_slice_read",
                "cgroup_skb_dynptr_write"]


def _names(source: Path = SOURCE) -> list[str]:
    return re.findall(r'SEC\("[\w/]+"\)\s*\nint (\w+)\(', source.read_text())


def _compile(tmp_path_factory, source: Path):
    from pybpf.pytest_plugin import compile_c, find_clang
    if find_clang() is None:
        pytest.skip("clang is not installed")
    from pybpf.elf import load_object
    out = tmp_path_factory.mktemp("verifier-dynptr")
    return load_object(compile_c(source, out, "-I", str(HERE.parent / "fixtures"))).programs


@pytest.fixture(scope="module")
def programs(tmp_path_factory):
    return _compile(tmp_path_factory, SOURCE)


@pytest.fixture(scope="module")
def pkt_programs(tmp_path_factory):
    if not Path("/sys/kernel/btf/vmlinux").exists():
        pytest.skip("no kernel BTF: kfunc ids cannot be resolved")
    return _compile(tmp_path_factory, PKT_SOURCE)


def summary(log: str) -> tuple[int, int] | None:
    """(processed, total_states) of the log's closing line."""
    m = re.search(r"processed (\d+) insns .*?total_states (\d+)", log or "")
    return tuple(int(x) for x in m.groups()) if m else None


@pytest.mark.kernel
@pytest.mark.parametrize("name", _names())
def test_dynptr_program_gets_the_kernels_verdict(programs, name):
    _same_verdict(programs[name])


@pytest.mark.kernel
@pytest.mark.parametrize("name", _names(PKT_SOURCE))
def test_packet_dynptr_program_gets_the_kernels_verdict(pkt_programs, name):
    _same_verdict(pkt_programs[name])


def test_the_packet_fixture_has_its_accepted_programs(pkt_programs):
    for name in _names(PKT_SOURCE):
        ours = verify(pkt_programs[name])
        assert ours.accepted == (name in PKT_ACCEPTED), (name, ours.error)


def _same_verdict(prog):
    ours = verify(prog)
    theirs = kernel_verdict_btf(prog)
    assert ours.accepted == theirs.accepted, (ours.error, theirs.log[-600:])
    assert summary(ours.log) == summary(theirs.log), (summary(ours.log), summary(theirs.log))
    if not theirs.accepted:
        last = [line for line in theirs.log.splitlines()
                if line and not line.startswith(("processed ", "verification time",
                                                 "stack depth"))][-1]
        assert ours.error.splitlines()[-1] == last, (ours.error, theirs.log[-600:])


def test_the_fixture_has_the_accepted_programs_and_ten_distinct_rejections(programs):
    """The comparison above is not vacuous: the accepted list is right and the rejected
    programs fail for at least ten different reasons."""
    reasons = set()
    for name in _names():
        ours = verify(programs[name])
        assert ours.accepted == (name in ACCEPTED), (name, ours.error)
        if not ours.accepted:
            reasons.add(re.sub(r"\d+", "N", ours.error.splitlines()[-1]))
    assert len(reasons) >= 10, reasons


_NOISE = re.compile(r"^; .* @ dynptr(_pkt)?\.c:\d+$|^arg#0 reference type|^verification time|"
                    r"^stack depth|^processed ")


def _comparable(log: str) -> list[str]:
    out = []
    for line in _printed(log):
        if _NOISE.match(line):
            continue
        line = re.sub(r"0xffff[0-9a-f]{12}|map\[id:\d+\]", "<map>", line)
        line = re.sub(r"map=\w+,", "", line)
        out.append(re.sub(r"(= <map>) +;", r"\1 ;", line))
    return out


@pytest.mark.kernel
@pytest.mark.parametrize("name", ["skb_slice_read", "skb_slice_after_dynptr_write",
                                  "xdp_slice_read"])
def test_level_2_log_of_a_packet_dynptr_is_the_kernels(pkt_programs, name):
    _same_level_2_log(pkt_programs[name])


@pytest.mark.kernel
@pytest.mark.parametrize("name", ["ringbuf_submit", "ringbuf_discard_on_failure",
                                  "local_data_slice", "slice_used_after_submit",
                                  "overwrite_ringbuf_dynptr", "discard_twice"])
def test_level_2_log_shows_dynptr_slots_as_the_kernel(programs, name):
    _same_level_2_log(programs[name])


def _same_level_2_log(prog):
    from pybpf import kernel
    from pybpf.errors import KernelError
    ours = verify(prog, log_level=2).log
    try:
        with kernel.load_program(prog, log_level=2) as kp:
            theirs = kp.log
    except KernelError as exc:
        theirs = exc.log
    a, b = _comparable(theirs), _comparable(ours)
    assert a == b, "\n".join(difflib.unified_diff(a, b, "kernel", "pybpf", lineterm=""))


def test_a_ring_buffer_dynptr_prints_its_reference_in_the_kernels_notation(programs):
    log = verify(programs["ringbuf_submit"], log_level=2).log
    assert "fp-16=dynptr_ringbuf(id=1,ref_id=2,dynptr_id=1) refs=2" in log
    assert "R0=mem_or_null(id=3,ref_obj_id=2,sz=16)" in log


@pytest.mark.kernel
@pytest.mark.parametrize("name", ACCEPTED)
def test_an_accepted_dynptr_program_runs_in_the_interpreter_as_in_the_kernel(programs, name):
    """The interpreter returns what the kernel's BPF_PROG_TEST_RUN returns (needs the
    engines' implementations of the dynptr helpers)."""
    from pybpf import kernel
    from pybpf.helpers import get_helper
    from pybpf.helpers.ids import HELPER_IDS
    needed = {"dynptr_from_mem", "dynptr_read", "dynptr_write", "dynptr_data",
              "ringbuf_reserve_dynptr", "ringbuf_submit_dynptr", "ringbuf_discard_dynptr"}
    missing = sorted(n for n in needed if get_helper(HELPER_IDS[n]) is None)
    if missing:
        pytest.skip(f"helpers not implemented by the engines yet: {missing}")
    from pybpf.vm import Interpreter
    prog = programs[name]
    data = bytes(64)
    ours = Interpreter(prog).run(data)
    ours = ours if isinstance(ours, int) else ours.retval
    with kernel.load_program(prog, log_level=0) as kp:
        assert ours == kp.test_run(data).retval


def test_a_leaked_ring_buffer_dynptr_is_explained_with_its_c_line_and_the_release_fix(programs):
    from pybpf.verifier.explain import explain
    e = explain(verify(programs["ringbuf_leak_when_reserve_failed"]))
    assert e.error_id == "reference-leak"
    assert re.search(r"dynptr\.c:\d+", e.source)   # the exit (clang puts it on the brace)
    assert "bpf_ringbuf_discard_dynptr" in e.suggestion and "failed" in e.suggestion


def test_an_overwritten_ring_buffer_dynptr_is_explained(programs):
    from pybpf.verifier.explain import explain
    e = explain(verify(programs["overwrite_ringbuf_dynptr"]))
    assert e.error_id == "dynptr-overwrite"
    assert "bpf_dynptr" in e.rule and "discard" in e.suggestion


@pytest.mark.kernel
@pytest.mark.parametrize("name", PKT_ACCEPTED)
def test_an_accepted_packet_dynptr_program_runs_in_the_interpreter_as_in_the_kernel(
        pkt_programs, name):
    """The engines' kfuncs bpf_dynptr_from_skb/xdp and bpf_dynptr_slice[_rdwr] (more in
    tests/helpers/test_dynptr_pkt.py): the answer and the packet are the kernel's."""
    from pybpf import kernel
    from pybpf.vm import Interpreter
    prog = pkt_programs[name]
    data = bytes(range(64))
    vm = Interpreter(prog, prog_type=prog.prog_type)
    ours = vm.run(data)
    ours = ours if isinstance(ours, int) else ours.retval
    with kernel.load_program(prog, log_level=0) as kp:
        theirs = kp.test_run(data)
    assert ours == theirs.retval and vm.data_out() == theirs.data_out
