"""pybpf trace's runtime in the kernel: type errors, -d, tools, and clean detaching."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pybpf.trace import TraceSyntaxError, compile_script

TOOLS = Path(__file__).resolve().parents[2] / "pybpf" / "trace" / "tools"


def _pybpf(*args, **kw):
    return subprocess.run([sys.executable, "-m", "pybpf", *args], capture_output=True,
                          text=True, timeout=120, **kw)


@pytest.mark.parametrize("source, line, col, words", [
    ('BEGIN { @x = count(); @x = 5; }', 1, 23, "holds count values"),
    ('BEGIN { printf("%d %d\\n", 1); }', 1, 9, "2 conversions but 1 argument"),
    ('BEGIN { printf("%d\\n", "s"); }', 1, 9, "needs an integer"),
    ('BEGIN { $x = 1; $x = "s"; }', 1, 17, "$x holds int64"),
    ('BEGIN { @m[1] = 1; @m["a"] = 2; }', 1, 20, "different key types"),
    ('BEGIN { print($y); }', 1, 15, "used before it is assigned"),
    ('BEGIN { @h = lhist(1, 10, 0, 1); }', 1, 14, "max must be above min"),
    ('BEGIN { $x = arg0; }', 1, 14, "only available in kprobe/uprobe"),
    ('BEGIN { @x = sum(); }', 1, 14, "sum() takes 1 argument"),
    ('tracepoint:syscalls:sys_enter_openat { @ = args->nosuchfield; }', 1, 50,
     "has no field 'nosuchfield'"),
])
def test_type_errors_point_at_the_script(source, line, col, words):
    with pytest.raises(TraceSyntaxError) as info:
        compile_script(source, "t.bt")
    assert (info.value.line, info.value.col) == (line, col), str(info.value)
    assert words in str(info.value)


def test_cli_reports_script_errors_in_one_clear_message_without_traceback(tmp_path):
    bad = tmp_path / "bad.bt"
    bad.write_text("BEGIN {\n  @x = 1 +;\n}\n")
    proc = _pybpf("trace", str(bad))
    assert proc.returncode != 0
    assert f"{bad}:2:11: expected an expression" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_dash_d_shows_ir_and_bpf_assembly():
    proc = _pybpf("trace", "-d", "--json", "-e",
                  "tracepoint:syscalls:sys_enter_getpid { @c[comm] = count(); }")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert 'define i64 @"pbt_0"' in out["ir"]
    (prog,) = out["programs"].values()
    assert prog["type"] == "tracepoint"
    assert "call 0x1" in prog["asm"] or "call 1" in prog["asm"]  # bpf_map_lookup_elem


def _bpf_objects() -> int:
    """How many of pybpf trace's programs (named pbt_N) the kernel holds now (other tests on
    the machine may load programs of their own at the same time; they are not counted)."""
    from pybpf.errors import KernelError
    from pybpf.kernel import prog, syscall
    count = 0
    for pid in prog.iter_prog_ids():
        try:
            fd = prog.prog_from_id(pid)
        except KernelError:  # gone meanwhile
            continue
        try:
            count += prog.prog_info(fd).name.startswith("pbt_")
        finally:
            syscall.close(fd)
    return count


@pytest.mark.kernel
def test_nothing_stays_loaded_or_attached_after_exit():
    before = _bpf_objects()
    proc = _pybpf("trace", "-e", "tracepoint:syscalls:sys_enter_getpid { @n = count(); } "
                  "interval:ms:200 { exit(); }")
    assert proc.returncode == 0, proc.stderr
    assert "Attaching 2 probes..." in proc.stdout
    assert _bpf_objects() == before


@pytest.mark.kernel
def test_ctrl_c_prints_maps_and_detaches():
    before = _bpf_objects()
    child = subprocess.Popen([sys.executable, "-m", "pybpf", "trace", "-e",
                              "tracepoint:raw_syscalls:sys_enter { @calls = count(); }"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        line = child.stdout.readline()
        assert line.startswith("Attaching"), line + child.stderr.read()
        assert time.monotonic() < deadline
        time.sleep(0.3)
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 0, err
    assert "@calls: " in out and "Traceback" not in err
    assert _bpf_objects() == before


@pytest.mark.kernel
@pytest.mark.parametrize("tool, header", [
    ("opensnoop.bt", "PID    COMM               FD ERR PATH"),
    ("execsnoop.bt", "TIME(ms)   PID    ARGS"),
    ("statsnoop.bt", "PID    COMM             ERR PATH"),
    ("killsnoop.bt", "PID    COMM              SIG TPID   RESULT"),
    ("syscount.bt", "Counting syscalls"),
    ("readsize.bt", None),
    ("pidpersec.bt", "Tracing new processes"),
    ("bashreadline.bt", "PID    COMMAND"),
])
def test_shipped_tools_run_and_see_their_workload(tool, header, tmp_path):
    import tempfile
    # a short path: bpftrace's strings (and so the tools' output) stop at 64 bytes
    fd, name = tempfile.mkstemp(prefix="pybpf-tool-", dir="/tmp")
    os.write(fd, b"x")
    os.close(fd)
    target = Path(name)
    work = tmp_path / "work.sh"
    work.write_text(f"#!/bin/sh\ncat {target} >/dev/null\nstat {target} >/dev/null\n"
                    "kill -0 $$\n/bin/true\nsleep 1.2\n")
    work.chmod(0o755)
    proc = _pybpf("trace", str(TOOLS / tool), "-c", f"/bin/sh {work}")
    assert proc.returncode == 0, proc.stderr
    if header:
        assert header in proc.stdout
    expected = {
        "opensnoop.bt": f"cat {'':12}",  # cat opened the file
        "execsnoop.bt": f"/bin/sh {work}",
        "statsnoop.bt": str(target),
        "killsnoop.bt": "sh ",
        "syscount.bt": "@process[sh]",
        "readsize.bt": "@bytes[cat]",
        "pidpersec.bt": "@forks: ",
        "bashreadline.bt": "",
    }[tool]
    assert expected in proc.stdout, proc.stdout[-2000:]
    if tool == "opensnoop.bt":
        assert str(target) in proc.stdout
    target.unlink()


@pytest.mark.kernel
@pytest.mark.parametrize("tool, header, expected", [
    ("naptime.bt", "PPID   PCOMM            PID    COMM             SECONDS",
     ["python3          0.123", "python3          0.005"]),
    ("gethostlatency.bt", "LATms HOST", ["localhost"]),
    ("threadsnoop.bt", "FUNC", ["python3"]),
    ("execsnoop.bt", "ARGS", ["/usr/bin/python3 "]),
])
def test_shipped_tools_for_libraries_and_kernel_structs_see_their_workload(tool, header,
                                                                           expected, tmp_path):
    """A python3 that sleeps with nanosleep(2), looks a name up and starts a thread."""
    work = tmp_path / "work.py"
    work.write_text(
        "import ctypes, socket, threading\n"
        "class TS(ctypes.Structure):\n"
        "    _fields_ = [('s', ctypes.c_long), ('ns', ctypes.c_long)]\n"
        "for ns in (123456789, 5000000):\n"
        "    ctypes.CDLL(None).syscall(35, ctypes.byref(TS(0, ns)), None)\n"
        "socket.getaddrinfo('localhost', 80)\n"
        "t = threading.Thread(target=print); t.start(); t.join()\n")
    proc = _pybpf("trace", str(TOOLS / tool), "-c", f"/usr/bin/python3 {work}")
    assert proc.returncode == 0, proc.stderr
    assert header in proc.stdout
    for text in expected:
        assert text in proc.stdout, proc.stdout[-2000:]


@pytest.mark.kernel
def test_kfunc_compiles_with_btf_argument_names_and_is_refused_with_a_reason():
    compiled = compile_script("kretfunc:do_nanosleep { @m[args->mode] = count(); "
                              "@r = hist(retval); }")
    (_, prog, ap), = compiled.programs
    assert prog.prog_type == "tracing" and prog.section == "fexit/do_nanosleep"
    proc = _pybpf("trace", "-e", "kfunc:do_nanosleep { @m[args->mode] = count(); }")
    if proc.returncode == 0:  # a kernel with BPF trampolines: it simply runs
        return
    assert "cannot attach kfunc:do_nanosleep" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_kfunc_arguments_are_checked_against_btf():
    with pytest.raises(TraceSyntaxError, match="has no field 'nope'"):
        compile_script("kfunc:do_nanosleep { @ = args->nope; }")


@pytest.mark.kernel
def test_two_probes_on_one_hook_and_uprobe_wildcards_each_get_their_own_program(tmp_path):
    compiled = compile_script(
        "tracepoint:syscalls:sys_enter_getpid { @a = count(); }\n"
        "tracepoint:syscalls:sys_enter_getpid { @b = sum(2); }\n"
        "uprobe:/bin/bash:readline_internal* { @[probe] = count(); }")
    sections = [p.section for _, p, _ in compiled.programs]
    assert len(sections) == len(set(sections)) >= 5
    assert {ap.func for _, _, ap in compiled.programs if ap.provider == "uprobe"} >= {
        "readline_internal_char", "readline_internal_setup"}
    work = tmp_path / "gp.py"
    work.write_text("import os\nfor i in range(5):\n    os.getpid()\n")
    python = tmp_path / "pbt-twoprobes"  # a comm no other python3 process shares
    python.symlink_to("/usr/bin/python3")
    proc = _pybpf("trace", "-e", "tracepoint:syscalls:sys_enter_getpid /comm == \"pbt-twoprobes\"/ "
                  "{ @a = count(); }\ntracepoint:syscalls:sys_enter_getpid "
                  "/comm == \"pbt-twoprobes\"/ { @b = sum(2); }", "-c", f"{python} {work}")
    assert proc.returncode == 0, proc.stderr
    assert "@a: 5" in proc.stdout and "@b: 10" in proc.stdout


@pytest.mark.kernel
def test_in_process_run_releases_every_fd_and_program():
    """Within one process (where nothing is freed by exiting), a run returns every fd."""
    import io

    from pybpf.trace import run

    def fds():
        return set(os.listdir("/proc/self/fd"))

    run("BEGIN { @x = 1; } tracepoint:syscalls:sys_enter_getpid { @n = count(); }",
        out=io.StringIO(), timeout=0.2)  # warm caches (BTF, kallsyms) that keep files
    before_fds, before_progs = fds(), _bpf_objects()
    out = io.StringIO()
    status = run("BEGIN { printf(\"hi\\n\"); } tracepoint:syscalls:sys_enter_getpid "
                 "{ @n = count(); } interval:ms:100 { exit(); }", out=out)
    assert status == 0 and "hi\n" in out.getvalue()
    assert fds() == before_fds
    assert _bpf_objects() == before_progs


def test_a_probe_over_the_bpf_stack_is_refused_at_its_script_line(tmp_path):
    script = tmp_path / "big.bt"
    names = [f"$s{i}" for i in range(12)]   # twelve strings read at run time, all live
    body = "".join(f"  {n} = str(arg{i % 6});\n" for i, n in enumerate(names))
    cond = " && ".join(f"{names[i]} == {names[i + 1]}" for i in range(11))
    script.write_text(f"uprobe:/bin/bash:readline {{\n{body}  if ({cond}) {{ @x = count(); }}"
                      "\n}\n")
    proc = _pybpf("trace", str(script))
    assert proc.returncode == 1
    assert f"{script}:13:" in proc.stderr and "stack" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.kernel
def test_a_probe_the_kernel_refuses_is_explained_at_its_script_line(tmp_path):
    script = tmp_path / "loop.bt"
    script.write_text("BEGIN {\n  $i = 0;\n  while ($i < 100000000) {\n    $i++;\n"
                      "    @x = $i;\n  }\n  exit();\n}\n")
    proc = _pybpf("trace", str(script))
    assert proc.returncode == 1
    assert f"{script}:3:" in proc.stderr or f"{script}:4:" in proc.stderr
    assert "refused probe BEGIN" in proc.stderr and "too large" in proc.stderr
    assert "Traceback" not in proc.stderr
