"""Perf buffer consumer: one BPF output perf event per CPU, stored in a PERF_EVENT_ARRAY map,
each with its own mmap'd ring; records come out of ``bpf_perf_event_output``.

Ring layout follows ``struct perf_event_mmap_page`` (data_head at 1024, data_tail at 1032,
data_offset/data_size from 1040) and the record format of ``PERF_RECORD_SAMPLE`` with
``PERF_SAMPLE_RAW`` (a u32 size then the raw bytes, padded) and ``PERF_RECORD_LOST``
(id, lost count). libbpf's perf_buffer does the same; records are per CPU, so the order is
only guaranteed within one CPU.
"""

from __future__ import annotations

import mmap
import os
import select
import struct
from dataclasses import dataclass
from typing import Callable

from ..errors import UsageError
from . import perf
from .maps import KernelMap

RECORD_LOST = 2
RECORD_SAMPLE = 9
_HEAD = struct.Struct("<IHH")


@dataclass
class PerfSample:
    cpu: int
    data: bytes


class PerfBuffer:
    """Per-CPU rings for a perf_event_array map; ``lost`` counts records the kernel dropped."""

    def __init__(self, events: KernelMap, pages: int = 8):
        if events.type != "perf_event_array":
            raise UsageError(f"map '{events.name}' is a {events.type}, not a perf_event_array")
        if pages & (pages - 1):
            raise UsageError(f"perf buffer pages must be a power of two, not {pages}")
        self.map = events
        self.lost = 0
        self._rings: dict[int, tuple[int, mmap.mmap]] = {}
        self._epoll = select.epoll()
        self._page = mmap.PAGESIZE
        self._size = pages * self._page
        try:
            for cpu in perf.online_cpus():
                if cpu >= events.max_entries:
                    break
                attr = perf.PerfEventAttr(type=perf.TYPE_SOFTWARE, config=perf.SW_BPF_OUTPUT,
                                          sample_type=perf.SAMPLE_RAW, sample_period=1,
                                          wakeup_events=1)
                fd = perf.perf_event_open(attr, pid=-1, cpu=cpu, what="BPF output")
                try:
                    ring = mmap.mmap(fd, self._page + self._size, mmap.MAP_SHARED,
                                     mmap.PROT_READ | mmap.PROT_WRITE)
                except OSError:
                    os.close(fd)
                    raise
                self._rings[cpu] = (fd, ring)
                events.update(cpu, fd)
                perf.ioctl(fd, perf.IOC_ENABLE, 0)
                self._epoll.register(fd, select.EPOLLIN)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self._epoll.closed:
            return
        self._epoll.close()
        for cpu, (fd, ring) in self._rings.items():
            try:
                self.map.delete(cpu)
            except Exception:
                pass
            ring.close()
            os.close(fd)
        self._rings.clear()

    def __enter__(self) -> "PerfBuffer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _read_ring(self, cpu: int, ring: mmap.mmap, out: list[PerfSample]) -> None:
        head = struct.unpack_from("<Q", ring, 1024)[0]
        tail = struct.unpack_from("<Q", ring, 1032)[0]
        size = self._size
        base = self._page
        while tail < head:
            at = tail % size
            header = self._bytes(ring, base, at, 8)
            kind, _misc, length = _HEAD.unpack(header)
            record = self._bytes(ring, base, at, length)
            if kind == RECORD_SAMPLE:
                raw_size = struct.unpack_from("<I", record, 8)[0]
                out.append(PerfSample(cpu, record[12:12 + raw_size]))
            elif kind == RECORD_LOST:
                self.lost += struct.unpack_from("<Q", record, 16)[0]
            tail += length
        struct.pack_into("<Q", ring, 1032, tail)

    @staticmethod
    def _bytes(ring: mmap.mmap, base: int, at: int, length: int) -> bytes:
        size = len(ring) - base
        if at + length <= size:
            return ring[base + at: base + at + length]
        first = size - at
        return ring[base + at: base + size] + ring[base: base + length - first]

    def drain(self, callback: Callable[[PerfSample], object] | None = None) -> list[PerfSample]:
        out: list[PerfSample] = []
        for cpu, (_fd, ring) in self._rings.items():
            self._read_ring(cpu, ring, out)
        if callback is not None:
            for sample in out:
                callback(sample)
            return []
        return out

    def poll(self, timeout: float | None = None) -> list[PerfSample]:
        """Wait for samples (up to ``timeout`` seconds), then drain every CPU's ring."""
        self._epoll.poll(-1 if timeout is None else timeout)
        return self.drain()
