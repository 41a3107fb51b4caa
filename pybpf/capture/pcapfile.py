"""pcap and pcapng files: reading (with exact positions for corrupt or truncated files) and
writing pcap.

The classic pcap format is read directly (global header, then 16-byte record headers) so that
errors name the packet number and byte offset and the whole file can be scanned fast; pcapng
is read through dpkt. Output is always classic pcap, written one complete record per write,
so an interrupted tap never leaves half a packet behind.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import BinaryIO, Iterator

import dpkt

from ..errors import CaptureError

PCAP_MAGIC_US = 0xA1B2C3D4
PCAP_MAGIC_NS = 0xA1B23C4D
PCAPNG_MAGIC = 0x0A0D0D0A
MAX_RECORD = 0x4000000   # 64 MiB: larger records mean the file is corrupt


@dataclass
class Packet:
    """One captured packet: timestamp (seconds, nanoseconds), bytes, original length."""

    sec: int
    nsec: int
    data: bytes
    wirelen: int

    @property
    def ts(self) -> float:
        return self.sec + self.nsec / 1e9


class PcapReader:
    """Iterate the packets of a pcap or pcapng file: ``for pkt in PcapReader(path)``.

    ``linktype`` and ``snaplen`` come from the file header; a damaged file raises
    :class:`CaptureError` *after* the packets before the damage have been yielded."""

    def __init__(self, path: str):
        self.path = path
        try:
            with open(path, "rb") as f:
                self.buf = f.read()
        except OSError as exc:
            raise CaptureError(f"{path}: {exc.strerror}") from None
        buf = self.buf
        if len(buf) < 4:
            raise CaptureError(f"{path}: not a pcap or pcapng file (only {len(buf)} bytes)")
        magic_le = struct.unpack_from("<I", buf)[0]
        self.format = "pcap"
        if magic_le == PCAPNG_MAGIC:
            self.format = "pcapng"
            self._init_pcapng()
            return
        for endian in "<>":
            magic = struct.unpack_from(endian + "I", buf)[0]
            if magic in (PCAP_MAGIC_US, PCAP_MAGIC_NS):
                self.endian = endian
                self.nano = magic == PCAP_MAGIC_NS
                break
        else:
            raise CaptureError(f"{path}: not a pcap or pcapng file (magic 0x{magic_le:08x})")
        if len(buf) < 24:
            raise CaptureError(f"{path}: truncated pcap file header ({len(buf)} of 24 bytes)")
        _, major, minor, _, _, self.snaplen, lt = struct.unpack_from(self.endian + "IHHiIII", buf)
        self.linktype = lt & 0xFFFF
        self.version = (major, minor)

    def _init_pcapng(self) -> None:
        import io
        try:
            self._ng = dpkt.pcapng.Reader(io.BytesIO(self.buf))
        except (ValueError, dpkt.dpkt.Error, struct.error) as exc:
            raise CaptureError(f"{self.path}: bad pcapng section header: {exc}") from None
        self.linktype = self._ng.datalink()
        self.snaplen = self._ng.snaplen
        self.nano = False

    def __iter__(self) -> Iterator[Packet]:
        if self.format == "pcapng":
            yield from self._iter_pcapng()
            return
        yield from self._iter_pcap()

    def _iter_pcap(self) -> Iterator[Packet]:
        buf, path = self.buf, self.path
        hdr = struct.Struct(self.endian + "IIII")
        off, n, end = 24, 0, len(buf)
        scale = 1 if self.nano else 1000
        while off < end:
            n += 1
            if off + 16 > end:
                raise CaptureError(f"{path}: truncated record header of packet {n} at byte "
                                   f"{off} ({end - off} of 16 bytes)")
            sec, frac, caplen, wirelen = hdr.unpack_from(buf, off)
            if caplen > MAX_RECORD:
                raise CaptureError(f"{path}: packet {n} at byte {off} claims {caplen} bytes "
                                   "(corrupt record header)")
            data_off = off + 16
            if data_off + caplen > end:
                raise CaptureError(f"{path}: truncated packet {n} at byte {off}: record says "
                                   f"{caplen} bytes, only {end - data_off} remain")
            yield Packet(sec, frac * scale, buf[data_off:data_off + caplen], wirelen)
            off = data_off + caplen

    def _iter_pcapng(self) -> Iterator[Packet]:
        it = iter(self._ng)
        n = 0
        while True:
            n += 1
            try:
                ts, data = next(it)
            except StopIteration:
                return
            except (ValueError, dpkt.dpkt.Error, struct.error, IndexError) as exc:
                raise CaptureError(f"{self.path}: corrupt pcapng block near packet {n}: "
                                   f"{exc or type(exc).__name__}") from None
            sec = int(ts)
            usec = int(round((ts - sec) * 1e6))   # dpkt gives a float: round to microseconds
            if usec >= 1_000_000:
                sec, usec = sec + 1, usec - 1_000_000
            yield Packet(sec, usec * 1000, bytes(data), len(data))

    def records(self) -> Iterator[tuple[int, int]]:
        """(offset, caplen) of each packet's data in :attr:`buf` (pcap only): the fast path."""
        if self.format != "pcap":
            raise CaptureError(f"{self.path}: the fast path needs a classic pcap file")
        for pkt_off, caplen in _scan(self.buf, self.endian, self.path):
            yield pkt_off, caplen


def _scan(buf: bytes, endian: str, path: str):
    hdr = struct.Struct(endian + "8xI4x")
    off, n, end = 24, 0, len(buf)
    while off < end:
        n += 1
        if off + 16 > end:
            raise CaptureError(f"{path}: truncated record header of packet {n} at byte {off}")
        caplen = hdr.unpack_from(buf, off)[0]
        if off + 16 + caplen > end or caplen > MAX_RECORD:
            raise CaptureError(f"{path}: truncated packet {n} at byte {off}")
        yield off + 16, caplen
        off += 16 + caplen


class PcapWriter:
    """Write classic pcap (microsecond timestamps) one complete record per ``write`` call."""

    def __init__(self, path: str, linktype: int, snaplen: int = 262144):
        self.path = path
        try:
            self.f: BinaryIO = open(path, "wb")
        except OSError as exc:
            raise CaptureError(f"{path}: {exc.strerror}") from None
        self.f.write(struct.pack("<IHHiIII", PCAP_MAGIC_US, 2, 4, 0, 0, snaplen, linktype))
        self.count = 0

    def write(self, pkt: Packet) -> None:
        rec = struct.pack("<IIII", pkt.sec, pkt.nsec // 1000, len(pkt.data), pkt.wirelen)
        self.f.write(rec + pkt.data)
        self.count += 1

    def close(self) -> None:
        self.f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)
