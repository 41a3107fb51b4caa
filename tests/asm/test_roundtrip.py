"""assemble -> disassemble -> assemble is the identity, on random instructions from the opcode
table and on programs with labels, bpf-to-bpf calls and maps."""

from __future__ import annotations


from hypothesis import given, settings

from pybpf import isa
from pybpf.asm import assemble, disassemble
from pybpf.program import Program

from .strategies import programs, programs_with_local_calls


@settings(max_examples=150, deadline=None)
@given(programs())
def test_disassembly_of_random_instructions_assembles_to_the_same_bytes(insns):
    text = disassemble(insns)
    again = assemble(text)
    assert again.insns == insns
    assert disassemble(again) == text


@settings(max_examples=100, deadline=None)
@given(programs_with_local_calls())
def test_bpf_to_bpf_calls_keep_their_targets_through_a_round_trip(insns):
    again = assemble(disassemble(insns))
    assert again.insns == insns


def test_maps_and_labels_survive_a_round_trip():
    text = """
    .map counters hash key=4 value=8 max_entries=1024
    .map table array key=4 value=16 max_entries=4 flags=1024
        r1 = counters ll
        r2 = table + 8 ll
        call helper
        exit
    helper:
        r0 = 0
        exit
    """
    program = assemble(text, "maps.s")
    again = assemble(disassemble(program), "maps.s")
    assert again.insns == program.insns
    assert again.maps == program.maps
    assert again.map_refs == program.map_refs
    assert [m.name for m in program.maps] == ["counters", "table"]
    assert program.insns[0].src == isa.PSEUDO_MAP_IDX and program.insns[0].imm == 0
    assert program.insns[1].src == isa.PSEUDO_MAP_IDX_VALUE and program.insns[1].imm == 1
    assert program.insns[1].imm_hi == 8
    assert program.labels == {6: "helper"}  # two 2-slot loads, call, exit


def test_a_program_object_and_its_bytes_print_the_same_without_maps():
    program = assemble("r0 = 1\nexit\n")
    assert disassemble(program) == disassemble(Program.from_bytes(program.bytecode()))


def test_helper_names_are_the_kernels_ids():
    from pybpf.helpers.ids import NAMES_BY_ID
    for hid in (1, 2, 5, 12, 25):
        text = f"call bpf_{NAMES_BY_ID[hid]}\n"
        assert assemble(text).insns[0] == isa.Instruction(isa.JMP | isa.CALL, imm=hid)


def test_ten_thousand_lines_assemble():
    """Speed is measured by benchmarks, not asserted here: this checks the result only."""
    body = ["r0 = 0", "loop:", "r1 = *(u32 *)(r10 - 4)", "w2 += 7", "if r1 s> r2 goto loop",
            "lock *(u64 *)(r10 - 8) += r1", "r3 = 0x123456789 ll", "call bpf_ktime_get_ns"]
    lines = [body[0]] + [f"l{i}: " + body[2 + i % 6] for i in range(10_000)] + ["exit"]
    text = "\n".join(lines).replace("goto loop", "goto l0") + "\n"
    program = assemble(text)
    assert len(program.insns) == 10_002
    assert program.insns[-1] == isa.Instruction(isa.JMP | isa.EXIT)


def test_a_map_value_at_offset_zero_stays_a_value_reference():
    program = assemble(".map g array key=4 value=8 max_entries=1\nr1 = g + 0 ll\nr2 = g ll\n"
                       "exit\n")
    assert program.insns[0].src == isa.PSEUDO_MAP_IDX_VALUE
    assert program.insns[1].src == isa.PSEUDO_MAP_IDX
    assert assemble(disassemble(program)).insns == program.insns


def test_a_label_loaded_as_a_64_bit_value_is_a_function_pointer():
    program = assemble("r1 = f ll\nexit\nf:\nexit\n")
    assert program.insns[0].src == isa.PSEUDO_FUNC and program.insns[0].imm == 2
    assert assemble(disassemble(program)).insns == program.insns
