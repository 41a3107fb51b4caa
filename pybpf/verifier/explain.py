"""Explanations of rejections that a C programmer can act on.

One root cause per rejection: the instruction (and its C line when the object had BTF line
info), the rule that failed in plain words, the values involved against the allowed region, the
causal path (branch decisions on the failing path and where the offending value came from), and
a concrete suggestion. Each rejection has a stable ``error_id`` for ``--json``; the table
:data:`RULES` is the documentation of those ids.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .. import isa
from .log import insn_text

#: error id -> the rule in plain words
RULES: dict[str, str] = {
    "packet-out-of-bounds": "packet data may only be read or written after a comparison with "
                            "data_end proves the bytes are inside the packet",
    "invalid-mem-access": "only pointers to memory may be dereferenced; this register does not "
                          "hold a usable pointer",
    "unbounded-access": "a variable offset into memory must have an upper bound the verifier "
                        "can see",
    "negative-index": "a variable offset into memory must be provably non-negative",
    "map-value-out-of-bounds": "accesses to a map value must stay inside value_size",
    "mem-out-of-bounds": "accesses to helper-returned memory must stay inside its size",
    "uninit-register": "a register must be written before it is read",
    "uninit-return": "R0 must hold the return value when the program exits",
    "stack-out-of-bounds": "the stack is the 512 bytes below r10; accesses must stay there",
    "unbounded-stack-offset": "a variable stack offset must be bounded",
    "misaligned-stack": "stack accesses must be aligned to their size",
    "uninit-stack": "stack bytes must be written before they are read",
    "helper-arg-type": "each helper argument must have the type the helper's prototype asks for",
    "helper-not-allowed": "this program type may not call this helper",
    "unknown-helper": "the helper id does not exist",
    "infinite-loop": "the program can loop forever in the same state",
    "callback-return": "a bpf_loop/bpf_for_each_map_elem callback must return 0 (continue) "
                       "or 1 (stop)",
    "callback-map": "bpf_for_each_map_elem only walks hash, LRU hash and array maps "
                    "(and their per-CPU variants)",
    "callback-not-static": "a callback must be a static function",
    "missing-func-info": "a program with callbacks needs BTF func_info (compile with -g)",
    "exit-in-lock": "a bpf_spin_lock must be released before the program exits",
    "call-in-lock": "no helper except bpf_spin_unlock may be called while a bpf_spin_lock is "
                    "held (a second bpf_spin_lock included)",
    "ld-abs-in-lock": "LD_ABS/LD_IND may not run while a bpf_spin_lock is held",
    "spin-unlock-unlocked": "bpf_spin_unlock needs a lock taken on the same path",
    "spin-unlock-other": "bpf_spin_unlock must release the lock that was taken",
    "spin-lock-offset": "bpf_spin_lock takes the address of the struct bpf_spin_lock field "
                        "of a map value",
    "spin-lock-none": "the map value has no struct bpf_spin_lock field",
    "spin-lock-btf": "maps with a lock need BTF for their value type (compile with -g)",
    "spin-lock-direct": "the struct bpf_spin_lock field may only be used through "
                        "bpf_spin_lock/bpf_spin_unlock",
    "spin-lock-prog-type": "socket filter and tracing programs may not use maps holding a "
                           "bpf_spin_lock",
    "too-complex": "the verifier explores every path and gives up after 1,000,000 "
                   "instructions; loops must be bounded and branches few",
    "pointer-arith-prohibited": "this arithmetic is not allowed on this kind of pointer",
    "pointer-arith-null": "a pointer that may be NULL must be checked before arithmetic",
    "pointer-arith-32": "pointers only take 64-bit arithmetic",
    "pointer-math-unbounded": "a value added to a pointer must have known bounds",
    "pointer-math-range": "pointer arithmetic must stay within +-2^29",
    "return-pointer": "an unprivileged program may not return a pointer (it would leak an "
                      "address)",
    "pointer-leak": "an unprivileged program may not expose kernel addresses",
    "ctx-access": "only the context fields this program type allows may be accessed, with "
                  "their sizes",
    "modified-ctx": "the context pointer must be used unmodified",
    "div-by-zero": "division or modulo by a constant zero",
    "invalid-shift": "shift amounts must be smaller than the register width",
    "frame-pointer-write": "r10 (the frame pointer) is read-only",
    "reference-leak": "every acquired object (ring buffer record or dynptr, socket, "
                      "iterator) must be released on every path",
    "dynptr-init": "a dynptr is created in a struct bpf_dynptr on the stack, at an 8-byte "
                   "aligned offset, where no referenced dynptr is live",
    "dynptr-uninit": "a dynptr argument must be a struct bpf_dynptr initialised by "
                     "bpf_dynptr_from_mem or bpf_ringbuf_reserve_dynptr and not yet released "
                     "or overwritten",
    "dynptr-kind": "this helper only takes a dynptr of the kind named (ring buffer or local)",
    "dynptr-overwrite": "the bytes of a struct bpf_dynptr may only be changed through the "
                        "dynptr helpers; a ring buffer dynptr must be submitted or discarded "
                        "before its slot is reused",
    "dynptr-from-mem": "bpf_dynptr_from_mem takes a map value as its memory",
    "kfunc-arg": "a kernel function's arguments must match its prototype: an iterator is an "
                 "8-byte-aligned stack slot, set up by bpf_iter_num_new once before next and "
                 "destroy, and not used after bpf_iter_num_destroy",
    "kfunc-region": "bpf_rcu_read_lock/unlock and bpf_preempt_disable/enable must pair up on "
                    "every path (RCU read locks do not nest)",
    "readonly-mem": "this memory is read-only for the program (a map key, the int an "
                    "iterator's next returns)",
    "call-depth": "bpf-to-bpf calls nest at most 8 frames",
    "stack-too-large": "the stacks of the deepest call chain must fit in 512 bytes",
    "jump-out-of-range": "jumps must land inside their own function",
    "unreachable": "every instruction must be reachable",
    "last-insn": "a function must end with exit or a jump",
    "readonly-packet": "this program type may not write packet data",
    "readonly-map": "the map is read-only for programs",
    "map-helper-mismatch": "this helper does not work with this map type",
    "partial-pointer-spill": "pointers are spilled to the stack as whole 8-byte slots",
    "partial-pointer-fill": "a spilled pointer must be read back as a whole 8-byte slot",
    "unbounded-size": "a size passed to a helper must have a known upper bound",
    "negative-size": "a size passed to a helper must be non-negative",
    "zero-size": "this helper does not accept a zero size",
}


@dataclass
class Explanation:
    error_id: str
    error: str
    insn: int | None
    insn_text: str | None
    source: str | None          # "file.c:23: text" when known
    rule: str
    values: list[str] = field(default_factory=list)
    path: list[str] = field(default_factory=list)
    suggestion: str = ""

    def text(self) -> str:
        where = f"instruction {self.insn}" if self.insn is not None else "the program"
        lines = []
        if self.source:
            lines.append(f"  at {self.source}  ({where}: {self.insn_text})")
        elif self.insn_text:
            lines.append(f"  at {where}: {self.insn_text}")
        lines.append(f"  rule: {self.rule}")
        for v in self.values:
            lines.append(f"  value: {v}")
        if self.path:
            lines.append("  path: " + "; ".join(self.path))
        if self.suggestion:
            lines.append(f"  fix: {self.suggestion}")
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {"error_id": self.error_id, "error": self.error, "insn": self.insn,
                "insn_text": self.insn_text, "source": self.source, "rule": self.rule,
                "values": self.values, "path": self.path, "suggestion": self.suggestion}


def _line_no(source: str | None) -> str | None:
    if not source:
        return None
    m = re.match(r"(.*?):(\d+):", source)
    return m.group(2) if m else None


def _source_at(program, pc: int | None) -> str | None:
    if program is None or pc is None or not program.lines:
        return None
    if pc in program.lines:
        return program.lines[pc]
    before = [k for k in program.lines if k <= pc]
    return program.lines[max(before)] if before else None


def _slots(program):
    out = {}
    pc = 0
    for insn in program.insns:
        out[pc] = insn
        pc += insn.slots
    return out


def _path(program, history, slots) -> list[str]:
    steps = []
    while history is not None:
        pc, nxt, history = history
        steps.append((pc, nxt))
    steps.reverse()
    # collapse repetitions (loops) into one step with a count
    runs: list[list] = []
    for step in steps:
        if runs and runs[-1][0] == step:
            runs[-1][1] += 1
        else:
            runs.append([step, 1])
    out = []
    for (pc, nxt), count in runs[-6:]:
        insn = slots.get(pc)
        if insn is None:
            continue
        src = _source_at(program, pc)
        ln = _line_no(src)
        where = f"line {ln}" if ln else f"insn {pc}"
        times = f" ({count} times)" if count > 1 else ""
        if insn.opcode & 0xF0 == 0x80 and insn.cls == 5:
            out.append(f"{where}: called the function at insn {nxt}{times}")
        elif nxt == pc + 1:
            out.append(f"{where}: `{insn_text(insn)}` was false (fell through){times}")
        else:
            out.append(f"{where}: `{insn_text(insn)}` was true (jumped to insn {nxt}){times}")
    return out


#: fixes that need no values from the failing instruction
FIXES: dict[str, str] = {
    "callback-return": "return 0 to continue or 1 to stop the loop (`return i == n;` or "
                       "`return 0;`)",
    "callback-map": "walk a hash or array map, or keep the values in one",
    "callback-not-static": "declare the callback `static` (a static function)",
    "missing-func-info": "compile with clang -g and load the object's BTF with the program",
    "exit-in-lock": "call bpf_spin_unlock(&v->lock) on every path before returning",
    "call-in-lock": "move the helper call out of the locked region: take the lock, update "
                    "the value, unlock, then call the helper",
    "ld-abs-in-lock": "load packet bytes before taking the lock",
    "spin-unlock-unlocked": "call bpf_spin_lock(&v->lock) on this path first, or drop the "
                            "unlock",
    "spin-unlock-other": "unlock the same element you locked (the same pointer)",
    "spin-lock-offset": "pass &value->lock, the struct bpf_spin_lock member",
    "spin-lock-none": "add a `struct bpf_spin_lock lock;` member to the map's value type",
    "spin-lock-btf": "declare the map with BTF (`__type(value, struct ...)`) and compile "
                     "with -g",
    "spin-lock-direct": "read and write the other fields only; never the lock itself",
    "spin-lock-prog-type": "use the map from a tc, XDP or cgroup program, or drop the lock",
}


def _suggest(eid: str, f: dict, line: str | None, result) -> str:
    if eid in FIXES:
        return FIXES[eid]
    before = f" before line {line}" if line else ""
    at = f" at line {line}" if line else ""
    ret_drop = {"xdp": "XDP_DROP", "sched_cls": "TC_ACT_SHOT"}.get(result.prog_type, "0")
    if eid == "packet-out-of-bounds":
        need = f.get("off", 0) + f.get("size", 0)
        return (f"add `if (data + {need} > data_end) return {ret_drop};`{before} so that "
                f"bytes [0, {need}) of the packet are proven present")
    if eid == "invalid-mem-access":
        t = f.get("reg_type")
        if t == "map_value_or_null":
            return (f"check the result of bpf_map_lookup_elem() for NULL{before}: "
                    f"`if (!value) return 0;`")
        if t in ("ringbuf_mem_or_null", "mem_or_null"):
            return f"check the pointer for NULL{before}: `if (!p) return 0;`"
        if t == "pkt_end":
            return "data_end may only be compared with, not dereferenced"
        return (f"R{f.get('regno')} holds a {t or 'number'}, not a pointer; load the pointer "
                f"from the context or a helper instead of computing it")
    if eid in ("unbounded-access", "negative-index", "map-value-out-of-bounds",
               "mem-out-of-bounds"):
        size = f.get("mem_size")
        acc = f.get("size", 1)
        if size is not None:
            hi = size - acc
            return (f"clamp the index{before}: `if (idx > {hi}) return 0;` with an unsigned "
                    f"index (offset + {acc} bytes must be <= {size})")
        return f"bound the index with an unsigned comparison{before}"
    if eid == "uninit-register" or eid == "uninit-return":
        r = f.get("regno", 0)
        return (f"assign r{r} on every path{before or ' before this instruction'} "
                f"(in C: initialise the variable; for a return value, `return 0;`)")
    if eid in ("stack-out-of-bounds", "unbounded-stack-offset"):
        return ("keep stack objects within 512 bytes and index them with a bounded, "
                "non-negative offset; move large buffers to a per-CPU array map")
    if eid == "misaligned-stack":
        return (f"access the stack at an offset that is a multiple of the size "
                f"({f.get('size')} bytes); use a struct or __builtin_memcpy for packed data")
    if eid == "helper-arg-type":
        return (f"pass R{f.get('regno')} as {f.get('expected')} (for example a pointer to a "
                f"stack variable: `&key`), not a {f.get('actual')}")
    if eid in ("infinite-loop", "too-complex"):
        return ("bound the loop with a constant trip count the verifier can see "
                "(`for (int i = 0; i < N && i < len; i++)`) or use bpf_loop()")
    if eid in ("pointer-arith-prohibited", "pointer-arith-null"):
        if f.get("ptr_type") == "pkt_end":
            return ("do the arithmetic on data, not data_end: "
                    "`if (data + len > data_end)` instead of `data_end - len`")
        if f.get("ptr_type") in ("map_value_or_null",):
            return f"check the pointer for NULL{before} before adding to it"
        return "compute an offset as a number and add it to a pointer to memory"
    if eid == "return-pointer":
        return "return a number (for example `return 0;`), not a pointer"
    if eid == "ctx-access":
        return (f"only access fields of {f.get('ctx', 'the context')} that this program type "
                f"allows, with their natural size")
    if eid == "reference-leak":
        acquired = _slots(result.program).get(f.get("alloc_pc")) \
            if result.program is not None else None
        if acquired is not None and acquired.src == isa.CALL_KFUNC:
            return ("call bpf_iter_num_destroy(&it) on every path after the loop (libbpf's "
                    "bpf_for/bpf_repeat do it for you through __attribute__((cleanup)))")
        if acquired is not None and acquired.imm == 198:   # bpf_ringbuf_reserve_dynptr
            return ("call bpf_ringbuf_submit_dynptr(&ptr, 0) or bpf_ringbuf_discard_dynptr"
                    "(&ptr, 0) on every path, also when the reservation failed")
        return "submit or discard the reserved record on every path (bpf_ringbuf_submit)"
    if eid == "dynptr-overwrite":
        return ("use a separate struct bpf_dynptr variable for other data, and submit or "
                "discard a ring buffer dynptr before reusing it")
    if eid in ("dynptr-init", "dynptr-uninit", "dynptr-kind"):
        return ("declare `struct bpf_dynptr ptr;` as its own local variable, initialise it "
                "once with bpf_dynptr_from_mem/bpf_ringbuf_reserve_dynptr and pass `&ptr`")
    if eid == "dynptr-from-mem":
        return "look the memory up in a map (an array map value) and pass that pointer"
    if eid == "kfunc-region":
        return "end the region (bpf_rcu_read_unlock / bpf_preempt_enable) before returning"
    if eid == "readonly-mem":
        return "copy the value into a local variable and change the copy"
    if eid == "div-by-zero":
        return "divide by a non-zero constant"
    if eid == "unbounded-size":
        return "bound the size first: `if (len > sizeof(buf)) len = sizeof(buf);`"
    return ""


def _values(eid: str, f: dict) -> list[str]:
    out = []
    if eid == "packet-out-of-bounds":
        off, size = f.get("off"), f.get("size")
        rng = f.get("range", 0)
        out.append(f"R{f.get('regno')} accesses packet bytes [{off}, {off + size}) but only "
                   f"[0, {rng}) are proven inside the packet (range r={rng})")
    elif eid in ("map-value-out-of-bounds", "mem-out-of-bounds", "map-key-out-of-bounds"):
        out.append(f"access at offset {f.get('off')} of {f.get('size')} bytes, allowed region "
                   f"is [0, {f.get('mem_size')})")
    elif eid == "unbounded-access":
        out.append(f"R{f.get('regno')} offset may be as large as {f.get('umax')}; the region "
                   f"holds {f.get('mem_size')} bytes")
    elif eid == "negative-index":
        out.append(f"R{f.get('regno')} offset may be as small as {f.get('smin')}")
    elif eid == "stack-out-of-bounds":
        out.append(f"access at fp{f.get('off'):+d} of {f.get('size')} bytes; the stack is "
                   f"[fp-512, fp)" if isinstance(f.get("off"), int) else "access outside "
                   "[fp-512, fp)")
    elif eid == "misaligned-stack":
        out.append(f"offset {f.get('off')} is not a multiple of {f.get('size')}")
    elif eid == "invalid-mem-access":
        out.append(f"R{f.get('regno')} is {f.get('reg_type')}")
    elif eid in ("uninit-register", "uninit-return"):
        out.append(f"R{f.get('regno', 0)} was never written on this path")
    elif eid == "helper-arg-type":
        out.append(f"R{f.get('regno')} is {f.get('actual')}, the helper expects "
                   f"{f.get('expected')}")
    elif eid == "return-pointer":
        out.append(f"R0 holds a {f.get('reg_type')} pointer at exit")
    elif eid == "infinite-loop":
        out.append("the state at this instruction repeats exactly, so the loop never ends")
    elif eid == "too-complex":
        out.append(f"{f.get('processed')} instructions processed")
    elif eid == "ctx-access":
        name = f.get("field")
        what = f"field '{name}'" if name else "offset"
        out.append(f"{'write' if f.get('write') else 'read'} of {f.get('size')} bytes at "
                   f"{what} {f.get('off')} of {f.get('ctx')}")
    elif eid == "pointer-arith-prohibited":
        if f.get("ptr_type"):
            out.append(f"R{f.get('regno')} is {f.get('ptr_type')}")
    return out


def explain(result) -> Explanation:
    """The explanation of a rejected :class:`~pybpf.verifier.VerifierResult`."""
    eid = result.error_id or "rejected"
    f = result.facts or {}
    program = result.program
    slots = _slots(program) if program is not None else {}
    pc = result.pc
    insn = slots.get(pc) if pc is not None else None
    source = _source_at(program, pc)
    line = _line_no(source)
    path = _path(program, result.history, slots) if program is not None else []
    origin = f.get("origin")
    if origin is not None and origin in slots:
        src = _source_at(program, origin)
        ln = _line_no(src)
        where = f"line {ln}" if ln else f"insn {origin}"
        path.append(f"R{f.get('regno')} was set at {where}: `{insn_text(slots[origin])}`")
    rule = RULES.get(eid, result.error or "rejected")
    return Explanation(eid, result.error or "", pc, insn_text(insn) if insn else None, source,
                       rule, _values(eid, f), path, _suggest(eid, f, line, result))
