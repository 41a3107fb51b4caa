"""pybpf.kernel against libbpf (the C library bpftool is built on), measured in the same run.

1. Ring buffer consumption: a program emits a burst of 100,000 8-byte events into a 4 MiB ring
   buffer (BPF_PROG_TEST_RUN, repeat=100000); the consumer then drains it. Timed: the drain
   only, in events per second, for pybpf's :class:`RingBuffer` and libbpf's ``ring_buffer``
   (``ring_buffer__consume``, a C reader built here with the system's libbpf).
2. Object load time: each C fixture of ``tests/fixtures`` is loaded completely (BTF, maps,
   programs; what ``bpftool prog loadall`` does) and closed; best of N, pybpf's
   :func:`pybpf.kernel.load_collection` against libbpf's ``bpf_object__open_file`` +
   ``bpf_object__load``.

Prints each measurement and the ratio pybpf / libbpf (for rates above 1.0 pybpf is faster;
for times below 1.0 pybpf is faster). Run as root: ``python3 benchmarks/kernel.py``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pybpf import kernel  # noqa: E402
from pybpf.asm import assemble  # noqa: E402
from pybpf.kernel.ringbuf import RingBuffer  # noqa: E402

EVENTS = 100_000
RING = 4 << 20
LOAD_REPEAT = 5

PRODUCER = f"""
    .map events ringbuf key=0 value=0 max_entries={RING}
    .map seq array key=4 value=8 max_entries=1
    *(u32 *)(r10 - 4) = 0
    r2 = r10
    r2 += -4
    r1 = seq ll
    call 1
    if r0 == 0 goto out
    r1 = 1
    r1 = atomic_fetch_add((u64 *)(r0 + 0), r1)
    *(u64 *)(r10 - 16) = r1
    r1 = events ll
    r2 = r10
    r2 += -16
    r3 = 8
    r4 = 0
    call 130
out:
    r0 = 0
    exit
"""

LIBBPF_READER = r"""
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static long seen, bad;
static unsigned long long expect;

static int on_event(void *ctx, void *data, size_t size) {
    unsigned long long v = *(unsigned long long *)data;
    if (v != expect) bad++;
    expect = v + 1;
    seen++;
    return 0;
}

static double now(void) {
    struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argv[1][0] == 'r') {                       /* ring <map pin> <prog pin> <events> */
        int map = bpf_obj_get(argv[2]), prog = bpf_obj_get(argv[3]);
        long n = atol(argv[4]);
        struct ring_buffer *rb = ring_buffer__new(map, on_event, NULL, NULL);
        char pkt[14] = {0};
        LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = pkt, .data_size_in = 14, .repeat = n);
        if (!rb || bpf_prog_test_run_opts(prog, &opts)) { perror("setup"); return 1; }
        expect = 0; /* the sequence map is fresh for this run */
        double t = now();
        ring_buffer__consume(rb);
        t = now() - t;
        printf("%ld %ld %.9f\n", seen, bad, t);
        ring_buffer__free(rb);
        return 0;
    }
    /* load <object> <repeat> : best seconds of open + load + close */
    int repeat = atoi(argv[3]);
    double best = 1e9;
    libbpf_set_print(NULL);
    for (int i = 0; i < repeat; i++) {
        double t = now();
        struct bpf_object *obj = bpf_object__open_file(argv[2], NULL);
        if (!obj || bpf_object__load(obj)) { printf("fail\n"); return 1; }
        bpf_object__close(obj);
        t = now() - t;
        if (t < best) best = t;
    }
    printf("%.9f\n", best);
    return 0;
}
"""


def build_reader(tmp: str) -> str | None:
    cc = shutil.which("clang-19") or shutil.which("clang") or shutil.which("cc")
    if cc is None or not Path("/usr/include/bpf/libbpf.h").exists():
        return None
    src = Path(tmp) / "reader.c"
    src.write_text(LIBBPF_READER)
    out = Path(tmp) / "reader"
    proc = subprocess.run([cc, "-O2", "-o", str(out), str(src), "-lbpf"], capture_output=True,
                          text=True)
    return str(out) if proc.returncode == 0 else None


def ring_pybpf() -> float:
    with kernel.load_program(assemble(PRODUCER)) as prog, \
            RingBuffer(prog.map("events")) as ring:
        prog.test_run(bytes(14), repeat=EVENTS)
        t = time.perf_counter()
        records = ring.drain()
        elapsed = time.perf_counter() - t
        assert len(records) == EVENTS, len(records)
        assert int.from_bytes(records[-1], "little") == EVENTS - 1
    return EVENTS / elapsed


def ring_libbpf(reader: str) -> float:
    tag = f"pybpf_bench_{os.getpid()}"
    map_pin, prog_pin = f"/sys/fs/bpf/{tag}_map", f"/sys/fs/bpf/{tag}_prog"
    with kernel.load_program(assemble(PRODUCER)) as prog:
        prog.map("events").pin(map_pin)
        prog.pin(prog_pin)
        try:
            out = subprocess.run([reader, "ring", map_pin, prog_pin, str(EVENTS)],
                                 capture_output=True, text=True, check=True).stdout.split()
        finally:
            os.unlink(map_pin)
            os.unlink(prog_pin)
    seen, bad, elapsed = int(out[0]), int(out[1]), float(out[2])
    assert seen == EVENTS and bad == 0, (seen, bad)
    return EVENTS / elapsed


def load_pybpf(obj: Path) -> tuple[float, float]:
    """(best parse + load time, best load time of the already parsed ObjectSpec)."""
    from pybpf.elf import load_object
    best_all = best_load = float("inf")
    for _ in range(LOAD_REPEAT):
        t = time.perf_counter()
        spec = load_object(str(obj))
        t1 = time.perf_counter()
        with kernel.load_collection(spec):
            pass
        t2 = time.perf_counter()
        best_all = min(best_all, t2 - t)
        best_load = min(best_load, t2 - t1)
    return best_all, best_load


def load_libbpf(reader: str, obj: Path) -> float | None:
    out = subprocess.run([reader, "load", str(obj), str(LOAD_REPEAT)], capture_output=True,
                         text=True).stdout.strip()
    return None if out in ("", "fail") else float(out)


def main() -> None:
    reason = kernel.features.bpf_unavailable_reason()
    if reason:
        sys.exit(reason)
    with tempfile.TemporaryDirectory() as tmp:
        reader = build_reader(tmp)
        if reader is None:
            print("libbpf reader could not be built (needs clang and libbpf-dev): pybpf only")
        rate = ring_pybpf()
        print(f"ring buffer drain, {EVENTS} events:  pybpf {rate / 1e6:8.2f} M events/s", end="")
        if reader:
            ref = ring_libbpf(reader)
            print(f"  libbpf {ref / 1e6:8.2f} M events/s  ratio {rate / ref:6.3f}")
        else:
            print()
        from pybpf.pytest_plugin import compile_c
        fixtures = sorted((ROOT / "tests" / "fixtures").glob("*.c"))
        total_py = total_load = total_ref = 0.0
        print(f"object load (best of {LOAD_REPEAT}; 'parse+load' includes reading the ELF "
              "file, 'load' is the kernel part alone):")
        for src in fixtures:
            obj = compile_c(src, Path(tmp))
            mine, load_only = load_pybpf(obj)
            ref = load_libbpf(reader, obj) if reader else None
            if ref is None:
                print(f"  {src.stem:16} pybpf parse+load {mine * 1e3:7.2f} ms  load "
                      f"{load_only * 1e3:6.2f} ms  libbpf (refuses it)")
                continue
            total_py += mine
            total_load += load_only
            total_ref += ref
            print(f"  {src.stem:16} pybpf parse+load {mine * 1e3:7.2f} ms  load "
                  f"{load_only * 1e3:6.2f} ms  libbpf {ref * 1e3:6.2f} ms  "
                  f"ratio {mine / ref:6.2f} / {load_only / ref:5.2f}")
        if total_ref:
            print(f"  {'all':16} pybpf parse+load {total_py * 1e3:7.2f} ms  load "
                  f"{total_load * 1e3:6.2f} ms  libbpf {total_ref * 1e3:6.2f} ms  "
                  f"ratio {total_py / total_ref:6.2f} / {total_load / total_ref:5.2f}")

if __name__ == "__main__":
    main()
