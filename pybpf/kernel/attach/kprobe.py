"""kprobes and kretprobes: a perf event of the ``kprobe`` PMU on a kernel function.

Refused up front, with the kernel option that is missing, on kernels built without kprobes
(``CONFIG_KPROBES``/``CONFIG_KPROBE_EVENTS``), rather than failing deep inside perf_event_open.
"""

from __future__ import annotations

import ctypes

from ...errors import KernelUnsupported
from .. import perf
from ..features import kprobes_unavailable_reason
from ..link import Link
from ._perf_link import perf_link


def attach_kprobe(program, function: str, *, offset: int = 0, retprobe: bool = False) -> Link:
    reason = kprobes_unavailable_reason()
    if reason:
        raise KernelUnsupported(f"cannot attach a kprobe to {function}: {reason}")
    name = ctypes.create_string_buffer(function.encode())
    attr = perf.PerfEventAttr(type=perf.pmu_type("kprobe"), sample_period=1, wakeup_events=1,
                              config=perf.pmu_retprobe_bit("kprobe") if retprobe else 0,
                              config1=ctypes.addressof(name), config2=offset)
    kind = "kretprobe" if retprobe else "kprobe"
    pfd = perf.perf_event_open(attr, pid=-1, cpu=0, what=f"{kind} {function}")
    return perf_link(program, pfd, kind, f"{function}+{offset:#x}")
