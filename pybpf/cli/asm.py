"""``pybpf asm`` and ``pybpf disasm``.

``asm`` writes raw little-endian bytecode to ``-o OUT`` (never over its input), or the bytecode
as one hex line on standard output -- the form ``pybpf plugin`` reads on its standard input.

``disasm`` prints llvm-objdump's layout (see :mod:`pybpf.asm.printer`): for a raw bytecode file
(``.bin``; a file of hex text is accepted too) exactly what ``llvm-objdump -d --mcpu=v4`` prints
for the same code in a ``.text`` section, from the first block header on; for an ELF object,
each program as pybpf loads it (relocated, its subprograms appended, its maps declared with
``.map`` and loaded by name) under a ``Disassembly of section NAME:`` line; for an assembly
file, its listing (which turns uBPF syntax into LLVM syntax). Every listing assembles back to
the same program with ``pybpf asm``.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import click

from .. import isa
from ..asm import SYNTAXES, assemble, detect_syntax, disassemble, format_instruction
from ..errors import DecodeError, ObjectFileError, UsageError
from ..program import Program
from . import cli

_HEX_TEXT = re.compile(rb"[0-9a-fA-F\s]*\Z")


def _read_text(path: str) -> str:
    if path == "-":
        return click.get_text_stream("stdin").read()
    try:
        return Path(path).read_text()
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not a text file (assembly is text; use 'pybpf disasm' for "
                         f"bytecode)") from None
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror}") from None


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


@cli.command("asm")
@click.argument("source", metavar="FILE.s")
@click.option("-o", "--output", metavar="OUT.bin", help="write raw bytecode here "
              "(default: hex on standard output)")
@click.option("--syntax", type=click.Choice(SYNTAXES), default="auto", show_default=True,
              help="assembly syntax: LLVM/kernel or uBPF (auto-detected)")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def asm_command(source: str, output: str | None, syntax: str, as_json: bool) -> None:
    """Assemble FILE.s (LLVM/kernel or uBPF syntax) into eBPF bytecode."""
    if output and source != "-" and _same_file(source, output):
        raise UsageError(f"refusing to overwrite the input file {source} with bytecode; "
                         f"choose another -o")
    text = _read_text(source)
    if syntax == "auto":
        syntax = detect_syntax(text)
    program = assemble(text, "<stdin>" if source == "-" else source, syntax)
    code = program.bytecode()
    if output:
        try:
            Path(output).write_bytes(code)
        except OSError as exc:
            raise UsageError(f"{output}: {exc.strerror}") from None
    if as_json:
        click.echo(json.dumps({
            "file": source,
            "output": output,
            "syntax": syntax,
            "bytecode": code.hex(),
            "instructions": len(program.insns),
            "slots": program.num_slots,
            "labels": {name: slot for slot, name in sorted(program.labels.items())},
            "maps": [_map_json(m) for m in program.maps],
        }))
    elif not output:
        click.echo(code.hex())


def _is_text(data: bytes) -> bool:
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True


def _load_programs(path: str) -> tuple[str, list[Program]]:
    """("raw", "elf" or "asm", programs) for a bytecode, hex, ELF or assembly file."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror}") from None
    if data.startswith(b"\x7fELF"):
        try:
            from ..elf import load_object
        except ImportError as exc:
            raise ObjectFileError(f"{path}: ELF objects need pybpf.elf, which is not "
                                  f"available ({exc})") from None
        return "elf", list(load_object(path).programs.values())
    is_hex = bool(data.strip()) and _HEX_TEXT.match(data) is not None
    if not is_hex and b"\0" not in data and _is_text(data):
        # assembly text: its listing (this also turns uBPF syntax into LLVM syntax)
        return "asm", [assemble(data.decode(), path)]
    if is_hex:
        digits = re.sub(rb"\s", b"", data)
        if len(digits) % 2:
            raise DecodeError(f"{path}: hex text has an odd number of digits ({len(digits)})")
        data = bytes.fromhex(digits.decode())
    try:
        insns = isa.decode(data)
    except DecodeError as exc:
        raise DecodeError(f"{path}: {exc}") from None
    return "raw", [Program(insns, name=Path(path).stem)]


def _program_json(program: Program) -> dict:
    out = []
    pc = 0
    for insn in program.insns:
        entry = {"pc": pc, "bytes": insn.encode().hex(), "text": format_instruction(insn)}
        if pc in program.labels:
            entry["label"] = program.labels[pc]
        out.append(entry)
        pc += insn.slots
    return {"name": program.name, "section": program.section, "instructions": out,
            "maps": [_map_json(m) for m in program.maps]}


def _map_json(spec) -> dict:
    return {"name": spec.name, "type": spec.type, "key_size": spec.key_size,
            "value_size": spec.value_size, "max_entries": spec.max_entries, "flags": spec.flags}


def _objdump_sections(path: str) -> str:
    """An ELF object's code sections exactly as ``llvm-objdump -d --mcpu=v4`` lists them:
    unrelocated bytes, the section's symbols as block headers."""
    from elftools.common.exceptions import ELFError
    from elftools.elf.constants import SH_FLAGS
    from elftools.elf.elffile import ELFFile

    try:
        with open(path, "rb") as f:
            elf = ELFFile(f)
            symbols: dict[int, dict[int, str]] = {}
            symtab = elf.get_section_by_name(".symtab")
            for sym in symtab.iter_symbols() if symtab else ():
                if sym.name and sym["st_info"]["type"] in ("STT_FUNC", "STT_NOTYPE") \
                        and isinstance(sym["st_shndx"], int):
                    symbols.setdefault(sym["st_shndx"], {}).setdefault(sym["st_value"] // 8,
                                                                       sym.name)
            blocks = []
            for index, section in enumerate(elf.iter_sections()):
                if not section["sh_flags"] & SH_FLAGS.SHF_EXECINSTR or not section.data_size:
                    continue
                insns = isa.decode(section.data(), check=False)
                blocks.append(f"Disassembly of section {section.name}:\n\n" + disassemble(
                    insns, labels=symbols.get(index, {}), section=section.name,
                    symbolic=False))
    except (ELFError, OSError, DecodeError) as exc:
        raise ObjectFileError(f"{path}: {exc}") from None
    return f"\n{path}:\tfile format elf64-bpf\n\n" + "\n".join(blocks)


@cli.command("disasm")
@click.argument("path", metavar="FILE.bin|FILE.o", type=click.Path(dir_okay=False))
@click.option("--objdump", "objdump", is_flag=True,
              help="print exactly what llvm-objdump -d --mcpu=v4 prints (for an object: its "
                   "unrelocated sections; no map or subprogram names)")
@click.option("--source/--no-source", default=True, show_default=True,
              help="for an object with BTF line info: interleave the C source lines, like "
                   "llvm-objdump -S")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def disasm_command(path: str, objdump: bool, source: bool, as_json: bool) -> None:
    """Disassemble raw bytecode or an ELF object into LLVM syntax, like llvm-objdump -d."""
    if objdump and not as_json and Path(path).is_file() and \
            Path(path).read_bytes()[:4] == b"\x7fELF":
        click.echo(_objdump_sections(path), nl=False)
        return
    kind, programs = _load_programs(path)
    if as_json:
        click.echo(json.dumps({"file": path, "format": kind,
                               "programs": [_program_json(p) for p in programs]}))
        return
    if kind != "elf":
        click.echo(disassemble(programs[0], section=".text", symbolic=not objdump), nl=False)
        return
    blocks = []
    for program in programs:
        section = program.section or ".text"
        labels = program.labels or {0: program.name}
        listing = disassemble(program, labels=labels, section=section, symbolic=not objdump)
        if source and program.lines:
            from ..elf.text import annotate

            # lines hold "file:line: text"; -S shows the text
            listing = annotate(listing, lines={slot: text.split(": ", 1)[-1]
                                               for slot, text in program.lines.items()})
        blocks.append(f"Disassembly of section {section}:\n\n" + listing)
    click.echo("\n".join(blocks), nl=False)
