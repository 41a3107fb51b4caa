"""The Python side of running JIT-compiled code: context, region table, helper trampoline,
faults.

Native code and the interpreter share one address space (:mod:`pybpf.memory`): the runtime
borrows an :class:`pybpf.vm.Interpreter` for everything that is not execution -- its Memory
(stacks, bytecode text, map storage, input data), its live maps, its helper environment and
helper dispatch (so a helper behaves, and fails, exactly as under the interpreter) and its
resolution of 64-bit loads. The runtime mirrors that Memory into a native *region table*
(``{lo, span, writable}`` words, entry 0 being the input data) that checked native code scans
on a region-cache miss.

Helpers run through one ctypes callback, :data:`HELPER_TRAMPOLINE`
(``u64 helper(ctx, mode, id, pc, r1..r5)``), which finds the runtime by its context address.
An exception raised there cannot cross native frames: it is parked on the runtime, the context
status becomes ``Fault.HELPER`` and native code unwinds; :meth:`Runtime.raise_fault` re-raises
it in Python. Every other fault is turned into the same :class:`pybpf.errors.VMError` (or
:class:`pybpf.errors.BudgetExceeded`) the interpreter raises.
"""

from __future__ import annotations

import ctypes
import os
import weakref
from typing import Any

from .. import isa
from ..errors import BudgetExceeded, HelperError, VMError
from ..maps.base import current_cpu
from ..memory import Region
from ..vm import Interpreter, ProgramExit
from ..vm.interpreter import TailCallReturn
from . import hashindex
from .tailcall import TailCalls, table_words
from .layout import CTX_FIELDS, CTX_WORDS, FRAMES, MODE_CALLX, MODE_TAIL, REGION_WORDS, Fault

C = CTX_FIELDS
M64 = isa.U64

HELPER_FN = ctypes.CFUNCTYPE(ctypes.c_uint64, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint64,
                             ctypes.c_uint64, ctypes.c_uint64, ctypes.c_uint64, ctypes.c_uint64,
                             ctypes.c_uint64, ctypes.c_uint64)

#: live runtimes by context address (the trampoline's way back to Python objects)
_RUNTIMES: "weakref.WeakValueDictionary[int, Runtime]" = weakref.WeakValueDictionary()


def _trampoline(ctx: int, mode: int, hid: int, pc: int, r1: int, r2: int, r3: int, r4: int,
                r5: int) -> int:
    rt = _RUNTIMES.get(ctx)
    if rt is None:      # cannot happen while a runtime runs; fail safe rather than crash
        return 0
    try:
        return rt.call_helper(mode, hid, pc, r1, r2, r3, r4, r5)
    except TailCallReturn as exc:    # the calling function is replaced by the target
        rt.words[C["exit_value"]] = exc.value
        rt.words[C["status"]] = Fault.TAILRET
    except ProgramExit as exc:
        rt.words[C["exit_value"]] = exc.value
        rt.words[C["status"]] = Fault.EXIT
    except BaseException as exc:        # parked, re-raised once native code has unwound
        rt.pending = exc
        rt.words[C["status"]] = Fault.HELPER
        rt.words[C["fault_pc"]] = pc
    return 0


HELPER_TRAMPOLINE = HELPER_FN(_trampoline)
HELPER_ADDRESS = ctypes.cast(HELPER_TRAMPOLINE, ctypes.c_void_p).value


class Runtime:
    """Native state of one JIT program instance: context words and region table."""

    def __init__(self, vm: Interpreter, consts: list[tuple[str, int]]):
        self.vm = vm
        self.memory = vm.memory
        from . import _shape

        #: what the code generator assumed of the maps (where tail-call tables live)
        self.shapes = [_shape(m) for m in vm.maps]
        self.words = (ctypes.c_uint64 * (CTX_WORDS + table_words(self.shapes)))()
        self.address = ctypes.addressof(self.words)
        self.pending: BaseException | None = None
        #: bpf_tail_call tables and targets (.tailcall), made when the code asks for a table
        self.tails: TailCalls | None = None
        self.data_region: Region | None = None
        self._table: Any = None
        self._table_key: tuple = ()
        self._const_table = (ctypes.c_uint64 * max(len(consts), 1))()
        for i, (kind, arg) in enumerate(consts):
            self._const_table[i] = self._const_value(kind, arg)
        w = self.words
        w[C["helper"]] = HELPER_ADDRESS
        w[C["text"]] = vm.text.address
        w[C["consts"]] = ctypes.addressof(self._const_table)
        w[C["rng"]] = int.from_bytes(os.urandom(8), "little") | 1
        w[C["root"]] = self.address     # a chain started here records its jumps here
        for d, fp in enumerate(vm.frame_pointers):
            w[FRAMES + d] = fp - isa.STACK_SIZE
        _RUNTIMES[self.address] = self

    def _const_value(self, kind: str, arg: int) -> int:
        if kind == "lddw":
            return self.vm.lddw_values[arg] & M64
        if kind == "map_base":
            m = self.vm.maps[arg]
            base = getattr(m, "value_address", None)    # array maps (element 0)
            return (base if base is not None else m.base) & M64     # hash maps: slot 0
        if kind == "hash_table":
            return hashindex.attach(self.vm.maps[arg]).table_address
        if kind == "hash_keys":
            return hashindex.attach(self.vm.maps[arg]).keys_address
        if kind == "tail_table":
            if self.tails is None:
                self.tails = TailCalls(self)
            return self.tails.table_address(arg)
        if kind == "ringbuf":
            return self.vm.maps[arg].state_address
        if kind == "hash_lru":
            return hashindex.attach(self.vm.maps[arg]).lru_address
        raise ValueError(kind)

    # --- input data and the region table -------------------------------------------------------
    def prepare(self, data: bytes, ctx: bytes | None) -> tuple[int, int]:
        """Set up one run as the interpreter does; returns (r1, r2): the input's address and
        length, or -- for a program type -- its context's address and 0."""
        vm = self.vm
        if hasattr(vm, "_tail_chain"):
            vm._tail_chain = [0]          # a new run starts a new tail-call chain
        if getattr(vm, "prog_type", None) is not None:
            r1 = vm._prepare_context(data, ctx)
            packet = vm.data_region
            self.words[C["data_lo"]] = packet.address if packet is not None else 0
            self.words[C["data_len"]] = packet.size if packet is not None else 0
            self._table_key = ()
            self.sync_regions()
            return r1, 0
        if ctx is not None:
            raise VMError("a context needs a program type (JITProgram(..., prog_type=))")
        vm.admit_input(len(data))
        region = self.set_data(data)
        return region.address, len(data)

    def set_data(self, data: bytes) -> Region:
        """Give the run a fresh copy of ``data`` as its input-data region (as the interpreter's
        ``run`` does). A region of the same size is reused in place -- no allocation per run,
        and a program sees the same addresses under both engines of one instance."""
        vm = self.vm
        region = vm.data_region
        if region is not None and region.size == len(data) and region.writable:
            region.view[: len(data)] = data
        else:
            if region is not None:
                self.memory.remove(region)
            vm.data_region = self.memory.add(Region.allocate("data", len(data),
                                                             data=bytes(data)))
        self.words[C["data_lo"]] = vm.data_region.address
        self.words[C["data_len"]] = len(data)
        self.sync_regions()
        return vm.data_region

    def adopt_data(self, address: int, size: int, buffer: Any) -> None:
        """Make ``[address, address + size)`` of ``buffer`` the input-data region (batch)."""
        vm = self.vm
        region = vm.data_region
        if region is not None and region.address == address and region.size == size:
            return
        if region is not None:
            self.memory.remove(region)
        vm.data_region = self.memory.add(Region("data", address, size, True, buffer))

    def sync_regions(self) -> None:
        """Rebuild the native region table when the Memory's region set changed."""
        regions = list(self.memory)
        key = tuple((r.address, r.size, r.writable) for r in regions)
        if key == self._table_key:
            return
        data = self.vm.data_region
        ordered = ([data] if data is not None else []) + [r for r in regions if r is not data]
        table = (ctypes.c_uint64 * max(REGION_WORDS * len(ordered), REGION_WORDS))()
        for i, r in enumerate(ordered):
            table[3 * i: 3 * i + 3] = [r.address, r.size, int(r.writable)]
        self._table, self._table_key = table, key
        self.words[C["regions"]] = ctypes.addressof(table)
        self.words[C["nregions"]] = len(ordered)

    # --- helpers ---------------------------------------------------------------------------------
    def call_helper(self, mode: int, hid: int, pc: int, r1: int, r2: int, r3: int, r4: int,
                    r5: int) -> int:
        if mode == MODE_TAIL:
            return self.tails.resolve(hid, r1)
        vm = self.vm
        lo, size = self.words[C["data_lo"]], self.words[C["data_len"]]
        region = vm.data_region
        if region is None or region.address != lo or region.size != size:
            self.adopt_data(lo, size, None)     # the batch driver moved the data window
            self.sync_regions()
        if mode == MODE_CALLX:
            kind, target = vm.resolve_callx(hid, pc)
            hid = target
        result = vm.call_helper(hid, pc, r1, r2, r3, r4, r5)
        self.sync_regions()
        return result

    # --- helpers that call back into the program ------------------------------------------------
    def install(self, call_native: Any, program: Any) -> None:
        """Offer the helper environment the two hooks pybpf.helpers.maps looks for:
        ``call_function`` (run a subprogram natively, for bpf_for_each_map_elem) and
        ``tail_call`` (the interpreter's chain; the native caller returns the target's r0)."""
        self._call_native = call_native
        self._program = weakref.ref(program)
        env = self.vm.env
        env.call_function = self.call_function
        env.tail_call = self.tail_call

    def call_function(self, fn: int, r1: int = 0, r2: int = 0, r3: int = 0, r4: int = 0,
                      r5: int = 0) -> int:
        w = self.words
        depth = w[C["depth"]]
        self.sync_regions()     # the helper may have made memory for the callback (a key)
        r0 = self._call_native(self.address, fn & M64, r1 & M64, r2 & M64, r3 & M64,
                               r4 & M64, r5 & M64, depth + 1)
        w[C["depth"]] = depth
        status = w[C["status"]]
        if status == Fault.EXIT:
            w[C["status"]] = 0
            raise ProgramExit(w[C["exit_value"]])
        if status:
            program = self._program()
            self.raise_fault(program.budget if program is not None else 0)
        self.sync_regions()
        return r0

    def tail_call(self, target: Any, ctx: int) -> int:
        """``bpf_tail_call`` where the code could not name the prog_array at compile time:
        the interpreter's chain semantics (count, shared maps, context), the target run by the
        interpreter; the native caller returns the target's r0. The chain count is the one
        native tail calls keep."""
        w = self.words
        chain = getattr(self.vm, "_tail_chain", None)
        if chain is None:
            return self.vm.tail_call(target, ctx)
        chain[0] = w[C["tail_cnt"]]
        try:
            return self.vm.tail_call(target, ctx)
        finally:
            w[C["tail_cnt"]] = chain[0]

    # --- as a tail-call target -------------------------------------------------------------------
    def borrow_input(self, caller: "Runtime") -> None:
        """Run on ``caller``'s input, as the interpreter's ``run_in_chain``: its context
        attached to this memory (regions it adds or moves later follow), or its data region."""
        vm, cvm = self.vm, caller.vm
        context = cvm.context
        if context is not None:
            if not any(m is self.memory for m in context.memories):
                context.attach(self.memory)
            vm.context = context
            vm.data_region = context.packet or vm._empty_packet()
        else:
            region = cvm.data_region
            if region is None or vm.data_region is region:
                return          # lent already (the table's entry 0 follows the caller)
            old = vm.data_region
            if old is not None and any(r is old for r in self.memory):
                self.memory.remove(old)
            self.memory.add(region)
            vm.data_region = region
        if vm.data_region is not None:
            self.words[C["data_lo"]] = vm.data_region.address
            self.words[C["data_len"]] = vm.data_region.size
        self.sync_regions()

    def return_input(self, caller: "Runtime | None") -> None:
        """The run is over: detach the caller's context (its engine rebuilds a context that
        is attached elsewhere) and give the caller the packet as the target left it."""
        vm = self.vm
        context = vm.context
        if context is None:
            return
        if any(m is self.memory for m in context.memories):
            context.detach(self.memory)
        vm.context = None
        if caller is not None and caller.vm.context is context and context.packet is not None:
            caller.vm.data_region = context.packet

    # --- faults ----------------------------------------------------------------------------------
    def clear(self) -> None:
        w = self.words
        w[C["cpu"]] = current_cpu()
        w[C["status"]] = 0
        w[C["exit_value"]] = 0
        w[C["batch_index"]] = 0
        self.pending = None

    def raise_fault(self, budget: int) -> None:
        """Turn ``ctx.status`` into the exception the interpreter would raise."""
        w = self.words
        status = Fault(w[C["status"]])
        pc = w[C["fault_pc"]]
        addr = w[C["fault_addr"]]
        if status == Fault.HELPER:
            exc, self.pending = self.pending, None
            if isinstance(exc, VMError) and exc.pc is None:
                exc.pc = pc
            raise exc if exc is not None else HelperError("helper failed", pc=pc)
        if status in (Fault.READ, Fault.WRITE):
            size = w[C["fault_size"]]
            try:
                self.memory.find(addr, size, status == Fault.WRITE)
                message = (f"invalid {'write' if status == Fault.WRITE else 'read'} of {size} "
                           f"bytes at {addr:#x}: not inside any memory region")
            except VMError as exc:
                message = exc.message
            raise VMError(message, pc=pc, address=addr)
        if status == Fault.TAILFAULT:     # a tail-call target faulted: its own error
            target = _RUNTIMES.get(addr)
            program = target._program() if target is not None else None
            if program is not None:
                program._raise_fault()
            raise VMError("a tail-call target faulted", pc=pc)
        if status == Fault.BUDGET:
            raise BudgetExceeded(f"instruction budget of {budget} exhausted "
                                 "(the program may not terminate)", pc=pc)
        if status == Fault.DEPTH:
            raise VMError(f"call depth limit of {isa.MAX_CALL_DEPTH} frames exceeded", pc=pc)
        if status == Fault.LEFT:
            raise VMError("execution left the program", pc=pc)
        if status == Fault.MIDDLE:
            raise VMError("execution entered the middle of a 64-bit load", pc=pc)
        raise VMError(f"native code stopped with status {status.name}", pc=pc)

    def close(self) -> None:
        _RUNTIMES.pop(self.address, None)
