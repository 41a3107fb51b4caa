"""perf_event_open(2) for the kernel engine: tracepoints, uprobes, software events and the
BPF output events behind perf buffers.

``struct perf_event_attr`` follows ``include/uapi/linux/perf_event.h`` (PERF_ATTR_SIZE_VER8);
the flag bits are the header's bitfield positions. Tracepoint ids come from tracefs
(``events/<category>/<name>/id``), which is mounted if it is not.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
from ctypes import c_int32, c_uint16, c_uint32, c_uint64

from ..errors import KernelError, KernelUnsupported, UsageError

PERF_EVENT_OPEN = {"x86_64": 298, "aarch64": 241, "arm64": 241, "riscv64": 241,
                   "i386": 336, "i686": 336, "ppc64le": 319, "s390x": 331}.get(os.uname().machine)

# perf_type_id
TYPE_HARDWARE, TYPE_SOFTWARE, TYPE_TRACEPOINT = 0, 1, 2
# perf_sw_ids
SW_CPU_CLOCK, SW_TASK_CLOCK, SW_PAGE_FAULTS, SW_CONTEXT_SWITCHES = 0, 1, 2, 3
SW_BPF_OUTPUT = 10
SOFTWARE_EVENTS = {"cpu-clock": 0, "task-clock": 1, "page-faults": 2, "context-switches": 3,
                   "cpu-migrations": 4, "minor-faults": 5, "major-faults": 6,
                   "alignment-faults": 7, "emulation-faults": 8, "dummy": 9}
SAMPLE_RAW = 1 << 10

# bitfield positions in perf_event_attr.flags
FLAG_DISABLED = 1 << 0
FLAG_INHERIT = 1 << 1
FLAG_EXCLUDE_KERNEL = 1 << 5
FLAG_FREQ = 1 << 10
FLAG_WATERMARK = 1 << 14

# ioctls: _IO('$', n) and _IOW('$', 8, __u32)
IOC_ENABLE = 0x2400
IOC_DISABLE = 0x2401
IOC_SET_BPF = 0x40042408

PERF_FLAG_FD_CLOEXEC = 1 << 3

TRACEFS = "/sys/kernel/tracing"


class PerfEventAttr(ctypes.Structure):
    _fields_ = [
        ("type", c_uint32), ("size", c_uint32), ("config", c_uint64),
        ("sample_period", c_uint64),  # or sample_freq with FLAG_FREQ
        ("sample_type", c_uint64), ("read_format", c_uint64), ("flags", c_uint64),
        ("wakeup_events", c_uint32),  # or wakeup_watermark
        ("bp_type", c_uint32), ("config1", c_uint64), ("config2", c_uint64),
        ("branch_sample_type", c_uint64), ("sample_regs_user", c_uint64),
        ("sample_stack_user", c_uint32), ("clockid", c_int32), ("sample_regs_intr", c_uint64),
        ("aux_watermark", c_uint32), ("sample_max_stack", c_uint16), ("_reserved2", c_uint16),
        ("aux_sample_size", c_uint32), ("_reserved3", c_uint32), ("sig_data", c_uint64),
        ("config3", c_uint64),
    ]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def perf_event_open(attr: PerfEventAttr, pid: int = -1, cpu: int = 0, group_fd: int = -1,
                    flags: int = PERF_FLAG_FD_CLOEXEC, what: str = "perf event") -> int:
    if PERF_EVENT_OPEN is None:
        raise KernelUnsupported(f"perf_event_open is not known on {os.uname().machine}")
    attr.size = ctypes.sizeof(attr)
    fd = _libc.syscall(PERF_EVENT_OPEN, ctypes.byref(attr), ctypes.c_int(pid), ctypes.c_int(cpu),
                       ctypes.c_int(group_fd), ctypes.c_ulong(flags))
    if fd < 0:
        err = ctypes.get_errno()
        if err in (1, 13):  # EPERM, EACCES
            raise KernelUnsupported(f"perf_event_open for {what} is not permitted: run as root "
                                    "or grant CAP_PERFMON (see kernel.perf_event_paranoid)",
                                    errno=err, command="perf_event_open")
        raise KernelError(f"perf_event_open for {what}: {os.strerror(err)}", errno=err,
                          command="perf_event_open")
    return fd


def ioctl(fd: int, request: int, arg: int = 0) -> None:
    fcntl.ioctl(fd, request, arg)


def ensure_tracefs() -> str:
    """The tracefs mount point, mounting it at /sys/kernel/tracing when needed."""
    for path in (TRACEFS, "/sys/kernel/debug/tracing"):
        if os.path.exists(os.path.join(path, "events")):
            return path
    if _libc.mount(b"tracefs", TRACEFS.encode(), b"tracefs", 0, None) != 0:
        err = ctypes.get_errno()
        raise KernelUnsupported(f"tracefs is not mounted and cannot be mounted at {TRACEFS}: "
                                f"{os.strerror(err)}", errno=err, command="mount")
    return TRACEFS


def tracepoint_id(category: str, name: str) -> int:
    """The id of tracepoint ``category:name`` (``syscalls:sys_enter_openat``)."""
    path = os.path.join(ensure_tracefs(), "events", category, name, "id")
    try:
        with open(path) as f:
            return int(f.read())
    except FileNotFoundError:
        raise UsageError(f"no tracepoint {category}:{name} on this kernel ({path} is missing; "
                         "see available_events in tracefs)") from None


def pmu_type(name: str) -> int:
    """The dynamic PMU type of ``uprobe``/``kprobe`` from sysfs."""
    path = f"/sys/bus/event_source/devices/{name}/type"
    try:
        with open(path) as f:
            return int(f.read())
    except FileNotFoundError:
        raise KernelUnsupported(f"this kernel has no {name} PMU ({path} is missing)") from None


def pmu_retprobe_bit(name: str) -> int:
    """The config bit that turns a probe into a return probe (``format/retprobe``: config:N)."""
    try:
        with open(f"/sys/bus/event_source/devices/{name}/format/retprobe") as f:
            return 1 << int(f.read().strip().split(":")[1])
    except (FileNotFoundError, IndexError, ValueError):
        return 1  # the bit every kernel has used so far


def online_cpus() -> list[int]:
    try:
        with open("/sys/devices/system/cpu/online") as f:
            text = f.read().strip()
    except OSError:
        return list(range(os.cpu_count() or 1))
    cpus: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        cpus.extend(range(int(lo), int(hi or lo) + 1))
    return cpus
