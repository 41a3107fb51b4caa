"""The fast ``bounds.sync`` equals the step-by-step kernel procedure, and tnum operations are
sound (every concrete result is a member of the abstract one)."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from pybpf.verifier import bounds as bd, tnum as tn
from pybpf.verifier.state import RegState

U64 = (1 << 64) - 1


@st.composite
def scalars(draw):
    r = RegState("scalar")
    lo = draw(st.integers(0, U64))
    hi = draw(st.integers(lo, min(U64, lo + draw(st.sampled_from([0, 1, 255, 1 << 20, U64])))))
    r.var_off = tn.trange(lo, hi)
    r.umin, r.umax = lo, hi
    bd.sync(r)
    return r


@settings(max_examples=300, deadline=None)
@given(scalars(), st.integers(0, U64), st.integers(0, U64))
def test_fast_sync_equals_the_kernel_step_by_step_procedure(r, a, b):
    x, y = r.copy(), r.copy()
    for reg in (x, y):
        reg.umin = max(reg.umin, min(a, b))
        reg.umax = min(reg.umax, max(a, b))
    if x.umin > x.umax:
        return
    bd.sync(x)
    bd.sync_reference(y)
    assert x.key() == y.key()


_OPS = [0x00, 0x10, 0x20, 0x40, 0x50, 0xA0, 0x60, 0x70, 0xC0]


def _concrete(op, a, b, w):
    m = (1 << w) - 1
    a, b = a & m, b & m
    if op == 0x00:
        return (a + b) & m
    if op == 0x10:
        return (a - b) & m
    if op == 0x20:
        return (a * b) & m
    if op == 0x40:
        return a | b
    if op == 0x50:
        return a & b
    if op == 0xA0:
        return a ^ b
    if op == 0x60:
        return (a << b) & m
    if op == 0x70:
        return a >> b
    sa = a - (1 << w) if a >> (w - 1) else a
    return (sa >> b) & m


@settings(max_examples=400, deadline=None)
@given(st.integers(0, U64), st.integers(0, 1 << 12), st.integers(0, U64), st.integers(0, 63),
       st.sampled_from(_OPS), st.booleans(), st.integers(0, 1 << 12))
def test_alu_transfer_functions_contain_every_concrete_result(base, span, other, shift, op,
                                                               alu32, pick):
    w = 32 if alu32 else 64
    d = RegState("scalar")
    lo, hi = base, min(U64, base + span)
    bd.set_range64(d, lo, hi)
    s = RegState("scalar")
    if op in (0x60, 0x70, 0xC0):
        bd.mark_known(s, shift % w)
        b = shift % w
    else:
        bd.mark_known(s, other)
        b = other
    a = lo + pick % (hi - lo + 1)
    out = d.copy()
    bd.alu(out, s, op, alu32)
    c = _concrete(op, a, b, w)
    assert out.var_off.contains(tn.const(c))
    assert out.umin <= c <= out.umax
    assert out.smin <= bd.s64(c) <= out.smax
    assert out.u32min <= c & 0xFFFFFFFF <= out.u32max
    assert out.s32min <= bd.s32(c) <= out.s32max
