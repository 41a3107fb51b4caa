"""The bloom filter map (BPF_MAP_TYPE_BLOOM_FILTER): push values, peek for membership.

Follows ``kernel/bpf/bloom_filter.c`` exactly, down to the bits: ``map_extra``'s low 4 bits give
the number of hash functions (0 means 5); the bit array holds ``max_entries * k * 7 / 5`` bits
rounded up to a power of two (at least 64); hash function ``i`` is the kernel's ``jhash2`` over
the value's u32 words (``jhash`` over its bytes when the size is not a multiple of 4) seeded with
``seed + i``. The seed is random unless BPF_F_ZERO_SEED is set, so with that flag the filter
answers exactly like the kernel's, false positives included.

Push takes only BPF_ANY; peek answers 0 (maybe present) or ENOENT (certainly absent); pop,
delete and get_next_key are EOPNOTSUPP. Through bpf(2) update pushes and lookup (no key) peeks.
"""

from __future__ import annotations

import random
import struct
from typing import Any

from .base import (ACCESS_MASK, BPF_ANY, BPF_F_NUMA_NODE, BPF_F_ZERO_SEED, EINVAL, ENOENT,
                   ENOTSUPP, EOPNOTSUPP, Map, fail)

_M32 = 0xFFFFFFFF
JHASH_INITVAL = 0xDEADBEEF


def _rol(x: int, k: int) -> int:
    return ((x << k) | (x >> (32 - k))) & _M32


def _mix(a: int, b: int, c: int) -> tuple[int, int, int]:
    a = (a - c) & _M32; a ^= _rol(c, 4); c = (c + b) & _M32
    b = (b - a) & _M32; b ^= _rol(a, 6); a = (a + c) & _M32
    c = (c - b) & _M32; c ^= _rol(b, 8); b = (b + a) & _M32
    a = (a - c) & _M32; a ^= _rol(c, 16); c = (c + b) & _M32
    b = (b - a) & _M32; b ^= _rol(a, 19); a = (a + c) & _M32
    c = (c - b) & _M32; c ^= _rol(b, 4); b = (b + a) & _M32
    return a, b, c


def _final(a: int, b: int, c: int) -> int:
    c ^= b; c = (c - _rol(b, 14)) & _M32
    a ^= c; a = (a - _rol(c, 11)) & _M32
    b ^= a; b = (b - _rol(a, 25)) & _M32
    c ^= b; c = (c - _rol(b, 16)) & _M32
    a ^= c; a = (a - _rol(c, 4)) & _M32
    b ^= a; b = (b - _rol(a, 14)) & _M32
    c ^= b; c = (c - _rol(b, 24)) & _M32
    return c


def jhash(data: bytes, initval: int) -> int:
    """Bob Jenkins' lookup3 hash as ``include/linux/jhash.h`` computes it over bytes."""
    n = len(data)
    a = b = c = (JHASH_INITVAL + n + initval) & _M32
    i = 0
    while n > 12:
        x, y, z = struct.unpack_from("<III", data, i)
        a, b, c = _mix((a + x) & _M32, (b + y) & _M32, (c + z) & _M32)
        i += 12
        n -= 12
    if n == 0:
        return c
    tail = data[i:] + bytes(12 - n)
    x, y, z = struct.unpack("<III", tail)
    return _final((a + x) & _M32, (b + y) & _M32, (c + z) & _M32)


def jhash2(words: tuple[int, ...], initval: int) -> int:
    """``jhash2``: the same hash over u32 words."""
    n = len(words)
    a = b = c = (JHASH_INITVAL + (n << 2) + initval) & _M32
    i = 0
    while n > 3:
        a, b, c = _mix((a + words[i]) & _M32, (b + words[i + 1]) & _M32,
                       (c + words[i + 2]) & _M32)
        i += 3
        n -= 3
    if n == 0:
        return c
    rest = list(words[i:]) + [0] * (3 - n)
    return _final((a + rest[0]) & _M32, (b + rest[1]) & _M32, (c + rest[2]) & _M32)


class BloomFilterMap(Map):
    """BPF_MAP_TYPE_BLOOM_FILTER."""

    type_names = ("bloom_filter",)
    allowed_flags = ACCESS_MASK | BPF_F_NUMA_NODE | BPF_F_ZERO_SEED
    has_keys = False

    def __init__(self, spec):
        super().__init__(spec)
        self.nr_hash_funcs = (spec.map_extra & 0xF) or 5
        nr_bits = self.max_entries * self.nr_hash_funcs
        nr_bits = (nr_bits // 5) * 7
        if nr_bits > 1 << 31 or self.max_entries * self.nr_hash_funcs > _M32:
            nr_bits = 1 << 32
        elif nr_bits <= 64:
            nr_bits = 64
        else:
            nr_bits = 1 << (nr_bits - 1).bit_length()
        self.bitset_mask = nr_bits - 1
        self.bits = bytearray(nr_bits // 8)
        self.seed = 0 if self.flags & BPF_F_ZERO_SEED else random.getrandbits(32)
        self.count = 0

    def check_spec(self) -> None:
        if self.key_size != 0 or self.value_size <= 0 or self.max_entries <= 0 or \
                self.spec.map_extra & ~0xF:
            raise fail(f"{self.where()}: needs key size 0, a positive value size and "
                       f"max_entries, map_extra <= 15 (key={self.key_size} "
                       f"value={self.value_size} map_extra={self.spec.map_extra})", EINVAL)

    def key_bytes(self, key: Any) -> bytes:
        if key not in (None, b""):
            raise fail(f"{self.where()} has no keys", EINVAL)
        return b""

    def _hash(self, value: bytes, i: int) -> int:
        seed = (self.seed + i) & _M32
        if len(value) % 4 == 0:
            h = jhash2(struct.unpack(f"<{len(value) // 4}I", value), seed)
        else:
            h = jhash(value, seed)
        return h & self.bitset_mask

    def push_raw(self, value: bytes, flags: int) -> None:
        if not isinstance(flags, int) or flags != BPF_ANY:
            raise fail(f"{self.where()}: push takes only BPF_ANY", EINVAL)
        for i in range(self.nr_hash_funcs):
            h = self._hash(value, i)
            self.bits[h >> 3] |= 1 << (h & 7)
        self.count += 1

    def peek_raw(self, value: bytes) -> bool:
        for i in range(self.nr_hash_funcs):
            h = self._hash(value, i)
            if not self.bits[h >> 3] >> (h & 7) & 1:
                return False
        return True

    # --- syscall face ---------------------------------------------------------------------------
    def push(self, value: Any, flags: int = BPF_ANY) -> None:
        self.check_write()
        self.push_raw(self.value_bytes(value), flags)

    def peek(self, value: Any) -> bool:
        """True when ``value`` may have been pushed (never False for a pushed value)."""
        self.check_read()
        return self.peek_raw(self.value_bytes(value))

    def __contains__(self, value: Any) -> bool:
        return self.peek(value)

    def update(self, key: Any, value: Any, flags: int = BPF_ANY) -> None:
        self.key_bytes(key)
        self.push(value, flags)

    def lookup(self, key: Any = None, value: Any = None) -> Any:
        """bpf(2)'s lookup with no key: peek for ``value``; ENOENT when absent."""
        self.key_bytes(key)
        if not self.peek(value):
            raise fail(f"{self.where()}: value not in the filter", ENOENT)
        return self.value_bytes(value)

    def pop(self) -> Any:
        raise fail(f"{self.where()}: a bloom filter cannot pop", EOPNOTSUPP)

    def lookup_and_delete(self, key: Any = None) -> Any:
        raise fail(f"{self.where()}: lookup_and_delete is not supported", ENOTSUPP)

    def delete(self, key: Any = None) -> None:
        raise fail(f"{self.where()}: a bloom filter cannot delete", EOPNOTSUPP)

    def get_next_key(self, key: Any = None) -> Any:
        raise fail(f"{self.where()}: a bloom filter has no keys to iterate", EOPNOTSUPP)

    def iter_raw_keys(self):
        return iter(())

    def __len__(self) -> int:
        return self.count

    def items(self) -> list:
        return []

    def raw_items(self) -> list:
        return []

    def clear(self) -> None:
        self.bits[:] = bytes(len(self.bits))
        self.count = 0

    # --- program face ---------------------------------------------------------------------------
    def lookup_address(self, key: bytes) -> int:
        return 0

    def program_push(self, value: bytes, flags: int) -> int:
        if flags != BPF_ANY:
            return -EINVAL
        self.push_raw(value, flags)
        return 0

    def program_peek(self, value: bytes) -> int:
        return 0 if self.peek_raw(value) else -ENOENT
