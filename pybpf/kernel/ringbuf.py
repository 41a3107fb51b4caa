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
from typing import TYPE_CHECKING, Callable, Iterator

from ..errors import UsageError

if TYPE_CHECKING:  # imported for annotations only: a reader needs just the map's fd
    from .maps import KernelMap

BUSY = 1 << 31
DISCARD = 1 << 30
HEADER = 8
_U64 = struct.Struct("<Q")
_U32 = struct.Struct("<I")


def _uniform_records(chunk: bytes, limit: int) -> list[bytes] | None:
    """Fast path for the common burst of equal-sized records: when every header in ``chunk``
    has the same length (none busy or discarded), slice all records at once."""
    first = _U32.unpack_from(chunk, 0)[0]
    if first & (BUSY | DISCARD):
        return None
    stride = (first + HEADER + 7) & ~7
    total = len(chunk)
    count = total // stride
    if total % stride or count < 8 or (0 <= limit < count):
        return None
    lengths = memoryview(chunk).cast("I")[::stride // 4]
    if lengths.tolist().count(first) != count:
        return None
    end = HEADER + first
    return [chunk[p + HEADER: p + end] for p in range(0, total, stride)]


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
        ``callback`` if given, else are returned.

        The produced span is copied out in one piece (the data area is mapped twice, so a span
        that wraps is still contiguous) and parsed from that copy; the consumer position is
        published once per call."""
        out: list[bytes] = []
        emit = out.append if callback is None else callback
        cons = self._cons
        prod = _U64.unpack_from(self._producer, 0)[0]
        remaining = -1 if limit is None else limit
        unpack = _U32.unpack_from
        while cons < prod and remaining:
            start = self._data_start + (cons & self.mask)
            chunk = self._producer[start: start + (prod - cons)]
            fast = _uniform_records(chunk, remaining)
            if fast is not None:
                if callback is None:
                    out.extend(fast)
                else:
                    for record in fast:
                        callback(record)
                remaining -= len(fast)
                cons += len(chunk)
                prod = _U64.unpack_from(self._producer, 0)[0]
                continue
            view = memoryview(chunk)
            pos, end = 0, len(chunk)
            while pos < end and remaining:
                length = unpack(chunk, pos)[0]
                if length & BUSY:
                    end = -1
                    break
                size = length & 0x3FFFFFFF
                if not length & DISCARD:
                    emit(bytes(view[pos + HEADER: pos + HEADER + size]))
                    remaining -= 1
                pos += (size + HEADER + 7) & ~7
            cons += pos
            if end == -1:
                break
            prod = _U64.unpack_from(self._producer, 0)[0]
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
