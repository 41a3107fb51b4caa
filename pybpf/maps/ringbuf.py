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

All of a ring's state is native, so JIT-compiled code reserves and commits without Python
(:mod:`pybpf.jit.codegen` emits the same steps as :meth:`RingBufMap.reserve` /
:meth:`RingBufMap.commit`): the positions and bookkeeping live in one ctypes structure
(:class:`RingState`, at ``state_address``), the records in the data buffer (a memory region,
so checked engines bounds-check what programs write into a record). As in the kernel, the
oldest still-BUSY record is found by walking headers from ``pending_pos`` (no Python list of
reservations), and ``commit`` finds a record from its pointer alone: its header must be a BUSY
header of a record between the consumer and producer positions. ``waiters`` counts consumers
blocked in ``poll``; native code leaves a commit that would have to wake one to Python.
"""

from __future__ import annotations

import ctypes
import mmap
import threading
import time
import weakref
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


class RingState(ctypes.Structure):
    """A ring's native bookkeeping; native code indexes it by :data:`RING_WORDS`."""

    _fields_ = [("consumer_pos", ctypes.c_uint64), ("producer_pos", ctypes.c_uint64),
                ("pending_pos", ctypes.c_uint64), ("mask", ctypes.c_uint64),
                ("data", ctypes.c_uint64), ("waiters", ctypes.c_uint64),
                ("wakeups", ctypes.c_uint64)]


#: word index of each RingState field (what JIT-compiled code uses)
RING_WORDS = {name: i for i, (name, _) in enumerate(RingState._fields_)}

#: seconds a blocked poll sleeps at most before it looks again (a native producer that raced
#: with a consumer starting to wait does not wake it)
POLL_SLICE = 0.05

#: live ring buffers, for bpf_ringbuf_submit / discard, which get only the record pointer
_LIVE: "weakref.WeakSet[RingBufMap]" = weakref.WeakSet()


def ring_of(sample: int) -> "RingBufMap | None":
    """The live ring buffer whose data area holds the header of the record at ``sample``."""
    for rb in list(_LIVE):
        if 0 <= sample - BPF_RINGBUF_HDR_SZ - rb.data_address < rb.max_entries:
            return rb
    return None


def record_length(size: int) -> int:
    """Bytes a record of ``size`` takes in the ring (header included, 8-byte aligned)."""
    return round_up(size + BPF_RINGBUF_HDR_SZ, 8)


class RingBufMap(Map):
    """BPF_MAP_TYPE_RINGBUF."""

    type_names = ("ringbuf",)
    allowed_flags = BPF_F_NUMA_NODE
    has_keys = False

    def __init__(self, spec):
        super().__init__(spec)
        self.mask = self.max_entries - 1
        self.pos = RingState(mask=self.mask)
        self.state_address = ctypes.addressof(self.pos)
        self._data = alloc(2 * self.max_entries)
        self.data_address = ctypes.addressof(self._data)
        self.pos.data = self.data_address
        self.view = memoryview(self._data).cast("B")
        self.make_region(self._data, 2 * self.max_entries, ":data")
        self.cond = threading.Condition()
        _LIVE.add(self)

    @property
    def wakeups(self) -> int:
        """Commits that asked for a wake-up (no BPF_RB_NO_WAKEUP), native ones included."""
        return self.pos.wakeups

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
        """Address of a fresh ``size``-byte record, or 0 (the helper's NULL).

        ``__bpf_ringbuf_reserve``: first move ``pending_pos`` past the records already
        committed, then refuse a record that would put the producer more than the buffer size
        ahead of the consumer or of the oldest record still BUSY."""
        if flags or size > RINGBUF_MAX_RECORD_SZ or size < 0:
            return 0
        length = record_length(size)
        if length > self.max_entries:
            return 0
        r = self.pos
        prod, cons, pend = r.producer_pos, r.consumer_pos, r.pending_pos
        while pend < prod:
            header, _ = self._header(pend)
            if header & BPF_RINGBUF_BUSY_BIT:
                break
            pend += record_length(header & ~BPF_RINGBUF_DISCARD_BIT)
        r.pending_pos = pend
        if prod + length - cons > self.mask or prod + length - pend > self.mask:
            return 0
        off = prod & self.mask
        self.view[off: off + 4] = (size | BPF_RINGBUF_BUSY_BIT).to_bytes(4, "little")
        # the kernel's page offset from its ring structure: one page of bookkeeping, the
        # consumer and producer pages, then the data pages
        pg_off = RINGBUF_META_PAGES + off // mmap.PAGESIZE
        self.view[off + 4: off + 8] = pg_off.to_bytes(4, "little")
        r.producer_pos = prod + length
        end = off + BPF_RINGBUF_HDR_SZ + size
        if end > self.max_entries:  # the mirror half must show what the start holds
            self.view[self.max_entries: end] = self.view[: end - self.max_entries]
        return self.data_address + off + BPF_RINGBUF_HDR_SZ

    def record_at(self, sample: int) -> int | None:
        """Offset of the header of the reserved (BUSY) record at ``sample``, or None when
        ``sample`` is not one: the header must sit 8-aligned in the data, be BUSY, and its
        record lie between the consumer and producer positions."""
        hoff = sample - BPF_RINGBUF_HDR_SZ - self.data_address
        if not 0 <= hoff < self.max_entries or hoff & 7:
            return None
        header, _ = self._header(hoff)
        if not header & BPF_RINGBUF_BUSY_BIT:
            return None
        cons = self.pos.consumer_pos
        pos = cons + ((hoff - cons) & self.mask)
        size = header & ~(BPF_RINGBUF_BUSY_BIT | BPF_RINGBUF_DISCARD_BIT)
        if pos + record_length(size) > self.pos.producer_pos:
            return None
        return hoff

    def commit(self, sample: int, flags: int, discard: bool) -> int:
        """Submit or discard the record at ``sample``; 0, or -EINVAL for a bad pointer."""
        hoff = self.record_at(sample)
        if hoff is None:
            return -EINVAL
        length, _ = self._header(hoff)
        size = length & ~(BPF_RINGBUF_BUSY_BIT | BPF_RINGBUF_DISCARD_BIT)
        start = hoff + BPF_RINGBUF_HDR_SZ
        end = start + size
        if end > self.max_entries:  # the wrapped tail lives in the mirror half: fold it back
            lo = max(start, self.max_entries)
            self.view[lo - self.max_entries: end - self.max_entries] = self.view[lo:end]
        new_len = size | (BPF_RINGBUF_DISCARD_BIT if discard else 0)
        self._set_len(hoff, new_len)
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
            self.pos.wakeups += 1
            if self.pos.waiters:
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
        rb = self.ringbuf
        with rb.cond:
            rb.pos.waiters += 1     # before looking: a producer seeing it notifies
            try:
                while not self.available():
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        break
                    rb.cond.wait(POLL_SLICE if left is None else min(left, POLL_SLICE))
            finally:
                rb.pos.waiters -= 1
        return self.consume()
