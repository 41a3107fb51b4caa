"""pybpf trace against bpftrace 0.17 on the same deterministic workloads.

Each script runs under both tools with ``-c WORKLOAD``; the maps they print at exit must be the
same (entries with equal values may come in either order, so lines are compared as sets, and
histogram blocks as whole blocks).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import pytest

pytestmark = [pytest.mark.kernel,
              pytest.mark.skipif(shutil.which("bpftrace") is None,
                                 reason="bpftrace is not installed")]


def _maps_section(text: str) -> list[str]:
    lines = text.splitlines()
    start = next(i for i, l in enumerate(lines) if l.startswith("Attaching"))
    return sorted(l for l in lines[start + 1:] if l.strip())


def _run_both(script: str, workload: list[str], tmp_path) -> tuple[list[str], list[str]]:
    path = tmp_path / "s.bt"
    path.write_text(script)
    if workload[0] == "/bin/sh":
        # bpftrace splits -c on spaces without shell quoting: run shell work from a file
        shell = tmp_path / "work.sh"
        shell.write_text("#!/bin/sh\n" + workload[2].strip("'") + "\n")
        shell.chmod(0o755)
        workload = ["/bin/sh", str(shell)]
    cmd = " ".join(workload)
    # twice: compiled (and cached) the first time, from the cached plan the second
    env = {**os.environ, "PYBPF_TRACE_CACHE": str(tmp_path / "cache"),
           "PYBPF_TRACE_TIMINGS": "1"}
    runs = [subprocess.run([sys.executable, "-m", "pybpf", "trace", str(path), "-c", cmd],
                           capture_output=True, text=True, timeout=120, env=env)
            for _ in range(2)]
    for run in runs:
        assert run.returncode == 0, run.stderr
    assert "cache-hit" not in runs[0].stderr and "cache-hit" in runs[1].stderr
    ours = runs[1]
    assert _maps_section(runs[0].stdout) == _maps_section(ours.stdout)
    theirs = subprocess.run(["bpftrace", str(path), "-c", cmd], capture_output=True,
                            text=True, timeout=120, env={**os.environ, "BPFTRACE_NO_CPP_DEMANGLE": "1"})
    assert "Attaching" in theirs.stdout, theirs.stderr
    return _maps_section(ours.stdout), _maps_section(theirs.stdout)


def test_open_counts_equal_bpftrace(tmp_path):
    import tempfile
    fd, name = tempfile.mkstemp(prefix="pybpf-tr-", dir="/tmp")
    os.close(fd)
    target = name
    script = textwrap.dedent(f"""
        tracepoint:syscalls:sys_enter_openat /str(args->filename) == "{target}"/
        {{ @opens[comm] = count(); @flags = sum(args->flags); @n++; }}
    """)
    work = ["/bin/sh", "-c", f"'for i in 1 2 3 4 5 6 7; do : < {target}; done'"]
    ours, theirs = _run_both(script, work, tmp_path)
    assert ours == theirs
    assert "@opens[sh]: 7" in ours
    os.unlink(name)


def test_read_size_histograms_equal_bpftrace(tmp_path):
    script = textwrap.dedent("""
        tracepoint:syscalls:sys_exit_read /comm == "dd"/
        { @h = hist(args->ret); @l = lhist(args->ret, 0, 4096, 512); @s = stats(args->ret);
          @m = max(args->ret); @lo = min(args->ret); @a = avg(args->ret); }
    """)
    work = ["/bin/sh", "-c", "'dd if=/dev/zero of=/dev/null bs=1000 count=9 2>/dev/null;"
            " dd if=/dev/zero of=/dev/null bs=3 count=4 2>/dev/null'"]
    ours, theirs = _run_both(script, work, tmp_path)
    assert ours == theirs
    assert any(l.startswith("@s: count") for l in ours)


def test_exec_counts_with_string_keys_equal_bpftrace(tmp_path):
    # the machine runs other work too: count only the workload's own programs
    script = ('tracepoint:sched:sched_process_exec /comm == "true" || comm == "printf"/ '
              '{ @[comm, args->pid > 0] = count(); @pids = hist(args->pid > 0); }')
    work = ["/bin/sh", "-c", "'/bin/true; /bin/true; /usr/bin/printf x >/dev/null; /bin/true'"]
    ours, theirs = _run_both(script, work, tmp_path)
    assert ours == theirs
    assert "@[true, 1]: 3" in ours


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed")
def test_uprobe_counts_calls_of_a_test_binary_like_bpftrace(tmp_path):
    src = tmp_path / "ticker.c"
    src.write_text(textwrap.dedent("""
        #include <stdlib.h>
        __attribute__((noinline)) long tick(long n) { __asm__ volatile("" ::: "memory"); return n * 2; }
        int main(int argc, char **argv) { long t = 0; for (long i = 0; i < atol(argv[1]); i++) t += tick(i); return t == 0; }
    """))
    binary = tmp_path / "ticker"
    subprocess.run(["gcc", "-O1", "-o", str(binary), str(src)], check=True)
    script = f"uprobe:{binary}:tick {{ @calls = count(); @total = sum(arg0); @h = hist(arg0); }}"
    ours, theirs = _run_both(script, [str(binary), "37"], tmp_path)
    assert ours == theirs
    assert "@calls: 37" in ours and f"@total: {sum(range(37))}" in ours


def _private_python(tmp_path, name: str = "pbt-getpid"):
    """/usr/bin/python3 under a name of its own: the workload's comm, which no other python3
    process on the machine (pytest itself, other jobs) shares."""
    link = tmp_path / name
    link.symlink_to("/usr/bin/python3")
    return link


def test_kernel_stacks_and_symbols_equal_bpftrace(tmp_path):
    work = tmp_path / "gp.py"
    work.write_text("import os\nfor i in range(3):\n    os.getpid()\n")
    script = ('tracepoint:syscalls:sys_enter_getpid /comm == "pbt-getpid"/ '
              '{ @k[kstack] = count(); @k2[kstack(2)] = count(); '
              '@s = ksym(0xffffffff81000000); @z = usym(0); '
              'printf("%s %s\\n", ksym(0), ksym(1)); }')
    ours, theirs = _run_both(script, [str(_private_python(tmp_path)), str(work)], tmp_path)
    assert ours == theirs
    assert "@s: _text" in ours and any(l.startswith("    ") for l in ours)


def test_aggregations_spread_over_cpus_merge_like_bpftrace(tmp_path):
    # aggregations live in per-CPU maps (as bpftrace keeps them); the workload runs on every
    # CPU in turn, a different number of times on each, so printing must merge the CPUs'
    # slots: counts, sums and buckets added, min/max over the CPUs that have a value,
    # avg/stats from the summed (count, total) pairs
    work = tmp_path / "spread.py"
    work.write_text(textwrap.dedent("""
        import os
        for i, cpu in enumerate(sorted(os.sched_getaffinity(0))):
            os.sched_setaffinity(0, {cpu})
            for _ in range(3 * (i + 1)):
                os.getppid()
    """))
    script = ('tracepoint:syscalls:sys_enter_getppid /comm == "pbt-percpu"/ '
              '{ @c = count(); @k[cpu] = count(); @s = sum(cpu + 1); @mi = min(cpu + 5); '
              '@ma = max(cpu + 5); @neg = max(0 - cpu - 1); @a = avg(cpu * 10 + 1); '
              '@st = stats(cpu * 10 + 1); @h = hist(cpu + 1); @l = lhist(cpu, 0, 8, 1); }')
    python = _private_python(tmp_path, "pbt-percpu")
    ours, theirs = _run_both(script, [str(python), str(work)], tmp_path)
    ncpus = len(os.sched_getaffinity(0))
    assert f"@c: {sum(3 * (i + 1) for i in range(ncpus))}" in ours
    # bpftrace 0.17 prints a max() map whose maximum is negative as an empty line (even on
    # one CPU: `BEGIN { @m = max(-1); }`): pybpf prints the maximum, over the CPUs that have
    # a value (not the zero-filled slots of the others); every other line must be bpftrace's
    assert "@neg: -1" in ours
    assert [l for l in ours if not l.startswith("@neg")] == theirs


def _exact_both(script: str, tmp_path) -> tuple[str, str]:
    """Both tools' whole output (blank lines included) of a script that ends by itself."""
    path = tmp_path / "e.bt"
    path.write_text(script)
    env = {**os.environ, "PYBPF_TRACE_CACHE": "0"}
    ours = subprocess.run([sys.executable, "-m", "pybpf", "trace", str(path)],
                          capture_output=True, text=True, timeout=120, env=env)
    assert ours.returncode == 0, ours.stderr
    theirs = subprocess.run(["bpftrace", str(path)], capture_output=True, text=True,
                            timeout=120)
    assert "Attaching" in theirs.stdout, theirs.stderr
    return ours.stdout, theirs.stdout


@pytest.mark.parametrize("script", [
    # a count() without keys is a one-slot per-CPU array: it exists before any event...
    'tracepoint:syscalls:sys_enter_getppid /0/ { @c = count(); } BEGIN { exit(); }',
    # ...and clear() or delete() zero it, where they remove the elements of other maps
    'BEGIN { @c = count(); @d = count(); @x = sum(3); @y[1] = sum(2); clear(@c); delete(@d);'
    ' delete(@x); delete(@y[1]); print(@c); print(@d); print(@x); exit(); }',
    'BEGIN { @c = count(); @c = count(); print(@c); clear(@c); print(@c); @c = count();'
    ' print(@c); zero(@c); print(@c); exit(); }',
    # maps without entries print an empty line (avg and stats two), at exit and by print()
    'tracepoint:syscalls:sys_enter_getppid /0/ { @x[pid] = count(); @s = sum(1); @m = min(1);'
    ' @a = avg(1); @st = stats(1); @h = hist(1); @l = lhist(1, 0, 10, 1); @i = 1; }'
    ' BEGIN { print(@a); print(@h); exit(); }',
    # an average is a C division: toward zero
    'BEGIN { @a = avg(-7); @a = avg(0); @s = stats(-7); @s = stats(0); @z = sum(5); zero(@z);'
    ' @m = max(4); zero(@m); exit(); }',
], ids=["unfired-count", "clear-delete", "clear-zero-print", "empty-maps", "avg-zero"])
def test_exit_output_of_zeroed_cleared_and_empty_maps_is_bpftraces(script, tmp_path):
    ours, theirs = _exact_both(script, tmp_path)
    assert ours == theirs


def _bpftrace_map_types(path, tmp_path) -> dict[str, str]:
    """The maps a running bpftrace made for a script: name (``AT_`` dropped) -> type, read
    from its file descriptors (/proc fdinfo gives the map ids, the kernel the rest)."""
    import time

    from pybpf.kernel import KernelMap

    proc = subprocess.Popen(["bpftrace", str(path)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout.readline().startswith("Attaching")
        time.sleep(0.3)  # the message comes before the attaching; the maps exist by now
        found = {}
        for fd in os.listdir(f"/proc/{proc.pid}/fdinfo"):
            try:
                with open(f"/proc/{proc.pid}/fdinfo/{fd}") as fh:
                    fields = dict(l.split(":\t", 1) for l in fh.read().splitlines() if ":\t" in l)
            except OSError:
                continue
            if "map_id" in fields:
                with KernelMap.from_id(int(fields["map_id"])) as km:
                    if km.name.startswith("AT_"):
                        found[km.name[3:]] = km.type
        return found
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_map_types_are_the_ones_bpftrace_creates(tmp_path):
    from pybpf.trace.build import compile_script

    script = ('tracepoint:syscalls:sys_enter_getppid { @c = count(); @k[pid] = count(); '
              '@s = sum(1); @mi = min(1); @ma = max(1); @a = avg(1); @st = stats(1); '
              '@h = hist(1); @l = lhist(1, 0, 10, 1); @i = 1; @n[pid] = comm; }')
    path = tmp_path / "types.bt"
    path.write_text(script)
    theirs = _bpftrace_map_types(path, tmp_path)
    ours = {s.name: s.type for s in compile_script(script, str(path)).map_specs[3:]}
    assert ours == theirs
    assert ours["c"] == "percpu_array" and ours["s"] == "percpu_hash"
