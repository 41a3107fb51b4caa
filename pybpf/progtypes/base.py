"""What every program type is made of: a context layout, a context builder, allowed helpers.

A :class:`ProgType` is plain data (the kernel's ``bpf_verifier_ops`` + ``bpf_prog_ops`` seen
from userspace): the UAPI context struct as the program sees it (:class:`Field` rows), which
fields hold packet pointers, which helpers the type may call, what its return value means and
how BPF_PROG_TEST_RUN builds a context for it (``make_context``).

The real context pybpf gives a program is the UAPI struct followed by one 64-bit slot per
pointer field (``data``, ``data_end``, ``data_meta``): clang reads ``ctx->data`` as a 32-bit load,
which the kernel rewrites into a load of the real 64-bit pointer (``convert_ctx_access`` in
``net/core/filter.c``); :mod:`.rewrite` does the same at load time, pointing such loads at the
64-bit slots. Every other field keeps its UAPI offset, so narrow loads need no rewriting.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from ..errors import UsageError, VMError
from ..memory import Region

if TYPE_CHECKING:
    from ..memory import Memory


@dataclass(frozen=True)
class Field:
    """One field of a context struct (its UAPI offset and size)."""

    name: str
    offset: int
    size: int
    readable: bool = True
    writable: bool = False
    pointer: bool = False        # a packet pointer: 32-bit in the UAPI, rewritten to 64-bit
    narrow_write: bool = False   # stores narrower than the field are allowed (``cb``)
    narrow_read: bool = True     # loads narrower than the field are allowed

    @property
    def end(self) -> int:
        return self.offset + self.size


@dataclass
class ProgType:
    """A program type: its context, helpers and return-value meaning."""

    name: str
    ctx_name: str
    ctx_size: int                          # the UAPI struct size (what BPF_PROG_TEST_RUN takes)
    fields: tuple[Field, ...]
    make_context: Callable[..., "Context"]
    helpers: frozenset[str] = frozenset()  # besides BASE_HELPERS
    verdicts: dict[int, str] = field(default_factory=dict)
    returns: str = ""                      # what r0 means, for messages and docs
    packet: bool = False                   # the context points at a packet
    # ctx is a raw record (tracepoint) or raw u64 arguments: any offset within ctx_size reads
    raw_ctx: bool = False
    raw_start: int = 0                     # first readable offset of a raw context

    def __post_init__(self) -> None:
        self._by_offset = sorted(self.fields, key=lambda f: f.offset)
        self._by_name = {f.name: f for f in self.fields}
        self.pointer_slots = {f.offset: self.ctx_size + 8 * i
                              for i, f in enumerate(f for f in self._by_offset if f.pointer)}

    @property
    def real_ctx_size(self) -> int:
        """Size of the context pybpf builds: the UAPI struct plus the 64-bit pointer slots."""
        return self.ctx_size + 8 * len(self.pointer_slots)

    def field_at(self, offset: int) -> Field | None:
        for f in self._by_offset:
            if f.offset <= offset < f.end:
                return f
        return None

    def field(self, name: str) -> Field:
        return self._by_name[name]

    def check_access(self, off: int, size: int, write: bool) -> str | None:
        """Why a context access is invalid (None when it is valid), following the kernel's
        ``*_is_valid_access``: inside one field, aligned, whole pointer fields, writes only to
        writable fields."""
        what = "write" if write else "read"
        if off < 0 or off + size > self.ctx_size:
            return f"{what} of {size} bytes at offset {off} is outside {self.ctx_name} " \
                   f"({self.ctx_size} bytes)"
        if off % size:
            return f"misaligned {what} of {size} bytes at offset {off} of {self.ctx_name}"
        if self.raw_ctx:
            if write:
                return f"{self.ctx_name} is read-only"
            if off < self.raw_start:
                return f"the first {self.raw_start} bytes of the {self.ctx_name} are not " \
                       "readable"
            return None
        f = self.field_at(off)
        if f is not None and f.pointer and size != 4:
            return f"field '{f.name}' of {self.ctx_name} must be read with a 32-bit load"
        if f is None or off + size > f.end:
            return f"{what} of {size} bytes at offset {off} is not a field of {self.ctx_name}"
        if write and not f.writable:
            return f"field '{f.name}' of {self.ctx_name} is not writable in {self.name} programs"
        if not write and not f.readable:
            return f"field '{f.name}' of {self.ctx_name} is not readable in {self.name} programs"
        if f.pointer and size != 4:
            return f"field '{f.name}' of {self.ctx_name} must be read with a 32-bit load"
        if not write and size != f.size and not f.narrow_read:
            return f"field '{f.name}' of {self.ctx_name} must be read whole ({f.size} bytes)"
        if write and size != f.size and not f.narrow_write:
            return f"field '{f.name}' of {self.ctx_name} must be written whole ({f.size} bytes)"
        return None

    def allows_helper(self, name: str) -> bool:
        from .helpers import allowed
        return allowed(self.name, name)

    def verdict_name(self, r0: int) -> str:
        return self.verdicts.get(r0 & 0xFFFFFFFF, str(r0 & 0xFFFFFFFF))


def native_buffer(size: int, data: bytes = b"") -> Any:
    """A zero-filled ctypes buffer (context, packet frame) the program's regions point into."""
    buf = (ctypes.c_ubyte * max(size, 1))()
    if data:
        ctypes.memmove(buf, data, len(data))
    return buf


class Context:
    """The context of one run: the context region r1 points at and the memory behind it.

    Subclasses (packet contexts) add a packet; helpers that move packet bounds
    (``xdp_adjust_head``) call their methods, which also update the context's pointer slots.
    """

    def __init__(self, prog_type: ProgType, memory: "Memory", ctx_in: bytes):
        self.prog_type = prog_type
        self.memory = memory
        self.memories: list["Memory"] = [memory]
        self.buffer = native_buffer(prog_type.real_ctx_size, ctx_in)
        address = ctypes.addressof(self.buffer)
        self.regions: list[Region] = []
        self.region = self.add_region(Region(f"ctx ({prog_type.ctx_name})", address,
                                             prog_type.real_ctx_size, True, self.buffer))
        self.packet: Region | None = None

    @property
    def address(self) -> int:
        return self.region.address

    def set_u32(self, name: str, value: int) -> None:
        f = self.prog_type.field(name)
        self.region.view[f.offset: f.offset + f.size] = \
            (value & ((1 << (8 * f.size)) - 1)).to_bytes(f.size, "little")

    def get(self, name: str) -> int:
        f = self.prog_type.field(name)
        return int.from_bytes(self.region.view[f.offset: f.end], "little")

    def set_pointer(self, name: str, address: int) -> None:
        """Store a packet pointer: its 64-bit slot, and the low 32 bits in the UAPI field (what
        an unrewritten load would see)."""
        f = self.prog_type.field(name)
        slot = self.prog_type.pointer_slots[f.offset]
        self.region.view[slot: slot + 8] = address.to_bytes(8, "little")
        self.region.view[f.offset: f.offset + 4] = (address & 0xFFFFFFFF).to_bytes(4, "little")

    def add_region(self, region: Region) -> Region:
        for memory in self.memories:
            memory.add(region)
        self.regions.append(region)
        return region

    def remove_region(self, region: Region) -> None:
        for memory in self.memories:
            memory.remove(region)
        self.regions.remove(region)

    def attach(self, memory: "Memory") -> None:
        """Make the context reachable from another engine's memory (a tail-call target runs
        on its caller's context); regions added or moved later follow."""
        for region in self.regions:
            memory.add(region)
        self.memories.append(memory)

    def detach(self, memory: "Memory") -> None:
        self.memories.remove(memory)
        for region in self.regions:
            memory.remove(region)

    def reset(self, data: bytes, ctx_in: bytes | None) -> bool:
        """Make this context the next run's, built from ``data`` and ``ctx_in``, reusing its
        memory; False when it cannot (the engine then builds a new one)."""
        return False

    def release(self) -> None:
        """Take the context's regions out of the memory (the run is over)."""
        for region in list(self.regions):
            self.remove_region(region)

    # what BPF_PROG_TEST_RUN hands back
    def data_out(self) -> bytes:
        return b""

    def ctx_out(self) -> bytes:
        return bytes(self.region.view[: self.prog_type.ctx_size])

    def frame_out(self) -> bytes:
        """The frame as it would leave (for writing a capture): the packet without metadata,
        with its link-layer header."""
        return self.data_out()


def check_ctx_size(prog_type: ProgType, ctx_in: bytes | None, *, exact: bool = False,
                   multiple: int = 1) -> bytes:
    """The context bytes a run starts from, refusing a size the type cannot take."""
    if ctx_in is None:
        return b""
    size = len(ctx_in)
    if size > prog_type.ctx_size or (exact and size != prog_type.ctx_size) or size % multiple:
        need = f"exactly {prog_type.ctx_size}" if exact else f"at most {prog_type.ctx_size}"
        extra = f", a multiple of {multiple}" if multiple > 1 else ""
        raise UsageError(f"the context of {prog_type.name} programs is {prog_type.ctx_name}: "
                         f"{need} bytes{extra}, got {size}")
    return bytes(ctx_in)


def context_error(message: str, pc: int | None = None) -> VMError:
    return VMError(message, pc=pc)
