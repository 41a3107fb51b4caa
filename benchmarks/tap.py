"""Filter a generated pcap of 1,000,000 packets with pybpf and with tcpdump, in the same run.

    python benchmarks/tap.py [--packets N] [--expr EXPR]...

For each expression: ``tcpdump -r FILE -w /dev/null EXPR`` (libpcap's compiler and its
bpf_filter) against pybpf's batch path (the classic program compiled to Python source that
walks the records of the file in memory, :mod:`pybpf.cbpf.pyjit`), both counting the same
matches. Then the corpus compile time: pybpf's compiler per expression against ``tcpdump -d``
(which includes starting tcpdump). Prints ratios; > 1 means pybpf is faster.
"""

from __future__ import annotations

import argparse
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
warnings.filterwarnings("ignore")

from pybpf.cbpf import compile_filter  # noqa: E402
from pybpf.cbpf.llvmjit import compile_batch  # noqa: E402
from pybpf.cbpf.pyjit import compile_scanner  # noqa: E402
from tests.cbpf.oracle import corpus, empty_pcap  # noqa: E402
from tests.cbpf.packets import ethernet_frame  # noqa: E402

EXPRS = ["tcp port 80", "host 10.0.0.1 and (port 22 or port 80)", "icmp or arp",
         "tcp[tcpflags] & tcp-syn != 0", "ip6 and udp", "vlan and ip"]


def make_pcap(path: Path, n: int) -> None:
    rnd = random.Random(1)
    distinct = [ethernet_frame(rnd) for _ in range(4096)]
    recs = [struct.pack("<IIII", 1700000000 + i, i, len(f), len(f)) + f
            for i, f in enumerate(distinct)]
    with open(path, "wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        chunk = []
        for i in range(n):
            chunk.append(recs[rnd.randrange(4096)])
            if len(chunk) == 65536:
                out.write(b"".join(chunk))
                chunk = []
        out.write(b"".join(chunk))


REPEAT = 3   # best of three: the machine is shared, the minimum is the least disturbed run


def tcpdump_count(path: Path, expr: str) -> tuple[float, int]:
    dt = float("inf")
    for _ in range(REPEAT):
        t = time.perf_counter()
        subprocess.run(["tcpdump", "-r", str(path), "-w", "/dev/null", expr],
                       capture_output=True, text=True)
        dt = min(dt, time.perf_counter() - t)
    res2 = subprocess.run(f"tcpdump -r {path} -w - '{expr}' 2>/dev/null | tcpdump -r - 2>/dev/null | wc -l",
                          shell=True, capture_output=True, text=True)
    return dt, int(res2.stdout.strip() or 0)


def pybpf_count(path: Path, expr: str, engine: str) -> tuple[float, int]:
    best, n = float("inf"), 0
    for _ in range(REPEAT if engine == "llvm" else 1):
        dt, n = _pybpf_once(path, expr, engine)
        best = min(best, dt)
    return best, n


def _pybpf_once(path: Path, expr: str, engine: str) -> tuple[float, int]:
    """Read the file, compile the filter (LLVM batch JIT or Python source), scan: all timed."""
    t = time.perf_counter()
    insns = compile_filter(expr)
    if engine == "llvm":
        out = compile_batch(insns).scan_file(str(path))
    else:
        buf = path.read_bytes()
        out = []
        compile_scanner(insns)(buf, 24, len(buf), out)
    return time.perf_counter() - t, len(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--expr", action="append")
    args = ap.parse_args()
    if shutil.which("tcpdump") is None:
        sys.exit("tcpdump is not installed")
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "bench.pcap"
        t = time.perf_counter()
        make_pcap(path, args.packets)
        print(f"generated {args.packets} packets ({path.stat().st_size / 1e6:.0f} MB) "
              f"in {time.perf_counter() - t:.1f}s")
        compile_batch(compile_filter("ip"))   # one-time LLVM initialisation, not per filter
        print(f"{'expression':42s} {'matches':>8s} {'tcpdump s':>10s} {'llvm s':>7s} "
              f"{'ratio':>6s} {'python s':>9s} {'ratio':>6s}")
        for expr in args.expr or EXPRS:
            td, tn = tcpdump_count(path, expr)
            ld, ln = pybpf_count(path, expr, "llvm")
            pd, pn = pybpf_count(path, expr, "python")
            flag = "" if tn == ln == pn else f"  MISMATCH tcpdump {tn} llvm {ln} python {pn}"
            print(f"{expr:42s} {ln:8d} {td:10.3f} {ld:7.3f} {td / ld:6.2f} {pd:9.3f} "
                  f"{td / pd:6.2f}{flag}")
        print("ratio = tcpdump time / pybpf time (above 1: pybpf is faster); pybpf times include "
              "reading the file and compiling the filter (LLVM's one-time initialisation excluded); "
              f"best of {REPEAT} runs for tcpdump and the LLVM path")

    exprs = corpus()
    t = time.perf_counter()
    for lt, e in exprs:
        compile_filter(e, lt)
    ours = time.perf_counter() - t
    t = time.perf_counter()
    for lt, e in exprs:
        subprocess.run(["tcpdump", "-r", empty_pcap(lt), "-d", e], capture_output=True)
    theirs = time.perf_counter() - t
    print(f"compiling {len(exprs)} corpus expressions: pybpf {ours * 1e3:.1f} ms, "
          f"tcpdump -d {theirs * 1e3:.1f} ms (process start included), ratio {theirs / ours:.1f}")


if __name__ == "__main__":
    main()
