"""`pybpf run --engine jit`: same answers as the interpreter, and --emit-llvm / --emit-asm."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "pybpf" / "examples"


def _run(*args):
    return subprocess.run([sys.executable, "-m", "pybpf", "run", *args], capture_output=True,
                          text=True, timeout=120)


def test_jit_and_interpreter_agree_on_the_bundled_example():
    out = {}
    for engine in ("interpreter", "jit"):
        proc = _run(str(EXAMPLES / "sum.s"), "--engine", engine, "--json", "--data", "00")
        assert proc.returncode == 0, proc.stderr
        out[engine] = json.loads(proc.stdout)["retval"]
    assert out["jit"] == out["interpreter"] == 5050


def test_emit_llvm_prints_ir_that_llvm_parses(tmp_path):
    proc = _run(str(EXAMPLES / "sum.s"), "--engine", "jit", "--emit-llvm")
    assert proc.returncode == 0, proc.stderr
    ir_text = proc.stdout.rsplit("retval = ", 1)[0]
    assert "define" in ir_text
    import llvmlite.binding as llvm
    llvm.parse_assembly(ir_text).verify()
    assert "retval = 5050" in proc.stdout


def test_emit_asm_prints_native_code_and_emit_needs_the_jit():
    proc = _run(str(EXAMPLES / "sum.s"), "--engine", "jit", "--emit-asm")
    assert proc.returncode == 0 and "text" in proc.stdout and "@function" in proc.stdout
    bad = _run(str(EXAMPLES / "sum.s"), "--emit-asm")
    assert bad.returncode != 0 and "--engine jit" in bad.stderr and "Traceback" not in bad.stderr


def test_jit_builds_the_program_types_context_like_the_interpreter(tmp_path):
    src = tmp_path / "len.s"
    # xdp: r0 = data_end - data
    src.write_text("r2 = *(u32 *)(r1 + 4)\nr1 = *(u32 *)(r1 + 0)\nr2 -= r1\nr0 = r2\nexit\n")
    out = {}
    for engine in ("interpreter", "jit"):
        proc = _run(str(src), "--engine", engine, "--type", "xdp", "--json", "--data", "ab" * 60)
        assert proc.returncode == 0, proc.stderr
        out[engine] = json.loads(proc.stdout)["retval"]
    assert out["jit"] == out["interpreter"] == 60
