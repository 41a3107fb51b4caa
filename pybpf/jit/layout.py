"""The run-time context shared by JIT-compiled code and Python: field table and fault codes.

Native code receives one pointer, ``ctx``, to an array of 64-bit words. Both sides index it
through :data:`CTX_FIELDS`, so the layout is written once: the code generator emits
``getelementptr i64, ptr %ctx, i64 <index>`` and :mod:`.runtime` reads and writes the same
words through ctypes.

Faults cannot unwind native frames, so a fault stores its kind (:class:`Fault`), pc and
address here and every function returns at once; callers test ``status`` after each call.
"""

from __future__ import annotations

import enum

from .. import isa

#: word index of each context field
CTX_FIELDS: dict[str, int] = {name: i for i, name in enumerate((
    "status",       # Fault kind of the run, 0 while it is healthy
    "fault_pc",     # slot of the faulting instruction (also: the pc of the helper being called)
    "fault_addr",   # faulting address; for a budget fault: instructions left before the block
    "fault_size",   # size of the faulting access
    "budget",       # instructions left (signed); functions keep it in a register between calls
    "helper",       # address of the generic helper trampoline (runtime.HELPER_TRAMPOLINE)
    "regions",      # address of the region table: {lo, span, writable} per region
    "nregions",     # entries in the region table
    "text",         # address of the read-only copy of the bytecode (callx / PSEUDO_FUNC values)
    "consts",       # address of the table of run-time constants (lddw values, map storage)
    "data_lo",      # input data (packet) of the current run: address and length, for LD_ABS
    "data_len",
    "exit_value",   # r0 when a helper or packet load ended the whole program
    "rng",          # state of the native bpf_get_prandom_u32 (xorshift64*)
    "batch_index",  # packet being run by the batch driver
    "depth",        # call depth of the function that called the helper trampoline
    "cpu",          # the CPU per-CPU maps use (pybpf.maps.current_cpu() when the run starts)
    "tail_cnt",     # tail calls made so far in this run's chain (MAX_TAIL_CALL_CNT = 33)
    "entry",        # address of this program's native entry (a tail call's jump target)
    "budget_full",  # the budget each run (and each tail-call target) starts with
    "run_r1",       # r1 and r2 the run started with (a tail-call target starts with them)
    "run_r2",
    "jumped",       # Fault.TAILJUMP: the context of the last target of this one's chain
    "root",         # the context whose Fault.TAILJUMP and jumped this chain's jumps record
))}
FRAMES = len(CTX_FIELDS)                      # frames[depth]: lowest address of stack frame
CTX_WORDS = FRAMES + isa.MAX_CALL_DEPTH

#: words per region table entry: lowest address, size in bytes, writable (0/1)
REGION_WORDS = 3


class Fault(enum.IntEnum):
    """Why native code stopped early (``ctx.status``)."""

    NONE = 0
    READ = 1         # load outside every region
    WRITE = 2        # store outside every writable region
    BUDGET = 3       # instruction budget exhausted
    DEPTH = 4        # call depth limit
    HELPER = 5       # a helper raised in Python (the exception is pending in the runtime)
    EXIT = 6         # the whole program ends with r0 = exit_value (LD_ABS miss, unwind helper)
    LEFT = 7         # execution left the program (fault_pc = the slot it went to)
    MIDDLE = 8       # execution entered the second slot of a 64-bit load
    CALLX = 9        # callx to a value that is neither a subprogram nor a helper id
    TAILRET = 10     # a tail call replaced the calling function: it returns exit_value
    TAILFAULT = 11   # a native tail-call target faulted: fault_addr = the target's context
    TAILJUMP = 12    # the chain started here (root) jumped to tail-call targets, the last of
                     # which (jumped) holds the run's outcome (tail_settle)


#: helper trampoline modes (its second argument)
MODE_HELPER = 0      # call helper ``id``
MODE_CALLX = 1       # callx on a value that is not a subprogram entry: resolve it like the VM
MODE_TAIL = 2        # bpf_tail_call found no target context in its table: ``id`` = map index,
                     # r1 = slot; answers the target's context address, or 1 for an empty slot
                     # (or 2: occupied, but the chain is full and no target was made)
