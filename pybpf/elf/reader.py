"""Read the parts of a BPF ELF object that matter: sections, symbols, relocations.

Built on pyelftools. The ELF header is checked by hand first (magic, 64-bit, little-endian,
``EM_BPF``, relocatable) so that the commonest mistakes -- an x86 object, a truncated file --
get a precise message before pyelftools sees the bytes. Everything pyelftools raises on a
malformed file is turned into :class:`ObjectFileError` naming the section being read.

Like libbpf (``bpf_object__elf_collect``), only relocations that apply to code sections and to
``.maps`` are kept; those of DWARF and BTF sections are irrelevant to loading.
"""

from __future__ import annotations

import io
import struct
from contextlib import contextmanager
from dataclasses import dataclass, field

from ..errors import BPFError, ObjectFileError

EM_BPF = 247
ET_REL = 1
SHF_EXECINSTR = 0x4
ELF_MACHINES = {3: "x86 (i386)", 62: "x86-64", 183: "AArch64", 40: "ARM", 243: "RISC-V",
                8: "MIPS", 21: "PowerPC64", 22: "s390", 0: "none"}

# relocation types of the BPF ELF ABI (llvm/BinaryFormat/ELFRelocs/BPF.def)
R_BPF_NONE, R_BPF_64_64, R_BPF_64_ABS64, R_BPF_64_ABS32, R_BPF_64_NODYLD32 = 0, 1, 2, 3, 4
R_BPF_64_32 = 10
RELOC_NAMES = {0: "R_BPF_NONE", 1: "R_BPF_64_64", 2: "R_BPF_64_ABS64", 3: "R_BPF_64_ABS32",
               4: "R_BPF_64_NODYLD32", 10: "R_BPF_64_32"}


_SYM = struct.Struct("<IBBHQQ")     # Elf64_Sym
_REL = struct.Struct("<QQ")         # Elf64_Rel
_SYM_TYPES = {0: "STT_NOTYPE", 1: "STT_OBJECT", 2: "STT_FUNC", 3: "STT_SECTION", 4: "STT_FILE",
              5: "STT_COMMON", 6: "STT_TLS"}
_SYM_BINDS = {0: "STB_LOCAL", 1: "STB_GLOBAL", 2: "STB_WEAK"}
_SPECIAL_SHNDX = {0: "SHN_UNDEF", 0xFFF1: "SHN_ABS", 0xFFF2: "SHN_COMMON"}


@dataclass(slots=True)
class Section:
    index: int
    name: str
    type: str           # SHT_PROGBITS, SHT_NOBITS, ...
    flags: int
    data: bytes         # zeros for SHT_NOBITS
    size: int

    @property
    def is_exec(self) -> bool:
        return self.type == "SHT_PROGBITS" and bool(self.flags & SHF_EXECINSTR) and self.size > 0


@dataclass(slots=True)
class Symbol:
    index: int
    name: str
    value: int
    size: int
    type: str           # STT_FUNC, STT_OBJECT, STT_SECTION, STT_NOTYPE, ...
    bind: str           # STB_GLOBAL, STB_LOCAL, STB_WEAK
    shndx: int | str    # section index, or SHN_UNDEF / SHN_ABS / SHN_COMMON


@dataclass(slots=True)
class Relocation:
    offset: int         # byte offset in the section the relocation applies to
    type: int           # R_BPF_*
    symbol: Symbol

    @property
    def type_name(self) -> str:
        return RELOC_NAMES.get(self.type, f"R_BPF_{self.type}")


@dataclass
class ElfObject:
    name: str
    sections: list[Section]
    symbols: list[Symbol]
    # section index -> {byte offset -> relocation}
    relocations: dict[int, dict[int, Relocation]] = field(default_factory=dict)

    def section(self, name: str) -> Section | None:
        for s in self.sections:
            if s.name == name:
                return s
        return None

    def section_name(self, shndx: int | str) -> str:
        if isinstance(shndx, int) and 0 <= shndx < len(self.sections):
            return self.sections[shndx].name
        return str(shndx)


@contextmanager
def guard(where: str):
    """Turn whatever pyelftools or struct raise on malformed bytes into ObjectFileError."""
    try:
        yield
    except BPFError:
        raise
    except Exception as exc:  # pyelftools raises ELFError, struct.error, ValueError, ...
        detail = str(exc) or type(exc).__name__
        raise ObjectFileError(f"{where}: malformed ({detail})") from None


def check_header(data: bytes, name: str) -> None:
    """Refuse anything that is not a 64-bit little-endian relocatable BPF ELF object."""
    if len(data) < 64:
        raise ObjectFileError(f"{name}: {len(data)} bytes is too short for an ELF header "
                              f"(truncated file?)")
    if data[:4] != b"\x7fELF":
        raise ObjectFileError(f"{name}: not an ELF file (bad magic {data[:4]!r})")
    if data[4] != 2:
        raise ObjectFileError(f"{name}: not a 64-bit ELF object (EI_CLASS={data[4]})")
    if data[5] != 1:
        raise ObjectFileError(f"{name}: big-endian BPF objects (bpfeb) are not supported; "
                              f"compile with -target bpfel or -target bpf")
    e_type, e_machine = struct.unpack_from("<HH", data, 16)
    if e_machine != EM_BPF:
        arch = ELF_MACHINES.get(e_machine, f"machine {e_machine}")
        raise ObjectFileError(f"{name}: wrong machine: {arch} (expected BPF, EM_BPF={EM_BPF}; "
                              f"compile with clang -target bpf)")
    if e_type != ET_REL:
        raise ObjectFileError(f"{name}: not a relocatable object (e_type={e_type}); BPF "
                              f"objects come from clang -c")
    shoff, = struct.unpack_from("<Q", data, 40)
    shentsize, shnum = struct.unpack_from("<HH", data, 58)
    if shnum and (shentsize != 64 or shoff + shnum * shentsize > len(data)):
        raise ObjectFileError(f"{name}: section header table runs past the end of the file "
                              f"({len(data)} bytes; truncated?)")


def read_elf(data: bytes, name: str) -> ElfObject:
    """Sections, symbols and the relocations of code and ``.maps`` sections."""
    from elftools.elf.elffile import ELFFile

    check_header(data, name)
    with guard(f"{name}: ELF header"):
        elf = ELFFile(io.BytesIO(data))
        num = elf.num_sections()
    sections: list[Section] = []
    raw_sections = []
    for index in range(num):
        with guard(f"{name}: section {index}"):
            sec = elf.get_section(index)
            hdr = sec.header
            sec_name = sec.name
        where = f"{name}: section '{sec_name}'"
        size = hdr["sh_size"]
        if hdr["sh_type"] == "SHT_NOBITS":
            body = bytes(min(size, 1 << 30))
        elif hdr["sh_type"] == "SHT_NULL":
            body = b""
        else:
            if hdr["sh_offset"] + size > len(data):
                raise ObjectFileError(f"{where} runs past the end of the file "
                                      f"({hdr['sh_offset']} + {size} > {len(data)}; truncated?)")
            body = data[hdr["sh_offset"]:hdr["sh_offset"] + size]
        sections.append(Section(index, sec_name, hdr["sh_type"], hdr["sh_flags"], body, size))
        raw_sections.append(sec)

    symtab = next((s for s in sections if s.type == "SHT_SYMTAB"), None)
    if symtab is None:
        raise ObjectFileError(f"{name}: no symbol table (.symtab); was the object stripped?")
    # symbols and relocations are fixed-size records: read them with struct (pyelftools'
    # construct-based parsing would be most of the load time)
    link = raw_sections[symtab.index].header["sh_link"]
    if not 0 < link < num or sections[link].type != "SHT_STRTAB":
        raise ObjectFileError(f"{name}: section '.symtab' links to section {link}, which is "
                              f"not a string table")
    strtab = sections[link].data
    if len(symtab.data) % _SYM.size:
        raise ObjectFileError(f"{name}: section '.symtab' size {len(symtab.data)} is not a "
                              f"multiple of {_SYM.size}")
    symbols: list[Symbol] = []
    for i, (st_name, st_info, _other, shndx, value, size) in enumerate(
            _SYM.iter_unpack(symtab.data)):
        if st_name >= max(len(strtab), 1) and st_name:
            raise ObjectFileError(f"{name}: section '.symtab': symbol {i} name offset "
                                  f"{st_name} is outside the string table")
        end = strtab.find(b"\0", st_name)
        sym_name = strtab[st_name:end if end >= 0 else len(strtab)].decode("utf-8", "replace")
        stype = _SYM_TYPES.get(st_info & 0xF, f"STT_{st_info & 0xF}")
        index: int | str = _SPECIAL_SHNDX.get(shndx, shndx)
        if stype == "STT_SECTION" and isinstance(index, int) and index < num:
            sym_name = sections[index].name
        symbols.append(Symbol(i, sym_name, value, size, stype,
                              _SYM_BINDS.get(st_info >> 4, f"STB_{st_info >> 4}"), index))

    obj = ElfObject(name, sections, symbols)
    for sec, raw in zip(sections, raw_sections):
        if sec.type == "SHT_RELA":
            raise ObjectFileError(f"{name}: section '{sec.name}': RELA relocations are not "
                                  f"used by BPF objects")
        if sec.type != "SHT_REL":
            continue
        target_index = raw.header["sh_info"]
        if not 0 < target_index < num:
            raise ObjectFileError(f"{name}: section '{sec.name}' applies to section "
                                  f"{target_index}, which does not exist")
        target = sections[target_index]
        if not (target.is_exec or target.name == ".maps"):
            continue
        where = f"{name}: section '{sec.name}'"
        if len(sec.data) % _REL.size:
            raise ObjectFileError(f"{where}: size {len(sec.data)} is not a multiple of "
                                  f"{_REL.size}")
        table: dict[int, Relocation] = {}
        for offset, info in _REL.iter_unpack(sec.data):
            sym_index = info >> 32
            if sym_index >= len(symbols):
                raise ObjectFileError(f"{where}: relocation at offset {offset} names symbol "
                                      f"{sym_index}, but there are only {len(symbols)} "
                                      f"symbols")
            table[offset] = Relocation(offset, info & 0xFFFFFFFF, symbols[sym_index])
        obj.relocations[target_index] = table
    return obj
