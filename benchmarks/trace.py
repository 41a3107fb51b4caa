"""pybpf trace against bpftrace 0.17, measured in the same run.

1. Start-up: parse + compile + load + attach of a one-probe script, measured as the time from
   launching the tool until the command it traces (``-c``) starts, which both tools do only
   once every probe is attached. pybpf is measured cold (no compilation cache) and warm (the
   script compiled before, as on every run after the first).
2. Per-event overhead: a tight getpid() loop of N calls timed with and without a counting
   probe on sys_enter_getpid attached by each tool; overhead = extra ns per call.

Prints each measurement and the ratio pybpf / bpftrace (below 1.0: pybpf is faster).
Run as root: ``python3 benchmarks/trace.py``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time

SCRIPT = "tracepoint:syscalls:sys_enter_getpid { @calls = count(); }"
LOOP = r"""
import os, time, sys
n = int(sys.argv[1])
t = time.perf_counter_ns()
for _ in range(n):
    os.getpid()
print((time.perf_counter_ns() - t) / n)
"""


def _startup(cmd: list[str], tmp: str, repeat: int = 3, env: dict | None = None) -> float:
    """Best time from launch until the traced command runs (it writes the clock to a file)."""
    stamp = os.path.join(tmp, "stamp")
    script = os.path.join(tmp, "stamp.sh")
    with open(script, "w") as fh:
        fh.write(f"date +%s%N > {stamp}\n")
    best = float("inf")
    for _ in range(repeat):
        t = time.time_ns()
        subprocess.run(cmd + ["-c", f"/bin/sh {script}"], capture_output=True, check=True,
                       timeout=120, env=env)
        with open(stamp) as fh:
            best = min(best, (int(fh.read()) - t) / 1e9)
    return best


def _per_call(tool_cmd: list[str] | None, loop_file: str, n: int) -> float:
    work = f"{sys.executable} {loop_file} {n}"
    if tool_cmd is None:
        out = subprocess.run(work.split(), capture_output=True, text=True, check=True)
        return float(out.stdout.strip())
    out = subprocess.run(tool_cmd + ["-c", work], capture_output=True, text=True, timeout=300)
    for line in out.stdout.splitlines():
        try:
            return float(line.strip())
        except ValueError:
            continue
    raise RuntimeError(f"no timing in output: {out.stdout!r} {out.stderr!r}")


def main() -> None:
    if shutil.which("bpftrace") is None:
        sys.exit("bpftrace is not installed (apt-get install bpftrace)")
    with tempfile.TemporaryDirectory() as tmp:
        script = os.path.join(tmp, "s.bt")
        with open(script, "w") as fh:
            fh.write(SCRIPT)
        loop = os.path.join(tmp, "loop.py")
        with open(loop, "w") as fh:
            fh.write(LOOP)
        ours = [sys.executable, "-m", "pybpf", "trace", script]
        theirs = ["bpftrace", script]
        # users' Pythons keep bytecode caches; this workplace may turn them off
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        cache = os.path.join(tmp, "cache")
        cold_env = {**env, "PYBPF_TRACE_CACHE": "0"}
        warm_env = {**env, "PYBPF_TRACE_CACHE": cache}
        _startup(ours, tmp, 1, warm_env)  # fills the bytecode and compilation caches
        s_cold = _startup(ours, tmp, 3, cold_env)
        s_warm = _startup(ours, tmp, 3, warm_env)
        s_theirs = _startup(theirs, tmp, 3, env)
        print(f"start-up cold   pybpf {s_cold * 1000:8.1f} ms   bpftrace {s_theirs * 1000:8.1f} ms"
              f"   ratio {s_cold / s_theirs:.2f}")
        print(f"start-up warm   pybpf {s_warm * 1000:8.1f} ms   bpftrace {s_theirs * 1000:8.1f} ms"
              f"   ratio {s_warm / s_theirs:.2f}")
        n = 300_000
        base = _per_call(None, loop, n)
        o_ours = _per_call(ours, loop, n) - base
        o_theirs = _per_call(theirs, loop, n) - base
        print(f"per-event       pybpf {o_ours:8.1f} ns   bpftrace {o_theirs:8.1f} ns"
              f"   ratio {o_ours / o_theirs if o_theirs > 0 else float('nan'):.2f}"
              f"   (baseline getpid {base:.1f} ns)")


if __name__ == "__main__":
    main()
