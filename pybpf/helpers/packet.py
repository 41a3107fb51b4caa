"""Packet helpers: redirects, XDP bound moves, socket-buffer access and checksum arithmetic.

Behaviour follows net/core/filter.c as BPF_PROG_TEST_RUN exercises it (checked against the
kernel in tests/helpers/test_packet.py): argument checks in the kernel's order, ``-EINVAL`` /
``-EFAULT`` returned to the program, one's-complement arithmetic as x86-64's ``csum_partial``
folds it. The helpers reach the run's packet through the engine's ``env.context``
(:mod:`pybpf.progtypes`); a program run without a program type has none, which is misuse the
kernel's verifier would have refused, reported as :class:`pybpf.errors.HelperError`.
"""

from __future__ import annotations

from ..errors import HelperError
from . import helper

M64 = (1 << 64) - 1
EINVAL, EFAULT = 22, 14
INT_MAX = (1 << 31) - 1

XDP_ABORTED, XDP_REDIRECT = 0, 4
TC_ACT_SHOT, TC_ACT_REDIRECT = 2, 7
BPF_F_INGRESS = 1
BPF_F_RECOMPUTE_CSUM, BPF_F_INVALIDATE_HASH = 1, 2
BPF_F_HDR_FIELD_MASK = 0xF
BPF_F_PSEUDO_HDR, BPF_F_MARK_MANGLED_0, BPF_F_MARK_ENFORCE, BPF_F_IPV6 = 0x10, 0x20, 0x40, 0x80
BPF_F_BROADCAST, BPF_F_EXCLUDE_INGRESS = 1 << 3, 1 << 4
XDP_ACTION_MASK = 0x3   # XDP_ABORTED | XDP_DROP | XDP_PASS | XDP_TX
CSUM_MANGLED_0 = 0xFFFF


def neg(errno: int) -> int:
    return -errno & M64


def s32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >> 31 else value


def _context(env, name: str, kind: str | None = None):
    ctx = getattr(env, "context", None)
    if ctx is None or ctx.packet is None:
        raise HelperError(f"bpf_{name} needs a packet: run the program with a program type "
                          "whose context holds one (--type xdp, sched_cls, ...)")
    if kind is not None and not hasattr(ctx, kind):
        raise HelperError(f"bpf_{name} may not be called by {ctx.prog_type.name} programs")
    return ctx


# --- one's-complement arithmetic (include/net/checksum.h, arch/x86/lib/csum-partial_64.c) -----

def csum_add32(total: int) -> int:
    """Fold a sum of 32-bit words into 32 bits with end-around carry (``add32_with_carry``)."""
    while total >> 32:
        total = (total & 0xFFFFFFFF) + (total >> 32)
    return total


def csum_partial(data: bytes, seed: int) -> int:
    """x86-64's ``csum_partial``: little-endian 64-bit words and the trailing ``len % 8`` bytes
    as one little-endian number, summed from ``seed`` with end-around carry, folded to 32 bits
    (any length; the kernel's csum_diff takes sizes that are not multiples of 4)."""
    total = seed & 0xFFFFFFFF
    whole = len(data) - len(data) % 8
    for i in range(0, whole, 8):
        total += int.from_bytes(data[i: i + 8], "little")
    total += int.from_bytes(data[whole:], "little")
    return csum_add32(total)


def csum_fold(value: int) -> int:
    """``csum_fold``: 32 -> 16 bits, complemented."""
    value = (value & 0xFFFF) + (value >> 16)
    value = (value & 0xFFFF) + (value >> 16)
    return ~value & 0xFFFF


def _replace_by_diff(check: int, diff: int) -> int:
    return csum_fold(csum_add32((diff & 0xFFFFFFFF) + (~check & 0xFFFF)))


def _replace4(check: int, old: int, new: int) -> int:
    return csum_fold(csum_add32((~check & 0xFFFF) + (~old & 0xFFFFFFFF) + (new & 0xFFFFFFFF)))


def _replace2(check: int, old: int, new: int) -> int:
    return _replace4(check, old & 0xFFFF, new & 0xFFFF)


_REPLACE = {2: _replace2, 4: _replace4}


# --- socket buffers ----------------------------------------------------------------------------

@helper("skb_load_bytes", "integer", "ptr_to_ctx", "anything", "ptr_to_uninit_mem",
        "const_size")
def skb_load_bytes(env, ctx, offset, to, length, *_):
    """Copy ``length`` packet bytes from ``offset`` (relative to ``skb->data``); on a range
    outside the packet the destination is zeroed and -EFAULT returned."""
    c = _context(env, "skb_load_bytes")
    length &= 0xFFFFFFFF
    offset &= 0xFFFFFFFF
    packet = c.packet
    if offset > INT_MAX or offset + length > packet.size:
        env.write(to, bytes(length))
        return neg(EFAULT)
    env.write(to, bytes(packet.view[offset: offset + length]))
    return 0


BPF_HDR_START_MAC, BPF_HDR_START_NET = 0, 1


@helper("skb_load_bytes_relative", "integer", "ptr_to_ctx", "anything", "ptr_to_uninit_mem",
        "const_size", "anything")
def skb_load_bytes_relative(env, ctx, offset, to, length, start_header):
    """Like skb_load_bytes, from the Ethernet (MAC) or the network header; the test run's
    frame has its network header 14 bytes in, whatever part of it the program sees."""
    c = _context(env, "skb_load_bytes_relative", "l2")
    offset &= 0xFFFFFFFF
    length &= 0xFFFFFFFF
    starts = {BPF_HDR_START_MAC: 0, BPF_HDR_START_NET: 14}
    start = starts.get(start_header & M64)
    frame_end = c.head + c.packet.size
    if offset > 0xFFFF or start is None or start + offset + length > frame_end:
        env.write(to, bytes(length))
        return neg(EFAULT)
    frame = bytes(c.frame_buffer[: frame_end])
    env.write(to, frame[start + offset: start + offset + length])
    return 0


@helper("skb_store_bytes", "integer", "ptr_to_ctx", "anything", "ptr_to_mem", "const_size",
        "anything")
def skb_store_bytes(env, ctx, offset, frm, length, flags):
    c = _context(env, "skb_store_bytes")
    if flags & ~(BPF_F_RECOMPUTE_CSUM | BPF_F_INVALIDATE_HASH):
        return neg(EINVAL)
    offset &= 0xFFFFFFFF
    length &= 0xFFFFFFFF
    if offset > INT_MAX or offset + length > c.packet.size:
        return neg(EFAULT)
    c.packet.view[offset: offset + length] = env.read(frm, length)
    if flags & BPF_F_INVALIDATE_HASH:
        c.set_u32("hash", 0)
    return 0


def _checksum_field(c, offset: int) -> int | None:
    if offset > 0xFFFF or offset + 2 > c.packet.size:
        return None
    return int.from_bytes(c.packet.view[offset: offset + 2], "little")


def _store_checksum(c, offset: int, value: int) -> None:
    c.packet.view[offset: offset + 2] = (value & 0xFFFF).to_bytes(2, "little")


@helper("l3_csum_replace", "integer", "ptr_to_ctx", "anything", "anything", "anything",
        "anything")
def l3_csum_replace(env, ctx, offset, frm, to, flags):
    """Update the IP header checksum at ``offset`` for a field changed from ``frm`` to ``to``
    (flags: its size, 2 or 4; 0 means ``to`` is a csum_diff result)."""
    c = _context(env, "l3_csum_replace", "l2")
    if flags & ~BPF_F_HDR_FIELD_MASK:
        return neg(EINVAL)
    offset &= 0xFFFFFFFF
    if offset & 1:
        return neg(EFAULT)
    check = _checksum_field(c, offset)
    if check is None:
        return neg(EFAULT)
    size = flags & BPF_F_HDR_FIELD_MASK
    if size == 0:
        if frm:
            return neg(EINVAL)
        _store_checksum(c, offset, _replace_by_diff(check, to))
    elif size in _REPLACE:
        _store_checksum(c, offset, _REPLACE[size](check, frm, to))
    else:
        return neg(EINVAL)
    return 0


@helper("l4_csum_replace", "integer", "ptr_to_ctx", "anything", "anything", "anything",
        "anything")
def l4_csum_replace(env, ctx, offset, frm, to, flags):
    """Update a TCP/UDP checksum; BPF_F_MARK_MANGLED_0 keeps a zero (absent) UDP checksum
    zero and writes 0xffff for a result of zero. In BPF_PROG_TEST_RUN the packet's checksum is
    not offloaded, so pseudo-header fields update it like any other."""
    c = _context(env, "l4_csum_replace", "l2")
    if flags & ~(BPF_F_MARK_MANGLED_0 | BPF_F_MARK_ENFORCE | BPF_F_PSEUDO_HDR
                 | BPF_F_HDR_FIELD_MASK | BPF_F_IPV6):
        return neg(EINVAL)
    offset &= 0xFFFFFFFF
    if offset & 1:
        return neg(EFAULT)
    check = _checksum_field(c, offset)
    if check is None:
        return neg(EFAULT)
    mangled0 = flags & BPF_F_MARK_MANGLED_0
    if mangled0 and not flags & BPF_F_MARK_ENFORCE and not check:
        return 0
    size = flags & BPF_F_HDR_FIELD_MASK
    if size == 0:
        if frm:
            return neg(EINVAL)
        new = _replace_by_diff(check, to)
    elif size in _REPLACE:
        new = _REPLACE[size](check, frm, to)
    else:
        return neg(EINVAL)
    if mangled0 and not new:
        new = CSUM_MANGLED_0
    _store_checksum(c, offset, new)
    return 0


@helper("csum_diff", "integer", "ptr_to_mem_or_null", "const_size_or_zero",
        "ptr_to_mem_or_null", "const_size_or_zero", "anything")
def csum_diff(env, frm, from_size, to, to_size, seed):
    """The one's-complement difference ``to - from`` added to ``seed``, computed as this kernel
    does (no size checks; the verifier bounds the memory):
    ``csum_sub(csum_partial(to, seed), csum_partial(from, 0))``, with the one-sided cases
    ``csum_partial(to, seed)`` and ``~csum_partial(from, ~seed)``, folded to 16 bits; the
    choice matters for which of 0 and 0xffff comes back."""
    from_size &= 0xFFFFFFFF
    to_size &= 0xFFFFFFFF
    seed &= 0xFFFFFFFF
    old = env.read(frm, from_size) if from_size else b""
    new = env.read(to, to_size) if to_size else b""
    if from_size and to_size:
        total = csum_sub(csum_partial(new, seed), csum_partial(old, 0))
    elif to_size:
        total = csum_partial(new, seed)
    else:
        total = ~csum_partial(old, ~seed & 0xFFFFFFFF) & 0xFFFFFFFF
    return csum_from32to16(total)


def csum_from32to16(value: int) -> int:
    """Fold 32 bits to 16 with end-around carry, not complemented: what this kernel's
    bpf_csum_diff hands back (read from the running kernel, tests/helpers/test_packet.py)."""
    value = (value & 0xFFFF) + (value >> 16)
    return (value & 0xFFFF) + (value >> 16)


def csum_sub(a: int, b: int) -> int:
    """``csum_sub``: a + ~b with end-around carry (32 bits)."""
    return csum_add32(a + (~b & 0xFFFFFFFF))


# --- XDP ---------------------------------------------------------------------------------------

@helper("xdp_adjust_head", "integer", "ptr_to_ctx", "anything")
def xdp_adjust_head(env, ctx, delta, *_):
    c = _context(env, "xdp_adjust_head", "adjust_head")
    return 0 if c.adjust_head(s32(delta)) else neg(EINVAL)


@helper("xdp_adjust_tail", "integer", "ptr_to_ctx", "anything")
def xdp_adjust_tail(env, ctx, delta, *_):
    c = _context(env, "xdp_adjust_tail", "adjust_tail")
    return 0 if c.adjust_tail(s32(delta)) else neg(EINVAL)


@helper("xdp_adjust_meta", "integer", "ptr_to_ctx", "anything")
def xdp_adjust_meta(env, ctx, delta, *_):
    c = _context(env, "xdp_adjust_meta", "adjust_meta")
    return c.adjust_meta(s32(delta)) & M64


# --- redirects ---------------------------------------------------------------------------------

def _is_xdp(env) -> bool:
    ctx = getattr(env, "context", None)
    return ctx is not None and hasattr(ctx, "adjust_head")


@helper("redirect", "integer", "anything", "anything")
def redirect(env, ifindex, flags, *_):
    """Record the target device; XDP_REDIRECT (xdp) or TC_ACT_REDIRECT (tc). Nothing is sent:
    like BPF_PROG_TEST_RUN, the verdict is what the caller sees."""
    ctx = getattr(env, "context", None)
    if _is_xdp(env):
        if flags:
            return XDP_ABORTED
        ctx.redirect = ("ifindex", ifindex & 0xFFFFFFFF, flags)
        return XDP_REDIRECT
    if flags & ~BPF_F_INGRESS:
        return TC_ACT_SHOT
    if ctx is not None:
        ctx.redirect = ("ifindex", ifindex & 0xFFFFFFFF, flags)
    return TC_ACT_REDIRECT


@helper("redirect_map", "integer", "const_map_ptr", "anything", "anything")
def redirect_map(env, map_ptr, key, flags, *_):
    """Redirect to the device (or CPU, socket) stored at ``key``; a missing entry returns the
    fallback action in the low bits of ``flags``."""
    from .maps import get_map

    m = get_map(env, map_ptr)
    if flags & ~(XDP_ACTION_MASK | BPF_F_BROADCAST | BPF_F_EXCLUDE_INGRESS):
        return XDP_ABORTED
    key &= 0xFFFFFFFF
    present = False
    if m.key_size == 4:
        present = bool(m.lookup_address(key.to_bytes(4, "little")))
    if not present and not flags & BPF_F_BROADCAST:
        return flags & XDP_ACTION_MASK
    ctx = getattr(env, "context", None)
    if ctx is not None:
        ctx.redirect = ("map", key, flags)
    return XDP_REDIRECT


# --- XDP buffer access -------------------------------------------------------------------------

@helper("xdp_get_buff_len", "integer", "ptr_to_ctx")
def xdp_get_buff_len(env, ctx, *_):
    """The packet length from ``data`` (pybpf frames have no fragments)."""
    c = _context(env, "xdp_get_buff_len", "adjust_head")
    return c.data_end - c.data


def _xdp_range(c, offset: int, length: int) -> int:
    """Start of ``[offset, offset + length)`` in the packet region, or a -errno: EFAULT beyond
    64 KiB, EINVAL past the end (``__bpf_xdp_load_bytes``)."""
    offset &= 0xFFFFFFFF
    length &= 0xFFFFFFFF
    if offset > 0xFFFF or length > 0xFFFF:
        return -EFAULT
    if offset + length > c.data_end - c.data:
        return -EINVAL
    return c.data - c.meta + offset


@helper("xdp_load_bytes", "integer", "ptr_to_ctx", "anything", "ptr_to_uninit_mem",
        "const_size")
def xdp_load_bytes(env, ctx, offset, buf, length, *_):
    c = _context(env, "xdp_load_bytes", "adjust_head")
    start = _xdp_range(c, offset, length)
    if start < 0:
        return start & M64
    env.write(buf, bytes(c.packet.view[start: start + (length & 0xFFFFFFFF)]))
    return 0


@helper("xdp_store_bytes", "integer", "ptr_to_ctx", "anything", "ptr_to_mem", "const_size")
def xdp_store_bytes(env, ctx, offset, buf, length, *_):
    c = _context(env, "xdp_store_bytes", "adjust_head")
    start = _xdp_range(c, offset, length)
    if start < 0:
        return start & M64
    length &= 0xFFFFFFFF
    c.packet.view[start: start + length] = env.read(buf, length)
    return 0
