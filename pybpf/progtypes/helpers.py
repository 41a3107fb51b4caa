"""Which helpers each program type may call (the kernel's ``*_func_proto`` callbacks).

The verifier engineer's table (:mod:`pybpf.verifier.progtypes`) is the one source of truth for
the types it knows; the types it does not know yet are listed here the same way, so the
interpreter refuses at load exactly the calls the verifier would.
"""

from __future__ import annotations

from ..verifier.progtypes import BASE_HELPERS, PROG_TYPES as _VERIFIER_TYPES

__all__ = ["BASE_HELPERS", "allowed", "helpers_of"]

#: in ``bpf_base_func_proto`` of recent kernels (with CAP_PERFMON) beyond the verifier's list:
#: read from the running kernel (tests/progtypes/test_helper_rules.py)
_MORE_BASE = frozenset({"get_current_pid_tgid", "get_current_uid_gid", "get_current_comm",
                        "map_lookup_percpu_elem"})
#: helpers the lists above give a type that the running kernel refuses it
_NOT_FOR = {
    "socket_filter": {"csum_diff"},
    "cgroup_skb": {"csum_diff"},
    "sched_cls": {"redirect_map"},
    "sched_act": {"redirect_map"},
    **{t: {"ktime_get_coarse_ns"} for t in ("kprobe", "uprobe", "tracepoint", "raw_tracepoint",
                                            "perf_event", "tracing", "lsm")},
}

#: ``cg_skb_func_proto``: the socket-filter set plus socket and cgroup lookups
_CGROUP_SKB = frozenset({"skb_load_bytes", "skb_load_bytes_relative", "get_socket_cookie",
                         "get_socket_uid", "perf_event_output", "sk_fullsock",
                         "sk_storage_get", "sk_storage_delete", "skb_cgroup_id",
                         "skb_ancestor_cgroup_id", "sk_cgroup_id", "sk_ancestor_cgroup_id",
                         "tcp_sock", "get_listener_sock", "skb_ecn_set_ce", "get_local_storage",
                         "get_cgroup_classid", "csum_diff"})

_LOCAL = {
    "cgroup_skb": _CGROUP_SKB,
    "raw_tracepoint": _VERIFIER_TYPES["tracepoint"].helpers,
    "perf_event": _VERIFIER_TYPES["kprobe"].helpers | {"perf_prog_read_value",
                                                        "read_branch_records"},
    "uprobe": _VERIFIER_TYPES["kprobe"].helpers,
}


def helpers_of(prog_type: str) -> frozenset[str]:
    """Helper names (kernel names without ``bpf_``) a type may call besides BASE_HELPERS."""
    if prog_type in _LOCAL:
        return frozenset(_LOCAL[prog_type])
    found = _VERIFIER_TYPES.get(prog_type)
    return found.helpers if found is not None else frozenset()


def allowed(prog_type: str, helper: str) -> bool:
    """Whether ``prog_type`` programs may call ``helper`` (kernel name without ``bpf_``)."""
    if helper in _NOT_FOR.get(prog_type, ()):
        return False
    return helper in BASE_HELPERS or helper in _MORE_BASE or helper in helpers_of(prog_type)
