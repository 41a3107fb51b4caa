"""Helper calls checked against prototypes, as the kernel's ``check_helper_call``.

Prototypes come from :mod:`pybpf.helpers` (the helper table; argument and return kinds are the
kernel's ``ARG_*``/``RET_*`` names, lower-cased without prefix). Helpers not registered there
yet fall back to :data:`FALLBACK_PROTOS`, copied in spirit from the kernel's
``bpf_func_proto`` definitions. The checks: argument register types against the compatible
type lists, memory arguments in bounds (and initialised), constant sizes, map/helper
compatibility, acquired and released references (ring buffer records), clobbering of R1-R5, and
the return value's type.
"""

from __future__ import annotations

from .. import helpers as helper_table
from ..helpers.ids import HELPER_IDS, NAMES_BY_ID
from . import bounds as bd
from . import callbacks as cbk
from . import dynptr
from .callbacks import CALLBACK_HELPER_IDS
from . import memory as mem
from . import precision
from . import spinlock
from . import state as st
from .memory import Reject
from .state import RegState

MAX_VAR_SIZ = 1 << 29

_MEM = ("ptr_to_mem", "rdonly")
FALLBACK_PROTOS: dict[str, tuple[str, tuple[str, ...]]] = {
    "map_lookup_elem": ("ptr_to_map_value_or_null", ("const_map_ptr", "ptr_to_map_key")),
    "map_update_elem": ("integer", ("const_map_ptr", "ptr_to_map_key", "ptr_to_map_value",
                                    "anything")),
    "map_delete_elem": ("integer", ("const_map_ptr", "ptr_to_map_key")),
    "map_push_elem": ("integer", ("const_map_ptr", "ptr_to_map_value", "anything")),
    "map_pop_elem": ("integer", ("const_map_ptr", "ptr_to_uninit_map_value")),
    "map_peek_elem": ("integer", ("const_map_ptr", "ptr_to_uninit_map_value")),
    "probe_read": ("integer", ("ptr_to_uninit_mem", "const_size_or_zero", "anything")),
    "probe_read_kernel": ("integer", ("ptr_to_uninit_mem", "const_size_or_zero", "anything")),
    "probe_read_user": ("integer", ("ptr_to_uninit_mem", "const_size_or_zero", "anything")),
    "probe_read_str": ("integer", ("ptr_to_uninit_mem", "const_size_or_zero", "anything")),
    "probe_read_kernel_str": ("integer", ("ptr_to_uninit_mem", "const_size_or_zero",
                                          "anything")),
    "probe_read_user_str": ("integer", ("ptr_to_uninit_mem", "const_size_or_zero",
                                        "anything")),
    "ktime_get_ns": ("integer", ()), "ktime_get_boot_ns": ("integer", ()),
    "ktime_get_coarse_ns": ("integer", ()), "ktime_get_tai_ns": ("integer", ()),
    "get_prandom_u32": ("integer", ()), "get_smp_processor_id": ("integer", ()),
    "get_numa_node_id": ("integer", ()), "get_current_pid_tgid": ("integer", ()),
    "get_current_uid_gid": ("integer", ()), "jiffies64": ("integer", ()),
    "get_current_task": ("integer", ()), "get_current_cgroup_id": ("integer", ()),
    "trace_printk": ("integer", ("ptr_to_mem|rdonly", "const_size", "anything", "anything",
                                 "anything")),
    "get_current_comm": ("integer", ("ptr_to_uninit_mem", "const_size")),
    "tail_call": ("void", ("ptr_to_ctx", "const_map_ptr", "anything")),
    "skb_load_bytes": ("integer", ("ptr_to_ctx", "anything", "ptr_to_uninit_mem",
                                   "const_size")),
    "skb_store_bytes": ("integer", ("ptr_to_ctx", "anything", "ptr_to_mem|rdonly",
                                    "const_size", "anything")),
    "perf_event_output": ("integer", ("ptr_to_ctx", "const_map_ptr", "anything",
                                      "ptr_to_mem|rdonly", "const_size_or_zero")),
    "ringbuf_output": ("integer", ("const_map_ptr", "ptr_to_mem|rdonly", "const_size_or_zero",
                                   "anything")),
    "ringbuf_reserve": ("ptr_to_ringbuf_mem_or_null", ("const_map_ptr",
                                                       "const_alloc_size_or_zero",
                                                       "anything")),
    "ringbuf_submit": ("void", ("ptr_to_ringbuf_mem|release", "anything")),
    "ringbuf_discard": ("void", ("ptr_to_ringbuf_mem|release", "anything")),
    "ringbuf_query": ("integer", ("const_map_ptr", "anything")),
    "redirect": ("integer", ("anything", "anything")),
    "redirect_map": ("integer", ("const_map_ptr", "anything", "anything")),
    "xdp_adjust_head": ("integer", ("ptr_to_ctx", "anything")),
    "xdp_adjust_meta": ("integer", ("ptr_to_ctx", "anything")),
    "xdp_adjust_tail": ("integer", ("ptr_to_ctx", "anything")),
    "csum_diff": ("integer", ("ptr_to_mem_or_null|rdonly", "const_size_or_zero",
                              "ptr_to_mem_or_null|rdonly", "const_size_or_zero", "anything")),
    "get_socket_cookie": ("integer", ("ptr_to_ctx",)),
    "get_socket_uid": ("integer", ("ptr_to_ctx",)),
    "get_hash_recalc": ("integer", ("ptr_to_ctx",)),
    "get_cgroup_classid": ("integer", ("ptr_to_ctx",)),
    "skb_pull_data": ("integer", ("ptr_to_ctx", "anything")),
    "skb_change_tail": ("integer", ("ptr_to_ctx", "anything", "anything")),
    "skb_change_head": ("integer", ("ptr_to_ctx", "anything", "anything")),
    "skb_change_proto": ("integer", ("ptr_to_ctx", "anything", "anything")),
    "skb_change_type": ("integer", ("ptr_to_ctx", "anything")),
    "skb_vlan_push": ("integer", ("ptr_to_ctx", "anything", "anything")),
    "skb_vlan_pop": ("integer", ("ptr_to_ctx",)),
    "skb_adjust_room": ("integer", ("ptr_to_ctx", "anything", "anything", "anything")),
    "l3_csum_replace": ("integer", ("ptr_to_ctx", "anything", "anything", "anything",
                                    "anything")),
    "l4_csum_replace": ("integer", ("ptr_to_ctx", "anything", "anything", "anything",
                                    "anything")),
    "clone_redirect": ("integer", ("ptr_to_ctx", "anything", "anything")),
    "set_hash": ("integer", ("ptr_to_ctx", "anything")),
    "get_stackid": ("integer", ("ptr_to_ctx", "const_map_ptr", "anything")),
    "spin_lock": ("void", ("ptr_to_spin_lock",)),
    "spin_unlock": ("void", ("ptr_to_spin_lock",)),
    # dynptrs (dynptr.py), the kernel's bpf_*_proto of kernel/bpf/helpers.c and ringbuf.c
    "dynptr_from_mem": ("integer", ("ptr_to_uninit_mem", "const_size_or_zero", "anything",
                                    "ptr_to_dynptr|local|uninit")),
    "ringbuf_reserve_dynptr": ("integer", ("const_map_ptr", "anything", "anything",
                                           "ptr_to_dynptr|ringbuf|uninit")),
    "ringbuf_submit_dynptr": ("void", ("ptr_to_dynptr|ringbuf|release", "anything")),
    "ringbuf_discard_dynptr": ("void", ("ptr_to_dynptr|ringbuf|release", "anything")),
    "dynptr_read": ("integer", ("ptr_to_uninit_mem", "const_size_or_zero",
                                "ptr_to_dynptr|rdonly", "anything", "anything")),
    "dynptr_write": ("integer", ("ptr_to_dynptr|rdonly", "anything", "ptr_to_mem|rdonly",
                                 "const_size_or_zero", "anything")),
    "dynptr_data": ("ptr_to_dynptr_mem_or_null", ("ptr_to_dynptr|rdonly", "anything",
                                                  "const_alloc_size_or_zero")),
}

#: helpers that may move packet data: every packet pointer is invalidated after them
CHANGES_PKT_DATA = frozenset({
    "skb_store_bytes", "skb_pull_data", "skb_change_tail", "skb_change_head",
    "skb_change_proto", "skb_vlan_push", "skb_vlan_pop", "skb_adjust_room",
    "l3_csum_replace", "l4_csum_replace", "xdp_adjust_head", "xdp_adjust_meta",
    "xdp_adjust_tail", "clone_redirect", "skb_change_type"})

_GPL_ONLY = frozenset({"probe_read", "probe_read_kernel", "probe_read_user", "probe_read_str",
                       "probe_read_kernel_str", "probe_read_user_str", "trace_printk",
                       "get_current_task", "perf_event_output", "get_stackid"})

_MEM_TYPES = (st.STACK, st.PACKET, st.PACKET_META, st.MAP_KEY, st.MAP_VALUE, st.MEM,
              st.RINGBUF_MEM)
_MEM_TYPES_STR = "fp, pkt, pkt_meta, map_key, map_value, mem, ringbuf_mem, buf, trusted_ptr_"

# map types each map-specific helper needs, and helpers each special map type allows
_HELPER_MAPS = {
    "tail_call": {"prog_array"},
    "perf_event_output": {"perf_event_array"}, "perf_event_read": {"perf_event_array"},
    "ringbuf_output": {"ringbuf"}, "ringbuf_reserve": {"ringbuf"}, "ringbuf_query": {"ringbuf"},
    "ringbuf_reserve_dynptr": {"ringbuf"},
    "get_stackid": {"stack_trace"},
    "map_push_elem": {"queue", "stack", "bloom_filter"},
    "map_pop_elem": {"queue", "stack"},
    "map_peek_elem": {"queue", "stack", "bloom_filter"},
    "redirect_map": {"devmap", "devmap_hash", "cpumap", "xskmap"},
}
_MAP_HELPERS = {
    "prog_array": {"tail_call"},
    "perf_event_array": {"perf_event_read", "perf_event_output", "perf_event_read_value",
                         "skb_output", "xdp_output"},
    "ringbuf": {"ringbuf_output", "ringbuf_reserve", "ringbuf_query",
                "ringbuf_reserve_dynptr"},
    "stack_trace": {"get_stackid"},
    "queue": {"map_push_elem", "map_pop_elem", "map_peek_elem"},
    "stack": {"map_push_elem", "map_pop_elem", "map_peek_elem"},
    "bloom_filter": {"map_push_elem", "map_peek_elem"},
}
MAP_TYPE_IDS = {"hash": 1, "array": 2, "prog_array": 3, "perf_event_array": 4,
                "percpu_hash": 5, "percpu_array": 6, "stack_trace": 7, "cgroup_array": 8,
                "lru_hash": 9, "lru_percpu_hash": 10, "lpm_trie": 11, "array_of_maps": 12,
                "hash_of_maps": 13, "devmap": 14, "sockmap": 15, "cpumap": 16, "xskmap": 17,
                "sockhash": 18, "queue": 22, "stack": 23, "devmap_hash": 25,
                "ringbuf": 27, "bloom_filter": 30}


def get_proto(hid: int) -> tuple[str, str, tuple[str, ...], bool] | None:
    """(name, ret, args, gpl_only) of helper ``hid``: the helper table first, then fallback."""
    if hid <= 0 or hid >= len(NAMES_BY_ID):
        return None
    name = NAMES_BY_ID[hid]
    try:
        h = helper_table.get_helper(hid)
    except Exception:
        h = None
    if h is not None:
        return name, h.proto.ret, tuple(h.proto.args), h.proto.gpl_only
    fb = FALLBACK_PROTOS.get(name)
    if fb is None:
        return None
    return name, fb[0], fb[1], name in _GPL_ONLY


def _norm(kind: str) -> tuple[str, set[str]]:
    """Split 'ptr_to_mem|rdonly' or 'ARG_PTR_TO_MEM | MEM_RDONLY' into base and flags."""
    parts = [p.strip().lower().removeprefix("arg_").removeprefix("ret_").removeprefix("mem_")
             for p in kind.replace(" ", "").split("|")]
    base, flags = parts[0], set(parts[1:])
    if base.endswith("_or_null") and base not in ("ptr_to_map_value_or_null",
                                                  "ptr_to_ringbuf_mem_or_null",
                                                  "ptr_to_mem_or_null"):
        flags.add("maybe_null")
        base = base[: -len("_or_null")]
    if base == "ptr_to_mem_or_null":
        base, _ = "ptr_to_mem", flags.add("maybe_null")
    if base in ("ptr_to_uninit_mem",):
        base, _ = "ptr_to_mem", flags.add("uninit")
    if base in ("ptr_to_alloc_mem", "ptr_to_ringbuf_mem"):
        base = "ptr_to_ringbuf_mem"
    if base in ("ptr_to_long", "ptr_to_int", "ptr_to_fixed_size_mem"):
        flags.add("uninit")
        flags.add("fixed8" if base == "ptr_to_long" else "fixed4")
        base = "ptr_to_mem"
    return base, flags


def _type_error(regno: int, r: RegState, expected: str, pc: int) -> Reject:
    return Reject(f"R{regno} type={mem.reg_type_str(r)} expected={expected}",
                  "helper-arg-type", pc, regno=regno, actual=r.type, expected=expected)


def _is_null(r: RegState) -> bool:
    return r.type == st.SCALAR and r.var_off.mask == 0 and r.var_off.value == 0


def helper_mem_access(env, state, r: RegState, regno: int, size: int, write: bool,
                      zero_ok: bool, pc: int) -> None:
    """``check_helper_mem_access``: ``size`` bytes at ``r`` are readable (or writable)."""
    t = r.type
    if t in st.PACKET_TYPES:
        if write and not env.ptype.direct_packet_write:
            raise Reject(f"R{regno} cannot write into {t}", "readonly-packet", pc)
        mem.check_packet(r, regno, r.off, size, zero_ok, pc)
    elif t == st.MAP_KEY:
        if write:
            raise Reject(f"R{regno} cannot write into {t}", "readonly-mem", pc)
        mem.check_mem_region(r, regno, r.off, size, env.maps[r.map].key_size, zero_ok, pc)
    elif t == st.MAP_VALUE:
        spec = env.maps[r.map]
        if write and spec.flags & 0x80:  # BPF_F_RDONLY_PROG
            raise Reject(f"write into map forbidden, value_size={spec.value_size} "
                         f"off={r.off} size={size}", "readonly-map", pc)
        mem.check_mem_region(r, regno, r.off, size, spec.value_size, zero_ok, pc)
    elif t in (st.MEM, st.RINGBUF_MEM):
        mem.check_mem_region(r, regno, r.off, size, r.mem_size, zero_ok, pc)
    elif t == st.STACK:
        mem.stack_helper_access(env, state, r, regno, size, write, zero_ok, pc)
    else:
        if zero_ok and size == 0 and _is_null(r):
            return
        raise _type_error(regno, r, _MEM_TYPES_STR, pc)


def check_helper_call(env, state, insn, pc: int) -> None:
    hid = insn.imm
    proto = get_proto(hid)
    name = NAMES_BY_ID[hid] if 0 < hid < len(NAMES_BY_ID) else None
    spinlock.check_call_while_locked(state, name, pc)
    if (state.rcu or state.preempt) and (name == "tail_call" or hid in CALLBACK_HELPER_IDS):
        raise Reject(f"bpf_{name} inside a bpf_rcu_read_lock/bpf_preempt_disable region is not "
                     "supported by pybpf's verifier", "unsupported", pc)
    if proto is None:
        if name is None:
            raise Reject(f"invalid func unknown#{hid}", "unknown-helper", pc, helper=hid)
        raise Reject(f"helper bpf_{name}#{hid} is not supported by pybpf's verifier",
                     "unsupported-helper", pc, helper=hid)
    name, ret, args, gpl_only = proto
    if not env.ptype.allows_helper(name):
        raise Reject(f"program of this type cannot use helper bpf_{name}#{hid}",
                     "helper-not-allowed", pc, helper=name)
    if gpl_only and not env.gpl:
        raise Reject("cannot call GPL-restricted function from non-GPL compatible program",
                     "gpl-only", pc, helper=name)
    regs = state.cur.regs
    meta_map = None
    meta_size = None
    const_key = None
    release_ref = 0
    callback_pc = None
    last_mem: tuple | None = None   # (regno, reg, write) of a memory arg awaiting its size
    dmeta: dict = {}                # the dynptr argument (dynptr.process_arg)
    release_dynptr = False
    for i, kind in enumerate(args):
        regno = i + 1
        r = regs[regno]
        base, flags = _norm(kind)
        if r.type == st.NOT_INIT:
            raise Reject(f"R{regno} !read_ok", "uninit-register", pc, regno=regno)
        if base == "anything":
            if r.is_pointer and not env.privileged:
                raise Reject(f"R{regno} leaks addr into helper function", "pointer-leak", pc,
                             regno=regno)
            continue
        if base == "const_map_ptr":
            if r.type != st.MAP_PTR:
                raise _type_error(regno, r, "map_ptr", pc)
            meta_map = r.map
            continue
        if base == "ptr_to_ctx":
            # the raw type's input (R1 at entry) is its context, for tail calls and helpers
            if r.type != env.ptype.ctx_type:
                raise _type_error(regno, r, "ctx", pc)
            if r.off or r.var_off.mask or r.var_off.value:
                raise Reject(f"dereference of modified ctx ptr R{regno} off={r.off} disallowed",
                             "modified-ctx", pc, regno=regno)
            continue
        if base in ("const_size", "const_size_or_zero"):
            if r.type != st.SCALAR:
                raise _type_error(regno, r, "scalar", pc)
            zero_ok = base == "const_size_or_zero"
            if r.smin < 0:
                raise Reject(f"R{regno} min value is negative, either use unsigned or "
                             f"'var &= const'", "negative-size", pc, regno=regno, smin=r.smin)
            if r.umin == 0 and not zero_ok:
                raise Reject(f"R{regno} invalid zero-sized read: u64=[{r.umin},{r.umax}]",
                             "zero-size", pc, regno=regno)
            if r.umax >= MAX_VAR_SIZ:
                raise Reject(f"R{regno} unbounded memory access, use 'var &= const' or "
                             f"'if (var < const)'", "unbounded-size", pc, regno=regno,
                             umax=r.umax)
            if last_mem is not None:
                mregno, mreg, write = last_mem
                helper_mem_access(env, state, mreg, mregno, r.umax, write, zero_ok, pc)
                last_mem = None
            # the memory check relied on the size's exact range (check_mem_size_reg)
            precision.mark_regs(env, state, (regno,))
            continue
        if base == "const_alloc_size_or_zero":
            if r.type != st.SCALAR:
                raise _type_error(regno, r, "scalar", pc)
            if r.var_off.mask:
                raise Reject(f"R{regno} is not a known constant'", "not-constant", pc,
                             regno=regno)
            meta_size = r.var_off.value
            precision.mark_regs(env, state, (regno,))
            continue
        if base == "ptr_to_const_str":
            _check_const_str(env, r, regno, pc)
            continue
        if base == "ptr_to_ringbuf_mem":
            if r.type != st.RINGBUF_MEM:
                raise _type_error(regno, r, "ringbuf_mem", pc)
            if r.off or r.var_off.mask or r.var_off.value:
                raise Reject(f"R{regno} must have zero offset when passed to release func",
                             "release-offset", pc, regno=regno)
            if not r.ref_obj_id:
                raise Reject(f"arg {i} is an unacquired reference", "unacquired-ref", pc)
            release_ref = r.ref_obj_id
            continue
        if base in ("ptr_to_map_key", "ptr_to_map_value", "ptr_to_uninit_map_value"):
            if "maybe_null" in flags and _is_null(r):
                continue
            if r.type not in _MEM_TYPES:
                raise _type_error(regno, r, _MEM_TYPES_STR, pc)
            if meta_map is None:
                raise Reject("invalid map_ptr to access map->key", "no-map", pc)
            spec = env.maps[meta_map]
            size = spec.key_size if base == "ptr_to_map_key" else spec.value_size
            if base == "ptr_to_map_key" and env.privileged:
                const_key = _constant_map_key(state, r, spec.key_size)
                if const_key is not None and spec.type in ("array", "percpu_array"):
                    # the not-null return relies on the spilled key (get_constant_map_key)
                    slot = _spilled_key_slot(state, r)
                    if slot is not None:
                        precision.mark_slot(env, state, r.frameno, slot)
            helper_mem_access(env, state, r, regno, size, base == "ptr_to_uninit_map_value",
                              False, pc)
            continue
        if base == "ptr_to_mem":
            if "maybe_null" in flags and _is_null(r):
                last_mem = None
                continue
            if r.type not in _MEM_TYPES:
                raise _type_error(regno, r, _MEM_TYPES_STR, pc)
            write = "uninit" in flags
            if "fixed8" in flags or "fixed4" in flags:
                helper_mem_access(env, state, r, regno, 8 if "fixed8" in flags else 4, write,
                                  False, pc)
            else:
                last_mem = (regno, r, write)
            continue
        if base == "ptr_to_spin_lock":
            spinlock.process_spin_lock(env, state, r, regno, name == "spin_lock", pc)
            continue
        if base == "ptr_to_func":
            if r.type != st.FUNC:
                raise _type_error(regno, r, "func", pc)
            if r.off or r.var_off.mask or r.var_off.value:
                raise Reject(f"dereference of modified func ptr R{regno} off={r.off} "
                             f"disallowed", "modified-ptr", pc, regno=regno)
            callback_pc = r.subprog
            continue
        if base == "ptr_to_dynptr":
            if r.type != st.STACK:
                raise _type_error(regno, r, "fp, dynptr_ptr", pc)
            if "release" in flags:
                dynptr.check_release_arg(env, state, r, regno, pc)
                release_dynptr = True
            dynptr.process_arg(env, state, r, regno, flags, pc, dmeta)
            continue
        if base in ("ptr_to_stack",):
            if "maybe_null" in flags and _is_null(r):
                continue
            if r.type != st.STACK:
                raise _type_error(regno, r, "fp", pc)
            continue
        raise Reject(f"helper bpf_{name}#{hid} argument kind '{kind}' is not supported by "
                     f"pybpf's verifier", "unsupported-helper", pc, helper=name)
    # the callback's frame is set up (and its map checked) before map compatibility, as the
    # kernel's verdicts show ("callback function not allowed for map")
    if name in cbk.CALLBACK_HELPERS:
        if callback_pc is None:
            raise Reject(f"helper bpf_{name}#{hid} without a callback", "internal", pc)
        if cbk.CALLBACK_HELPERS[name].bound_reg is not None:
            # the number of visits depends on nr_loops' exact range
            precision.mark_regs(env, state, (cbk.CALLBACK_HELPERS[name].bound_reg,))
        cbk.push_callback(env, state, name, callback_pc, pc)
    # map <-> helper compatibility
    if meta_map is not None:
        mtype = env.maps[meta_map].type
        allowed = _MAP_HELPERS.get(mtype)
        if allowed is not None and name not in allowed:
            raise Reject(f"cannot pass map_type {MAP_TYPE_IDS.get(mtype, 0)} into func "
                         f"bpf_{name}#{hid}", "map-helper-mismatch", pc, helper=name,
                         map_type=mtype)
    need = _HELPER_MAPS.get(name)
    if name == "tail_call" and (meta_map is None or env.maps[meta_map].type != "prog_array"):
        raise Reject("expected prog array map for tail call", "map-helper-mismatch", pc,
                     helper=name)
    if need is not None and (meta_map is None or env.maps[meta_map].type not in need):
        mtype = env.maps[meta_map].type if meta_map is not None else "?"
        raise Reject(f"cannot pass map_type {MAP_TYPE_IDS.get(mtype, 0)} into func "
                     f"bpf_{name}#{hid}", "map-helper-mismatch", pc, helper=name,
                     map_type=mtype)
    if name == "tail_call" and meta_map is not None:
        # record_func_key: a constant in-range index is relied on (direct tail calls)
        r3 = regs[3]
        if r3.type == st.SCALAR and not r3.var_off.mask and \
                r3.var_off.value < env.maps[meta_map].max_entries:
            precision.mark_regs(env, state, (3,))
    if release_dynptr:
        dynptr.release(env, state, dmeta, pc)
    if name == "dynptr_from_mem" and regs[1].type != st.MAP_VALUE:
        raise Reject(f"Unsupported reg type {mem.reg_type_str(regs[1])} for "
                     f"bpf_dynptr_from_mem data", "dynptr-from-mem", pc)
    if release_ref:
        if release_ref not in state.refs:
            raise Reject("reference has not been acquired before", "unacquired-ref", pc)
        del state.refs[release_ref]
        for reg in state.all_regs():
            if reg.ref_obj_id == release_ref:
                _invalidate(env, reg)
    changes_data = name in CHANGES_PKT_DATA or (
        name == "dynptr_write" and dmeta["dynptr"][4] in dynptr.PACKET_KINDS)
    if changes_data:
        dynptr.invalidate_packet_slices(env, state)
        for reg in state.all_regs():
            if reg.type in (st.PACKET, st.PACKET_META, st.PACKET_END):
                _invalidate(env, reg)
    # clobber caller-saved registers and set the return value
    for regno in range(1, 6):
        regs[regno] = RegState()
    base_ret, _ = _norm(ret)
    if base_ret in ("integer", "int"):
        r0 = RegState.scalar_unknown()
    elif base_ret == "void":
        r0 = RegState()
    elif base_ret == "ptr_to_map_value_or_null":
        if meta_map is None:
            raise Reject("kernel subsystem misconfigured verifier", "internal", pc)
        spec = env.maps[meta_map]
        key = const_key
        if name == "map_lookup_elem" and spec.type in ("array", "percpu_array") and \
                key is not None and 0 <= key < spec.max_entries:
            # a constant in-range key of an array can never miss: not null (kernel >= 6.13)
            r0 = RegState.pointer(st.MAP_VALUE, map=meta_map)
        else:
            r0 = RegState.pointer(st.MAP_VALUE_OR_NULL, map=meta_map)
            r0.id = env.new_id()
    elif base_ret == "ptr_to_ringbuf_mem_or_null":
        r0 = RegState.pointer(st.RINGBUF_MEM_OR_NULL, mem_size=meta_size or 0)
        env.new_id()   # the kernel numbers the maybe-null id, then the reference's
        r0.id = env.new_id()
        r0.ref_obj_id = r0.id
        state.refs[r0.id] = pc
    elif base_ret == "ptr_to_dynptr_mem":   # RET_PTR_TO_DYNPTR_MEM_OR_NULL
        # a slice of the dynptr: invalid once the dynptr is destroyed or released
        r0 = RegState.pointer(st.MEM_OR_NULL, mem_size=meta_size or 0)
        r0.id = env.new_id()
        _, _, dynptr_id, ref, kind = dmeta["dynptr"]
        if kind in dynptr.PACKET_KINDS:
            raise Reject(f"bpf_dynptr_data on a {kind} dynptr is not supported by pybpf's "
                         "verifier", "unsupported", pc)
        r0.subprog = dynptr_id
        r0.ref_obj_id = ref
    else:
        raise Reject(f"helper bpf_{name}#{hid} return kind '{ret}' is not supported by "
                     f"pybpf's verifier", "unsupported-helper", pc, helper=name)
    r0.origin = pc
    regs[0] = r0


def _check_const_str(env, r: RegState, regno: int, pc: int) -> None:
    """``check_reg_const_str``: a constant offset into a read-only (frozen) map's value where a
    NUL-terminated string starts (a libbpf ``.rodata`` string, known from the object)."""
    if r.type != st.MAP_VALUE:
        raise _type_error(regno, r, "map_value", pc)
    spec = env.maps[r.map]
    if not spec.flags & 0x80:        # BPF_F_RDONLY_PROG (libbpf freezes such maps)
        raise Reject(f"R{regno} does not point to a readonly map'", "const-str-map", pc,
                     regno=regno)
    if r.var_off.mask:
        raise Reject(f"R{regno} is not a constant address'", "const-str-address", pc,
                     regno=regno)
    if spec.type != "array":
        raise Reject("no direct value access support for this map type", "const-str-map", pc)
    off = r.off + bd.s64(r.var_off.value)
    mem.check_mem_region(r, regno, r.off, spec.value_size - r.off, spec.value_size, False, pc)
    value = next((v for k, v in spec.contents if int.from_bytes(k, "little") == 0), b"")
    value = bytes(value).ljust(spec.value_size, b"\0")
    if b"\0" not in value[off:spec.value_size]:
        raise Reject("string is not zero-terminated", "const-str-unterminated", pc,
                     regno=regno)


def _constant_map_key(state, key: RegState, key_size: int) -> int | None:
    """``get_constant_map_key``: the key on the stack is a known constant (zeroed bytes or a
    spilled constant of exactly the key's size)."""
    if key.type != st.STACK or key.var_off.mask:
        return None
    stack_off = key.off + bd.s64(key.var_off.value)
    slot_i = -stack_off - 1
    if slot_i < 0:
        return None
    spi, off = divmod(slot_i, 8)
    slot = state.frames[key.frameno].stack.get(spi)
    if slot is None:
        return None
    types = slot.types
    zero = 0
    i = off
    while i >= 0 and types[i] == st.ZERO:
        zero += 1
        i -= 1
    if zero >= key_size:
        return 0
    if not (types[7] == st.SPILL and slot.spilled is not None and slot.spilled.type == st.SCALAR):
        return None
    spill = 0
    i = off
    while i >= 0 and types[i] == st.SPILL:
        spill += 1
        i -= 1
    if spill != key_size or slot.spilled.var_off.mask:
        return None
    return slot.spilled.var_off.value


def _spilled_key_slot(state, key: RegState) -> int | None:
    """The stack slot index of a key held by a spilled constant (None for zeroed bytes)."""
    slot_i = -(key.off + bd.s64(key.var_off.value)) - 1
    spi = slot_i // 8
    slot = state.frames[key.frameno].stack.get(spi)
    if slot is None or slot.spilled is None or slot.types[7] != st.SPILL:
        return None
    if slot.types[slot_i % 8] != st.SPILL:
        return None
    return spi


def _invalidate(env, reg: RegState) -> None:
    """``mark_reg_invalid``: root keeps an unknown scalar, others an unreadable register."""
    fresh = RegState.scalar_unknown() if env.privileged else RegState()
    for slot in RegState.__slots__:
        setattr(reg, slot, getattr(fresh, slot))


def helper_name(hid: int) -> str:
    return NAMES_BY_ID[hid] if 0 < hid < len(NAMES_BY_ID) else f"unknown#{hid}"


__all__ = ["check_helper_call", "get_proto", "FALLBACK_PROTOS", "HELPER_IDS", "helper_name"]
