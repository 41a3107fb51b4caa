"""bpftrace's own tools (``/usr/sbin/*.bt`` from the bpftrace package) and the language they
use -- ``1e6`` literals, ``print(@map, top, div)``, ``join()``, uprobe targets named by
library, kernel structs through BTF, ``#ifndef BPFTRACE_HAVE_BTF`` -- run under pybpf trace and
print what bpftrace 0.17 prints on the same workload."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.kernel,
              pytest.mark.skipif(shutil.which("bpftrace") is None,
                                 reason="bpftrace is not installed")]

TOOLS = Path("/usr/sbin")


def _ours(args: list[str], tmp_path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYBPF_TRACE_CACHE": str(tmp_path / "cache")}
    return subprocess.run([sys.executable, "-m", "pybpf", "trace", *args], capture_output=True,
                          text=True, timeout=120, env=env)


def _theirs(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(["bpftrace", *args], capture_output=True, text=True, timeout=120)


def _both(args: list[str], tmp_path) -> tuple[str, str]:
    """stdout of each, pybpf run twice (compiled, then from its cached plan: the same)."""
    first, ours, theirs = _ours(args, tmp_path), _ours(args, tmp_path), _theirs(args)
    assert first.returncode == 0 and ours.returncode == 0, ours.stderr
    assert first.stdout.splitlines()[0] == ours.stdout.splitlines()[0]
    assert "Attaching" in theirs.stdout, theirs.stderr
    return ours.stdout, theirs.stdout


def _nap_workload(tmp_path) -> str:
    """python3 calling nanosleep(2) itself (libc's sleep functions use clock_nanosleep)."""
    script = tmp_path / "nap.py"
    script.write_text(
        "import ctypes\n"
        "class TS(ctypes.Structure):\n"
        "    _fields_ = [('s', ctypes.c_long), ('ns', ctypes.c_long)]\n"
        "libc = ctypes.CDLL(None)\n"
        "for ns in (123456789, 5000000, 1000):\n"
        "    libc.syscall(35, ctypes.byref(TS(0, ns)), None)\n")
    return f"/usr/bin/python3 {script}"


def test_literals_and_print_with_top_and_div_print_what_bpftrace_prints(tmp_path):
    script = (
        "BEGIN { @a[1] = count(); @a[2] = count(); @a[2] = count(); @a[3] = count();"
        " @a[3] = count(); @a[3] = count(); @s[1] = sum(1e2); @s[2] = sum(250);"
        " @h[1] = hist(5); @h[2] = hist(5); @h[2] = hist(100); @v[1] = avg(10);"
        " @v[2] = avg(35); @t[1] = stats(10); @t[2] = stats(35); @i[1] = 5; @i[2] = 17;"
        " @z = count(); @big = 2_000 * 1e6;"
        " print(@a, 2); print(@s, 0, 10); print(@a, 1, 2); print(@h, 1); print(@h, 0, 2);"
        " print(@v, 1, 3); print(@t, 1, 3); print(@i, 1, 4); print(@z, 1, 2); print(@z, 0, 0);"
        " print(@big); clear(@a); clear(@s); clear(@h); clear(@v); clear(@t); clear(@i);"
        " clear(@z); clear(@big); exit(); }")
    ours, theirs = _both(["-e", script], tmp_path)
    assert ours == theirs
    assert "@a[3]: 1\n" in ours and "@big: 2000000000\n" in ours


def test_join_prints_an_argv_as_bpftrace_does(tmp_path):
    """16 strings at most, each cut at 1023 bytes, with the default and a given delimiter."""
    work = tmp_path / "work.sh"
    work.write_text("#!/bin/sh\n/bin/echo " + "x" * 1500 + " " +
                    " ".join(str(i) for i in range(1, 19)) + " >/dev/null\n"
                    "/bin/echo a b >/dev/null\n")
    script = ('tracepoint:syscalls:sys_enter_execve /str(args->filename) == "/bin/echo"/ '
              '{ join(args->argv); join(args->argv, ","); }')
    ours, theirs = _both(["-e", script, "-c", f"/bin/sh {work}"], tmp_path)
    assert ours == theirs
    lines = ours.splitlines()
    assert lines[1] == "/bin/echo " + "x" * 1023 + " " + " ".join(map(str, range(1, 15)))
    assert lines[3:5] == ["/bin/echo a b", "/bin/echo,a,b"]


def test_kernel_struct_members_read_through_btf_as_bpftrace_reads_them(tmp_path):
    script = (
        "tracepoint:syscalls:sys_enter_nanosleep /comm == \"python3\"/ {"
        " $task = (struct task_struct *)curtask;"
        " printf(\"%d %d %s %d %d.%09d %d\\n\", $task->pid == pid, $task->tgid == pid,"
        " $task->comm, $task->se.load.weight, args->rqtp->tv_sec, args->rqtp->tv_nsec,"
        " $task->real_parent->pid > 0);"
        " @[$task->comm] = count(); }")
    ours, theirs = _both(["-e", script, "-c", _nap_workload(tmp_path)], tmp_path)
    assert ours == theirs
    assert "1 1 python3 1048576 0.123456789 1\n" in ours


def test_uprobe_targets_named_by_library_resolve_as_bpftrace_resolves_them(tmp_path):
    work = tmp_path / "gh.py"
    work.write_text("import socket\nsocket.getaddrinfo('localhost', 80)\n")
    script = ('uprobe:libc:getaddrinfo /comm == "python3"/ { printf("%s\\n", probe); } '
              'uprobe:libc:no_such_function_here { printf("never\\n"); }')
    ours, theirs = _both(["-e", script, "-c", f"/usr/bin/python3 {work}"], tmp_path)
    assert ours == theirs
    assert re.search(r"^uprobe:/\S+/libc\.so\.6:getaddrinfo$", ours, re.M)
    assert ours.startswith("Attaching 1 probe...")   # the missing function attaches nothing


def test_a_script_whose_uprobes_all_miss_their_functions_has_no_probes(tmp_path):
    proc = _ours(["-e", "uprobe:/bin/bash:no_such_fn* { }"], tmp_path)
    assert proc.returncode == 1 and "no probes to attach" in proc.stderr
    assert "Traceback" not in proc.stderr
    theirs = _theirs(["-e", "uprobe:/bin/bash:no_such_fn* { }"])
    assert "No probes to attach" in theirs.stdout and theirs.returncode == 1


def test_a_library_target_that_does_not_resolve_is_refused_at_its_line(tmp_path):
    proc = _ours(["-e", "BEGIN { }\nuprobe:libc.so.6:exit { }"], tmp_path)
    assert proc.returncode == 1 and "<stdin>:2:1" in proc.stderr
    assert "uprobe target file 'libc.so.6' does not exist" in proc.stderr
    assert "does not exist" in _theirs(["-e", "uprobe:libc.so.6:exit { }"]).stderr


def _normalised(text: str, columns: int, header: int = 3) -> list[str]:
    """The tool's lines after its ``header`` lines, without the leading ``columns`` fields
    (times, pids: they differ between any two runs)."""
    lines = text.splitlines()
    return [" ".join(l.split()[columns:]) for l in lines[header:] if l.strip()]


@pytest.mark.skipif(not (TOOLS / "naptime.bt").exists(), reason="bpftrace's tools are missing")
def test_naptime_prints_what_bpftrace_prints(tmp_path):
    ours, theirs = _both([str(TOOLS / "naptime.bt"), "-c", _nap_workload(tmp_path)], tmp_path)
    assert ours.splitlines()[:3] == theirs.splitlines()[:3]
    # TIME PPID PCOMM PID: the parent is the tool itself; only the workload's lines
    mine = [l for l in _normalised(ours, 4) if l.startswith("python3 ")]
    assert mine == [l for l in _normalised(theirs, 4) if l.startswith("python3 ")]
    assert mine == ["python3 0.123", "python3 0.005", "python3 0.000"]


@pytest.mark.skipif(not (TOOLS / "execsnoop.bt").exists(), reason="bpftrace's tools are missing")
def test_execsnoop_prints_what_bpftrace_prints(tmp_path):
    # the machine may run other programs meanwhile: only the workload's lines are compared
    work = tmp_path / "ex.sh"
    work.write_text("#!/bin/sh\n/bin/echo pbt-exec a b >/dev/null\n/bin/true pbt-exec x\n")
    ours, theirs = _both([str(TOOLS / "execsnoop.bt"), "-c", f"/bin/sh {work}"], tmp_path)
    mine = [l for l in _normalised(ours, 2, 2) if "pbt-exec" in l or str(work) in l]
    assert mine == [l for l in _normalised(theirs, 2, 2) if "pbt-exec" in l or str(work) in l]
    assert mine == [f"/bin/sh {work}", "/bin/echo pbt-exec a b", "/bin/true pbt-exec x"]


@pytest.mark.skipif(not (TOOLS / "gethostlatency.bt").exists(),
                    reason="bpftrace's tools are missing")
def test_gethostlatency_prints_what_bpftrace_prints(tmp_path):
    work = tmp_path / "gh.py"
    work.write_text("import socket\nsocket.getaddrinfo('localhost', 80)\n"
                    "socket.gethostbyname('localhost')\n")
    ours, theirs = _both([str(TOOLS / "gethostlatency.bt"), "-c", f"/usr/bin/python3 {work}"],
                         tmp_path)
    # TIME PID COMM LATms HOST: COMM and HOST of the workload's lines (the latency may vary)
    mine = [(l.split()[2], l.split()[-1]) for l in _normalised(ours, 0) if " python3 " in l]
    assert mine == [(l.split()[2], l.split()[-1]) for l in _normalised(theirs, 0)
                    if " python3 " in l]
    assert mine == [("python3", "localhost"), ("python3", "localhost")]
    assert ours.splitlines()[0] == theirs.splitlines()[0] == "Attaching 7 probes..."


@pytest.mark.parametrize("tool", ["ssllatency", "sslsnoop", "threadsnoop", "syscount",
                                  "bashreadline"])
def test_bpftrace_tools_attach_the_probes_bpftrace_attaches(tool, tmp_path):
    """Library targets resolved, functions a library lacks skipped: the same probe count."""
    if not (TOOLS / f"{tool}.bt").exists():
        pytest.skip("bpftrace's tools are missing")
    ours = _ours([str(TOOLS / f"{tool}.bt"), "-c", "/bin/true"], tmp_path)
    theirs = _theirs([str(TOOLS / f"{tool}.bt"), "-c", "/bin/true"])
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout.splitlines()[:2] == theirs.stdout.splitlines()[:2]


@pytest.mark.skipif(not (TOOLS / "runqlen.bt").exists(), reason="bpftrace's tools are missing")
def test_a_struct_member_the_kernel_lacks_is_refused_at_its_line_as_bpftrace_refuses_it(
        tmp_path):
    """runqlen.bt reads cfs_rq.nr_running, which Linux 6.14 renamed: both tools refuse it."""
    theirs = _theirs([str(TOOLS / "runqlen.bt")])
    if "nr_running" not in theirs.stderr:
        pytest.skip("this kernel's cfs_rq still has nr_running")
    ours = _ours([str(TOOLS / "runqlen.bt")], tmp_path)
    assert ours.returncode == 1 and "Traceback" not in ours.stderr
    assert "runqlen.bt:37:" in ours.stderr and "struct cfs_rq has no member 'nr_running'" \
        in ours.stderr


def test_ntop_bswap_and_constants_print_what_bpftrace_prints(tmp_path):
    """IPv4 from an integer and IPv6 from 16 kernel bytes, bswap at the operand's width,
    a #define, an enumerator of the kernel's BTF."""
    script = (
        "#define MYPORT 0x1f90\n"
        "tracepoint:syscalls:sys_enter_nanosleep /comm == \"python3\"/ {"
        " $t = (struct task_struct *)curtask;"
        " printf(\"%s %s %s %s|%d %d|%d %d %d\\n\", ntop(0x0100007f), ntop(2, 0x0a0b0c0d),"
        " ntop(10, $t->comm), ntop($t->comm), TCP_ESTABLISHED, MYPORT, bswap((uint16)MYPORT),"
        " bswap((uint32)1), bswap(args->__syscall_nr));"
        " @[ntop(0x0100007f)] = count(); }")
    ours, theirs = _both(["-e", script, "-c", _nap_workload(tmp_path)], tmp_path)
    assert ours == theirs
    assert "127.0.0.1 13.12.11.10 7079:7468:6f6e:3300::" in ours
    assert "|1 8080|36895 16777216 587202560\n" in ours and "@[127.0.0.1]: 3" in ours


def test_macros_of_included_headers_are_the_headers_values(tmp_path):
    if shutil.which("clang") is None and shutil.which("clang-19") is None:
        pytest.skip("clang reads the headers' macros")
    script = "#include <sys/socket.h>\nBEGIN { printf(\"%d %d\\n\", AF_INET, AF_INET6); exit(); }"
    ours, theirs = _both(["-e", script], tmp_path)
    assert ours == theirs and "2 10\n" in ours


def test_indexing_pointers_and_kernel_arrays_reads_what_bpftrace_reads(tmp_path):
    """``args->argv[i]`` (a user array of pointers, up to its NULL) and an array member of a
    kernel struct (``task_struct.pid_links[1]``), with the predicate's and the printf's
    strings sharing the 512-byte stack."""
    work = tmp_path / "work.sh"
    work.write_text("#!/bin/sh\n/bin/echo hello world >/dev/null\n")
    script = (
        'tracepoint:syscalls:sys_enter_execve /str(args->filename) == "/bin/echo"/ {'
        ' printf("%s %s %s %d|", str(args->argv[0]), str(args->argv[1]), str(args->argv[2]),'
        ' args->argv[3] == 0); $t = (struct task_struct *)curtask;'
        ' printf("%d %d\\n", $t->pid_links[0].next == 0, $t->pid_links[1].pprev != 0);'
        ' @[str(args->argv[1])] = count(); }')
    ours, theirs = _both(["-e", script, "-c", f"/bin/sh {work}"], tmp_path)
    assert ours == theirs
    assert "/bin/echo hello world 1|1 1\n" in ours and "@[hello]: 1" in ours


def test_str_with_a_length_known_at_run_time_reads_what_bpftrace_reads(tmp_path):
    """``str(args->buf, args->count)``: four strings of one printf read straight into its
    event (copies of them would not fit the 512-byte stack beside it)."""
    writer = tmp_path / "pywr"
    writer.symlink_to("/usr/bin/python3")
    work = tmp_path / "wr.py"
    work.write_text('import os\nfd = os.open("/dev/null", os.O_WRONLY)\n'
                    'os.write(fd, b"hello world\\n")\nos.write(fd, b"x" * 100)\n')
    script = ('tracepoint:syscalls:sys_enter_write /comm == "pywr"/ {'
              ' printf("[%s] [%s] [%s] [%s]\\n", str(args->buf, args->count), str(args->buf, 3),'
              ' str(args->buf, 0), str(args->buf, args->count - 2));'
              ' @[str(args->buf, 2)] = sum(args->count); }')
    ours, theirs = _both(["-e", script, "-c", f"{writer} {work}"], tmp_path)
    assert ours == theirs
    assert "] [hel] [] [hello worl]\n" in ours and "[" + "x" * 63 + "] [xxx]" in ours


def test_strncmp_sizeof_cat_and_helper_builtins_print_what_bpftrace_prints(tmp_path):
    import tempfile
    fd, name = tempfile.mkstemp(prefix="pbt-cat-", dir="/tmp")  # bpftrace: paths of 63 bytes
    os.write(fd, b"first line\nsecond\n")
    os.close(fd)
    data = Path(name)
    script = (
        'BEGIN { printf("%d %d %d %d %d\\n", strncmp("abc", "abd", 2), strncmp("abc", "abd", 3),'
        ' strncmp("abc", "abc", 10), strncmp("ab", "abc", 3), strncmp("ab", "xy", 0));'
        ' printf("%d %d\\n", numaid, cgroup > 0);'
        ' printf("%d %d %d %d %d\\n", sizeof(uint32), sizeof(struct task_struct), sizeof(comm),'
        ' sizeof(int8), sizeof(union bpf_attr));'
        f' cat("{data}"); cat("/tmp/%s", "{data.name}"); exit(); }}')
    try:
        ours, theirs = _both(["-e", script], tmp_path)
    finally:
        data.unlink()
    assert ours == theirs
    assert "0 1 0 1 0\n" in ours and ours.count("first line\nsecond\n") == 2


def test_strftime_and_username_print_what_bpftrace_prints(tmp_path):
    """Minutes and dates only: the two tools run a moment apart."""
    script = ('BEGIN { printf("[%s] [%s] [%s]\\n", strftime("%Y-%m-%d %H:%M", nsecs),'
              ' strftime("%d", nsecs), username); @[username] = count();'
              ' @t = strftime("%Y", nsecs); exit(); }')
    ours, theirs = _both(["-e", script], tmp_path)
    import datetime
    import pwd
    now = datetime.datetime.now()
    assert f"[{now:%Y-%m-%d %H:%M}]" in ours or f"[{now:%Y-%m-%d}" in ours
    if ours.splitlines()[1][:17] == theirs.splitlines()[1][:17]:   # the same minute
        assert ours == theirs
    assert f"@[{pwd.getpwuid(os.getuid()).pw_name}]: 1" in ours and f"@t: {now:%Y}" in ours
