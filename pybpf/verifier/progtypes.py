"""Program types as the verifier sees them: context layout, field access rules, packet access.

Follows the kernel's ``*_is_valid_access`` callbacks in ``net/core/filter.c`` and
``kernel/trace/bpf_trace.c``: which context offsets each type may read or write, with which
sizes (narrow loads of u32 fields), and which loads produce packet pointers. Return values of
these types are not range-checked by the kernel (``check_return_code`` only requires an
initialised R0), so no return ranges are listed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from . import state as st

# struct __sk_buff offsets (include/uapi/linux/bpf.h)
SKB = {"len": 0, "pkt_type": 4, "mark": 8, "queue_mapping": 12, "protocol": 16,
       "vlan_present": 20, "vlan_tci": 24, "vlan_proto": 28, "priority": 32,
       "ingress_ifindex": 36, "ifindex": 40, "tc_index": 44, "cb": 48, "hash": 68,
       "tc_classid": 72, "data": 76, "data_end": 80, "napi_id": 84, "family": 88,
       "remote_ip4": 92, "local_ip4": 96, "remote_ip6": 100, "local_ip6": 116,
       "remote_port": 132, "local_port": 136, "data_meta": 140, "flow_keys": 144,
       "tstamp": 152, "wire_len": 160, "gso_segs": 164, "sk": 168, "gso_size": 176,
       "tstamp_type": 180, "hwtstamp": 184}
SKB_SIZE = 192
SKB_FIELD_NAMES = {v: k for k, v in SKB.items()}
XDP = {"data": 0, "data_end": 4, "data_meta": 8, "ingress_ifindex": 12, "rx_queue_index": 16,
       "egress_ifindex": 20}
XDP_SIZE = 24
PT_REGS_SIZE = 168          # x86-64 struct pt_regs
PERF_MAX_TRACE_SIZE = 8192

#: an access check answers (allowed, type of the loaded register or None for a scalar)
Access = Callable[[int, int, bool], "tuple[bool, str | None]"]


def _in(off: int, name: str, size: int = 4) -> bool:
    start = SKB[name]
    return start <= off < start + size


def _skb_common(off: int, size: int, write: bool) -> tuple[bool, str | None]:
    """``bpf_skb_is_valid_access``: alignment, whole-size pointer fields, narrow reads."""
    if off < 0 or off >= SKB_SIZE or off % size:
        return False, None
    if SKB["cb"] <= off < SKB["cb"] + 20:
        return off + size <= SKB["cb"] + 20, None
    for name, n in (("remote_ip6", 16), ("local_ip6", 16), ("remote_ip4", 4),
                    ("local_ip4", 4), ("data", 4), ("data_meta", 4), ("data_end", 4)):
        if _in(off, name, n):
            return size == 4, None
    if _in(off, "flow_keys", 8):
        return False, None
    if _in(off, "hwtstamp", 8):
        return (not write and size == 8), None
    if _in(off, "tstamp", 8):
        return size == 8, None
    if off == SKB["sk"]:
        return (not write and size == 8), st.SOCK_COMMON_OR_NULL
    if _in(off, "sk", 8):
        return False, None
    if SKB["tstamp_type"] <= off < SKB["hwtstamp"]:
        return False, None
    if write:
        return size == 4, None
    return size <= 4 and size & (size - 1) == 0, None


def socket_filter_access(off: int, size: int, write: bool) -> tuple[bool, str | None]:
    for name, n in (("tc_classid", 4), ("data", 4), ("data_meta", 4), ("data_end", 4),
                    ("tstamp", 8), ("wire_len", 4), ("hwtstamp", 8)):
        if _in(off, name, n):
            return False, None
    if SKB["family"] <= off < SKB["local_port"] + 4:
        return False, None
    if write and not (SKB["cb"] <= off < SKB["cb"] + 20):
        return False, None
    return _skb_common(off, size, write)


_TC_WRITABLE = (("mark", 4), ("tc_index", 4), ("priority", 4), ("tc_classid", 4),
                ("cb", 20), ("tstamp", 8), ("queue_mapping", 4))
_PKT_FIELDS = {SKB["data"]: st.PACKET, SKB["data_meta"]: st.PACKET_META,
               SKB["data_end"]: st.PACKET_END}


def sched_cls_access(off: int, size: int, write: bool) -> tuple[bool, str | None]:
    if write and not any(_in(off, n, s) for n, s in _TC_WRITABLE):
        return False, None
    if SKB["family"] <= off < SKB["local_port"] + 4:
        return False, None
    if off == SKB["tstamp_type"]:
        return size == 1, None
    ok, kind = _skb_common(off, size, write)
    if ok and off in _PKT_FIELDS:
        kind = _PKT_FIELDS[off]
    return ok, kind


_XDP_PKT = {0: st.PACKET, 4: st.PACKET_END, 8: st.PACKET_META}


def xdp_access(off: int, size: int, write: bool) -> tuple[bool, str | None]:
    if off == XDP["egress_ifindex"] or write:
        return False, None
    if off < 0 or off >= XDP_SIZE or off % size or size != 4:
        return False, None
    return True, _XDP_PKT.get(off)


def kprobe_access(off: int, size: int, write: bool) -> tuple[bool, str | None]:
    ok = 0 <= off < PT_REGS_SIZE and not write and off % size == 0 \
        and off + size <= PT_REGS_SIZE
    return ok, None


def tracepoint_access(off: int, size: int, write: bool) -> tuple[bool, str | None]:
    # the kernel compares ``off < sizeof(void *)`` unsigned: negative offsets pass it
    ok = not (0 <= off < 8) and off < PERF_MAX_TRACE_SIZE and not write and off % size == 0
    return ok, None


#: helpers every type may call as root (bpf_base_func_proto), by kernel name
BASE_HELPERS = frozenset({
    "get_current_pid_tgid", "get_current_uid_gid", "get_current_comm",
    "map_lookup_elem", "map_lookup_percpu_elem", "map_update_elem", "map_delete_elem",
    "map_push_elem", "map_pop_elem", "map_peek_elem", "get_prandom_u32", "get_smp_processor_id", "get_numa_node_id",
    "tail_call", "ktime_get_ns", "ktime_get_boot_ns", "ktime_get_coarse_ns",
    "ktime_get_tai_ns", "ringbuf_output", "ringbuf_reserve", "ringbuf_submit",
    "ringbuf_discard", "ringbuf_query", "for_each_map_elem", "loop", "strncmp",
    "spin_lock", "spin_unlock", "jiffies64", "per_cpu_ptr", "this_cpu_ptr", "timer_init",
    "timer_set_callback", "timer_start", "timer_cancel", "trace_printk", "snprintf",
    "probe_read_user", "probe_read_kernel", "probe_read_user_str", "probe_read_kernel_str",
    "snprintf_btf", "trace_vprintk", "get_current_task", "get_current_task_btf",
    "task_pt_regs", "kptr_xchg", "dynptr_from_mem", "user_ringbuf_drain",
    "ringbuf_reserve_dynptr", "ringbuf_submit_dynptr", "ringbuf_discard_dynptr",
    "dynptr_read", "dynptr_write", "dynptr_data", "cgrp_storage_get", "cgrp_storage_delete",
})

_SKB_HELPERS = frozenset({"skb_load_bytes", "skb_load_bytes_relative", "get_socket_cookie",
                          "get_socket_uid", "perf_event_output", "skb_ancestor_cgroup_id",
                          "sk_fullsock", "sk_storage_get", "sk_storage_delete",
                          "skb_pull_data", "csum_diff"})
_TC_HELPERS = _SKB_HELPERS | frozenset({
    "skb_store_bytes", "l3_csum_replace", "l4_csum_replace", "clone_redirect",
    "skb_vlan_push", "skb_vlan_pop", "skb_change_proto", "skb_change_type", "skb_adjust_room",
    "skb_change_tail", "skb_change_head", "skb_get_tunnel_key", "skb_set_tunnel_key",
    "skb_get_tunnel_opt", "skb_set_tunnel_opt", "redirect", "redirect_map", "get_cgroup_classid",
    "get_route_realm", "get_hash_recalc", "set_hash_invalid", "set_hash", "skb_under_cgroup",
    "skb_cgroup_id", "csum_update", "csum_level", "fib_lookup", "skb_ecn_set_ce",
    "redirect_neigh", "redirect_peer", "check_mtu", "get_netns_cookie", "sk_lookup_tcp",
    "sk_lookup_udp", "sk_release", "skc_lookup_tcp", "tcp_sock", "get_listener_sock",
    "skb_set_tstamp", "tcp_check_syncookie", "tcp_gen_syncookie", "sk_assign",
    "skb_get_xfrm_state"})
_XDP_HELPERS = frozenset({"perf_event_output", "get_smp_processor_id", "csum_diff",
                          "xdp_adjust_head", "xdp_adjust_meta", "redirect", "redirect_map",
                          "xdp_adjust_tail", "fib_lookup", "check_mtu", "xdp_get_buff_len",
                          "xdp_load_bytes", "xdp_store_bytes", "sk_lookup_tcp",
                          "sk_lookup_udp", "sk_release", "skc_lookup_tcp",
                          "tcp_check_syncookie", "tcp_gen_syncookie", "tcp_raw_gen_syncookie_ipv4",
                          "tcp_raw_check_syncookie_ipv4"})
_TRACING_HELPERS = frozenset({
    "probe_read", "probe_read_str", "get_current_pid_tgid", "get_current_uid_gid",
    "get_current_comm", "get_current_cgroup_id", "get_current_ancestor_cgroup_id",
    "perf_event_output", "perf_event_read", "perf_event_read_value", "get_stackid",
    "get_stack", "get_task_stack", "get_ns_current_pid_tgid", "send_signal",
    "send_signal_thread", "probe_write_user", "get_func_ip", "get_attach_cookie",
    "override_return", "get_branch_snapshot", "find_vma", "get_func_arg_cnt",
    "current_task_under_cgroup", "get_numa_node_id", "get_cgroup_classid"})


def _no_ctx_access(off: int, size: int, write: bool) -> tuple[bool, str | None]:
    return False, None


def _engine_access(name: str, pointers: dict[int, str]) -> Access:
    """The context rule of a type whose layout lives with the engine (:mod:`pybpf.progtypes`,
    whose ``check_access`` is compared with the kernel in tests/progtypes); ``pointers``: the
    offsets whose loads give packet or socket pointers."""
    def access(off: int, size: int, write: bool) -> tuple[bool, str | None]:
        from .. import progtypes as engine

        if engine.get_prog_type(name).check_access(off, size, write) is not None:
            return False, None
        return True, pointers.get(off)
    return access


#: ``cg_skb_func_proto``: the socket-filter set plus socket and cgroup lookups
_CGROUP_SKB_HELPERS = frozenset({
    "skb_load_bytes", "skb_load_bytes_relative", "get_socket_cookie", "get_socket_uid",
    "perf_event_output", "sk_fullsock", "sk_storage_get", "sk_storage_delete", "skb_cgroup_id",
    "skb_ancestor_cgroup_id", "sk_cgroup_id", "sk_ancestor_cgroup_id", "tcp_sock",
    "get_listener_sock", "skb_ecn_set_ce", "get_local_storage", "get_cgroup_classid"})

#: helpers the lists here give a type that the running kernel refuses it
#: (tests/progtypes/test_helper_rules.py reads them from the kernel)
NOT_FOR = {
    "socket_filter": {"csum_diff"},
    "cgroup_skb": {"csum_diff"},
    "sched_cls": {"redirect_map"},
    "sched_act": {"redirect_map"},
    **{t: {"ktime_get_coarse_ns"} for t in ("kprobe", "uprobe", "tracepoint", "raw_tracepoint",
                                            "perf_event", "tracing", "lsm")},
}


@dataclass(frozen=True)
class ProgType:
    name: str
    ctx_name: str                   # the context struct, for messages
    ctx_size: int
    access: Access
    helpers: frozenset[str] = field(default_factory=frozenset)
    direct_packet_write: bool = False
    ld_abs: bool = False
    fields: dict[int, str] = field(default_factory=dict)
    #: what R1 holds at entry and what stands for the context where a helper or LD_ABS wants
    #: it: the context, or (pybpf's raw type) the input region
    ctx_type: str = st.CTX

    def allows_helper(self, name: str) -> bool:
        if name in NOT_FOR.get(self.name, ()):
            return False
        return name in BASE_HELPERS or name in self.helpers


PROG_TYPES: dict[str, ProgType] = {p.name: p for p in (
    ProgType("socket_filter", "__sk_buff", SKB_SIZE, socket_filter_access, _SKB_HELPERS,
             False, True, SKB_FIELD_NAMES),
    ProgType("sched_cls", "__sk_buff", SKB_SIZE, sched_cls_access, _TC_HELPERS, True, True,
             SKB_FIELD_NAMES),
    ProgType("sched_act", "__sk_buff", SKB_SIZE, sched_cls_access, _TC_HELPERS, True, True,
             SKB_FIELD_NAMES),
    ProgType("xdp", "xdp_md", XDP_SIZE, xdp_access, _XDP_HELPERS, True, False,
             {v: k for k, v in XDP.items()}),
    ProgType("kprobe", "pt_regs", PT_REGS_SIZE, kprobe_access, _TRACING_HELPERS),
    ProgType("tracepoint", "tracepoint context", PERF_MAX_TRACE_SIZE, tracepoint_access,
             _TRACING_HELPERS),
    ProgType("cgroup_skb", "__sk_buff", SKB_SIZE,
             _engine_access("cgroup_skb", {SKB["data"]: st.PACKET,
                                           SKB["data_end"]: st.PACKET_END,
                                           SKB["sk"]: st.SOCK_COMMON_OR_NULL}),
             _CGROUP_SKB_HELPERS, False, False, SKB_FIELD_NAMES),
    ProgType("raw_tracepoint", "raw tracepoint arguments", 8 * 12,
             _engine_access("raw_tracepoint", {}), _TRACING_HELPERS),
    ProgType("perf_event", "bpf_perf_event_data", PT_REGS_SIZE + 16,
             _engine_access("perf_event", {}),
             _TRACING_HELPERS | {"perf_prog_read_value", "read_branch_records"}),
    # pybpf's own convention (uBPF's, no kernel counterpart): R1 points at the run's input
    # bytes, read-write, and R2 holds their length; there is no context, so the verifier checks
    # the program for one input size at a time (``verify(..., data_size=n)``)
    ProgType("raw", "input data", 0, _no_ctx_access,
             _SKB_HELPERS | _TC_HELPERS | _XDP_HELPERS | _TRACING_HELPERS, ld_abs=True,
             ctx_type=st.MEM),
)}

#: section prefixes -> program types (libbpf's convention), for objects without an explicit type
SECTION_TYPES = {"socket": "socket_filter", "xdp": "xdp", "tc": "sched_cls",
                 "classifier": "sched_cls", "action": "sched_act", "kprobe": "kprobe",
                 "kretprobe": "kprobe", "tracepoint": "tracepoint", "tp": "tracepoint"}


def get_prog_type(name: str) -> ProgType:
    from ..errors import UsageError
    try:
        return PROG_TYPES[name]
    except KeyError:
        raise UsageError(f"the verifier does not know program type '{name}' "
                         f"(known: {', '.join(sorted(PROG_TYPES))})") from None
