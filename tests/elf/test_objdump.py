"""The object reader against llvm-objdump-19: same code bytes, symbols and relocations per
section, and linked programs that differ from the file only where a relocation says so."""

from __future__ import annotations

import re
import subprocess

import pytest

from pybpf import isa
from pybpf.elf import load_object, text_sections

from .conftest import FIXTURES

pytestmark = pytest.mark.llvm

_SECTION = re.compile(r"^Disassembly of section (.+):$")
_LABEL = re.compile(r"^([0-9a-f]{16}) <(.+)>:$")
_INSN = re.compile(r"^\s*(\d+):\t([0-9a-f ]+?)\t")
_RELOC = re.compile(r"^\s+([0-9a-f]{16}):\s+(R_BPF_\w+)\s+(\S+)")


def objdump(path) -> dict[str, dict]:
    """section -> {'slots': {slot: bytes}, 'labels': {slot: name}, 'relocs': {slot: (t, s)}}"""
    out = subprocess.run(["llvm-objdump-19", "-d", "-r", str(path)], capture_output=True,
                         text=True, check=True).stdout
    sections: dict[str, dict] = {}
    cur = None
    for line in out.splitlines():
        if m := _SECTION.match(line):
            cur = sections.setdefault(m.group(1), {"slots": {}, "labels": {}, "relocs": {}})
        elif cur is None:
            continue
        elif m := _LABEL.match(line):
            cur["labels"][int(m.group(1), 16) // 8] = m.group(2)
        elif m := _INSN.match(line):
            cur["slots"][int(m.group(1))] = bytes.fromhex(m.group(2).replace(" ", ""))
        elif m := _RELOC.match(line):
            cur["relocs"][int(m.group(1), 16) // 8] = (m.group(2), m.group(3))
    return sections


@pytest.mark.parametrize("name", FIXTURES)
def test_code_sections_match_llvm_objdump_byte_for_byte(fixture_objects, name):
    path = fixture_objects[name]
    reference = objdump(path)
    ours = {s.name: s for s in text_sections(path)}
    assert set(ours) == {k for k, v in reference.items() if v["slots"]}
    for sec_name, ts in ours.items():
        ref = reference[sec_name]
        got = {slot: insn.encode() for slot, insn in zip(ts.slot_starts, ts.insns)}
        assert got == ref["slots"], sec_name
        assert ts.symbols == ref["labels"], sec_name
        assert ts.relocations == ref["relocs"], sec_name


@pytest.mark.parametrize("name", FIXTURES)
def test_linked_programs_change_only_relocated_instructions(fixture_objects, name):
    """Entry function first, at slot 0: every instruction equals the file's except lddw
    (map/global/function relocations) and bpf-to-bpf calls; each relocated lddw names the map
    of its relocation symbol."""
    path = fixture_objects[name]
    reference = objdump(path)
    spec = load_object(path, core_target="local")
    assert spec.programs, "every fixture has at least one program"
    for prog in spec.programs.values():
        ref = reference[prog.section]
        start = next(slot for slot, label in ref["labels"].items() if label == prog.name)
        entry_end = min([s for s in prog.labels if s > 0], default=prog.num_slots)
        for slot, insn in zip(isa.slot_starts(prog.insns), prog.insns):
            if slot >= entry_end:
                break  # past the entry function: appended subprograms
            file_slot = start + slot
            raw = isa.decode(ref["slots"][file_slot][:16], check=False)[0]
            reloc = ref["relocs"].get(file_slot)
            assert (insn.opcode, insn.dst, insn.off) == (raw.opcode, raw.dst, raw.off), slot
            if reloc is None and not (insn.opcode == isa.JMP | isa.CALL and insn.src == 1):
                assert insn == raw, slot
            if reloc is not None and insn.opcode == isa.LDDW and insn.src in (
                    isa.PSEUDO_MAP_IDX, isa.PSEUDO_MAP_IDX_VALUE):
                map_spec = prog.maps[insn.imm]
                symbol = reloc[1]
                if insn.src == isa.PSEUDO_MAP_IDX:
                    assert map_spec.name == symbol
                else:
                    var = spec.variables.get(symbol) or spec.kconfig.get(symbol)
                    if var is not None:
                        assert map_spec.name == var.map_name
                        assert insn.imm_hi == var.offset + raw.imm
                    else:  # a section symbol: .rodata.str1.1 + addend
                        assert map_spec.name == symbol
                        assert insn.imm_hi == raw.imm


def test_calls_between_functions_land_on_the_callee_by_name(fixture_objects):
    """bpf2bpf: every pseudo call of a linked program targets the start of a function whose
    name is the one llvm-objdump shows at the original target."""
    path = fixture_objects["bpf2bpf"]
    reference = objdump(path)
    spec = load_object(path)
    text_labels = reference[".text"]["labels"]
    for prog in spec.programs.values():
        starts = isa.slot_starts(prog.insns)
        names = set()
        for slot, insn in zip(starts, prog.insns):
            if insn.opcode == isa.JMP | isa.CALL and insn.src == isa.CALL_LOCAL:
                target = slot + 1 + insn.imm
                assert target in prog.labels, (prog.name, slot)
                names.add(prog.labels[target])
        assert names == {"checksum", "mix"}
        assert set(prog.labels.values()) == {prog.name} | set(text_labels.values())


def test_bpf_loop_callback_address_points_at_the_callback(fixture_objects):
    spec = load_object(fixture_objects["loops"])
    prog = spec.programs["sum_bpf_loop"]
    starts = isa.slot_starts(prog.insns)
    funcs = [(slot, insn) for slot, insn in zip(starts, prog.insns)
             if insn.opcode == isa.LDDW and insn.src == isa.PSEUDO_FUNC]
    assert len(funcs) == 1
    slot, insn = funcs[0]
    assert prog.labels[slot + 1 + insn.imm] == "add_byte"
