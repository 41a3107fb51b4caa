"""Dynptr helpers (local dynptrs over a map value or the stack, ring buffer dynptrs) give the
kernel's answers, bytes and ring records (BPF_PROG_TEST_RUN on the same packets) in the
interpreter and the JIT."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from pybpf.elf import load_object
from pybpf.elf.collection import KernelCollection, VMCollection
from pybpf.pytest_plugin import compile_c, find_clang

pytestmark = pytest.mark.kernel

HERE = Path(__file__).resolve().parent
FIXTURES = HERE.parent / "fixtures"


def _sandbox(spec) -> bool:
    """Verified when pybpf's verifier models dynptrs for these programs, else sandboxed."""
    from pybpf.verifier import verify
    return not all(verify(p).accepted for p in spec.programs.values())


@pytest.fixture(scope="module")
def engines(tmp_path_factory):
    if find_clang() is None:
        pytest.skip("clang is not installed")
    obj = compile_c(HERE / "dynptr.c", tmp_path_factory.mktemp("dynptr"), f"-I{FIXTURES}")
    spec = load_object(str(obj))
    with KernelCollection(load_object(str(obj))) as kc:
        yield kc, VMCollection(spec, sandbox=_sandbox(spec))


def same(engines, program: str, packet: bytes) -> None:
    kc, vc = engines
    theirs = kc.programs[program].test_run(packet)
    ours = vc.programs[program].test_run(packet)
    assert ours.retval == theirs.retval, packet.hex()
    assert ours.data_out == theirs.data_out


@settings(max_examples=20, deadline=None)
@given(st.binary(min_size=16, max_size=16))
def test_a_local_dynptr_over_a_map_value_answers_like_the_kernel(engines, head):
    same(engines, "local_dynptr", head + bytes(48))
    kc, vc = engines
    assert vc.maps["scratch"][0] == kc.maps["scratch"][0]


@pytest.mark.parametrize("off,flags", [(0, 0), (12, 0), (13, 0), (31, 0), (0, 1), (5, 1)])
def test_bad_flags_and_reads_past_the_end_answer_like_the_kernel(engines, off, flags):
    same(engines, "local_dynptr_errors", bytes([off, flags]) + bytes(62))


@pytest.mark.parametrize("first,second", [(0, 0), (3, 0), (8, 0), (9, 0), (15, 0), (2, 1)])
def test_a_ring_buffer_dynptr_writes_the_kernels_record(engines, first, second):
    from pybpf.kernel.ringbuf import RingBuffer

    kc, vc = engines
    packet = bytes([first, second]) + bytes(range(2, 64))
    same(engines, "ringbuf_dynptr", packet)
    with RingBuffer(kc.maps["events"]) as reader:
        theirs = [bytes(r) for r in reader.drain()]
    ours = [bytes(r) for r in vc.maps["events"]]      # every record available now
    assert ours == theirs
    assert len(theirs) == (0 if second & 1 else 1)
