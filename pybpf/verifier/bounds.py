"""Scalar bounds: signed/unsigned 64- and 32-bit intervals kept in step with the tnum.

The functions follow the Linux verifier (``kernel/bpf/verifier.c``): ``reg_bounds_sync`` and
its deductions between the four intervals and the tnum, the ALU transfer functions of
``adjust_scalar_min_max_vals`` (add/sub with the overflow rules, mul by corner products,
bitwise ops from the tnum, shifts only by a constant in range, everything else unknown) and the
refinement of both branches of every conditional jump (``regs_refine_cond_op``,
``is_branch_taken``). They mutate a :class:`pybpf.verifier.state.RegState` in place; callers
copy first. Numbers are Python ints normalised to the C type of each field.
"""

from __future__ import annotations

from . import tnum as tn
from .tnum import Tnum

U64 = (1 << 64) - 1
U32 = (1 << 32) - 1
S64_MIN, S64_MAX = -(1 << 63), (1 << 63) - 1
S32_MIN, S32_MAX = -(1 << 31), (1 << 31) - 1


def s64(v: int) -> int:
    v &= U64
    return v - (1 << 64) if v >> 63 else v


def s32(v: int) -> int:
    v &= U32
    return v - (1 << 32) if v >> 31 else v


# --- setting whole ranges ---------------------------------------------------------------------

def mark_unbounded64(r) -> None:
    r.smin, r.smax, r.umin, r.umax = S64_MIN, S64_MAX, 0, U64


def mark_unbounded32(r) -> None:
    r.s32min, r.s32max, r.u32min, r.u32max = S32_MIN, S32_MAX, 0, U32


def mark_unknown(r) -> None:
    r.var_off = tn.UNKNOWN
    mark_unbounded64(r)
    mark_unbounded32(r)


def mark_known(r, imm: int) -> None:
    imm &= U64
    r.var_off = Tnum(imm, 0)
    r.smin = r.smax = s64(imm)
    r.umin = r.umax = imm
    r.s32min = r.s32max = s32(imm)
    r.u32min = r.u32max = imm & U32


def mark_known32(r, imm: int) -> None:
    r.var_off = tn.const_subreg(r.var_off, imm)
    r.s32min = r.s32max = s32(imm)
    r.u32min = r.u32max = imm & U32


def is_const(r) -> bool:
    return r.var_off.mask == 0


def is_const32(r) -> bool:
    return r.var_off.mask & U32 == 0


# --- synchronisation (reg_bounds_sync) ---------------------------------------------------------

def update_bounds32(r) -> None:
    v, m = r.var_off.value & U32, r.var_off.mask & U32
    r.s32min = max(r.s32min, s32(v | (m & 0x8000_0000)))
    r.s32max = min(r.s32max, s32(v | (m & 0x7FFF_FFFF)))
    r.u32min = max(r.u32min, v)
    r.u32max = min(r.u32max, v | m)


def update_bounds64(r) -> None:
    v, m = r.var_off
    r.smin = max(r.smin, s64(v | (m & (1 << 63))))
    r.smax = min(r.smax, s64(v | (m & S64_MAX)))
    r.umin = max(r.umin, v)
    r.umax = min(r.umax, v | m)


def update_bounds(r) -> None:
    update_bounds32(r)
    update_bounds64(r)


def _deduce32(r) -> None:
    if r.umin >> 32 == r.umax >> 32:
        r.u32min = max(r.u32min, r.umin & U32)
        r.u32max = min(r.u32max, r.umax & U32)
        if s32(r.umin) <= s32(r.umax):
            r.s32min = max(r.s32min, s32(r.umin))
            r.s32max = min(r.s32max, s32(r.umax))
    if r.smin >> 32 == r.smax >> 32:
        r.u32min = max(r.u32min, r.smin & U32)
        r.u32max = min(r.u32max, r.smax & U32)
        if s32(r.smin) <= s32(r.smax):
            r.s32min = max(r.s32min, s32(r.smin))
            r.s32max = min(r.s32max, s32(r.smax))
    if ((r.umin >> 32) + 1) & U32 == (r.umax >> 32) & U32 and s32(r.umin) < 0 <= s32(r.umax):
        r.s32min = max(r.s32min, s32(r.umin))
        r.s32max = min(r.s32max, s32(r.umax))
    if (((r.smin & U64) >> 32) + 1) & U32 == ((r.smax & U64) >> 32) & U32 \
            and s32(r.smin) < 0 <= s32(r.smax):
        r.s32min = max(r.s32min, s32(r.smin))
        r.s32max = min(r.s32max, s32(r.smax))
    if s32(r.u32min) <= s32(r.u32max):
        r.s32min = max(r.s32min, s32(r.u32min))
        r.s32max = min(r.s32max, s32(r.u32max))
    if r.s32min & U32 <= r.s32max & U32:
        r.u32min = max(r.u32min, r.s32min & U32)
        r.u32max = min(r.u32max, r.s32max & U32)
    elif r.u32max < r.s32min & U32:
        r.s32min = s32(r.u32min)
        r.s32max = min(r.s32max, r.u32max)
    elif r.s32max & U32 < r.u32min:
        r.s32min = s32(max(r.u32min, r.s32min & U32))
        r.s32max = s32(r.u32max)


def _deduce64(r) -> None:
    if s64(r.umin) <= s64(r.umax):
        r.smin = max(r.smin, s64(r.umin))
        r.smax = min(r.smax, s64(r.umax))
    if r.smin & U64 <= r.smax & U64:
        r.umin = max(r.umin, r.smin & U64)
        r.umax = min(r.umax, r.smax & U64)
    else:
        if r.umax < r.smin & U64:
            r.smin = s64(r.umin)
            r.smax = min(r.smax, r.umax)
        elif r.smax & U64 < r.umin:
            r.smin = s64(max(r.umin, r.smin & U64))
            r.smax = s64(r.umax)


def _deduce_mixed(r) -> None:
    r.umin = max(r.umin, (r.umin & ~U32 & U64) | r.u32min)
    r.umax = min(r.umax, (r.umax & ~U32 & U64) | r.u32max)
    r.smin = max(r.smin, s64((r.smin & ~U32 & U64) | r.u32min))
    r.smax = min(r.smax, s64((r.smax & ~U32 & U64) | r.u32max))
    if r.smin >= S32_MIN and r.smax <= S32_MAX and (r.s32min >= 0 or r.s32max < 0):
        r.smin, r.smax = r.s32min, r.s32max
        r.umin, r.umax = r.s32min & U64, r.s32max & U64
        r.var_off = tn.intersect(r.var_off, tn.trange(r.umin, r.umax))


def deduce_bounds(r) -> None:
    _deduce32(r)
    _deduce64(r)
    _deduce_mixed(r)


def bound_offset(r) -> None:
    var64 = tn.intersect(r.var_off, tn.trange(r.umin, r.umax))
    var32 = tn.intersect(tn.subreg(var64), tn.trange(r.u32min, r.u32max))
    r.var_off = tn.or_(tn.clear_subreg(var64), var32)


def _tnum_bounds(v: int, m: int, smin: int, smax: int, umin: int, umax: int, s32min: int,
                 s32max: int, u32min: int, u32max: int) -> tuple[int, ...]:
    """The kernel's ``__update_reg_bounds``: tighten the eight bounds with what the tnum
    (value ``v``, mask ``m``) implies. Plain ints in and out: this is the verifier's hottest
    path, called twice per bounds sync."""
    v32, m32 = v & U32, m & U32
    t = v32 | (m32 & 0x80000000)
    t = t - (1 << 32) if t >> 31 else t
    if t > s32min:
        s32min = t
    t = v32 | (m32 & 0x7FFFFFFF)
    t = t - (1 << 32) if t >> 31 else t
    if t < s32max:
        s32max = t
    if v32 > u32min:
        u32min = v32
    if v32 | m32 < u32max:
        u32max = v32 | m32
    t = v | (m & 0x8000000000000000)
    t = t - (1 << 64) if t >> 63 else t
    if t > smin:
        smin = t
    t = v | (m & S64_MAX)
    if t < smax:
        smax = t
    if v > umin:
        umin = v
    if v | m < umax:
        umax = v | m
    return smin, smax, umin, umax, s32min, s32max, u32min, u32max


def sync(r) -> None:
    """The kernel's ``reg_bounds_sync``: update from the tnum, deduce between the four
    intervals twice, tighten the tnum from the bounds, update again. Written with locals
    (this is the verifier's hottest function); the step functions above are the reference."""
    v, m = r.var_off
    if m == 0:
        # a constant: every interval collapses to it
        r.umin = r.umax = v
        r.smin = r.smax = v - (1 << 64) if v >> 63 else v
        w = v & U32
        r.u32min = r.u32max = w
        r.s32min = r.s32max = w - (1 << 32) if w >> 31 else w
        return
    smin, smax, umin, umax = r.smin, r.smax, r.umin, r.umax
    s32min, s32max, u32min, u32max = r.s32min, r.s32max, r.u32min, r.u32max
    # __update_reg_bounds
    smin, smax, umin, umax, s32min, s32max, u32min, u32max = _tnum_bounds(
        v, m, smin, smax, umin, umax, s32min, s32max, u32min, u32max)
    for _ in (0, 1):
        # __reg32_deduce_bounds
        if umin >> 32 == umax >> 32:
            a, b = umin & U32, umax & U32
            if a > u32min:
                u32min = a
            if b < u32max:
                u32max = b
            sa = a - (1 << 32) if a >> 31 else a
            sb = b - (1 << 32) if b >> 31 else b
            if sa <= sb:
                if sa > s32min:
                    s32min = sa
                if sb < s32max:
                    s32max = sb
        if smin >> 32 == smax >> 32:
            a, b = smin & U32, smax & U32
            if a > u32min:
                u32min = a
            if b < u32max:
                u32max = b
            sa = a - (1 << 32) if a >> 31 else a
            sb = b - (1 << 32) if b >> 31 else b
            if sa <= sb:
                if sa > s32min:
                    s32min = sa
                if sb < s32max:
                    s32max = sb
        if ((umin >> 32) + 1) & U32 == (umax >> 32) & U32:
            a, b = umin & U32, umax & U32
            sa = a - (1 << 32) if a >> 31 else a
            sb = b - (1 << 32) if b >> 31 else b
            if sa < 0 <= sb:
                if sa > s32min:
                    s32min = sa
                if sb < s32max:
                    s32max = sb
        if ((((smin & U64) >> 32) + 1) & U32) == ((smax & U64) >> 32) & U32:
            a, b = smin & U32, smax & U32
            sa = a - (1 << 32) if a >> 31 else a
            sb = b - (1 << 32) if b >> 31 else b
            if sa < 0 <= sb:
                if sa > s32min:
                    s32min = sa
                if sb < s32max:
                    s32max = sb
        sa = u32min - (1 << 32) if u32min >> 31 else u32min
        sb = u32max - (1 << 32) if u32max >> 31 else u32max
        if sa <= sb:
            if sa > s32min:
                s32min = sa
            if sb < s32max:
                s32max = sb
        if s32min & U32 <= s32max & U32:
            if s32min & U32 > u32min:
                u32min = s32min & U32
            if s32max & U32 < u32max:
                u32max = s32max & U32
        elif u32max < s32min & U32:
            # the signed range crosses zero; the unsigned range lies below its negative part
            s32min = u32min - (1 << 32) if u32min >> 31 else u32min
            if u32max < s32max:
                s32max = u32max
        elif s32max & U32 < u32min:
            t = u32min if u32min > s32min & U32 else s32min & U32
            s32min = t - (1 << 32) if t >> 31 else t
            s32max = u32max - (1 << 32) if u32max >> 31 else u32max
        # __reg64_deduce_bounds
        sa = umin - (1 << 64) if umin >> 63 else umin
        sb = umax - (1 << 64) if umax >> 63 else umax
        if sa <= sb:
            if sa > smin:
                smin = sa
            if sb < smax:
                smax = sb
        if smin & U64 <= smax & U64:
            if smin & U64 > umin:
                umin = smin & U64
            if smax & U64 < umax:
                umax = smax & U64
        elif umax < smin & U64:
            # the unsigned range lies below the negative part: only [umin, smax] remains
            smin = sa
            if umax < smax:
                smax = umax
        elif smax & U64 < umin:
            # the unsigned range lies above the non-negative part: only the negative part
            # of the signed range remains
            t = umin if umin > smin & U64 else smin & U64
            smin = t - (1 << 64) if t >> 63 else t
            smax = sb
        # __reg_deduce_mixed_bounds
        t = (umin & 0xFFFFFFFF00000000) | u32min
        if t > umin:
            umin = t
        t = (umax & 0xFFFFFFFF00000000) | u32max
        if t < umax:
            umax = t
        t = (smin & 0xFFFFFFFF00000000) | u32min
        t = t - (1 << 64) if t >> 63 else t
        if t > smin:
            smin = t
        t = (smax & 0xFFFFFFFF00000000) | u32max
        t = t - (1 << 64) if t >> 63 else t
        if t < smax:
            smax = t
        if smin >= S32_MIN and smax <= S32_MAX and (s32min >= 0 or s32max < 0):
            # a sign-extended 32-bit value: the 64-bit value is its low half's s32 value
            smin, smax = s32min, s32max
            umin, umax = s32min & U64, s32max & U64
            v, m = tn.intersect(Tnum(v, m), tn.trange(umin, umax))
    # __reg_bound_offset
    var64 = tn.intersect(Tnum(v, m), tn.trange(umin, umax)) if umin <= umax else Tnum(v, m)
    var32 = tn.intersect(tn.subreg(var64), tn.trange(u32min, u32max)) \
        if u32min <= u32max else tn.subreg(var64)
    v = (var64.value & 0xFFFFFFFF00000000) | var32.value
    m = ((var64.mask & 0xFFFFFFFF00000000) | var32.mask) & ~v & U64
    r.var_off = Tnum(v, m)
    # __update_reg_bounds again
    smin, smax, umin, umax, s32min, s32max, u32min, u32max = _tnum_bounds(
        v, m, smin, smax, umin, umax, s32min, s32max, u32min, u32max)
    r.smin, r.smax, r.umin, r.umax = smin, smax, umin, umax
    r.s32min, r.s32max, r.u32min, r.u32max = s32min, s32max, u32min, u32max


def sync_reference(r) -> None:
    """``sync`` step by step, as the kernel writes it (used to test the fast version)."""
    update_bounds(r)
    deduce_bounds(r)
    deduce_bounds(r)
    bound_offset(r)
    update_bounds(r)


def is_valid(r) -> bool:
    """Bounds are consistent (an empty set means the path is impossible)."""
    if r.umin > r.umax or r.smin > r.smax or r.u32min > r.u32max or r.s32min > r.s32max:
        return False
    v, m = r.var_off
    if v & m:
        return False
    if not (v <= r.umax and (v | m) >= r.umin):
        return False
    return True


def assign_32_into_64(r) -> None:
    r.umin, r.umax = r.u32min, r.u32max
    if 0 <= r.s32min <= S32_MAX and 0 <= r.s32max <= S32_MAX:
        r.smin, r.smax = r.s32min, r.s32max
    else:
        r.smin, r.smax = 0, U32


def zext_32_to_64(r) -> None:
    r.var_off = tn.subreg(r.var_off)
    assign_32_into_64(r)


# --- ALU transfer functions (adjust_scalar_min_max_vals) --------------------------------------

def _add32(d, s) -> None:
    lo, hi = d.s32min + s.s32min, d.s32max + s.s32max
    if not (S32_MIN <= lo <= S32_MAX) or not (S32_MIN <= hi <= S32_MAX):
        d.s32min, d.s32max = S32_MIN, S32_MAX
    else:
        d.s32min, d.s32max = lo, hi
    lo, hi = d.u32min + s.u32min, d.u32max + s.u32max
    if lo <= U32 < hi:
        d.u32min, d.u32max = 0, U32
    else:
        d.u32min, d.u32max = lo & U32, hi & U32


def _add64(d, s) -> None:
    lo, hi = d.smin + s.smin, d.smax + s.smax
    if not (S64_MIN <= lo <= S64_MAX) or not (S64_MIN <= hi <= S64_MAX):
        d.smin, d.smax = S64_MIN, S64_MAX
    else:
        d.smin, d.smax = lo, hi
    lo, hi = d.umin + s.umin, d.umax + s.umax
    if lo <= U64 < hi:
        d.umin, d.umax = 0, U64
    else:
        d.umin, d.umax = lo & U64, hi & U64


def _sub32(d, s) -> None:
    lo, hi = d.s32min - s.s32max, d.s32max - s.s32min
    if not (S32_MIN <= lo <= S32_MAX) or not (S32_MIN <= hi <= S32_MAX):
        d.s32min, d.s32max = S32_MIN, S32_MAX
    else:
        d.s32min, d.s32max = lo, hi
    lo, hi = d.u32min - s.u32max, d.u32max - s.u32min
    if lo < 0 <= hi:
        d.u32min, d.u32max = 0, U32
    else:
        d.u32min, d.u32max = lo & U32, hi & U32


def _sub64(d, s) -> None:
    lo, hi = d.smin - s.smax, d.smax - s.smin
    if not (S64_MIN <= lo <= S64_MAX) or not (S64_MIN <= hi <= S64_MAX):
        d.smin, d.smax = S64_MIN, S64_MAX
    else:
        d.smin, d.smax = lo, hi
    lo, hi = d.umin - s.umax, d.umax - s.umin
    if lo < 0 <= hi:
        d.umin, d.umax = 0, U64
    else:
        d.umin, d.umax = lo & U64, hi & U64


def _mul32(d, s) -> None:
    hi, lo = d.u32max * s.u32max, d.u32min * s.u32min
    if hi > U32 or lo > U32:
        d.u32min, d.u32max = 0, U32
    else:
        d.u32min, d.u32max = lo, hi
    prods = [d.s32min * s.s32min, d.s32min * s.s32max, d.s32max * s.s32min, d.s32max * s.s32max]
    if any(not (S32_MIN <= p <= S32_MAX) for p in prods):
        d.s32min, d.s32max = S32_MIN, S32_MAX
    else:
        d.s32min, d.s32max = min(prods), max(prods)


def _mul64(d, s) -> None:
    hi, lo = d.umax * s.umax, d.umin * s.umin
    if hi > U64 or lo > U64:
        d.umin, d.umax = 0, U64
    else:
        d.umin, d.umax = lo, hi
    prods = [d.smin * s.smin, d.smin * s.smax, d.smax * s.smin, d.smax * s.smax]
    if any(not (S64_MIN <= p <= S64_MAX) for p in prods):
        d.smin, d.smax = S64_MIN, S64_MAX
    else:
        d.smin, d.smax = min(prods), max(prods)


def _sign_from_unsigned32(d) -> None:
    if s32(d.u32min) <= s32(d.u32max):
        d.s32min, d.s32max = s32(d.u32min), s32(d.u32max)
    else:
        d.s32min, d.s32max = S32_MIN, S32_MAX


def _sign_from_unsigned64(d) -> None:
    if s64(d.umin) <= s64(d.umax):
        d.smin, d.smax = s64(d.umin), s64(d.umax)
    else:
        d.smin, d.smax = S64_MIN, S64_MAX


def _bitwise32(d, s, op: str) -> None:
    var32 = tn.subreg(d.var_off)
    if is_const32(s) and var32.mask == 0:
        mark_known32(d, var32.value)
        return
    if op == "and":
        d.u32min, d.u32max = var32.value, min(d.u32max, s.u32max)
    elif op == "or":
        d.u32min, d.u32max = max(d.u32min, s.u32min), var32.value | var32.mask
    else:
        d.u32min, d.u32max = var32.value, var32.value | var32.mask
    _sign_from_unsigned32(d)


def _bitwise64(d, s, op: str) -> None:
    if is_const(s) and is_const(d):
        mark_known(d, d.var_off.value)
        return
    v, m = d.var_off
    if op == "and":
        d.umin, d.umax = v, min(d.umax, s.umax)
    elif op == "or":
        d.umin, d.umax = max(d.umin, s.umin), v | m
    else:
        d.umin, d.umax = v, v | m
    _sign_from_unsigned64(d)
    update_bounds(d)


def _lsh32_bounds(d, umin_val: int, umax_val: int) -> None:
    d.s32min, d.s32max = S32_MIN, S32_MAX
    if umax_val > 31 or d.u32max > 1 << (31 - umax_val):
        d.u32min, d.u32max = 0, U32
    else:
        d.u32min = (d.u32min << umin_val) & U32
        d.u32max = (d.u32max << umax_val) & U32


def _lsh64_bounds(d, umin_val: int, umax_val: int) -> None:
    if umin_val == 32 and umax_val == 32 and d.s32max >= 0:
        d.smax = d.s32max << 32
    else:
        d.smax = S64_MAX
    if umin_val == 32 and umax_val == 32 and d.s32min >= 0:
        d.smin = d.s32min << 32
    else:
        d.smin = S64_MIN
    if d.umax > 1 << (63 - umax_val):
        d.umin, d.umax = 0, U64
    else:
        d.umin = (d.umin << umin_val) & U64
        d.umax = (d.umax << umax_val) & U64


def _shift32(d, s, op: int) -> None:
    umin_val, umax_val = s.u32min, s.u32max
    sub = tn.subreg(d.var_off)
    if op == 0x60:  # LSH
        _lsh32_bounds(d, umin_val, umax_val)
        d.var_off = tn.subreg(tn.lshift(sub, umin_val))
    elif op == 0x70:  # RSH
        d.s32min, d.s32max = S32_MIN, S32_MAX
        d.var_off = tn.rshift(sub, umin_val)
        d.u32min >>= umax_val
        d.u32max >>= umin_val
    else:  # ARSH
        d.s32min >>= umin_val
        d.s32max >>= umin_val
        d.var_off = tn.arshift(sub, umin_val, 32)
        d.u32min, d.u32max = 0, U32
    mark_unbounded64(d)
    update_bounds32(d)


def _shift64(d, s, op: int) -> None:
    umin_val, umax_val = s.umin, s.umax
    if op == 0x60:
        _lsh64_bounds(d, umin_val, umax_val)
        _lsh32_bounds(d, umin_val, umax_val)
        d.var_off = tn.lshift(d.var_off, umin_val)
    elif op == 0x70:
        d.smin, d.smax = S64_MIN, S64_MAX
        d.var_off = tn.rshift(d.var_off, umin_val)
        d.umin >>= umax_val
        d.umax >>= umin_val
        mark_unbounded32(d)
    else:
        d.smin >>= umin_val
        d.smax >>= umin_val
        d.var_off = tn.arshift(d.var_off, umin_val, 64)
        d.umin, d.umax = 0, U64
        mark_unbounded32(d)
    update_bounds(d)


_TNUM_OPS = {0x00: tn.add, 0x10: tn.sub, 0x20: tn.mul, 0x40: tn.or_, 0x50: tn.and_,
             0xA0: tn.xor}
_BITWISE = {0x40: "or", 0x50: "and", 0xA0: "xor"}


def safe_to_compute(op: int, s, alu32: bool) -> bool:
    """Whether the kernel tracks the result range of ``op`` at all
    (``is_safe_to_compute_dst_reg_range``); otherwise the result is unknown."""
    if op in (0x00, 0x10, 0x20, 0x40, 0x50, 0xA0, 0x80):
        return True
    if op in (0x60, 0x70, 0xC0):
        if alu32:
            const = is_const32(s) and s.s32min == s.s32max and s.u32min == s.u32max
        else:
            const = is_const(s) and s.smin == s.smax and s.umin == s.umax
        return const and s.umax < (32 if alu32 else 64)
    return False


_CONST_OPS = {
    0x00: lambda a, b, w: a + b, 0x10: lambda a, b, w: a - b, 0x20: lambda a, b, w: a * b,
    0x40: lambda a, b, w: a | b, 0x50: lambda a, b, w: a & b, 0xA0: lambda a, b, w: a ^ b,
    0x60: lambda a, b, w: a << b, 0x70: lambda a, b, w: a >> b,
    0xC0: lambda a, b, w: (a - (1 << w) if a >> (w - 1) else a) >> b,
    0x80: lambda a, b, w: -a,
}


def alu(d, s, op: int, alu32: bool) -> None:
    """``d = d <op> s`` on scalars (``adjust_scalar_min_max_vals``); ``s`` is not modified."""
    if d.var_off.mask == 0 and s.var_off.mask == 0 and op in _CONST_OPS:
        # both operands known: the kernel's transfer functions yield the exact result
        w = 32 if alu32 else 64
        a = d.var_off.value & ((1 << w) - 1)
        b = s.var_off.value & ((1 << w) - 1)
        if op not in (0x60, 0x70, 0xC0) or b < w:
            mark_known(d, _CONST_OPS[op](a, b, w) & ((1 << w) - 1))
            return
    if not safe_to_compute(op, s, alu32):
        mark_unknown(d)
        return
    if op in (0x00, 0x10):
        if op == 0x00:
            _add32(d, s)
            _add64(d, s)
        else:
            _sub32(d, s)
            _sub64(d, s)
        d.var_off = _TNUM_OPS[op](d.var_off, s.var_off)
    elif op == 0x80:  # NEG: 0 - d
        from .state import RegState
        fake = d.copy()
        mark_known(d, 0)
        _sub32(d, fake)
        _sub64(d, fake)
        d.var_off = tn.neg(fake.var_off)
    elif op == 0x20:
        d.var_off = tn.mul(d.var_off, s.var_off)
        _mul32(d, s)
        _mul64(d, s)
    elif op in _BITWISE:
        d.var_off = _TNUM_OPS[op](d.var_off, s.var_off)
        _bitwise32(d, s, _BITWISE[op])
        _bitwise64(d, s, _BITWISE[op])
    else:
        if alu32:
            _shift32(d, s, op)
        else:
            _shift64(d, s, op)
    if alu32:
        zext_32_to_64(d)
    sync(d)


def set_range64(r, lo: int, hi: int) -> None:
    """A scalar known to lie in the unsigned range [lo, hi] (e.g. a narrow load)."""
    mark_unknown(r)
    r.var_off = tn.trange(lo, hi)
    r.umin, r.umax = lo, hi
    sync(r)


def sign_extend(r, size: int) -> None:
    """``coerce_reg_to_size_sx``: a register sign-extended from ``size`` bytes (movsx, ldsx)."""
    bits = size * 8
    if is_const(r):
        v = r.var_off.value & ((1 << bits) - 1)
        if v >> (bits - 1):
            v -= 1 << bits
        mark_known(r, v)
        return
    top_smax = (1 << (bits - 1)) - 1
    top_smin = -(1 << (bits - 1))
    # the kernel keeps the range when the low part of the value cannot change sign
    lo_known = None
    if (r.umax >> (bits - 1)) == (r.umin >> (bits - 1)) and r.umax - r.umin <= (1 << bits) - 1 \
            and (r.umax >> bits) == (r.umin >> bits):
        a = r.umin & ((1 << bits) - 1)
        b = r.umax & ((1 << bits) - 1)
        sa = a - (1 << bits) if a >> (bits - 1) else a
        sb = b - (1 << bits) if b >> (bits - 1) else b
        if sa <= sb:
            lo_known = (sa, sb)
    mark_unknown(r)
    if lo_known:
        r.smin, r.smax = lo_known
    else:
        r.smin, r.smax = top_smin, top_smax
    if bits < 32 or lo_known:
        r.s32min, r.s32max = r.smin, r.smax
    sync(r)


def sign_extend32(r, size: int) -> None:
    """``coerce_subreg_to_size_sx``: movsx into a 32-bit register, then zero-extended."""
    bits = size * 8
    sub = r.var_off.value & U32
    if is_const32(r):
        v = sub & ((1 << bits) - 1)
        if v >> (bits - 1):
            v -= 1 << bits
        mark_known(r, v & U32)
        return
    mark_unknown(r)
    r.s32min, r.s32max = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    r.var_off = tn.subreg(r.var_off)
    zext_32_to_64(r)
    sync(r)


def truncate(r, size: int) -> None:
    """``coerce_reg_to_size``: keep the low ``size`` bytes (loads, 32-bit moves)."""
    r.var_off = tn.cast(r.var_off, size)
    mask = (1 << (size * 8)) - 1
    if (r.umin & ~mask & U64) == (r.umax & ~mask & U64):
        r.umin &= mask
        r.umax &= mask
    else:
        r.umin, r.umax = 0, mask
    r.smin, r.smax = s64(r.umin), s64(r.umax) if r.umin <= r.umax else S64_MAX
    r.smin, r.smax = r.umin, r.umax
    mark_unbounded32(r)
    if size >= 4:
        r.u32min, r.u32max = (r.umin, r.umax) if r.umax <= U32 else (0, U32)
        r.s32min, r.s32max = S32_MIN, S32_MAX
    sync(r)
