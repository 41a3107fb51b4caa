"""`pybpf run --engine kernel` reports the full 64-bit r0, like the other engines."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


@pytest.mark.kernel
@pytest.mark.parametrize("value", [0x123456789, 0xFFFFFFFF00000001, 7])
def test_kernel_engine_reports_all_64_bits_of_r0_like_the_interpreter(tmp_path, value):
    src = tmp_path / "wide.s"
    src.write_text(f"r0 = {value:#x} ll\nexit\n")
    # 16 bytes of data: the kernel's skb test runs need an Ethernet header
    results = {}
    for engine in ("interpreter", "kernel"):
        proc = subprocess.run([sys.executable, "-m", "pybpf", "run", str(src), "--engine",
                               engine, "--json", "--data", "00" * 16], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        results[engine] = json.loads(proc.stdout)["retval"]
    assert results["kernel"] == results["interpreter"] == value
