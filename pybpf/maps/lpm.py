"""The longest-prefix-match trie (BPF_MAP_TYPE_LPM_TRIE).

Follows ``kernel/bpf/lpm_trie.c``. A key is the kernel's ``struct bpf_lpm_trie_key_u8``: a
little-endian u32 ``prefixlen`` followed by ``key_size - 4`` data bytes whose bits are numbered
from the most significant bit of the first byte (network order for IP addresses).

* lookup (from a program *and* from user space) finds the longest stored prefix that matches the
  key's data within the key's own prefixlen (a prefixlen beyond the maximum matches nothing);
* update/delete work on exact prefixes (``prefixlen`` plus the first ``prefixlen`` bits); the
  data bytes are stored as given, trailing bits included, and get_next_key returns them so;
* a new prefix in a full trie is ENOSPC; a prefixlen beyond ``8 * (key_size - 4)`` is EINVAL;
* get_next_key walks the trie in post-order (longer prefixes before the prefix that contains
  them, the 0 branch before the 1 branch); an absent key restarts at the first.

The trie is kept as a dict per exact prefix (lookups try each length from the longest down);
the post-order is computed from the prefixes, which determine it completely.
"""

from __future__ import annotations

import ctypes
import ipaddress
from typing import Any

from .base import (ACCESS_MASK, BPF_EXIST, BPF_F_NO_PREALLOC, BPF_F_NUMA_NODE, BPF_NOEXIST,
                   EEXIST, EINVAL, ENOENT, ENOSPC, Map, alloc, fail, round_up)

#: key sizes the kernel accepts: 4-byte prefixlen plus 1..256 data bytes
KEY_SIZE_MIN, KEY_SIZE_MAX = 5, 4 + 256


def _mask(data: bytes, bits: int) -> bytes:
    """The first ``bits`` bits of ``data``, the rest zeroed."""
    full, rest = divmod(bits, 8)
    out = bytearray(len(data))
    out[:full] = data[:full]
    if rest:
        out[full] = data[full] & (0xFF << (8 - rest)) & 0xFF
    return bytes(out)


def _bits(data: bytes, count: int) -> tuple[int, ...]:
    return tuple((data[i // 8] >> (7 - i % 8)) & 1 for i in range(count))


class LPMTrieMap(Map):
    """BPF_MAP_TYPE_LPM_TRIE."""

    type_names = ("lpm_trie",)
    allowed_flags = ACCESS_MASK | BPF_F_NUMA_NODE | BPF_F_NO_PREALLOC
    batch_ops = frozenset({"lookup", "update", "delete"})

    def __init__(self, spec):
        super().__init__(spec)
        self.data_size = self.key_size - 4
        self.max_prefixlen = 8 * self.data_size
        self.stride = round_up(self.value_size)
        self.size = self.stride * self.max_entries
        self._storage = alloc(self.size)
        self.base = ctypes.addressof(self._storage)
        self.view = memoryview(self._storage).cast("B")
        self.make_region(self._storage, self.size)
        #: (prefixlen, masked data) -> (stored key bytes, slot)
        self.nodes: dict[tuple[int, bytes], tuple[bytes, int]] = {}
        #: prefix lengths present, longest first (lookups try only these)
        self.lengths: list[int] = []
        self.free = list(range(self.max_entries - 1, -1, -1))

    def check_spec(self) -> None:
        if (self.max_entries <= 0 or not self.flags & BPF_F_NO_PREALLOC
                or not KEY_SIZE_MIN <= self.key_size <= KEY_SIZE_MAX or self.value_size <= 0):
            raise fail(f"{self.where()}: needs BPF_F_NO_PREALLOC, key size 5..260, a positive "
                       f"value size and max_entries (key={self.key_size} "
                       f"value={self.value_size} flags={self.flags:#x})", EINVAL)

    # --- keys -----------------------------------------------------------------------------------
    def key_bytes(self, key: Any) -> bytes:
        """Also accepts ``(prefixlen, data)`` with data as bytes or an IP address string."""
        if isinstance(key, tuple) and len(key) == 2:
            plen, data = key
            if isinstance(data, str):
                try:
                    data = ipaddress.ip_address(data).packed
                except ValueError as exc:
                    raise fail(f"{self.where()}: {exc}", EINVAL) from None
            if isinstance(data, int):
                data = data.to_bytes(self.data_size, "big")
            if not isinstance(data, (bytes, bytearray)) or len(data) != self.data_size:
                raise fail(f"{self.where()}: prefix data must be {self.data_size} bytes", EINVAL)
            return int(plen).to_bytes(4, "little") + bytes(data)
        return super().key_bytes(key)

    def split(self, key: bytes) -> tuple[int, bytes]:
        return int.from_bytes(key[:4], "little"), key[4:]

    def _exact(self, key: bytes) -> tuple[int, bytes]:
        plen, data = self.split(key)
        if plen > self.max_prefixlen:
            raise fail(f"{self.where()}: prefixlen {plen} exceeds {self.max_prefixlen}", EINVAL)
        return plen, _mask(data, plen)

    def _match(self, key: bytes) -> tuple[bytes, int] | None:
        plen, data = self.split(key)
        if plen > self.max_prefixlen:  # the kernel matches nothing for such a key
            return None
        for length in self.lengths:
            if length <= plen:
                node = self.nodes.get((length, _mask(data, length)))
                if node is not None:
                    return node
        return None

    # --- syscall face ---------------------------------------------------------------------------
    def lookup_raw(self, key: bytes) -> Any:
        node = self._match(key)
        if node is None:
            raise fail(f"{self.where()}: no prefix matches {key.hex()}", ENOENT)
        off = node[1] * self.stride
        return bytes(self.view[off: off + self.value_size])

    def update_raw(self, key: bytes, value: Any, flags: int) -> None:
        ident = self._exact(key)
        node = self.nodes.get(ident)
        op = flags & 3
        if node is not None:
            if op == BPF_NOEXIST:
                raise fail(f"{self.where()}: prefix exists (BPF_NOEXIST)", EEXIST)
            slot = node[1]
        else:
            if op == BPF_EXIST:
                raise fail(f"{self.where()}: prefix not found (BPF_EXIST)", ENOENT)
            if not self.free:
                raise fail(f"{self.where()}: trie is full ({self.max_entries} entries)", ENOSPC)
            slot = self.free.pop()
            if ident[0] not in self.lengths:
                self.lengths.append(ident[0])
                self.lengths.sort(reverse=True)
        off = slot * self.stride
        self.view[off: off + self.stride] = bytes(value) + bytes(self.stride - self.value_size)
        self.nodes[ident] = (bytes(key), slot)

    def delete_raw(self, key: bytes) -> None:
        ident = self._exact(key)
        node = self.nodes.pop(ident, None)
        if node is None:
            raise fail(f"{self.where()}: prefix not found", ENOENT)
        self.free.append(node[1])
        if not any(length == ident[0] for length, _ in self.nodes):
            self.lengths.remove(ident[0])

    def _postorder(self) -> list[tuple[int, bytes]]:
        # a prefix sorts after every prefix it contains; then the 0 branch before the 1 branch
        return sorted(self.nodes, key=lambda ident: _bits(ident[1], ident[0]) + (2,))

    def next_key_raw(self, key: bytes | None) -> bytes:
        order = self._postorder()
        if not order:
            raise fail(f"{self.where()}: trie is empty", ENOENT)
        i = 0
        if key is not None:
            plen, data = self.split(key)
            ident = (plen, _mask(data, plen)) if plen <= self.max_prefixlen else None
            if ident in self.nodes:
                i = order.index(ident) + 1
                if i >= len(order):
                    raise fail(f"{self.where()}: no key after the last one", ENOENT)
        return self.nodes[order[i]][0]

    def iter_raw_keys(self):
        return iter([self.nodes[ident][0] for ident in self._postorder()])

    def raw_items(self) -> list[tuple[bytes, Any]]:
        out = []
        for ident in self._postorder():
            key, slot = self.nodes[ident]
            off = slot * self.stride
            out.append((key, bytes(self.view[off: off + self.value_size])))
        return out

    def items(self) -> list[tuple[Any, Any]]:
        from .base import from_bytes
        return [(from_bytes(k, self.key_type), from_bytes(v, self.value_type))
                for k, v in self.raw_items()]

    def __contains__(self, key: Any) -> bool:
        return self._match(self.key_bytes(key)) is not None

    def __len__(self) -> int:
        return len(self.nodes)

    # --- program face ---------------------------------------------------------------------------
    def lookup_address(self, key: bytes) -> int:
        node = self._match(key)
        return 0 if node is None else self.base + node[1] * self.stride
