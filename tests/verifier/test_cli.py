"""``pybpf verify``: exit status, JSON shape and the kernel engine agree with the verdict."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def run(*args):
    return subprocess.run([sys.executable, "-m", "pybpf", "verify", *args],
                          capture_output=True, text=True, timeout=120)


def test_accepted_program_exits_zero(tmp_path):
    src = tmp_path / "ok.s"
    src.write_text("r0 = 0\nexit\n")
    res = run(str(src))
    assert res.returncode == 0
    assert "accepted" in res.stdout


def test_rejected_program_exits_one_with_an_explanation(tmp_path):
    src = tmp_path / "bad.s"
    src.write_text("r2 = *(u32 *)(r1 + 0)\nr0 = *(u8 *)(r2 + 0)\nexit\n")
    res = run("--type", "xdp", str(src))
    assert res.returncode == 1
    assert "outside of the packet" in res.stderr
    assert "fix:" in res.stderr


def test_json_has_the_contract_fields(tmp_path):
    src = tmp_path / "bad.s"
    src.write_text("exit\n")
    res = run("--json", str(src))
    data = json.loads(res.stdout)
    assert res.returncode == 1
    assert data["accepted"] is False
    assert data["error"] == "R0 !read_ok"
    assert isinstance(data["insns_processed"], int)
    assert "processed" in data["log"]
    assert data["error_id"] == "uninit-return"


def test_binary_input_and_log_level_two(tmp_path):
    from pybpf.asm import assemble
    prog = assemble("r0 = 1\nr0 += 2\nexit\n")
    path = tmp_path / "p.bin"
    path.write_bytes(prog.bytecode())
    res = run("--log-level", "2", str(path))
    assert res.returncode == 0
    assert "0: (b7) r0 = 1" in res.stdout
    assert "processed 3 insns (limit 1000000)" in res.stdout


@pytest.mark.kernel
def test_kernel_engine_gives_the_same_verdict(tmp_path):
    src = tmp_path / "bad.s"
    src.write_text("r2 = *(u32 *)(r1 + 0)\nr0 = *(u8 *)(r2 + 0)\nexit\n")
    ours = json.loads(run("--json", "--type", "xdp", str(src)).stdout)
    theirs = json.loads(run("--json", "--engine", "kernel", "--type", "xdp", str(src)).stdout)
    assert ours["accepted"] == theirs["accepted"] is False
    assert ours["error"] == theirs["error"]
