"""Verification time: pybpf's verifier against the kernel's, program by program.

For each program of a small corpus (the rule cases of tests/verifier/cases.py, a sample of the
converted PREVAIL suites, and loops that make the verifier process ~300,000 and 1,000,000
instructions) the kernel's verification time is read from BPF_PROG_LOAD at log level 4
("verification time N usec") and pybpf's is measured with time.perf_counter over the same
program (best of a few runs). Prints per-program times, the ratio and the geometric mean of
the ratios. Target: geometric mean <= 20x.

    python benchmarks/verifier.py [--runs N] [--quick]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pybpf.asm import assemble  # noqa: E402
from pybpf.verifier import verify  # noqa: E402
from tests.verifier.cases import CASES  # noqa: E402
from tests.verifier.oracle import kernel_verdict  # noqa: E402

TARGET = 20.0

LOOPS = {
    # 3 + 3 * 100,000 = 300,003 instructions processed by the kernel
    "loop 300k insns": ("socket_filter", """
        r0 = 0
        r1 = 0
    loop:
        r1 += 1
        r0 += r1
        if r1 < 100000 goto loop
        exit
    """),
    "loop to the 1M limit": ("socket_filter", """
        r0 = 0
    loop:
        r0 += 2
        if r0 != 9 goto loop
        exit
    """),
    "packet parse with bounds checks": ("xdp", """
        r2 = *(u32 *)(r1 + 0)
        r3 = *(u32 *)(r1 + 4)
        r4 = r2
        r4 += 34
        if r4 > r3 goto drop
        r5 = *(u16 *)(r2 + 12)
        if r5 != 8 goto pass
        r5 = *(u8 *)(r2 + 23)
        if r5 == 6 goto tcp
        if r5 == 17 goto udp
        goto pass
    tcp:
        r4 = r2
        r4 += 54
        if r4 > r3 goto drop
        r0 = *(u16 *)(r2 + 36)
        goto pass
    udp:
        r4 = r2
        r4 += 42
        if r4 > r3 goto drop
        r0 = *(u16 *)(r2 + 36)
    pass:
        r0 = 2
        exit
    drop:
        r0 = 1
        exit
    """),
}


def corpus(quick: bool):
    out = [(name, pt, text) for name, (pt, text) in LOOPS.items()]
    step = 6 if quick else 2
    for name, pt, text in CASES[::step]:
        out.append((name, pt, text))
    try:
        from tests.verifier.prevail import load_cases
        cases = [c for c in load_cases(ROOT.parent / "shared" / "verifier" / "prevail")
                 if c.text is not None and "loop" not in c.file]
        for c in cases[:: 40 if quick else 10]:
            out.append((f"prevail {c.file}: {c.name}"[:60], c.prog_type, c.text))
    except Exception:
        pass
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="a smaller corpus")
    args = ap.parse_args()
    ratios = []
    print(f"{'program':60} {'kernel us':>10} {'pybpf us':>10} {'ratio':>7}")
    for name, ptype, text in corpus(args.quick):
        try:
            program = assemble(text)
        except Exception:
            continue
        kernel = kernel_verdict(program, ptype, log_level=4)
        if kernel.verification_ns is None:
            continue
        k_us = max(kernel.verification_ns / 1000, 1.0)
        best = math.inf
        runs = 1 if "1M" in name else args.runs
        for _ in range(runs):
            t = time.perf_counter()
            verify(program, prog_type=ptype)
            best = min(best, time.perf_counter() - t)
        p_us = best * 1e6
        ratio = p_us / k_us
        ratios.append(ratio)
        print(f"{name[:60]:60} {k_us:10.0f} {p_us:10.0f} {ratio:7.1f}")
    geo = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
    print(f"\ngeometric mean of {len(ratios)} ratios: {geo:.1f}x (target <= {TARGET:.0f}x)")
    return 0 if geo <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
