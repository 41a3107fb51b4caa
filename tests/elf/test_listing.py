"""Object listings: ``objdump_listing`` prints exactly what ``llvm-objdump -d -r --mcpu=v4``
prints (ELF and CO-RE relocations included) and, with source lines from BTF line_info,
interleaves the C source like ``llvm-objdump -S``."""

from __future__ import annotations

import re
import subprocess

import pytest

from pybpf.elf import load_object
from pybpf.elf.text import objdump_listing

from .conftest import FIXTURES, FIXTURES_DIR

pytestmark = pytest.mark.llvm


def llvm_objdump(path, *flags: str) -> str:
    return subprocess.run(["llvm-objdump-19", "-d", "-r", "--mcpu=v4", *flags, str(path)],
                          capture_output=True, text=True, check=True).stdout


@pytest.mark.parametrize("name", FIXTURES)
def test_listing_with_relocations_is_llvm_objdumps(fixture_objects, name):
    path = fixture_objects[name]
    assert objdump_listing(path, source_lines=False) == llvm_objdump(path)


@pytest.mark.parametrize("name", FIXTURES)
def test_source_lines_are_only_added_and_come_from_the_c_file(fixture_objects, name):
    path = fixture_objects[name]
    ours = objdump_listing(path)
    reference = llvm_objdump(path, "-S")
    strip = lambda text: [line for line in text.splitlines() if not line.startswith("; ")]  # noqa: E731
    assert strip(ours) == strip(reference)
    source = (FIXTURES_DIR / f"{name}.c").read_text().splitlines()
    ours_src = [line[2:] for line in ours.splitlines() if line.startswith("; ")]
    assert ours_src and all(line in source for line in ours_src)
    # BTF line_info and DWARF place lines slightly differently (DWARF starts a function at
    # its '{'), but they name mostly the same lines
    theirs_src = {line[2:] for line in reference.splitlines() if line.startswith("; ")}
    assert len(theirs_src & set(ours_src)) >= 0.7 * len(theirs_src - {"{"})


def test_linked_programs_carry_file_line_and_text_per_slot(fixture_objects):
    path = fixture_objects["bpf2bpf"]
    prog = load_object(path).programs["tc_checksum"]
    source = (FIXTURES_DIR / "bpf2bpf.c").read_text().splitlines()
    assert prog.lines
    for slot, text in prog.lines.items():
        m = re.match(r"(.+):(\d+): (.*)$", text)
        assert m and m.group(1).endswith("bpf2bpf.c")
        assert source[int(m.group(2)) - 1].strip() == m.group(3)
    # the appended subprograms bring their own lines along
    mix_start = next(s for s, n in prog.labels.items() if n == "mix")
    assert any("a * 31" in t for s, t in prog.lines.items() if s >= mix_start)
