"""Map operations per second from a program: pybpf's interpreter against the kernel.

Each program loops ``--ops`` times over a hash or array map of 256 entries, calling
``bpf_map_lookup_elem`` (and reading the value) or ``bpf_map_update_elem``. The same program
runs in :class:`pybpf.vm.Interpreter` (maps from :mod:`pybpf.maps`) and in the kernel through
BPF_PROG_TEST_RUN with ``repeat`` (JIT-compiled there); the script prints operations per second
for both and the kernel/pybpf ratio, all measured in this one run.

    python benchmarks/maps.py [--ops N] [--repeat N] [--kernel-repeat N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pybpf.asm import assemble  # noqa: E402
from pybpf.maps import create_map  # noqa: E402
from pybpf.vm import Interpreter  # noqa: E402

PACKET = bytes(64)

TEMPLATE = """
.map m {kind} key=4 value=8 max_entries=256
    r6 = 0
    r7 = {ops}
loop:
    r1 = r7
    r1 &= 255
    *(u32 *)(r10 - 4) = r1
    *(u64 *)(r10 - 16) = r7
    r1 = m ll
    r2 = r10
    r2 += -4
{op}
next:
    r7 -= 1
    if r7 != 0 goto loop
    r0 = r6
    exit
"""

LOOKUP = """    call bpf_map_lookup_elem
    if r0 == 0 goto next
    r1 = *(u64 *)(r0 + 0)
    r6 += r1"""

UPDATE = """    r3 = r10
    r3 += -16
    r4 = 0
    call bpf_map_update_elem
    r6 += r0"""

CASES = [("hash lookup", "hash", LOOKUP), ("hash update", "hash", UPDATE),
         ("array lookup", "array", LOOKUP), ("array update", "array", UPDATE)]


def fill(m) -> None:
    for i in range(256):
        m.update(i, i)


def pybpf_rate(program, repeat: int, ops: int) -> tuple[int, float]:
    m = create_map(program.maps[0])
    fill(m)
    vm = Interpreter(program, maps=[m])
    vm.run(PACKET)  # translate once, outside the timing
    start = time.perf_counter()
    r0 = 0
    for _ in range(repeat):
        r0 = vm.run(PACKET)
    elapsed = time.perf_counter() - start
    return r0, ops * repeat / elapsed


def kernel_rate(program, repeat: int, ops: int) -> tuple[int, float] | None:
    try:
        from pybpf import kernel

        if kernel.features.bpf_unavailable_reason():
            return None
        with kernel.KernelMap.create(program.maps[0]) as km:
            fill(km)
            with kernel.load_program(program, maps=[km]) as kp:
                result = kp.test_run(PACKET, repeat=repeat)
        return result.retval, ops / (result.duration_ns / 1e9)
    except Exception as exc:  # report, do not crash the benchmark
        print(f"  kernel: unavailable ({exc})")
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=1000, help="map operations per run")
    parser.add_argument("--repeat", type=int, default=20, help="pybpf runs")
    parser.add_argument("--kernel-repeat", type=int, default=2000, help="kernel test runs")
    args = parser.parse_args()
    print(f"{'case':<14} {'pybpf ops/s':>14} {'kernel ops/s':>14} {'kernel/pybpf':>13}")
    for name, kind, op in CASES:
        program = assemble(TEMPLATE.format(kind=kind, ops=args.ops, op=op))
        r0, ours = pybpf_rate(program, args.repeat, args.ops)
        theirs = kernel_rate(program, args.kernel_repeat, args.ops)
        if theirs is None:
            print(f"{name:<14} {ours:>14,.0f} {'-':>14} {'-':>13}")
            continue
        kr0, kernel_ops = theirs
        same = "" if (r0 & 0xFFFFFFFF) == kr0 else f"  (r0 differs: {r0:#x} vs {kr0:#x})"
        print(f"{name:<14} {ours:>14,.0f} {kernel_ops:>14,.0f} {kernel_ops / ours:>12.1f}x{same}")


if __name__ == "__main__":
    main()
