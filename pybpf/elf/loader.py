"""Object file -> :class:`ObjectSpec`: programs, maps, BTF, license, globals, kconfig externs.

The spec is plain data (cilium/ebpf's ``CollectionSpec``): nothing is created anywhere, so the
same spec loads into the interpreter, the JIT or the kernel. The steps follow libbpf's
``bpf_object__open`` and ``bpf_object__relocate``:

1. ELF sections and symbols (:mod:`.reader`), license and legacy ``version``;
2. ``.BTF`` / ``.BTF.ext`` (:mod:`pybpf.btf`);
3. maps: BTF-defined ``.maps``, legacy ``maps``, one array map per global-data section
   (``.data``, ``.rodata``, ``.bss``, ``.data.*``, ``.rodata.*`` such as ``.rodata.str1.1``)
   holding its initial contents, and ``.kconfig`` for ``__kconfig`` externs;
4. programs: each global function of a code section other than ``.text``, linked with the
   subprograms it calls, CO-RE relocations resolved against the target BTF (the running
   kernel's by default, as libbpf does) (:mod:`.relocations`).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field

from ..btf import core as C
from ..btf import types as T
from ..btf.parser import BTFExt, VMLINUX, load_vmlinux, parse_btf, parse_btf_ext
from ..errors import BPFError, BTFError, ObjectFileError
from ..program import MapRef, MapSpec, Program
from . import kconfig as K
from .maps import (BPF_F_MMAPABLE, BPF_F_RDONLY_PROG, MAP_IN_MAP, PROG_ARRAY,
                   parse_btf_map, parse_legacy_maps)
from .reader import R_BPF_64_ABS64, ElfObject, Relocation, read_elf
from .ksyms import POISON_KFUNC_BASE, Ksym, resolve_ksyms
from .relocations import (Function, KernelSymbol, Linker, MapTarget, decode_slots,
                          slot_to_index)
from .sections import ProgramSection, match_section

KCONFIG_MAP = ".kconfig"


@dataclass
class Variable:
    """A global variable (or kconfig extern) living in an internal array map."""

    name: str
    map_name: str       # ".data", ".rodata", ".bss", ".kconfig", ...
    offset: int
    size: int
    type_id: int = 0    # BTF VAR's type, when known
    weak: bool = False


@dataclass
class ObjectSpec:
    """Everything an object file declares, as plain data."""

    name: str
    programs: dict[str, Program] = field(default_factory=dict)
    maps: dict[str, MapSpec] = field(default_factory=dict)
    btf: T.BTF | None = None
    btf_ext: BTFExt | None = None
    license: str = ""
    kern_version: int = 0
    variables: dict[str, Variable] = field(default_factory=dict)
    kconfig: dict[str, Variable] = field(default_factory=dict)
    ksyms: dict[str, Ksym] = field(default_factory=dict)       # __ksym externs, resolved
    sections: dict[str, ProgramSection | None] = field(default_factory=dict)  # by program

    def program(self, name: str | None = None, section: str | None = None) -> Program:
        """Pick one program by C function name, or by section when it holds only one."""
        if name is not None:
            if name not in self.programs:
                raise ObjectFileError(f"{self.name}: no program '{name}' (programs: "
                                      f"{', '.join(self.programs) or 'none'})")
            return self.programs[name]
        candidates = [p for p in self.programs.values()
                      if section is None or p.section == section]
        if len(candidates) == 1:
            return candidates[0]
        what = f"in section '{section}'" if section else "in the object"
        if not candidates:
            raise ObjectFileError(f"{self.name}: no program {what}")
        raise ObjectFileError(f"{self.name}: {len(candidates)} programs {what} "
                              f"({', '.join(p.name for p in candidates)}); choose one by name")

    def set_variable(self, name: str, value: int | bytes) -> None:
        """Set a global's initial value (e.g. a ``const volatile`` knob) before loading."""
        var = self.variables.get(name) or self.kconfig.get(name)
        if var is None:
            raise ObjectFileError(f"{self.name}: no global variable '{name}'")
        if isinstance(value, int):
            if not -(1 << (8 * var.size - 1)) <= value < (1 << (8 * var.size)):
                raise ObjectFileError(f"{self.name}: {value} does not fit in '{name}' "
                                      f"({var.size} bytes)")
            data = (value & ((1 << (8 * var.size)) - 1)).to_bytes(var.size, "little")
        else:
            data = bytes(value)
            if len(data) != var.size:
                raise ObjectFileError(f"{self.name}: '{name}' is {var.size} bytes, got "
                                      f"{len(data)}")
        spec = self.maps[var.map_name]
        key, old = spec.contents[0] if spec.contents else (bytes(4), bytes(spec.value_size))
        new = old[:var.offset] + data + old[var.offset + var.size:]
        spec.contents[:] = [(key, new)]

    def get_variable(self, name: str) -> bytes:
        """A global's initial value, as bytes."""
        var = self.variables.get(name) or self.kconfig.get(name)
        if var is None:
            raise ObjectFileError(f"{self.name}: no global variable '{name}'")
        spec = self.maps[var.map_name]
        value = spec.contents[0][1] if spec.contents else bytes(spec.value_size)
        return value[var.offset:var.offset + var.size]


def _is_data_section(name: str) -> bool:
    return name in (".data", ".bss", ".rodata") or name.startswith((".data.", ".rodata."))


def load_object(source: str | os.PathLike | bytes, *, name: str | None = None,
                core_target: str | T.BTF | None = "auto",
                kconfig: dict[str, int | str | bytes] | None = None) -> ObjectSpec:
    """Read a clang-built BPF object (a path or its bytes) into an :class:`ObjectSpec`.

    ``core_target`` is the BTF that CO-RE relocations resolve against: ``"auto"`` (the running
    kernel's ``/sys/kernel/btf/vmlinux`` when the object has CO-RE relocations and the file is
    readable, else the object's own BTF), ``"kernel"``, ``"local"``, a path or a
    :class:`~pybpf.btf.types.BTF`. ``kconfig`` overrides ``__kconfig`` extern values.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        name = name or "<object>"
    else:
        name = name or os.fspath(source)
        try:
            with open(source, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise ObjectFileError(f"{name}: cannot read ({exc.strerror})") from None
    return _Loader(data, name, core_target, kconfig or {}).load()


class _Loader:
    def __init__(self, data: bytes, name: str, core_target, kconfig_values):
        self.data = data
        self.name = name
        self.core_target = core_target
        self.kconfig_values = kconfig_values
        self.obj: ElfObject
        self.spec = ObjectSpec(name)
        self.map_offsets: dict[int, dict[int, str]] = {}   # section index -> offset -> map
        self.kernel_btf: bytes | None = None

    #: the steps of loading and the section each one reads (named in unexpected errors)
    STEPS = [("_license", "license"), ("_btf", ".BTF"), ("_btf_maps", ".maps"),
             ("_legacy_maps", "maps"), ("_data_maps", "data sections"),
             ("_kconfig", ".kconfig"), ("_ksyms", ".ksyms"),
             ("_map_initial_values", ".rel.maps"),
             ("_kernel_btf", ".BTF"), ("_programs", "code sections")]

    def load(self) -> ObjectSpec:
        self.obj = read_elf(self.data, self.name)
        for method, what in self.STEPS:
            try:
                getattr(self, method)()
            except BPFError:
                raise
            except (LookupError, ValueError, TypeError, AttributeError, ArithmeticError,
                    struct.error, RecursionError) as exc:
                # a malformed object that slipped past the checks: still say where
                raise ObjectFileError(f"{self.name}: {what}: malformed object "
                                      f"({type(exc).__name__}: {exc})") from None
        return self.spec

    # --- small sections ------------------------------------------------------------------------
    def _license(self) -> None:
        sec = self.obj.section("license")
        if sec is not None:
            self.spec.license = sec.data.split(b"\0", 1)[0].decode("ascii", "replace")
        ver = self.obj.section("version")
        if ver is not None:
            if len(ver.data) != 4:
                raise ObjectFileError(f"{self.name}: section 'version' must hold 4 bytes, has "
                                      f"{len(ver.data)}")
            self.spec.kern_version = struct.unpack("<I", ver.data)[0]

    def _btf(self) -> None:
        sec = self.obj.section(".BTF")
        if sec is None:
            return
        try:
            self.spec.btf = parse_btf(sec.data)
            ext = self.obj.section(".BTF.ext")
            if ext is not None:
                self.spec.btf_ext = parse_btf_ext(ext.data, self.spec.btf)
        except BTFError as exc:
            raise BTFError(f"{self.name}: {exc}") from None

    def _datasec(self, sec_name: str) -> T.Datasec | None:
        btf = self.spec.btf
        if btf is None:
            return None
        try:
            found = btf.find(sec_name, "datasec")
        except BTFError as exc:
            raise BTFError(f"{self.name}: {exc}") from None
        return found[0] if found else None

    def _symbols_in(self, index: int) -> list:
        return [s for s in self.obj.symbols
                if s.shndx == index and s.type in ("STT_OBJECT", "STT_NOTYPE") and s.name]

    # --- maps ----------------------------------------------------------------------------------
    def _btf_maps(self) -> None:
        sec = self.obj.section(".maps")
        if sec is None:
            return
        where = f"{self.name}: section '.maps'"
        datasec = self._datasec(".maps")
        if datasec is None:
            raise ObjectFileError(f"{where}: BTF-defined maps need BTF (compile with -g)")
        btf = self.spec.btf
        offsets = {s.name: s.value for s in self._symbols_in(sec.index)}
        self.map_offsets[sec.index] = {}
        try:
            for info in datasec.vars:
                var = btf[info.type_id]
                if not isinstance(var, T.Var):
                    raise ObjectFileError(f"{where}: entry of type {info.type_id} is not a "
                                          f"variable")
                if var.name not in offsets:
                    raise ObjectFileError(f"{where}: map '{var.name}' has no symbol")
                spec = parse_btf_map(btf, var.name, var.type_id, where)
                self._add_map(spec, where)
                self.map_offsets[sec.index][offsets[var.name]] = var.name
        except BTFError as exc:
            raise BTFError(f"{where}: {exc}") from None

    def _legacy_maps(self) -> None:
        sec = self.obj.section("maps")
        if sec is None:
            return
        where = f"{self.name}: section 'maps'"
        symbols = sorted(((s.name, s.value) for s in self._symbols_in(sec.index)),
                         key=lambda x: x[1])
        for spec in parse_legacy_maps(sec.data, symbols, where):
            self._add_map(spec, where)
        self.map_offsets[sec.index] = {off: n for n, off in symbols}

    def _add_map(self, spec: MapSpec, where: str) -> None:
        if spec.name in self.spec.maps:
            raise ObjectFileError(f"{where}: map '{spec.name}' is defined twice")
        self.spec.maps[spec.name] = spec

    def _data_maps(self) -> None:
        for sec in self.obj.sections:
            if not _is_data_section(sec.name) or sec.type not in ("SHT_PROGBITS", "SHT_NOBITS"):
                continue
            if sec.size == 0:
                continue
            flags = BPF_F_MMAPABLE
            if sec.name.startswith(".rodata"):
                flags |= BPF_F_RDONLY_PROG
            datasec = self._datasec(sec.name)
            spec = MapSpec(name=sec.name, type="array", key_size=4, value_size=sec.size,
                           max_entries=1, flags=flags,
                           btf_value_type_id=datasec.id if datasec else 0)
            if sec.type == "SHT_PROGBITS":
                spec.contents = [(bytes(4), sec.data)]
            self._add_map(spec, f"{self.name}: section '{sec.name}'")
            types = {}
            if datasec is not None:
                for info in datasec.vars:
                    v = self.spec.btf[info.type_id]
                    types[v.name] = v.type_id
            for sym in self._symbols_in(sec.index):
                if sym.type == "STT_OBJECT":
                    self.spec.variables[sym.name] = Variable(sym.name, sec.name, sym.value,
                                                             sym.size, types.get(sym.name, 0))

    def _kconfig(self) -> None:
        externs = [s for s in self.obj.symbols if s.shndx == "SHN_UNDEF" and s.name
                   and s.type != "STT_FUNC"]
        if not externs:
            return
        datasec = self._datasec(".kconfig")
        btf = self.spec.btf
        typed: dict[str, int] = {}
        if datasec is not None:
            for info in datasec.vars:
                var = btf[info.type_id]
                typed[var.name] = var.type_id
        layout = []
        for sym in externs:
            where = f"{self.name}: extern '{sym.name}'"
            if sym.name not in typed:
                continue   # not a kconfig extern; refused if a program uses it
            try:
                size = btf.sizeof(typed[sym.name])
            except BTFError as exc:
                raise BTFError(f"{where}: {exc}") from None
            t = btf.skip_modifiers(typed[sym.name])
            align = 1 if isinstance(t, T.Array) else min(max(size, 1), 8)
            layout.append((-align, sym.name, size, sym.bind == "STB_WEAK", typed[sym.name]))
        if not layout:
            return
        layout.sort()
        offset = 0
        value = bytearray()
        config = None
        for neg_align, var_name, size, weak, type_id in layout:
            offset = (offset + -neg_align - 1) // -neg_align * -neg_align
            value.extend(bytes(offset - len(value)))
            t = btf.skip_modifiers(type_id)
            is_chars = isinstance(t, T.Array)
            if var_name in self.kconfig_values:
                raw = self.kconfig_values[var_name]
            elif var_name == "LINUX_KERNEL_VERSION":
                raw = K.kernel_version()
            elif var_name.startswith("CONFIG_"):
                config = K.kernel_config() if config is None else config
                raw = config.get(var_name)
                if raw is None:
                    if not weak:
                        raise ObjectFileError(f"{self.name}: extern (kconfig) '{var_name}': "
                                              f"value not found in the kernel configuration "
                                              f"(declare it __weak to default to 0)")
                    raw = 0
            else:
                if not weak:
                    raise ObjectFileError(f"{self.name}: unknown kconfig extern '{var_name}'")
                raw = 0
            value.extend(K.encode_value(var_name, raw, size, is_chars))
            self.spec.kconfig[var_name] = Variable(var_name, KCONFIG_MAP, offset, size,
                                                   type_id, weak)
            offset += size
        spec = MapSpec(name=KCONFIG_MAP, type="array", key_size=4, value_size=len(value),
                       max_entries=1, flags=BPF_F_MMAPABLE | BPF_F_RDONLY_PROG,
                       btf_value_type_id=datasec.id if datasec else 0)
        spec.contents = [(bytes(4), bytes(value).ljust(spec.value_size, b"\0"))]
        self._add_map(spec, f"{self.name}: section '.kconfig'")

    def _ksyms(self) -> None:
        datasec = self._datasec(".ksyms")
        if datasec is None:
            return
        weak = {s.name: s.bind == "STB_WEAK" for s in self.obj.symbols
                if s.shndx == "SHN_UNDEF" and s.name}
        try:
            self.spec.ksyms = resolve_ksyms(self.spec.btf, datasec, weak, self._kernel_btf_for,
                                            self.name)
        except BTFError as exc:
            raise BTFError(f"{self.name}: .ksyms: {exc}") from None

    def _kernel_btf_for(self) -> T.BTF:
        target = self.core_target
        if isinstance(target, T.BTF):
            return target
        return load_vmlinux()

    def _map_initial_values(self) -> None:
        """prog_array / map-in-map slots filled by relocations in ``.rel.maps``."""
        sec = self.obj.section(".maps")
        if sec is None:
            return
        relocs = self.obj.relocations.get(sec.index, {})
        if not relocs:
            return
        where = f"{self.name}: section '.rel.maps'"
        btf = self.spec.btf
        starts = sorted(self.map_offsets[sec.index].items())
        datasec = self._datasec(".maps")
        def_types = {btf[i.type_id].name: btf[i.type_id].type_id for i in datasec.vars}
        for off, rel in sorted(relocs.items()):
            owner = None
            for start, map_name in starts:
                if start <= off:
                    owner = (start, map_name)
            if owner is None:
                raise ObjectFileError(f"{where}: relocation at offset {off} is outside any map")
            start, map_name = owner
            spec = self.spec.maps[map_name]
            struct_t = btf.skip_modifiers(def_types[map_name])
            values = next((m for m in struct_t.members if m.name == "values"), None)
            if values is None or rel.type != R_BPF_64_ABS64:
                raise ObjectFileError(f"{where}: relocation {rel.type_name} against "
                                      f"'{rel.symbol.name}' inside map '{map_name}' is not an "
                                      f"initial value")
            rel_off = off - start - values.bit_offset // 8
            if rel_off < 0 or rel_off % 8:
                raise ObjectFileError(f"{where}: relocation against '{rel.symbol.name}' is not "
                                      f"on a slot of map '{map_name}' values")
            slot = rel_off // 8
            if slot >= spec.max_entries:
                raise ObjectFileError(f"{where}: initial value for slot {slot} of map "
                                      f"'{map_name}' exceeds max_entries {spec.max_entries}")
            sym = rel.symbol
            if spec.type == PROG_ARRAY:
                if sym.type != "STT_FUNC":
                    raise ObjectFileError(f"{where}: prog_array '{map_name}' slot {slot} "
                                          f"names '{sym.name}', which is not a program")
            elif spec.type in MAP_IN_MAP:
                if sym.name not in self.spec.maps:
                    raise ObjectFileError(f"{where}: map '{map_name}' slot {slot} names "
                                          f"'{sym.name}', which is not a map")
            spec.init_refs[slot] = sym.name

    # --- kernel-loadable BTF -------------------------------------------------------------------
    def _kernel_btf(self) -> None:
        """The object's BTF with DATASEC sizes/offsets filled in and externs made allocated,
        as libbpf does before BPF_BTF_LOAD (clang leaves sizes and offsets to the loader)."""
        btf = self.spec.btf
        if btf is None:
            return
        raw = bytearray(btf.raw)
        offsets = btf.type_offsets
        symbols: dict[tuple[int, str], int] = {}
        for s in self.obj.symbols:
            if isinstance(s.shndx, int):
                symbols[(s.shndx, s.name)] = s.value
        try:
            for type_id in range(1, len(btf)):
                t = btf[type_id]
                if not isinstance(t, T.Datasec):
                    continue
                at = offsets[type_id]
                if t.name == KCONFIG_MAP:
                    kmap = self.spec.maps.get(KCONFIG_MAP)
                    struct.pack_into("<I", raw, at + 8, kmap.value_size if kmap else 0)
                    for i, info in enumerate(t.vars):
                        var = btf[info.type_id]
                        kvar = self.spec.kconfig.get(var.name)
                        if kvar is not None:
                            struct.pack_into("<I", raw, at + 12 + 12 * i + 4, kvar.offset)
                        if isinstance(var, T.Var):
                            struct.pack_into("<I", raw, offsets[var.id] + 12, 1)
                    continue
                if t.name == ".ksyms":
                    self._kernel_btf_ksyms(btf, raw, t)
                    continue
                sec = self.obj.section(t.name)
                if sec is None:
                    continue
                struct.pack_into("<I", raw, at + 8, sec.size & 0xFFFFFFFF)
                for i, info in enumerate(t.vars):
                    var_name = btf.name_of(info.type_id)
                    value = symbols.get((sec.index, var_name))
                    if value is not None:
                        struct.pack_into("<I", raw, at + 12 + 12 * i + 4, value & 0xFFFFFFFF)
        except BTFError as exc:
            raise BTFError(f"{self.name}: {exc}") from None
        self.kernel_btf = bytes(raw)
        if self.kernel_btf != btf.raw:
            # like libbpf after open: the object's BTF with DATASEC sizes and offsets filled in
            fixed = parse_btf(self.kernel_btf)
            self.spec.btf = fixed
            if self.spec.btf_ext is not None:
                self.spec.btf_ext = parse_btf_ext(self.obj.section(".BTF.ext").data, fixed)

    @staticmethod
    def _kernel_btf_ksyms(btf: T.BTF, raw: bytearray, datasec: T.Datasec) -> None:
        """Make ``.ksyms`` acceptable to BPF_BTF_LOAD, in place and without changing sizes:
        the kernel refuses extern linkage and FUNCs inside a DATASEC. Like libbpf, externs
        become global and typed variables become ints; the DATASEC itself becomes an anonymous
        union of ints (its entries are 12-byte records exactly like union members)."""
        offsets = btf.type_offsets
        int_id = next((t.id for t in btf if isinstance(t, T.Int) and t.size == 4), 0)
        if not int_id:
            return
        for i, info in enumerate(datasec.vars):
            t = btf[info.type_id]
            at = offsets[t.id]
            if isinstance(t, T.Func):
                info_word = struct.unpack_from("<I", raw, at + 4)[0]
                struct.pack_into("<I", raw, at + 4, (info_word & ~0xFFFF) | 1)  # global
                proto = btf[t.type_id]
                if isinstance(proto, T.FuncProto):
                    name_off = btf._name_offsets[t.id]
                    for j, param in enumerate(proto.params):
                        p_at = offsets[proto.id] + 12 + 8 * j
                        if param.type_id and not struct.unpack_from("<I", raw, p_at)[0]:
                            struct.pack_into("<I", raw, p_at, name_off)
            elif isinstance(t, T.Var):
                struct.pack_into("<I", raw, at + 8, int_id)
                struct.pack_into("<I", raw, at + 12, 1)     # global allocated
            member_at = offsets[datasec.id] + 12 + 12 * i
            struct.pack_into("<III", raw, member_at, btf._name_offsets[t.id], int_id, 0)
        at = offsets[datasec.id]
        struct.pack_into("<III", raw, at, 0, (5 << 24) | len(datasec.vars), 4)  # union

    # --- programs ------------------------------------------------------------------------------
    def _functions(self) -> list[Function]:
        funcs: list[Function] = []
        by_sec: dict[int, list] = {}
        for s in self.obj.symbols:
            if s.type == "STT_FUNC" and isinstance(s.shndx, int) and \
                    0 < s.shndx < len(self.obj.sections):
                by_sec.setdefault(s.shndx, []).append(s)
        for index, syms in by_sec.items():
            sec = self.obj.sections[index]
            if not sec.is_exec:
                raise ObjectFileError(f"{self.name}: function '{syms[0].name}' is in section "
                                      f"'{sec.name}', which is not code")
            syms.sort(key=lambda s: s.value)
            for i, s in enumerate(syms):
                size = s.size
                if size == 0:
                    end = syms[i + 1].value if i + 1 < len(syms) else sec.size
                    size = end - s.value
                where = f"{self.name}: function '{s.name}' in section '{sec.name}'"
                if s.value % 8 or size % 8 or size <= 0:
                    raise ObjectFileError(f"{where}: offset {s.value} / size {size} are not "
                                          f"whole instructions")
                if s.value + size > sec.size:
                    raise ObjectFileError(f"{where}: runs past the end of its section "
                                          f"({s.value} + {size} > {sec.size})")
                funcs.append(Function(s.name, sec, s.value, size,
                                      s.bind in ("STB_GLOBAL", "STB_WEAK")))
        return funcs

    def _core_resolver(self):
        ext = self.spec.btf_ext
        if ext is None or not ext.core_relos:
            return None
        local = self.spec.btf
        target = self.core_target
        if isinstance(target, T.BTF):
            target_btf = target
        elif target == "local" or target is None:
            target_btf = local
        elif target == "kernel":
            target_btf = load_vmlinux()
        elif target == "auto":
            target_btf = load_vmlinux() if os.access(VMLINUX, os.R_OK) else local
        else:
            with open(target, "rb") as f:
                target_btf = parse_btf(f.read())
        return lambda relo: C.resolve(relo, local, target_btf)

    def _resolve_symbol(self, rel: Relocation, addend: int, where: str
                        ) -> MapTarget | KernelSymbol:
        sym = rel.symbol
        obj = self.obj
        if sym.shndx == "SHN_UNDEF":
            ksym = self.spec.ksyms.get(sym.name)
            if ksym is not None:
                index = list(self.spec.ksyms).index(sym.name)
                return KernelSymbol(ksym.kind, ksym.btf_id, ksym.address,
                                    POISON_KFUNC_BASE + index)
            var = self.spec.kconfig.get(sym.name)
            if var is None:
                raise ObjectFileError(f"{where}: extern '{sym.name}' is neither a __kconfig "
                                      f"variable nor a __ksym")
            return MapTarget(KCONFIG_MAP, var.offset + addend)
        if not isinstance(sym.shndx, int) or not 0 < sym.shndx < len(obj.sections):
            raise ObjectFileError(f"{where}: relocation against symbol '{sym.name}' with "
                                  f"section index {sym.shndx}")
        sec = obj.sections[sym.shndx]
        if sym.shndx in self.map_offsets:
            off = sym.value + (addend if sym.type == "STT_SECTION" else 0)
            map_name = self.map_offsets[sym.shndx].get(off)
            if map_name is None:
                raise ObjectFileError(f"{where}: relocation against '{sym.name}' at offset "
                                      f"{off} of '{sec.name}', where no map starts")
            return MapTarget(map_name)
        if sec.name in self.spec.maps and _is_data_section(sec.name):
            off = sym.value + addend
            if not 0 <= off <= sec.size:
                raise ObjectFileError(f"{where}: reference to '{sym.name}' + {addend} is "
                                      f"outside section '{sec.name}' ({sec.size} bytes)")
            return MapTarget(sec.name, off)
        raise ObjectFileError(f"{where}: relocation against symbol '{sym.name}' in section "
                              f"'{sec.name}', which holds neither maps nor data")

    def _programs(self) -> None:
        funcs = self._functions()
        ext = self.spec.btf_ext
        linker = Linker(self.obj, funcs, self._resolve_symbol,
                        ext.core_relos if ext else {}, self._core_resolver())
        btf = self.spec.btf
        for func in funcs:
            if func.section.name == ".text" or not func.is_global:
                continue
            linked = linker.link(func)
            where = f"{self.name}: program '{func.name}' (section '{func.section.name}')"
            insns = decode_slots(linked.slots, where)
            index_of = slot_to_index(insns)
            sec = match_section(func.section.name)
            self.spec.sections[func.name] = sec
            prog = Program(
                insns, name=func.name, prog_type=sec.prog_type if sec else "unspec",
                maps=[self.spec.maps[n] for n in linked.maps],
                map_refs=[MapRef(index_of[slot], m, off) for slot, m, off in linked.map_refs],
                license=self.spec.license, section=func.section.name,
                btf=self.kernel_btf, attach_type=sec.attach_type if sec else None)
            for f, start in linked.placements:
                prog.labels[start] = f.name
            if ext is not None:
                self._debug_info(prog, linked, ext, btf)
            self.spec.programs[func.name] = prog

    @staticmethod
    def _debug_info(prog: Program, linked, ext: BTFExt, btf: T.BTF) -> None:
        for f, start in linked.placements:
            for fi in ext.func_info.get(f.section.name, ()):
                if f.contains(fi.insn_off):
                    prog.func_info.append((start + (fi.insn_off - f.value) // 8, fi.type_id))
            for li in ext.line_info.get(f.section.name, ()):
                if f.contains(li.insn_off):
                    slot = start + (li.insn_off - f.value) // 8
                    prog.line_info.append((slot, li.file_name_off, li.line_off, li.line_col))
                    prog.lines[slot] = f"{li.file}:{li.line}: {li.line_text.strip()}"
        prog.func_info.sort()
        prog.line_info.sort()


__all__ = ["ObjectSpec", "Variable", "load_object"]
