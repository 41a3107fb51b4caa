"""The perf event array (BPF_MAP_TYPE_PERF_EVENT_ARRAY) and a reader for its samples.

In the kernel each slot holds a perf event (opened with ``PERF_COUNT_SW_BPF_OUTPUT``) whose mmap
ring receives ``PERF_RECORD_SAMPLE`` records carrying the raw bytes a program passed to
``bpf_perf_event_output``. Here a slot holds a :class:`PerfBuffer` (opened with
:meth:`PerfEventArrayMap.open_buffer`), and :class:`PerfEventReader` hands the samples to Python
(libbpf's ``perf_buffer``: callbacks for samples and for lost samples, ``poll``).

The helper's checks follow ``kernel/trace/bpf_trace.c``: flags other than the index bits are
EINVAL, ``BPF_F_CURRENT_CPU`` (0xffffffff) picks the current CPU's slot, an index beyond
``max_entries`` is E2BIG, an empty slot ENOENT, and a slot whose event lives on another CPU
EOPNOTSUPP. A sample's raw size is padded so that ``4 + size`` is a multiple of 8, and readers
see the padded bytes, as perf delivers them.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from .base import (BPF_ANY, BPF_F_NUMA_NODE, BPF_F_PRESERVE_ELEMS, BPF_F_RDONLY, BPF_F_WRONLY,
                   E2BIG, EINVAL, ENOENT, ENOTSUPP, EOPNOTSUPP, Map, current_cpu, fail,
                   possible_cpus, round_up)

BPF_F_INDEX_MASK = 0xFFFFFFFF
BPF_F_CURRENT_CPU = BPF_F_INDEX_MASK
BPF_F_CTXLEN_MASK = 0xFFFFF << 32


@dataclass
class PerfBuffer:
    """One slot's sample ring: at most ``capacity`` bytes of records, the rest counted lost."""

    cpu: int
    capacity: int
    samples: deque = field(default_factory=deque)
    used: int = 0
    lost: int = 0

    def add(self, data: bytes) -> None:
        size = round_up(len(data) + 4, 8) - 4
        record = 8 + 4 + size  # perf_event_header + u32 size + data
        if self.used + record > self.capacity:
            self.lost += 1
            return
        self.samples.append(data + bytes(size - len(data)))
        self.used += record


class PerfEventArrayMap(Map):
    """BPF_MAP_TYPE_PERF_EVENT_ARRAY."""

    type_names = ("perf_event_array",)
    allowed_flags = BPF_F_RDONLY | BPF_F_WRONLY | BPF_F_NUMA_NODE | BPF_F_PRESERVE_ELEMS

    def __init__(self, spec):
        if spec.max_entries == 0:  # libbpf sizes it to the possible CPUs
            spec = type(spec)(**{**spec.__dict__, "max_entries": possible_cpus()})
        super().__init__(spec)
        self.buffers: list[PerfBuffer | None] = [None] * self.max_entries

    def check_spec(self) -> None:
        if self.key_size != 4 or self.value_size != 4 or self.max_entries <= 0:
            raise fail(f"{self.where()}: needs key size 4 and value size 4", EINVAL)

    def open_buffer(self, index: int | None = None, page_count: int = 8,
                    page_size: int = 4096) -> list[PerfBuffer]:
        """Attach a sample buffer to slot ``index`` (every slot up to the CPU count if None)."""
        indices = range(min(self.max_entries, possible_cpus())) if index is None else [index]
        out = []
        for i in indices:
            if not 0 <= i < self.max_entries:
                raise fail(f"{self.where()}: index {i} >= max_entries {self.max_entries}", E2BIG)
            self.buffers[i] = PerfBuffer(i, page_count * page_size)
            out.append(self.buffers[i])
        return out

    def reader(self, callback: Callable[[int, bytes], Any] | None = None,
               lost_callback: Callable[[int, int], Any] | None = None) -> "PerfEventReader":
        if not any(self.buffers):
            self.open_buffer()
        return PerfEventReader(self, callback, lost_callback)

    # --- program face -----------------------------------------------------------------------------
    def output(self, flags: int, data: bytes) -> int:
        """bpf_perf_event_output: 0 or -errno."""
        if flags & ~BPF_F_INDEX_MASK:
            return -EINVAL
        index = flags & BPF_F_INDEX_MASK
        cpu = current_cpu()
        if index == BPF_F_CURRENT_CPU:
            index = cpu
        if index >= self.max_entries:
            return -E2BIG
        buf = self.buffers[index]
        if buf is None:
            return -ENOENT
        if buf.cpu != cpu:
            return -EOPNOTSUPP
        buf.add(bytes(data))
        return 0

    def lookup_address(self, key: bytes) -> int:
        return 0

    # --- syscall face: the slots hold perf events, not values -------------------------------
    def lookup_raw(self, key: bytes) -> Any:
        raise fail(f"{self.where()}: perf event slots cannot be read back", ENOTSUPP)

    def update(self, key: Any, value: Any, flags: int = BPF_ANY) -> None:
        i = int.from_bytes(self.key_bytes(key), "little")
        if flags != BPF_ANY:
            raise fail(f"{self.where()}: only BPF_ANY updates are allowed", EINVAL)
        if i >= self.max_entries:
            raise fail(f"{self.where()}: index {i} >= max_entries {self.max_entries}", E2BIG)
        if not isinstance(value, PerfBuffer):
            raise fail(f"{self.where()}: values are PerfBuffer objects (open_buffer)", EINVAL)
        self.buffers[i] = value

    def delete_raw(self, key: bytes) -> None:
        i = int.from_bytes(key, "little")
        if i >= self.max_entries:
            raise fail(f"{self.where()}: index {i} >= max_entries {self.max_entries}", E2BIG)
        if self.buffers[i] is None:
            raise fail(f"{self.where()}: slot {i} is empty", ENOENT)
        self.buffers[i] = None

    def index(self, key: bytes) -> int:
        return int.from_bytes(key, "little")

    def next_key_raw(self, key: bytes | None) -> bytes:
        from .array import ArrayMap
        return ArrayMap.next_key_raw(self, key)  # type: ignore[arg-type]

    def items(self) -> list:
        return []

    def raw_items(self) -> list:
        return []

    def __len__(self) -> int:
        return self.max_entries


class PerfEventReader:
    """Samples from every open slot, oldest first per slot: ``for cpu, data in reader``."""

    def __init__(self, perf_map: PerfEventArrayMap,
                 callback: Callable[[int, bytes], Any] | None = None,
                 lost_callback: Callable[[int, int], Any] | None = None):
        self.map = perf_map
        self.callback = callback
        self.lost_callback = lost_callback

    def __iter__(self) -> Iterator[tuple[int, bytes]]:
        for buf in self.map.buffers:
            if buf is None:
                continue
            while buf.samples:
                data = buf.samples.popleft()
                buf.used -= 8 + 4 + len(data)
                yield buf.cpu, data

    def poll(self, timeout: float | None = 0.0) -> int:
        """Hand every pending sample to the callback (lost counts to ``lost_callback``)."""
        count = 0
        for buf in self.map.buffers:
            if buf is not None and buf.lost:
                if self.lost_callback is not None:
                    self.lost_callback(buf.cpu, buf.lost)
                buf.lost = 0
        for cpu, data in self:
            count += 1
            if self.callback is not None:
                self.callback(cpu, data)
        return count

    consume = poll
