"""CO-RE resolution as libbpf does it: against the running kernel every relocation kind
(flavors, bitfields, members inside anonymous unions, arrays, types, enums, missing fields)
gives the same code libbpf gives, and the values agree with bpftool's view of vmlinux."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pybpf import isa
from pybpf.btf import core as C
from pybpf.btf import load_vmlinux
from pybpf.btf.parser import VMLINUX
from pybpf.elf import load_object
from pybpf.pytest_plugin import compile_c, find_clang

from .conftest import bpftool

HERE = Path(__file__).resolve().parent
needs_vmlinux = pytest.mark.skipif(not os.access(VMLINUX, os.R_OK),
                                   reason="no /sys/kernel/btf/vmlinux")


@pytest.fixture(scope="module")
def core_cases(tmp_path_factory) -> Path:
    if find_clang() is None:
        pytest.skip("clang is not installed")
    return compile_c(HERE / "core_cases.c", tmp_path_factory.mktemp("core"))


def _results(path: Path, target) -> dict[str, C.CoreResult]:
    spec = load_object(path, core_target="local")
    out = {}
    for relo in spec.btf_ext.core_relos["kprobe/do_nanosleep"]:
        key = f"{relo.kind_name}:{spec.btf[relo.type_id].name}:{relo.access}"
        out[key] = C.resolve(relo, spec.btf, target)
    return out


def _member_offsets(struct_name: str) -> dict[str, tuple[int, int]]:
    """member -> (bits_offset, bitfield_size) from bpftool's raw dump of vmlinux."""
    text = bpftool("btf", "dump", "file", VMLINUX)
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if f"] STRUCT '{struct_name}' " in line)
    out = {}
    for line in lines[start + 1:]:
        if not line.startswith("\t"):
            break
        name = line.split("'")[1]
        fields = dict(kv.split("=") for kv in line.split("' ")[1].split())
        out[name] = (int(fields["bits_offset"]), int(fields.get("bitfield_size", 0)))
    return out


@needs_vmlinux
def test_field_offsets_match_bpftools_view_of_the_kernel(core_cases):
    got = _results(core_cases, load_vmlinux())
    task = _member_offsets("task_struct")
    assert got["field_byte_offset:task_struct___pybpf:0:0"].value == task["tgid"][0] // 8
    assert got["field_byte_offset:task_struct___pybpf:0:2:3"].value == task["comm"][0] // 8 + 3
    assert got["field_byte_size:task_struct___pybpf:0:2"].value == 16
    assert got["field_exists:task_struct___pybpf:0:4"].value == 0
    assert got["field_signed:task_struct___pybpf:0:0"].value == 1
    bit_off, bit_sz = task["sched_reset_on_fork"]
    byte_off = got["field_byte_offset:task_struct___pybpf:0:3"].value
    byte_sz = got["field_byte_size:task_struct___pybpf:0:3"].value
    assert byte_off * 8 <= bit_off and bit_off + bit_sz <= (byte_off + byte_sz) * 8
    assert got["field_lshift_u64:task_struct___pybpf:0:3"].value == \
        64 - (bit_off + bit_sz - byte_off * 8)
    assert got["field_rshift_u64:task_struct___pybpf:0:3"].value == 64 - bit_sz
    assert got["enumval_exists:pid_type:3"].value == 1
    assert got["enumval_exists:pybpf_no_such_enum:0"].value == 0
    assert got["type_exists:pybpf_no_such_struct:0"].value == 0
    assert got["type_size:task_struct___pybpf:0"].value == \
        load_vmlinux().find_one("task_struct", "struct").size


@needs_vmlinux
def test_members_inside_anonymous_unions_are_found(core_cases):
    got = _results(core_cases, load_vmlinux())
    btf = load_vmlinux()
    skb = btf.find_one("sk_buff", "struct")
    # sk_buff.next lives in anonymous union/struct members: its offset is their sum
    assert all(m.name != "next" for m in skb.members)
    assert got["field_byte_offset:sk_buff:0:0"].value == 0
    length = next(m for m in skb.members if m.name == "len")
    assert got["field_byte_offset:sk_buff:0:1"].value == length.bit_offset // 8


def test_against_its_own_btf_every_relocation_keeps_the_compiled_value(core_cases):
    spec = load_object(core_cases, core_target="local")
    for key, res in _results(core_cases, spec.btf).items():
        assert not res.poison, key
        if not key.startswith(("field_byte_size", "field_byte_offset", "field_lshift",
                               "field_rshift")) or "0:3" not in key:
            assert res.value == res.local_value, key


def test_a_target_without_the_type_poisons_field_reads_and_says_missing(core_cases,
                                                                        fixture_objects):
    other = load_object(fixture_objects["packet_counter"]).btf   # no task_struct there
    got = _results(core_cases, other)
    assert got["field_byte_offset:task_struct___pybpf:0:0"].poison
    assert got["field_exists:task_struct___pybpf:0:4"].value == 0
    assert got["type_exists:task_struct___pybpf:0"].value == 0
    spec = load_object(core_cases, core_target=other)
    prog = spec.programs["core_cases"]
    assert any(i.opcode == isa.JMP | isa.CALL and i.imm == C.POISON_HELPER for i in prog.insns)


def test_essential_names_drop_the_flavor():
    assert C.essential_name("task_struct___pybpf") == "task_struct"
    assert C.essential_name("task_struct") == "task_struct"


@pytest.mark.kernel
def test_every_relocation_kind_gives_the_code_libbpf_gives(core_cases, bpf_kernel, tmp_path):
    from tests.elf.conftest import bpftool_loadall, run, BPFTOOL
    from tests.elf.test_kernel import comparable

    spec = load_object(core_cases)
    with bpftool_loadall(core_cases) as pin:
        coll = bpf_kernel(spec)
        out = tmp_path / "xlated"
        run([BPFTOOL, "prog", "dump", "xlated", "pinned", str(pin / "core_cases"), "file",
             str(out)])
        assert comparable(coll.programs["core_cases"].xlated()) == \
            comparable(out.read_bytes())
