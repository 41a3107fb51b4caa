"""Turning addresses and stack ids into names, as bpftrace prints them.

Kernel addresses resolve through ``/proc/kallsyms`` (``ksym``: the name; stack frames:
``name+offset`` in decimal). User addresses resolve through the process's ``/proc/PID/maps``
and the ELF symbol tables of the mapped files, while the process still exists; otherwise they
are printed in hex, which is also what bpftrace does for a process that has gone.
"""

from __future__ import annotations

import bisect
import struct
from functools import lru_cache
from typing import Callable


def _hex(addr: int) -> str:
    """C's ``%#lx``, as bpftrace prints an address it cannot name (0 has no 0x)."""
    return f"{addr:#x}" if addr else "0"


class KernelSymbols:
    def __init__(self, path: str = "/proc/kallsyms"):
        addrs: list[int] = []
        names: list[str] = []
        try:
            with open(path) as fh:
                for line in fh:
                    parts = line.split()
                    if len(parts) < 3 or parts[1] in ("a", "A", "U"):
                        continue
                    if parts[2].startswith("__pi_"):  # early-boot aliases of real symbols
                        continue
                    addrs.append(int(parts[0], 16))
                    names.append(parts[2])
        except OSError:
            pass
        order = sorted(range(len(addrs)), key=addrs.__getitem__)  # stable: file order kept
        self._addrs = [addrs[i] for i in order]
        self._names = [names[i] for i in order]

    def lookup(self, addr: int) -> tuple[str, int] | None:
        i = bisect.bisect_right(self._addrs, addr) - 1
        if i < 0 or not self._addrs[i]:
            return None
        return self._names[i], addr - self._addrs[i]


@lru_cache(maxsize=64)
def _function_symbols(path: str) -> tuple[list[tuple[int, str, bool]], list[tuple[int, int, int]]]:
    """(address, name, is a GNU ifunc) of every function symbol of an ELF file (``.dynsym``
    first, then ``.symtab``; aliases kept) and its loadable segments."""
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    found: list[tuple[int, str, bool]] = []
    try:
        with open(path, "rb") as fh:
            elf = ELFFile(fh)
            segs = [(s["p_vaddr"], s["p_memsz"], s["p_offset"]) for s in elf.iter_segments()
                    if s["p_type"] == "PT_LOAD"]
            for secname in (".dynsym", ".symtab"):
                sec = elf.get_section_by_name(secname)
                if sec is None or not elf.elfclass == 64 or not elf.little_endian:
                    continue
                strings = elf.get_section(sec["sh_link"]).data()
                data = sec.data()
                # the symbol array in bulk: pyelftools decodes each symbol through construct
                # (tens of microseconds apiece; a libc has thousands)
                for name_off, info, _, _, value, _ in _SYM64.iter_unpack(
                        data[:len(data) - len(data) % _SYM64.size]):
                    kind = info & 0xF
                    if kind in (_STT_FUNC, _STT_GNU_IFUNC) and value and name_off:
                        end = strings.find(b"\0", name_off)
                        name = strings[name_off:end if end >= 0 else None].decode(
                            errors="replace")
                        if name:
                            found.append((value, name, kind == _STT_GNU_IFUNC))
    except (OSError, ELFError, ValueError, IndexError):
        return [], []
    return found, segs


#: Elf64_Sym: st_name, st_info, st_other, st_shndx, st_value, st_size
_SYM64 = struct.Struct("<IBBHQQ")
_STT_FUNC, _STT_GNU_IFUNC = 2, 10


def function_names(path: str) -> set[str]:
    """The names a uprobe on ``path`` can attach to: every function symbol, ifuncs too."""
    return {name for _, name, _ in _function_symbols(path)[0]}


def _elf_symbols(path: str) -> tuple[list[int], list[str], list[tuple[int, int, int]]]:
    """Function symbols of an ELF file by address (the first name of each, ifunc resolvers
    left out: what a stack frame prints) and its loadable segments."""
    found, segs = _function_symbols(path)
    syms: dict[int, str] = {}
    for addr, name, ifunc in found:
        if not ifunc:
            syms.setdefault(addr, name)
    addrs = sorted(syms)
    return addrs, [syms[a] for a in addrs], segs


def inet_text(value: bytes) -> str:
    """An ntop() value (family, 16 address bytes) as inet_ntop(3) writes it."""
    import socket

    (family,) = struct.unpack_from("<Q", value)
    if family == socket.AF_INET6:
        return socket.inet_ntop(socket.AF_INET6, bytes(value[8:24]))
    return socket.inet_ntop(socket.AF_INET, bytes(value[8:12]))


def user_name(uid: int) -> str:
    """The user called ``uid`` in the password database (the number when there is none)."""
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def wall_time(fmt: str, boot_ns: int) -> str:
    """A CLOCK_MONOTONIC time (the nsecs builtin) as the wall-clock time in strftime's
    ``fmt``; ``%f`` is the microseconds (bpftrace's extension)."""
    import datetime
    import time

    wall_ns = boot_ns + time.time_ns() - time.monotonic_ns()
    when = datetime.datetime.fromtimestamp(wall_ns / 1e9)
    return when.strftime(fmt.replace("%f", f"{(wall_ns // 1000) % 1_000_000:06d}"))


class Symbolizer:
    """What :mod:`.output` calls to print symbol and stack values."""

    def __init__(self, stack_frames: Callable[[int], list[int]] | None = None,
                 formats: list | None = None):
        self._stack_frames = stack_frames
        self._formats = formats or []   # the script's formats: strftime()'s live there
        self._kernel: KernelSymbols | None = None

    @property
    def kernel(self) -> KernelSymbols:
        if self._kernel is None:
            self._kernel = KernelSymbols()
        return self._kernel

    def ksym(self, addr: int) -> str:
        hit = self.kernel.lookup(addr)
        return hit[0] if hit and hit[1] < 1 << 20 else _hex(addr)

    def _kframe(self, addr: int) -> str:
        hit = self.kernel.lookup(addr)
        return f"{hit[0]}+{hit[1]}" if hit and hit[1] < 1 << 20 else _hex(addr)

    def usym(self, addr: int, pid: int, with_offset: bool = False) -> str:
        try:
            with open(f"/proc/{pid}/maps") as fh:
                maps = fh.read().splitlines()
        except OSError:
            return _hex(addr)
        for line in maps:
            parts = line.split(maxsplit=5)
            lo, _, hi = parts[0].partition("-")
            if not int(lo, 16) <= addr < int(hi, 16) or len(parts) < 6:
                continue
            path = parts[5].strip()
            if not path.startswith("/"):
                return _hex(addr)
            file_off = addr - int(lo, 16) + int(parts[2], 16)
            addrs, names, segs = _elf_symbols(path)
            for vaddr, memsz, offset in segs:
                if offset <= file_off < offset + memsz:
                    vaddr_hit = file_off - offset + vaddr
                    i = bisect.bisect_right(addrs, vaddr_hit) - 1
                    if i >= 0:
                        off = vaddr_hit - addrs[i]
                        return f"{names[i]}+{off}" if with_offset else names[i]
            return _hex(addr)
        return _hex(addr)

    def frames(self, stack_id: int) -> list[int]:
        if stack_id < 0 or self._stack_frames is None:
            return []
        return [a for a in self._stack_frames(stack_id) if a]

    def kstack(self, stack_id: int, limit: int = 0) -> str:
        frames = self.frames(stack_id)
        if limit:
            frames = frames[:limit]
        return "\n" + "".join(f"    {self._kframe(a)}\n" for a in frames)

    def ustack(self, raw: bytes, limit: int = 0) -> str:
        stack_id, pid = struct.unpack_from("<qQ", raw)
        frames = self.frames(stack_id)
        if limit:
            frames = frames[:limit]
        return "\n" + "".join(f"    {self.usym(a, pid, True)}\n" for a in frames)

    def show(self, display: str, value, frames: int = 0) -> str:
        """Text of one value of a symbol/stack type (``value``: int, or 16 raw bytes)."""
        if display == "ksym":
            return self.ksym(value)
        if display == "kstack":
            return self.kstack(value, frames)
        if display == "usym":
            addr, pid = struct.unpack_from("<QQ", value)
            return self.usym(addr, pid)
        if display == "ustack":
            return self.ustack(value, frames)
        if display == "inet":
            return inet_text(value)
        if display == "username":
            return user_name(value)
        if display == "strftime":
            ident, ns = struct.unpack_from("<QQ", value)
            return wall_time(self._formats[ident].fmt, ns)
        return str(value)
