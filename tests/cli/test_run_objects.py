"""`pybpf run prog.o`: a program that tail-calls runs inside its whole object, like libbpf."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
IPV4 = "ff" * 12 + "0800" + "45" + "00" * 40
IPV6 = "ff" * 12 + "86dd" + "60" + "00" * 60


@pytest.mark.kernel
@pytest.mark.skipif(shutil.which("clang-19") is None, reason="clang-19 is not installed")
@pytest.mark.parametrize("packet", [IPV4, IPV6, "ff" * 12 + "0806" + "00" * 28])
def test_tail_call_dispatcher_gives_the_kernels_verdict(packet, tmp_path):
    from pybpf.pytest_plugin import compile_c

    obj = compile_c(FIXTURES / "tail_call.c", tmp_path)
    out = {}
    for engine in ("interpreter", "kernel"):
        proc = subprocess.run([sys.executable, "-m", "pybpf", "run", str(obj), "--program",
                               "dispatch", "--data", packet, "--engine", engine, "--json"],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        out[engine] = json.loads(proc.stdout)
    assert out["interpreter"]["retval"] == out["kernel"]["retval"]
    slots = [k for k, _ in out["interpreter"]["maps"]["jump_table"]]
    assert slots == [k for k, _ in out["kernel"]["maps"]["jump_table"]]
    assert "<handle_ipv4>" in dict(out["interpreter"]["maps"]["jump_table"]).values()
