"""pybpf trace's start-up path: the click-free argument parser, the plan cache, and that a
cached script behaves exactly as a fresh compilation (and as click's command) does."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from pybpf.trace import command, plan

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _pybpf(args, cache, *, flags=(), extra_env=None):
    env = {**os.environ, "PYBPF_TRACE_CACHE": str(cache), "PYBPF_TRACE_TIMINGS": "1",
           **(extra_env or {})}
    return subprocess.run([sys.executable, *flags, "-m", "pybpf", *args], capture_output=True,
                          text=True, timeout=120, env=env, cwd=ROOT)


@pytest.mark.parametrize("argv", [
    ["s.bt"], ["-e", "BEGIN {}"], ["s.bt", "-c", "ls -l /"], ["-c", "true", "s.bt"],
    ["-e", "BEGIN {}", "-p", "1"], ["-d", "-e", "x"], ["--json", "-d", "s.bt"],
    ["--timeout", "1.5", "s.bt"], ["--timeout=2", "s.bt"], ["-e", "a", "-e", "b"],
    ["s.bt", "-c", "a", "-c", "b"], [],
])
def test_the_fast_path_reads_arguments_as_the_click_command_does(argv):
    from pybpf.cli.trace import trace_cmd

    ours = command.parse_args(argv)
    assert ours is not None
    ctx = trace_cmd.make_context("trace", list(argv))
    assert ours == ctx.params


@pytest.mark.parametrize("argv", [
    ["--help"], ["-h"], ["-p", "abc", "s.bt"], ["--timeout", "soon", "s.bt"], ["-e"],
    ["--bogus"], ["a.bt", "b.bt"], ["--", "s.bt"], ["-d=1", "s.bt"], ["-xe", "BEGIN {}"],
    ["/"],
])
def test_what_the_fast_path_does_not_understand_goes_to_click(argv):
    assert command.parse_args(argv) is None


@pytest.mark.parametrize("argv", [
    [], ["-e", "BEGIN {}", "no-such.bt"], ["no-such-file.bt"], ["-e", "x"],
    ["-e", "BEGIN { @x = count(); @x = 5; }"], ["-e", "BEGIN {}", "-p", "999999999"],
])
def test_errors_are_the_same_one_line_on_both_paths(argv, tmp_path):
    """``--`` at the end sends the same arguments through click's command."""
    fast = _pybpf(["trace", *argv], tmp_path)
    slow = _pybpf(["trace", *argv, "--"], tmp_path)
    assert fast.returncode == slow.returncode == 1
    assert fast.stderr == slow.stderr
    assert fast.stderr.startswith("pybpf: error: ") and "Traceback" not in fast.stderr


def test_dash_d_shows_the_same_on_both_paths(tmp_path):
    script = "tracepoint:syscalls:sys_enter_getpid { @n = count(); }"
    fast = _pybpf(["trace", "-d", "-e", script], tmp_path)
    slow = _pybpf(["trace", "-d", "-e", script, "--"], tmp_path)
    assert fast.returncode == slow.returncode == 0, fast.stderr + slow.stderr
    assert fast.stdout == slow.stdout and "sys_enter_getpid" in fast.stdout


def _workload(tmp_path, name="pbt-startup", calls=7):
    """A python3 under a comm of its own that calls getpid() ``calls`` times."""
    link = tmp_path / name
    link.symlink_to("/usr/bin/python3")
    work = tmp_path / "gp.py"
    work.write_text(f"import os\nfor i in range({calls}):\n    os.getpid()\n")
    return f"{link} {work}"


SCRIPT = ('BEGIN { printf("go\\n"); } tracepoint:syscalls:sys_enter_getpid '
          '/comm == "pbt-startup"/ { @n = count(); @h = hist(5); @s[comm] = sum(3); }')


@pytest.mark.kernel
def test_a_cached_script_prints_what_a_fresh_compilation_prints(tmp_path):
    cache = tmp_path / "cache"
    cmd = _workload(tmp_path)
    runs = [_pybpf(["trace", "-e", SCRIPT, "-c", cmd], cache) for _ in range(2)]
    fresh = _pybpf(["trace", "-e", SCRIPT, "-c", cmd], "0")
    for proc in (*runs, fresh):
        assert proc.returncode == 0, proc.stderr
    assert "llvm" in runs[0].stderr and "cache-hit" not in runs[0].stderr
    assert "cache-hit" in runs[1].stderr and "llvm" not in runs[1].stderr
    assert "llvm" in fresh.stderr
    assert runs[0].stdout == runs[1].stdout == fresh.stdout
    assert "@n: 7" in fresh.stdout and "@s[pbt-startup]: 21" in fresh.stdout


@pytest.mark.kernel
def test_a_cache_hit_imports_neither_the_compiler_nor_click(tmp_path):
    cache = tmp_path / "cache"
    cmd = _workload(tmp_path)
    assert _pybpf(["trace", "-e", SCRIPT, "-c", cmd], cache).returncode == 0
    proc = _pybpf(["trace", "-e", SCRIPT, "-c", cmd], cache, flags=["-X", "importtime"])
    assert proc.returncode == 0, proc.stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines()
                if line.startswith("import time:")}
    for heavy in ("click", "llvmlite", "pybpf.trace.parser", "pybpf.trace.codegen",
                  "pybpf.elf", "pybpf.btf", "pybpf.verifier", "elftools", "subprocess"):
        assert heavy not in imported


@pytest.mark.kernel
def test_a_damaged_cache_entry_is_compiled_again(tmp_path):
    cache = tmp_path / "cache"
    cmd = _workload(tmp_path)
    first = _pybpf(["trace", "-e", SCRIPT, "-c", cmd], cache)
    (entry,) = cache.iterdir()
    entry.write_bytes(b"\x00garbage")
    again = _pybpf(["trace", "-e", SCRIPT, "-c", cmd], cache)
    assert again.returncode == 0 and "llvm" in again.stderr
    assert again.stdout == first.stdout


@pytest.mark.kernel
def test_the_stored_plan_carries_the_verdicts_of_pybpfs_verifier(tmp_path):
    """pybpf's verifier checked the compilation before the kernel accepted it: its verdicts
    (None where it does not model the program type) agree with the kernel's acceptance."""
    cache = tmp_path / "cache"
    cmd = _workload(tmp_path)
    assert _pybpf(["trace", "-e", SCRIPT, "-c", cmd], cache).returncode == 0
    (entry,) = cache.iterdir()
    stored = plan.read(str(entry))
    assert stored is not None
    kinds = [p["prog_type"] for p in stored["programs"]]
    assert kinds == ["raw_tracepoint", "tracepoint"]
    assert stored["verdicts"][1] == (True, None, "")


@pytest.mark.kernel
def test_a_refusal_is_explained_at_its_script_line_on_a_cache_hit_too(tmp_path):
    cache = tmp_path / "cache"
    script = tmp_path / "loop.bt"
    script.write_text("BEGIN {\n  $i = 0;\n  while ($i < 100000000) {\n    $i++;\n"
                      "    @x = $i;\n  }\n  exit();\n}\n")
    first = _pybpf(["trace", str(script)], cache)
    second = _pybpf(["trace", str(script)], cache)
    assert "cache-hit" not in first.stderr and "cache-hit" in second.stderr
    assert first.returncode == second.returncode == 1
    message = [l for l in first.stderr.splitlines() if "timings" not in l]
    assert message == [l for l in second.stderr.splitlines() if "timings" not in l]
    assert "refused probe BEGIN" in first.stderr and "Traceback" not in first.stderr


@pytest.mark.kernel
def test_a_wildcard_plan_is_reused_only_while_tracefs_still_matches_the_same(tmp_path):
    """The expansion stored with the plan is checked against tracefs on every hit (bpftrace
    expands on every run): the same set reuses the plan, a different one compiles again."""
    cache = tmp_path / "cache"
    script = ("tracepoint:syscalls:sys_enter_getp* /comm == \"pbt-startup\"/ "
              "{ @[probe] = count(); }")
    cmd = _workload(tmp_path, calls=4)
    first = _pybpf(["trace", "-e", script, "-c", cmd], cache)
    second = _pybpf(["trace", "-e", script, "-c", cmd], cache)
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    assert "cache-hit" in second.stderr and first.stdout == second.stdout
    assert "@[tracepoint:syscalls:sys_enter_getpid]: 4" in second.stdout
    (entry,) = cache.iterdir()
    stored = plan.read(str(entry))
    ((kind, category, event, matched),) = stored["wildcards"]
    events = sorted(e for e in os.listdir("/sys/kernel/tracing/events/syscalls")
                    if e.startswith("sys_enter_getp"))
    assert (kind, category, event) == ("tracepoint", "syscalls", "sys_enter_getp*")
    assert matched == [["syscalls", e] for e in events]
    assert plan.wildcards_hold(stored)
    stored["wildcards"] = [(kind, category, event, matched[:-1])]
    assert not plan.wildcards_hold(stored)


@pytest.mark.parametrize("text", [
    "ls -l /", "  a\tb  c ", "sh -c 'exit 3'", 'echo "a b"', "a\\ b", "x\x0by", "é ü",
    "a#b c", "",
])
def test_commands_are_split_as_shlex_splits_them(text):
    import shlex

    assert command.split_command(text) == shlex.split(text)


@pytest.mark.kernel
def test_a_plan_the_kernel_refuses_takes_the_engines_road_and_still_runs(tmp_path):
    """Bytecode from the plan that the kernel refuses (here: doctored to a bare ``exit``, which
    reads an unset r0) is compiled again and loaded by the kernel engine with its BTF."""
    cache = tmp_path / "cache"
    cmd = _workload(tmp_path)
    first = _pybpf(["trace", "-e", SCRIPT, "-c", cmd], cache)
    (entry,) = cache.iterdir()
    stored = plan.read(str(entry))
    stored["programs"][1]["insns"] = bytes([0x95, 0, 0, 0, 0, 0, 0, 0])
    stored["programs"][1]["refs"] = []
    plan.write(str(entry), stored)
    again = _pybpf(["trace", "-e", SCRIPT, "-c", cmd], cache)
    assert again.returncode == 0, again.stderr
    assert "cache-hit" in again.stderr and again.stdout == first.stdout
    assert "@n: 7" in again.stdout
