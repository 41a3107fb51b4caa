"""A program the kernel refuses: its log and pybpf's explanation side by side (issue #8)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.kernel


def _pybpf(*args):
    return subprocess.run([sys.executable, "-m", "pybpf", *args], capture_output=True,
                          text=True, timeout=120)


@pytest.fixture
def uninitialised(tmp_path):
    src = tmp_path / "bad.s"
    src.write_text("r0 = *(u32 *)(r2 + 0)\nexit\n")
    return src


def test_verify_with_the_kernel_shows_its_log_and_pybpfs_explanation(uninitialised):
    proc = _pybpf("verify", str(uninitialised), "--engine", "kernel")
    assert proc.returncode == 1
    err = proc.stderr
    assert "rejected by the kernel: R2 !read_ok" in err
    assert "kernel verifier log:" in err and "processed 1 insns" in err  # the kernel's own text
    assert "pybpf's explanation:" in err and "written before it is read" in err
    assert "Traceback" not in err


def test_run_on_the_kernel_shows_the_same_side_by_side(uninitialised):
    proc = _pybpf("run", str(uninitialised), "--engine", "kernel", "--data", "00" * 20)
    assert proc.returncode == 1
    assert "kernel verifier log:" in proc.stderr and "pybpf's explanation:" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_json_carries_the_kernels_verdict_and_pybpfs_explanation(uninitialised):
    proc = _pybpf("verify", str(uninitialised), "--engine", "kernel", "--json")
    assert proc.returncode == 1
    out = json.loads(proc.stdout)
    assert out["accepted"] is False and out["error"] == "R2 !read_ok"
    assert "R2 !read_ok" in out["log"] and out["explanation"]
