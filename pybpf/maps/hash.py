"""Hash maps: hash, percpu_hash, lru_hash, lru_percpu_hash and hash_of_maps.

Follows ``kernel/bpf/hashtab.c`` with its default preallocation: ``max_entries`` value slots
are allocated when the map is created and handed out from a free list, so a value never moves
while it is in the map (the address a program got from ``bpf_map_lookup_elem`` stays valid)
and an insert into a full map fails with E2BIG instead of allocating.

LRU maps evict instead of failing. The kernel's LRU is approximate (per-CPU free lists,
active/inactive lists with reference bits, eviction in batches); this one is exact -- it evicts
the least recently *used* element, where "use" is an insert/update or a lookup from a program
(lookups from user space do not count, as in the kernel's ``htab_lru_map_lookup_elem_sys``).
It keeps the kernel's invariants: the map never holds more than ``max_entries`` elements and
recently used elements survive. With BPF_F_NO_COMMON_LRU each CPU has its own list and an
equal share of the nodes (``max_entries`` rounded up to a multiple of the CPUs, as the kernel
does), and an insert on a CPU whose share is used up evicts from that CPU's list.

Iteration (get_next_key) is in insertion order here, kept apart from LRU recency so that
using elements never reorders a walk; the kernel's order is bucket order. Both are "some order
that visits every key once", and a key not in the map restarts at the first.
"""

from __future__ import annotations

import ctypes
from collections import OrderedDict
from typing import Any

from .array import check_inner
from .base import (ACCESS_MASK, BPF_EXIST, BPF_F_NO_COMMON_LRU, BPF_F_NO_PREALLOC,
                   BPF_F_NUMA_NODE, BPF_F_ZERO_SEED, BPF_NOEXIST, E2BIG, EEXIST, EINVAL, ENOENT,
                   ENOTSUPP, Map, OneCPU, PerCPUMixin, alloc, current_cpu, fail,
                   possible_cpus, round_up)

HASH_FLAGS = ACCESS_MASK | BPF_F_NUMA_NODE | BPF_F_NO_PREALLOC | BPF_F_NO_COMMON_LRU | \
    BPF_F_ZERO_SEED


class HashMap(Map):
    """BPF_MAP_TYPE_HASH."""

    type_names = ("hash",)
    allowed_flags = HASH_FLAGS
    batch_ops = frozenset({"lookup", "update", "delete", "lookup_and_delete"})
    lru = False
    #: optional native mirror of ``slots`` (pybpf.jit.hashindex.NativeIndex, attached by the
    #: JIT): told of every insert and removal so compiled code can look keys up natively
    native_index: Any = None

    def __init__(self, spec):
        super().__init__(spec)
        ncpus = possible_cpus()
        #: BPF_F_NO_COMMON_LRU: every CPU has its own LRU list and its own share of the nodes
        self.percpu_lru = bool(self.lru and self.flags & BPF_F_NO_COMMON_LRU)
        if self.percpu_lru:
            # like htab_map_alloc: the same number of nodes per CPU, at least one each
            rounded = -(-self.max_entries // ncpus) * ncpus
            self.max_entries = rounded if rounded < 1 << 32 else \
                self.max_entries // ncpus * ncpus
        self.stride = round_up(self.value_size)
        self.copies = possible_cpus() if self.percpu else 1
        #: bytes between one CPU's copy of a slot and the next CPU's
        self.cpu_stride = self.stride * self.max_entries
        self.size = self.cpu_stride * self.copies
        self._storage = alloc(self.size)
        self.base = ctypes.addressof(self._storage)
        self.view = memoryview(self._storage).cast("B")
        self.make_region(self._storage, self.size)
        #: key -> slot index, in insertion order (the iteration order; stable under use)
        self.slots: dict[bytes, int] = {}
        #: LRU maps: keys from least to most recently used (read through ``recency``)
        self._recency: OrderedDict[bytes, None] = OrderedDict()
        #: get_next_key's position of each key, rebuilt after inserts and deletes
        self._order: dict[bytes, int] | None = None
        self._keys: list[bytes] = []
        #: free slot indices, popped from the end
        self.free: list[int] = list(range(self.max_entries - 1, -1, -1))
        if self.percpu_lru:
            self.per_cpu = self.max_entries // ncpus
            self.cpu_free = [list(range((c + 1) * self.per_cpu - 1, c * self.per_cpu - 1, -1))
                             for c in range(ncpus)]
            self.cpu_recency: list[OrderedDict[bytes, None]] = [OrderedDict()
                                                                for _ in range(ncpus)]

    def _free_for(self, slot: int) -> list[int]:
        return self.cpu_free[slot // self.per_cpu] if self.percpu_lru else self.free

    def _recency_for(self, slot: int) -> "OrderedDict[bytes, None]":
        return self.cpu_recency[slot // self.per_cpu] if self.percpu_lru else self._recency

    @property
    def recency(self) -> "OrderedDict[bytes, None]":
        """LRU maps: keys from least to most recently used, native lookups included."""
        self._sync_uses()
        return self._recency

    def _sync_uses(self) -> None:
        """LRU maps: take in the uses JIT-compiled lookups logged natively (their recency
        comes before whatever happens next here)."""
        if self.lru and self.native_index is not None:
            self.native_index.sync_recency()

    def check_flags(self) -> None:
        """Checked in :meth:`check_spec`, in the order of ``htab_map_alloc_check``."""

    def check_spec(self) -> None:
        super().check_flags()  # unknown bits, contradicting access flags: EINVAL
        if self.flags & BPF_F_NO_COMMON_LRU and not self.lru:
            raise fail(f"{self.where()}: BPF_F_NO_COMMON_LRU is only for LRU maps", EINVAL)
        if self.lru and self.flags & BPF_F_NO_PREALLOC:
            raise fail(f"{self.where()}: LRU maps are always preallocated", ENOTSUPP)
        if self.flags & BPF_F_NUMA_NODE and (self.percpu or self.flags & BPF_F_NO_COMMON_LRU):
            raise fail(f"{self.where()}: per-CPU maps and lists cannot be NUMA-bound", EINVAL)
        Map.check_spec(self)

    # --- storage --------------------------------------------------------------------------------
    def _read(self, slot: int, cpu: int = 0) -> bytes:
        off = cpu * self.cpu_stride + slot * self.stride
        return bytes(self.view[off: off + self.value_size])

    def _write(self, slot: int, value: bytes, cpu: int = 0) -> None:
        off = cpu * self.cpu_stride + slot * self.stride
        self.view[off: off + self.value_size] = value

    def _clear(self, slot: int, cpu: int = 0) -> None:
        off = cpu * self.cpu_stride + slot * self.stride
        self.view[off: off + self.stride] = bytes(self.stride)

    def store(self, slot: int, value: Any, new: bool) -> None:
        self._write(slot, value)

    def load(self, slot: int) -> Any:
        return self._read(slot)

    # --- syscall face ---------------------------------------------------------------------------
    def lookup_raw(self, key: bytes) -> Any:
        slot = self.slots.get(key)
        if slot is None:
            raise fail(f"{self.where()}: key {key.hex()} not found", ENOENT)
        return self.load(slot)

    def update_raw(self, key: bytes, value: Any, flags: int) -> None:
        self._sync_uses()
        slot = self.slots.get(key)
        op = flags & 3
        if slot is not None:
            if op == BPF_NOEXIST:
                raise fail(f"{self.where()}: key {key.hex()} exists (BPF_NOEXIST)", EEXIST)
            self.store(slot, value, False)
            if self.lru:
                self._recency_for(slot).move_to_end(key)
            return
        if op == BPF_EXIST:
            raise fail(f"{self.where()}: key {key.hex()} not found (BPF_EXIST)", ENOENT)
        cpu = current_cpu() if self.percpu_lru else 0
        free = self.cpu_free[cpu] if self.percpu_lru else self.free
        if not free:
            if not self.lru:
                raise fail(f"{self.where()}: map is full ({self.max_entries} entries)", E2BIG)
            self.evict(cpu)
        slot = free.pop()
        self.store(slot, value, True)
        self.slots[key] = slot
        if self.native_index is not None:
            self.native_index.insert(key, slot)
        if self.lru:
            self._recency_for(slot)[key] = None
        self._order = None

    def evict(self, cpu: int = 0) -> None:
        """Free the least recently used element's slot (of ``cpu``'s list for per-CPU lists)."""
        recency = self.cpu_recency[cpu] if self.percpu_lru else self._recency
        key, _ = recency.popitem(last=False)
        slot = self.slots.pop(key)
        if self.native_index is not None:
            self.native_index.remove(key)
        self._free_for(slot).append(slot)
        self._order = None

    def delete_raw(self, key: bytes) -> None:
        self._sync_uses()
        slot = self.slots.pop(key, None)
        if slot is None:
            raise fail(f"{self.where()}: key {key.hex()} not found", ENOENT)
        if self.native_index is not None:
            self.native_index.remove(key)
        self._free_for(slot).append(slot)
        if self.lru:
            self._recency_for(slot).pop(key, None)
        self._order = None

    def lookup_and_delete(self, key: Any, flags: int = 0) -> Any:
        self.check_read()
        self.check_write()
        k = self.key_bytes(key)
        if flags:
            raise fail(f"{self.where()}: lookup_and_delete flags {flags:#x}", EINVAL)
        value = self.lookup_raw(k)
        self.delete_raw(k)
        return self.decode_value(value)

    def next_key_raw(self, key: bytes | None) -> bytes:
        if not self.slots:
            raise fail(f"{self.where()}: map is empty", ENOENT)
        if self._order is None:
            self._keys = list(self.slots)
            self._order = {k: i for i, k in enumerate(self._keys)}
        i = self._order.get(key) if key is not None else None
        if i is None:
            return self._keys[0]
        if i + 1 >= len(self._keys):
            raise fail(f"{self.where()}: no key after the last one", ENOENT)
        return self._keys[i + 1]

    def iter_raw_keys(self):
        return iter(list(self.slots))

    def __len__(self) -> int:
        return len(self.slots)

    def clear(self) -> None:
        self.check_write()
        for key in list(self.slots):
            self.delete_raw(key)

    # --- program face ---------------------------------------------------------------------------
    def lookup_address(self, key: bytes) -> int:
        slot = self.slots.get(key)
        if slot is None:
            return 0
        return self.base + slot * self.stride

    def program_update(self, key: bytes, value: bytes, flags: int) -> int:
        if flags == 0 and type(self) is HashMap:  # replacing a value in place: the common case
            slot = self.slots.get(key)
            if slot is not None:
                off = slot * self.stride
                self.view[off: off + self.value_size] = value
                return 0
        return super().program_update(key, value, flags)

    def lookup_percpu_address(self, key: bytes, cpu: int) -> int:
        """bpf_map_lookup_percpu_elem: ``cpu``'s copy, 0 when absent or not a possible CPU."""
        slot = self.slots.get(key)
        if slot is None or not self.percpu or not 0 <= cpu < self.copies:
            return 0
        return self.base + cpu * self.cpu_stride + slot * self.stride

    def addresses(self) -> dict[bytes, int]:
        """Key -> value address (CPU 0's copy), for engines that want to cache them."""
        return {k: self.base + s * self.stride for k, s in self.slots.items()}


class PerCPUHashMap(PerCPUMixin, HashMap):
    """BPF_MAP_TYPE_PERCPU_HASH: one value copy per possible CPU."""

    type_names = ("percpu_hash",)

    def store(self, slot: int, value: Any, new: bool) -> None:
        if isinstance(value, OneCPU):
            cpu = current_cpu()
            if new:
                for other in range(self.copies):
                    self._clear(slot, other)
            self._write(slot, bytes(value), cpu)
        else:
            for cpu, v in enumerate(value):
                self._write(slot, v, cpu)

    def load(self, slot: int) -> Any:
        return [self._read(slot, cpu) for cpu in range(self.copies)]

    def lookup_address(self, key: bytes) -> int:
        slot = self.slots.get(key)
        if slot is None:
            return 0
        return self.base + current_cpu() * self.cpu_stride + slot * self.stride


class LRUHashMap(HashMap):
    """BPF_MAP_TYPE_LRU_HASH: a full map evicts its least recently used element."""

    type_names = ("lru_hash",)
    lru = True

    def lookup_address(self, key: bytes) -> int:
        slot = self.slots.get(key)
        if slot is None:
            return 0
        self._sync_uses()
        self._recency_for(slot).move_to_end(key)  # a program's lookup marks the element used
        return self.base + slot * self.stride


class LRUPerCPUHashMap(PerCPUHashMap):
    """BPF_MAP_TYPE_LRU_PERCPU_HASH."""

    type_names = ("lru_percpu_hash",)
    lru = True

    def lookup_address(self, key: bytes) -> int:
        slot = self.slots.get(key)
        if slot is None:
            return 0
        self._sync_uses()
        self._recency_for(slot).move_to_end(key)
        return self.base + current_cpu() * self.cpu_stride + slot * self.stride


class HashOfMapsMap(HashMap):
    """BPF_MAP_TYPE_HASH_OF_MAPS: values are live maps matching ``spec.inner``."""

    type_names = ("hash_of_maps",)
    allowed_flags = ACCESS_MASK | BPF_F_NUMA_NODE | BPF_F_NO_PREALLOC | BPF_F_ZERO_SEED

    def __init__(self, spec):
        super().__init__(spec)
        self.inner_maps: dict[int, Map] = {}

    def check_spec(self) -> None:
        if self.value_size != 4:
            raise fail(f"{self.where()}: a map-in-map's value size must be 4", EINVAL)
        super().check_spec()
        if self.spec.inner is None:
            raise fail(f"{self.where()}: a map-in-map needs an inner map template", EINVAL)

    def encode_value(self, value: Any) -> Any:
        return check_inner(self, value)

    def decode_value(self, raw: Any) -> Any:
        return raw

    def check_update_flags(self, flags: int) -> None:
        super().check_update_flags(flags)

    def store(self, slot: int, value: Any, new: bool) -> None:
        self.inner_maps[slot] = value
        self._write(slot, (value.handle & 0xFFFFFFFF).to_bytes(4, "little"))

    def load(self, slot: int) -> Any:
        return self.inner_maps[slot]

    def delete_raw(self, key: bytes) -> None:
        slot = self.slots.get(key)
        super().delete_raw(key)
        self.inner_maps.pop(slot, None)

    def lookup_and_delete(self, key: Any, flags: int = 0) -> Any:
        raise fail(f"{self.where()}: lookup_and_delete is not supported", ENOTSUPP)

    def evict(self) -> None:  # pragma: no cover - hash_of_maps is never LRU
        raise AssertionError

    def lookup_address(self, key: bytes) -> int:
        slot = self.slots.get(key)
        if slot is None:
            return 0
        return self.inner_maps[slot].handle

    def program_update(self, key: bytes, value: bytes, flags: int) -> int:
        return -EINVAL

    def program_delete(self, key: bytes) -> int:
        return super().program_delete(key)
