"""Live instances of an :class:`ObjectSpec`: every map created once and shared by all programs.

What libbpf's ``bpf_object__load`` does after relocation, over pybpf's engines:

- the kernel (:class:`KernelCollection`): load the object's BTF (``BPF_BTF_LOAD``, with the
  DATASEC sizes the ELF loader filled in), create each map once (inner-map templates first),
  load each program with its maps, func_info and line_info, then fill prog_arrays with program
  fds and map-in-map slots with map fds, as ``.rel.maps`` asked;
- the interpreter (:class:`VMCollection`): the same with :func:`pybpf.maps.create_map` and
  :class:`pybpf.vm.Interpreter`; prog_array slots hold the programs themselves.

``coll.programs[name]`` and ``coll.maps[name]`` are the live objects; both collections are
context managers (the kernel one closes its fds).
"""

from __future__ import annotations

import ctypes
import struct
from typing import Any

from ..errors import KernelError
from ..program import MapSpec, Program
from .loader import ObjectSpec
from .maps import MAP_IN_MAP, PROG_ARRAY


#: map types the kernel creates without BTF key/value types (libbpf drops them too)
NO_BTF_MAP_TYPES = frozenset({
    "perf_event_array", "stack_trace", "cgroup_array", "array_of_maps", "hash_of_maps",
    "devmap", "devmap_hash", "cpumap", "xskmap", "sockmap", "sockhash", "queue", "stack",
    "prog_array", "ringbuf", "user_ringbuf", "reuseport_sockarray"})


def _pack_func_info(program: Program) -> bytes:
    return b"".join(struct.pack("<II", slot, type_id) for slot, type_id in program.func_info)


def _pack_line_info(program: Program) -> bytes:
    return b"".join(struct.pack("<IIII", *rec) for rec in program.line_info)


def load_btf(raw: bytes) -> int:
    """BPF_BTF_LOAD a BTF blob; returns its fd (KernelError with the kernel's log if refused)."""
    from ..kernel import syscall, uapi
    from ..kernel.attrs import BtfLoadAttr

    buf = ctypes.create_string_buffer(raw, len(raw))
    log = ctypes.create_string_buffer(1 << 16)
    attr = BtfLoadAttr(btf=ctypes.addressof(buf), btf_size=len(raw),
                       btf_log_buf=ctypes.addressof(log), btf_log_size=len(log), btf_log_level=1)
    try:
        return syscall.bpf(uapi.Cmd.BTF_LOAD, attr)
    except KernelError as exc:
        text = log.value.decode(errors="replace").strip()
        raise KernelError(f"the kernel rejected the object's BTF: {exc}"
                          f"{': ' + text.splitlines()[-1] if text else ''}",
                          errno=exc.errno, command="BPF_BTF_LOAD", log=text) from None


class KernelCollection:
    """An object loaded into the running kernel through :mod:`pybpf.kernel`."""

    def __init__(self, spec: ObjectSpec, *, log_level: int = 0):
        from ..kernel import KernelMap, load_program

        self.spec = spec
        self.maps: dict[str, Any] = {}
        self.programs: dict[str, Any] = {}
        self.btf_fd = 0
        try:
            raw = next((p.btf for p in spec.programs.values() if p.btf), None)
            if raw:
                try:
                    self.btf_fd = load_btf(raw)
                except KernelError:
                    self.btf_fd = 0   # like libbpf: carry on without BTF when refused
            for name, mspec in spec.maps.items():
                self.maps[name] = self._create(KernelMap, mspec)
            for name, program in spec.programs.items():
                btf = self.btf_fd
                self.programs[name] = load_program(
                    program, maps=[self.maps[m.name] for m in program.maps],
                    log_level=log_level, btf_fd=btf,
                    func_info=_pack_func_info(program) if btf else b"",
                    line_info=_pack_line_info(program) if btf else b"",
                    expected_attach_type=program.attach_type
                    if program.prog_type not in ("xdp",) else None)
            self._fill_refs()
        except BaseException:
            self.close()
            raise

    def _create(self, KernelMap, mspec: MapSpec):
        inner_fd = 0
        if mspec.type in MAP_IN_MAP and mspec.init_refs:
            first = next(iter(mspec.init_refs.values()))
            if first in self.maps:
                inner_fd = self.maps[first].fd
            else:
                self.maps[first] = self._create(KernelMap, self.spec.maps[first])
                inner_fd = self.maps[first].fd
        if mspec.name in self.maps:
            return self.maps[mspec.name]
        btf_fd = 0 if mspec.type in NO_BTF_MAP_TYPES else self.btf_fd
        return KernelMap.create(mspec, inner_map_fd=inner_fd, btf_fd=btf_fd)

    def typed(self, name: str):
        """Map ``name`` with keys and values decoded through the object's BTF."""
        from ..btf.values import typed_map
        return typed_map(self.maps[name], self.spec.maps[name], self.spec.btf)

    def _fill_refs(self) -> None:
        for name, mspec in self.spec.maps.items():
            for slot, target in mspec.init_refs.items():
                if mspec.type == PROG_ARRAY:
                    fd = self.programs[target].fd
                else:
                    fd = self.maps[target].fd
                self.maps[name].update(slot.to_bytes(4, "little"), fd.to_bytes(4, "little"))

    def close(self) -> None:
        for p in self.programs.values():
            p.close()
        for m in self.maps.values():
            m.close()
        if self.btf_fd:
            import os
            os.close(self.btf_fd)
            self.btf_fd = 0

    def __enter__(self) -> "KernelCollection":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class VMProgram:
    """One program of a :class:`VMCollection`: ``run`` like the interpreter, ``test_run`` like
    the kernel's BPF_PROG_TEST_RUN (r0 truncated to 32 bits, the packet after the run)."""

    def __init__(self, interpreter):
        self.vm = interpreter

    def run(self, data: bytes = b"", ctx: bytes | None = None) -> int:
        return self.vm.run(data, ctx=ctx)

    def test_run(self, data: bytes = b"", ctx: bytes | None = None, repeat: int = 1):
        from ..kernel.prog import TestRunResult

        r0 = 0
        for _ in range(max(repeat, 1)):
            r0 = self.vm.run(data, ctx=ctx)
        return TestRunResult(r0 & 0xFFFFFFFF, 0, self.vm.data_out(), self.vm.ctx_out())

    def __getattr__(self, name: str):
        return getattr(self.vm, name)


class VMCollection:
    """An object loaded into pybpf's interpreter: one live map per map spec, shared by all
    programs; each program runs with its section's program type (context built per run)."""

    def __init__(self, spec: ObjectSpec, **vm_options):
        from ..maps import create_map
        from ..vm import Interpreter

        self.spec = spec
        self.maps: dict[str, Any] = {}
        for name, mspec in spec.maps.items():
            self.maps[name] = create_map(mspec)
        self.programs: dict[str, VMProgram] = {}
        for name, program in spec.programs.items():
            options = dict(vm_options)
            if program.prog_type and program.prog_type != "unspec":
                options.setdefault("prog_type", program.prog_type)
            self.programs[name] = VMProgram(Interpreter(
                program, maps=[self.maps[m.name] for m in program.maps], **options))
        for name, mspec in spec.maps.items():
            for slot, target in mspec.init_refs.items():
                # a prog_array holds the program itself; the interpreter runs it on a tail call
                value = (spec.programs[target] if mspec.type == PROG_ARRAY
                         else self.maps[target])
                self.maps[name].update(slot.to_bytes(4, "little"), value)

    def typed(self, name: str):
        """Map ``name`` with keys and values decoded through the object's BTF."""
        from ..btf.values import typed_map
        return typed_map(self.maps[name], self.spec.maps[name], self.spec.btf)

    def close(self) -> None:
        pass

    def __enter__(self) -> "VMCollection":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
