"""pybpf.isa: the opcode table, encoding and decoding, checked against the conformance suite,
llvm-mc-19 and the kernel's own instruction checks."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
from hypothesis import given, settings, strategies as st

from pybpf import isa
from pybpf.errors import DecodeError


def _raw_cases(shared_dir, folder):
    for path in sorted((shared_dir / "conformance" / folder).glob("*.data")):
        text = path.read_text()
        if "-- raw" not in text:
            continue
        body = text.split("-- raw", 1)[1].split("\n--", 1)[0]
        hexdigits = "".join(line for line in body.splitlines() if not line.startswith("#"))
        yield path.name, bytes.fromhex(hexdigits.replace(" ", ""))


def test_every_conformance_program_decodes_and_reencodes_to_the_same_bytes(shared_dir):
    count = 0
    for line in (shared_dir / "conformance" / "bytecode.jsonl").read_text().splitlines():
        case = json.loads(line)
        code = bytes.fromhex(case["program"])
        insns = isa.decode(code)
        assert isa.encode(insns) == code, case["name"]
        count += 1
    assert count == 312


def test_every_negative_raw_case_is_refused_by_the_decoder(shared_dir):
    cases = list(_raw_cases(shared_dir, "negative"))
    assert len(cases) >= 40
    for name, code in cases:
        with pytest.raises(DecodeError) as info:
            isa.decode(code)
        assert "instruction 0" in str(info.value), name


@pytest.mark.parametrize("code, message", [
    (b"\x95" + b"\0" * 6, "not a multiple of 8"),
    (bytes.fromhex("1800000001000000"), "truncated"),
    (bytes.fromhex("ff00000000000000"), "unknown opcode 0xff"),
    (bytes.fromhex("0500050000000000" "9500000000000000"), "outside the program"),
    (bytes.fromhex("0500010000000000" "1800000001000000" "0000000000000000"
                   "9500000000000000"), "inside a 64-bit load"),
    (bytes.fromhex("b70b000000000000"), "register r11"),
])
def test_malformed_bytecode_is_refused_with_a_clear_message(code, message):
    with pytest.raises(DecodeError, match=message):
        isa.decode(code)


def test_lddw_keeps_its_64_bit_immediate():
    insn = isa.Instruction.lddw(3, 0x1122334455667788)
    assert insn.slots == 2
    (back,) = isa.decode(insn.encode())
    assert back.imm64 == 0x1122334455667788 and back.dst == 3


def _valid_instruction():
    """Instructions that pass validation: built from the table's own field rules."""
    def build(opcode, dst, src, off, imm, hi):
        info = isa.OPCODES[opcode]
        if opcode == isa.LDDW:
            return isa.Instruction(opcode, dst, src % 7, 0, imm, hi)
        src = src if "src" in info.uses else 0
        if info.srcs is not None:
            src = sorted(info.srcs)[src % len(info.srcs)]
        dst = dst if "dst" in info.uses else 0
        if info.offs is not None:
            off = sorted(info.offs)[off % len(info.offs)]
        elif "off" not in info.uses:
            off = 0
        if info.imms is not None:
            imm = sorted(info.imms)[imm % len(info.imms)]
        elif "imm" not in info.uses:
            imm = 0
        return isa.Instruction(opcode, dst, src, off, imm)
    return st.builds(build, st.sampled_from(sorted(isa.OPCODES)), st.integers(0, 10),
                     st.integers(0, 10), st.integers(-2**15, 2**15 - 1),
                     st.integers(-2**31, 2**31 - 1), st.integers(-2**31, 2**31 - 1))


@settings(max_examples=300, deadline=None)
@given(_valid_instruction())
def test_encode_then_decode_is_the_identity(insn):
    assert isa.decode(insn.encode(), check=False) == [insn]
    isa.validate(insn)


@pytest.mark.llvm
def test_opcode_bytes_agree_with_llvm_mc():
    """A sample of each instruction form, assembled by llvm-mc, decodes to the opcode our table
    gives that form's name and group."""
    text = "\n".join([
        "r0 = 1", "w0 = 1", "r0 += r1", "w0 += w1", "r0 s/= r1", "w0 s%= w1", "r0 = (s8)r1",
        "w0 = (s16)w1", "r0 = bswap16 r0", "r0 = be32 r0", "r0 = le64 r0",
        "r0 = *(s8 *)(r1 + 3)", "r0 = *(u64 *)(r1 - 8)", "*(u32 *)(r10 - 4) = 7",
        "*(u16 *)(r10 - 2) = w1", "lock *(u64 *)(r10 - 8) += r1",
        "r0 = atomic_fetch_add((u64 *)(r10 - 8), r0)", "r0 = cmpxchg_64(r10 - 8, r0, r1)",
        "w0 = cmpxchg32_32(r10 - 8, w0, w1)", "r1 = xchg_64(r10 - 8, r1)",
        "if w1 s< 5 goto +0", "if r1 & r2 goto +0", "goto +0", "gotol +0", "call 1",
        "callx r1", "r0 = *(u16 *)skb[4]", "r1 = 0x123456789 ll", "r0 = -r0", "exit",
    ])
    proc = subprocess.run(["llvm-mc-19", "-triple", "bpfel", "-mcpu=v4", "-show-encoding"],
                          input=text, capture_output=True, text=True, check=True)
    encodings = re.findall(r"encoding: \[([^\]]*)\]", proc.stdout)
    assert len(encodings) == len(text.splitlines())
    for enc in encodings:
        code = bytes(int(b, 16) for b in enc.split(","))
        for insn in isa.decode(code, check=False):
            isa.validate(insn)  # llvm-mc output is well formed by our rules too


# --- the kernel's own checks of reserved fields ------------------------------------------------

def _kernel_rejects_malformed(insn: isa.Instruction) -> tuple[bool, str]:
    from tests.kernelshim import kernel_verdict

    # r0..r9 initialised, then the instruction, then a safe exit
    prologue = [isa.Instruction(isa.ALU64 | isa.MOV | isa.K, r, 0, 0, 0) for r in range(10)]
    code = isa.encode(prologue) + insn.encode() + isa.encode(
        [isa.Instruction(isa.ALU64 | isa.MOV | isa.K, 0, 0, 0, 0),
         isa.Instruction(isa.JMP | isa.EXIT)])
    ok, log = kernel_verdict(code)
    return (not ok), log


@pytest.mark.kernel
@settings(max_examples=150, deadline=None)
@given(opcode=st.sampled_from(sorted(op for op, info in isa.OPCODES.items()
                                     if info.group in ("base32", "base64", "divmul32",
                                                       "divmul64")
                                     and op != isa.LDDW and info.cls in (isa.ALU, isa.ALU64))),
       field=st.sampled_from(["src", "off", "imm"]), value=st.integers(1, 9))
def test_reserved_alu_fields_are_refused_as_the_kernel_refuses_them(opcode, field, value):
    info = isa.OPCODES[opcode]
    base = dict(opcode=opcode, dst=1, src=2 if "src" in info.uses else 0, off=0,
                imm=(sorted(info.imms)[0] if info.imms else (3 if "imm" in info.uses else 0)))
    if field in info.uses and (field != "off"):
        return  # not a reserved field for this opcode
    base[field] = value
    insn = isa.Instruction(**base)
    try:
        isa.validate(insn)
        ours_rejects = False
    except DecodeError:
        ours_rejects = True
    kernel_rejects, log = _kernel_rejects_malformed(insn)
    if ours_rejects:
        assert kernel_rejects, f"kernel accepted {insn} that pybpf refuses"
    else:
        # pybpf accepts only legal modifiers (signed div/mod, movsx widths); so does the kernel
        assert not kernel_rejects, f"kernel refused {insn}: {log}"
