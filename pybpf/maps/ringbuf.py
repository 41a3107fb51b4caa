"""The BPF ring buffer (BPF_MAP_TYPE_RINGBUF) and its Python consumer.

Follows ``kernel/bpf/ringbuf.c``: ``max_entries`` is the data size in bytes (a power of two and
a multiple of the page size, key and value size 0); a producer position and a consumer position
count bytes forever (the data offset is ``pos & (size - 1)``); each record starts with an 8-byte
header -- u32 length with bit 31 BUSY (reserved, not yet submitted) and bit 30 DISCARD, then a
u32 page offset -- and occupies ``round_up(len + 8, 8)`` bytes. A reservation fails (NULL) when
the record would make ``producer - consumer`` exceed ``size - 1`` or when flags are non-zero.

The kernel maps the data pages twice in a row so a record that wraps past the end is
contiguous. Here the data buffer is ``2 * size`` long: a record is handed out at
``data + (pos & mask)`` (contiguous even when it runs past ``size``) and on submit the part
beyond ``size`` is copied to the start, where the consumer reads it.

:class:`RingBufferConsumer` is the user-space side (libbpf's ``ring_buffer__consume`` /
``__poll``): it walks records from the consumer position, stops at a BUSY record, skips
discarded ones and advances the consumer position. It is an iterator, takes a callback, and
``poll(timeout)`` waits for data.
"""

from __future__ import annotations

import ctypes
import mmap
import threading
import time
from typing import Any, Callable, Iterator

from .base import (BPF_F_NUMA_NODE, EAGAIN, EINVAL, ENOTSUPP, Map, alloc, fail,
                   round_up)

BPF_RINGBUF_BUSY_BIT = 1 << 31
BPF_RINGBUF_DISCARD_BIT = 1 << 30
BPF_RINGBUF_HDR_SZ = 8

# flags of bpf_ringbuf_output / submit / discard
BPF_RB_NO_WAKEUP = 1 << 0
BPF_RB_FORCE_WAKEUP = 1 << 1

# bpf_ringbuf_query's flags
BPF_RB_AVAIL_DATA = 0
BPF_RB_RING_SIZE = 1
BPF_RB_CONS_POS = 2
BPF_RB_PROD_POS = 3

#: pages before the data in the kernel's ``struct bpf_ringbuf`` (what a header's pg_off counts)
RINGBUF_META_PAGES = 3

#: a record's largest length: the length field minus the BUSY and DISCARD bits
RINGBUF_MAX_RECORD_SZ = (1 << 30) - 1


class _Positions(ctypes.Structure):
    _fields_ = [("consumer_pos", ctypes.c_uint64), ("producer_pos", ctypes.c_uint64)]


class RingBufMap(Map):
    """BPF_MAP_TYPE_RINGBUF."""

    type_names = ("ringbuf",)
    allowed_flags = BPF_F_NUMA_NODE
    has_keys = False

    def __init__(self, spec):
        super().__init__(spec)
        self.mask = self.max_entries - 1
        self.pos = _Positions()
        self._data = alloc(2 * self.max_entries)
        self.data_address = ctypes.addressof(self._data)
        self.view = memoryview(self._data).cast("B")
        self.make_region(self._data, 2 * self.max_entries, ":data")
        #: record address -> header position, for records reserved and not yet committed
        self.pending: dict[int, int] = {}
        self.wakeups = 0
        self.cond = threading.Condition()

    def check_spec(self) -> None:
        size = self.max_entries
        if self.key_size or self.value_size or size <= 0 or size & (size - 1) or \
                size % mmap.PAGESIZE:
            raise fail(f"{self.where()}: needs key and value size 0 and max_entries a power of "
                       f"2 multiple of the page size ({mmap.PAGESIZE}), got key="
                       f"{self.key_size} value={self.value_size} max_entries={size}", EINVAL)

    def check_flags(self) -> None:
        if self.flags & ~self.allowed_flags:
            raise fail(f"{self.where()}: flags {self.flags:#x} not allowed", EINVAL)

    @property
    def consumer_pos(self) -> int:
        return self.pos.consumer_pos

    @property
    def producer_pos(self) -> int:
        return self.pos.producer_pos

    # --- header access ----------------------------------------------------------------------------
    def _header(self, pos: int) -> tuple[int, int]:
        off = pos & self.mask
        return (int.from_bytes(self.view[off: off + 4], "little"),
                int.from_bytes(self.view[off + 4: off + 8], "little"))

    def _set_len(self, pos: int, length: int) -> None:
        off = pos & self.mask
        self.view[off: off + 4] = length.to_bytes(4, "little")

    # --- producer (program face) ------------------------------------------------------------------
    def reserve(self, size: int, flags: int = 0) -> int:
        """Address of a fresh ``size``-byte record, or 0 (the helper's NULL)."""
        if flags or size > RINGBUF_MAX_RECORD_SZ or size < 0:
            return 0
        length = round_up(size + BPF_RINGBUF_HDR_SZ, 8)
        if length > self.max_entries:
            return 0
        prod = self.pos.producer_pos
        cons = self.pos.consumer_pos
        # the kernel also waits for the oldest still-busy record: nothing may overtake it by
        # more than the buffer size
        oldest = min(self.pending.values(), default=prod)
        if prod + length - cons > self.mask or prod + length - oldest > self.mask:
            return 0
        off = prod & self.mask
        self.view[off: off + 4] = (size | BPF_RINGBUF_BUSY_BIT).to_bytes(4, "little")
        # the kernel's page offset from its ring structure: one page of bookkeeping, the
        # consumer and producer pages, then the data pages
        pg_off = RINGBUF_META_PAGES + off // mmap.PAGESIZE
        self.view[off + 4: off + 8] = pg_off.to_bytes(4, "little")
        self.pos.producer_pos = prod + length
        end = off + BPF_RINGBUF_HDR_SZ + size
        if end > self.max_entries:  # the mirror half must show what the start holds
            self.view[self.max_entries: end] = self.view[: end - self.max_entries]
        sample = self.data_address + off + BPF_RINGBUF_HDR_SZ
        self.pending[sample] = prod
        return sample

    def commit(self, sample: int, flags: int, discard: bool) -> int:
        """Submit or discard the record at ``sample``; 0, or -EINVAL for a bad pointer."""
        pos = self.pending.pop(sample, None)
        if pos is None:
            return -EINVAL
        length, _ = self._header(pos)
        size = length & ~(BPF_RINGBUF_BUSY_BIT | BPF_RINGBUF_DISCARD_BIT)
        start = (pos & self.mask) + BPF_RINGBUF_HDR_SZ
        end = start + size
        if end > self.max_entries:  # the wrapped tail lives in the mirror half: fold it back
            lo = max(start, self.max_entries)
            self.view[lo - self.max_entries: end - self.max_entries] = self.view[lo:end]
        new_len = size | (BPF_RINGBUF_DISCARD_BIT if discard else 0)
        self._set_len(pos, new_len)
        self._wake(flags)
        return 0

    def output(self, data: bytes, flags: int = 0) -> int:
        """bpf_ringbuf_output: 0, -EINVAL for bad flags, -EAGAIN when there is no room."""
        if flags & ~(BPF_RB_NO_WAKEUP | BPF_RB_FORCE_WAKEUP):
            return -EINVAL
        sample = self.reserve(len(data))
        if not sample:
            return -EAGAIN
        off = sample - self.data_address
        self.view[off: off + len(data)] = data
        return self.commit(sample, flags, False)

    def query(self, flags: int) -> int:
        prod, cons = self.pos.producer_pos, self.pos.consumer_pos
        return {BPF_RB_AVAIL_DATA: prod - cons, BPF_RB_RING_SIZE: self.max_entries,
                BPF_RB_CONS_POS: cons, BPF_RB_PROD_POS: prod}.get(flags, 0)

    def _wake(self, flags: int) -> None:
        if not flags & BPF_RB_NO_WAKEUP:
            self.wakeups += 1
            with self.cond:
                self.cond.notify_all()

    # --- consumer -------------------------------------------------------------------------------
    def read_record(self) -> tuple[bytes | None, bool]:
        """(data, more): the next submitted record's bytes (None for a discarded one) and
        whether a record was consumed at all."""
        cons = self.pos.consumer_pos
        if cons >= self.pos.producer_pos:
            return None, False
        length, _ = self._header(cons)
        if length & BPF_RINGBUF_BUSY_BIT:
            return None, False
        size = length & ~BPF_RINGBUF_DISCARD_BIT
        data = None
        if not length & BPF_RINGBUF_DISCARD_BIT:
            start = (cons & self.mask) + BPF_RINGBUF_HDR_SZ
            if start + size <= self.max_entries:
                data = bytes(self.view[start: start + size])
            else:
                head = bytes(self.view[start: self.max_entries]) if start < self.max_entries \
                    else b""
                rest = size - len(head)
                begin = max(start - self.max_entries, 0)
                data = head + bytes(self.view[begin: begin + rest])
        self.pos.consumer_pos = cons + round_up(size + BPF_RINGBUF_HDR_SZ, 8)
        return data, True

    def consumer(self, callback: Callable[[bytes], Any] | None = None) -> "RingBufferConsumer":
        return RingBufferConsumer(self, callback)

    def __iter__(self) -> Iterator[bytes]:
        """Consume every record available now."""
        return iter(RingBufferConsumer(self))

    def __len__(self) -> int:
        return self.pos.producer_pos - self.pos.consumer_pos

    # ring buffers have no elements to look up from user space (the kernel: ENOTSUPP)
    def lookup(self, key: Any = None) -> Any:
        raise fail(f"{self.where()}: ring buffers have no elements to look up", ENOTSUPP)

    def update(self, key: Any, value: Any, flags: int = 0) -> None:
        raise fail(f"{self.where()}: ring buffers are written by programs", ENOTSUPP)

    def delete(self, key: Any = None) -> None:
        raise fail(f"{self.where()}: ring buffers have no elements to delete", ENOTSUPP)

    def get_next_key(self, key: Any = None) -> Any:
        raise fail(f"{self.where()}: ring buffers have no keys", ENOTSUPP)

    def iter_raw_keys(self):
        return iter(())

    def items(self) -> list:
        return []

    def raw_items(self) -> list:
        return []

    def lookup_address(self, key: bytes) -> int:
        return 0


class RingBufferConsumer:
    """Reads records a program submitted, oldest first (libbpf's ``ring_buffer``).

    ``for data in consumer`` yields what is available now; ``consume()`` hands each record to the
    callback (a callback returning a negative number stops early, as in libbpf) and returns the
    count; ``poll(timeout)`` waits up to ``timeout`` seconds for a record first.
    """

    def __init__(self, ringbuf: RingBufMap, callback: Callable[[bytes], Any] | None = None):
        self.ringbuf = ringbuf
        self.callback = callback

    def __iter__(self) -> Iterator[bytes]:
        while True:
            data, more = self.ringbuf.read_record()
            if not more:
                return
            if data is not None:
                yield data

    def consume(self) -> int:
        count = 0
        for data in self:
            count += 1
            if self.callback is not None:
                ret = self.callback(data)
                if isinstance(ret, int) and ret < 0:
                    break
        return count

    def available(self) -> bool:
        rb = self.ringbuf
        if rb.pos.consumer_pos >= rb.pos.producer_pos:
            return False
        length, _ = rb._header(rb.pos.consumer_pos)
        return not length & BPF_RINGBUF_BUSY_BIT

    def poll(self, timeout: float | None = 0.0) -> int:
        """Wait up to ``timeout`` seconds (None: forever) for data, then consume."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.ringbuf.cond:
            while not self.available():
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                self.ringbuf.cond.wait(left)
        return self.consume()
