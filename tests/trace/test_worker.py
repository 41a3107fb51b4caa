"""The LLVM worker: the quick road of a cache miss (bytecode cut from LLVM's object by LLVM's
own reader, verified in the child) gives the very plan the full road (pybpf's ELF loader,
the verifier in this process) gives; what the quick road cannot do falls back to it; and a
worker never leaves a child behind."""

from __future__ import annotations

import glob
import os

import pytest

from pybpf.trace import build, plan
from pybpf.trace.parser import TraceSyntaxError
from pybpf.trace.worker import Worker

TOOLS = sorted(glob.glob(os.path.join(os.path.dirname(build.__file__), "tools", "*.bt")))

SCRIPTS = [
    'BEGIN { printf("go %d\\n", pid); exit(); }',
    'tracepoint:syscalls:sys_enter_getpid /comm == "x"/ { @n = count(); @h = hist(5); '
    '@s[comm] = sum(3); @l = lhist(pid, 0, 100, 10); @st = stats(tid); }',
    'tracepoint:syscalls:sys_enter_open* { @[probe] = count(); }',
    'tracepoint:syscalls:sys_enter_read { $i = 0; while ($i < 4) { @r[$i] = max(args.count);'
    ' $i++; } } END { clear(@r); }',
    'uprobe:/bin/bash:readline { @u = count(); } uretprobe:/bin/bash:readline '
    '{ printf("%s\\n", str(retval)); }',
    'profile:hz:99 { @[kstack] = count(); } interval:ms:100 { time("%H"); exit(); }',
]


def _full(source: str, name: str) -> dict:
    return build.verified_plan(build.compile_script(source, name))


def _quick(source: str, name: str) -> dict:
    return build.compiled_plan(source, name, Worker(verifier=True))


def _cases():
    for path in TOOLS:
        with open(path) as fh:
            yield pytest.param(fh.read(), path, id=os.path.basename(path))
    for i, text in enumerate(SCRIPTS):
        yield pytest.param(text, f"<script {i}>", id=f"script{i}")


@pytest.mark.kernel  # tracepoint layouts come from tracefs
@pytest.mark.parametrize("source,name", list(_cases()))
def test_the_quick_road_gives_the_full_roads_plan(source, name):
    quick, full = _quick(source, name), _full(source, name)
    assert quick["programs"] and quick["programs"] == full["programs"]
    assert [p["refs"] for p in quick["programs"]] == [
        plan.map_references(p["insns"]) for p in full["programs"]]
    for key in ("maps", "meta", "wildcards", "source_name", "format", "verdicts"):
        assert quick[key] == full[key], key


@pytest.mark.kernel
def test_a_probe_the_verifier_refuses_takes_the_full_road_for_its_explanation():
    source = "BEGIN {\n  $i = 0;\n  while ($i < 100000000) {\n    $i++;\n    @x = $i;\n  }\n}\n"
    unit, _ = build.compile_unit(source, "loop.bt")
    answer = Worker(verifier=True).request({
        "ir": unit.ir_text(), "kind": "code", "verify": True, "maps": build.map_rows(unit),
        "programs": [(n, s, "raw_tracepoint") for n, _, _, s in unit.functions]})
    assert "refuses" in answer["fallback"]
    made = _quick(source, "loop.bt")
    ((accepted, pc, explanation),) = made["verdicts"]
    assert not accepted and pc is not None and "loop.bt:" in explanation
    assert made == _full(source, "loop.bt")


def test_llvms_stack_limit_is_a_script_error_at_its_line():
    """The BPF backend reports the 512-byte stack limit and exits its process: the worker's
    death is the script's error, at the line LLVM names."""
    names = [f"$s{i}" for i in range(12)]
    body = "".join(f"  {n} = str(arg{i % 6});\n" for i, n in enumerate(names))
    cond = " && ".join(f"{names[i]} == {names[i + 1]}" for i in range(11))
    source = f"uprobe:/bin/bash:readline {{\n{body}  if ({cond}) {{ @x = count(); }}\n}}\n"
    with pytest.raises(TraceSyntaxError) as err:
        build.compile_script(source, "big.bt")
    assert "BPF stack limit is exceeded" in str(err.value)
    assert "512 bytes of stack" in str(err.value)
    assert (err.value.filename, err.value.line) == ("big.bt", 13)


def test_a_worker_given_no_request_leaves_no_child():
    worker = Worker(verifier=True)
    pid = worker.pid
    worker.close()
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def test_a_worker_answers_assembly_and_objects():
    unit, _ = build.compile_unit('BEGIN { @c = count(); }', "a.bt")
    asm = Worker().request({"ir": unit.ir_text(), "kind": "asm"}).decode()
    assert "raw_tracepoint/BEGIN" in asm and "exit" in asm
    obj = Worker().request({"ir": unit.ir_text(), "kind": "obj"})
    assert obj[:4] == b"\x7fELF"
