"""A native index of a hash map's keys, so JIT-compiled code looks keys up without Python.

:class:`pybpf.maps.hash.HashMap` keeps ``key -> slot`` in a Python dict; native code cannot
read that. The index mirrors it in two ctypes buffers at fixed addresses:

* ``keys``: ``max_entries`` key slots, slot ``s`` holding the key whose value is in slot ``s``
  of the map's storage (the map's slots never move, :mod:`pybpf.maps.hash`);
* ``table``: an open-addressing hash table (linear probing) of ``u32`` entries -- 0 empty,
  ``0xFFFFFFFF`` a deleted entry, otherwise ``slot + 1`` -- with a power-of-two capacity of at
  least twice ``max_entries``. Deleted entries are swept by a rebuild once they pass a quarter
  of the capacity, so at least a quarter of the table is always empty and every probe ends.

The map keeps the index in step (its ``native_index`` hook, called on every insert and
removal); :func:`attach` creates it the first time a compiled program needs it.

LRU maps also need every program lookup to count as a use (:mod:`pybpf.maps.hash` keeps the
recency order in a Python ``OrderedDict``). Native lookups record uses in ``lru``, one more
ctypes buffer of u64 words: ``[clock, count, stamps[max_entries], log[max_entries + 1]]``. A
lookup sets ``stamps[slot] = ++clock`` and, when the slot had no stamp yet, appends it to
``log``. Before the map reads or changes its recency order (insert, update, delete, evict, a
lookup from Python) it calls :meth:`NativeIndex.sync_recency`, which replays the logged slots
in stamp order -- the order of their *last* native use -- as ``move_to_end`` calls and clears
the log, so eviction picks the element the interpreter would pick. The hash is
FNV-1a over the key's little-endian 32-bit words with a final shift-xor, computed the same way
here and in the code :mod:`.codegen` emits (``native_hash_lookup``), which is why only keys
whose size is a multiple of 4 get the native path.
"""

from __future__ import annotations

import ctypes
from typing import Any

M64 = (1 << 64) - 1
FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3
EMPTY, DELETED = 0, 0xFFFFFFFF
#: key sizes the native lookup handles (multiples of 4 bytes, up to this many)
MAX_KEY_SIZE = 64


def capacity_for(max_entries: int) -> int:
    """Table capacity for a map of ``max_entries`` (a compile-time constant of the lookup)."""
    cap = 8
    while cap < 2 * max_entries:
        cap *= 2
    return cap


#: hash map types with a native lookup (hash_of_maps returns an inner map, not a value)
NATIVE_TYPES = frozenset({"hash", "lru_hash", "percpu_hash", "lru_percpu_hash"})
LRU_TYPES = frozenset({"lru_hash", "lru_percpu_hash"})
PERCPU_TYPES = frozenset({"percpu_hash", "lru_percpu_hash"})
#: words of the ``lru`` buffer before the stamps
LRU_HEADER = 2


def supported(map_type: str, key_size: int, max_entries: int) -> bool:
    """Whether a map of this shape gets the native lookup: the hash types of
    :data:`NATIVE_TYPES` with keys of whole 32-bit words."""
    return (map_type in NATIVE_TYPES and 0 < key_size <= MAX_KEY_SIZE and key_size % 4 == 0
            and 0 < max_entries <= 1 << 22)


def key_hash(key: bytes) -> int:
    h = FNV_OFFSET
    for j in range(0, len(key), 4):
        h = ((h ^ int.from_bytes(key[j:j + 4], "little")) * FNV_PRIME) & M64
    return h ^ (h >> 29)


class NativeIndex:
    """The ``key -> slot`` index of one hash map, in native memory."""

    def __init__(self, m: Any):
        self.key_size = m.key_size
        self.capacity = capacity_for(m.max_entries)
        self.mask = self.capacity - 1
        self.table = (ctypes.c_uint32 * self.capacity)()
        self.keys = (ctypes.c_uint8 * max(m.key_size * m.max_entries, 1))()
        self.table_address = ctypes.addressof(self.table)
        self.keys_address = ctypes.addressof(self.keys)
        self.deleted = 0
        self._map = m
        self.max_entries = m.max_entries
        self.lru = None
        if getattr(m, "lru", False):
            self.lru = (ctypes.c_uint64 * (LRU_HEADER + 2 * m.max_entries + 1))()
            self.lru_address = ctypes.addressof(self.lru)
        for key, slot in m.slots.items():
            self.insert(key, slot)

    def sync_recency(self) -> None:
        """Replay the uses native lookups logged into the map's recency order (see the
        module's docstring); cheap when there are none."""
        lru = self.lru
        if lru is None or not lru[1]:
            return
        n = lru[1]
        stamps = LRU_HEADER
        log = LRU_HEADER + self.max_entries
        slots = sorted((lru[log + i] for i in range(n)), key=lambda s: lru[stamps + s])
        ks = self.key_size
        m = self._map
        for slot in slots:
            lru[stamps + slot] = 0
            key = bytes(self.keys[slot * ks: (slot + 1) * ks])
            if m.slots.get(key) == slot:
                m._recency_for(slot).move_to_end(key)
        lru[1] = 0

    def _find(self, key: bytes) -> int | None:
        """Table position of ``key``, None when absent."""
        i = key_hash(key) & self.mask
        ks = self.key_size
        while True:
            e = self.table[i]
            if e == EMPTY:
                return None
            if e != DELETED:
                s = (e - 1) * ks
                if bytes(self.keys[s:s + ks]) == key:
                    return i
            i = (i + 1) & self.mask

    def insert(self, key: bytes, slot: int) -> None:
        ks = self.key_size
        ctypes.memmove(self.keys_address + slot * ks, key, ks)
        i = key_hash(key) & self.mask
        while self.table[i] not in (EMPTY, DELETED):
            i = (i + 1) & self.mask
        if self.table[i] == DELETED:
            self.deleted -= 1
        self.table[i] = slot + 1

    def remove(self, key: bytes) -> None:
        i = self._find(key)
        if i is None:
            return
        self.table[i] = DELETED
        self.deleted += 1
        if self.deleted > self.capacity // 4:
            self.rebuild()

    def rebuild(self) -> None:
        """Sweep deleted entries: the table again holds only the map's keys."""
        ctypes.memset(self.table_address, 0, 4 * self.capacity)
        self.deleted = 0
        for key, slot in self._map.slots.items():
            self.insert(key, slot)


def attach(m: Any) -> NativeIndex:
    """The map's native index, created (and kept in step by the map) on first use."""
    index = getattr(m, "native_index", None)
    if index is None:
        index = NativeIndex(m)
        m.native_index = index
    return index
