"""Disassembly of real compiler output: every instruction clang-19 emits for the C fixtures
(tests/fixtures/*.c, cpu v3 and v4) prints as llvm-objdump-19 prints it, and reads back."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from pybpf import isa
from pybpf.asm import assemble, format_instruction

pytestmark = pytest.mark.llvm

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
_LINE = re.compile(r"\s*(\d+):\t([0-9a-f ]+)\t(.*?)(?: <[^<>]*>)?\Z")


def _compile(source: Path, cpu: str, out: Path) -> Path:
    if not shutil.which("clang-19"):
        pytest.skip("clang-19 not installed")
    obj = out / f"{source.stem}.{cpu}.o"
    include = subprocess.run(["gcc", "-print-multiarch"], capture_output=True, text=True)
    arch_inc = f"/usr/include/{include.stdout.strip() or 'x86_64-linux-gnu'}"
    proc = subprocess.run(["clang-19", "-O2", "-g", "-target", "bpf", f"-mcpu={cpu}",
                           "-I", arch_inc, "-I", str(FIXTURES), "-c", str(source), "-o", str(obj)],
                          capture_output=True, text=True)
    if proc.returncode:
        pytest.skip(f"{source.name} does not compile here: {proc.stderr.splitlines()[0]}")
    return obj


def _objdump_lines(obj: Path) -> dict[str, list[tuple[int, str]]]:
    """section -> [(slot, text)] from llvm-objdump-19 -d --mcpu=v4."""
    out = subprocess.run(["llvm-objdump-19", "-d", "--mcpu=v4", str(obj)], capture_output=True,
                         text=True, check=True).stdout
    sections: dict[str, list[tuple[int, str]]] = {}
    current = None
    for line in out.splitlines():
        if line.startswith("Disassembly of section "):
            current = sections.setdefault(line[len("Disassembly of section "):-1], [])
        m = _LINE.match(line)
        if m and current is not None:
            current.append((int(m.group(1)), m.group(3)))
    return sections


@pytest.mark.parametrize("cpu", ["v3", "v4"])
@pytest.mark.parametrize("source", sorted(FIXTURES.glob("*.c")), ids=lambda p: p.stem)
def test_clang_output_prints_like_llvm_objdump_and_reads_back(source, cpu, tmp_path):
    obj = _compile(source, cpu, tmp_path)
    elf = ELFFile(io.BytesIO(obj.read_bytes()))
    listed = _objdump_lines(obj)
    assert listed
    for name, lines in listed.items():
        code = elf.get_section_by_name(name).data()
        insns = isa.decode(code, check=False)
        starts = isa.slot_starts(insns)
        assert [(pc, format_instruction(i)) for pc, i in zip(starts, insns)] == lines, name
        text = "\n".join(t.replace("\t", " ") for _, t in lines) + "\n"
        again = assemble(text, f"{source.name}:{name}", syntax="llvm")
        # llvm-objdump's text cannot tell a bpf-to-bpf call from a helper call: compare the
        # rest byte for byte and those calls by immediate
        for a, b in zip(again.insns, insns):
            if b.opcode == isa.JMP | isa.CALL:
                assert a.imm == b.imm
            else:
                assert a == b


@pytest.mark.parametrize("source", sorted(FIXTURES.glob("*.c")), ids=lambda p: p.stem)
def test_disasm_objdump_mode_prints_the_whole_object_as_llvm_objdump_does(source, tmp_path):
    from click.testing import CliRunner

    import pybpf.cli.asm  # noqa: F401  (registers the commands)
    from pybpf.cli import cli

    obj = _compile(source, "v4", tmp_path)
    result = CliRunner().invoke(cli, ["disasm", "--objdump", str(obj)])
    assert result.exit_code == 0, result.output
    reference = subprocess.run(["llvm-objdump-19", "-d", "--mcpu=v4", str(obj)],
                               capture_output=True, text=True, check=True).stdout
    assert result.output == reference
