"""The code sections of an object as they are in the file (before linking), for disassembly.

``llvm-objdump -d -r`` prints each code section with its function symbols as labels and the
relocations under the instructions they patch; ``-S`` interleaves source lines. This module
gives the same facts as data so :mod:`pybpf.cli.asm` can print them.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from .. import isa
from ..btf.parser import parse_btf, parse_btf_ext
from ..errors import BTFError, DecodeError, ObjectFileError
from .reader import read_elf


@dataclass
class TextSection:
    """One code section: instructions as stored (unrelocated) and what annotates them."""

    name: str
    insns: list[isa.Instruction]
    symbols: dict[int, str] = field(default_factory=dict)          # slot -> function name
    relocations: dict[int, tuple[str, str]] = field(default_factory=dict)  # slot -> (type, sym)
    lines: dict[int, str] = field(default_factory=dict)            # slot -> "file:line: text"
    source: dict[int, str] = field(default_factory=dict)           # slot -> source text only
    core: dict[int, str] = field(default_factory=dict)             # slot -> CO-RE relocation

    @property
    def slot_starts(self) -> list[int]:
        return isa.slot_starts(self.insns)


def text_sections(source: str | os.PathLike | bytes, name: str | None = None
                  ) -> list[TextSection]:
    """Every non-empty code section of an object, in file order."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, name = bytes(source), name or "<object>"
    else:
        name = name or os.fspath(source)
        try:
            with open(source, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise ObjectFileError(f"{name}: cannot read ({exc.strerror})") from None
    obj = read_elf(data, name)
    ext = None
    btf_sec, ext_sec = obj.section(".BTF"), obj.section(".BTF.ext")
    if btf_sec is not None and ext_sec is not None:
        try:
            btf = parse_btf(btf_sec.data)
            ext = parse_btf_ext(ext_sec.data, btf)
        except BTFError as exc:
            raise BTFError(f"{name}: {exc}") from None
    out = []
    for sec in obj.sections:
        if not sec.is_exec:
            continue
        try:
            insns = isa.decode(sec.data, check=False)
        except DecodeError as exc:
            raise ObjectFileError(f"{name}: section '{sec.name}': {exc}") from None
        ts = TextSection(sec.name, insns)
        for sym in obj.symbols:
            if sym.shndx == sec.index and sym.type == "STT_FUNC":
                ts.symbols[sym.value // 8] = sym.name
        for off, rel in obj.relocations.get(sec.index, {}).items():
            ts.relocations[off // 8] = (rel.type_name, rel.symbol.name)
        if ext is not None:
            for li in ext.line_info.get(sec.name, ()):
                ts.lines[li.insn_off // 8] = f"{li.file}:{li.line}: {li.line_text.strip()}"
                ts.source[li.insn_off // 8] = li.line_text
            for relo in ext.core_relos.get(sec.name, ()):
                ts.core[relo.insn_off // 8] = describe_core_relocation(btf, relo)
        out.append(ts)
    return out


_INSN_LINE = re.compile(r"^\s*(\d+):\t")


#: how llvm-objdump -r names CO-RE relocation kinds
CORE_KIND_WORDS = {
    0: "byte_off", 1: "byte_sz", 2: "field_exists", 3: "signed", 4: "lshift_u64",
    5: "rshift_u64", 6: "local_type_id", 7: "target_type_id", 8: "type_exists", 9: "type_size",
    10: "enumval_exists", 11: "enumval_value", 12: "type_matches",
}


def describe_core_relocation(btf, relo) -> str:
    """``<byte_off> [18] struct task_struct::comm[3] (0:2:3)``, as llvm-objdump -r shows it."""
    from ..btf import types as T
    from ..btf.cprinter import type_name

    word = CORE_KIND_WORDS.get(relo.kind, f"kind{relo.kind}")
    try:
        root = type_name(btf, relo.type_id).rstrip()
        head = f"<{word}> [{relo.type_id}] {root}"
        raw = [int(x) for x in relo.access.split(":")]
        if relo.kind in (10, 11):
            t = btf.skip_modifiers(relo.type_id)
            v = t.values[raw[0]]
            return f"{head}::{v.name} = {v.value}"
        if relo.kind not in range(6):
            return head
        path = f"[{raw[0]}]" if raw[0] else ""
        type_id = relo.type_id
        sep = "::"
        for idx in raw[1:]:
            t = btf.skip_modifiers(type_id)
            if isinstance(t, T.Struct):
                m = t.members[idx]
                path += f"{sep}{m.name or f'<anon {idx}>'}"
                sep = "."
                type_id = m.type_id
            elif isinstance(t, T.Array):
                path += f"[{idx}]"
                type_id = t.type_id
        return f"{head}{path} ({relo.access})"
    except (BTFError, IndexError, ValueError):
        return f"<{word}> [{relo.type_id}] ({relo.access})"


def annotate(listing: str, *, lines: dict[int, str] | None = None,
             relocations: dict[int, tuple[str, str]] | None = None,
             core: dict[int, str] | None = None, base: int = 0) -> str:
    """Interleave source lines and relocations into an llvm-objdump-style listing.

    Like ``llvm-objdump -S``, a ``; <source>`` line goes before the first instruction of each
    new source line (``lines``: slot -> source text); like ``-r``, a relocation goes under the
    instruction it patches (``relocations``: slot -> (type, symbol), printed at byte offset
    ``8 * slot``). ``base`` is added to slot numbers read from the listing.
    """
    out = []
    last = None
    for text in listing.splitlines():
        m = _INSN_LINE.match(text)
        if m is None:
            if text.endswith(">:"):
                last = None      # a new function: llvm-objdump starts its source afresh
            out.append(text)
            continue
        slot = int(m.group(1)) + base
        if lines and slot in lines and lines[slot] != last:
            last = lines[slot]
            out.append(f"; {last}")
        out.append(text)
        if relocations and slot in relocations:
            rtype, sym = relocations[slot]
            out.append(f"\t\t{8 * slot:016x}:  {rtype}\t{sym}")
        if core and slot in core:
            out.append(f"\t\t{8 * slot:016x}:  CO-RE {core[slot]}")
    return "\n".join(out) + ("\n" if listing.endswith("\n") else "")


def objdump_listing(source: str | os.PathLike | bytes, *, relocs: bool = True,
                    source_lines: bool = True, name: str | None = None) -> str:
    """The object's code sections as ``llvm-objdump -d [-r] [-S]`` prints them.

    Sections are unrelocated (as stored); ``source_lines`` come from BTF line_info (llvm-objdump
    reads DWARF, so the two can differ in which instruction starts a line).
    """
    from ..asm import disassemble

    label = name or (os.fspath(source) if not isinstance(source, (bytes, bytearray)) else
                     "<object>")
    blocks = []
    for ts in text_sections(source, name=name):
        body = disassemble(ts.insns, labels=ts.symbols, section=ts.name, symbolic=False)
        body = annotate(body, lines={k: v.rstrip() for k, v in ts.source.items()}
                        if source_lines else None,
                        relocations=ts.relocations if relocs else None,
                        core=ts.core if relocs else None)
        blocks.append(f"Disassembly of section {ts.name}:\n\n{body}")
    return f"\n{label}:\tfile format elf64-bpf\n\n" + "\n".join(blocks)
