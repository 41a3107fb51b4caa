"""Types printed as C: identical to ``bpftool btf dump file X format c`` for every fixture and
for the running kernel's vmlinux, and the output compiles with clang."""

from __future__ import annotations

import os
import subprocess

import pytest

from pybpf.btf import load_vmlinux
from pybpf.btf.cprinter import format_c, type_name
from pybpf.btf.parser import VMLINUX
from pybpf.elf import load_object
from pybpf.pytest_plugin import find_clang

from .conftest import FIXTURES, bpftool, bpftool_libbpf_version


def _modern_enums() -> bool:
    # libbpf >= 1.2 marks 1- and 8-byte enums with mode(byte)/mode(word); older bpftool not
    return bpftool_libbpf_version() >= (1, 2)


@pytest.mark.parametrize("name", FIXTURES)
def test_fixture_types_print_as_bpftool_format_c(fixture_objects, name):
    path = fixture_objects[name]
    reference = bpftool("btf", "dump", "file", str(path), "format", "c")
    btf = load_object(path, core_target="local").btf
    assert format_c(btf, enum_size_attrs=_modern_enums()) == reference


@pytest.mark.skipif(not os.access(VMLINUX, os.R_OK), reason="no /sys/kernel/btf/vmlinux")
def test_vmlinux_prints_as_bpftool_format_c():
    reference = bpftool("btf", "dump", "file", VMLINUX, "format", "c")
    ours = format_c(load_vmlinux(), enum_size_attrs=_modern_enums())
    assert ours == reference


@pytest.mark.parametrize("name", ["tc_edit", "core_read", "map_in_map", "ringbuf"])
def test_printed_types_compile_with_clang(fixture_objects, name, tmp_path):
    clang = find_clang()
    if clang is None:
        pytest.skip("clang is not installed")
    btf = load_object(fixture_objects[name], core_target="local").btf
    header = tmp_path / "types.h"
    header.write_text(format_c(btf))
    src = tmp_path / "use.c"
    src.write_text('#include "types.h"\nint use;\n')
    subprocess.run([clang, "-target", "bpf", "-fsyntax-only", "-Werror", str(src)], check=True,
                   cwd=tmp_path)


@pytest.mark.skipif(not os.access(VMLINUX, os.R_OK), reason="no /sys/kernel/btf/vmlinux")
def test_type_names_read_as_c_declarations():
    btf = load_vmlinux()
    task = btf.find_one("task_struct", "struct")
    parent = next(m for m in task.members if m.name == "real_parent")
    comm = next(m for m in task.members if m.name == "comm")
    assert type_name(btf, parent.type_id) == "struct task_struct *"
    assert type_name(btf, comm.type_id) == "char[16]"
    assert type_name(btf, btf.find_one("u32", "typedef").id) == "u32"
