"""Native driver loops compiled into every program's module.

``pybpf_repeat`` runs the program ``n`` times on one input, ``pybpf_batch`` runs it once on
each of ``n`` inputs; both are a single ctypes call, so ``--repeat N``, ``pybpf run --pcap``
and the benchmarks pay no Python round trip per run. Before each run the driver resets the
budget, points the input-data region (entry 0 of the region table) and the LD_ABS window at
the input, and in checked mode zeroes the addressable stack frames (the interpreter starts
every run with zeroed stacks). A fault stops the loop and the driver returns the index of the
failing run; a run that ended through ``Fault.EXIT`` (LD_ABS outside the packet, an unwinding
helper) is a normal result.
"""

from __future__ import annotations

from .. import isa
from .layout import CTX_FIELDS, FRAMES, Fault

C = CTX_FIELDS


def _prepare_run(checked: bool, lo: str, length: str) -> str:
    lines = [
        f"  %pb = getelementptr i64, ptr %ctx, i64 {C['budget']}",
        "  store i64 %budget, ptr %pb, align 8",
        f"  %pdl = getelementptr i64, ptr %ctx, i64 {C['data_lo']}",
        f"  store i64 {lo}, ptr %pdl, align 8",
        f"  %pdn = getelementptr i64, ptr %ctx, i64 {C['data_len']}",
        f"  store i64 {length}, ptr %pdn, align 8",
        f"  %ptab = getelementptr i64, ptr %ctx, i64 {C['regions']}",
        "  %tab.i = load i64, ptr %ptab, align 8",
        "  %tab = inttoptr i64 %tab.i to ptr",
        f"  store i64 {lo}, ptr %tab, align 8",
        "  %tspan = getelementptr i64, ptr %tab, i64 1",
        f"  store i64 {length}, ptr %tspan, align 8",
    ]
    if checked:
        for d in range(isa.MAX_CALL_DEPTH):
            lines += [
                f"  %pf{d} = getelementptr i64, ptr %ctx, i64 {FRAMES + d}",
                f"  %f{d}.i = load i64, ptr %pf{d}, align 8",
                f"  %f{d} = inttoptr i64 %f{d}.i to ptr",
                f"  call void @llvm.memset.p0.i64(ptr align 8 %f{d}, i8 0, i64 {isa.STACK_SIZE},"
                " i1 false)",
            ]
    return "\n".join(lines)


def _finish_run() -> str:
    """After one run: r0 in %r0, or jump to %fault; EXIT becomes an ordinary result."""
    return f"""
  %pst = getelementptr i64, ptr %ctx, i64 {C['status']}
  %st = load i64, ptr %pst, align 8
  %isexit = icmp eq i64 %st, {int(Fault.EXIT)}
  %pex = getelementptr i64, ptr %ctx, i64 {C['exit_value']}
  %exv = load i64, ptr %pex, align 8
  %r0 = select i1 %isexit, i64 %exv, i64 %raw
  %st2 = select i1 %isexit, i64 0, i64 %st
  store i64 %st2, ptr %pst, align 8
  %bad = icmp ne i64 %st2, 0
  br i1 %bad, label %fault, label %ok"""


def driver_ir(checked: bool) -> str:
    """IR of ``pybpf_repeat`` and ``pybpf_batch`` (both call ``@f0``, the program's entry)."""
    return f"""
define i64 @pybpf_repeat(ptr %ctx, i64 %r1, i64 %r2, i64 %n, i64 %budget) {{
entry:
  br label %loop
loop:
  %i = phi i64 [ 0, %entry ], [ %i.next, %ok ]
  %last = phi i64 [ 0, %entry ], [ %r0, %ok ]
  %more = icmp ult i64 %i, %n
  br i1 %more, label %run, label %done
run:
{_prepare_run(checked, "%r1", "%r2")}
  %raw = call i64 @f0(ptr %ctx, i64 %r1, i64 %r2, i64 0, i64 0, i64 0, i64 0)
{_finish_run()}
ok:
  %i.next = add i64 %i, 1
  br label %loop
fault:
  ret i64 0
done:
  ret i64 %last
}}

define i64 @pybpf_batch(ptr %ctx, i64 %n, ptr %descs, ptr %results, i64 %budget) {{
entry:
  br label %loop
loop:
  %i = phi i64 [ 0, %entry ], [ %i.next, %ok ]
  %more = icmp ult i64 %i, %n
  br i1 %more, label %run, label %done
run:
  %pbi = getelementptr i64, ptr %ctx, i64 {C['batch_index']}
  store i64 %i, ptr %pbi, align 8
  %k = mul i64 %i, 2
  %plo = getelementptr i64, ptr %descs, i64 %k
  %lo = load i64, ptr %plo, align 8
  %plen = getelementptr i64, ptr %plo, i64 1
  %len = load i64, ptr %plen, align 8
{_prepare_run(checked, "%lo", "%len")}
  %raw = call i64 @f0(ptr %ctx, i64 %lo, i64 %len, i64 0, i64 0, i64 0, i64 0)
{_finish_run()}
ok:
  %pres = getelementptr i64, ptr %results, i64 %i
  store i64 %r0, ptr %pres, align 8
  %i.next = add i64 %i, 1
  br label %loop
fault:
  ret i64 %i
done:
  ret i64 %n
}}
"""
