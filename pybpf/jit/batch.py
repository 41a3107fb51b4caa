"""The native driver loop, compiled once per engine into the shared runtime module.

``pybpf.run`` runs a program ``n`` times -- on one input (``--repeat N``) or on one input
each (a batch of packets) -- in a single ctypes call, so ``pybpf run --repeat``, packet
batches and the benchmarks pay no Python round trip per run. Before each run the driver resets
the budget and the tail-call count, records r1/r2 (a tail-call target starts with them) and
points the input-data region (entry 0 of the region table) and the LD_ABS window at the input.
A run whose program jumped to a tail-call target (``Fault.TAILJUMP``) takes its outcome from
the last program of that chain (``pybpf.tail_settle``). A fault stops the loop; a run that
ended through ``Fault.EXIT`` (LD_ABS outside the packet, an unwinding helper) is a normal
result. Stack frames are zeroed by each function on entry (checked mode), so no per-run
clearing is needed here.
"""

from __future__ import annotations

from .layout import CTX_FIELDS, Fault

C = CTX_FIELDS


def _prepare_run(lo: str, length: str) -> str:
    return "\n".join([
        f"  %pb = getelementptr i64, ptr %ctx, i64 {C['budget']}",
        "  store i64 %budget, ptr %pb, align 8",
        f"  %pbf = getelementptr i64, ptr %ctx, i64 {C['budget_full']}",
        "  store i64 %budget, ptr %pbf, align 8",
        f"  %ptc = getelementptr i64, ptr %ctx, i64 {C['tail_cnt']}",
        "  store i64 0, ptr %ptc, align 8",
        f"  %proot = getelementptr i64, ptr %ctx, i64 {C['root']}",
        "  %self = ptrtoint ptr %ctx to i64",
        "  store i64 %self, ptr %proot, align 8",
        f"  %prr1 = getelementptr i64, ptr %ctx, i64 {C['run_r1']}",
        "  store i64 %r1, ptr %prr1, align 8",
        f"  %prr2 = getelementptr i64, ptr %ctx, i64 {C['run_r2']}",
        "  store i64 %r2, ptr %prr2, align 8",
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
    ])


def driver_ir() -> str:
    """IR of ``pybpf.run(ctx, program, n, descs, dstride, results, rstride, budget)``: run
    ``program`` (a program's ``f0``) ``n`` times; run i gets ``descs[i * dstride]`` -- {r1,
    r2, data address, data length}: r1/r2 are the input's address and length, or a context's
    address and 0 -- and leaves r0 in ``results[i * rstride]``. Stride 0 repeats one input
    (``--repeat``) or keeps only the last result. Returns the number of runs that completed:
    less than ``n`` means run ``n`` stopped on a fault (``ctx.status`` says which).
    """
    return f"""
define i64 @pybpf.run(ptr %ctx, ptr %program, i64 %n, ptr %descs, i64 %dstride,
                     ptr %results, i64 %rstride, i64 %budget) {{
entry:
  br label %loop
loop:
  %i = phi i64 [ 0, %entry ], [ %i.next, %ok ]
  %more = icmp ult i64 %i, %n
  br i1 %more, label %run, label %done
run:
  %pbi = getelementptr i64, ptr %ctx, i64 {C['batch_index']}
  store i64 %i, ptr %pbi, align 8
  %k = mul i64 %i, %dstride
  %pr1 = getelementptr i64, ptr %descs, i64 %k
  %r1 = load i64, ptr %pr1, align 8
  %pr2 = getelementptr i64, ptr %pr1, i64 1
  %r2 = load i64, ptr %pr2, align 8
  %plo = getelementptr i64, ptr %pr1, i64 2
  %lo = load i64, ptr %plo, align 8
  %plen = getelementptr i64, ptr %pr1, i64 3
  %len = load i64, ptr %plen, align 8
{_prepare_run("%lo", "%len")}
  %raw0 = call i64 %program(ptr %ctx, i64 %r1, i64 %r2, i64 0, i64 0, i64 0, i64 0)
  %pst = getelementptr i64, ptr %ctx, i64 {C['status']}
  %st0 = load i64, ptr %pst, align 8
  %jumped = icmp eq i64 %st0, {int(Fault.TAILJUMP)}
  br i1 %jumped, label %settle, label %settled
settle:
  %raw1 = call i64 @pybpf.tail_settle(ptr %ctx, i64 %raw0)
  br label %settled
settled:
  %raw = phi i64 [ %raw0, %run ], [ %raw1, %settle ]
  %st = load i64, ptr %pst, align 8
  %isexit = icmp eq i64 %st, {int(Fault.EXIT)}
  %pex = getelementptr i64, ptr %ctx, i64 {C['exit_value']}
  %exv = load i64, ptr %pex, align 8
  %r0 = select i1 %isexit, i64 %exv, i64 %raw
  %st2 = select i1 %isexit, i64 0, i64 %st
  store i64 %st2, ptr %pst, align 8
  %bad = icmp ne i64 %st2, 0
  br i1 %bad, label %done, label %ok
ok:
  %kr = mul i64 %i, %rstride
  %pres = getelementptr i64, ptr %results, i64 %kr
  store i64 %r0, ptr %pres, align 8
  %i.next = add i64 %i, 1
  br label %loop
done:
  ret i64 %i
}}
"""
