"""The tap: read packets (file or live), keep those the filter accepts, then print a summary
line or append them to a pcap file. Files are filtered by the compiled Python fast path
(:mod:`pybpf.cbpf.pyjit`), live captures by the kernel (SO_ATTACH_FILTER)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..cbpf import machine
from ..cbpf.codegen import FILE_LINKTYPES, compile_expression
from ..cbpf.pyjit import compile_packet_filter
from ..errors import CaptureError, FilterError, UsageError
from .pcapfile import Packet, PcapReader, PcapWriter, same_file
from .summary import Summarizer


def _by_index(matches: set[int]):
    counter = iter(range(1 << 62))
    return lambda pkt: next(counter) in matches


@dataclass
class TapStats:
    seen: int = 0
    matched: int = 0


def _packet_filter(expr: str, linktype: int, snaplen: int):
    if linktype not in FILE_LINKTYPES:
        if expr.strip():
            raise FilterError(f"link type {linktype} is not supported by the filter compiler")
        return lambda pkt: True
    insns = compile_expression(expr, linktype, snaplen=snaplen or 262144) if expr.strip() else None
    if insns is None:
        return lambda pkt: True
    fast = compile_packet_filter(insns)
    if fast is not None:
        return lambda pkt: fast(pkt.data, 0, len(pkt.data), pkt.wirelen) != 0
    return lambda pkt: machine.run(insns, pkt.data, wirelen=pkt.wirelen) != 0


#: classic pcap files at least this big are filtered by the LLVM batch JIT first
BATCH_THRESHOLD = 16 << 20


def _batch_matches(reader: PcapReader, expr: str) -> set[int] | None:
    """Indexes of the matching records via the LLVM batch JIT, or None (not applicable)."""
    if reader.format != "pcap" or reader.endian != "<" or not expr.strip() \
            or reader.linktype not in FILE_LINKTYPES:
        return None
    try:
        from ..cbpf.llvmjit import compile_batch
        batch = compile_batch(compile_expression(expr, reader.linktype,
                                                 snaplen=reader.snaplen or 262144))
    except ImportError:
        return None
    if batch is None:
        return None
    try:
        return set(batch.scan(reader.buf))
    except CaptureError:
        return None      # damaged file: let the record reader report exactly where


def run_tap(expr: str, *, read_file: str | None = None, interface: str | None = None,
            write_file: str | None = None, count: int | None = None,
            timeout: float | None = None,
            on_packet: Callable[[Packet, str], None] | None = None,
            batch_threshold: int | None = None) -> TapStats:
    stats = TapStats()
    if read_file is not None and write_file is not None and same_file(read_file, write_file):
        raise UsageError(f"refusing to write to the input file {read_file}")
    if read_file is not None:
        source = PcapReader(read_file)
        linktype, snaplen = source.linktype, source.snaplen
        accept = _packet_filter(expr, linktype, snaplen)
        threshold = BATCH_THRESHOLD if batch_threshold is None else batch_threshold
        if len(source.buf) >= threshold:
            matches = _batch_matches(source, expr)
            if matches is not None:
                accept = _by_index(matches)
        packets = iter(source)
        live = None
    else:
        from .live import LiveCapture
        insns = (compile_expression(expr, "EN10MB", linux_ext=True) if expr.strip() else None)
        live = LiveCapture(interface, insns)
        linktype, snaplen = live.linktype, 262144
        accept = lambda pkt: True   # noqa: E731 -- the kernel already filtered
        packets = live.packets(timeout)
    writer = PcapWriter(write_file, linktype, snaplen or 262144) if write_file else None
    summarize = Summarizer(linktype)
    try:
        for pkt in packets:
            stats.seen += 1
            if not accept(pkt):
                continue
            stats.matched += 1
            if writer is not None:
                writer.write(pkt)
            elif on_packet is not None:
                on_packet(pkt, summarize(pkt))
            if count is not None and stats.matched >= count:
                break
    except CaptureError:
        raise
    finally:
        if writer is not None:
            writer.close()
        if live is not None:
            live.close()
    return stats
