"""``xdp_md`` contexts and the XDP bound helpers against the kernel's BPF_PROG_TEST_RUN: the
packet pointers, bpf_xdp_adjust_head / _tail / _meta at and beyond their limits, the data and
the context handed back."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings, strategies as st

from pybpf.errors import BPFError, UsageError

from .compare import both, frame, in_pybpf, ipv4

pytestmark = pytest.mark.kernel

PACKET = frame(payload=ipv4(17, payload=bytes(range(30))))

LENGTHS = """
    r2 = *(u32 *)(r1 + 0)
    r3 = *(u32 *)(r1 + 4)
    r4 = *(u32 *)(r1 + 8)
    r0 = r3
    r0 -= r2
    r2 -= r4
    r2 <<= 16
    r0 |= r2
    exit
"""


def adjust(helper: str, delta: int, then: str = "") -> str:
    """Call the helper, then report (data_end - data) | (data - data_meta) << 16, and the
    helper's result in the top byte."""
    return f"""
        r6 = r1
        r2 = {delta}
        call bpf_{helper}
        r7 = r0
        r7 &= 0xff
        r7 <<= 24
        r1 = r6
        {then}
        r2 = *(u32 *)(r6 + 0)
        r3 = *(u32 *)(r6 + 4)
        r4 = *(u32 *)(r6 + 8)
        r0 = r3
        r0 -= r2
        r2 -= r4
        r2 <<= 16
        r0 |= r2
        r0 |= r7
        exit
    """


def test_data_data_end_and_data_meta_are_the_kernels():
    kernel, ours = both(LENGTHS, "xdp", PACKET)
    assert ours.retval == kernel.retval
    assert ours.data_out == kernel.data_out


@pytest.mark.parametrize("delta", [-216, -217, -256, -1, 0, 1, 46, 47, 60, 1 << 20])
def test_adjust_head_moves_data_within_the_kernels_limits(delta):
    kernel, ours = both(adjust("xdp_adjust_head", delta), "xdp", PACKET)
    assert ours.retval == kernel.retval
    assert ours.data_out == kernel.data_out


@pytest.mark.parametrize("delta", [-47, -46, -1, 1, 100, 3460, 3461, -(1 << 20)])
def test_adjust_tail_grows_and_shrinks_like_the_kernel(delta):
    kernel, ours = both(adjust("xdp_adjust_tail", delta), "xdp", PACKET)
    assert ours.retval == kernel.retval
    assert ours.data_out == kernel.data_out


@pytest.mark.parametrize("delta", [-4, -32, -36, -216, -217, -3, 4, 0])
def test_adjust_meta_reserves_metadata_like_the_kernel(delta):
    fill = "r2 = *(u32 *)(r6 + 8)\nr3 = *(u32 *)(r6 + 0)\nr4 = r2\nr4 += 1\n" \
           "if r4 > r3 goto +2\nr5 = 0xab\n*(u8 *)(r2 + 0) = r5"
    kernel, ours = both(adjust("xdp_adjust_meta", delta, fill), "xdp", PACKET)
    assert ours.retval == kernel.retval
    assert ours.data_out == kernel.data_out


def test_metadata_moves_with_the_head_like_the_kernel():
    source = adjust("xdp_adjust_meta", -8, """
        r2 = *(u32 *)(r6 + 8)
        r3 = *(u32 *)(r6 + 0)
        r4 = r2
        r4 += 4
        if r4 > r3 goto +2
        r5 = 0x11223344
        *(u32 *)(r2 + 0) = r5
        r1 = r6
        r2 = 14
        call bpf_xdp_adjust_head
        r1 = r6
        r2 = -208
        call bpf_xdp_adjust_head
        r7 |= r0
    """)
    kernel, ours = both(source, "xdp", PACKET)
    assert ours.retval == kernel.retval
    assert ours.data_out == kernel.data_out


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["xdp_adjust_head", "xdp_adjust_tail",
                                           "xdp_adjust_meta"]),
                          st.integers(-300, 300)), min_size=1, max_size=4))
def test_any_sequence_of_bound_moves_ends_like_the_kernel(moves):
    body = "r6 = r1\nr7 = 0\n"
    for helper, delta in moves:
        body += f"r1 = r6\nr2 = {delta}\ncall bpf_{helper}\nr7 <<= 1\nr0 &= 1\nr7 |= r0\n"
    body += LENGTHS.replace("r1", "r6").replace("exit", "r7 <<= 24\nr0 ^= r7\nexit")
    kernel, ours = both(body, "xdp", PACKET)
    assert ours.retval == kernel.retval
    assert ours.data_out == kernel.data_out


def test_a_given_context_with_metadata_comes_back_like_the_kernels():
    ctx = struct.pack("<6I", 8, len(PACKET), 0, 0, 0, 0)
    kernel, ours = both(LENGTHS, "xdp", PACKET, ctx)
    assert ours.retval == kernel.retval
    assert ours.data_out == kernel.data_out
    assert ours.ctx_out == kernel.ctx_out[:24]


def test_a_context_the_kernel_refuses_is_a_clear_error():
    with pytest.raises(UsageError, match="xdp_md"):
        in_pybpf(LENGTHS, "xdp", PACKET, struct.pack("<6I", 0, 3, 0, 0, 0, 0))
    with pytest.raises(UsageError, match="at most 24"):
        in_pybpf(LENGTHS, "xdp", PACKET, bytes(32))


def test_a_32_bit_load_of_data_is_rewritten_but_other_reads_are_refused():
    # the interpreter's context rewriter (what holds in a sandboxed run)
    with pytest.raises(BPFError, match="32-bit"):
        in_pybpf("r0 = *(u64 *)(r1 + 0)\nexit", "xdp", PACKET, sandbox=True)
    with pytest.raises(BPFError, match="not writable"):
        in_pybpf("r2 = 1\n*(u32 *)(r1 + 12) = r2\nr0 = 0\nexit", "xdp", PACKET, sandbox=True)
    # and the verifier, as the kernel's
    for source in ("r0 = *(u64 *)(r1 + 0)\nexit", "r2 = 1\n*(u32 *)(r1 + 12) = r2\nr0 = 0\nexit"):
        with pytest.raises(BPFError, match="invalid bpf_context access"):
            in_pybpf(source, "xdp", PACKET, sandbox=False)


@pytest.mark.parametrize("flags", [0, 1])
def test_redirect_gives_the_kernels_verdict(flags):
    kernel, ours = both(f"r1 = 1\nr2 = {flags}\ncall bpf_redirect\nexit", "xdp", PACKET)
    assert ours.retval == kernel.retval


def test_a_frame_shorter_than_an_ethernet_header_is_refused_like_the_kernel():
    from pybpf.errors import KernelError

    from .compare import in_kernel

    with pytest.raises(KernelError):
        in_kernel(LENGTHS, "xdp", b"\0" * 13)
    with pytest.raises(UsageError, match="14-byte"):
        in_pybpf(LENGTHS, "xdp", b"\0" * 13)


def test_a_context_passed_to_a_subprogram_is_rewritten_there_too():
    source = """
        r6 = r1
        r1 = 5
        r2 = r6
        call length
        r7 = r0
        r1 = r6
        call meta_gap
        r0 <<= 16
        r0 |= r7
        exit
    length:
        r3 = *(u32 *)(r2 + 0)
        r4 = *(u32 *)(r2 + 4)
        r0 = r4
        r0 -= r3
        r0 += r1
        exit
    meta_gap:
        *(u64 *)(r10 - 8) = r1
        r1 = 0
        r9 = *(u64 *)(r10 - 8)
        r3 = *(u32 *)(r9 + 8)
        r4 = *(u32 *)(r9 + 0)
        r0 = r4
        r0 -= r3
        r0 += 1
        exit
    """
    kernel, ours = both(source, "xdp", PACKET)
    assert ours.retval == kernel.retval == (1 << 16) | (len(PACKET) + 5)
