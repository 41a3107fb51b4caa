"""Helpers that call back into the program (``bpf_loop``): the callback runs in a new frame on
the interpreter's current path, its instructions count against the budget, and the result is
the kernel's for the same object file compiled by clang."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from pybpf import isa
from pybpf.errors import BudgetExceeded
from pybpf.program import Program
from pybpf.vm import Interpreter

I = isa.Instruction
EXIT = I(isa.JMP | isa.EXIT)

LOOP_C = r"""
typedef unsigned long long __u64;
typedef unsigned int __u32;
struct __sk_buff;
static long (*bpf_loop)(__u32 nr_loops, void *callback_fn, void *callback_ctx, __u64 flags) =
    (void *) 181;
struct ctx { __u64 sum; __u64 stop; };
static int step(__u64 index, struct ctx *c) { c->sum += index * index; return index == c->stop; }
__attribute__((section("tc"), used))
int run_loop(struct __sk_buff *skb) {
    struct ctx c = { .sum = 0, .stop = 37 };
    long n = bpf_loop(100, step, &c, 0);
    return (int)(c.sum * 1000 + n);
}
char _license[] __attribute__((section("license"), used)) = "GPL";
"""


@pytest.mark.kernel
@pytest.mark.llvm
def test_bpf_loop_callback_gives_the_kernels_result(tmp_path):
    elf = pytest.importorskip("pybpf.elf")
    kernel = pytest.importorskip("pybpf.kernel")
    clang = shutil.which("clang-19")
    if clang is None:
        pytest.skip("clang-19 not installed")
    (tmp_path / "loop.c").write_text(LOOP_C)
    subprocess.run([clang, "-O2", "-g", "-target", "bpf", "-c", str(tmp_path / "loop.c"),
                    "-o", str(tmp_path / "loop.o")], check=True)
    program = elf.load_object(str(tmp_path / "loop.o")).programs["run_loop"]
    expected = kernel.test_run(program, bytes(14)).retval
    vm = Interpreter(program)
    assert vm.run(bytes(14)) == expected
    assert vm.run(bytes(14), stepping=True) == expected


def loop_program(n: int) -> Program:
    """r0 = bpf_loop(n, callback, NULL, 0) where the callback returns 0 in 2 instructions."""
    return Program([I(isa.ALU64 | isa.MOV, 1, imm=n),
                    I(isa.LDDW, 2, isa.PSEUDO_FUNC, 0, 6, 0),   # slot 8: the callback
                    I(isa.ALU64 | isa.MOV, 3, imm=0), I(isa.ALU64 | isa.MOV, 4, imm=0),
                    I(isa.JMP | isa.CALL, imm=181), EXIT, I(isa.JMP | isa.EXIT),
                    I(isa.ALU64 | isa.MOV, 0, imm=0), EXIT])


@pytest.mark.parametrize("stepping", [False, True])
def test_callback_instructions_count_against_the_budget(stepping):
    vm = Interpreter(loop_program(10), sandbox=True)
    assert vm.run(stepping=stepping) == 10
    assert vm.insn_count == 6 + 10 * 2
    with pytest.raises(BudgetExceeded) as info:
        Interpreter(loop_program(10), budget=6 + 5 * 2, sandbox=True).run(stepping=stepping)
    assert info.value.pc == 9        # inside the callback
