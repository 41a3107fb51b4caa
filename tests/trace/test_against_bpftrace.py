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
