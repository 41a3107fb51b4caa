"""Run the same map operations on a pybpf map and on a kernel map, and normalise the outcomes.

The kernel side goes through :class:`pybpf.kernel.KernelMap` for the dict-style calls and through
raw bpf(2) (``pybpf.kernel.syscall.raw_bpf``) where the call needs a value *input* on lookup
(bloom filter peek) or a NULL key. Each outcome is ``("ok", result)`` or ``("err", errno)``, so
two sequences compare with ``==``.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from typing import Any, Iterator

from hypothesis import Phase

from pybpf.errors import MapError
from pybpf.kernel.attrs import MapCreateAttr, MapElemAttr
from pybpf.kernel.uapi import Cmd, map_type
from pybpf.program import MapSpec

ENOENT = 2

#: hypothesis phases for tests that call the kernel: shrinking through thousands of bpf(2)
#: round trips takes minutes on a shared machine, and the sequences are short anyway
NO_SHRINK = (Phase.explicit, Phase.reuse, Phase.generate)


@contextlib.contextmanager
def one_cpu(cpu: int | None = None) -> Iterator[None]:
    """Keep this thread on the CPU it runs on: the kernel's LRU lists and per-CPU values then
    behave as for a single producer (no free nodes stranded on another CPU's local list), and
    pybpf's per-CPU helpers are told to use that CPU too."""
    from pybpf.maps import current_cpu, set_current_cpu

    old = os.sched_getaffinity(0)
    if cpu is None:
        cpu = running_cpu()
        if cpu not in old:
            cpu = min(old)
    os.sched_setaffinity(0, {cpu})
    saved = current_cpu()
    set_current_cpu(cpu)   # pybpf's per-CPU helpers then use the same CPU's copies
    try:
        yield
    finally:
        set_current_cpu(saved)
        os.sched_setaffinity(0, old)


def running_cpu() -> int:
    """The CPU this thread is on now (field 39 of /proc/thread-self/stat), -1 if unknown."""
    try:
        with open("/proc/thread-self/stat", "rb") as f:
            return int(f.read().rsplit(b")", 1)[1].split()[36])
    except (OSError, IndexError, ValueError):
        return -1


@contextlib.contextmanager
def kernel_map(spec: MapSpec) -> Iterator[Any]:
    from pybpf.kernel import KernelMap

    km = KernelMap.create(spec)
    try:
        yield km
    finally:
        km.close()


def create_raw(spec: MapSpec) -> int:
    """MAP_CREATE with map_extra (KernelMap does not pass it); returns the fd or -errno."""
    from pybpf.kernel import syscall

    attr = MapCreateAttr(map_type=map_type(spec.type), key_size=spec.key_size,
                         value_size=spec.value_size, max_entries=spec.max_entries,
                         map_flags=spec.flags, map_extra=spec.map_extra)
    return syscall.raw_bpf(Cmd.MAP_CREATE, attr)


def raw_elem(fd: int, cmd: Cmd, key: bytes | None, value: bytes | None, flags: int = 0,
             value_size: int = 0) -> tuple[int, bytes]:
    """One element command with optional key and value buffers: (0 or -errno, value bytes)."""
    from pybpf.kernel import syscall

    kbuf = ctypes.create_string_buffer(key, len(key)) if key is not None else None
    vbuf = None
    if value is not None or value_size:
        vbuf = ctypes.create_string_buffer(value if value is not None else b"",
                                           max(value_size, len(value or b""), 1))
    attr = MapElemAttr(map_fd=fd, key=ctypes.addressof(kbuf) if kbuf is not None else 0,
                       value=ctypes.addressof(vbuf) if vbuf is not None else 0, flags=flags)
    rc = syscall.raw_bpf(cmd, attr)
    return (min(rc, 0), vbuf.raw if vbuf is not None else b"")


def outcome(fn, *args, **kwargs) -> tuple[str, Any]:
    try:
        return ("ok", fn(*args, **kwargs))
    except MapError as exc:
        return ("err", exc.errno)


def kernel_outcome(fn, *args, **kwargs) -> tuple[str, Any]:
    """KernelMap answers None for ENOENT on lookup and get_next_key: make that an error."""
    result = outcome(fn, *args, **kwargs)
    if result == ("ok", None) and fn.__name__ in ("lookup", "get_next_key", "lookup_and_delete",
                                                  "pop", "peek"):
        return ("err", ENOENT)
    return result


def apply(m: Any, op: tuple, kernel: bool) -> tuple[str, Any]:
    """Run ``op`` = (name, *args) on a pybpf map or a KernelMap."""
    name, *args = op
    run = kernel_outcome if kernel else outcome
    if name == "update":
        key, value, flags = args
        return run(m.update, key, value, flags)
    if name == "lookup":
        return run(m.lookup, args[0])
    if name == "delete":
        return run(m.delete, args[0])
    if name == "next":
        return run(m.get_next_key, args[0])
    if name == "lookup_and_delete":
        return run(m.lookup_and_delete, args[0])
    if name == "push":
        return run(m.push, args[0], args[1])
    if name == "pop":
        return run(m.pop)
    if name == "peek":
        return run(m.peek)
    raise AssertionError(name)


def contents(m: Any) -> dict:
    return dict(m.items())


def key_bytes(k: int | None, size: int) -> bytes | None:
    return None if k is None else k.to_bytes(size, "little")


class KernelRingReader:
    """Consume a kernel ring buffer through its mmap'd pages, as libbpf's ringbuf.c does:
    the consumer page (read-write) at offset 0, the producer page and twice-mapped data after."""

    def __init__(self, fd: int, size: int):
        import mmap

        page = mmap.PAGESIZE
        self.size = size
        self.cons = mmap.mmap(fd, page, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=0)
        self.prod = mmap.mmap(fd, page + 2 * size, mmap.MAP_SHARED, mmap.PROT_READ, offset=page)
        self.page = page

    def close(self) -> None:
        self.cons.close()
        self.prod.close()

    def __iter__(self):
        import struct

        while True:
            cons = struct.unpack_from("<Q", self.cons, 0)[0]
            prod = struct.unpack_from("<Q", self.prod, 0)[0]
            if cons >= prod:
                return
            off = self.page + (cons & (self.size - 1))
            length = struct.unpack_from("<I", self.prod, off)[0]
            if length & (1 << 31):
                return
            size = length & ~(1 << 30)
            data = bytes(self.prod[off + 8: off + 8 + size])
            struct.pack_into("<Q", self.cons, 0, cons + ((size + 8 + 7) & ~7))
            if not length & (1 << 30):
                yield data


class KernelPerfBuffer:
    """One CPU's ``PERF_COUNT_SW_BPF_OUTPUT`` event and its mmap'd sample ring, read the way
    libbpf's perf_buffer does: PERF_RECORD_SAMPLE records carrying PERF_SAMPLE_RAW data."""

    PAGES = 8

    def __init__(self, cpu: int):
        import mmap
        import struct

        libc = ctypes.CDLL(None, use_errno=True)
        # struct perf_event_attr, PERF_ATTR_SIZE_VER0 (64 bytes): software BPF output events,
        # sampled every event, raw sample data, wake up on every event
        attr = struct.pack("<IIQQQQQII8x", 1, 64, 10, 1, 1 << 10, 0, 0, 1, 0)
        buf = ctypes.create_string_buffer(attr, 64)
        fd = libc.syscall(298, buf, -1, cpu, -1, 8)   # perf_event_open, PERF_FLAG_FD_CLOEXEC
        if fd < 0:
            raise OSError(ctypes.get_errno(), "perf_event_open")
        self.fd = fd
        self.page = mmap.PAGESIZE
        self.ring = mmap.mmap(fd, (1 + self.PAGES) * self.page, mmap.MAP_SHARED,
                              mmap.PROT_READ | mmap.PROT_WRITE)

    def close(self) -> None:
        self.ring.close()
        os.close(self.fd)

    def samples(self) -> list[bytes]:
        import struct

        head, tail = struct.unpack_from("<QQ", self.ring, 1024)
        size = self.PAGES * self.page
        out = []
        while tail < head:
            off = self.page + tail % size
            rtype, _misc, rsize = struct.unpack_from("<IHH", self.ring, off)
            record = bytes(self.ring[off: off + rsize]) if off + rsize <= len(self.ring) else \
                bytes(self.ring[off:]) + bytes(self.ring[self.page: self.page + rsize -
                                                          (len(self.ring) - off)])
            if rtype == 9:   # PERF_RECORD_SAMPLE: u32 size, then the raw bytes
                raw = struct.unpack_from("<I", record, 8)[0]
                out.append(record[12: 12 + raw])
            tail += rsize
        struct.pack_into("<Q", self.ring, 1032, tail)
        return out
