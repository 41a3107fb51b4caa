"""The uBPF / bpf_conformance syntax: every ``.data`` program assembles to the suite's bytes,
and the malformed negative cases are refused with a message naming the place."""

from __future__ import annotations

import json

import pytest

from pybpf import isa
from pybpf.asm import assemble, detect_syntax, disassemble
from pybpf.errors import AssemblyError

from .datafiles import sections


def _asm_cases(shared_dir, folder):
    for path in sorted((shared_dir / "conformance" / folder).glob("*.data")):
        secs = sections(path)
        if "asm" in secs:
            yield path, secs


def test_every_conformance_program_assembles_to_the_suites_bytes(shared_dir):
    expected = {}
    with open(shared_dir / "conformance" / "bytecode.jsonl") as f:
        for line in f:
            case = json.loads(line)
            expected[case["name"]] = case["program"]
    checked = 0
    for path, secs in _asm_cases(shared_dir, "tests"):
        program = assemble(secs["asm"], path.name)
        if path.name in expected:
            assert program.bytecode().hex() == expected[path.name], path.name
            checked += 1
    assert checked >= 300


def test_conformance_programs_are_detected_as_ubpf_syntax(shared_dir):
    for path, secs in _asm_cases(shared_dir, "tests"):
        if "%r" in secs["asm"]:
            assert detect_syntax(secs["asm"]) == "ubpf", path.name


def test_conformance_programs_survive_disassembly_into_llvm_syntax(shared_dir):
    for path, secs in _asm_cases(shared_dir, "tests"):
        program = assemble(secs["asm"], path.name)
        again = assemble(disassemble(program), path.name, syntax="llvm")
        assert again.bytecode() == program.bytecode(), path.name


def test_callx_in_ubpf_syntax_calls_through_the_register(shared_dir):
    secs = sections(shared_dir / "conformance" / "tests" / "callx.data")
    insns = assemble(secs["asm"]).insns
    assert insns[2] == isa.Instruction(isa.CALLX, dst=2)


MALFORMED = {
    "invalid_imm32_dec_range.data": (5, "out of 32-bit range"),
    "invalid_imm32_hex_range.data": (5, "out of 32-bit range"),
    "invalid_label.data": (4, "undefined label 'NOT_A_LABEL'"),
    "invalid_lock.data": (4, "number of operands for lock"),
    "invalid_lock2.data": (4, "lock"),
    "invalid_mnemonic.data": (5, "unknown mnemonic 'ldxq'"),
    "invalid_offset.data": (4, "memory operand"),
    "invalid_offset_range.data": (5, "out of 16-bit range"),
    "invalid_operand_count.data": (4, "takes 2 operands, got 1"),
    "invalid_register.data": (4, "unknown register '%r50'"),
    "invalid_unknown_directive.data": (4, "unknown instruction '-- Unknown directive'"),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_negative_cases_are_refused_with_file_and_line(shared_dir, name):
    path = shared_dir / "conformance" / "negative" / name
    line, message = MALFORMED[name]
    with pytest.raises(AssemblyError) as info:
        assemble(sections(path)["asm"], name)
    assert info.value.location.file == name
    assert info.value.location.line == line
    assert message in str(info.value)
    assert str(info.value).startswith(f"{name}:{line}:")


def test_every_negative_asm_case_is_either_refused_or_well_formed(shared_dir):
    """The cases whose asm is well formed (they fail at run time) assemble to valid code."""
    for path, secs in _asm_cases(shared_dir, "negative"):
        if path.name in MALFORMED:
            continue
        isa.decode(assemble(secs["asm"], path.name).bytecode())


UBPF_FORMS = [
    # text, (opcode, dst, src, off, imm) -- encodings from RFC 9669's opcode tables
    ("add %r1, %r2", (0x0F, 1, 2, 0, 0)),
    ("add64 %r1, 5", (0x07, 1, 0, 0, 5)),
    ("sdiv32 %r1, -3", (0x34, 1, 0, 1, -3)),
    ("smod %r1, %r2", (0x9F, 1, 2, 1, 0)),
    ("movsx1632 %r1, %r2", (0xBC, 1, 2, 16, 0)),
    ("neg64 %r3", (0x87, 3, 0, 0, 0)),
    ("ldabsh 12", (0x28, 0, 0, 0, 12)),
    ("ldindb %r3, 4", (0x50, 0, 3, 0, 4)),
    ("ldxsw %r1, [%r2-4]", (0x81, 1, 2, -4, 0)),
    ("stdw [%r10-8], 0xffffffff", (0x7A, 10, 0, -8, -1)),
    ("lock fetch xor32 [%r1+4], %r2", (0xC3, 1, 2, 4, 0xA1)),
    ("lock cmpxchg [%r10-8], %r1", (0xDB, 10, 1, -8, 0xF1)),
    ("call local +2", (0x85, 0, 1, 0, 2)),
    ("call runtime 77", (0x85, 0, 2, 0, 77)),
    ("ja32 -1", (0x06, 0, 0, 0, -1)),
    ("jset32 %r1, 0x80, +3", (0x46, 1, 0, 3, 0x80)),
]


@pytest.mark.parametrize("text,fields", UBPF_FORMS)
def test_ubpf_forms_outside_the_suite_encode_as_the_rfc_says(text, fields):
    insn = assemble(text + "\n", syntax="ubpf").insns[0]
    assert (insn.opcode, insn.dst, insn.src, insn.off, insn.imm) == fields
