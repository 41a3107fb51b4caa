"""Turning parsed lines into a :class:`~pybpf.program.Program`: labels, fixups and maps.

Both syntaxes emit instructions through one :class:`ProgramBuilder`. Symbolic operands (jump and
call targets, ``r1 = NAME ll``) are recorded as :class:`Fixup` entries and resolved once the
whole file has been read, so a label or ``.map`` may be used before it is defined. Offsets
count 8-byte slots from the instruction after the jump, as llvm-mc and the kernel do.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from .. import isa
from ..helpers.ids import HELPER_IDS
from ..program import MapRef, MapSpec, Program
from .lexer import INT16_MAX, INT16_MIN, SourceLine

#: the kernel's map types (``enum bpf_map_type`` without ``BPF_MAP_TYPE_``, lower case), in order
MAP_TYPES = (
    "unspec", "hash", "array", "prog_array", "perf_event_array", "percpu_hash", "percpu_array",
    "stack_trace", "cgroup_array", "lru_hash", "lru_percpu_hash", "lpm_trie", "array_of_maps",
    "hash_of_maps", "devmap", "sockmap", "cpumap", "xskmap", "sockhash", "cgroup_storage",
    "reuseport_sockarray", "percpu_cgroup_storage", "queue", "stack", "sk_storage",
    "devmap_hash", "struct_ops", "ringbuf", "inode_storage", "task_storage", "bloom_filter",
    "user_ringbuf", "cgrp_storage", "arena",
)


@dataclass(slots=True)
class Fixup:
    """A symbolic operand of instruction ``index`` waiting for the symbol table.

    kind: ``jump`` (16-bit ``off``), ``jump32`` (``gotol``: 32-bit ``imm``), ``call``
    (a label -> local call, else a helper name), ``local`` (a label only) or ``load`` (``r1 = NAME ll``: a map, or a
    label -> PSEUDO_FUNC).
    """

    index: int
    slot: int
    kind: str
    name: str
    line: SourceLine
    pos: int
    addend: int | None = None  # map value offset, when written (``MAP + 0`` is a value)


@dataclass
class ProgramBuilder:
    """Collects instructions, labels and maps for one assembly file."""

    file: str | None = None
    insns: list[isa.Instruction] = field(default_factory=list)
    slot: int = 0
    labels: dict[str, int] = field(default_factory=dict)
    label_lines: dict[str, SourceLine] = field(default_factory=dict)
    fixups: list[Fixup] = field(default_factory=list)
    maps: list[MapSpec] = field(default_factory=list)
    map_index: dict[str, int] = field(default_factory=dict)
    map_refs: list[MapRef] = field(default_factory=list)
    lines: dict[int, str] = field(default_factory=dict)
    section: str | None = None

    # --- definitions -----------------------------------------------------------------------

    def define_label(self, name: str, line: SourceLine, pos: int) -> None:
        if name in self.labels:
            first = self.label_lines[name]
            raise line.error(f"duplicate label '{name}' (first defined on line {first.number})",
                             pos)
        self.labels[name] = self.slot
        self.label_lines[name] = line

    def define_map(self, spec: MapSpec, line: SourceLine, pos: int) -> None:
        if spec.name in self.map_index:
            raise line.error(f"duplicate map '{spec.name}'", pos)
        self.map_index[spec.name] = len(self.maps)
        self.maps.append(spec)

    # --- instructions ----------------------------------------------------------------------

    def emit(self, insn: isa.Instruction, line: SourceLine) -> int:
        """Append ``insn``; returns its logical index."""
        index = len(self.insns)
        self.insns.append(insn)
        self.lines[self.slot] = line.raw.strip()
        self.slot += insn.slots
        return index

    def emit_symbolic(self, insn: isa.Instruction, line: SourceLine, kind: str, name: str,
                      pos: int, addend: int | None = None) -> int:
        """Append ``insn`` whose target field is filled in by :meth:`finish`."""
        slot = self.slot
        index = self.emit(insn, line)
        self.fixups.append(Fixup(index, slot, kind, name, line, pos, addend))
        return index

    # --- resolution ------------------------------------------------------------------------

    def finish(self) -> Program:
        """Resolve every fixup and return the program."""
        for fix in self.fixups:
            self.insns[fix.index] = _RESOLVERS[fix.kind](self, fix, self.insns[fix.index])
        labels = {}
        for name, slot in self.labels.items():
            labels.setdefault(slot, name)
        return Program(self.insns, maps=self.maps, map_refs=self.map_refs, lines=self.lines,
                       labels=labels, section=self.section)

    def _target(self, fix: Fixup) -> int:
        if fix.name not in self.labels:
            raise fix.line.error(f"undefined label '{fix.name}'", fix.pos)
        return self.labels[fix.name] - (fix.slot + 1)

    def _resolve_jump(self, fix: Fixup, insn: isa.Instruction) -> isa.Instruction:
        delta = self._target(fix)
        if not INT16_MIN <= delta <= INT16_MAX:
            raise fix.line.error(
                f"jump to '{fix.name}' is {delta} slots away, outside the 16-bit offset range "
                f"({INT16_MIN}..{INT16_MAX}); use 'gotol' for long unconditional jumps", fix.pos)
        return replace(insn, off=delta)

    def _resolve_jump32(self, fix: Fixup, insn: isa.Instruction) -> isa.Instruction:
        return replace(insn, imm=self._target(fix))

    def _resolve_call(self, fix: Fixup, insn: isa.Instruction) -> isa.Instruction:
        if fix.name in self.labels:
            return replace(insn, src=isa.CALL_LOCAL, imm=self._target(fix))
        helper = HELPER_IDS.get(fix.name)
        if helper is None:
            raise fix.line.error(
                f"unknown helper or label '{fix.name}' (a helper is named as the kernel does, "
                f"e.g. bpf_map_lookup_elem; or define '{fix.name}:' for a bpf-to-bpf call)",
                fix.pos)
        return replace(insn, src=isa.CALL_HELPER, imm=helper)

    def _resolve_local(self, fix: Fixup, insn: isa.Instruction) -> isa.Instruction:
        return replace(insn, src=isa.CALL_LOCAL, imm=self._target(fix))

    def _resolve_load(self, fix: Fixup, insn: isa.Instruction) -> isa.Instruction:
        if fix.name in self.map_index:
            idx = self.map_index[fix.name]
            if fix.addend is not None:
                self.map_refs.append(MapRef(fix.index, fix.name, fix.addend))
                return replace(insn, src=isa.PSEUDO_MAP_IDX_VALUE, imm=idx, imm_hi=fix.addend)
            self.map_refs.append(MapRef(fix.index, fix.name))
            return replace(insn, src=isa.PSEUDO_MAP_IDX, imm=idx, imm_hi=0)
        if fix.name in self.labels and fix.addend is None:
            return replace(insn, src=isa.PSEUDO_FUNC, imm=self._target(fix), imm_hi=0)
        if fix.name in self.labels:
            raise fix.line.error(f"'{fix.name}' is a label; an offset applies to a map value",
                                 fix.pos)
        raise fix.line.error(f"undefined map or label '{fix.name}' (declare it with "
                             f"'.map {fix.name} TYPE key=K value=V max_entries=N')", fix.pos)


_RESOLVERS = {
    "jump": ProgramBuilder._resolve_jump,
    "jump32": ProgramBuilder._resolve_jump32,
    "call": ProgramBuilder._resolve_call,
    "local": ProgramBuilder._resolve_local,
    "load": ProgramBuilder._resolve_load,
}
