"""Link one entry program of an object: append subprograms, fix calls, rewrite map loads.

Follows libbpf (``bpf_object__reloc_code`` / ``bpf_object__relocate_data`` /
``bpf_core_patch_insn``):

- the entry function's instructions come first; each ``.text`` (or same-section) function it
  calls is appended at the end the first time it is needed, and its own calls are resolved
  right away -- a depth-first, first-use order, which is what ``bpftool prog dump xlated``
  shows for a libbpf-loaded program;
- a bpf-to-bpf ``call`` with a relocation against symbol S targets byte ``S.value +
  (imm + 1) * 8`` of S's section; without a relocation it is relative to itself in its own
  section; ``lddw`` of a function address (``PSEUDO_FUNC``, bpf_loop callbacks) targets
  ``S.value + imm``;
- a ``lddw`` relocated against a map symbol becomes ``src=PSEUDO_MAP_IDX, imm=index`` into
  ``Program.maps``; against a global in ``.data``/``.rodata*``/``.bss``/``.kconfig`` it becomes
  ``src=PSEUDO_MAP_IDX_VALUE`` with the offset in the second slot's immediate;
- CO-RE relocations patch an ALU immediate, a load/store offset (and size) or a ``lddw``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Callable

from .. import isa
from ..btf import core as C
from ..btf.parser import CoreRelo
from ..errors import BTFError, DecodeError, ObjectFileError
from .reader import R_BPF_64_32, R_BPF_64_64, ElfObject, Relocation, Section

_CALL = isa.JMP | isa.CALL
_SLOT = struct.Struct("<BBhi")


@dataclass(slots=True)
class Function:
    """One function symbol: where its code is in its section."""

    name: str
    section: Section
    value: int          # byte offset in the section
    size: int
    is_global: bool

    @property
    def slots(self) -> int:
        return self.size // 8

    def contains(self, off: int) -> bool:
        return self.value <= off < self.value + self.size


@dataclass
class MapTarget:
    """What a data or map symbol resolves to: a map name and, for data, the byte offset."""

    map_name: str
    value_offset: int | None = None


@dataclass
class KernelSymbol:
    """A ``__ksym`` extern: ``kind`` "kfunc" / "var" (by kernel BTF id) or "addr"."""

    kind: str
    btf_id: int = 0
    address: int = 0
    poison: int = 0     # helper id to call instead of an unresolved weak kfunc


@dataclass
class Linked:
    """A linked program in raw slots, before decoding."""

    slots: list[list[int]]                      # [opcode, regs, off, imm] per slot
    placements: list[tuple[Function, int]]      # each function and its first slot
    maps: list[str] = field(default_factory=list)
    map_refs: list[tuple[int, str, int | None]] = field(default_factory=list)  # (slot, map, off)


class Linker:
    """Builds linked programs of one object (functions are shared between programs)."""

    def __init__(self, obj: ElfObject, functions: list[Function],
                 resolve_symbol: Callable[[Relocation, int, str], "MapTarget | KernelSymbol"],
                 core_relos: dict[str, list[CoreRelo]],
                 core_resolver: Callable[[CoreRelo], C.CoreResult] | None):
        self.obj = obj
        self.functions = functions
        self.by_section: dict[int, list[Function]] = {}
        for f in functions:
            self.by_section.setdefault(f.section.index, []).append(f)
        self.resolve_symbol = resolve_symbol
        self.core_relos = core_relos
        self.core_resolver = core_resolver
        self._raw: dict[int, list[list[int]]] = {}

    def _section_slots(self, sec: Section) -> list[list[int]]:
        raw = self._raw.get(sec.index)
        if raw is None:
            if len(sec.data) % 8:
                raise ObjectFileError(f"{self.obj.name}: section '{sec.name}': size "
                                      f"{len(sec.data)} is not a multiple of 8")
            raw = self._raw[sec.index] = [list(s) for s in _SLOT.iter_unpack(sec.data)]
        return raw

    def function_at(self, sec: Section, off: int, where: str) -> Function:
        for f in self.by_section.get(sec.index, ()):
            if f.contains(off):
                return f
        raise ObjectFileError(f"{where}: target offset {off} of section '{sec.name}' is not "
                              f"inside any function")

    def link(self, entry: Function) -> Linked:
        out = Linked([], [])
        placed: dict[int, int] = {}     # id(function) -> first slot

        def place(func: Function) -> int:
            start = len(out.slots)
            placed[id(func)] = start
            out.placements.append((func, start))
            base = func.value // 8
            out.slots.extend([list(s) for s in
                              self._section_slots(func.section)[base:base + func.slots]])
            self._apply_core(func, start, out)
            self._relocate(func, start, out, place, placed)
            return start

        place(entry)
        return out

    # --- code and data relocations -----------------------------------------------------------
    def _relocate(self, func: Function, start: int, out: Linked, place, placed) -> None:
        relocs = self.obj.relocations.get(func.section.index, {})
        name = self.obj.name
        i = 0
        while i < func.slots:
            slot = out.slots[start + i]
            sec_off = func.value + i * 8
            where = f"{name}: section '{func.section.name}' offset {sec_off} (in {func.name})"
            rel = relocs.get(sec_off)
            opcode, src = slot[0], slot[1] >> 4
            if opcode == isa.LDDW:
                if i + 1 >= func.slots:
                    raise ObjectFileError(f"{where}: lddw is cut off by the end of the function")
                if rel is not None:
                    self._relocate_lddw(rel, func, start + i, out, where, place, placed)
                i += 2
                continue
            if opcode == _CALL and rel is not None and rel.symbol.shndx == "SHN_UNDEF":
                self._check_type(rel, R_BPF_64_32, where)
                self._call_kfunc(rel, out.slots[start + i], where)
            elif opcode == _CALL and src == isa.CALL_LOCAL:
                if rel is not None:
                    self._check_type(rel, R_BPF_64_32, where)
                    sym = rel.symbol
                    tsec = self._exec_section(sym.shndx, sym.name, where)
                    target_off = sym.value + (slot[3] + 1) * 8
                else:
                    tsec = func.section
                    target_off = sec_off + (slot[3] + 1) * 8
                self._point_at(tsec, target_off, start + i, out, where, place, placed)
            elif rel is not None:
                if opcode == _CALL:
                    raise ObjectFileError(f"{where}: call to extern function "
                                          f"'{rel.symbol.name}' (kfuncs are not supported)")
                raise ObjectFileError(f"{where}: bad relocation {rel.type_name} against "
                                      f"'{rel.symbol.name}' on a {isa.Instruction(opcode).name} "
                                      f"instruction (only lddw and call are relocated)")
            i += 1

    def _call_kfunc(self, rel: Relocation, insn: list[int], where: str) -> None:
        target = self.resolve_symbol(rel, 0, where)
        if not isinstance(target, KernelSymbol) or target.kind != "kfunc":
            raise ObjectFileError(f"{where}: call to extern '{rel.symbol.name}', which is not a "
                                  f"__ksym kernel function")
        if target.btf_id:
            insn[1] = (isa.CALL_KFUNC << 4) | (insn[1] & 0x0F)
            insn[2], insn[3] = 0, target.btf_id
        else:   # an unresolved __weak kfunc: poisoned like libbpf does
            insn[1] = insn[1] & 0x0F
            insn[2], insn[3] = 0, _s32(target.poison)

    def _point_at(self, tsec: Section, target_off: int, slot: int, out: Linked, where: str,
                  place, placed) -> None:
        if target_off % 8:
            raise ObjectFileError(f"{where}: call target offset {target_off} is not a "
                                  f"multiple of 8")
        target = self.function_at(tsec, target_off, where)
        tstart = placed.get(id(target))
        if tstart is None:
            tstart = place(target)
        out.slots[slot][3] = tstart + (target_off - target.value) // 8 - slot - 1

    def _exec_section(self, shndx, sym_name: str, where: str) -> Section:
        if not isinstance(shndx, int) or not 0 < shndx < len(self.obj.sections) or \
                not self.obj.sections[shndx].is_exec:
            raise ObjectFileError(f"{where}: call to '{sym_name}', which is not code")
        return self.obj.sections[shndx]

    @staticmethod
    def _check_type(rel: Relocation, want: int, where: str) -> None:
        if rel.type != want:
            raise ObjectFileError(f"{where}: bad relocation type {rel.type_name} against "
                                  f"'{rel.symbol.name}'")

    def _relocate_lddw(self, rel: Relocation, func: Function, slot: int, out: Linked,
                       where: str, place, placed) -> None:
        self._check_type(rel, R_BPF_64_64, where)
        insn = out.slots[slot]
        sym = rel.symbol
        shndx = sym.shndx
        if isinstance(shndx, int) and 0 < shndx < len(self.obj.sections) and \
                self.obj.sections[shndx].is_exec:
            # address of a function (a callback for bpf_loop and friends)
            if insn[3] % 8:
                raise ObjectFileError(f"{where}: function address offset {insn[3]} is not a "
                                      f"multiple of 8")
            target_off = sym.value + insn[3]
            insn[1] = (isa.PSEUDO_FUNC << 4) | (insn[1] & 0x0F)
            self._point_at(self.obj.sections[shndx], target_off, slot, out, where, place,
                           placed)
            out.slots[slot + 1][3] = 0
            return
        target = self.resolve_symbol(rel, insn[3], where)
        if isinstance(target, KernelSymbol):
            if target.kind == "kfunc":
                raise ObjectFileError(f"{where}: the address of kfunc '{sym.name}' cannot be "
                                      f"taken")
            if target.kind == "var" and target.btf_id:
                insn[1] = (isa.PSEUDO_BTF_ID << 4) | (insn[1] & 0x0F)
                insn[3], out.slots[slot + 1][3] = target.btf_id, 0
            else:   # an untyped ksym (or an unresolved weak one): its address, or 0
                insn[1] = insn[1] & 0x0F
                insn[3] = _s32(target.address & 0xFFFFFFFF)
                out.slots[slot + 1][3] = _s32(target.address >> 32)
            return
        if target.map_name not in out.maps:
            out.maps.append(target.map_name)
        index = out.maps.index(target.map_name)
        if target.value_offset is None:
            insn[1] = (isa.PSEUDO_MAP_IDX << 4) | (insn[1] & 0x0F)
            insn[3] = index
            out.slots[slot + 1][3] = 0
        else:
            insn[1] = (isa.PSEUDO_MAP_IDX_VALUE << 4) | (insn[1] & 0x0F)
            insn[3] = index
            out.slots[slot + 1][3] = target.value_offset
        out.map_refs.append((slot, target.map_name, target.value_offset))

    # --- CO-RE -------------------------------------------------------------------------------
    def _apply_core(self, func: Function, start: int, out: Linked) -> None:
        relos = self.core_relos.get(func.section.name)
        if not relos:
            return
        for relo in relos:
            if not func.contains(relo.insn_off):
                continue
            where = (f"{self.obj.name}: section '{func.section.name}' offset {relo.insn_off} "
                     f"(in {func.name})")
            if relo.insn_off % 8:
                raise BTFError(f"{where}: CO-RE relocation not on an instruction boundary")
            if self.core_resolver is None:
                continue
            try:
                result = self.core_resolver(relo)
            except BTFError as exc:
                raise BTFError(f"{where}: {exc}") from None
            patch_insn(out.slots, start + (relo.insn_off - func.value) // 8, result, where)


_SIZE_CODES = {1: isa.B, 2: isa.H, 4: isa.W, 8: isa.DW}


def patch_insn(slots: list[list[int]], slot: int, result: C.CoreResult, where: str) -> None:
    """Write a resolved CO-RE value into the instruction (``bpf_core_patch_insn``)."""
    insn = slots[slot]
    opcode = insn[0]
    cls = opcode & 0x07
    if result.poison:
        slots[slot] = [_CALL, 0, 0, C.POISON_HELPER]
        if opcode == isa.LDDW and slot + 1 < len(slots):
            slots[slot + 1] = [_CALL, 0, 0, C.POISON_HELPER]
        return
    value = result.value
    if cls in (isa.ALU, isa.ALU64):
        if opcode & isa.X:
            raise BTFError(f"{where}: CO-RE relocation on a register-source ALU instruction")
        if result.validate and insn[3] != _s32(result.local_value):
            raise BTFError(f"{where}: CO-RE: instruction has immediate {insn[3]}, expected "
                           f"{result.local_value}")
        insn[3] = _s32(value)
    elif cls in (isa.LDX, isa.ST, isa.STX):
        if result.validate and insn[2] != result.local_value:
            raise BTFError(f"{where}: CO-RE: instruction has offset {insn[2]}, expected "
                           f"{result.local_value}")
        if not -0x8000 <= value <= 0x7FFF:
            raise BTFError(f"{where}: CO-RE: offset {value} does not fit in 16 bits")
        insn[2] = value
        if (result.kind == C.FIELD_BYTE_OFFSET and cls in (isa.LDX, isa.ST, isa.STX)
                and (opcode & 0xE0) == isa.MEM and result.target_size
                and result.target_size != result.local_size):
            code = _SIZE_CODES.get(result.target_size)
            if code is None:
                raise BTFError(f"{where}: CO-RE: cannot access a {result.target_size}-byte "
                               f"field with one load")
            insn[0] = (opcode & ~0x18) | code
    elif opcode == isa.LDDW:
        insn[3] = _s32(value & 0xFFFFFFFF)
        slots[slot + 1][3] = _s32((value >> 32) & 0xFFFFFFFF)
    else:
        raise BTFError(f"{where}: CO-RE relocation on an unsupported instruction "
                       f"(opcode 0x{opcode:02x})")


def _s32(value: int) -> int:
    return isa.sext(value, 32)


def decode_slots(slots: list[list[int]], where: str) -> list[isa.Instruction]:
    """Decode linked slots into Instructions, with a clear error naming the program."""
    data = b"".join(_SLOT.pack(*s) for s in slots)
    try:
        return isa.decode(data)
    except DecodeError as exc:
        raise ObjectFileError(f"{where}: {exc}") from None
    except struct.error as exc:
        raise ObjectFileError(f"{where}: bad instruction field ({exc})") from None


def slot_to_index(insns: list[isa.Instruction]) -> dict[int, int]:
    return {slot: i for i, slot in enumerate(isa.slot_starts(insns))}


__all__ = ["Function", "KernelSymbol", "Linker", "Linked", "MapTarget", "decode_slots",
           "patch_insn", "slot_to_index"]
