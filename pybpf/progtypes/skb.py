"""Socket buffer programs: socket_filter, sched_cls / sched_act (tc), cgroup_skb (``__sk_buff``).

The context is ``struct __sk_buff`` (include/uapi/linux/bpf.h) and the packet is what the
kernel's BPF_PROG_TEST_RUN builds (``bpf_prog_test_run_skb`` in net/bpf/test_run.c): the
data must hold at least an Ethernet header; ``eth_type_trans`` takes the protocol and packet
type from it and pulls it, so socket filters and cgroup programs see the packet from the network
header on (``len`` is 14 bytes shorter, ``skb_load_bytes(skb, 0, ...)`` reads the IP header)
while tc programs (layer 2) see the whole frame. The device is the loopback (ifindex 1, address
00:00:00:00:00:00). The data handed back starts at the Ethernet header, which socket filters
get back zeroed.

Field rules follow ``sk_filter_is_valid_access``, ``tc_cls_act_is_valid_access`` and
``cg_skb_is_valid_access``; the values the kernel fills were read from the running kernel (see
tests/progtypes/test_skb.py, which compares every readable field).
"""

from __future__ import annotations

import ctypes

from ..errors import UsageError
from ..memory import Region
from .base import Context, Field, ProgType, check_ctx_size, native_buffer
from .helpers import helpers_of

ETH_HLEN = 14
SKB_SIZE = 192

# name, offset, size (struct __sk_buff)
LAYOUT = (
    ("len", 0, 4), ("pkt_type", 4, 4), ("mark", 8, 4), ("queue_mapping", 12, 4),
    ("protocol", 16, 4), ("vlan_present", 20, 4), ("vlan_tci", 24, 4), ("vlan_proto", 28, 4),
    ("priority", 32, 4), ("ingress_ifindex", 36, 4), ("ifindex", 40, 4), ("tc_index", 44, 4),
    ("cb", 48, 20), ("hash", 68, 4), ("tc_classid", 72, 4), ("data", 76, 4),
    ("data_end", 80, 4), ("napi_id", 84, 4), ("family", 88, 4), ("remote_ip4", 92, 4),
    ("local_ip4", 96, 4),
    *((f"remote_ip6[{i}]", 100 + 4 * i, 4) for i in range(4)),
    *((f"local_ip6[{i}]", 116 + 4 * i, 4) for i in range(4)),
    ("remote_port", 132, 4), ("local_port", 136, 4), ("data_meta", 140, 4),
    ("flow_keys", 144, 8), ("tstamp", 152, 8), ("wire_len", 160, 4), ("gso_segs", 164, 4),
    ("sk", 168, 8), ("gso_size", 176, 4), ("tstamp_type", 180, 1), ("hwtstamp", 184, 8),
)
POINTERS = {"data", "data_end", "data_meta"}
SOCKET_FIELDS = {"family", "remote_ip4", "local_ip4", "remote_port", "local_port",
                 *(f"{side}_ip6[{i}]" for side in ("remote", "local") for i in range(4))}
#: fields read whole only: the 64-bit ones and the socket's (``bpf_skb_is_valid_access``,
#: ``sk_filter``/``cg_skb`` rules)
WHOLE_READS = {"tstamp", "sk", "hwtstamp", "flow_keys", "remote_ip4", "local_ip4",
               *(f"{side}_ip6[{i}]" for side in ("remote", "local") for i in range(4))}

#: per type: fields it may not read, fields it may write
RULES = {
    "socket_filter": ({"tc_classid", "data", "data_end", "data_meta", "tstamp", "wire_len",
                       "hwtstamp", "flow_keys", "tstamp_type"} | SOCKET_FIELDS,
                      {"cb"}),
    "sched_cls": ({"flow_keys"} | SOCKET_FIELDS,
                  {"mark", "tc_index", "priority", "tc_classid", "cb", "tstamp",
                   "queue_mapping"}),
    "cgroup_skb": ({"tc_classid", "data_meta", "flow_keys", "tstamp_type", "wire_len"},
                   {"mark", "priority", "cb", "tstamp"}),
}
RULES["sched_act"] = RULES["sched_cls"]

#: fields BPF_PROG_TEST_RUN accepts non-zero in the context it is given
#: (``convert___skb_to_skb``); any other non-zero byte is EINVAL
CTX_IN_FIELDS = ("mark", "priority", "ingress_ifindex", "ifindex", "cb", "tstamp", "wire_len",
                 "gso_segs", "gso_size", "hwtstamp")
#: fields handed back (``convert_skb_to___skb``)
CTX_OUT_FIELDS = ("mark", "priority", "ingress_ifindex", "ifindex", "cb", "tstamp",
                  "wire_len", "gso_segs", "gso_size", "hwtstamp")

TC_VERDICTS = {0xFFFFFFFF: "TC_ACT_UNSPEC", 0: "TC_ACT_OK", 1: "TC_ACT_RECLASSIFY",
               2: "TC_ACT_SHOT", 3: "TC_ACT_PIPE", 4: "TC_ACT_STOLEN", 5: "TC_ACT_QUEUED",
               6: "TC_ACT_REPEAT", 7: "TC_ACT_REDIRECT", 8: "TC_ACT_TRAP"}
CGROUP_VERDICTS = {0: "drop", 1: "allow"}

PACKET_HOST, PACKET_MULTICAST, PACKET_OTHERHOST = 0, 2, 3
LOOPBACK_IFINDEX = 1
AF_INET, AF_INET6 = 2, 10
#: BPF_PROG_TEST_RUN reads the addresses of IPv4 and IPv6 frames into its socket: it wants
#: the whole network header
NETWORK_HEADERS = {b"\x08\x00": ("IPv4", 20), b"\x86\xdd": ("IPv6", 40)}


def fields_for(prog_type: str) -> tuple[Field, ...]:
    unreadable, writable = RULES[prog_type]
    return tuple(Field(name, off, size, readable=name not in unreadable,
                       writable=name in writable, pointer=name in POINTERS,
                       narrow_write=name == "cb", narrow_read=name not in WHOLE_READS)
                 for name, off, size in LAYOUT)


def pkt_type(frame: bytes) -> int:
    """``eth_type_trans`` on the loopback device (address and broadcast all zero)."""
    dest = frame[:6]
    if dest == bytes(6):
        return PACKET_HOST
    return PACKET_MULTICAST if dest[0] & 1 else PACKET_OTHERHOST


class SkbContext(Context):
    """A ``__sk_buff`` over a copy of the packet (``packet`` is the linear data from
    ``skb->data``; the Ethernet header is in front of it for socket filters)."""

    def __init__(self, prog_type: ProgType, memory, data: bytes, ctx_in: bytes | None):
        data, raw = self._check(prog_type, data, ctx_in)
        super().__init__(prog_type, memory, b"")
        self.l2 = prog_type.name in ("sched_cls", "sched_act")
        self.frame_buffer = native_buffer(len(data), data)
        self.head = 0 if self.l2 else ETH_HLEN
        base = ctypes.addressof(self.frame_buffer)
        self.packet = self.add_region(Region("packet", base + self.head, len(data) - self.head,
                                             True, None))
        self.redirect: tuple[str, int, int] | None = None
        self.given_ctx = ctx_in is not None
        self._fill(data, raw)

    def reset(self, data: bytes, ctx_in: bytes | None) -> bool:
        """Reuse the context and packet buffer for a frame of the same length."""
        if len(data) != len(self.frame_buffer):
            return False
        data, raw = self._check(self.prog_type, data, ctx_in)
        ctypes.memset(self.buffer, 0, self.prog_type.real_ctx_size)
        ctypes.memmove(self.frame_buffer, data, len(data))
        self.redirect = None
        self.given_ctx = ctx_in is not None
        self._fill(data, raw)
        return True

    @classmethod
    def _check(cls, prog_type: ProgType, data: bytes, ctx_in: bytes | None):
        """What BPF_PROG_TEST_RUN refuses with EINVAL; returns (data, context bytes)."""
        data = bytes(data)
        if len(data) < ETH_HLEN:
            raise UsageError(f"a {prog_type.name} program runs on an Ethernet frame: "
                             f"{len(data)} bytes is shorter than its 14-byte header")
        network = NETWORK_HEADERS.get(data[12:14])
        if network is not None and len(data) < ETH_HLEN + network[1]:
            raise UsageError(f"an {network[0]} frame needs its {network[1]}-byte header: "
                             f"{len(data)} bytes is too short (the kernel answers EINVAL)")
        raw = check_ctx_size(prog_type, ctx_in)
        cls._check_ctx_in(prog_type, raw)
        return data, raw

    @staticmethod
    def _check_ctx_in(prog_type: ProgType, raw: bytes) -> None:
        if not any(raw):
            return
        allowed = bytearray(SKB_SIZE)
        for name in CTX_IN_FIELDS:
            f = prog_type.field(name)
            allowed[f.offset: f.end] = b"\1" * f.size
        for off, byte in enumerate(raw):
            if byte and not allowed[off]:
                f = prog_type.field_at(off)
                raise UsageError(f"BPF_PROG_TEST_RUN takes no value for __sk_buff field "
                                 f"'{f.name if f else off}' (the kernel answers EINVAL); "
                                 f"settable: {', '.join(CTX_IN_FIELDS)}")

    def _fill(self, frame: bytes, raw: bytes) -> None:
        pt = self.prog_type
        if any(raw):
            for name in CTX_IN_FIELDS:
                f = pt.field(name)
                if f.offset < len(raw):
                    self.region.view[f.offset: f.end] = raw[f.offset: f.end].ljust(f.size,
                                                                                     b"\0")
        if not self.get("ifindex"):
            self.set_u32("ifindex", LOOPBACK_IFINDEX)
        length = self.packet.size
        wire = self.get("wire_len")
        if wire and wire < length:
            raise UsageError(f"__sk_buff wire_len {wire} is shorter than the packet ({length} "
                             "bytes); the kernel answers EINVAL")
        self.wire_len = wire or length
        self.set_u32("wire_len", 0)
        self.set_u32("len", length)
        self.set_u32("pkt_type", pkt_type(frame))
        self.set_u32("protocol", int.from_bytes(frame[12:14], "little"))
        self._fill_socket(frame)
        self.update_pointers()

    def _fill_socket(self, frame: bytes) -> None:
        """The socket BPF_PROG_TEST_RUN attaches: its family and addresses come from the IPv4
        or IPv6 header (destination = remote, source = local); ports stay 0."""
        view = self.region.view
        network = NETWORK_HEADERS.get(frame[12:14])
        if network is None:
            return
        if network[0] == "IPv4":
            self.set_u32("family", AF_INET)
            view[92:96] = frame[14 + 16: 14 + 20]     # remote_ip4 = daddr
            view[96:100] = frame[14 + 12: 14 + 16]    # local_ip4 = saddr
        else:
            self.set_u32("family", AF_INET6)
            view[100:116] = frame[14 + 24: 14 + 40]   # remote_ip6 = daddr
            view[116:132] = frame[14 + 8: 14 + 24]    # local_ip6 = saddr

    def update_pointers(self) -> None:
        start = self.packet.address
        self.set_pointer("data", start)
        self.set_pointer("data_meta", start)
        self.set_pointer("data_end", start + self.packet.size)

    def data_out(self) -> bytes:
        body = self.packet.bytes()
        if self.l2:
            return body
        return bytes(ETH_HLEN) + body

    def frame_out(self) -> bytes:
        return bytes(self.frame_buffer[: self.head]) + self.packet.bytes()

    def ctx_out(self) -> bytes | None:
        if not self.given_ctx:
            return None
        out = bytearray(SKB_SIZE)
        for name in CTX_OUT_FIELDS:
            f = self.prog_type.field(name)
            out[f.offset: f.end] = self.region.view[f.offset: f.end]
        wire = self.prog_type.field("wire_len")
        out[wire.offset: wire.end] = self.wire_len.to_bytes(4, "little")
        return bytes(out)


def _prog_type(name: str, verdicts: dict[int, str], returns: str) -> ProgType:
    pt = ProgType(name, "__sk_buff", SKB_SIZE, fields_for(name), None,  # type: ignore[arg-type]
                  helpers_of(name), verdicts, returns, packet=True)
    pt.make_context = lambda memory, data=b"", ctx=None: SkbContext(pt, memory, data, ctx)
    return pt


PROG_TYPES = {
    "socket_filter": _prog_type("socket_filter", {0: "drop"},
                                "bytes of the packet to keep (0 drops it)"),
    "sched_cls": _prog_type("sched_cls", TC_VERDICTS, "a TC_ACT_* verdict"),
    "sched_act": _prog_type("sched_act", TC_VERDICTS, "a TC_ACT_* verdict"),
    "cgroup_skb": _prog_type("cgroup_skb", CGROUP_VERDICTS, "1 allows the packet, 0 drops it"),
}
