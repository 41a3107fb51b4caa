"""``__sk_buff`` contexts: every readable field, the packet a program sees and the context and
data handed back are the kernel's (BPF_PROG_TEST_RUN) for socket_filter and sched_cls."""

from __future__ import annotations

import pytest

from pybpf.errors import BPFError, UsageError
from pybpf.progtypes import PROG_TYPES

from .compare import both, frame, in_kernel, in_pybpf, ipv4

pytestmark = pytest.mark.kernel

PACKETS = [
    frame(payload=ipv4(6, payload=b"tcp-ish payload")),
    frame(dest=b"\xff" * 6, payload=ipv4(17)),
    frame(dest=bytes(6), ethertype=0x86DD, payload=bytes(range(40))),
    frame(dest=b"\x01\x00\x5e\x00\x00\x01", ethertype=0x0806)[:14],
]


def readable(prog_type: str):
    pt = PROG_TYPES[prog_type]
    return [f for f in pt.fields if f.readable and not f.pointer and f.size in (4, 8)
            and f.name not in ("sk", "cb", "flow_keys")]


@pytest.mark.parametrize("prog_type", ["socket_filter", "sched_cls", "cgroup_skb"])
@pytest.mark.parametrize("packet", PACKETS, ids=["tcp", "broadcast", "ipv6", "bare-header"])
def test_every_readable_field_has_the_kernels_value(prog_type, packet):
    for f in readable(prog_type):
        size = "u64" if f.size == 8 else "u32"
        if prog_type == "cgroup_skb":
            # it may only return 0 or 1: the value goes out through cb[0..1]
            source = f"r2 = *({size} *)(r1 + {f.offset})\n*(u64 *)(r1 + 48) = r2\n" \
                     "r0 = 1\nexit" if f.size == 8 else \
                     f"r2 = *(u32 *)(r1 + {f.offset})\n*(u32 *)(r1 + 48) = r2\nr0 = 1\nexit"
            kernel, ours = both(source, prog_type, packet, bytes(192))
            assert ours.ctx_out == kernel.ctx_out[:192], f.name
            continue
        source = f"r0 = *({size} *)(r1 + {f.offset})\nexit"
        kernel, ours = both(source, prog_type, packet)
        assert ours.retval == kernel.retval, f.name


@pytest.mark.parametrize("prog_type", ["socket_filter", "sched_cls"])
def test_narrow_loads_of_the_protocol_field_read_its_bytes(prog_type):
    for off, size in ((16, "u8"), (17, "u8"), (16, "u16"), (4, "u8")):
        source = f"r0 = *({size} *)(r1 + {off})\nexit"
        kernel, ours = both(source, prog_type, PACKETS[0])
        assert ours.retval == kernel.retval


def test_tc_data_pointers_span_the_whole_frame_like_the_kernel():
    source = """
        r2 = *(u32 *)(r1 + 76)
        r3 = *(u32 *)(r1 + 80)
        r4 = *(u32 *)(r1 + 140)
        r0 = r3
        r0 -= r2
        r4 -= r2
        r4 <<= 16
        r0 |= r4
        exit
    """
    for packet in PACKETS:
        kernel, ours = both(source, "sched_cls", packet)
        assert ours.retval == kernel.retval


@pytest.mark.parametrize("prog_type", ["socket_filter", "sched_cls"])
def test_legacy_packet_loads_start_where_the_kernel_puts_skb_data(prog_type):
    source = "r6 = r1\nr0 = *(u8 *)skb[0]\nexit"
    kernel, ours = both(source, prog_type, PACKETS[0])
    assert ours.retval == kernel.retval
    assert ours.data_out == kernel.data_out


def test_writable_fields_come_back_in_the_context_like_the_kernels():
    source = """
        r2 = 7
        *(u32 *)(r1 + 8) = r2
        *(u32 *)(r1 + 32) = r2
        *(u32 *)(r1 + 48) = r2
        *(u8 *)(r1 + 66) = r2
        r0 = *(u32 *)(r1 + 40)
        exit
    """
    ctx = bytearray(192)
    ctx[8] = 3          # mark
    ctx[164] = 2        # gso_segs
    for prog_type in ("sched_cls",):
        kernel, ours = both(source, prog_type, PACKETS[0], bytes(ctx))
        assert ours.retval == kernel.retval
        assert ours.ctx_out == kernel.ctx_out[:192]


def test_socket_filter_context_given_back_matches_the_kernel():
    source = "r2 = 9\n*(u32 *)(r1 + 52) = r2\nr0 = *(u32 *)(r1 + 8)\nexit"
    ctx = bytearray(192)
    ctx[8] = 5
    kernel, ours = both(source, "socket_filter", PACKETS[1], bytes(ctx))
    assert ours.retval == kernel.retval
    assert ours.ctx_out == kernel.ctx_out[:192]
    assert ours.data_out == kernel.data_out


@pytest.mark.parametrize("field_offset", [0, 12, 16, 44, 68])
def test_a_context_field_the_kernel_will_not_take_is_refused_like_the_kernel(field_offset):
    from pybpf.errors import KernelError

    ctx = bytearray(192)
    ctx[field_offset] = 1
    with pytest.raises(KernelError):
        in_kernel("r0 = 0\nexit", "sched_cls", PACKETS[0], bytes(ctx))
    with pytest.raises(UsageError, match="field"):
        in_pybpf("r0 = 0\nexit", "sched_cls", PACKETS[0], bytes(ctx))


def test_a_frame_shorter_than_an_ethernet_header_is_refused_like_the_kernel():
    from pybpf.errors import KernelError

    with pytest.raises(KernelError):
        in_kernel("r0 = 0\nexit", "socket_filter", b"\0" * 13)
    with pytest.raises(UsageError, match="14-byte"):
        in_pybpf("r0 = 0\nexit", "socket_filter", b"\0" * 13)


def test_a_context_larger_than_sk_buff_is_a_clear_error():
    with pytest.raises(UsageError, match="__sk_buff"):
        in_pybpf("r0 = 0\nexit", "sched_cls", PACKETS[0], bytes(200))


@pytest.mark.parametrize("source", [
    "r0 = *(u32 *)(r1 + 76)\nexit",            # data: not for socket filters
    "r2 = 1\n*(u32 *)(r1 + 8) = r2\nr0 = 0\nexit",   # mark is read-only there
    "r0 = *(u32 *)(r1 + 2)\nexit",             # misaligned
    "r0 = *(u64 *)(r1 + 0)\nexit",             # wider than the field
])
def test_context_accesses_the_kernel_rejects_are_refused_at_load(source):
    from pybpf.errors import KernelError

    with pytest.raises(KernelError):
        in_kernel(source, "socket_filter", PACKETS[0])
    with pytest.raises(BPFError, match="context access"):
        in_pybpf(source, "socket_filter", PACKETS[0])


def test_a_copied_and_spilled_context_pointer_is_still_rewritten():
    source = """
        r6 = r1
        *(u64 *)(r10 - 8) = r6
        r1 = 0
        r7 = *(u64 *)(r10 - 8)
        r2 = *(u32 *)(r7 + 76)
        r3 = *(u32 *)(r7 + 80)
        r0 = r3
        r0 -= r2
        exit
    """
    kernel, ours = both(source, "sched_cls", PACKETS[0])
    assert ours.retval == kernel.retval == len(PACKETS[0])
