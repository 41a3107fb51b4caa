"""perf_event programs on software events sampled at a frequency, one event per online CPU
(what ``bpftrace``'s ``profile:hz:N`` does)."""

from __future__ import annotations

from ...errors import UsageError
from .. import perf
from ..link import Link
from ._perf_link import perf_link


def attach_perf_event(program, event: str = "cpu-clock", *, frequency: int | None = 99,
                      period: int | None = None, pid: int = -1) -> Link:
    """Sample ``event`` (a software event name) ``frequency`` times a second on every CPU (or
    every ``period`` events); the Link owns one perf event per CPU."""
    if event not in perf.SOFTWARE_EVENTS:
        raise UsageError(f"unknown software event '{event}' "
                         f"(known: {', '.join(perf.SOFTWARE_EVENTS)})")
    links: list[Link] = []
    try:
        for cpu in perf.online_cpus():
            attr = perf.PerfEventAttr(type=perf.TYPE_SOFTWARE, config=perf.SOFTWARE_EVENTS[event])
            if period is not None:
                attr.sample_period = period
            else:
                attr.sample_period = frequency or 99
                attr.flags |= perf.FLAG_FREQ
            pfd = perf.perf_event_open(attr, pid=pid, cpu=cpu, what=f"software event {event}")
            links.append(perf_link(program, pfd, "perf_event", f"{event} cpu{cpu}"))
    except BaseException:
        for link in links:
            link.close()
        raise
    return Link("perf_event", f"{event} on {len(links)} CPUs",
                detach=lambda: [link.close() for link in links], program=program)
