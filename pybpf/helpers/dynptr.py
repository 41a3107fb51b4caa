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

Packet dynptrs come from the kfuncs ``bpf_dynptr_from_skb`` / ``bpf_dynptr_from_xdp``; as in
the kernel their data word is the *context* (the skb, the xdp_buff), so every access finds
the run's packet where it is now (an XDP head moved since still counts). Reads and writes go
through the packet helpers (``bpf_skb_load_bytes``/``store_bytes`` with their flags,
``bpf_xdp_load_bytes``/``store_bytes``); ``bpf_dynptr_slice[_rdwr]`` point into the packet,
which is always linear here (as BPF_PROG_TEST_RUN builds it), so the caller's buffer is never
needed; ``bpf_dynptr_data`` answers NULL for them, as the kernel's does. An skb dynptr is
read-only where the program type may not write packet data (the kernel's
``bpf_dynptr_from_skb_rdonly``).
"""

from __future__ import annotations

import errno
import struct

from . import helper, packet
from .kfuncs import kfunc

M64 = (1 << 64) - 1
LAYOUT = struct.Struct("<QII")
SIZE_MASK = (1 << 24) - 1
TYPE_SHIFT = 28
RDONLY = 1 << 31
LOCAL, RINGBUF, SKB, XDP = 1, 2, 3, 4
TYPE_MASK = 0x7
#: program types whose skb dynptrs are writable (direct packet writes allowed)
SKB_WRITABLE = {"sched_cls", "sched_act", "lwt_xmit", "sk_skb"}


def _err(code: int) -> int:
    return -code & M64


def _init(env, ptr: int, data: int, kind: int, size: int, rdonly: bool = False) -> None:
    env.write(ptr, LAYOUT.pack(data, size | kind << TYPE_SHIFT | (RDONLY if rdonly else 0), 0))


def _null(env, ptr: int) -> None:
    env.write(ptr, bytes(LAYOUT.size))


def _load(env, ptr: int) -> tuple[int, int, int, bool]:
    """(data, size, offset, read-only) of the dynptr at ``ptr``."""
    data, word, offset = LAYOUT.unpack(env.read(ptr, LAYOUT.size))
    return data, word & SIZE_MASK, offset, bool(word & RDONLY)


def _kind(env, ptr: int) -> int:
    _, word, _ = LAYOUT.unpack(env.read(ptr, LAYOUT.size))
    return word >> TYPE_SHIFT & TYPE_MASK


def _in_bounds(size: int, offset: int, length: int) -> bool:
    return offset <= size and length <= size - offset


@helper("dynptr_from_mem", "integer", "ptr_to_uninit_mem", "const_size_or_zero", "anything",
        "ptr_to_dynptr|local|uninit")
def dynptr_from_mem(env, data, size, flags, ptr, *_):
    return _create(env, ptr, flags, data, LOCAL, size)


def _create(env, ptr: int, flags: int, data: int, kind: int, size: int,
            rdonly: bool = False) -> int:
    """Make the dynptr at ``ptr``, or a null one and the kernel's error: flags (none are
    defined) -EINVAL, then a size over 16 MiB - 1 -E2BIG."""
    if flags:
        _null(env, ptr)
        return _err(errno.EINVAL)
    if size > SIZE_MASK:
        _null(env, ptr)
        return _err(errno.E2BIG)
    _init(env, ptr, data, kind, size, rdonly)
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
    kind = _kind(env, src)
    if kind == SKB:
        return packet.skb_load_bytes(env, data, base + offset, dst, length)
    if kind == XDP:
        return packet.xdp_load_bytes(env, data, base + offset, dst, length)
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
    kind = _kind(env, dst)
    if kind == SKB:  # the skb's own flags (checksum recomputation, hash invalidation)
        return packet.skb_store_bytes(env, data, base + offset, src, length, flags)
    if flags:
        return _err(errno.EINVAL)
    if kind == XDP:
        return packet.xdp_store_bytes(env, data, base + offset, src, length)
    env.write(data + base + offset, env.read(src, length))
    return 0


@helper("dynptr_data", "ptr_to_dynptr_mem_or_null", "ptr_to_dynptr|rdonly", "anything",
        "const_alloc_size_or_zero")
def dynptr_data(env, ptr, offset, length, *_):
    data, size, base, rdonly = _load(env, ptr)
    offset &= 0xFFFFFFFF
    if not data or not _in_bounds(size, offset, length) or rdonly:
        return 0
    if _kind(env, ptr) in (SKB, XDP):  # packets are sliced (bpf_dynptr_slice), not data'd
        return 0
    return (data + base + offset) & M64


# --- packet dynptrs (kfuncs) ---------------------------------------------------------------

@kfunc("bpf_dynptr_from_skb")
def dynptr_from_skb(env, skb, flags, ptr, *_):
    c = packet._context(env, "dynptr_from_skb", "l2")
    return _create(env, ptr, flags, skb, SKB, c.packet.size,
                   rdonly=c.prog_type.name not in SKB_WRITABLE)


@kfunc("bpf_dynptr_from_xdp")
def dynptr_from_xdp(env, xdp, flags, ptr, *_):
    c = packet._context(env, "dynptr_from_xdp", "adjust_head")
    return _create(env, ptr, flags, xdp, XDP, c.data_end - c.data)


def _slice(env, ptr: int, offset: int, length: int, rdwr: bool) -> int:
    """The address of ``length`` bytes at ``offset`` of the dynptr, or NULL (``buffer`` is
    never needed: local, ring buffer and packet memory are all linear here)."""
    data, size, base, rdonly = _load(env, ptr)
    offset &= 0xFFFFFFFF
    length &= 0xFFFFFFFF
    if not data or (rdwr and rdonly) or not _in_bounds(size, offset, length):
        return 0
    kind = _kind(env, ptr)
    if kind == SKB:
        c = packet._context(env, "dynptr_slice", "l2")
        at = base + offset
        return c.packet.address + at if at + length <= c.packet.size else 0
    if kind == XDP:
        c = packet._context(env, "dynptr_slice", "adjust_head")
        start = packet._xdp_range(c, base + offset, length)
        return c.packet.address + start if start >= 0 else 0
    return (data + base + offset) & M64


@kfunc("bpf_dynptr_slice")
def dynptr_slice(env, ptr, offset, buffer, length, *_):
    return _slice(env, ptr, offset, length, False)


@kfunc("bpf_dynptr_slice_rdwr")
def dynptr_slice_rdwr(env, ptr, offset, buffer, length, *_):
    return _slice(env, ptr, offset, length, True)
