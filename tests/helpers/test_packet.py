"""Packet helpers against the kernel through BPF_PROG_TEST_RUN: skb_load_bytes and
skb_store_bytes at and past the packet's end, l3/l4_csum_replace with every flag, csum_diff
over generated words. Each case is one tc program; the verdict and the packet after the run
must be the kernel's."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from ..progtypes.compare import both, frame, ipv4

pytestmark = pytest.mark.kernel

PACKET = frame(payload=ipv4(17, payload=bytes(range(7, 47))))
U32 = st.integers(0, 0xFFFFFFFF)


def same(source: str, prog_type: str = "sched_cls", packet: bytes = PACKET):
    kernel, ours = both(source, prog_type, packet)
    assert ours.retval == kernel.retval
    assert ours.data_out == kernel.data_out
    return ours


def load_bytes(offset: int, length: int) -> str:
    """skb_load_bytes into the stack, then r0 = result ^ xor of the loaded words."""
    words = "\n".join(f"r2 = *(u32 *)(r10 - {64 - 4 * i})\nr0 ^= r2" for i in range(16))
    return f"""
        r1 = r1
        r2 = {offset}
        r3 = r10
        r3 += -64
        r4 = {length}
        r5 = 0
        *(u64 *)(r10 - 64) = r5
        *(u64 *)(r10 - 56) = r5
        *(u64 *)(r10 - 48) = r5
        *(u64 *)(r10 - 40) = r5
        *(u64 *)(r10 - 32) = r5
        *(u64 *)(r10 - 24) = r5
        *(u64 *)(r10 - 16) = r5
        *(u64 *)(r10 - 8) = r5
        r5 = -1
        *(u64 *)(r10 - 64) = r5
        call bpf_skb_load_bytes
        {words}
        exit
    """


@pytest.mark.parametrize("prog_type", ["sched_cls", "socket_filter"])
@pytest.mark.parametrize("offset,length", [(0, 1), (0, 64), (12, 2), (len(PACKET) - 4, 4),
                                           (len(PACKET) - 3, 4), (len(PACKET) - 14, 1),
                                           (1 << 31, 4), (0xFFFFFFFF, 1)])
def test_skb_load_bytes_reads_what_the_kernel_reads(prog_type, offset, length):
    same(load_bytes(offset, length), prog_type)


def store_bytes(offset: int, length: int, flags: int) -> str:
    return f"""
        r6 = r1
        r2 = 0x0123456789abcdef ll
        *(u64 *)(r10 - 16) = r2
        *(u64 *)(r10 - 8) = r2
        r2 = {offset}
        r3 = r10
        r3 += -16
        r4 = {length}
        r5 = {flags}
        call bpf_skb_store_bytes
        exit
    """


@pytest.mark.parametrize("offset,length,flags", [(0, 6, 0), (14, 16, 1), (30, 8, 2), (3, 1, 3),
                                                 (len(PACKET) - 8, 8, 0),
                                                 (len(PACKET) - 7, 8, 0), (0, 4, 4),
                                                 (1 << 31, 1, 0)])
def test_skb_store_bytes_writes_what_the_kernel_writes(offset, length, flags):
    same(store_bytes(offset, length, flags))


def csum_replace(helper: str, offset: int, old: int, new: int, flags: int) -> str:
    return f"""
        r2 = {offset}
        r3 = {old:#x} ll
        r4 = {new:#x} ll
        r5 = {flags}
        call bpf_{helper}
        exit
    """


CHECKSUM_AT = 14 + 10    # the IPv4 header checksum
UDP_CHECK_AT = 14 + 20 + 6


@settings(max_examples=20, deadline=None)
@given(st.sampled_from(["l3_csum_replace", "l4_csum_replace"]),
       st.sampled_from([CHECKSUM_AT, UDP_CHECK_AT, 25, 0, len(PACKET) - 2, len(PACKET) - 1,
                        0x10000]),
       U32, U32,
       st.sampled_from([0, 2, 4, 3, 0x10 | 4, 0x20 | 2, 0x60 | 4, 0x80, 0x100]))
def test_checksum_replacements_match_the_kernel(helper, offset, old, new, flags):
    if flags & 0xF == 0 and old and offset % 3 == 0:
        old = 0   # a diff-only update (size 0) needs from == 0
    same(csum_replace(helper, offset, old, new, flags))


def test_a_zero_udp_checksum_stays_zero_with_mark_mangled_0_like_the_kernel():
    packet = bytearray(PACKET)
    packet[UDP_CHECK_AT: UDP_CHECK_AT + 2] = b"\0\0"
    for flags in (0x20 | 4, 0x60 | 4):
        same(csum_replace("l4_csum_replace", UDP_CHECK_AT, 1, 2, flags), packet=bytes(packet))


def csum_diff(from_words: list[int], to_words: list[int], seed: int,
              from_size: int | None = None, to_size: int | None = None) -> str:
    lines = ["r6 = r1"]
    for i, w in enumerate(from_words + to_words):
        lines += [f"r2 = {w:#x}", f"*(u32 *)(r10 - {256 - 4 * i}) = r2"]
    fs = 4 * len(from_words) if from_size is None else from_size
    ts = 4 * len(to_words) if to_size is None else to_size
    lines += ["r1 = r10", "r1 += -256", f"r2 = {fs}", "r3 = r10",
              f"r3 += {-256 + 4 * len(from_words)}", f"r4 = {ts}", f"r5 = {seed:#x}",
              "call bpf_csum_diff", "exit"]
    return "\n".join(lines)


@settings(max_examples=20, deadline=None)
@given(st.lists(U32, max_size=12), st.lists(U32, max_size=12), U32)
def test_csum_diff_sums_like_the_kernel(old, new, seed):
    same(csum_diff(old, new, seed), "xdp")


@pytest.mark.parametrize("from_size,to_size", [(3, 4), (4, 3), (2, 0), (0, 7), (0, 0),
                                               (24, 20)])
def test_csum_diff_takes_sizes_that_are_not_whole_words_like_the_kernel(from_size, to_size):
    words = [0x01020304 + 0x11111111 * i for i in range(12)]
    same(csum_diff(words[:6], words[6:], 0x1234, from_size, to_size), "xdp")


@pytest.mark.parametrize("from_size,to_size", [(1024, 0), (0, 1024), (600, 600), (1, 2047)])
def test_csum_diff_over_a_large_map_value_matches_the_kernel(from_size, to_size):
    source = f"""
    .map big array key=4 value=2048 max_entries=1
        r1 = 0
        *(u32 *)(r10 - 4) = r1
        r2 = r10
        r2 += -4
        r1 = big ll
        call bpf_map_lookup_elem
        if r0 == 0 goto out
        r6 = r0
        r1 = 0x5a5a5a5a5a5a5a5a ll
        *(u64 *)(r6 + 64) = r1
        *(u64 *)(r6 + 1000) = r1
        r1 = r6
        r2 = {from_size}
        r3 = r6
        r3 += 1
        r4 = {to_size}
        r5 = 0x77
        call bpf_csum_diff
    out:
        exit
    """
    same(source, "xdp")


@pytest.mark.parametrize("offset,length", [(0, 8), (52, 8), (53, 8), (0, 1), (59, 1),
                                           (60, 1), (1 << 31, 4)])
def test_xdp_load_and_store_bytes_reach_what_the_kernel_reaches(offset, length):
    source = f"""
        r6 = r1
        r2 = 0x1122334455667788 ll
        *(u64 *)(r10 - 8) = r2
        r2 = {offset}
        r3 = r10
        r3 += -8
        r4 = {length}
        call bpf_xdp_store_bytes
        r7 = r0
        r1 = r6
        r2 = {max(offset - 2, 0)}
        r3 = r10
        r3 += -16
        r4 = {length}
        call bpf_xdp_load_bytes
        r7 <<= 8
        r7 ^= r0
        r0 = *(u8 *)(r10 - 16)
        r0 <<= 16
        r0 ^= r7
        r1 = r6
        call bpf_xdp_get_buff_len
        r0 <<= 40
        r0 ^= r7
        exit
    """
    same(source.replace("*(u64 *)(r10 - 8) = r2", "*(u64 *)(r10 - 8) = r2\n"
                        "        r5 = 0\n        *(u64 *)(r10 - 16) = r5"), "xdp")


@pytest.mark.parametrize("prog_type", ["socket_filter", "sched_cls"])
@pytest.mark.parametrize("offset,length,start", [(0, 8, 0), (0, 8, 1), (12, 2, 0), (9, 1, 1),
                                                 (len(PACKET) - 8, 8, 0),
                                                 (len(PACKET) - 14 - 8, 8, 1),
                                                 (len(PACKET) - 14 - 7, 8, 1), (0, 4, 2),
                                                 (0x10000, 1, 0)])
def test_skb_load_bytes_relative_reads_from_the_header_asked_like_the_kernel(prog_type, offset,
                                                                          length, start):
    source = load_bytes(offset, length).replace(
        "call bpf_skb_load_bytes", f"r5 = {start}\ncall bpf_skb_load_bytes_relative")
    same(source, prog_type)


@pytest.mark.parametrize("prog_type", ["sched_cls", "xdp"])
@pytest.mark.parametrize("flags", [0, 1, 2, 8])
def test_redirect_answers_with_the_kernels_verdict(prog_type, flags):
    same(f"r1 = 1\nr2 = {flags}\ncall bpf_redirect\nexit", prog_type)
