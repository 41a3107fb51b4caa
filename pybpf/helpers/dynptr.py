"""Dynamic pointers (``struct bpf_dynptr``): the helpers that make, read, write and release
them (``kernel/bpf/helpers.c``, ``kernel/bpf/ringbuf.c``; followed for behaviour).

A dynptr is 16 bytes of the program's stack laid out as the kernel's ``bpf_dynptr_kern``:
the data address (u64), the size in the low 24 bits of a u32 whose bits 28-30 hold the type
and bit 31 the read-only flag, and an offset (u32). A null dynptr has no data. Programs never
read those bytes (the verifier forbids it); only these helpers do, so any consistent layout
would do -- the kernel's is kept so a dump of the stack reads the same.

Errors are the kernel's: a dynptr made with non-zero flags, or over more than 16 MiB - 1, is
set to null and the helper answers -EINVAL / -E2BIG; a failed ring buffer reservation gives a
null dynptr and -EAGAIN (it must still be discarded or submitted: the verifier insists, and a
null one is ignored); reads and writes outside ``[0, size)`` answer -E2BIG; ``bpf_dynptr_data``
answers NULL instead of an error.
"""

from __future__ import annotations

import errno
import struct

from . import helper

M64 = (1 << 64) - 1
LAYOUT = struct.Struct("<QII")
SIZE_MASK = (1 << 24) - 1
TYPE_SHIFT = 28
RDONLY = 1 << 31
LOCAL, RINGBUF = 1, 2


def _err(code: int) -> int:
    return -code & M64


def _init(env, ptr: int, data: int, kind: int, size: int) -> None:
    env.write(ptr, LAYOUT.pack(data, size | kind << TYPE_SHIFT, 0))


def _null(env, ptr: int) -> None:
    env.write(ptr, bytes(LAYOUT.size))


def _load(env, ptr: int) -> tuple[int, int, int, bool]:
    """(data, size, offset, read-only) of the dynptr at ``ptr``."""
    data, word, offset = LAYOUT.unpack(env.read(ptr, LAYOUT.size))
    return data, word & SIZE_MASK, offset, bool(word & RDONLY)


def _in_bounds(size: int, offset: int, length: int) -> bool:
    return offset <= size and length <= size - offset


@helper("dynptr_from_mem", "integer", "ptr_to_uninit_mem", "const_size_or_zero", "anything",
        "ptr_to_dynptr|local|uninit")
def dynptr_from_mem(env, data, size, flags, ptr, *_):
    if flags:
        _null(env, ptr)
        return _err(errno.EINVAL)
    if size > SIZE_MASK:
        _null(env, ptr)
        return _err(errno.E2BIG)
    _init(env, ptr, data, LOCAL, size)
    return 0


@helper("ringbuf_reserve_dynptr", "integer", "const_map_ptr", "anything", "anything",
        "ptr_to_dynptr|ringbuf|uninit")
def ringbuf_reserve_dynptr(env, map_ptr, size, flags, ptr, *_):
    from ..maps.ringbuf import RingBufMap
    from .maps import _typed

    rb = _typed(env, map_ptr, RingBufMap, "bpf_ringbuf_reserve_dynptr")
    if flags:
        _null(env, ptr)
        return _err(errno.EINVAL)
    if size > SIZE_MASK:
        _null(env, ptr)
        return _err(errno.E2BIG)
    sample = rb.reserve(size, 0)
    if not sample:
        _null(env, ptr)
        return _err(errno.EAGAIN)
    _init(env, ptr, sample, RINGBUF, size)
    return 0


def _release(env, ptr: int, flags: int, discard: bool, name: str) -> int:
    from .maps import _commit

    data, _, _, _ = _load(env, ptr)
    if data:
        _commit(data, flags, discard, name)
    _null(env, ptr)
    return 0


@helper("ringbuf_submit_dynptr", "void", "ptr_to_dynptr|ringbuf|release", "anything")
def ringbuf_submit_dynptr(env, ptr, flags, *_):
    return _release(env, ptr, flags, False, "bpf_ringbuf_submit_dynptr")


@helper("ringbuf_discard_dynptr", "void", "ptr_to_dynptr|ringbuf|release", "anything")
def ringbuf_discard_dynptr(env, ptr, flags, *_):
    return _release(env, ptr, flags, True, "bpf_ringbuf_discard_dynptr")


@helper("dynptr_read", "integer", "ptr_to_uninit_mem", "const_size_or_zero",
        "ptr_to_dynptr|rdonly", "anything", "anything")
def dynptr_read(env, dst, length, src, offset, flags):
    data, size, base, _ = _load(env, src)
    offset &= 0xFFFFFFFF
    if not data or flags:
        return _err(errno.EINVAL)
    if not _in_bounds(size, offset, length):
        return _err(errno.E2BIG)
    env.write(dst, env.read(data + base + offset, length))
    return 0


@helper("dynptr_write", "integer", "ptr_to_dynptr|rdonly", "anything", "ptr_to_mem|rdonly",
        "const_size_or_zero", "anything")
def dynptr_write(env, dst, offset, src, length, flags):
    data, size, base, rdonly = _load(env, dst)
    offset &= 0xFFFFFFFF
    if not data or rdonly:
        return _err(errno.EINVAL)
    if not _in_bounds(size, offset, length):
        return _err(errno.E2BIG)
    if flags:
        return _err(errno.EINVAL)
    env.write(data + base + offset, env.read(src, length))
    return 0


@helper("dynptr_data", "ptr_to_dynptr_mem_or_null", "ptr_to_dynptr|rdonly", "anything",
        "const_alloc_size_or_zero")
def dynptr_data(env, ptr, offset, length, *_):
    data, size, base, rdonly = _load(env, ptr)
    offset &= 0xFFFFFFFF
    if not data or not _in_bounds(size, offset, length) or rdonly:
        return 0
    return (data + base + offset) & M64
