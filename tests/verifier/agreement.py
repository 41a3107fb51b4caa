"""Measure how closely pybpf's walk follows the kernel's on the verifier corpora.

For every program of the hand-written cases, the converted PREVAIL suites, a fixed sample of
the hypothesis-generated families, the loop programs of the benchmark, the stack-liveness
programs (``test_stack_liveness.py``) and the callback fixtures, both verifiers judge the
program and the numbers of the kernel's summary line (``processed N insns ... total_states T
peak_states P``) are compared. Prints, per corpus, how many verdicts agree and how many
processed counts, total_states, peak_states and max_states_per_insn are equal, plus the
summed absolute difference of the processed counts.

    python -m tests.verifier.agreement [--generated N] [--slow] [--show]
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_SUMMARY = re.compile(r"processed (\d+) insns .*?max_states_per_insn (\d+) total_states (\d+) "
                      r"peak_states (\d+)")

#: programs that take pybpf to the 1M limit (seconds each); measured only with --slow
SLOW_NAMES = {"simple infinite loop, neq", "very large loop > 1M iterations",
              "while loop with 8-bit AND truncation, bound exceeds mask",
              "loop_counter_unknown_count", "loop_guarded_counter_unknown_count",
              "each_counter", "loop to the 1M limit"}


def _numbers(log: str):
    m = None
    for m in _SUMMARY.finditer(log):
        pass
    if not m:
        return None
    p, mx, t, pk = (int(x) for x in m.groups())
    return p, t, pk, mx


def _asm_corpora(generated: int, slow: bool):
    from pybpf.asm import assemble
    from .cases import CASES
    from .prevail import load_cases
    out = {"cases": [], "prevail": [], "generated": [], "loops": [], "stack liveness": []}
    for name, pt, text in CASES:
        out["cases"].append((name, pt, assemble(text)))
    for c in load_cases(ROOT.parent / "shared" / "verifier" / "prevail"):
        if c.text is None or (c.name in SLOW_NAMES and not slow):
            continue
        try:
            out["prevail"].append((f"{c.file}: {c.name}", c.prog_type, assemble(c.text)))
        except Exception:
            continue
    sys.path.insert(0, str(ROOT))
    from benchmarks.verifier import LOOPS
    for name, (pt, text) in LOOPS.items():
        if name in SLOW_NAMES and not slow:
            continue
        out["loops"].append((name, pt, assemble(text)))
    if generated:
        from hypothesis import HealthCheck, given, settings
        from .generated import ALL
        for family in sorted(ALL):
            got = []

            @settings(max_examples=generated, derandomize=True, database=None, deadline=None,
                      suppress_health_check=list(HealthCheck))
            @given(ALL[family])
            def collect(case):
                got.append(case)
            collect()
            for i, (text, pt) in enumerate(got):
                try:
                    out["generated"].append((f"{family}#{i}", pt, assemble(text)))
                except Exception:
                    continue
    from .test_stack_liveness import LOOPS as LIVENESS_LOOPS, READS, _join_program
    out["stack liveness"] = [(name, pt, build()) for name, (build, pt) in
                             LIVENESS_LOOPS.items()]
    out["stack liveness"] += [(name, "socket_filter", _join_program(text))
                              for name, text in READS.items()]
    return out


def _callback_corpus(slow: bool):
    import tempfile
    from pybpf.elf import load_object
    from pybpf.pytest_plugin import compile_c
    here = Path(__file__).resolve().parent
    progs = []
    for src in ("callbacks.c", "spinlocks.c"):
        tmp = Path(tempfile.mkdtemp())
        obj = load_object(compile_c(here / "fixtures" / src, tmp, "-I", str(here.parent / "fixtures")))
        for name, prog in obj.programs.items():
            if name in SLOW_NAMES and not slow:
                continue
            progs.append((name, prog.prog_type, prog))
    return progs


def measure(generated: int = 20, slow: bool = False, show: bool = False) -> dict:
    from pybpf.verifier import verify
    from .oracle import kernel_verdict, kernel_verdict_btf
    corpora = _asm_corpora(generated, slow)
    try:
        corpora["callbacks+spinlocks"] = _callback_corpus(slow)
    except Exception as exc:   # clang missing
        print(f"callback corpus skipped: {exc}", file=sys.stderr)
    report = {}
    for cname, progs in corpora.items():
        row = dict(n=0, verdict=0, processed=0, total=0, peak=0, maxst=0, absdiff=0,
                   kernel_sum=0, ours_sum=0)
        for name, pt, prog in progs:
            if cname == "callbacks+spinlocks":
                k = kernel_verdict_btf(prog)
            else:
                k = kernel_verdict(prog, pt, log_level=1)
            o = verify(prog, prog_type=pt, log_level=1)
            kn, on = _numbers(k.log), _numbers(o.log)
            row["n"] += 1
            row["verdict"] += k.accepted == o.accepted
            if kn is None or on is None:
                continue
            row["processed"] += kn[0] == on[0]
            row["total"] += kn[1] == on[1]
            row["peak"] += kn[2] == on[2]
            row["maxst"] += kn[3] == on[3]
            row["absdiff"] += abs(kn[0] - on[0])
            row["kernel_sum"] += kn[0]
            row["ours_sum"] += on[0]
            if show and kn != on:
                print(f"  {cname}: {name}: kernel={kn} {k.accepted} pybpf={on} {o.accepted}")
        report[cname] = row
    return report


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--generated", type=int, default=20, help="examples per generated family")
    ap.add_argument("--slow", action="store_true", help="include 1M-limit programs")
    ap.add_argument("--show", action="store_true", help="list every differing program")
    args = ap.parse_args()
    report = measure(args.generated, args.slow, args.show)
    print(f"{'corpus':22} {'n':>5} {'verdict':>8} {'processed=':>10} {'total=':>7} "
          f"{'peak=':>6} {'max/insn=':>9} {'|diff| sum':>11} {'kernel sum':>11} "
          f"{'pybpf sum':>10}")
    for cname, r in report.items():
        print(f"{cname:22} {r['n']:5} {r['verdict']:8} {r['processed']:10} {r['total']:7} "
              f"{r['peak']:6} {r['maxst']:9} {r['absdiff']:11} {r['kernel_sum']:11} "
              f"{r['ours_sum']:10}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
