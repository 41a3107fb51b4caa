"""Array maps: array, percpu_array, and the fd arrays prog_array and array_of_maps.

Follows ``kernel/bpf/arraymap.c``: keys are u32 indices, every index below ``max_entries``
always exists (lookup never fails in range, delete is EINVAL, BPF_NOEXIST is EEXIST), values
are laid out back to back with a stride of ``value_size`` rounded up to 8 (so
``value_address + off`` -- the kernel's direct value access -- means the same thing here), and
get_next_key walks indices in order, restarting at 0 for a key out of range.

The fd arrays hold objects instead of bytes: a prog_array entry is a program handle (whatever
the engine runs: a :class:`pybpf.program.Program` or an engine's live program), an
array_of_maps entry is a live inner map. Their updates only accept BPF_ANY, lookups from user
space give the object itself.
"""

from __future__ import annotations

import ctypes
from typing import Any

from ..errors import MapError
from .base import (BPF_ANY, BPF_EXIST, BPF_F_INNER_MAP, BPF_F_LOCK, BPF_F_MMAPABLE, BPF_F_NUMA_NODE,
                   BPF_F_RDONLY, BPF_F_WRONLY,
                   BPF_NOEXIST, ACCESS_MASK, E2BIG, EEXIST, EINVAL, ENOENT,
                   Map, OneCPU, PerCPUMixin, alloc, current_cpu, fail, possible_cpus, round_up)


#: how many key -> address answers an array remembers
ADDRESS_CACHE_LIMIT = 1 << 16


class ArrayMap(Map):
    """BPF_MAP_TYPE_ARRAY: preallocated values, index order."""

    type_names = ("array",)
    allowed_flags = ACCESS_MASK | BPF_F_NUMA_NODE | BPF_F_MMAPABLE | BPF_F_INNER_MAP
    batch_ops = frozenset({"lookup", "update"})

    def __init__(self, spec):
        super().__init__(spec)
        self.stride = round_up(self.value_size)
        copies = possible_cpus() if self.percpu else 1
        self.size = self.stride * self.max_entries * copies
        self._storage = alloc(self.size)
        self.base = ctypes.addressof(self._storage)
        self.view = memoryview(self._storage).cast("B")
        self.make_region(self._storage, self.size)
        #: key bytes -> value address, filled by program lookups (not for per-CPU arrays)
        self._addresses: dict[bytes, int] = {}

    def check_spec(self) -> None:
        if self.percpu and self.flags & BPF_F_NUMA_NODE:
            raise fail(f"{self.where()}: per-CPU maps cannot be NUMA-bound", EINVAL)
        if self.key_size != 4 or self.value_size <= 0 or self.max_entries <= 0:
            raise fail(f"{self.where()}: needs key size 4, a positive value size and "
                       f"max_entries (key={self.key_size} value={self.value_size} "
                       f"max_entries={self.max_entries})", EINVAL)

    @property
    def value_address(self) -> int:
        """Address of element 0 (``lddw`` with PSEUDO_MAP_VALUE points here plus an offset)."""
        return self.base

    def index(self, key: bytes) -> int:
        return int.from_bytes(key, "little")

    # --- syscall face ---------------------------------------------------------------------------
    def _offset(self, index: int, cpu: int = 0) -> int:
        return (cpu * self.max_entries + index) * self.stride

    def lookup_raw(self, key: bytes) -> Any:
        i = self.index(key)
        if i >= self.max_entries:
            raise fail(f"{self.where()}: index {i} out of range", ENOENT)
        off = self._offset(i)
        return bytes(self.view[off: off + self.value_size])

    def update_raw(self, key: bytes, value: Any, flags: int) -> None:
        i = self.index(key)
        if i >= self.max_entries:
            raise fail(f"{self.where()}: index {i} >= max_entries {self.max_entries}", E2BIG)
        if flags & 3 == BPF_NOEXIST:
            raise fail(f"{self.where()}: element {i} exists (BPF_NOEXIST)", EEXIST)
        off = self._offset(i)
        self.view[off: off + self.value_size] = value

    def delete_raw(self, key: bytes) -> None:
        raise fail(f"{self.where()}: array elements cannot be deleted", EINVAL)

    def next_key_raw(self, key: bytes | None) -> bytes:
        i = 0xFFFFFFFF if key is None else self.index(key)
        if i >= self.max_entries:
            return (0).to_bytes(4, "little")
        if i == self.max_entries - 1:
            raise fail(f"{self.where()}: no key after the last index", ENOENT)
        return (i + 1).to_bytes(4, "little")

    def __len__(self) -> int:
        return self.max_entries

    # --- program face ---------------------------------------------------------------------------
    def lookup_address(self, key: bytes) -> int:
        addr = self._addresses.get(key)
        if addr is not None:
            return addr
        i = int.from_bytes(key, "little")
        if i >= self.max_entries:
            return 0
        if self.percpu:
            return self.base + (current_cpu() * self.max_entries + i) * self.stride
        addr = self.base + i * self.stride
        if len(self._addresses) < ADDRESS_CACHE_LIMIT:
            self._addresses[key] = addr  # array slots never move: remember the answer
        return addr

    def program_update(self, key: bytes, value: bytes, flags: int) -> int:
        i = int.from_bytes(key, "little")
        if flags == 0 and not self.percpu and i < self.max_entries:  # the common case, inline
            off = i * self.stride
            self.view[off: off + self.value_size] = value
            return 0
        # array_map_update_elem's order: unknown flags, index, BPF_NOEXIST, then BPF_F_LOCK
        if flags & ~BPF_F_LOCK > BPF_EXIST:
            return -EINVAL
        if i >= self.max_entries:
            return -E2BIG
        if flags & BPF_NOEXIST:
            return -EEXIST
        if flags & BPF_F_LOCK:
            return -EINVAL
        self.update_raw(key, self.program_value(value), flags)
        return 0

    def lookup_percpu_address(self, key: bytes, cpu: int) -> int:
        """bpf_map_lookup_percpu_elem: ``cpu``'s copy, 0 when absent or not a possible CPU."""
        i = int.from_bytes(key, "little")
        if not self.percpu or i >= self.max_entries or not 0 <= cpu < possible_cpus():
            return 0
        return self.base + self._offset(i, cpu)


class PerCPUArrayMap(PerCPUMixin, ArrayMap):
    """BPF_MAP_TYPE_PERCPU_ARRAY: one copy of every element per possible CPU."""

    type_names = ("percpu_array",)
    # like array_map_alloc_check: per-CPU arrays can be neither mmapped nor inner maps
    allowed_flags = ACCESS_MASK | BPF_F_NUMA_NODE

    def lookup_raw(self, key: bytes) -> Any:
        i = self.index(key)
        if i >= self.max_entries:
            raise fail(f"{self.where()}: index {i} out of range", ENOENT)
        out = []
        for cpu in range(possible_cpus()):
            off = self._offset(i, cpu)
            out.append(bytes(self.view[off: off + self.value_size]))
        return out

    def update_raw(self, key: bytes, value: Any, flags: int) -> None:
        i = self.index(key)
        if i >= self.max_entries:
            raise fail(f"{self.where()}: index {i} >= max_entries {self.max_entries}", E2BIG)
        if flags & 3 == BPF_NOEXIST:
            raise fail(f"{self.where()}: element {i} exists (BPF_NOEXIST)", EEXIST)
        if isinstance(value, OneCPU):
            pairs = [(current_cpu(), bytes(value))]
        else:
            pairs = list(enumerate(value))
        for cpu, v in pairs:
            off = self._offset(i, cpu)
            self.view[off: off + self.value_size] = v


class FdArrayMap(Map):
    """The fd arrays (prog_array, array_of_maps): u32 index -> object, BPF_ANY only.

    Like ``fd_array_map_alloc_check``, they refuse the program-side access flags."""

    allowed_flags = BPF_F_RDONLY | BPF_F_WRONLY | BPF_F_NUMA_NODE

    def __init__(self, spec):
        super().__init__(spec)
        self.entries: list[Any] = [None] * self.max_entries

    def check_spec(self) -> None:
        if self.key_size != 4 or self.value_size != 4 or self.max_entries <= 0:
            raise fail(f"{self.where()}: needs key size 4, value size 4 and a positive "
                       f"max_entries (key={self.key_size} value={self.value_size})", EINVAL)

    def index(self, key: bytes) -> int:
        return int.from_bytes(key, "little")

    def check_object(self, obj: Any) -> Any:
        return obj

    def encode_value(self, value: Any) -> Any:
        return self.check_object(value)

    def update(self, key: Any, value: Any, flags: int = BPF_ANY) -> None:
        self.check_write()
        k = self.key_bytes(key)
        if flags != BPF_ANY:
            raise fail(f"{self.where()}: only BPF_ANY updates are allowed", EINVAL)
        i = self.index(k)
        if i >= self.max_entries:
            raise fail(f"{self.where()}: index {i} >= max_entries {self.max_entries}", E2BIG)
        self.entries[i] = self.check_object(value)

    def update_raw(self, key: bytes, value: Any, flags: int) -> None:
        self.update(key, value, flags)

    def decode_value(self, raw: Any) -> Any:
        return raw

    def lookup_raw(self, key: bytes) -> Any:
        i = self.index(key)
        if i >= self.max_entries or self.entries[i] is None:
            raise fail(f"{self.where()}: no entry at index {i}", ENOENT)
        return self.entries[i]

    def delete_raw(self, key: bytes) -> None:
        i = self.index(key)
        if i >= self.max_entries:
            raise fail(f"{self.where()}: index {i} >= max_entries {self.max_entries}", E2BIG)
        if self.entries[i] is None:
            raise fail(f"{self.where()}: no entry at index {i}", ENOENT)
        self.entries[i] = None

    next_key_raw = ArrayMap.next_key_raw

    def __len__(self) -> int:
        return self.max_entries

    def items(self) -> list[tuple[Any, Any]]:
        return [(i, e) for i, e in enumerate(self.entries) if e is not None]

    def raw_items(self) -> list[tuple[bytes, Any]]:
        return [(i.to_bytes(4, "little"), e) for i, e in self.items()]

    def program_update(self, key: bytes, value: bytes, flags: int) -> int:
        return -EINVAL  # the verifier refuses map_update_elem on fd arrays from programs

    def program_delete(self, key: bytes) -> int:
        return -EINVAL


class ProgArrayMap(FdArrayMap):
    """BPF_MAP_TYPE_PROG_ARRAY: the jump table of bpf_tail_call. Entries are program handles."""

    type_names = ("prog_array",)

    def check_object(self, obj: Any) -> Any:
        if obj is None or isinstance(obj, (int, bytes, bytearray)):
            raise fail(f"{self.where()}: a prog_array value must be a program (got "
                       f"{type(obj).__name__})", EINVAL)
        return obj

    def lookup_address(self, key: bytes) -> int:
        return 0  # programs cannot look into a prog_array

    def program_at(self, index: int) -> Any:
        """The program bpf_tail_call jumps to at ``index``, or None."""
        if 0 <= index < self.max_entries:
            return self.entries[index]
        return None


def check_inner(outer: Map, inner: Any) -> Map:
    """An inner map must match the outer map's template (``bpf_map_meta_equal``)."""
    template = outer.spec.inner
    if not isinstance(inner, Map):
        raise fail(f"{outer.where()}: values are live maps, got {type(inner).__name__}", EINVAL)
    if template is not None:
        same = (inner.type == template.type and inner.key_size == template.key_size
                and inner.value_size == template.value_size
                and inner.flags == template.flags)
        if same and not template.flags & BPF_F_INNER_MAP:
            same = inner.max_entries == template.max_entries
        if not same:
            raise fail(f"{outer.where()}: inner map '{inner.name}' ({inner.type} "
                       f"key={inner.key_size} value={inner.value_size} "
                       f"max_entries={inner.max_entries}) does not match the template "
                       f"({template.type} key={template.key_size} value={template.value_size} "
                       f"max_entries={template.max_entries})", EINVAL)
    return inner


class ArrayOfMapsMap(FdArrayMap):
    """BPF_MAP_TYPE_ARRAY_OF_MAPS: entries are live maps matching ``spec.inner``."""

    type_names = ("array_of_maps",)
    batch_ops = frozenset({"lookup"})

    def check_spec(self) -> None:
        super().check_spec()
        if self.spec.inner is None:
            raise fail(f"{self.where()}: a map-in-map needs an inner map template", EINVAL)

    def check_object(self, obj: Any) -> Any:
        return check_inner(self, obj)

    def lookup_address(self, key: bytes) -> int:
        i = int.from_bytes(key, "little")
        if i >= self.max_entries or self.entries[i] is None:
            return 0
        return self.entries[i].handle  # lookup in a map-in-map yields the inner map pointer


__all__ = ["ArrayMap", "PerCPUArrayMap", "ProgArrayMap", "ArrayOfMapsMap", "FdArrayMap",
           "MapError"]
