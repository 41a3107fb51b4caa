"""The code sections of an object as they are in the file (before linking), for disassembly.

``llvm-objdump -d -r`` prints each code section with its function symbols as labels and the
relocations under the instructions they patch; ``-S`` interleaves source lines. This module
gives the same facts as data so :mod:`pybpf.cli.asm` can print them.
"""

from __future__ import annotations

import os
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
            ext = parse_btf_ext(ext_sec.data, parse_btf(btf_sec.data))
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
        out.append(ts)
    return out
