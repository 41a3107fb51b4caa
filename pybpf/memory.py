"""Memory regions with checked access, shared by every userspace engine.

A BPF register that holds a pointer holds a REAL native address: every region (stack frame,
packet/input data, context, map value storage, globals) is a ctypes buffer owned by this
process. The interpreter, the JIT (which dereferences addresses directly) and Python code
(maps, helpers) therefore agree on every pointer value, and a pointer stored into memory by one
engine is meaningful to another.

Safety comes from :class:`Memory`: an unverified program may compute any 64-bit value, so every
access the interpreter performs is looked up here first and refused with a
:class:`pybpf.errors.VMError` carrying the faulting address unless the whole access lies inside
one region (and the region is writable for stores). This mirrors what the kernel verifier proves
statically (each access within the bounds of one object), checked dynamically instead.

Lookups are a bisect over the sorted base addresses, preceded by a last-hit cache because a
program usually touches one region many times in a row.
"""

from __future__ import annotations

import ctypes
import struct
from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Any, Iterator

from .errors import VMError

#: little-endian unsigned formats by access width, for struct.unpack_from / pack_into
#: unused bytes around every allocated region (see :meth:`Region.allocate`)
GUARD_BYTES = 64

_FORMATS = {1: struct.Struct("<B"), 2: struct.Struct("<H"), 4: struct.Struct("<I"),
            8: struct.Struct("<Q")}


@dataclass(eq=False)
class Region:
    """A contiguous block of native memory the program may access.

    ``buffer`` is the ctypes object that owns the memory; the region keeps it alive. ``view``
    is a writable byte-wide ``memoryview`` of it (reads and writes through it touch the native
    memory itself, so the JIT and Python see the same bytes).
    """

    name: str
    address: int
    size: int
    writable: bool
    buffer: Any
    view: memoryview = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.buffer is None:
            # a bare address range (memory owned elsewhere, e.g. by the JIT)
            self.buffer = (ctypes.c_ubyte * max(self.size, 1)).from_address(self.address)
        self.view = memoryview(self.buffer).cast("B")
        if len(self.view) < self.size:
            raise ValueError(f"region {self.name!r}: buffer holds {len(self.view)} bytes, "
                             f"fewer than its size {self.size}")

    @property
    def end(self) -> int:
        """One past the last address of the region."""
        return self.address + self.size

    @classmethod
    def allocate(cls, name: str, size: int, *, writable: bool = True, data: bytes = b"",
                 guard: int = GUARD_BYTES) -> "Region":
        """A fresh zero-filled region of ``size`` bytes (``data`` copied to its start).

        The memory is surrounded by ``guard`` unused bytes on each side, so that a small
        overrun faults instead of landing by chance in a neighbouring allocation (two
        interpreters must fault on the same programs, whatever malloc did).
        """
        if len(data) > size:
            raise ValueError(f"region {name!r}: {len(data)} bytes of data exceed size {size}")
        backing = ctypes.create_string_buffer(max(size, 1) + 2 * guard)
        buf = (ctypes.c_ubyte * max(size, 1)).from_buffer(backing, guard)  # keeps backing alive
        if data:
            ctypes.memmove(buf, data, len(data))
        return cls(name, ctypes.addressof(buf), size, writable, buf)

    def contains(self, address: int, size: int = 1) -> bool:
        off = address - self.address
        return 0 <= off and off + size <= self.size

    def bytes(self) -> bytes:
        return bytes(self.view[: self.size])


class Memory:
    """The set of regions a program may touch, and checked access to them."""

    def __init__(self) -> None:
        self._bases: list[int] = []
        self._regions: list[Region] = []
        self._last: Region | None = None
        #: called with the removed region whenever one is removed (engines that cache a
        #: region for fast access drop it)
        self.on_remove: list = []

    # --- the region set -------------------------------------------------------------------------
    def add(self, region: Region) -> Region:
        """Add ``region``; it must not overlap a region already present."""
        i = bisect_right(self._bases, region.address)
        for other in self._regions[max(i - 1, 0): i + 1]:
            if region.address < other.end and other.address < region.end and region.size \
                    and other.size:
                raise ValueError(f"region {region.name!r} overlaps region {other.name!r}")
        self._bases.insert(i, region.address)
        self._regions.insert(i, region)
        return region

    def remove(self, region: Region) -> None:
        for i, r in enumerate(self._regions):
            if r is region:
                del self._regions[i]
                del self._bases[i]
                break
        else:
            raise ValueError(f"region {region.name!r} is not in this memory")
        if self._last is region:
            self._last = None
        for callback in self.on_remove:
            callback(region)

    def __iter__(self) -> Iterator[Region]:
        return iter(list(self._regions))

    def __len__(self) -> int:
        return len(self._regions)

    def region_at(self, address: int) -> Region | None:
        """The region containing ``address``, or None."""
        i = bisect_right(self._bases, address) - 1
        if i >= 0:
            region = self._regions[i]
            if address < region.end:
                return region
        return None

    # --- checked access -------------------------------------------------------------------------
    def find(self, address: int, size: int, write: bool = False) -> tuple[Region, int]:
        """The region holding ``[address, address + size)`` and the offset into it.

        Raises :class:`VMError` (with ``address``) when the access is not entirely inside one
        region, or writes a read-only region.
        """
        region = self._last
        if region is not None:
            off = address - region.address
            if 0 <= off and off + size <= region.size and (region.writable or not write):
                return region, off
        i = bisect_right(self._bases, address) - 1
        if i >= 0:
            region = self._regions[i]
            off = address - region.address
            if off + size <= region.size and size >= 0:
                if write and not region.writable:
                    raise VMError(f"write of {size} bytes at {address:#x} to read-only region "
                                  f"'{region.name}'", address=address)
                self._last = region
                return region, off
            if off < region.size:
                raise VMError(f"{'write' if write else 'read'} of {size} bytes at {address:#x} "
                              f"runs past the end of region '{region.name}' (offset {off}, "
                              f"size {region.size})", address=address)
        raise VMError(f"invalid {'write' if write else 'read'} of {size} bytes at "
                      f"{address:#x}: not inside any memory region", address=address)

    def read(self, addr: int, size: int) -> bytes:
        if size == 0:
            return b""
        region, off = self.find(addr, size, False)
        return bytes(region.view[off: off + size])

    def write(self, addr: int, data: bytes) -> None:
        if not data:
            return
        region, off = self.find(addr, len(data), True)
        region.view[off: off + len(data)] = data

    def load(self, addr: int, size: int) -> int:
        """Little-endian unsigned load of 1, 2, 4 or 8 bytes (any size works, slower)."""
        region, off = self.find(addr, size, False)
        fmt = _FORMATS.get(size)
        if fmt is not None:
            return fmt.unpack_from(region.view, off)[0]
        return int.from_bytes(region.view[off: off + size], "little")

    def store(self, addr: int, size: int, value: int) -> None:
        """Little-endian store of the low ``size`` bytes of ``value``."""
        region, off = self.find(addr, size, True)
        value &= (1 << (8 * size)) - 1
        fmt = _FORMATS.get(size)
        if fmt is not None:
            fmt.pack_into(region.view, off, value)
        else:
            region.view[off: off + size] = value.to_bytes(size, "little")

    def read_cstring(self, addr: int, limit: int = 4096) -> bytes:
        """Bytes from ``addr`` up to (not including) a NUL, at most ``limit``, within one region."""
        region, off = self.find(addr, 1, False)
        end = min(region.size, off + limit)
        chunk = bytes(region.view[off:end])
        nul = chunk.find(b"\0")
        return chunk if nul < 0 else chunk[:nul]
