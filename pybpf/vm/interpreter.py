"""The reference interpreter: a live userspace instance of a :class:`pybpf.program.Program`.

An :class:`Interpreter` owns the program's memory (one 512-byte stack region per call frame,
a read-only copy of the bytecode whose addresses name subprograms, the input data of each run,
and the value storage of its maps) and runs the program on it. Two execution paths share this
state:

* the *fast path* (:mod:`.translate`): each subprogram is translated once into a Python
  function whose registers are local variables, with instruction counting per basic block;
* the *stepping path* (:mod:`.stepper`): one instruction at a time, used for ``--trace`` and to
  pin down the exact instruction at which the budget is exhausted.

Semantics follow RFC 9669 as Linux executes it (see :mod:`.semantics`). Like the kernel, an
interpreter runs only what pybpf's verifier accepts (:func:`admit`), unless it is built with
``sandbox=True``. Either way every memory access is still checked against the regions at run
time (:mod:`pybpf.memory`) and execution is bounded by an instruction budget -- the checks are
what make a sandboxed run safe, and they cost the interpreter little -- and callees start with
r0 and r6-r9 zeroed (the kernel leaves them undefined; the verifier forbids reading them).
"""

from __future__ import annotations

import time
from typing import Any, Callable, Iterable

from .. import isa
from ..errors import BPFError, HelperError, VerifierError, VMError
from ..helpers import HELPER_NAMES, get_helper
from ..helpers.kfuncs import KFUNC_KEY, KFUNCS, kfunc_name
from ..memory import Memory, Region
from ..program import Program

DEFAULT_BUDGET = 1_000_000
_ZERO_FRAME = bytes(isa.STACK_SIZE)
M64 = isa.U64

HelperImpl = Callable[..., int]


#: what ``Interpreter(sandbox=None)`` means: verify (the kernel's rule); opting out is explicit
SANDBOX_DEFAULT = False


def admit(program: Program, prog_type: str, *, data_size: int = 0) -> None:
    """Raise :class:`VerifierError` unless pybpf's verifier accepts ``program`` as
    ``prog_type`` (the kernel's rule: nothing runs unverified)."""
    from .. import verifier
    from ..errors import UsageError

    try:
        result = verifier.verify(program, prog_type=prog_type, data_size=data_size)
    except UsageError as exc:
        raise VerifierError(f"cannot verify the program ({exc}); run it with sandbox=True "
                            f"(--sandbox) to skip verification") from None
    if not result.accepted:
        what = f"as {prog_type}" if prog_type != "raw" else f"for {data_size}-byte input"
        try:
            explanation = result.explain()
        except Exception:  # an explanation is a courtesy; the verdict stands without it
            explanation = None
        at = ""
        if explanation is not None and explanation.source:
            place, _, text = explanation.source.partition(": ")
            at = f" at {place} ({text.strip()})" if text else f" at '{place.strip()}'"
        error = VerifierError(f"the verifier rejects the program {what}{at}: {result.error} "
                              f"(run with sandbox=True / --sandbox to skip verification)",
                              result.pc, result.log)
        error.explanation = explanation     # rule, values, path and fix (``pybpf verify``)
        raise error


def _kfunc_impl(btf_id: int, pc: int) -> HelperImpl:
    """The implementation of the kfunc with kernel BTF id ``btf_id`` (:mod:`pybpf.helpers.kfuncs`)."""
    name = kfunc_name(btf_id)
    if name is None:
        raise HelperError(f"kfunc call: BTF id {btf_id} is not a function of the running "
                          "kernel's BTF", pc=pc)
    impl = KFUNCS.get(name)
    if impl is None:
        raise HelperError(f"kfunc {name} (BTF id {btf_id}) is not implemented by pybpf", pc=pc)
    return impl


class ProgramExit(Exception):
    """Raised (by a helper or a packet load) to end the whole program with r0 = ``value``.

    Legacy packet loads (LD_ABS/LD_IND) outside the packet end the program returning 0, as the
    kernel does; uBPF's ``unwind`` helper ends it when it returns 0.
    """

    def __init__(self, value: int = 0):
        super().__init__(value)
        self.value = value & M64


class TailCallReturn(ProgramExit):
    """A tail call ended the frame at ``depth`` with r0 = ``value``: the program if depth is 0,
    else the subprogram, whose caller goes on with r0 = ``value``."""

    def __init__(self, value: int, depth: int = 0):
        super().__init__(value)
        self.depth = depth


class Env:
    """What a helper implementation sees of the running program (:class:`HelperEnv`)."""

    def __init__(self, vm: "Interpreter"):
        self.vm = vm
        self.memory = vm.memory

    def read(self, addr: int, size: int) -> bytes:
        return self.memory.read(addr, size)

    def write(self, addr: int, data: bytes) -> None:
        self.memory.write(addr, data)

    def map_from_ptr(self, ptr: int) -> Any:
        found = self.vm.maps_by_handle.get(ptr)
        if found is None:
            raise HelperError(f"{ptr:#x} is not a map pointer")
        return found

    def add_region(self, region: Region) -> Region:
        return self.memory.add(region)

    def remove_region(self, region: Region) -> None:
        self.memory.remove(region)

    @property
    def maps(self) -> list[Any]:
        return self.vm.maps

    @property
    def data(self) -> Region | None:
        """The input data (packet) of the current run."""
        return self.vm.data_region

    @property
    def program(self) -> Program:
        return self.vm.program

    def trace_printk(self, text: str) -> None:
        self.vm.trace_pipe.append(text)

    def call_function(self, func_ptr: int, r1: int = 0, r2: int = 0, r3: int = 0, r4: int = 0,
                      r5: int = 0) -> int:
        """Call a subprogram of the program (a callback given to a helper); returns r0."""
        return self.vm.call_function(func_ptr, r1, r2, r3, r4, r5)

    @property
    def context(self) -> Any:
        """The live context of the current run (a :class:`pybpf.progtypes.Context`), or None
        when the program runs without a program type (r1 = data, r2 = length)."""
        return self.vm.context

    def tail_call(self, target: Program, ctx: int) -> int:
        """``bpf_tail_call`` (see :meth:`Interpreter.tail_call`)."""
        return self.vm.tail_call(target, ctx)


def slot_code(insns: Iterable[isa.Instruction]) -> list[isa.Instruction | None]:
    """Instructions indexed by slot (the second slot of a 64-bit load holds None)."""
    code: list[isa.Instruction | None] = []
    for insn in insns:
        code.append(insn)
        if insn.slots == 2:
            code.append(None)
    return code


def written_registers(insn: isa.Instruction) -> tuple[int, ...]:
    """Registers an instruction writes (besides r0 written by calls)."""
    cls = insn.cls
    if cls in (isa.ALU, isa.ALU64, isa.LDX) or insn.opcode == isa.LDDW:
        return (insn.dst,)
    if cls == isa.STX and insn.opcode & 0xE0 == isa.ATOMIC:
        if insn.imm == isa.ATOMIC_CMPXCHG:
            return (0,)
        if insn.imm & isa.ATOMIC_FETCH:
            return (insn.src,)
    if cls == isa.LD:
        return (0,)
    return ()


TAIL_CALL_ID = 12   # bpf_tail_call


def _catch_tail_calls(namespace: dict, entries: list[int]) -> None:
    """Make each subprogram of a translated program return the r0 of a tail call made in its
    frame (:class:`TailCallReturn`), so its caller goes on, as in the kernel."""

    def wrap(function: Callable) -> Callable:
        def subprogram(r1, r2, r3, r4, r5, cnt, depth):
            try:
                return function(r1, r2, r3, r4, r5, cnt, depth)
            except TailCallReturn as exc:
                if exc.depth != depth:
                    raise
                return exc.value, cnt

        return subprogram

    for entry in entries:
        if entry:
            namespace[f"F{entry}"] = wrap(namespace[f"F{entry}"])


class Interpreter:
    """A program loaded into userspace memory, ready to run.

    ``maps``: live maps to use (index = ``Program.maps`` index); by default they are created
    from the program's map specs with :func:`pybpf.maps.create_map`. ``helpers`` overrides or
    adds helper implementations by id (the conformance plugin uses it for uBPF's ``unwind``).

    Like the kernel, the engine runs only programs its verifier accepts: with a program type
    the program is verified here (``VerifierError`` if rejected); without one (R1 = the input,
    R2 = its length) it is verified for each input size before the first run of that size.
    ``sandbox=True`` opts out: the program runs unverified, and every memory access is still
    checked against the regions at run time, so a hostile program ends in ``VMError``.
    """

    def __init__(self, program: Program, *, maps: list[Any] | None = None,
                 budget: int = DEFAULT_BUDGET, helpers: dict[int, HelperImpl] | None = None,
                 fast: bool = True, prog_type: str | None = None,
                 sandbox: bool | None = None):
        if not program.insns:
            raise VMError("the program is empty (it needs at least an exit instruction)")
        if budget < 0:
            raise VMError(f"instruction budget must be positive, not {budget}")
        # a program type: the run gets that type's context (r1), built per run by
        # pybpf.progtypes; helper calls and context accesses are checked and rewritten here
        self.prog_type = None
        self.context: Any = None
        self._tail_chain = [0]          # tail calls made in this run's chain (shared by targets)
        self._tail_runners: dict[int, "Interpreter"] = {}
        self.sandbox = SANDBOX_DEFAULT if sandbox is None else bool(sandbox)
        self._admitted_sizes: set[int] = set()
        if prog_type is not None:
            from .. import progtypes

            self.prog_type = progtypes.get_prog_type(prog_type)
            if not self.sandbox:
                admit(program, prog_type)
            program = progtypes.prepare(program, self.prog_type)
        self.program = program
        self.budget = budget
        self.fast = fast
        self.code = slot_code(program.insns)
        self._check_frame_pointer()
        self.memory = Memory()
        self.stacks = [self.memory.add(Region.allocate(f"stack[{i}]", isa.STACK_SIZE))
                       for i in range(isa.MAX_CALL_DEPTH)]
        self.frame_pointers = [r.end for r in self.stacks]
        text = program.bytecode()
        self.text = self.memory.add(Region.allocate("text", len(text), writable=False,
                                                    data=text))
        self.maps = self._make_maps(maps)
        self.maps_by_handle = {m.handle: m for m in self.maps}
        self.helper_overrides = dict(helpers or {})
        self.helper_impls: dict[int, HelperImpl] = {}
        self.entries = self._find_entries()
        self.func_values = {self.text.address + 8 * e: e for e in self.entries}
        self.lddw_values = self._resolve_lddw()
        self._resolve_call_sites()
        self.env = Env(self)
        self.trace_pipe: list[str] = []
        self.data_region: Region | None = None
        self.insn_count = 0
        self._translated = None
        self._helper_frame: list[int] | None = None   # [depth, count] during a helper call
        self._stepping = False
        self._trace: Callable | None = None

    # --- loading -----------------------------------------------------------------------------
    def _check_frame_pointer(self) -> None:
        for pc, insn in enumerate(self.code):
            if insn is not None and isa.FRAME_POINTER in written_registers(insn):
                raise VMError("r10 (the frame pointer) is read-only", pc=pc)

    def _make_maps(self, maps: list[Any] | None) -> list[Any]:
        if maps is None:
            if not self.program.maps:
                maps = []
            else:
                try:
                    from ..maps import create_map
                except ImportError as exc:
                    raise VMError(f"the program uses maps but pybpf.maps is unavailable: "
                                  f"{exc}") from None
                maps = [create_map(spec) for spec in self.program.maps]
        else:
            maps = list(maps)
        for m in maps:
            regions = getattr(m, "regions", None)
            for region in (regions() if callable(regions) else []):
                self.memory.add(region)
        return maps

    def _find_entries(self) -> list[int]:
        entries = {0}
        for pc, insn in enumerate(self.code):
            if insn is None:
                continue
            if insn.opcode == isa.JMP | isa.CALL and insn.src == isa.CALL_LOCAL:
                entries.add(pc + 1 + insn.imm)
            elif insn.opcode == isa.LDDW and insn.src == isa.PSEUDO_FUNC:
                entries.add(pc + 1 + insn.imm)
        for e in entries:
            if not 0 <= e < len(self.code) or self.code[e] is None:
                raise VMError(f"call to {e} is not an instruction of the program")
        return sorted(entries)

    def _map_index_for(self, insn: isa.Instruction, pc: int) -> int:
        index = insn.imm
        if insn.src in (isa.PSEUDO_MAP_FD, isa.PSEUDO_MAP_VALUE):
            # a file descriptor has no meaning here: use the map the program's references name
            logical = sum(1 for i in self.code[:pc] if i is not None)
            for ref in self.program.map_refs:
                if ref.index == logical:
                    names = [s.name for s in self.program.maps]
                    if ref.map_name in names:
                        index = names.index(ref.map_name)
        if not 0 <= index < len(self.maps):
            raise VMError(f"64-bit load refers to map {index} but the program has "
                          f"{len(self.maps)} map(s)", pc=pc)
        return index

    def _resolve_lddw(self) -> dict[int, int]:
        values: dict[int, int] = {}
        for pc, insn in enumerate(self.code):
            if insn is None or insn.opcode != isa.LDDW:
                continue
            src = insn.src
            if src == isa.PSEUDO_IMM64:
                values[pc] = insn.imm64
            elif src in (isa.PSEUDO_MAP_IDX, isa.PSEUDO_MAP_FD):
                values[pc] = self.maps[self._map_index_for(insn, pc)].handle & M64
            elif src in (isa.PSEUDO_MAP_IDX_VALUE, isa.PSEUDO_MAP_VALUE):
                m = self.maps[self._map_index_for(insn, pc)]
                base = getattr(m, "value_address", None)
                if base is None:
                    raise VMError(f"map {m.spec.name if hasattr(m, 'spec') else insn.imm} has no "
                                  "directly addressable value", pc=pc)
                values[pc] = (base + ((insn.imm_hi or 0) & isa.U32)) & M64
            elif src == isa.PSEUDO_FUNC:
                values[pc] = self.text.address + 8 * (pc + 1 + insn.imm)
            elif src == isa.PSEUDO_BTF_ID:
                # a kernel variable; none exists in userspace: it resolves like a missing
                # weak ksym (address 0)
                values[pc] = 0
        return values

    def _resolve_call_sites(self) -> None:
        for pc, insn in enumerate(self.code):
            if insn is None or insn.opcode != isa.JMP | isa.CALL:
                continue
            if insn.src == isa.CALL_HELPER:
                self.helper_impl(insn.imm, pc)
            elif insn.src == isa.CALL_KFUNC:
                self.helper_impls[KFUNC_KEY | insn.imm & isa.U32] = _kfunc_impl(insn.imm, pc)

    def helper_impl(self, hid: int, pc: int | None) -> HelperImpl:
        impl = self.helper_impls.get(hid)
        if impl is not None:
            return impl
        impl = self.helper_overrides.get(hid)
        if impl is None:
            found = get_helper(hid)
            impl = found.impl if found is not None else None
        if impl is None:
            name = HELPER_NAMES.get(hid)
            what = f"helper {name} (id {hid})" if name else f"helper id {hid}"
            state = "is not implemented by the interpreter" if name else "is unknown"
            raise HelperError(f"{what} {state}", pc=pc)
        self.helper_impls[hid] = impl
        return impl

    # --- services used by both execution paths ------------------------------------------------
    def frame_pointer(self, depth: int) -> int:
        return self.frame_pointers[depth]

    def call_helper(self, hid: int, pc: int, r1: int, r2: int, r3: int, r4: int,
                    r5: int) -> int:
        impl = self.helper_impls.get(hid) or self.helper_impl(hid, pc)
        try:
            result = impl(self.env, r1, r2, r3, r4, r5)
        except ProgramExit:
            raise
        except VMError as exc:
            if exc.pc is None:
                raise type(exc)(exc.message, pc=pc, address=exc.address,
                                source=exc.source) from None
            raise
        except BPFError as exc:
            raise HelperError(f"{HELPER_NAMES.get(hid, hid)}: {exc}", pc=pc) from None
        except Exception as exc:  # a helper bug must not surface as a raw traceback
            raise HelperError(f"{HELPER_NAMES.get(hid, hid)} failed: {type(exc).__name__}: "
                              f"{exc}", pc=pc) from None
        return (result or 0) & M64

    def call_helper_counted(self, hid: int, pc: int, r1: int, r2: int, r3: int, r4: int,
                            r5: int, count: int, depth: int) -> tuple[int, int]:
        """Call a helper from frame ``depth`` with ``count`` instructions executed so far;
        returns (r0, count) -- a helper that calls back into the program (``bpf_loop``,
        ``for_each_map_elem``) runs instructions that count against the budget."""
        saved = self._helper_frame
        self._helper_frame = [depth, count]
        try:
            r0 = self.call_helper(hid, pc, r1, r2, r3, r4, r5)
            return r0, self._helper_frame[1]
        finally:
            self._helper_frame = saved

    def call_function(self, func_ptr: int, r1: int, r2: int, r3: int, r4: int,
                      r5: int) -> int:
        """Run the subprogram at ``func_ptr`` (a pseudo-func address) in a new frame and return
        its r0: how helpers call back into the program."""
        entry = self.func_values.get(func_ptr & M64)
        if entry is None:
            raise HelperError(f"callback {func_ptr:#x} is not a subprogram of the program")
        frame = self._helper_frame
        depth, count = (frame if frame is not None else [0, self.insn_count])
        if depth + 1 >= isa.MAX_CALL_DEPTH:
            raise VMError(f"call depth limit of {isa.MAX_CALL_DEPTH} frames exceeded by a "
                          "callback")
        if self._stepping:
            from .stepper import Stepper

            stepper = Stepper(self, self._trace)
            stepper.regs[1:6] = [r1, r2, r3, r4, r5]
            stepper.regs[10] = self.frame_pointers[depth + 1]
            stepper.depth = depth + 1
            stepper.count = count
            try:
                r0 = stepper.run(entry)
            finally:
                count = stepper.count
        else:
            r0, count = self.translated()[f"F{entry}"](r1, r2, r3, r4, r5, count, depth + 1)
        if frame is not None:
            frame[1] = count
        return r0

    def resolve_callx(self, value: int, pc: int) -> tuple[str, int]:
        """What ``callx`` calls: a subprogram (its address in ``text``) or a helper id."""
        entry = self.func_values.get(value)
        if entry is not None:
            return "func", entry
        if value < 1 << 31:
            self.helper_impl(value, pc)
            return "helper", value
        raise VMError(f"callx to {value:#x}: not a subprogram or helper", pc=pc,
                      address=value)

    def load(self, addr: int, size: int, pc: int, write: bool = False) -> int:
        try:
            region, off = self.memory.find(addr, size, write)
        except VMError as exc:
            raise VMError(exc.message, pc=pc, address=addr) from None
        return int.from_bytes(region.view[off: off + size], "little")

    def store(self, addr: int, size: int, value: int, pc: int) -> None:
        try:
            region, off = self.memory.find(addr, size, True)
        except VMError as exc:
            raise VMError(exc.message, pc=pc, address=addr) from None
        region.view[off: off + size] = (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")

    def load_packet(self, off: int, size: int) -> int:
        """Legacy LD_ABS/LD_IND: big-endian load from the input data; outside it the program
        ends returning 0 (the kernel's ``bpf_skb_load_helper`` failure path)."""
        region = self.data_region
        if region is None or off < 0 or off + size > region.size:
            raise ProgramExit(0)
        return int.from_bytes(region.view[off: off + size], "big")

    def lddw_value(self, insn: isa.Instruction, pc: int) -> int:
        return self.lddw_values[pc]

    # --- running -----------------------------------------------------------------------------
    def _prepare(self, data: bytes) -> Region:
        zeros = _ZERO_FRAME
        for stack in self.stacks:
            stack.view[:] = zeros
        region = self.data_region
        if region is not None and region.size == len(data):
            # same size as last run: reuse the buffer, so addresses stay put across runs
            region.view[: len(data)] = data
            return region
        if region is not None:
            self.memory.remove(region)
        self.data_region = self.memory.add(Region.allocate("data", len(data), data=bytes(data)))
        return self.data_region

    def run(self, data: bytes = b"", *, trace: Callable | None = None,
            stepping: bool = False, ctx: bytes | None = None) -> int:
        """Run once on a copy of ``data``; returns r0 as an unsigned 64-bit integer.

        r1 holds the address of the copy and r2 its length. ``trace(pc, insn, before, after)``
        is called after each instruction (forces the stepping path).
        """
        if self.prog_type is not None:
            r1, r2 = self._prepare_context(data, ctx), 0
            self._tail_chain = [0]
        else:
            if ctx is not None:
                raise VMError("a context needs a program type (Interpreter(..., prog_type=))")
            if not self.sandbox and len(data) not in self._admitted_sizes:
                self.admit_input(len(data))
            self._tail_chain = [0]          # each run starts a new tail-call chain
            region = self._prepare(data)
            r1, r2 = region.address, len(data)
        self._stepping = trace is not None or stepping or not self.fast
        self._trace = trace
        self._helper_frame = None
        try:
            if self._stepping:
                return self._run_stepping(r1, r2, trace)
            return self._run_fast(r1, r2)
        except ProgramExit as exc:
            return exc.value
        except VMError as exc:
            line = self.source_line(exc.pc)
            if line is None or exc.source is not None:
                raise
            raise type(exc)(exc.message, pc=exc.pc, address=exc.address,
                            source=line) from None

    def admit_input(self, size: int) -> None:
        """Verify the program (no program type) for inputs of ``size`` bytes, once per size;
        both engines call it before a run. ``VerifierError`` if the verifier rejects it."""
        if self.sandbox or size in self._admitted_sizes:
            return
        admit(self.program, "raw", data_size=size)
        self._admitted_sizes.add(size)

    def source_line(self, pc: int | None) -> str | None:
        """The source line (C from BTF line info, or assembly) of the instruction at slot
        ``pc``: the nearest line recorded at or before it."""
        lines = self.program.lines
        if pc is None or not lines:
            return None
        best = max((slot for slot in lines if slot <= pc), default=None)
        return lines[best].strip() if best is not None else None

    def _prepare_context(self, data: bytes, ctx: bytes | None) -> int:
        """Build this run's context (and packet) in memory; returns its address for r1."""
        for stack in self.stacks:
            stack.view[:] = _ZERO_FRAME
        context = self.context
        if context is None or context.memories != [self.memory] or not context.reset(data, ctx):
            if context is not None:
                context.release()
                self.context = None
            self.context = self.prog_type.make_context(self.memory, data, ctx)
        packet = self.context.packet
        if packet is None:
            packet = self._empty_packet()
        self.data_region = packet
        return self.context.address

    def _empty_packet(self) -> Region:
        region = getattr(self, "_no_packet", None)
        if region is None:
            region = self._no_packet = Region.allocate("no packet", 0)
        return region

    def data_out(self) -> bytes:
        """The packet as the last run left it (what BPF_PROG_TEST_RUN hands back)."""
        if self.context is not None:
            return self.context.data_out()
        return self.data_region.bytes() if self.data_region is not None else b""

    def ctx_out(self) -> bytes | None:
        """The context as the last run left it, as BPF_PROG_TEST_RUN hands it back."""
        return self.context.ctx_out() if self.context is not None else None

    def tail_call(self, target: Program, ctx: int) -> int:
        """``bpf_tail_call``: run ``target`` on the same context and packet in place of the
        caller, sharing the live maps by name. The kernel counts tail calls along the chain and
        fails the 34th (MAX_TAIL_CALL_CNT = 33); a failed tail call returns to the caller. A
        tail call from a bpf-to-bpf subprogram replaces that subprogram only: its caller gets
        the target's r0 (the x86-64 JIT's behaviour since Linux 5.10)."""
        from ..helpers.maps import E2BIG, MAX_TAIL_CALL_CNT

        if self._tail_chain[0] >= MAX_TAIL_CALL_CNT:
            return -E2BIG & M64
        self._tail_chain[0] += 1
        runner = self._tail_runner(target)
        r0 = runner.run_in_chain(self)
        frame = self._helper_frame
        depth = frame[0] if frame is not None else 0
        raise TailCallReturn(r0, depth)

    def _tail_runner(self, target: Program) -> "Interpreter":
        runner = self._tail_runners.get(id(target))
        if runner is None:
            shared = {}
            for spec, live in zip(self.program.maps, self.maps):
                shared[spec.name] = live
            maps = []
            for spec in target.maps:
                live = shared.get(spec.name)
                if live is None:
                    from ..maps import create_map

                    live = create_map(spec)
                maps.append(live)
            ptype = self.prog_type.name if self.prog_type is not None else None
            runner = Interpreter(target, maps=maps, budget=self.budget, prog_type=ptype,
                                 helpers=self.helper_overrides, fast=self.fast,
                                 sandbox=self.sandbox)
            self._tail_runners[id(target)] = runner
        return runner

    def run_in_chain(self, caller: "Interpreter") -> int:
        """Run as the target of ``caller``'s tail call: on its context, packet and chain."""
        for stack in self.stacks:
            stack.view[:] = _ZERO_FRAME
        context = caller.context
        self.context = None
        self._tail_chain = caller._tail_chain
        self._helper_frame = None
        if context is None:
            region = self._prepare(caller.data_region.bytes() if caller.data_region else b"")
            r1, r2 = region.address, region.size
        else:
            context.attach(self.memory)
            self.context = context
            self.data_region = context.packet or self._empty_packet()
            r1, r2 = context.address, 0
        try:
            if self.fast and not caller._stepping:
                return self._run_fast(r1, r2)
            self._stepping = True
            return self._run_stepping(r1, r2, None)
        except ProgramExit as exc:
            return exc.value
        finally:
            if context is not None:
                context.detach(self.memory)
                caller.data_region = context.packet or caller.data_region
                self.context = None
            elif caller.data_region is not None and self.data_region is not None \
                    and caller.data_region.size == self.data_region.size:
                caller.data_region.view[:] = self.data_region.view

    def _run_stepping(self, r1: int, r2: int, trace: Callable | None) -> int:
        from .stepper import Stepper

        stepper = Stepper(self, trace)
        stepper.regs[1], stepper.regs[2] = r1, r2
        stepper.regs[10] = self.frame_pointers[0]
        try:
            return stepper.run(0)
        finally:
            self.insn_count = stepper.count

    def translated(self):
        if self._translated is None:
            from .translate import bind

            self._translated = bind(self)
            if len(self.entries) > 1 and any(
                    i is not None and i.opcode == isa.JMP | isa.CALL and i.src == isa.CALL_HELPER
                    and i.imm == TAIL_CALL_ID for i in self.code):
                _catch_tail_calls(self._translated, self.entries)
        return self._translated

    def _run_fast(self, r1: int, r2: int) -> int:
        namespace = self.translated()
        region = self.data_region
        namespace["PKT"] = region.view
        namespace["PLEN"] = region.size
        r0, self.insn_count = namespace["F0"](r1, r2, 0, 0, 0, 0, 0)
        return r0

    def time_runs(self, data: bytes = b"", repeat: int = 1) -> tuple[int, float]:
        """Run ``repeat`` times; returns (r0 of the last run, mean nanoseconds per run)."""
        repeat = max(repeat, 1)
        if self.fast:
            self.translated()   # translate before timing
        if self.prog_type is None:
            self.admit_input(len(data))   # and verify
        total = 0
        r0 = 0
        for _ in range(repeat):
            start = time.perf_counter_ns()
            r0 = self.run(data)
            total += time.perf_counter_ns() - start
        return r0, total / repeat

    def step_from(self, pc: int, regs: list[int], depth: int, count: int) -> None:
        """Fast-path hand-over: re-run the block at ``pc`` one instruction at a time from the
        given state, to fail at the exact instruction where the budget runs out (or at an
        earlier fault). Never returns normally."""
        from ..errors import BudgetExceeded
        from .stepper import Stepper

        stepper = Stepper(self)
        stepper.regs[:10] = regs
        stepper.regs[10] = self.frame_pointers[depth]
        stepper.depth = depth
        stepper.count = count
        stepper.run(pc)
        raise BudgetExceeded(f"instruction budget of {self.budget} exhausted "
                             "(the program may not terminate)", pc=pc)
