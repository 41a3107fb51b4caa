"""Queue (FIFO) and stack (LIFO) maps, which have values but no keys.

Follows ``kernel/bpf/queue_stack_maps.c``: key size must be 0; push takes BPF_ANY or BPF_EXIST
(BPF_EXIST overwrites the oldest element when full, otherwise a full map is E2BIG, any other
flag is EINVAL); pop and peek on an empty map are ENOENT; delete and get_next_key are EINVAL.
Through bpf(2), update pushes, lookup (with no key) peeks and lookup_and_delete pops -- the same
calls work here with ``key=None``.

Values never leave the map by address (programs copy them out with pop/peek), so plain bytes
are kept in a deque.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Iterator

from .base import (ACCESS_MASK, BPF_ANY, BPF_EXIST, BPF_F_NUMA_NODE, BPF_NOEXIST, E2BIG, EINVAL,
                   ENOENT, Map, fail, from_bytes)


class QueueMap(Map):
    """BPF_MAP_TYPE_QUEUE: pop and peek take the oldest element."""

    type_names = ("queue",)
    allowed_flags = ACCESS_MASK | BPF_F_NUMA_NODE
    has_keys = False
    lifo = False

    def __init__(self, spec):
        super().__init__(spec)
        self.elements: deque[bytes] = deque()

    def check_spec(self) -> None:
        if self.key_size != 0 or self.value_size <= 0 or self.max_entries <= 0:
            raise fail(f"{self.where()}: needs key size 0, a positive value size and "
                       f"max_entries (key={self.key_size} value={self.value_size})", EINVAL)

    def key_bytes(self, key: Any) -> bytes:
        if key not in (None, b""):
            raise fail(f"{self.where()} has no keys", EINVAL)
        return b""

    # --- the three operations, shared by both faces -----------------------------------------------
    def push_raw(self, value: bytes, flags: int) -> None:
        if not isinstance(flags, int) or flags & BPF_NOEXIST or flags > BPF_EXIST or flags < 0:
            raise fail(f"{self.where()}: push flags must be BPF_ANY or BPF_EXIST", EINVAL)
        if len(self.elements) >= self.max_entries:
            if not flags & BPF_EXIST:
                raise fail(f"{self.where()}: full ({self.max_entries} elements)", E2BIG)
            self.elements.popleft()  # overwrite the oldest
        self.elements.append(value)

    def take_raw(self, delete: bool) -> bytes:
        if not self.elements:
            raise fail(f"{self.where()}: empty", ENOENT)
        if self.lifo:
            return self.elements.pop() if delete else self.elements[-1]
        return self.elements.popleft() if delete else self.elements[0]

    # --- syscall face ---------------------------------------------------------------------------
    def push(self, value: Any, flags: int = BPF_ANY) -> None:
        self.check_write()
        self.push_raw(self.value_bytes(value), flags)

    def pop(self) -> Any:
        self.check_read()
        self.check_write()
        return from_bytes(self.take_raw(True), self.value_type)

    def peek(self) -> Any:
        self.check_read()
        return from_bytes(self.take_raw(False), self.value_type)

    def update(self, key: Any, value: Any, flags: int = BPF_ANY) -> None:
        self.key_bytes(key)
        self.push(value, flags)

    def lookup(self, key: Any = None) -> Any:
        self.key_bytes(key)
        return self.peek()

    def lookup_and_delete(self, key: Any = None) -> Any:
        self.key_bytes(key)
        return self.pop()

    def delete(self, key: Any = None) -> None:
        raise fail(f"{self.where()}: delete is not supported (pop instead)", EINVAL)

    def get_next_key(self, key: Any = None) -> Any:
        raise fail(f"{self.where()}: has no keys to iterate", EINVAL)

    def lookup_raw(self, key: bytes) -> Any:
        return self.take_raw(False)

    def iter_raw_keys(self):
        return iter(())

    def __len__(self) -> int:
        return len(self.elements)

    def __iter__(self) -> Iterator[Any]:
        """Elements in the order pop would return them (without popping)."""
        order = reversed(self.elements) if self.lifo else iter(self.elements)
        return (from_bytes(v, self.value_type) for v in list(order))

    def items(self) -> list:
        """(b"", value) per element in pop order: the key of a keyless map is empty."""
        return [(b"", v) for v in self]

    def raw_items(self) -> list[tuple[bytes, Any]]:
        order = reversed(self.elements) if self.lifo else iter(self.elements)
        return [(b"", v) for v in order]

    def clear(self) -> None:
        self.elements.clear()

    # --- program face (bpf_map_push_elem / pop_elem / peek_elem) ---------------------------------
    def lookup_address(self, key: bytes) -> int:
        return 0

    def program_push(self, value: bytes, flags: int) -> int:
        try:
            self.push_raw(value, flags)
        except Exception as exc:  # MapError
            return -(getattr(exc, "errno", None) or EINVAL)
        return 0

    def program_take(self, delete: bool) -> tuple[int, bytes]:
        """(0, value) or (-errno, b"")."""
        if not self.elements:
            return -ENOENT, b""
        return 0, self.take_raw(delete)


class StackMap(QueueMap):
    """BPF_MAP_TYPE_STACK: pop and peek take the newest element."""

    type_names = ("stack",)
    lifo = True
