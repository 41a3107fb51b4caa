"""Run the references: llvm-mc-19 (assembler) and llvm-objdump-19 (disassembler).

Used by the tests marked ``llvm``; each call is one process, so callers batch many instructions
into one file.
"""

from __future__ import annotations

import io
import subprocess
import tempfile
from pathlib import Path

from elftools.elf.elffile import ELFFile

MC = ["llvm-mc-19", "-triple", "bpfel", "-mcpu=v4"]


def mc_object(text: str) -> bytes:
    """The ELF object llvm-mc makes of ``text`` (raises with llvm-mc's message on error)."""
    proc = subprocess.run(MC + ["-filetype=obj", "-o", "-"], input=text.encode(),
                          capture_output=True, timeout=60)
    if proc.returncode:
        raise RuntimeError(proc.stderr.decode())
    return proc.stdout


def mc_bytes(text: str) -> bytes:
    """The .text bytes llvm-mc assembles from ``text``."""
    elf = ELFFile(io.BytesIO(mc_object(text)))
    return elf.get_section_by_name(".text").data()


def mc_accepts(text: str) -> bool:
    proc = subprocess.run(MC + ["-filetype=obj", "-o", "/dev/null"], input=text.encode(),
                          capture_output=True, timeout=60)
    return proc.returncode == 0


def objdump(obj: bytes) -> str:
    """llvm-objdump-19 -d --mcpu=v4 of ``obj``, from the first block header on."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.o"
        path.write_bytes(obj)
        out = subprocess.run(["llvm-objdump-19", "-d", "--mcpu=v4", str(path)],
                             capture_output=True, text=True, check=True, timeout=60).stdout
    return out[out.index("Disassembly of section .text:\n\n") + len(
        "Disassembly of section .text:\n\n"):]


def objdump_of_bytes(code: bytes) -> str:
    """llvm-objdump's listing of raw ``code`` (placed in .text with ``.byte``)."""
    lines = [".text"] + [".byte " + ",".join(str(b) for b in code[i:i + 8])
                         for i in range(0, len(code), 8)]
    return objdump(mc_object("\n".join(lines) + "\n"))
