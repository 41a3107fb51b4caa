"""Running a packet program over a capture: every packet of a pcap through one live instance.

What ``pybpf run PROG --type xdp --pcap FILE [-w OUT]`` does: one interpreter (maps kept across
packets, as on a real interface), one run per packet with the type's context built from it as
BPF_PROG_TEST_RUN builds it, verdicts counted by name, and the packets as the program left
them (``xdp_adjust_head`` / ``_tail`` included) written to a new pcap.

Packet programs see Ethernet frames. Linux "cooked" captures (``tcpdump -i any``: SLL and
SLL2) carry no Ethernet header, so one is made up from what they hold (the sender's address
and the protocol; the destination is zero, i.e. this host) and the output file is Ethernet.
A packet the kernel's test run would refuse (shorter than an Ethernet header, an IPv4 frame
without its IP header...) is not run: it is counted as skipped and written unchanged.
"""

from __future__ import annotations

import struct
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import CaptureError, UsageError, VMError

LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2 = 1, 113, 276


def _from_sll(data: bytes) -> bytes | None:
    """Ethernet frame from a Linux cooked (v1) record: 16-byte header, protocol last."""
    if len(data) < 16:
        return None
    addr_len = min(struct.unpack_from("!H", data, 4)[0], 8)
    src = data[6: 6 + addr_len][:6].ljust(6, b"\0")
    return bytes(6) + src + data[14:16] + data[16:]


def _from_sll2(data: bytes) -> bytes | None:
    """Ethernet frame from a Linux cooked v2 record: 20-byte header, protocol first."""
    if len(data) < 20:
        return None
    addr_len = min(data[11], 8)
    src = data[12: 12 + addr_len][:6].ljust(6, b"\0")
    return bytes(6) + src + data[0:2] + data[20:]


TO_ETHERNET: dict[int, Callable[[bytes], bytes | None]] = {
    LINKTYPE_ETHERNET: lambda data: data,
    LINKTYPE_LINUX_SLL: _from_sll,
    LINKTYPE_LINUX_SLL2: _from_sll2,
}


@dataclass
class CaptureRun:
    """Outcome of a run over a capture."""

    packets: int = 0
    verdicts: Counter = field(default_factory=Counter)   # verdict name -> packets
    skipped: list[tuple[int, str]] = field(default_factory=list)   # (packet number, why)

    def as_json(self) -> dict[str, Any]:
        return {"packets": self.packets, "verdicts": dict(self.verdicts),
                "skipped": [{"packet": n, "reason": why} for n, why in self.skipped]}


def run_capture(vm: Any, path: str, *, out_path: str | None = None,
                ctx: bytes | None = None) -> CaptureRun:
    """Run ``vm`` (an :class:`pybpf.vm.Interpreter` with a packet program type) on every
    packet of ``path``; writes the packets as left by the program to ``out_path``."""
    from ..capture.pcapfile import Packet, PcapReader, PcapWriter

    prog_type = vm.prog_type
    if prog_type is None or not prog_type.packet:
        name = prog_type.name if prog_type is not None else "no program type"
        raise UsageError(f"--pcap runs packet programs (xdp, sched_cls, socket_filter, ...), "
                         f"not {name}")
    reader = PcapReader(path)
    convert = TO_ETHERNET.get(reader.linktype)
    if convert is None:
        raise CaptureError(f"{path}: link type {reader.linktype} is not Ethernet or Linux "
                           "cooked; packet programs need Ethernet frames")
    writer = PcapWriter(out_path, LINKTYPE_ETHERNET) if out_path else None
    result = CaptureRun()
    try:
        for number, packet in enumerate(reader, 1):
            result.packets += 1
            frame = convert(packet.data)
            out = frame if frame is not None else packet.data
            if frame is None:
                result.skipped.append((number, "record too short for its link-layer header"))
            else:
                try:
                    r0 = vm.run(frame, ctx=ctx)
                except UsageError as exc:    # a frame the kernel's test run would refuse
                    result.skipped.append((number, str(exc)))
                except VMError as exc:       # a fault: say on which packet
                    raise type(exc)(f"packet {number} of {path}: {exc.message}", pc=exc.pc,
                                    address=exc.address, source=exc.source) from None
                else:
                    result.verdicts[prog_type.verdict_name(r0)] += 1
                    out = vm.context.frame_out()
            if writer is not None:
                writer.write(Packet(packet.sec, packet.nsec, out,
                                    len(out) + max(packet.wirelen - len(packet.data), 0)))
    finally:
        if writer is not None:
            writer.close()
    return result
