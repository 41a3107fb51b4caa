"""XDP programs (``struct xdp_md``) and their frames.

The frame is laid out as BPF_PROG_TEST_RUN lays it out (``bpf_prog_test_run_xdp`` in
net/bpf/test_run.c): a 4096-byte page, 256 bytes of headroom (XDP_PACKET_HEADROOM) in front of
the packet, of which the first 40 hold ``struct xdp_frame`` and stay out of reach, and the
320-byte ``skb_shared_info`` tailroom at the end. ``bpf_xdp_adjust_head`` / ``_meta`` / ``_tail``
(:mod:`pybpf.helpers.packet`) move ``data_meta``, ``data`` and ``data_end`` within those bounds
through :class:`XdpContext`. The program's packet region is ``[data_meta, data_end)``; the data
handed back is the same range (metadata included), and the context handed back gives
``data`` and ``data_end`` relative to ``data_meta`` (``xdp_convert_buff_to_md``).
"""

from __future__ import annotations

import ctypes
import struct

from ..errors import UsageError
from ..memory import Region
from .base import Context, Field, ProgType, check_ctx_size, native_buffer
from .helpers import helpers_of

XDP_MD_SIZE = 24
PAGE_SIZE = 4096
XDP_PACKET_HEADROOM = 256
XDP_FRAME_SIZE = 40          # sizeof(struct xdp_frame): the start of the headroom it occupies
TAILROOM = 320               # SKB_DATA_ALIGN(sizeof(struct skb_shared_info))
MAX_DATA = PAGE_SIZE - XDP_PACKET_HEADROOM - TAILROOM
ETH_HLEN = 14
META_MAX = 255               # skb_shared_info.meta_len is a u8
EINVAL, EACCES = 22, 13

XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX, XDP_REDIRECT = range(5)
VERDICTS = {XDP_ABORTED: "XDP_ABORTED", XDP_DROP: "XDP_DROP", XDP_PASS: "XDP_PASS",
            XDP_TX: "XDP_TX", XDP_REDIRECT: "XDP_REDIRECT"}

#: ``xdp_is_valid_access``: every field is read whole (32 bits), none is written
FIELDS = (
    Field("data", 0, 4, pointer=True),
    Field("data_end", 4, 4, pointer=True),
    Field("data_meta", 8, 4, pointer=True),
    Field("ingress_ifindex", 12, 4, narrow_read=False),
    Field("rx_queue_index", 16, 4, narrow_read=False),
    Field("egress_ifindex", 20, 4, readable=False),
)


class XdpContext(Context):
    """An ``xdp_md`` over a frame; offsets below are from the frame's hard start."""

    def __init__(self, prog_type: ProgType, memory, data: bytes, ctx_in: bytes | None):
        data, metalen, ingress, rxq = self._parse(prog_type, data, ctx_in)
        super().__init__(prog_type, memory, b"")
        size = len(data) - metalen
        self.frame_size = self._frame_size(size)
        self.frame = native_buffer(self.frame_size)
        self.base = ctypes.addressof(self.frame)
        self.packet = None
        self.redirect: tuple[str, int, int] | None = None
        self._load(data, metalen, ingress, rxq, ctx_in is not None)

    @staticmethod
    def _parse(prog_type: ProgType, data: bytes, ctx_in: bytes | None):
        """Check the data and context as BPF_PROG_TEST_RUN does; (data, metadata length,
        ingress_ifindex, rx_queue_index)."""
        data = bytes(data)
        raw = check_ctx_size(prog_type, ctx_in)
        metalen = ingress = rxq = 0
        if ctx_in is not None:
            md = raw.ljust(XDP_MD_SIZE, b"\0")
            c_data, c_end, c_meta, ingress, rxq, egress = struct.unpack("<6I", md)
            if c_meta or c_end != len(data) or c_data > c_end or c_data % 4 or egress \
                    or c_data > XDP_PACKET_HEADROOM - XDP_FRAME_SIZE:
                raise UsageError("xdp_md for BPF_PROG_TEST_RUN: data_meta and egress_ifindex "
                                 "must be 0, data_end the data size and data the length of "
                                 "the metadata in front of the packet (a multiple of 4); the "
                                 "kernel answers EINVAL")
            metalen = c_data
        if len(data) - metalen < ETH_HLEN:
            raise UsageError(f"an xdp program runs on an Ethernet frame: {len(data) - metalen} "
                             "bytes is shorter than its 14-byte header (the kernel answers "
                             "EINVAL)")
        return data, metalen, ingress, rxq

    @staticmethod
    def _frame_size(size: int) -> int:
        return max(PAGE_SIZE, XDP_PACKET_HEADROOM + size + TAILROOM)

    def _load(self, data: bytes, metalen: int, ingress: int, rxq: int, given: bool) -> None:
        """Lay the packet out in the (zeroed) frame and point the context at it."""
        size = len(data) - metalen
        self.set_u32("ingress_ifindex", ingress)
        self.set_u32("rx_queue_index", rxq)
        self.data = XDP_PACKET_HEADROOM
        self.meta = self.data - metalen
        ctypes.memmove(self.base + self.meta, data, len(data))
        self.data_end = self.data + size
        self.given_ctx = given
        self._sync()

    def reset(self, data: bytes, ctx_in: bytes | None) -> bool:
        """Reuse this context (frame, regions) for the next run when the frame fits."""
        data, metalen, ingress, rxq = self._parse(self.prog_type, data, ctx_in)
        if self._frame_size(len(data) - metalen) != self.frame_size:
            return False
        ctypes.memset(self.buffer, 0, self.prog_type.real_ctx_size)
        ctypes.memset(self.frame, 0, self.frame_size)
        self.redirect = None
        self._load(data, metalen, ingress, rxq, ctx_in is not None)
        return True

    @property
    def hard_end(self) -> int:
        """How far ``data_end`` may grow (the start of the shared-info tailroom)."""
        return self.frame_size - TAILROOM

    def _sync(self) -> None:
        """Rebuild the packet region and the context's pointers after a bound moved."""
        packet = self.packet
        if packet is not None:
            if packet.address == self.base + self.meta and \
                    packet.size == self.data_end - self.meta:
                self._set_pointers()
                return
            self.remove_region(packet)
        self.packet = self.add_region(Region("packet", self.base + self.meta,
                                             self.data_end - self.meta, True, None))
        self._set_pointers()

    def _set_pointers(self) -> None:
        self.set_pointer("data", self.base + self.data)
        self.set_pointer("data_meta", self.base + self.meta)
        self.set_pointer("data_end", self.base + self.data_end)

    # --- what the helpers do (bpf_xdp_adjust_* in net/core/filter.c); 0 or False on EINVAL ---
    def adjust_head(self, delta: int) -> bool:
        metalen = self.data - self.meta
        data = self.data + delta
        if data < XDP_FRAME_SIZE + metalen or data > self.data_end - ETH_HLEN:
            return False
        if metalen:
            ctypes.memmove(self.base + self.meta + delta, self.base + self.meta, metalen)
        self.meta += delta
        self.data = data
        self._sync()
        return True

    def adjust_meta(self, delta: int) -> int:
        """0, or the kernel's -errno: EINVAL outside the headroom, EACCES for a metadata
        length that is not a multiple of 4 (``xdp_metalen_invalid``)."""
        meta = self.meta + delta
        metalen = self.data - meta
        if meta > self.data or meta < XDP_FRAME_SIZE:
            return -EINVAL
        if metalen % 4 or metalen > META_MAX:
            return -EACCES
        self.meta = meta
        self._sync()
        return 0

    def adjust_tail(self, delta: int) -> bool:
        end = self.data_end + delta
        if end > self.hard_end or end < self.data + ETH_HLEN:
            return False
        if delta > 0:   # grown bytes are zeroed (bpf_xdp_adjust_tail)
            ctypes.memset(self.base + self.data_end, 0, delta)
        self.data_end = end
        self._sync()
        return True

    def data_out(self) -> bytes:
        return bytes(self.packet.view[: self.packet.size])

    def frame_out(self) -> bytes:
        start = self.data - self.meta
        return bytes(self.packet.view[start: self.packet.size])

    def ctx_out(self) -> bytes | None:
        if not self.given_ctx:
            return None
        return struct.pack("<6I", self.data - self.meta, self.data_end - self.meta, 0,
                           self.get("ingress_ifindex"), self.get("rx_queue_index"), 0)


def _make() -> ProgType:
    pt = ProgType("xdp", "xdp_md", XDP_MD_SIZE, FIELDS, None,  # type: ignore[arg-type]
                  helpers_of("xdp"), VERDICTS, "an XDP_* verdict", packet=True)
    pt.make_context = lambda memory, data=b"", ctx=None: XdpContext(pt, memory, data, ctx)
    return pt


PROG_TYPES = {"xdp": _make()}
