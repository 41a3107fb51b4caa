"""Live maps for the userspace engines: one class per kernel map family, made from a MapSpec.

``create_map(spec)`` looks the type name up in :data:`MAP_TYPES` (the kernel's names without
``BPF_MAP_TYPE_``, or the UAPI number) and builds the live map; an unknown type or a spec the
kernel would refuse raises :class:`pybpf.errors.MapError` with the kernel's errno.

What engines use (see :mod:`pybpf.maps.base`)::

    m.handle                    # unique native address: the map pointer a register holds
    m.regions()                 # pybpf.memory.Region objects holding the values (add to Memory)
    m.lookup_address(key)       # value address for bpf_map_lookup_elem, 0 when absent
    m.value_address             # array maps: element 0 (PSEUDO_MAP_VALUE loads)
    m.program_update / program_delete / program_push / program_take   # -> 0 or -errno
    map_from_handle(ptr)        # any live map by handle (inner maps of map-in-map included)

What Python users get::

    m[k] = v; m[k]; del m[k]; k in m; len(m); m.items()   # bytes, ints or ctypes objects
    m.key_type, m.value_type = Flow, int                   # how keys/values come back
    m.lookup / update(k, v, flags) / delete / get_next_key / lookup_and_delete / freeze
    m.lookup_batch(start, count) / update_batch(items) / delete_batch(keys)
    queue.push(v) / pop() / peek();  bloom.push(v); v in bloom
    for record in ringbuf: ...;  ringbuf.consumer(callback).poll(timeout)
    perf.reader(callback).poll()
"""

from __future__ import annotations

from ..errors import MapError
from ..program import MapSpec
from .array import ArrayMap, ArrayOfMapsMap, PerCPUArrayMap, ProgArrayMap
from .base import (BPF_ANY, BPF_EXIST, BPF_F_LOCK, BPF_F_NO_PREALLOC, BPF_F_ZERO_SEED,
                   BPF_NOEXIST, EINVAL, Map, current_cpu, map_from_handle, possible_cpus,
                   set_current_cpu)
from .bloom import BloomFilterMap
from .hash import HashMap, HashOfMapsMap, LRUHashMap, LRUPerCPUHashMap, PerCPUHashMap
from .lpm import LPMTrieMap
from .perf import PerfEventArrayMap, PerfEventReader
from .queue import QueueMap, StackMap
from .ringbuf import RingBufferConsumer, RingBufMap

_CLASSES: tuple[type[Map], ...] = (
    ArrayMap, PerCPUArrayMap, ProgArrayMap, ArrayOfMapsMap,
    HashMap, PerCPUHashMap, LRUHashMap, LRUPerCPUHashMap, HashOfMapsMap,
    LPMTrieMap, RingBufMap, PerfEventArrayMap, QueueMap, StackMap, BloomFilterMap,
)

#: map type name -> class
MAP_TYPES: dict[str, type[Map]] = {name: cls for cls in _CLASSES for name in cls.type_names}


def map_class(type_name: str | int) -> type[Map]:
    """The class for a type given as the kernel's name (``hash``, ``BPF_MAP_TYPE_HASH``) or
    its number (``enum bpf_map_type``, as legacy ``maps`` sections store it)."""
    if isinstance(type_name, int):
        from ..kernel.uapi import MapType  # plain data: the UAPI enum

        if type_name not in MapType._value2member_map_:
            raise MapError(f"unknown map type number {type_name}", errno=EINVAL)
        type_name = MapType(type_name).name
    name = str(type_name).lower().removeprefix("bpf_map_type_")
    cls = MAP_TYPES.get(name)
    if cls is None:
        raise MapError(f"unknown map type '{type_name}' (known: {', '.join(sorted(MAP_TYPES))})",
                       errno=EINVAL)
    return cls


def create_map(spec: MapSpec) -> Map:
    """A live map for ``spec`` (its ``contents`` are written in, inner maps created)."""
    live = map_class(spec.type)(spec)
    for key, value in spec.contents:
        # initial contents are written even into maps read-only for user space (.rodata)
        if isinstance(live, QueueMap):
            live.push_raw(live.value_bytes(value), BPF_ANY)
        else:
            live.update_raw(live.key_bytes(key), live.encode_value(value), BPF_ANY)
    return live


__all__ = [
    "create_map", "map_class", "map_from_handle", "MAP_TYPES", "Map", "MapError",
    "ArrayMap", "PerCPUArrayMap", "ProgArrayMap", "ArrayOfMapsMap", "HashMap", "PerCPUHashMap",
    "LRUHashMap", "LRUPerCPUHashMap", "HashOfMapsMap", "LPMTrieMap", "RingBufMap",
    "RingBufferConsumer", "PerfEventArrayMap", "PerfEventReader", "QueueMap", "StackMap",
    "BloomFilterMap", "BPF_ANY", "BPF_NOEXIST", "BPF_EXIST", "BPF_F_LOCK",
    "BPF_F_NO_PREALLOC", "BPF_F_ZERO_SEED", "possible_cpus", "current_cpu", "set_current_cpu",
]
