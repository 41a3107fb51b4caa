"""Malformed LLVM-syntax assembly is refused with ``file:line:column`` and what to do.

Where llvm-mc-19 refuses the text too, that is checked, so those refusals are not pybpf's
invention; the others are marked: llvm-mc silently truncates immediates, knows an internal
``r11``, and leaves unknown symbols to the linker as relocations.
"""

from __future__ import annotations

import pytest

from pybpf.asm import assemble
from pybpf.errors import AssemblyError

from . import llvmtools

# text, line, column, message fragment, does llvm-mc refuse it too?
CASES = [
    ("r0 = 1\nr11 = 2\n", 2, 1, "unknown register 'r11' (registers are r0–r10)", False),
    ("r0 = 1\n  r1 += r12\n", 2, 9, "unknown register 'r12'", True),
    ("w1 += r2\n", 1, 7, "expected a 32-bit register", True),
    ("frob r1\n", 1, 1, "unknown instruction 'frob r1'", True),
    ("goto nowhere\nexit\n", 1, 6, "undefined label 'nowhere'", True),
    ("a:\nexit\na:\nexit\n", 3, 1, "duplicate label 'a' (first defined on line 1)", True),
    ("call no_such_helper\n", 1, 6, "unknown helper or label 'no_such_helper'", False),
    ("r1 = *(u64 *)(r10 + 32768)\n", 1, 19, "memory offset 32768 is out of range", True),
    ("goto +32768\n", 1, 6, "jump offset 32768 is out of range", True),
    ("r1 = 0x100000000\n", 1, 6, "immediate 4294967296 is out of range", False),
    ("r1 = -2147483649\n", 1, 6, "immediate -2147483649 is out of range", False),
    ("r1 = 0x10000000000000000 ll\n", 1, 6, "64-bit immediate", True),
    ("r1 = le64 r2\n", 1, 11, "byte swaps work in place", True),
    ("r1 = -r2\n", 1, 7, "negation works in place", True),
    ("r0 = cmpxchg_64(r10 - 8, r1, r2)\n", 1, 26, "compares with and returns into r0", True),
    ("r1 = *(u16 *)skb[4]\n", 1, 1, "legacy packet loads always load into r0", True),
    ("w1 = *(u64 *)(r2 - 8)\n", 1, 1, "loads into a 64-bit register", True),
    ("r1 = foo ll\nexit\n", 1, 6, "undefined map or label 'foo'", False),
    (".frob 1\n", 1, 1, "unknown directive '.frob'", True),
    ("r13 = foo\n", 1, 1, "unknown register 'r13'", False),
    ("r01 = 1\n", 1, 1, "unknown register 'r01'", True),
    ("r1 = 08\n", 1, 6, "invalid number '08'", True),
    ("w1 = (s32)w2\n", 1, 8, "sign-extend from 8 or 16 bits only", True),
    ("r1 = *(s64 *)(r2 + 0)\n", 1, 8, "no sign-extending 64-bit load", True),
    ("r0 = *(u64 *)skb[4]\n", 1, 8, "packet loads are", True),
    ("*(s32 *)(r1 + 0) = r2\n", 1, 3, "stores are unsigned", True),
    ("lock *(u16 *)(r1 + 0) += w2\n", 1, 8, "atomic operations work on u32 or u64", True),
    ("r1 = *(u64 *)(r2 + 0) junk\n", 1, 1, "invalid instruction", True),
    (".map m hash key=4 value=8\n", 1, 6, "lacks max_entries=", False),
    (".map\n", 1, 5, "needs a name and a type", False),
    (".map 9m hash key=4 value=8 max_entries=1\n", 1, 6, "invalid map name '9m'", False),
    (".map m hash key=4 value=8 max_entries=1 size=3\n", 1, 41, "unexpected 'size=3'", False),
    (".map m hash key=4 key=8 max_entries=1\n", 1, 19, "'key=' given twice", False),
    (".map m hash key=4 value=8 max_entries=0x100000000\n", 1, 27, "out of range", False),
    (".map m hashy key=4 value=8 max_entries=1\n", 1, 8, "unknown map type 'hashy'", False),
    (".map m hash key=4 value=8 max_entries=1\n.map m hash key=4 value=8 max_entries=1\n",
     2, 6, "duplicate map 'm'", False),
]


@pytest.mark.parametrize("text,line,column,message,_", CASES)
def test_malformed_assembly_is_refused_with_its_place(text, line, column, message, _):
    with pytest.raises(AssemblyError) as info:
        assemble(text, "prog.s")
    assert str(info.value).startswith(f"prog.s:{line}:{column}: "), str(info.value)
    assert message in str(info.value)


@pytest.mark.llvm
@pytest.mark.parametrize("text", [c[0] for c in CASES if c[4]])
def test_llvm_mc_refuses_the_same_malformed_assembly(text):
    assert not llvmtools.mc_accepts(text)


def test_a_jump_too_far_for_16_bits_says_to_use_gotol():
    text = "goto far\n" + "r0 = 0 ll\n" * 16400 + "far:\nexit\n"  # 32800 slots away
    with pytest.raises(AssemblyError, match="use 'gotol'") as info:
        assemble(text, "far.s")
    assert info.value.location.line == 1
    assert assemble(text.replace("goto far", "gotol far")).insns[0].imm == 32800


def test_unknown_syntax_is_refused():
    with pytest.raises(AssemblyError, match="unknown syntax"):
        assemble("exit\n", syntax="intel")


@pytest.mark.parametrize("text", ["", "# only a comment\n", ".map m hash key=4 value=4 max_entries=1\n"])
def test_a_file_without_instructions_is_refused(text):
    with pytest.raises(AssemblyError, match="no instructions"):
        assemble(text, "empty.s")


def test_map_value_offset_on_a_label_is_refused():
    with pytest.raises(AssemblyError, match="is a label"):
        assemble("r1 = f + 8 ll\nexit\nf:\nexit\n", "p.s")


UBPF_CASES = [
    ("ldxw r0, [%r1]\n", 1, 6, "expected a register %r0–%r10, got 'r0'"),
    ("mov %r0, r1\n", 1, 10, "expected an immediate, got 'r1'"),
    ("stw [%r1], zz\n", 1, 12, "expected an immediate, got 'zz'"),
    ("ja32 +2147483648\nexit\n", 1, 6, "out of 32-bit range"),
    ("ja 5\n", 1, 4, "expected a jump target"),
    ("movsx832 %r1, 5\n", 1, 15, "'movsx832' needs a source register"),
    ("lddw %r1, 0x10000000000000000\n", 1, 11, "out of 64-bit range"),
    ("call local a b\n", 1, 1, "'call' takes a target or a mode and a target"),
    ("call far 3\n", 1, 6, "unknown call mode 'far'"),
    ("lock nand [%r10-8], %r1\n", 1, 6, "unknown atomic operation 'nand'"),
    ("call nothing\n", 1, 6, "unknown helper or label 'nothing'"),
]


@pytest.mark.parametrize("text,line,column,message", UBPF_CASES)
def test_malformed_ubpf_assembly_is_refused_with_its_place(text, line, column, message):
    with pytest.raises(AssemblyError) as info:
        assemble(text, "prog.s", syntax="ubpf")
    assert str(info.value).startswith(f"prog.s:{line}:{column}: "), str(info.value)
    assert message in str(info.value)


def test_ubpf_call_by_helper_name_and_section_directive():
    program = assemble(".section socket\ncall bpf_ktime_get_ns\nexit\n", syntax="ubpf")
    assert program.insns[0].imm == 5 and program.section == "socket"


def test_ubpf_text_read_as_llvm_syntax_says_which_syntax_it_is():
    with pytest.raises(AssemblyError, match="is uBPF syntax.*--syntax ubpf"):
        assemble("mov r0, 1\nexit\n", "p.s", syntax="llvm")
