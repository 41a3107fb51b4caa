"""ELF section names -> program type and expected attach type, as libbpf reads them.

Follows libbpf's ``section_defs`` table (libbpf v1.x, ``src/libbpf.c``) and its matching rule
(``sec_def_matches``):

- a name ending in ``+`` matches the bare prefix or the prefix followed by ``/anything``
  (``kprobe+`` matches ``kprobe`` and ``kprobe/do_nanosleep``; the tail is the attach target);
- any other name matches exactly.

The first matching row wins, so more specific rows come first (``tc/ingress`` before ``tc``).
Program and attach types are named as the kernel does, lower-cased without the prefix
(``sched_cls``, ``cgroup_inet_ingress``).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ObjectFileError


@dataclass(frozen=True, slots=True)
class SectionDef:
    """What a program section name says: its program type and how it attaches."""

    prefix: str                 # the libbpf table row, e.g. "kprobe+"
    prog_type: str              # kernel name: socket_filter, xdp, sched_cls, kprobe, ...
    attach_type: str | None     # expected_attach_type when the kernel needs one
    sleepable: bool = False
    xdp_frags: bool = False


@dataclass(frozen=True, slots=True)
class ProgramSection:
    """A matched section: the row plus the attach target after the prefix (if any)."""

    name: str
    definition: SectionDef
    target: str | None

    @property
    def prog_type(self) -> str:
        return self.definition.prog_type

    @property
    def attach_type(self) -> str | None:
        return self.definition.attach_type


def _row(prefix: str, prog_type: str, attach: str | None = None, *, sleepable=False,
         frags=False) -> SectionDef:
    return SectionDef(prefix, prog_type, attach, sleepable, frags)


#: libbpf's section table, in its order (first match wins)
SECTION_DEFS: list[SectionDef] = [
    _row("socket", "socket_filter"),
    _row("sk_reuseport/migrate", "sk_reuseport", "sk_reuseport_select_or_migrate"),
    _row("sk_reuseport", "sk_reuseport", "sk_reuseport_select"),
    _row("kprobe+", "kprobe"),
    _row("uprobe+", "kprobe"),
    _row("uprobe.s+", "kprobe", sleepable=True),
    _row("kretprobe+", "kprobe"),
    _row("uretprobe+", "kprobe"),
    _row("uretprobe.s+", "kprobe", sleepable=True),
    _row("kprobe.multi+", "kprobe", "trace_kprobe_multi"),
    _row("kretprobe.multi+", "kprobe", "trace_kprobe_multi"),
    _row("uprobe.multi+", "kprobe", "trace_uprobe_multi"),
    _row("uretprobe.multi+", "kprobe", "trace_uprobe_multi"),
    _row("ksyscall+", "kprobe"),
    _row("kretsyscall+", "kprobe"),
    _row("usdt+", "kprobe"),
    _row("tc/ingress", "sched_cls", "tcx_ingress"),
    _row("tc/egress", "sched_cls", "tcx_egress"),
    _row("tcx/ingress", "sched_cls", "tcx_ingress"),
    _row("tcx/egress", "sched_cls", "tcx_egress"),
    _row("tc", "sched_cls"),
    _row("classifier", "sched_cls"),
    _row("action", "sched_act"),
    _row("netkit/primary", "sched_cls", "netkit_primary"),
    _row("netkit/peer", "sched_cls", "netkit_peer"),
    _row("tracepoint+", "tracepoint"),
    _row("tp+", "tracepoint"),
    _row("raw_tracepoint+", "raw_tracepoint"),
    _row("raw_tp+", "raw_tracepoint"),
    _row("raw_tracepoint.w+", "raw_tracepoint_writable"),
    _row("raw_tp.w+", "raw_tracepoint_writable"),
    _row("tp_btf+", "tracing", "trace_raw_tp"),
    _row("fentry+", "tracing", "trace_fentry"),
    _row("fmod_ret+", "tracing", "modify_return"),
    _row("fexit+", "tracing", "trace_fexit"),
    _row("fentry.s+", "tracing", "trace_fentry", sleepable=True),
    _row("fmod_ret.s+", "tracing", "modify_return", sleepable=True),
    _row("fexit.s+", "tracing", "trace_fexit", sleepable=True),
    _row("freplace+", "ext"),
    _row("lsm+", "lsm", "lsm_mac"),
    _row("lsm.s+", "lsm", "lsm_mac", sleepable=True),
    _row("lsm_cgroup+", "lsm", "lsm_cgroup"),
    _row("iter+", "tracing", "trace_iter"),
    _row("iter.s+", "tracing", "trace_iter", sleepable=True),
    _row("syscall", "syscall", sleepable=True),
    _row("xdp.frags/devmap", "xdp", "xdp_devmap", frags=True),
    _row("xdp/devmap", "xdp", "xdp_devmap"),
    _row("xdp.frags/cpumap", "xdp", "xdp_cpumap", frags=True),
    _row("xdp/cpumap", "xdp", "xdp_cpumap"),
    _row("xdp.frags", "xdp", "xdp", frags=True),
    _row("xdp", "xdp", "xdp"),
    _row("perf_event", "perf_event"),
    _row("lwt_in", "lwt_in"),
    _row("lwt_out", "lwt_out"),
    _row("lwt_xmit", "lwt_xmit"),
    _row("lwt_seg6local", "lwt_seg6local"),
    _row("sockops", "sock_ops", "cgroup_sock_ops"),
    _row("sk_skb/stream_parser", "sk_skb", "sk_skb_stream_parser"),
    _row("sk_skb/stream_verdict", "sk_skb", "sk_skb_stream_verdict"),
    _row("sk_skb/verdict", "sk_skb", "sk_skb_verdict"),
    _row("sk_skb", "sk_skb"),
    _row("sk_msg", "sk_msg", "sk_msg_verdict"),
    _row("lirc_mode2", "lirc_mode2", "lirc_mode2"),
    _row("flow_dissector", "flow_dissector", "flow_dissector"),
    _row("cgroup_skb/ingress", "cgroup_skb", "cgroup_inet_ingress"),
    _row("cgroup_skb/egress", "cgroup_skb", "cgroup_inet_egress"),
    _row("cgroup/skb", "cgroup_skb"),
    _row("cgroup/sock_create", "cgroup_sock", "cgroup_inet_sock_create"),
    _row("cgroup/sock_release", "cgroup_sock", "cgroup_inet_sock_release"),
    _row("cgroup/sock", "cgroup_sock", "cgroup_inet_sock_create"),
    _row("cgroup/post_bind4", "cgroup_sock", "cgroup_inet4_post_bind"),
    _row("cgroup/post_bind6", "cgroup_sock", "cgroup_inet6_post_bind"),
    _row("cgroup/bind4", "cgroup_sock_addr", "cgroup_inet4_bind"),
    _row("cgroup/bind6", "cgroup_sock_addr", "cgroup_inet6_bind"),
    _row("cgroup/connect4", "cgroup_sock_addr", "cgroup_inet4_connect"),
    _row("cgroup/connect6", "cgroup_sock_addr", "cgroup_inet6_connect"),
    _row("cgroup/connect_unix", "cgroup_sock_addr", "cgroup_unix_connect"),
    _row("cgroup/sendmsg4", "cgroup_sock_addr", "cgroup_udp4_sendmsg"),
    _row("cgroup/sendmsg6", "cgroup_sock_addr", "cgroup_udp6_sendmsg"),
    _row("cgroup/sendmsg_unix", "cgroup_sock_addr", "cgroup_unix_sendmsg"),
    _row("cgroup/recvmsg4", "cgroup_sock_addr", "cgroup_udp4_recvmsg"),
    _row("cgroup/recvmsg6", "cgroup_sock_addr", "cgroup_udp6_recvmsg"),
    _row("cgroup/recvmsg_unix", "cgroup_sock_addr", "cgroup_unix_recvmsg"),
    _row("cgroup/getpeername4", "cgroup_sock_addr", "cgroup_inet4_getpeername"),
    _row("cgroup/getpeername6", "cgroup_sock_addr", "cgroup_inet6_getpeername"),
    _row("cgroup/getpeername_unix", "cgroup_sock_addr", "cgroup_unix_getpeername"),
    _row("cgroup/getsockname4", "cgroup_sock_addr", "cgroup_inet4_getsockname"),
    _row("cgroup/getsockname6", "cgroup_sock_addr", "cgroup_inet6_getsockname"),
    _row("cgroup/getsockname_unix", "cgroup_sock_addr", "cgroup_unix_getsockname"),
    _row("cgroup/sysctl", "cgroup_sysctl", "cgroup_sysctl"),
    _row("cgroup/getsockopt", "cgroup_sockopt", "cgroup_getsockopt"),
    _row("cgroup/setsockopt", "cgroup_sockopt", "cgroup_setsockopt"),
    _row("cgroup/dev", "cgroup_device", "cgroup_device"),
    _row("struct_ops+", "struct_ops"),
    _row("struct_ops.s+", "struct_ops", sleepable=True),
    _row("sk_lookup", "sk_lookup", "sk_lookup"),
    _row("netfilter", "netfilter", "netfilter"),
]


def match_section(name: str) -> ProgramSection | None:
    """The libbpf row a section name matches, or None (libbpf: 'missing BPF prog type')."""
    for row in SECTION_DEFS:
        if row.prefix.endswith("+"):
            prefix = row.prefix[:-1]
            if name == prefix:
                return ProgramSection(name, row, None)
            if name.startswith(prefix + "/"):
                return ProgramSection(name, row, name[len(prefix) + 1:])
        elif name == row.prefix:
            return ProgramSection(name, row, None)
    return None


def program_section(name: str) -> ProgramSection:
    """Like :func:`match_section` but a section no row matches is an error, as in libbpf."""
    found = match_section(name)
    if found is None:
        raise ObjectFileError(f"section '{name}': unknown program section name "
                              f"(libbpf would say: missing BPF prog type)")
    return found
