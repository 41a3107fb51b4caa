"""What the running kernel can do: bpf(2) at all, its version, program and map types, helpers.

Probes follow libbpf's ``libbpf_probe_bpf_*`` idea: load the smallest program of a type (or
create the smallest map) and read the kernel's answer. ``EINVAL`` for an unknown type means
"not supported"; a verifier message naming an unknown helper means the helper is missing for
that program type. Results are cached per process. Every probe that fails for a *permission*
reason says so instead of claiming the feature is missing.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import re

from ..errors import KernelError, KernelUnsupported
from . import syscall, uapi
from .attrs import MapCreateAttr, ProgLoadAttr

# r0 = 0; exit
_RETURN_ZERO = bytes.fromhex("b700000000000000" "9500000000000000")


def _load(prog_type: int, code: bytes, *, expected_attach_type: int = 0,
          log: bool = False) -> tuple[int, str]:
    """Try to load ``code``; (fd or -errno, verifier log)."""
    insns = ctypes.create_string_buffer(code, len(code))
    lic = ctypes.create_string_buffer(b"GPL")
    buf = ctypes.create_string_buffer(4096 if log else 1)
    attr = ProgLoadAttr(prog_type=prog_type, insn_cnt=len(code) // 8,
                        insns=ctypes.addressof(insns), license=ctypes.addressof(lic),
                        expected_attach_type=expected_attach_type,
                        kern_version=kernel_version_code())
    if log:
        attr.log_level, attr.log_size, attr.log_buf = 1, len(buf), ctypes.addressof(buf)
    ret = syscall.raw_bpf(uapi.Cmd.PROG_LOAD, attr)
    if ret >= 0:
        syscall.close(ret)
    return ret, buf.value.decode(errors="replace") if log else ""


@functools.cache
def bpf_unavailable_reason() -> str | None:
    """None when this process can load and test-run a program through bpf(2), else one line
    saying why not (and what to do)."""
    try:
        from .prog import test_run_bytes
        test_run_bytes(_RETURN_ZERO, "socket_filter", data=bytes(14))
    except KernelUnsupported as exc:
        return str(exc)
    except KernelError as exc:
        return f"bpf(2) is present but a trivial program cannot be run: {exc}"
    except OSError as exc:  # e.g. seccomp kill is not catchable, but odd sandboxes are
        return f"bpf(2) unusable: {exc}"
    return None


def require_bpf() -> None:
    """Raise :class:`KernelUnsupported` with the reason when bpf(2) cannot be used here."""
    reason = bpf_unavailable_reason()
    if reason:
        raise KernelUnsupported(reason)


@functools.cache
def kernel_release() -> str:
    return os.uname().release


@functools.cache
def kernel_version() -> tuple[int, int, int]:
    """(major, minor, patch) of the running kernel, from ``uname -r``."""
    numbers = [int(n) for n in re.findall(r"\d+", kernel_release())[:3]]
    while len(numbers) < 3:
        numbers.append(0)
    return tuple(numbers)  # type: ignore[return-value]


def kernel_version_code() -> int:
    """LINUX_VERSION_CODE of the running kernel (kprobe programs once had to carry it)."""
    major, minor, patch = kernel_version()
    return (major << 16) + (minor << 8) + min(patch, 255)


@functools.cache
def has_prog_type(name: str | int) -> bool:
    """Whether the kernel knows the program type (loads a trivial program of it)."""
    # a bare number may name a type newer than pybpf's tables: ask the kernel as is
    ptype = name if isinstance(name, int) else uapi.prog_type(name)
    attach = _DEFAULT_ATTACH.get(getattr(ptype, "name", ""), 0)
    ret, _ = _load(ptype, _RETURN_ZERO, expected_attach_type=attach)
    if ret >= 0:
        return True
    if -ret == errno.EPERM:
        raise KernelUnsupported(syscall.NOT_PERMITTED)
    # EINVAL: unknown type; other errnos (e.g. needing BTF attach targets) mean it exists
    return -ret not in (errno.EINVAL, errno.E2BIG, 524)  # 524: the kernel's ENOTSUPP


# a few program types must name an attach type to load at all
_DEFAULT_ATTACH = {
    "CGROUP_SOCK_ADDR": uapi.AttachType.CGROUP_INET4_CONNECT,
    "CGROUP_SOCKOPT": uapi.AttachType.CGROUP_GETSOCKOPT,
    "SK_LOOKUP": uapi.AttachType.SK_LOOKUP,
}

# the smallest valid map of each type that needs special sizes
_MAP_PROBE_SHAPES = {
    "RINGBUF": (0, 0, 4096, 0),
    "USER_RINGBUF": (0, 0, 4096, 0),
    "QUEUE": (0, 4, 1, 0),
    "STACK": (0, 4, 1, 0),
    "BLOOM_FILTER": (0, 4, 1, 0),
    "LPM_TRIE": (8, 4, 1, uapi.F_NO_PREALLOC),
    "SK_STORAGE": (4, 4, 0, uapi.F_NO_PREALLOC),
    "INODE_STORAGE": (4, 4, 0, uapi.F_NO_PREALLOC),
    "TASK_STORAGE": (4, 4, 0, uapi.F_NO_PREALLOC),
    "CGRP_STORAGE": (4, 4, 0, uapi.F_NO_PREALLOC),
    "CGROUP_STORAGE": (16, 4, 0, 0),
    "PERCPU_CGROUP_STORAGE": (16, 4, 0, 0),
    "PERF_EVENT_ARRAY": (4, 4, 1, 0),
    "PROG_ARRAY": (4, 4, 1, 0),
    "STACK_TRACE": (4, 8, 1, 0),
}


@functools.cache
def has_map_type(name: str | int) -> bool:
    """Whether the kernel can create a map of this type (creates the smallest one)."""
    mtype = name if isinstance(name, int) else uapi.map_type(name)
    kind = getattr(mtype, "name", "")
    key, value, entries, flags = _MAP_PROBE_SHAPES.get(kind, (4, 4, 1, 0))
    attr = MapCreateAttr(map_type=mtype, key_size=key, value_size=value,
                         max_entries=entries, map_flags=flags)
    ret = syscall.raw_bpf(uapi.Cmd.MAP_CREATE, attr)
    if ret >= 0:
        syscall.close(ret)
        return True
    if -ret == errno.EPERM:
        raise KernelUnsupported(syscall.NOT_PERMITTED)
    # storage maps need BTF (EINVAL without it) and map-in-map need an inner map: both exist
    # when the kernel answers with something other than "unknown type"
    if kind in ("SK_STORAGE", "INODE_STORAGE", "TASK_STORAGE", "CGRP_STORAGE",
                      "ARRAY_OF_MAPS", "HASH_OF_MAPS", "STRUCT_OPS", "CGROUP_STORAGE",
                      "PERCPU_CGROUP_STORAGE", "ARENA"):
        return -ret != errno.EINVAL or _map_type_known_by_version(mtype)
    return False


def _map_type_known_by_version(mtype) -> bool:
    # storage and map-in-map types reject the probe shape with EINVAL even when present;
    # the kernel gained them long before 6.0, the oldest kernel pybpf targets
    return kernel_version() >= (6, 0, 0) and getattr(mtype, "name", "") not in ("ARENA", "")


@functools.cache
def has_helper(prog_type: str | int, helper: str | int) -> bool:
    """Whether ``prog_type`` programs may call ``helper`` (by kernel name or id)."""
    from ..helpers import HELPER_IDS

    hid = HELPER_IDS[helper] if isinstance(helper, str) else helper
    ptype = uapi.prog_type(prog_type)
    # call helper; r0 = 0; exit   -- argument checks fail later than the "unknown func" check
    code = bytes([0x85, 0, 0, 0]) + hid.to_bytes(4, "little") + _RETURN_ZERO
    ret, log = _load(ptype, code, expected_attach_type=_DEFAULT_ATTACH.get(ptype.name, 0),
                     log=True)
    if ret >= 0:
        return True
    if -ret == errno.EPERM and not log:
        raise KernelUnsupported(syscall.NOT_PERMITTED)
    return not re.search(r"unknown func|invalid func|program of this type cannot use helper",
                         log)


def kprobes_unavailable_reason() -> str | None:
    """None when kprobes can be created, else which kernel option is missing."""
    if os.path.exists("/sys/kernel/tracing/kprobe_events") or \
            os.path.exists("/sys/kernel/debug/tracing/kprobe_events"):
        return None
    config = kernel_config()
    if config.get("CONFIG_KPROBES") not in ("y", None):
        return "this kernel was built without kprobes (CONFIG_KPROBES is not set)"
    if config.get("CONFIG_KPROBE_EVENTS") not in ("y", None):
        return "this kernel was built without kprobe events (CONFIG_KPROBE_EVENTS is not set)"
    if not config:
        return "kprobes are unavailable: no kprobe_events in tracefs and no kernel config to say why"
    return "kprobes are unavailable: /sys/kernel/tracing/kprobe_events is missing (mount tracefs)"


@functools.cache
def kernel_config() -> dict[str, str]:
    """The running kernel's build configuration (``/proc/config.gz`` or ``/boot/config-*``);
    options that are "not set" map to ``"n"``. Empty when neither is readable."""
    import gzip

    text = ""
    try:
        with gzip.open("/proc/config.gz", "rt") as f:
            text = f.read()
    except OSError:
        try:
            with open(f"/boot/config-{kernel_release()}") as f:
                text = f.read()
        except OSError:
            return {}
    out: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("CONFIG_"):
            key, _, value = line.partition("=")
            out[key] = value
        elif line.startswith("# CONFIG_") and line.endswith(" is not set"):
            out[line[2:-len(" is not set")]] = "n"
    return out


def num_possible_cpus() -> int:
    """Per-CPU map values hold one slot per *possible* CPU (``/sys/devices/system/cpu/possible``)."""
    return _possible_cpus()


@functools.cache
def _possible_cpus() -> int:
    try:
        with open("/sys/devices/system/cpu/possible") as f:
            text = f.read().strip()
    except OSError:
        return os.cpu_count() or 1
    count = 0
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        count += (int(hi) if hi else int(lo)) - int(lo) + 1
    return count
