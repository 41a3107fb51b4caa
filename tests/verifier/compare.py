"""Shared helpers: build a program from assembly and compare pybpf's verdict with the kernel's."""

from __future__ import annotations

from pybpf.asm import assemble
from pybpf.verifier import verify

from .oracle import kernel_verdict


def both(text: str, prog_type: str = "socket_filter"):
    program = assemble(text)
    program.prog_type = prog_type
    ours = verify(program, prog_type=prog_type)
    theirs = kernel_verdict(program, prog_type)
    return ours, theirs
