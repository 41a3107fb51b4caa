"""Object load time: ``pybpf.elf.load_object`` against ``bpftool prog loadall``, in one run.

For each fixture of ``tests/fixtures`` (compiled here with clang-19 -target bpf -O2 -g) prints:

- ``spec``: reading the object into an ObjectSpec (ELF, BTF, maps, relocations, CO-RE against
  the running kernel's BTF) -- pybpf's equivalent of libbpf's bpf_object__open; the target is
  < 50 ms for an object with a few programs and maps;
- ``kernel``: the spec loaded into the kernel by pybpf (BTF, maps, programs: what
  ``bpftool prog loadall`` does after opening) -- needs bpf(2);
- ``bpftool``: ``bpftool prog loadall`` of the same object, pinned and removed (includes
  starting the bpftool process, which is part of what a user pays).

Times are medians of ``--repeat`` runs. The kernel's BTF is parsed once per process (as libbpf
caches it per object load); the first CO-RE load pays for it and is reported separately.

    python benchmarks/load.py [--repeat N]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pybpf.btf.parser import VMLINUX, load_vmlinux  # noqa: E402
from pybpf.elf import load_object  # noqa: E402
from pybpf.pytest_plugin import compile_c, find_clang  # noqa: E402

TARGET_MS = 50.0
LIBBPF_REFUSES = {"legacy_maps"}


def median_ms(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def kernel_load_ms(path: Path, repeat: int) -> float | None:
    try:
        from pybpf.elf.collection import KernelCollection
        from pybpf.kernel import features
    except ImportError:
        return None
    if features.bpf_unavailable_reason():
        return None

    def once():
        with KernelCollection(load_object(path)):
            pass
    return median_ms(once, repeat)


def bpftool_ms(path: Path, repeat: int) -> float | None:
    bpftool = shutil.which("bpftool")
    if not bpftool:
        return None

    def once():
        pin = Path("/sys/fs/bpf") / f"pybpf-bench-{uuid.uuid4().hex[:8]}"
        try:
            subprocess.run([bpftool, "prog", "loadall", str(path), str(pin)], check=True,
                           capture_output=True)
        finally:
            shutil.rmtree(pin, ignore_errors=True)
    try:
        return median_ms(once, repeat)
    except subprocess.CalledProcessError:
        return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if find_clang() is None:
        print("clang is not installed: nothing to load")
        return 1
    out_dir = Path(tempfile.mkdtemp(prefix="pybpf-bench-"))
    objects = {p.stem: compile_c(p, out_dir) for p in sorted((ROOT / "tests/fixtures").glob("*.c"))}

    start = time.perf_counter()
    try:
        load_vmlinux()
        vmlinux_ms = (time.perf_counter() - start) * 1000
        print(f"kernel BTF ({VMLINUX}) parsed once: {vmlinux_ms:.1f} ms")
    except Exception as exc:  # noqa: BLE001 - a benchmark reports, it does not fail
        print(f"kernel BTF unavailable: {exc}")

    header = f"{'object':<16} {'progs':>5} {'maps':>5} {'spec ms':>8} {'kernel ms':>10} " \
             f"{'bpftool ms':>11} {'ratio':>6}"
    print(header)
    print("-" * len(header))
    worst = 0.0
    for name, path in objects.items():
        spec = load_object(path)
        spec_ms = median_ms(lambda: load_object(path), args.repeat)
        worst = max(worst, spec_ms)
        k_ms = kernel_load_ms(path, args.repeat)
        b_ms = None if name in LIBBPF_REFUSES else bpftool_ms(path, args.repeat)
        ratio = f"{k_ms / b_ms:5.2f}x" if k_ms and b_ms else "     -"
        fmt = lambda v: f"{v:.2f}" if v is not None else "-"  # noqa: E731
        print(f"{name:<16} {len(spec.programs):>5} {len(spec.maps):>5} {spec_ms:>8.2f} "
              f"{fmt(k_ms):>10} {fmt(b_ms):>11} {ratio:>6}")
    print(f"\nslowest spec load: {worst:.2f} ms (target < {TARGET_MS:.0f} ms): "
          f"{'OK' if worst < TARGET_MS else 'TOO SLOW'}")
    print("ratio = pybpf kernel load / bpftool prog loadall")
    shutil.rmtree(out_dir, ignore_errors=True)
    return 0 if worst < TARGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())
