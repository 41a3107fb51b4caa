"""The LLVM syntax against llvm-mc-19 (bytes) and llvm-objdump-19 (text).

A corpus of every instruction form is assembled by pybpf and by llvm-mc and the bytes compared;
llvm-objdump's listing of llvm-mc's object is compared with pybpf's disassembly; and random
instructions drawn from the opcode table go both ways (our text through llvm-mc, their bytes
through llvm-objdump).
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from pybpf import isa
from pybpf.asm import assemble, disassemble, format_instruction

from . import llvmtools
from .strategies import programs

pytestmark = pytest.mark.llvm

ALU = ["+", "-", "*", "/", "|", "&", "<<", ">>", "%", "^", "s>>", "s/", "s%", ""]
CONDS = ["==", "!=", ">", ">=", "<", "<=", "s>", "s>=", "s<", "s<=", "&"]


def _corpus() -> list[str]:
    lines = []
    for p in "rw":
        for op in ALU:
            lines += [f"{p}1 {op}= {p}2", f"{p}3 {op}= -5", f"{p}9 {op}= 0x7fffffff",
                      f"{p}0 {op}= 0xffffffff", f"{p}4 {op}= -2147483648"]
        for cond in CONDS:
            lines += [f"if {p}1 {cond} {p}2 goto +1", f"if {p}3 {cond} -7 goto -2",
                      f"if {p}10 {cond} 0x80000000 goto +32767", f"if {p}0 {cond} 0 goto -32768"]
        lines += [f"{p}5 = -{p}5", f"{p}1 = (s8){p}2", f"{p}1 = (s16){p}2"]
    lines += ["r1 = (s32)r2", "r0 = -r0"]
    for kind in ("be", "le", "bswap"):
        lines += [f"r3 = {kind}{bits} r3" for bits in (16, 32, 64)]
    lines += ["r1 = 0 ll", "r1 = -1 ll", "r2 = 0x123456789 ll", "r3 = 0xffffffffffffffff ll",
              "r4 = -0x8000000000000000 ll", "r5 = 0x80000000 ll", "r6 = 2147483648 ll",
              "ld_pseudo r1, 1, 3", "ld_pseudo r2, 6, 0xffffffff"]
    for bits in (8, 16, 32, 64):
        lines += [f"r1 = *(u{bits} *)(r2 - 32768)", f"r1 = *(u{bits} *)(r10 + 32767)",
                  f"*(u{bits} *)(r10 - 8) = r1", f"*(u{bits} *)(r1 + 0x10) = -3",
                  f"*(u{bits} *)(r1 + 0) = 0xffffffff"]
        if bits < 64:
            lines += [f"w1 = *(u{bits} *)(r2 - 4)", f"r1 = *(s{bits} *)(r2 - 4)",
                      f"*(u{bits} *)(r10 - 8) = w9", f"r0 = *(u{bits} *)skb[12]",
                      f"r0 = *(u{bits} *)skb[-1]", f"r0 = *(u{bits} *)skb[r7]"]
    for sz, p in (("u64", "r"), ("u32", "w")):
        for op in "+|&^":
            lines.append(f"lock *({sz} *)(r10 - 8) {op}= {p}1")
        for name in ("add", "or", "and", "xor"):
            lines.append(f"{p}2 = atomic_fetch_{name}(({sz} *)(r1 - 16), {p}2)")
    lines += ["lock *(u32 *)(r1 + 4) += r2", "r0 = xchg_64(r10 - 8, r0)",
              "w3 = xchg32_32(r10 - 8, w3)", "r0 = cmpxchg_64(r10 - 8, r0, r1)",
              "w0 = cmpxchg32_32(r1 + 8, w0, w5)"]
    lines += ["goto +0", "goto -1", "goto 3", "gotol +3", "gotol -32768", "call 1",
              "call -1", "call 0x7fffffff", "callx r1", "callx r10", "exit"]
    # spelling variants llvm-mc accepts
    lines += ["r0=1", "*(u64*)(r10-8)=r1", "if r1>r2 goto+1", "r1 = 017", "r1 = 0b101",
              "r1 = 0XFF", "w0 s/= 3", "  r1   +=   r2  ", "r1 = *(u64 *)(r1 - 0x8)",
              "r0 = 2 // comment", "r0 = 3 /* block */", "r0 = 4 # comment",
              "r1 = - 8", "if r1 == - 1 goto + 1", "*(u8 *)(r1 + 0) = - 1", "r1 = +5",
              "R0 = 1", "call +1", "goto + 3"]
    return lines


CORPUS = _corpus()


def test_every_form_in_the_corpus_assembles_to_llvm_mc_bytes():
    ours = [assemble(line).bytecode() for line in CORPUS]
    theirs = llvmtools.mc_bytes("\n".join(CORPUS) + "\n")
    pos = 0
    for line, code in zip(CORPUS, ours):
        assert code == theirs[pos:pos + len(code)], f"{line!r}: {code.hex()} vs llvm-mc " \
                                                    f"{theirs[pos:pos + len(code)].hex()}"
        pos += len(code)
    assert pos == len(theirs)


def test_disassembly_of_the_corpus_equals_llvm_objdump():
    text = "\n".join(CORPUS) + "\n"
    assert disassemble(assemble(text)) == llvmtools.objdump(llvmtools.mc_object(text))


LABELLED = [
    # a loop, a forward exit and a bpf-to-bpf call
    """
        r0 = 0
        r1 = 10
    loop:
        r0 += r1
        r1 += -1
        if r1 != 0 goto loop
        call sub
        if w0 > 3 goto done
        r2 = 0x1122334455667788 ll
        gotol done
    done:
        exit
    sub:
        r0 = 1
        exit
    """,
    # label on the same line as an instruction, jumps over a 64-bit load, backwards gotol
    """
    start: r1 = 1
        goto next
        r2 = 5 ll
    next:
        if r1 s< r2 goto start
        gotol start
        exit
    """,
]


@pytest.mark.parametrize("text", LABELLED)
def test_labelled_programs_assemble_and_disassemble_like_llvm(text):
    program = assemble(text)
    assert program.bytecode() == llvmtools.mc_bytes(text)
    assert objdump_view(disassemble(program)) == llvmtools.objdump(llvmtools.mc_object(text))


def objdump_view(listing: str) -> str:
    """Our listing with ``call NAME`` (bpf-to-bpf) written as llvm-objdump writes it."""
    out = []
    for line in listing.splitlines():
        fields = line.split("\t")
        if len(fields) == 3 and fields[2].startswith("call ") and not fields[2][5:6].isdigit() \
                and not fields[2][5:6] == "-":
            insn = isa.decode(bytes.fromhex(fields[1].replace(" ", "")), check=False)[0]
            fields[2] = format_instruction(insn)
        out.append("\t".join(fields))
    return "\n".join(out) + "\n"


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs(objdump_exact=True, max_size=80))
def test_random_instructions_print_as_llvm_objdump_prints_them(insns):
    code = isa.encode(insns)
    assert disassemble(insns) == llvmtools.objdump_of_bytes(code)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs(objdump_exact=True, max_size=80))
def test_llvm_mc_assembles_our_text_to_the_original_bytes(insns):
    text = "\n".join(format_instruction(i).replace("\t", " ") for i in insns) + "\n"
    assert llvmtools.mc_bytes(text) == isa.encode(insns)


def test_printed_examples_in_the_design_are_accepted_by_llvm_mc():
    design = ["r0 = 1", "w1 += w2", "r0 s/= r1", "r1 = (s8)r2", "r0 = bswap16 r0",
              "r0 = *(u32 *)(r1 + 4)", "r0 = *(s8 *)(r1 + 3)", "*(u64 *)(r10 - 8) = r1",
              "lock *(u64 *)(r10 - 8) += r1", "r0 = atomic_fetch_add((u64 *)(r10 - 8), r0)",
              "r0 = cmpxchg_64(r10 - 8, r0, r1)", "if w1 s< 5 goto +0", "goto +3",
              "gotol +3", "r1 = 0x123456789 ll", "call 1", "callx r1", "exit"]
    text = "\n".join(design) + "\n"
    assert assemble(text).bytecode() == llvmtools.mc_bytes(text)


def test_a_whole_llvm_objdump_listing_assembles_back_to_the_same_bytes(tmp_path):
    """llvm-objdump -d -r output, file header, block headers and all, is valid input (without
    bpf-to-bpf calls, which llvm-objdump prints like helper calls)."""
    import subprocess
    text = "\n".join(CORPUS + LABELLED[1].splitlines()) + "\n"
    obj = tmp_path / "x.o"
    obj.write_bytes(llvmtools.mc_object(text))
    listing = subprocess.run(["llvm-objdump-19", "-d", "-r", "--mcpu=v4", str(obj)],
                             capture_output=True, text=True, check=True).stdout
    assert assemble(listing, "x.lst").bytecode() == llvmtools.mc_bytes(text)
