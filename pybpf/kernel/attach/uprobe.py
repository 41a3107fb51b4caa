"""uprobes and uretprobes: a perf event of the ``uprobe`` PMU at a file offset of a binary.

The offset is resolved from the ELF symbol as the kernel wants it: a *file* offset, i.e. the
symbol's virtual address translated through the PT_LOAD segment that contains it (what libbpf's
``elf_sym_offset`` computes).
"""

from __future__ import annotations

import ctypes
import os

from ...errors import ObjectFileError, UsageError
from .. import perf
from ..link import Link
from ._perf_link import perf_link


def symbol_offset(path: str, symbol: str) -> int:
    """The file offset of function ``symbol`` in the ELF file at ``path``."""
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    try:
        with open(path, "rb") as f:
            elf = ELFFile(f)
            address = None
            for section_name in (".symtab", ".dynsym"):
                table = elf.get_section_by_name(section_name)
                if table is None:
                    continue
                for sym in table.get_symbol_by_name(symbol) or []:
                    # a GNU ifunc (type 10) is STT_LOOS to pyelftools
                    if sym["st_value"] and sym["st_info"]["type"] in (
                            "STT_FUNC", "STT_GNU_IFUNC", "STT_LOOS"):
                        address = sym["st_value"]
                        break
                if address is not None:
                    break
            if address is None:
                raise UsageError(f"{path}: no function symbol '{symbol}'")
            for seg in elf.iter_segments():
                if seg["p_type"] == "PT_LOAD" and seg["p_vaddr"] <= address < \
                        seg["p_vaddr"] + seg["p_memsz"]:
                    return address - seg["p_vaddr"] + seg["p_offset"]
    except FileNotFoundError:
        raise UsageError(f"no such binary: {path}") from None
    except ELFError as exc:
        raise ObjectFileError(f"{path}: not an ELF file ({exc})") from None
    raise ObjectFileError(f"{path}: symbol '{symbol}' is not inside any loadable segment")


def attach_uprobe(program, path: str, symbol: str | None = None, *, offset: int = 0,
                  retprobe: bool = False, pid: int = -1) -> Link:
    """Run a kprobe-type program when ``path``'s function ``symbol`` (plus ``offset``) is
    entered (or returns, with ``retprobe``), in process ``pid`` or in every process (-1)."""
    path = os.path.realpath(path)
    where = offset + (symbol_offset(path, symbol) if symbol else 0)
    name = ctypes.create_string_buffer(os.fsencode(path))
    attr = perf.PerfEventAttr(type=perf.pmu_type("uprobe"), sample_period=1, wakeup_events=1,
                              config=perf.pmu_retprobe_bit("uprobe") if retprobe else 0,
                              config1=ctypes.addressof(name), config2=where)
    kind = "uretprobe" if retprobe else "uprobe"
    pfd = perf.perf_event_open(attr, pid=pid, cpu=0 if pid == -1 else -1,
                               what=f"{kind} {path}:{symbol or hex(where)}")
    return perf_link(program, pfd, kind, f"{path}:{symbol or ''}+{offset:#x}")
