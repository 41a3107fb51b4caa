"""`pybpf disasm prog.o` interleaves C source lines from BTF line info like llvm-objdump -S."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.mark.llvm
@pytest.mark.skipif(shutil.which("clang-19") is None, reason="clang-19 is not installed")
@pytest.mark.parametrize("fixture", ["xdp_drop_proto.c", "packet_counter.c", "bpf2bpf.c"])
def test_source_lines_are_those_llvm_objdump_shows(fixture, tmp_path):
    from pybpf.pytest_plugin import compile_c

    obj = compile_c(FIXTURES / fixture, tmp_path)
    ours = subprocess.run([sys.executable, "-m", "pybpf", "disasm", str(obj)],
                          capture_output=True, text=True, timeout=120)
    assert ours.returncode == 0, ours.stderr
    theirs = subprocess.run(["llvm-objdump-19", "-S", "--mcpu=v4", str(obj)],
                            capture_output=True, text=True, check=True).stdout
    ours_src = [l[1:].strip() for l in ours.stdout.splitlines() if l.startswith(";")]
    theirs_src = {l[1:].strip() for l in theirs.splitlines() if l.startswith(";")}
    assert len(ours_src) >= 3
    # BTF line info names a function by its signature line where DWARF shows its "{", and
    # places a few lines differently; the text itself is always the C source
    source = {l.strip() for l in (FIXTURES / fixture).read_text().splitlines()}
    assert set(ours_src) <= source
    assert len(set(ours_src) & theirs_src) >= 0.7 * len(set(ours_src))
    # every instruction is still listed (programs carry their .text subprograms appended, so
    # a shared subprogram is listed once per program that calls it)
    insn = re.compile(r"^\s+\d+:\t")
    assert sum(1 for l in ours.stdout.splitlines() if insn.match(l)) >= \
        sum(1 for l in theirs.splitlines() if insn.match(l))
    plain = subprocess.run([sys.executable, "-m", "pybpf", "disasm", "--no-source", str(obj)],
                           capture_output=True, text=True, timeout=120)
    assert not any(l.startswith(";") for l in plain.stdout.splitlines())
