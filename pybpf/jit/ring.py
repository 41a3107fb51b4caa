"""The ring buffer helpers in native code: ``bpf_ringbuf_reserve``, ``_submit``, ``_discard``
and ``_output`` without a Python call.

:class:`pybpf.maps.ringbuf.RingBufMap` keeps all of a ring's state natively (positions in a
``RingState`` structure, records with the kernel's 8-byte headers in its data region), so the
two routines here -- compiled once per engine into the shared runtime module, next to
``pybpf.slow`` -- are the same steps as ``RingBufMap.reserve`` and ``RingBufMap.commit``
(which follow ``__bpf_ringbuf_reserve`` and ``bpf_ringbuf_commit`` of kernel/bpf/ringbuf.c):

* ``pybpf.rb_reserve(state, size, flags)``: walk ``pending_pos`` past committed records,
  refuse when the producer would get more than the buffer size ahead of the consumer or of
  the oldest BUSY record, write the BUSY header (length, page offset), advance the producer,
  and copy the start of the data into the mirror half when the record runs past the end;
* ``pybpf.rb_commit(state, sample, flags, discard, check)``: fold a wrapped record's tail
  back, clear BUSY (set DISCARD) and count the wake-up. It answers 1 -- "let Python do it" --
  when ``check`` is set and ``sample`` is not a reserved record of this ring (Python raises
  the interpreter's error), or when a consumer is blocked in ``poll`` (Python wakes it).

The emitters choose the ring at compile time: reserve and output from the map in r1; submit
and discard compare the pointer with the data area of each ring the program names, and go
through the helper trampoline when none holds it (a ring reached through a map-in-map).
"""

from __future__ import annotations

import mmap

from .. import isa
from ..helpers import HELPER_IDS
from ..maps.ringbuf import (BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP, BPF_RINGBUF_BUSY_BIT,
                            BPF_RINGBUF_DISCARD_BIT, BPF_RINGBUF_HDR_SZ, RING_WORDS,
                            RINGBUF_MAX_RECORD_SZ, RINGBUF_META_PAGES)
from . import analysis as an
from .layout import MODE_HELPER

R = RING_WORDS
PAGE_SHIFT = mmap.PAGESIZE.bit_length() - 1
#: the length bits of a header (without BUSY and DISCARD)
LEN_MASK = RINGBUF_MAX_RECORD_SZ
EINVAL, EAGAIN = 22, 11


def _field(name: str, stem: str) -> str:
    return f"  %{stem}.p = getelementptr i64, ptr %rb, i64 {R[name]}"


RING_IR = f"""
define i64 @pybpf.rb_reserve(ptr noalias nocapture %rb, i64 %size, i64 %flags) nounwind {{
entry:
  %badf = icmp ne i64 %flags, 0
  %big = icmp ugt i64 %size, {RINGBUF_MAX_RECORD_SZ}
  %bad = or i1 %badf, %big
  br i1 %bad, label %fail, label %sized
sized:
  %s15 = add i64 %size, {BPF_RINGBUF_HDR_SZ + 7}
  %len = and i64 %s15, -8
{_field("mask", "mask")}
  %mask = load i64, ptr %mask.p, align 8
  %total = add i64 %mask, 1
  %toolong = icmp ugt i64 %len, %total
  br i1 %toolong, label %fail, label %load
load:
{_field("consumer_pos", "cons")}
  %cons = load atomic i64, ptr %cons.p acquire, align 8
{_field("producer_pos", "prod")}
  %prod = load i64, ptr %prod.p, align 8
{_field("pending_pos", "pend")}
  %pend0 = load i64, ptr %pend.p, align 8
{_field("data", "data")}
  %data.i = load i64, ptr %data.p, align 8
  %data = inttoptr i64 %data.i to ptr
  br label %scan
scan:
  %pos = phi i64 [ %pend0, %load ], [ %pos.next, %step ]
  %more = icmp ult i64 %pos, %prod
  br i1 %more, label %header, label %scanned
header:
  %hoff = and i64 %pos, %mask
  %hp = getelementptr i8, ptr %data, i64 %hoff
  %hl = load atomic i32, ptr %hp acquire, align 4
  %busy = icmp slt i32 %hl, 0
  br i1 %busy, label %scanned, label %step
step:
  %hl.z = zext i32 %hl to i64
  %rsz = and i64 %hl.z, {LEN_MASK}
  %r15 = add i64 %rsz, {BPF_RINGBUF_HDR_SZ + 7}
  %rlen = and i64 %r15, -8
  %pos.next = add i64 %pos, %rlen
  br label %scan
scanned:
  store i64 %pos, ptr %pend.p, align 8
  %new = add i64 %prod, %len
  %ahead.c = sub i64 %new, %cons
  %over.c = icmp ugt i64 %ahead.c, %mask
  %ahead.p = sub i64 %new, %pos
  %over.p = icmp ugt i64 %ahead.p, %mask
  %over = or i1 %over.c, %over.p
  br i1 %over, label %fail, label %write
write:
  %off = and i64 %prod, %mask
  %rec = getelementptr i8, ptr %data, i64 %off
  %busylen = or i64 %size, {BPF_RINGBUF_BUSY_BIT}
  %busylen.32 = trunc i64 %busylen to i32
  store i32 %busylen.32, ptr %rec, align 4
  %page = lshr i64 %off, {PAGE_SHIFT}
  %pgoff = add i64 %page, {RINGBUF_META_PAGES}
  %pgoff.32 = trunc i64 %pgoff to i32
  %pgp = getelementptr i8, ptr %rec, i64 4
  store i32 %pgoff.32, ptr %pgp, align 4
  store atomic i64 %new, ptr %prod.p release, align 8
  %body = add i64 %off, {BPF_RINGBUF_HDR_SZ}
  %end = add i64 %body, %size
  %wraps = icmp ugt i64 %end, %total
  br i1 %wraps, label %mirror, label %done
mirror:
  %mirror.p = getelementptr i8, ptr %data, i64 %total
  %mirror.n = sub i64 %end, %total
  call void @llvm.memmove.p0.p0.i64(ptr %mirror.p, ptr %data, i64 %mirror.n, i1 false)
  br label %done
done:
  %sample = add i64 %data.i, %body
  ret i64 %sample
fail:
  ret i64 0
}}

define i64 @pybpf.rb_commit(ptr noalias nocapture %rb, i64 %sample, i64 %flags,
                            i64 %discard, i64 %check) nounwind {{
entry:
{_field("data", "data")}
  %data.i = load i64, ptr %data.p, align 8
  %data = inttoptr i64 %data.i to ptr
{_field("mask", "mask")}
  %mask = load i64, ptr %mask.p, align 8
  %total = add i64 %mask, 1
  %rel = sub i64 %sample, %data.i
  %hoff = sub i64 %rel, {BPF_RINGBUF_HDR_SZ}
  %hp = getelementptr i8, ptr %data, i64 %hoff
  %checking = icmp ne i64 %check, 0
  br i1 %checking, label %inside, label %go
inside:
  %in = icmp ult i64 %hoff, %total
  br i1 %in, label %header, label %python
header:
  %low = and i64 %hoff, 7
  %aligned = icmp eq i64 %low, 0
  %hl = load i32, ptr %hp, align 1
  %busy = icmp slt i32 %hl, 0
  %plausible = and i1 %aligned, %busy
  br i1 %plausible, label %span, label %python
span:
{_field("consumer_pos", "cons")}
  %cons = load i64, ptr %cons.p, align 8
{_field("producer_pos", "prod")}
  %prod = load i64, ptr %prod.p, align 8
  %dist = sub i64 %hoff, %cons
  %dist.m = and i64 %dist, %mask
  %pos = add i64 %cons, %dist.m
  %hl.z = zext i32 %hl to i64
  %rsz = and i64 %hl.z, {LEN_MASK}
  %r15 = add i64 %rsz, {BPF_RINGBUF_HDR_SZ + 7}
  %rlen = and i64 %r15, -8
  %rend = add i64 %pos, %rlen
  %past = icmp ugt i64 %rend, %prod
  br i1 %past, label %python, label %go
go:
  %quiet = and i64 %flags, {BPF_RB_NO_WAKEUP}
  %wake = icmp eq i64 %quiet, 0
{_field("waiters", "waiters")}
  %waiters = load atomic i64, ptr %waiters.p acquire, align 8
  %blocked = icmp ne i64 %waiters, 0
  %to.python = and i1 %wake, %blocked
  br i1 %to.python, label %python, label %commit
commit:
  %len = load i32, ptr %hp, align 4
  %size.32 = and i32 %len, {LEN_MASK}
  %size = zext i32 %size.32 to i64
  %start = add i64 %hoff, {BPF_RINGBUF_HDR_SZ}
  %end = add i64 %start, %size
  %wraps = icmp ugt i64 %end, %total
  br i1 %wraps, label %fold, label %mark
fold:
  %late = icmp ugt i64 %start, %total
  %lo = select i1 %late, i64 %start, i64 %total
  %src = getelementptr i8, ptr %data, i64 %lo
  %lo.d = sub i64 %lo, %total
  %dst = getelementptr i8, ptr %data, i64 %lo.d
  %n = sub i64 %end, %lo
  call void @llvm.memmove.p0.p0.i64(ptr %dst, ptr %src, i64 %n, i1 false)
  br label %mark
mark:
  %dbit = icmp ne i64 %discard, 0
  %dmask = select i1 %dbit, i32 {BPF_RINGBUF_DISCARD_BIT}, i32 0
  %newlen = or i32 %size.32, %dmask
  store atomic i32 %newlen, ptr %hp release, align 4
{_field("wakeups", "wakeups")}
  %wakeups = load i64, ptr %wakeups.p, align 8
  %inc = zext i1 %wake to i64
  %wakeups.n = add i64 %wakeups, %inc
  store i64 %wakeups.n, ptr %wakeups.p, align 8
  ret i64 0
python:
  ret i64 1
}}

declare void @llvm.memmove.p0.p0.i64(ptr, ptr, i64, i1)
"""

#: what a program module declares to call the routines above
RING_DECLARATIONS = """
declare i64 @pybpf.rb_reserve(ptr noalias nocapture, i64, i64) nounwind
declare i64 @pybpf.rb_commit(ptr noalias nocapture, i64, i64, i64, i64) nounwind
declare void @llvm.memcpy.p0.p0.i64(ptr, ptr, i64, i1)
"""


def _ring_index(g, pc: int, reg: int) -> int | None:
    """Index of the ring buffer map register ``reg`` holds at ``pc``, if known."""
    st = g.plan.states[pc][reg]
    if st is None or st[0] != an.MAP or st[1] is None or st[1] >= len(g.mod.shapes):
        return None
    return st[1] if g.mod.shapes[st[1]].type == "ringbuf" else None


def _state(g, index: int) -> str:
    return g.e(f"inttoptr i64 {g.mod.const(('ringbuf', index), g)} to ptr")


def python_call(g, hid: int, pc: int, args: str) -> str:
    """The helper through the trampoline, inside a native path (its slow branch): then what
    emit_call does after any helper call (status test, packet window, budget, caches)."""
    from .codegen import _trampoline

    r = _trampoline(g, MODE_HELPER, str(hid), pc, args)
    g.check_status()
    g.reload_packet()
    g.load_budget()
    g.reset_caches()
    return r


def emit_reserve(g, insn: isa.Instruction, pc: int) -> str | None:
    index = _ring_index(g, pc, 1)
    if index is None:
        return None
    return g.e(f"call i64 @pybpf.rb_reserve(ptr {_state(g, index)}, i64 {g.reg(2)}, "
               f"i64 {g.reg(3)})")


def _commit(g, index: int, sample: str, flags: str, discard: int, check: bool, done: str,
            python: str) -> None:
    """Commit through ring ``index``: on to ``done`` when native code did it, else to
    ``python``."""
    e = g.e
    r = e(f"call i64 @pybpf.rb_commit(ptr {_state(g, index)}, i64 {sample}, i64 {flags}, "
          f"i64 {discard}, i64 {int(check)})")
    native = e(f"icmp eq i64 {r}, 0")
    e.do(f"br i1 {native}, label %{done}, label %{python}, !prof !1")


def emit_commit(discard: int):
    hid = HELPER_IDS["ringbuf_discard" if discard else "ringbuf_submit"]

    def emit(g, insn: isa.Instruction, pc: int) -> str | None:
        rings = [i for i, s in enumerate(g.mod.shapes) if s.type == "ringbuf"]
        if not rings:
            return None
        e = g.e
        sample, flags = g.reg(1), g.reg(2)
        args = ", ".join(f"i64 {g.reg(r)}" for r in range(1, 6))
        done, python = e.fresh("rb.done")[1:], e.fresh("rb.py")[1:]
        for index in rings:     # the ring whose data area holds the record's header
            field = e(f"getelementptr i64, ptr {_state(g, index)}, i64 {R['data']}")
            data = e(f"load i64, ptr {field}, align 8")
            off = e(f"sub i64 {sample}, {data}")
            off = e(f"sub i64 {off}, {BPF_RINGBUF_HDR_SZ}")
            inside = e(f"icmp ult i64 {off}, {g.mod.shapes[index].max_entries}")
            here, other = e.fresh("rb.here")[1:], e.fresh("rb.other")[1:]
            e.do(f"br i1 {inside}, label %{here}, label %{other}")
            e.label(here)
            _commit(g, index, sample, flags, discard, g.checked, done, python)
            e.label(other)
        e.do(f"br label %{python}")
        e.label(python)
        python_call(g, hid, pc, args)
        e.do(f"br label %{done}")
        e.label(done)
        return "0"

    return emit


def emit_output(g, insn: isa.Instruction, pc: int) -> str | None:
    """``bpf_ringbuf_output(map, data, size, flags)``: the data is read (bounds-checked in
    checked mode) first, then flags, reserve, copy and commit -- ``RingBufMap.output``."""
    index = _ring_index(g, pc, 1)
    if index is None:
        return None
    e = g.e
    data, size, flags = g.reg(2), g.reg(3), g.reg(4)
    if g.checked:
        res = e(f"call {{i64, i64}} @pybpf.slow(ptr %ctx, i64 {data}, i64 {size}, i64 0, "
                f"i64 {pc})")
        bad = e(f"icmp eq i64 {e(f'extractvalue {{i64, i64}} {res}, 1')}, 0")
        ok = e.fresh("rb.read")[1:]
        e.do(f"br i1 {bad}, label %unwind, label %{ok}, !prof !0")
        e.label(ok)
    state = _state(g, index)
    unknown = e(f"and i64 {flags}, {~(BPF_RB_NO_WAKEUP | BPF_RB_FORCE_WAKEUP)}")
    badflags = e(f"icmp ne i64 {unknown}, 0")
    inval, reserve, fin, full, copy, committed, python = (
        e.fresh(x)[1:] for x in ("rb.inval", "rb.res", "rb.fin", "rb.full", "rb.copy",
                                 "rb.ok", "rb.py"))
    e.do(f"br i1 {badflags}, label %{inval}, label %{reserve}")
    e.label(inval)
    e.do(f"br label %{fin}")
    e.label(reserve)
    sample = e(f"call i64 @pybpf.rb_reserve(ptr {state}, i64 {size}, i64 0)")
    got = e(f"icmp ne i64 {sample}, 0")
    e.do(f"br i1 {got}, label %{copy}, label %{full}")
    e.label(full)
    e.do(f"br label %{fin}")
    e.label(copy)
    dst = e(f"inttoptr i64 {sample} to ptr")
    src = e(f"inttoptr i64 {data} to ptr")
    e.do(f"call void @llvm.memcpy.p0.p0.i64(ptr {dst}, ptr {src}, i64 {size}, i1 false)")
    _commit(g, index, sample, flags, 0, False, committed, python)
    e.label(python)
    python_call(g, HELPER_IDS["ringbuf_submit"], pc,
                f"i64 {sample}, i64 {flags}, i64 0, i64 0, i64 0")
    e.do(f"br label %{committed}")
    e.label(committed)
    e.do(f"br label %{fin}")
    e.label(fin)
    return e(f"phi i64 [ {-EINVAL}, %{inval} ], [ {-EAGAIN}, %{full} ], [ 0, %{committed} ]")


#: helper id -> native emitter
RING_NATIVES = {
    HELPER_IDS["ringbuf_reserve"]: emit_reserve,
    HELPER_IDS["ringbuf_submit"]: emit_commit(0),
    HELPER_IDS["ringbuf_discard"]: emit_commit(1),
    HELPER_IDS["ringbuf_output"]: emit_output,
}
