"""pybpf's JIT against the kernel's JIT, side by side in one run.

Each benchmark is one eBPF program (LLVM assembly below) that the kernel verifier accepts as a
``sched_cls`` program: it reads its input through legacy packet loads (``skb[...]``, which
pybpf maps to the input data and the kernel to the packet from its Ethernet header on), so the
same bytes run unchanged in both engines and give the same r0 (checked before timing).

* pybpf: ``JITProgram(program, checked=False)`` -- unchecked, like the kernel runs a verified
  program -- timed over ``--repeat`` runs inside one native call (``time_runs``, the thread's
  CPU time); the checked mode's time is printed for information;
* kernel: ``BPF_PROG_TEST_RUN`` with the same repeat count, whose ``duration`` is the kernel's
  own mean nanoseconds per run (its timer also stops while the task is scheduled out).

Each time is the best of five measurements on both sides.

The ring buffer benchmark reserves, fills and submits 32 records per run; both rings (4 MiB)
are emptied before each measurement, so every reservation succeeds on both sides.

The tail-call benchmarks run a chain of 33 tail calls (34 executions) per run, the kernel's
limit on both sides: ``tail_chain`` is a program in slot 0 of its own prog_array (pybpf
restarts a program that tail-calls itself on its own context, which LLVM may turn into a
loop), ``tail_pingpong`` two programs that tail-call each other (slots 0 and 1), so every
jump goes to another program: the general hand-over and jump.

The packet parser runs a batch of generated packets: pybpf through ``run_batch`` (one native
call for the batch), the kernel one test run per packet. Prints each time ratio (pybpf / kernel,
lower is better) and their geometric mean, plus compile times, including two
1,000-instruction programs (ALU and stack traffic; a branchy packet parser) against the 50 ms
target.

Usage: ``python benchmarks/jit.py [--repeat N] [--json]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import random
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pybpf.asm import assemble  # noqa: E402
from pybpf.jit import JITProgram, engine  # noqa: E402

#: a packet whose bytes 16..19 seed the computations (all benchmarks read it the same way)
PACKET = bytes(range(64))

TAIL_PINGPONG = """
    .map jmp prog_array key=4 value=4 max_entries=2
        r6 = r1
        r0 = *(u32 *)skb[16]
        r1 = r6
        r2 = jmp ll
        r3 = {slot}
        call bpf_tail_call
        r0 = 1
        exit
    """

BENCHMARKS: dict[str, str] = {
    "loop_sum": """
        r6 = r1
        r0 = *(u32 *)skb[16]
        r7 = r0
        r8 = 0
    loop:
        r1 = r7
        r1 *= 31
        r1 += r8
        r2 = r1
        r2 >>= 7
        r1 ^= r2
        r7 = r1
        r8 += 1
        if r8 < 4000 goto loop
        r0 = r7
        exit
    """,
    "primes": """
        r6 = r1
        r0 = *(u8 *)skb[14]
        r7 = r0
        r8 = 2
    outer:
        r9 = 2
        r4 = 0
    inner:
        r1 = r9
        r1 *= r9
        if r1 > r8 goto tested
        r2 = r8
        r2 %= r9
        r2 -= 1
        r2 >>= 63
        r4 |= r2
        r9 += 1
        goto inner
    tested:
        r4 ^= 1
        r7 += r4
        r8 += 1
        if r8 < 1000 goto outer
        r0 = r7
        exit
    """,
    "collatz": """
        r6 = r1
        r0 = *(u32 *)skb[16]
        r7 = r0
        r8 = 1
    outer:
        r1 = r8
        r2 = 0
    step:
        if r1 == 1 goto done
        r3 = r1
        r3 &= 1
        if r3 == 0 goto even
        r1 *= 3
        r1 += 1
        goto counted
    even:
        r1 >>= 1
    counted:
        r2 += 1
        goto step
    done:
        r7 += r2
        r8 += 1
        if r8 < 300 goto outer
        r0 = r7
        exit
    """,
    "stack_checksum": """
        r6 = r1
        r0 = *(u32 *)skb[16]
        r7 = r0
        r8 = 0
    fill:
        r1 = r10
        r1 += -512
        r2 = r8
        r2 <<= 3
        r1 += r2
        r7 *= 1103515245
        r7 += 12345
        *(u64 *)(r1 + 0) = r7
        r8 += 1
        if r8 < 64 goto fill
        r9 = 0
        r0 = 0
    round:
        r8 = 0
    sum:
        r1 = r10
        r1 += -512
        r2 = r8
        r2 <<= 3
        r1 += r2
        r3 = *(u64 *)(r1 + 0)
        r3 ^= r9
        r0 += r3
        r0 = r0 << 1 | 0 ll
        r8 += 1
        if r8 < 64 goto sum
        r9 += 1
        if r9 < 16 goto round
        exit
    """,
    "bit_count": """
        r6 = r1
        r0 = *(u32 *)skb[16]
        r7 = r0
        r8 = 0
        r9 = 0
    outer:
        r7 *= 1103515245
        r7 += 12345
        r1 = r7
        r2 = 0
    inner:
        r3 = r1
        r3 &= 1
        r9 += r3
        r1 >>= 1
        r2 += 1
        if r2 < 64 goto inner
        r8 += 1
        if r8 < 256 goto outer
        r0 = r9
        exit
    """,
    "packet_parser": """
        r6 = r1
        r0 = *(u16 *)skb[12]
        if r0 != 0x800 goto other
        r0 = *(u8 *)skb[14]
        r7 = r0
        r7 &= 15
        r7 <<= 2
        r0 = *(u8 *)skb[23]
        r8 = r0
        r0 = *(u32 *)skb[26]
        r9 = r0
        r0 = *(u32 *)skb[30]
        r9 ^= r0
        if r8 == 6 goto ports
        if r8 != 17 goto done
    ports:
        r0 = *(u32 *)skb[r7 + 14]
        r9 ^= r0
        r8 = 0
    payload:
        r0 = *(u32 *)skb[r7 + 34]
        r9 *= 31
        r9 += r0
        r7 += 4
        r8 += 1
        if r8 < 16 goto payload
    done:
        r0 = r9
        r0 &= 0x7fffffff
        exit
    other:
        r0 = 1
        exit
    """,
    "map_counter": """
    .map counters array key=4 value=8 max_entries=64
        r6 = r1
        r0 = *(u32 *)skb[16]
        r7 = r0
        r8 = 0
    loop:
        r1 = r7
        r1 += r8
        r1 &= 63
        *(u32 *)(r10 - 4) = r1
        r1 = counters ll
        r2 = r10
        r2 += -4
        call bpf_map_lookup_elem
        if r0 == 0 goto next
        r1 = 1
        lock *(u64 *)(r0 + 0) += r1
    next:
        r8 += 1
        if r8 < 256 goto loop
        r0 = 0
        exit
    """,
    "ringbuf_events": """
    .map events ringbuf key=0 value=0 max_entries=4194304
        r6 = r1
        r0 = *(u32 *)skb[16]
        r7 = r0
        r8 = 0
        r9 = 0
    loop:
        r1 = events ll
        r2 = 16
        r3 = 0
        call bpf_ringbuf_reserve
        if r0 == 0 goto next
        *(u64 *)(r0 + 0) = r7
        *(u64 *)(r0 + 8) = r8
        r1 = r0
        r2 = 0
        call bpf_ringbuf_submit
        r9 += 1
    next:
        r8 += 1
        if r8 < 32 goto loop
        r0 = r9
        exit
    """,
    "tail_chain": """
    .map jmp prog_array key=4 value=4 max_entries=1
        r6 = r1
        r0 = *(u32 *)skb[16]
        r1 = r6
        r2 = jmp ll
        r3 = 0
        call bpf_tail_call
        r0 = 1
        exit
    """,
    "tail_pingpong": TAIL_PINGPONG.format(slot=1),
}
#: the other program of a two-program benchmark, in slot 1 of its prog_array
PARTNERS = {"tail_pingpong": TAIL_PINGPONG.format(slot=0)}
# the stack checksum's mixing step without a 64-bit immediate form pybpf must not depend on
BENCHMARKS["stack_checksum"] = BENCHMARKS["stack_checksum"].replace(
    "r0 = r0 << 1 | 0 ll", "r4 = r0\n        r4 >>= 63\n        r0 <<= 1\n        r0 |= r4")


def packets(n: int, seed: int = 7) -> list[bytes]:
    """Generated Ethernet/IPv4 TCP and UDP packets (and a few others), 128 bytes each."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        proto = rng.choice([6, 17, 17, 6, 1])
        eth = bytes(6) + bytes(6) + (b"\x08\x00" if rng.random() < 0.95 else b"\x86\xdd")
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 114, rng.getrandbits(16), 0, 64, proto, 0,
                         rng.getrandbits(32).to_bytes(4, "big"),
                         rng.getrandbits(32).to_bytes(4, "big"))
        l4 = struct.pack("!HH", rng.getrandbits(16), rng.getrandbits(16))
        body = bytes(rng.getrandbits(8) for _ in range(128 - len(eth) - len(ip) - len(l4)))
        out.append(eth + ip + l4 + body)
    return out


def program(name: str):
    prog = assemble(BENCHMARKS[name], filename=f"{name}.s")
    prog.prog_type = "sched_cls"
    prog.name = name
    return prog


def thousand_insn_program():
    """A 1,000-instruction program: ALU mixes, forward branches and stack traffic."""
    rng = random.Random(1000)
    lines = ["r6 = r1", "r0 = *(u32 *)skb[16]"] + [f"r{r} = r0" for r in range(1, 10)
                                                  if r != 6]
    while len(lines) < 987:
        r = rng.choice([1, 2, 3, 4, 5, 7, 8, 9])
        s = rng.choice([0, 1, 2, 3, 4, 5, 7, 8, 9])
        k = rng.random()
        if k < 0.55:
            op = rng.choice(["+=", "-=", "*=", "^=", "|=", "&=", ">>=", "<<="])
            rhs = f"r{s}" if rng.random() < 0.5 else str(rng.randrange(1, 31))
            lines.append(f"r{r} {op} {rhs}")
        elif k < 0.7:
            lines.append(f"if r{r} > r{s} goto +{rng.randrange(1, 4)}")
        elif k < 0.85:
            lines.append(f"*(u64 *)(r10 - {8 * rng.randrange(1, 64)}) = r{r}")
        else:
            lines.append(f"r{r} = *(u64 *)(r10 - {8 * rng.randrange(1, 64)})")
    # the stores above may leave slots unwritten: initialise the stack first
    init = [f"*(u64 *)(r10 - {8 * i}) = r0" for i in range(1, 65)]
    # branches jump up to 3 ahead: three straight-line instructions keep them in the program
    lines = lines[:2] + init + lines[2:] + ["r0 ^= r1", "r0 ^= r2", "r0 ^= r3", "exit"]
    prog = assemble("\n".join(lines), filename="thousand.s")
    prog.prog_type = "sched_cls"
    return prog


def branchy_packet_program():
    """A 1,000-instruction packet parser: legacy packet loads (``skb[k]``, ``skb[r + k]``),
    forward branches on the loaded values and ALU mixing -- each load may end the run, so
    this is the block-heavy shape that costs LLVM the most per instruction. Branches skip
    whole steps, so an indexed load always sees its masked index."""
    rng = random.Random(2000)
    regs = [0, 7, 8, 9]     # r1-r5 do not survive a packet load (the kernel clobbers them)
    steps: list[list[str]] = []
    size = 4
    while size < 990:
        k = rng.random()
        r = rng.choice(regs)
        if k < 0.25:
            width = rng.choice(["u8", "u16", "u32"])
            step = [f"r0 = *({width} *)skb[{rng.randrange(0, 56)}]",
                    f"r{rng.choice(regs[1:])} ^= r0"]
        elif k < 0.3:
            step = ["r0 = r7", "r0 &= 31", f"r0 = *(u8 *)skb[r0 + {rng.randrange(0, 24)}]",
                    f"r{rng.choice(regs[1:])} += r0"]
        elif k < 0.55:
            op = rng.choice(["==", "!=", ">", "<", ">=", "&"])
            rhs = f"r{rng.choice(regs)}" if rng.random() < 0.3 else str(rng.randrange(0, 256))
            step = [f"if r{r} {op} {rhs} goto SKIP{rng.randrange(1, 4)}"]
        else:
            op = rng.choice(["+=", "-=", "*=", "^=", "|=", "&=", ">>=", "<<="])
            rhs = f"r{rng.choice(regs)}" if rng.random() < 0.5 else str(rng.randrange(1, 31))
            step = [f"r{r} {op} {rhs}"]
        steps.append(step)
        size += len(step)
    steps += [["r0 = r7"], ["r0 ^= r8"], ["r0 ^= r9"], ["exit"]]
    lines = ["r6 = r1", "r7 = 0", "r8 = 0", "r9 = 0"]
    for i, step in enumerate(steps):
        for line in step:
            if "SKIP" in line:      # jump over the next n steps
                n = int(line[line.index("SKIP") + 4:])
                skip = sum(len(s) for s in steps[i + 1: min(i + 1 + n, len(steps) - 1)])
                line = line[:line.index("SKIP")] + f"+{skip}"
            lines.append(line)
    prog = assemble("\n".join(lines), filename="branchy.s")
    prog.prog_type = "sched_cls"
    return prog


#: the issue's compile-time target for a 1,000-instruction program (CPU milliseconds)
COMPILE_TARGET_MS = 50


def time_compile(prog, repeats: int = 5, *, checked: bool = False) -> float:
    """Best-of CPU milliseconds to compile ``prog`` (the caches emptied each time)."""
    best = math.inf
    for _ in range(repeats):
        engine.clear_cache()
        start = time.process_time()
        JITProgram(prog, checked=checked)
        best = min(best, time.process_time() - start)
    return best * 1e3


def best(measure, trials: int = 5) -> float:
    """The least of a few measurements: the machine's other work only ever adds time."""
    return min(measure() for _ in range(trials))


def emptied(measure, rings):
    """``measure`` after consuming every record in ``rings`` (pybpf ring maps, kernel
    ``RingBuffer`` readers), so a measurement starts with empty rings."""
    def run():
        for ring in rings:
            if hasattr(ring, "drain"):
                ring.drain()
            else:
                for _ in ring:
                    pass
        return measure()
    return run


def run(repeat: int) -> dict:
    from pybpf import kernel
    from pybpf.kernel.ringbuf import RingBuffer

    reason = kernel.features.bpf_unavailable_reason()
    if reason:
        raise SystemExit(f"the kernel's JIT is not available here: {reason}")
    rows = []
    for name in BENCHMARKS:
        prog = program(name)
        jit = JITProgram(prog, checked=False)
        checked = JITProgram(prog, checked=True, budget=1 << 40)
        with kernel.load_program(prog) as kp, contextlib.ExitStack() as stack:
            partner = kpartner = None
            if name in PARTNERS:
                partner = assemble(PARTNERS[name], filename=f"{name}.1.s")
                partner.prog_type = "sched_cls"
                kpartner = stack.enter_context(kernel.load_program(partner, maps=kp.maps))
            for ours in (jit, checked):         # tail_chain: the program calls itself
                for m in ours.maps:
                    if m.type == "prog_array":
                        m[0] = prog
                        if partner is not None:
                            m[1] = partner
            for m in kp.maps:
                if m.type == "prog_array":
                    m.update(0, kp.fd)
                    if kpartner is not None:
                        m.update(1, kpartner.fd)
            if name == "packet_parser":
                batch = packets(256)
                rounds = max(repeat // 256, 1)
                jit_r0 = jit.run_batch(batch)
                jit_ns = best(lambda: (jit.run_batch(batch, repeat=rounds), jit.last_ns)[1])
                checked.run_batch(batch, repeat=rounds)
                checked_ns = checked.last_ns
                kernel_r0 = [kp.test_run(pkt).retval for pkt in batch]
                kernel_ns = best(lambda: sum(kp.test_run(pkt, repeat=rounds).duration_ns
                                             for pkt in batch) / len(batch))
                same = [r & 0xFFFFFFFF for r in jit_r0] == kernel_r0
            else:
                rings = [m for ours in (jit, checked) for m in ours.maps
                         if m.type == "ringbuf"]
                kernel_rings = [RingBuffer(m) for m in kp.maps if m.type == "ringbuf"]
                r0 = jit.run(PACKET)
                res = kp.test_run(PACKET)
                same = (r0 & 0xFFFFFFFF) == res.retval
                if rings:       # every reservation succeeded, the records are the kernel's
                    same = same and res.retval == 32 and \
                        list(rings[0]) == kernel_rings[0].drain()
                jit_ns = best(emptied(lambda: jit.time_runs(PACKET, repeat)[1], rings))
                checked_ns = best(emptied(lambda: checked.time_runs(PACKET, repeat)[1], rings))
                kernel_ns = best(emptied(lambda: float(kp.test_run(PACKET, repeat=repeat)
                                                       .duration_ns), kernel_rings))
                for ring in kernel_rings:
                    ring.close()
                if name == "map_counter":   # the increments landed in the map
                    same = same and sum(int.from_bytes(v, "little") for _, v in
                                        jit.maps[0].items()) > 0
        rows.append({"name": name, "jit_ns": jit_ns, "kernel_ns": kernel_ns,
                     "ratio": jit_ns / kernel_ns if kernel_ns else math.nan,
                     "checked_ns": checked_ns, "same_result": same,
                     "compile_ms": time_compile(prog, 1), "insns": len(prog.insns)})
    ratios = [r["ratio"] for r in rows if r["ratio"] > 0 and math.isfinite(r["ratio"])]
    geomean = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
    checked = [r["checked_ns"] / r["kernel_ns"] for r in rows if r["kernel_ns"]]
    checked_geomean = math.exp(sum(math.log(r) for r in checked) / len(checked))
    big = [{"name": make.__name__, "insns": len(prog.insns), "ms": time_compile(prog),
            "checked_ms": time_compile(prog, checked=True)}
           for make in (thousand_insn_program, branchy_packet_program) for prog in [make()]]
    return {"repeat": repeat, "rows": rows, "geomean": geomean,
            "checked_geomean": checked_geomean, "compile_big": big,
            "compile_target_ms": COMPILE_TARGET_MS}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=2000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    result = run(args.repeat)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{'benchmark':16} {'insns':>5} {'pybpf ns':>10} {'kernel ns':>10} {'ratio':>7} "
          f"{'checked ns':>11} {'same r0':>8} {'compile ms':>10}")
    for r in result["rows"]:
        print(f"{r['name']:16} {r['insns']:5} {r['jit_ns']:10.1f} {r['kernel_ns']:10.1f} "
              f"{r['ratio']:7.3f} {r['checked_ns']:11.1f} {str(r['same_result']):>8} "
              f"{r['compile_ms']:10.1f}")
    print(f"geometric mean of ratios (pybpf JIT / kernel JIT): {result['geomean']:.3f}"
          f"  (target <= 1.0; repeat {result['repeat']})")
    print(f"checked mode (bounds checks and budget, for unverified programs): geometric mean "
          f"{result['checked_geomean']:.3f}")
    for big in result["compile_big"]:
        verdict = "meets" if big["ms"] <= COMPILE_TARGET_MS else "MISSES"
        print(f"compile time of {big['name']} ({big['insns']} instructions): {big['ms']:.1f} ms "
              f"CPU ({verdict} the {COMPILE_TARGET_MS} ms target; checked mode "
              f"{big['checked_ms']:.1f} ms)")


if __name__ == "__main__":
    main()
