"""Run one program in the kernel (BPF_PROG_TEST_RUN) and in pybpf's interpreter with the same
program type, packet and context, and give back what each handed back."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from pybpf.asm import assemble
from pybpf.program import Program
from pybpf.vm import Interpreter
from pybpf.verifier import PROG_TYPES


@dataclass
class Outcome:
    retval: int                 # low 32 bits of r0 (all the kernel reports)
    data_out: bytes
    ctx_out: bytes | None


def program_of(source: str | Program) -> Program:
    return assemble(source) if isinstance(source, str) else source


#: program types pybpf's verifier models
VERIFIED_TYPES = frozenset(PROG_TYPES) - {"raw"}


def in_kernel(source: str | Program, prog_type: str, data: bytes,
              ctx: bytes | None = None) -> Outcome:
    from pybpf import kernel

    res = kernel.test_run(program_of(source), data, ctx, prog_type=prog_type)
    return Outcome(res.retval & 0xFFFFFFFF, res.data_out, res.ctx_out)


def in_pybpf(source: str | Program, prog_type: str, data: bytes,
             ctx: bytes | None = None, sandbox: bool | None = None) -> Outcome:
    """Run as pybpf runs it: verified first for the types pybpf's verifier models (a program
    the kernel took must pass it), sandboxed for the others."""
    if sandbox is None:
        sandbox = prog_type not in VERIFIED_TYPES
    vm = Interpreter(program_of(source), prog_type=prog_type, sandbox=sandbox)
    r0 = vm.run(data, ctx=ctx)
    return Outcome(r0 & 0xFFFFFFFF, vm.data_out(), vm.ctx_out())


def both(source: str | Program, prog_type: str, data: bytes,
         ctx: bytes | None = None) -> tuple[Outcome, Outcome]:
    return in_kernel(source, prog_type, data, ctx), in_pybpf(source, prog_type, data, ctx)


def frame(dest: bytes = b"\x02" * 6, ethertype: int = 0x0800, payload: bytes = b"") -> bytes:
    """An Ethernet frame from 02:02:02:02:02:02 (padded to 60 bytes like a real one)."""
    body = dest + b"\x04" * 6 + struct.pack("!H", ethertype) + payload
    return body.ljust(60, b"\0")


def ipv4(proto: int = 17, src: bytes = b"\x0a\0\0\1", dst: bytes = b"\x0a\0\0\2",
         payload: bytes = b"") -> bytes:
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 7, 0, 64, proto, 0, src,
                         dst)
    return header + payload
