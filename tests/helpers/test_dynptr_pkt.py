"""Packet dynptrs (the kfuncs bpf_dynptr_from_skb / bpf_dynptr_from_xdp, bpf_dynptr_slice and
bpf_dynptr_slice_rdwr, and the dynptr helpers on them) in the interpreter and the JIT give the
kernel's answers and leave the packet as the kernel leaves it (BPF_PROG_TEST_RUN on the same
generated packets)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from pybpf.elf import load_object
from pybpf.jit import JITProgram
from pybpf.pytest_plugin import compile_c, find_clang
from pybpf.vm import Interpreter

pytestmark = pytest.mark.kernel

HERE = Path(__file__).resolve().parent
FIXTURES = HERE.parent / "fixtures"


@pytest.fixture(scope="module")
def obj(tmp_path_factory):
    if find_clang() is None:
        pytest.skip("clang is not installed")
    if not Path("/sys/kernel/btf/vmlinux").exists():
        pytest.skip("no kernel BTF: kfunc ids cannot be resolved")
    return load_object(str(compile_c(HERE / "dynptr_pkt.c",
                                     tmp_path_factory.mktemp("dynptr_pkt"), f"-I{FIXTURES}")))


@pytest.fixture(scope="module")
def kernel_progs(obj):
    from pybpf import kernel

    loaded = {name: kernel.load_program(prog) for name, prog in obj.programs.items()}
    yield loaded
    for kp in loaded.values():
        kp.close()


@pytest.fixture(scope="module")
def our_engines(obj):
    """Per program: the interpreter and the JIT, verified by pybpf's verifier (which must
    accept every program of the fixture, as the kernel does)."""
    out = {}
    for name, prog in obj.programs.items():
        out[name] = [Interpreter(prog, prog_type=prog.prog_type),
                     JITProgram(prog, prog_type=prog.prog_type, checked=False)]
    return out


def same(obj, kernel_progs, our_engines, name: str, packet: bytes) -> None:
    theirs = kernel_progs[name].test_run(packet)
    for engine in our_engines[name]:
        got = engine.run(packet)
        got = got if isinstance(got, int) else got.retval
        assert got & 0xFFFFFFFF == theirs.retval, (type(engine).__name__, packet.hex())
        assert engine.data_out() == theirs.data_out, (type(engine).__name__, packet.hex())


def _frame(ctl: bytes, size: int) -> bytes:
    body = bytes((7 * i + 3) & 0xFF for i in range(size))
    return body[:14] + ctl + body[14 + len(ctl):]


CTL = st.tuples(st.integers(0, 255), st.integers(0, 255), st.integers(0, 255),
                st.integers(0, 255)).map(bytes)


@settings(max_examples=25, deadline=None)
@given(CTL, st.integers(18, 120))
@pytest.mark.parametrize("name", ["skb_read", "skb_write_then_slice", "skb_slice_rdwr",
                                  "xdp_read_write", "xdp_after_adjust_head"])
def test_packet_dynptrs_answer_and_write_like_the_kernel(obj, kernel_progs, our_engines, name,
                                                         ctl, size):
    same(obj, kernel_progs, our_engines, name, _frame(ctl, size))


@pytest.mark.parametrize("name,ctl,size", [
    ("skb_read", bytes([56, 0, 0, 0]), 64), ("skb_read", bytes([57, 0, 0, 0]), 64),
    ("skb_read", bytes([0, 0, 1, 0]), 64),                    # read flags: -EINVAL
    ("skb_write_then_slice", bytes([62, 60, 0, 0]), 64),      # last two bytes, last four
    ("skb_write_then_slice", bytes([63, 61, 0, 0]), 64),      # one past: -E2BIG, NULL slice
    ("skb_write_then_slice", bytes([20, 30, 4, 0]), 64),      # unknown flag: -EINVAL
    ("skb_write_then_slice", bytes([20, 30, 2, 0]), 64),      # BPF_F_INVALIDATE_HASH
    ("skb_slice_rdwr", bytes([58, 0, 0, 0x81]), 64), ("skb_slice_rdwr", bytes([59, 0, 0, 1]), 64),
    ("xdp_read_write", bytes([60, 60, 0, 62]), 64), ("xdp_read_write", bytes([61, 0, 1, 63]), 64),
    ("xdp_after_adjust_head", bytes([40, 0, 0, 8]), 64),
    ("xdp_after_adjust_head", bytes([52, 0, 0, 8]), 64),      # beyond the moved head: -EINVAL
])
def test_edges_of_packet_dynptrs_match_the_kernel(obj, kernel_progs, our_engines, name, ctl,
                                                  size):
    same(obj, kernel_progs, our_engines, name, _frame(ctl, size))


@pytest.mark.parametrize("size", [60, 61, 62, 63, 64])
def test_a_dynptr_made_with_flags_is_null_as_in_the_kernel(obj, kernel_progs, our_engines,
                                                           size):
    same(obj, kernel_progs, our_engines, "skb_bad_flags", _frame(b"", size))


def test_a_socket_filters_skb_dynptr_is_read_only(obj, kernel_progs, our_engines):
    packet = _frame(b"", 64)
    same(obj, kernel_progs, our_engines, "socket_readonly", packet)
    answer = our_engines["socket_readonly"][0].run(packet)
    answer = answer if isinstance(answer, int) else answer.retval
    assert answer & 0xFF == 22 and answer & 0x200   # the write: -EINVAL; the slice: there


def test_a_cgroup_skb_programs_skb_dynptr_is_read_only(obj, kernel_progs, our_engines):
    """Its packet starts at the network header: the slice sees the IPv4 version byte."""
    ether = bytes(12) + b"\x08\x00"
    packet = ether + bytes.fromhex("4500002c0001000040110000c0a80001c0a80002") + bytes(24)
    same(obj, kernel_progs, our_engines, "cgroup_readonly", packet)
    assert kernel_progs["cgroup_readonly"].test_run(packet).retval == 1
