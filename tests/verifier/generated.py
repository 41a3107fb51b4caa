"""Hypothesis strategies for small programs that probe one verifier rule each, with random
offsets, sizes, bounds and operators (assembly text plus program type)."""

from __future__ import annotations

from hypothesis import strategies as st

SIZES = {1: "u8", 2: "u16", 4: "u32", 8: "u64"}
ARRAY = ".map arr array key=4 value=24 max_entries=2\n"
HASH = ".map h hash key=4 value=24 max_entries=8\n"


@st.composite
def stack_programs(draw):
    wsize = draw(st.sampled_from(list(SIZES)))
    rsize = draw(st.sampled_from(list(SIZES)))
    woff = draw(st.integers(-530, 8))
    roff = draw(st.one_of(st.just(woff), st.integers(-530, 8)))
    value = draw(st.sampled_from(["0", "1", "r1", "r2"]))
    var = draw(st.booleans())
    lines = ["r2 = *(u32 *)(r1 + 0)"]
    if value in ("0", "1"):
        lines.append(f"*({SIZES[wsize]} *)(r10 {woff:+d}) = {value}")
    else:
        lines.append(f"*({SIZES[wsize]} *)(r10 {woff:+d}) = {value}")
    if var:
        mask = draw(st.sampled_from([3, 7, 15, 31]))
        lines += ["r3 = r2", f"r3 &= {mask}", "r4 = r10", f"r4 += {roff}", "r4 += r3",
                  f"r0 = *({SIZES[rsize]} *)(r4 + 0)"]
    else:
        lines.append(f"r0 = *({SIZES[rsize]} *)(r10 {roff:+d})")
    lines += ["r0 = 0", "exit"]
    return "\n".join(lines), "socket_filter"


@st.composite
def packet_programs(draw):
    ptype = draw(st.sampled_from(["xdp", "sched_cls"]))
    data, end = (0, 4) if ptype == "xdp" else (76, 80)
    check = draw(st.integers(0, 40))
    off = draw(st.integers(-4, 44))
    size = draw(st.sampled_from(list(SIZES)))
    op = draw(st.sampled_from([">", ">=", "<", "<="]))
    reverse = draw(st.booleans())
    var = draw(st.booleans())
    write = draw(st.booleans()) and ptype == "xdp"
    lines = [f"r2 = *(u32 *)(r1 + {data})", f"r3 = *(u32 *)(r1 + {end})"]
    if var:
        lines += ["r5 = *(u32 *)(r1 + 12)", f"r5 &= {draw(st.sampled_from([1, 7, 255]))}",
                  "r2 += r5"]
    lines += ["r4 = r2", f"r4 += {check}"]
    if reverse:
        lines.append(f"if r3 {op} r4 goto out")
    else:
        lines.append(f"if r4 {op} r3 goto out")
    access = f"*({SIZES[size]} *)(r2 {off:+d})"
    lines.append(f"{access} = 7" if write else f"r0 = {access}")
    lines += ["out:", "r0 = 2", "exit"]
    return "\n".join(lines), ptype


@st.composite
def map_programs(draw):
    hash_map = draw(st.booleans())
    key_off = draw(st.sampled_from([-4, -8, -2, -12]))
    null_check = draw(st.booleans())
    off = draw(st.integers(-4, 28))
    size = draw(st.sampled_from(list(SIZES)))
    var = draw(st.sampled_from(["none", "masked", "checked", "signed"]))
    bound = draw(st.integers(0, 24))
    lines = [HASH if hash_map else ARRAY, "r6 = *(u32 *)(r1 + 0)",
             f"*(u32 *)(r10 {key_off:+d}) = {draw(st.integers(0, 3))}",
             "r2 = r10", f"r2 += {key_off}", f"r1 = {'h' if hash_map else 'arr'} ll",
             "call bpf_map_lookup_elem"]
    if null_check:
        lines.append("if r0 == 0 goto out")
    if var == "masked":
        lines += [f"r6 &= {bound}", "r0 += r6"]
    elif var == "checked":
        lines += [f"if r6 > {bound} goto out", "r0 += r6"]
    elif var == "signed":
        lines += ["r6 = (s32)r6", f"if r6 s> {bound} goto out", "r0 += r6"]
    lines.append(f"r0 = *({SIZES[size]} *)(r0 {off:+d})")
    lines += ["out:", "r0 = 0", "exit"]
    return "\n".join(lines), "socket_filter"


@st.composite
def ctx_programs(draw):
    ptype = draw(st.sampled_from(["socket_filter", "sched_cls", "xdp", "kprobe", "tracepoint"]))
    off = draw(st.integers(-4, 200))
    size = draw(st.sampled_from(list(SIZES)))
    write = draw(st.booleans())
    if write:
        body = [f"r2 = 1", f"*({SIZES[size]} *)(r1 {off:+d}) = r2"]
    else:
        body = [f"r2 = *({SIZES[size]} *)(r1 {off:+d})"]
    return "\n".join(body + ["r0 = 0", "exit"]), ptype


@st.composite
def loop_programs(draw):
    # every combination ends quickly: it terminates, exits at once, or repeats a state
    bound = draw(st.integers(0, 60))
    cond = draw(st.sampled_from(["<", "<=", "!=", "s<"]))
    step = draw(st.sampled_from([0, 1] if cond == "!=" else [-1, 0, 1, 2, 3, 4]))
    if cond == "s<" and step < 0:
        step = 1
    acc = draw(st.booleans())
    lines = ["r0 = 0", "r1 = 0", "loop:"]
    if acc:
        lines.append("r0 += r1")
    lines += [f"r1 += {step}", f"if r1 {cond} {bound} goto loop", "exit"]
    return "\n".join(lines), "socket_filter"


@st.composite
def arith_programs(draw):
    ops = ["+=", "-=", "*=", "/=", "%=", "|=", "&=", "^=", "<<=", ">>=", "s>>="]
    lines = ["r2 = *(u32 *)(r1 + 0)"]
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(ops))
        reg = draw(st.sampled_from(["r", "w"]))
        if draw(st.booleans()):
            imm = draw(st.integers(-8, 70))
            lines.append(f"{reg}2 {op} {imm}")
        else:
            lines.append(f"r3 = {draw(st.integers(-4, 40))}")
            lines.append(f"{reg}2 {op} {reg}3")
    target = draw(st.sampled_from(["stack", "ptr"]))
    if target == "stack":
        lines += ["r4 = r10", "r4 += -64", "r4 += r2", "r0 = *(u8 *)(r4 + 0)"]
    else:
        lines += ["r1 += r2", "r0 = 0"]
    lines += ["r0 = 0", "exit"]
    return "\n".join(lines), "socket_filter"


@st.composite
def helper_programs(draw):
    kind = draw(st.sampled_from(["load_bytes", "update", "printk"]))
    off = draw(st.sampled_from([-8, -16, -24, -32, -4, -40]))
    size = draw(st.integers(0, 40))
    if kind == "load_bytes":
        lines = ["r2 = 0", "r3 = r10", f"r3 += {off}", f"r4 = {size}",
                 "call bpf_skb_load_bytes"]
        ptype = "socket_filter"
    elif kind == "update":
        lines = [ARRAY, "*(u32 *)(r10 - 4) = 0", "r2 = r10", "r2 += -4", "r3 = r10",
                 f"r3 += {off}", "r4 = 0", "r1 = arr ll", "call bpf_map_update_elem"]
        ptype = "socket_filter"
    else:
        lines = ["r1 = r10", f"r1 += {off}", f"r2 = {size}", "call bpf_trace_printk"]
        ptype = "kprobe"
    return "\n".join(lines + ["r0 = 0", "exit"]), ptype


@st.composite
def call_programs(draw):
    n = draw(st.integers(1, 3))
    lines = []
    depth = draw(st.integers(0, 300))
    lines += [f"*(u64 *)(r10 -{max(8, depth // 8 * 8)}) = 0", "r1 = r10", "r1 += -8",
              "call f0", "exit"]
    for i in range(n):
        lines.append(f"f{i}:")
        use = draw(st.sampled_from(["read_arg", "write_stack", "ret_stack", "plain"]))
        if use == "read_arg":
            lines.append("r0 = *(u64 *)(r1 + 0)")
        elif use == "write_stack":
            d = draw(st.integers(1, 40)) * 8
            lines.append(f"*(u64 *)(r10 -{d}) = 0")
        elif use == "ret_stack":
            lines.append("r0 = r10")
        if i + 1 < n:
            lines += [f"call f{i + 1}"]
        lines += ["r0 = 0", "exit"]
    return "\n".join(lines), "socket_filter"


@st.composite
def linked_programs(draw):
    """Scalars linked through a copy and ``+= const`` / ``-= const`` (32 or 64 bits, the
    kernel's BPF_ADD_CONST), a bounds check on one of them, a stack access through the
    other (or a precise use after a branch that prunes)."""
    w = draw(st.sampled_from(["r", "w"]))
    op = draw(st.sampled_from(["+=", "-="]))
    k = draw(st.sampled_from([0, 1, 4, 7, 31, -3, 0x7FFFFFFF, -0x80000000]))
    check_copy = draw(st.booleans())
    bound = draw(st.integers(0, 40))
    twice = draw(st.booleans())
    spill = draw(st.booleans())
    lines = ["r6 = *(u32 *)(r1 + 0)"]
    if draw(st.booleans()):
        lines.append("r6 <<= 32")
        lines.append("r6 s>>= 32")
    lines += ["r7 = r6", f"{w}7 {op} {k}"]
    if twice:
        lines.append(f"r7 += {draw(st.integers(-2, 2))}")
    if spill:
        lines += ["*(u64 *)(r10 - 8) = r7", "r7 = *(u64 *)(r10 - 8)"]
    checked, used = ("r7", "r6") if check_copy else ("r6", "r7")
    cmp = draw(st.sampled_from([">", ">=", "s>"]))
    lines += [f"if {checked} {cmp} {bound} goto out", f"if {checked} s< 0 goto out",
              "r2 = r10", "r2 += -64", f"r2 += {used}", "r0 = *(u8 *)(r2 + 0)", "out:",
              "r0 = 0", "exit"]
    return "\n".join(lines), "socket_filter"


#: what one path of a join leaves in a slot (fp-8 .. fp-32); r6 is the ctx pointer
_JOIN_STORES = {
    "ptr": ["*(u64 *)(r10 {off}) = r6"],
    "zero": ["r1 = 0", "*(u64 *)(r10 {off}) = r1"],
    "scalar": ["r1 = 7", "*(u64 *)(r10 {off}) = r1"],
    "half": ["*(u32 *)(r10 {off4}) = 0"],
}
#: how the slots are used after the join: fills dereferenced, overwrites (full and partial),
#: a helper reading a key, a callee given a stack pointer, a load through a pointer kept in
#: a register, a variable-offset load
_JOIN_USES = {
    "fill": ["r1 = *(u64 *)(r10 {off})", "r0 = *(u32 *)(r1 + 0)"],
    "store": ["*(u64 *)(r10 {off}) = r6"],
    "store4": ["*(u32 *)(r10 {off}) = 0"],
    "lookup": ["r1 = h ll", "r2 = r10", "r2 += {off}", "call bpf_map_lookup_elem"],
    "callee": ["r1 = r10", "r1 += {off}", "call sub"],
    "viareg": ["r1 = *(u64 *)(r7 + {off32})", "r0 = *(u32 *)(r1 + 0)"],
    "varoff": ["r2 = *(u32 *)(r6 + 0)", "r2 &= 8", "r1 = r10", "r1 += {off}", "r1 += r2",
               "r1 = *(u64 *)(r1 + 0)"],
}
_JOIN_CALLEES = ["r1 = *(u64 *)(r1 + 0)\nr0 = *(u32 *)(r1 + 0)", "r0 = *(u64 *)(r1 + 0)",
                 "r0 = 0"]


@st.composite
def join_programs(draw):
    """Two paths that leave different things in stack slots join, and the slots are used
    afterwards in one of several ways: pruning at the join may ignore only slots nothing
    reads again (stack liveness)."""
    def slot_lines(table, key):
        off = -8 * draw(st.integers(1, 4))
        return [x.format(off=off, off4=off + 4, off32=off + 32) for x in table[key]]

    def stores(lo):
        out = []
        for key in draw(st.lists(st.sampled_from(sorted(_JOIN_STORES)), min_size=lo,
                                 max_size=3)):
            out += slot_lines(_JOIN_STORES, key)
        return out
    uses = []
    for key in draw(st.lists(st.sampled_from(sorted(_JOIN_USES)), min_size=1, max_size=4)):
        uses += slot_lines(_JOIN_USES, key)
    lines = [".map h hash key=8 value=8 max_entries=4", "r6 = r1", "r7 = r10", "r7 += -32"]
    lines += stores(0)
    lines += ["call bpf_get_prandom_u32", "if r0 > 5 goto bad"] + stores(1) + \
        ["goto join", "bad:"] + stores(1) + ["join:"] + uses + ["r0 = 0", "exit", "sub:",
                                                               draw(st.sampled_from(
                                                                   _JOIN_CALLEES)),
                                                               "r0 = 0", "exit"]
    return "\n".join(lines), "socket_filter"


DYNPTR_MAPS = (".map arr array key=4 value=16 max_entries=1\n"
               ".map rb ringbuf key=0 value=0 max_entries=4096\n")


def _dynptr_op(draw, slots) -> list[str]:
    """One dynptr operation on one of the slots (some of them not 8-aligned or too high)."""
    d = draw(st.sampled_from(slots))
    op = draw(st.sampled_from(["from_mem", "reserve", "submit", "discard", "read", "write",
                               "data", "use_slice", "store", "load", "branch_submit"]))
    at = [f"r4 = r10", f"r4 += {d}"]
    if op == "from_mem":
        return ["r1 = r6", "r2 = 16", "r3 = 0", *at, "call bpf_dynptr_from_mem"]
    if op == "reserve":
        return ["r1 = rb ll", "r2 = 8", "r3 = 0", *at, "call bpf_ringbuf_reserve_dynptr"]
    if op in ("submit", "discard"):
        return ["r1 = r10", f"r1 += {d}", "r2 = 0", f"call bpf_ringbuf_{op}_dynptr"]
    if op == "branch_submit":
        # release on one path only
        return ["r0 = *(u32 *)(r8 + 0)", "if r0 > 10 goto +4", "r1 = r10", f"r1 += {d}",
                "r2 = 0", "call bpf_ringbuf_submit_dynptr"]
    if op == "read":
        return ["r1 = r10", "r1 += -72", "r2 = 8", "r3 = r10", f"r3 += {d}", "r4 = 0",
                "r5 = 0", "call bpf_dynptr_read"]
    if op == "write":
        return ["r1 = r10", f"r1 += {d}", "r2 = 0", "r3 = r10", "r3 += -72", "r4 = 8",
                "r5 = 0", "call bpf_dynptr_write"]
    if op == "data":
        return ["r1 = r10", f"r1 += {d}", "r2 = 0", "r3 = 8", "call bpf_dynptr_data",
                "r7 = r0"]
    if op == "use_slice":
        return ["if r7 == 0 goto +1", "r0 = *(u64 *)(r7 + 0)"]
    if op == "store":
        k = draw(st.sampled_from([0, 4, 8]))
        return [f"*(u32 *)(r10 {d + k:+d}) = 0"]
    return [f"r0 = *(u64 *)(r10 {d:+d})"]


@st.composite
def dynptr_programs(draw):
    """Sequences of dynptr helper calls (local and ring buffer dynptrs, slices, stores into
    and loads from their slots, a release on one path) over a few stack offsets."""
    slots = draw(st.sampled_from([[-16, -32], [-16, -24], [-20, -48], [-8, -40]]))
    lines = ["r8 = r1", "*(u64 *)(r10 -72) = 0", "*(u32 *)(r10 -76) = 0", "r2 = r10",
             "r2 += -76", "r1 = arr ll", "call bpf_map_lookup_elem", "if r0 != 0 goto +2",
             "r0 = 0", "exit", "r6 = r0", "r7 = 0"]
    for _ in range(draw(st.integers(1, 6))):
        lines += _dynptr_op(draw, slots)
    lines += ["r0 = 0", "exit"]
    return DYNPTR_MAPS + "\n".join(lines), "socket_filter"


ALL = {"dynptr": dynptr_programs(), "stack": stack_programs(), "packet": packet_programs(), "map": map_programs(),
       "ctx": ctx_programs(), "loop": loop_programs(), "arith": arith_programs(),
       "helper": helper_programs(), "call": call_programs(), "linked": linked_programs(),
       "join": join_programs()}
