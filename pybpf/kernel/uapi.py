"""The kernel's bpf(2) vocabulary: commands, program, map, attach and link types, flags.

Values follow ``include/uapi/linux/bpf.h`` of Linux 6.18 (enums only grow; a value the running
kernel does not know is refused by it with EINVAL, which :mod:`pybpf.kernel.features` turns into
a clear message). Names are the kernel's own without the ``BPF_`` / ``BPF_PROG_TYPE_`` /
``BPF_MAP_TYPE_`` prefix, so ``ProgType.SOCKET_FILTER`` and the string ``"socket_filter"`` both
name ``BPF_PROG_TYPE_SOCKET_FILTER``. Each enum is built from a list in the kernel's order: the
list is the documentation, and a value is its position.
"""

from __future__ import annotations

import enum

from ..errors import UsageError


def _enum(name: str, names: str, start: int = 0) -> type[enum.IntEnum]:
    members = {n: i for i, n in enumerate(names.split(), start) if n != "_"}
    return enum.IntEnum(name, members)


#: enum bpf_cmd
Cmd = _enum("Cmd", """
    MAP_CREATE MAP_LOOKUP_ELEM MAP_UPDATE_ELEM MAP_DELETE_ELEM MAP_GET_NEXT_KEY PROG_LOAD
    OBJ_PIN OBJ_GET PROG_ATTACH PROG_DETACH PROG_TEST_RUN PROG_GET_NEXT_ID MAP_GET_NEXT_ID
    PROG_GET_FD_BY_ID MAP_GET_FD_BY_ID OBJ_GET_INFO_BY_FD PROG_QUERY RAW_TRACEPOINT_OPEN
    BTF_LOAD BTF_GET_FD_BY_ID TASK_FD_QUERY MAP_LOOKUP_AND_DELETE_ELEM MAP_FREEZE
    BTF_GET_NEXT_ID MAP_LOOKUP_BATCH MAP_LOOKUP_AND_DELETE_BATCH MAP_UPDATE_BATCH
    MAP_DELETE_BATCH LINK_CREATE LINK_UPDATE LINK_GET_FD_BY_ID LINK_GET_NEXT_ID ENABLE_STATS
    ITER_CREATE LINK_DETACH PROG_BIND_MAP TOKEN_CREATE PROG_STREAM_READ_BY_FD
""")

#: enum bpf_prog_type
ProgType = _enum("ProgType", """
    UNSPEC SOCKET_FILTER KPROBE SCHED_CLS SCHED_ACT TRACEPOINT XDP PERF_EVENT CGROUP_SKB
    CGROUP_SOCK LWT_IN LWT_OUT LWT_XMIT SOCK_OPS SK_SKB CGROUP_DEVICE SK_MSG RAW_TRACEPOINT
    CGROUP_SOCK_ADDR LWT_SEG6LOCAL LIRC_MODE2 SK_REUSEPORT FLOW_DISSECTOR CGROUP_SYSCTL
    RAW_TRACEPOINT_WRITABLE CGROUP_SOCKOPT TRACING STRUCT_OPS EXT LSM SK_LOOKUP SYSCALL
    NETFILTER
""")

#: enum bpf_map_type
MapType = _enum("MapType", """
    UNSPEC HASH ARRAY PROG_ARRAY PERF_EVENT_ARRAY PERCPU_HASH PERCPU_ARRAY STACK_TRACE
    CGROUP_ARRAY LRU_HASH LRU_PERCPU_HASH LPM_TRIE ARRAY_OF_MAPS HASH_OF_MAPS DEVMAP SOCKMAP
    CPUMAP XSKMAP SOCKHASH CGROUP_STORAGE REUSEPORT_SOCKARRAY PERCPU_CGROUP_STORAGE QUEUE
    STACK SK_STORAGE DEVMAP_HASH STRUCT_OPS RINGBUF INODE_STORAGE TASK_STORAGE BLOOM_FILTER
    USER_RINGBUF CGRP_STORAGE ARENA
""")

#: enum bpf_attach_type
AttachType = _enum("AttachType", """
    CGROUP_INET_INGRESS CGROUP_INET_EGRESS CGROUP_INET_SOCK_CREATE CGROUP_SOCK_OPS
    SK_SKB_STREAM_PARSER SK_SKB_STREAM_VERDICT CGROUP_DEVICE SK_MSG_VERDICT CGROUP_INET4_BIND
    CGROUP_INET6_BIND CGROUP_INET4_CONNECT CGROUP_INET6_CONNECT CGROUP_INET4_POST_BIND
    CGROUP_INET6_POST_BIND CGROUP_UDP4_SENDMSG CGROUP_UDP6_SENDMSG LIRC_MODE2 FLOW_DISSECTOR
    CGROUP_SYSCTL CGROUP_UDP4_RECVMSG CGROUP_UDP6_RECVMSG CGROUP_GETSOCKOPT CGROUP_SETSOCKOPT
    TRACE_RAW_TP TRACE_FENTRY TRACE_FEXIT MODIFY_RETURN LSM_MAC TRACE_ITER
    CGROUP_INET4_GETPEERNAME CGROUP_INET6_GETPEERNAME CGROUP_INET4_GETSOCKNAME
    CGROUP_INET6_GETSOCKNAME XDP_DEVMAP CGROUP_INET_SOCK_RELEASE XDP_CPUMAP SK_LOOKUP XDP
    SK_SKB_VERDICT SK_REUSEPORT_SELECT SK_REUSEPORT_SELECT_OR_MIGRATE PERF_EVENT
    TRACE_KPROBE_MULTI LSM_CGROUP STRUCT_OPS NETFILTER TCX_INGRESS TCX_EGRESS
    TRACE_UPROBE_MULTI CGROUP_UNIX_CONNECT CGROUP_UNIX_SENDMSG CGROUP_UNIX_RECVMSG
    CGROUP_UNIX_GETPEERNAME CGROUP_UNIX_GETSOCKNAME NETKIT_PRIMARY NETKIT_PEER
    TRACE_KPROBE_SESSION TRACE_UPROBE_SESSION
""")

#: enum bpf_link_type
LinkType = _enum("LinkType", """
    UNSPEC RAW_TRACEPOINT TRACING CGROUP ITER NETNS XDP PERF_EVENT KPROBE_MULTI STRUCT_OPS
    NETFILTER TCX UPROBE_MULTI NETKIT SOCKMAP
""")

# --- flags ---------------------------------------------------------------------------------

# map update flags (BPF_ANY, BPF_NOEXIST, BPF_EXIST, BPF_F_LOCK)
ANY, NOEXIST, EXIST, F_LOCK = 0, 1, 2, 4

# map creation flags
F_NO_PREALLOC = 1 << 0
F_NO_COMMON_LRU = 1 << 1
F_NUMA_NODE = 1 << 2
F_RDONLY = 1 << 3
F_WRONLY = 1 << 4
F_STACK_BUILD_ID = 1 << 5
F_ZERO_SEED = 1 << 6
F_RDONLY_PROG = 1 << 7
F_WRONLY_PROG = 1 << 8
F_CLONE = 1 << 9
F_MMAPABLE = 1 << 10
F_PRESERVE_ELEMS = 1 << 11
F_INNER_MAP = 1 << 12

# program load flags
F_STRICT_ALIGNMENT = 1 << 0
F_ANY_ALIGNMENT = 1 << 1
F_TEST_RND_HI32 = 1 << 2
F_TEST_STATE_FREQ = 1 << 3
F_SLEEPABLE = 1 << 4
F_XDP_HAS_FRAGS = 1 << 5

# BPF_PROG_TEST_RUN flags
F_TEST_RUN_ON_CPU = 1 << 0
F_TEST_XDP_LIVE_FRAMES = 1 << 1

# XDP link / netlink flags
XDP_FLAGS_UPDATE_IF_NOEXIST = 1 << 0
XDP_FLAGS_SKB_MODE = 1 << 1
XDP_FLAGS_DRV_MODE = 1 << 2
XDP_FLAGS_HW_MODE = 1 << 3

# BPF_PROG_ATTACH flags
F_ALLOW_OVERRIDE = 1 << 0
F_ALLOW_MULTI = 1 << 1
F_REPLACE = 1 << 2
F_BEFORE = 1 << 3
F_AFTER = 1 << 4

# the name length the kernel stores for programs and maps (BPF_OBJ_NAME_LEN, with the NUL)
OBJ_NAME_LEN = 16


def _lookup(table: type[enum.IntEnum], name: str | int | enum.IntEnum, what: str) -> enum.IntEnum:
    if isinstance(name, table):
        return name
    if isinstance(name, int):
        try:
            return table(name)
        except ValueError:
            raise UsageError(f"unknown {what} {name}") from None
    key = name.strip().upper().replace("-", "_")
    for prefix in ("BPF_PROG_TYPE_", "BPF_MAP_TYPE_", "BPF_LINK_TYPE_", "BPF_"):
        if key.startswith(prefix):
            key = key[len(prefix):]
            break
    try:
        return table[key]
    except KeyError:
        known = ", ".join(m.name.lower() for m in table if m.name != "UNSPEC")
        raise UsageError(f"unknown {what} '{name}' (known: {known})") from None


def prog_type(name: str | int) -> enum.IntEnum:
    """``"xdp"`` -> ``ProgType.XDP``; raises :class:`UsageError` naming the known types."""
    return _lookup(ProgType, name, "program type")


def map_type(name: str | int) -> enum.IntEnum:
    return _lookup(MapType, name, "map type")


def attach_type(name: str | int) -> enum.IntEnum:
    return _lookup(AttachType, name, "attach type")


def link_type(name: str | int) -> enum.IntEnum:
    return _lookup(LinkType, name, "link type")


def kernel_name(value: enum.IntEnum) -> str:
    """The lower-case name pybpf uses for an enum member (``ProgType.XDP`` -> ``"xdp"``)."""
    return value.name.lower()
