"""Live instances of an :class:`ObjectSpec`: every map created once and shared by all programs.

What libbpf's ``bpf_object__load`` does after relocation, over pybpf's engines:

- the kernel (:class:`KernelCollection`, over :func:`pybpf.kernel.load_collection`): load the
  object's BTF (with the DATASEC sizes the ELF loader filled in), create each map once, load
  each program with its maps, func_info and line_info, then fill prog_arrays with program fds
  and map-in-map slots with map fds, as ``.rel.maps`` asked;
- the interpreter (:class:`VMCollection`): the same with :func:`pybpf.maps.create_map` and
  :class:`pybpf.vm.Interpreter`; prog_array slots hold the programs themselves.

``coll.programs[name]`` and ``coll.maps[name]`` are the live objects; both collections are
context managers (the kernel one closes its fds).
"""

from __future__ import annotations

from typing import Any

from .loader import ObjectSpec
from .maps import PROG_ARRAY


class KernelCollection:
    """An object loaded into the running kernel by :func:`pybpf.kernel.load_collection` (the
    kernel engine's libbpf-like ``bpf_object__load``), with typed map access added."""

    def __init__(self, spec: ObjectSpec, *, log_level: int = 0):
        from ..kernel.collection import load_collection

        self.spec = spec
        self._live = load_collection(spec, log_level=log_level)
        self.programs: dict[str, Any] = self._live.programs
        self.maps: dict[str, Any] = self._live.maps

    def typed(self, name: str):
        """Map ``name`` with keys and values decoded through the object's BTF."""
        from ..btf.values import typed_map
        return typed_map(self.maps[name], self.spec.maps[name], self.spec.btf)

    def close(self) -> None:
        self._live.close()

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
