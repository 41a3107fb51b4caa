"""BPF ring buffer consumer (BPF_MAP_TYPE_RINGBUF): mmap + epoll, as Python iterators/callbacks.

Layout (kernel/bpf/ringbuf.c, as libbpf's ringbuf.c consumes it): page 0 holds the consumer
position (mapped read-write), page 1 the producer position, and from page 2 the data area of
``max_entries`` bytes mapped *twice* in a row so a record that wraps is still contiguous. Each
record starts with an 8-byte header: ``len`` (bit 31 BUSY: still being written; bit 30
DISCARD: skip it) and a page offset; the next record starts at the header plus ``len``
rounded up to 8. The consumer publishes its position after each batch so the producer can
reuse the space.
"""

from __future__ import annotations

import mmap
import select
import struct
from typing import Callable, Iterator

from ..errors import UsageError
from .maps import KernelMap

BUSY = 1 << 31
DISCARD = 1 << 30
HEADER = 8
_U64 = struct.Struct("<Q")
_U32 = struct.Struct("<I")


class RingBuffer:
    """Reads the records a program submits to a ring buffer map, in submission order."""

    def __init__(self, ringbuf: KernelMap):
        if ringbuf.type != "ringbuf":
            raise UsageError(f"map '{ringbuf.name}' is a {ringbuf.type}, not a ringbuf")
        self.map = ringbuf
        page = mmap.PAGESIZE
        self.size = ringbuf.max_entries
        self.mask = self.size - 1
        self._consumer = mmap.mmap(ringbuf.fd, page, mmap.MAP_SHARED,
                                   mmap.PROT_READ | mmap.PROT_WRITE, offset=0)
        self._producer = mmap.mmap(ringbuf.fd, page + 2 * self.size, mmap.MAP_SHARED,
                                   mmap.PROT_READ, offset=page)
        self._data_start = page
        self._epoll = select.epoll()
        self._epoll.register(ringbuf.fd, select.EPOLLIN)
        self._cons = _U64.unpack_from(self._consumer, 0)[0]

    def close(self) -> None:
        if self._epoll.closed:
            return
        self._epoll.close()
        self._consumer.close()
        self._producer.close()

    def __enter__(self) -> "RingBuffer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def available(self) -> int:
        """Bytes produced and not yet consumed."""
        return _U64.unpack_from(self._producer, 0)[0] - self._cons

    def drain(self, callback: Callable[[bytes], object] | None = None,
              limit: int | None = None) -> list[bytes]:
        """Consume every complete record now in the buffer (up to ``limit``); records go to
        ``callback`` if given, else are returned."""
        out: list[bytes] = []
        data = self._producer
        base = self._data_start
        cons = self._cons
        count = 0
        prod = _U64.unpack_from(data, 0)[0]
        while cons < prod and (limit is None or count < limit):
            at = base + (cons & self.mask)
            length = _U32.unpack_from(data, at)[0]
            if length & BUSY:
                break
            size = length & ~(BUSY | DISCARD)
            if not length & DISCARD:
                record = data[at + HEADER: at + HEADER + size]
                if callback is not None:
                    callback(record)
                else:
                    out.append(record)
                count += 1
            cons += (size + HEADER + 7) & ~7
            if cons >= prod:
                prod = _U64.unpack_from(data, 0)[0]
        if cons != self._cons:
            self._cons = cons
            _U64.pack_into(self._consumer, 0, cons)
        return out

    def poll(self, timeout: float | None = None) -> bool:
        """Wait until records are available (or ``timeout`` seconds pass); True if any are."""
        if self.available():
            return True
        self._epoll.poll(-1 if timeout is None else timeout)
        return self.available() > 0

    def __iter__(self) -> Iterator[bytes]:
        """Records forever (blocking in epoll between batches)."""
        while True:
            self.poll()
            yield from self.drain()

    def read(self, count: int, timeout: float = 5.0) -> list[bytes]:
        """Exactly ``count`` records, or fewer if ``timeout`` seconds pass with nothing new."""
        out: list[bytes] = []
        while len(out) < count:
            got = self.drain(limit=count - len(out))
            out.extend(got)
            if not got and not self.poll(timeout):
                break
        return out
