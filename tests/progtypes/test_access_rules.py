"""Context access rules: for every program type, every aligned load and store of 1, 2, 4 and
8 bytes at the context's offsets is accepted by pybpf at load exactly when the kernel's verifier
accepts it (BPF_PROG_LOAD), so clang-compiled programs that the kernel takes run unmodified and
the others are refused with the place named."""

from __future__ import annotations

import pytest

from pybpf import isa, kernel
from pybpf.errors import BPFError, KernelError
from pybpf.program import Program
from pybpf.progtypes import PROG_TYPES
from pybpf.verifier import PROG_TYPES as VERIFIER_TYPES
from pybpf.vm import Interpreter

VERIFIED_TYPES = frozenset(VERIFIER_TYPES) - {"raw"}

pytestmark = pytest.mark.kernel

I = isa.Instruction
SIZES = {1: isa.B, 2: isa.H, 4: isa.W, 8: isa.DW}
#: uprobe is kprobe to the kernel; sched_act has sched_cls's rules; tracing and lsm programs
#: load only against a BTF attach target
TYPES = [t for t in PROG_TYPES if t not in ("uprobe", "sched_act", "tracing", "lsm")]


def access(off: int, size: int, write: bool) -> Program:
    if write:
        body = [I(isa.ALU64 | isa.MOV | isa.K, dst=2, imm=0),
                I(isa.STX | isa.MEM | SIZES[size], dst=1, src=2, off=off)]
    else:
        body = [I(isa.LDX | isa.MEM | SIZES[size], dst=2, src=1, off=off)]
    return Program(body + [I(isa.ALU64 | isa.MOV | isa.K, dst=0, imm=0), I(isa.JMP | isa.EXIT)])


def kernel_accepts(program: Program, prog_type: str) -> bool:
    try:
        kernel.load_program(program, prog_type=prog_type).close()
        return True
    except KernelError:
        return False


def pybpf_accepts(program: Program, prog_type: str, sandbox: bool) -> bool:
    """Sandboxed: the interpreter's own context rewriter decides; otherwise the verifier
    first. Either way the refusal names the instruction."""
    try:
        Interpreter(program, prog_type=prog_type, sandbox=sandbox)
        return True
    except BPFError as exc:
        assert any(f"{what} {pc}" in str(exc) for what in ("pc", "instruction")
                   for pc in (0, 1)), str(exc)
        return False


@pytest.mark.parametrize("prog_type", TYPES)
def test_context_accesses_are_accepted_exactly_when_the_kernel_accepts_them(prog_type):
    limit = min(PROG_TYPES[prog_type].ctx_size + 8, 200)
    # both ways of running where pybpf's verifier models the type
    modes = (True, False) if prog_type in VERIFIED_TYPES else (True,)
    differences = []
    for off in range(limit):
        for size in (1, 2, 4, 8):
            if off % size:
                continue
            for write in (False, True):
                program = access(off, size, write)
                theirs = kernel_accepts(program, prog_type)
                for sandbox in modes:
                    if pybpf_accepts(program, prog_type, sandbox) != theirs:
                        differences.append((off, size, "write" if write else "read", theirs,
                                            "sandbox" if sandbox else "verified"))
    assert differences == []
