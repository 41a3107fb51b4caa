"""Run a compiled script in the kernel: load, attach, stream events, print maps at exit.

The path is bpftrace's: maps created first, every probe's program loaded with them, BEGIN run
once before the others attach and END once after they detach (both as raw_tracepoint programs
through BPF_PROG_TEST_RUN, which runs them in this process), events read from one BPF ring
buffer, maps printed at exit.

Start-up is a feature (bpftrace's is the target), so a run starts from the script's *plan*
(:mod:`.plan`: bytecode, maps, attach points as plain data), cached on disk: a script run again
imports neither the parser nor LLVM nor the ELF reader, and loads its programs with one
BPF_PROG_LOAD each through the kernel engine's bpf(2) door. Anything unusual takes the full
road: a refused probe is compiled again and loaded through :func:`pybpf.kernel.load_program`
with its BTF, which either loads it (a program that needs its BTF) or says why the kernel
refuses it at the script line (:func:`.build.load_with_engine`).

Attachment goes through the kernel engine (:mod:`pybpf.kernel.attach`): tracepoints and
software/profile events through perf_event_open(2), uprobes through the ``uprobe`` PMU. Every
file descriptor is closed on exit, Ctrl-C included, so nothing stays attached.

``PYBPF_TRACE_TIMINGS=1`` prints how long each start-up step took on stderr.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Callable, TextIO

from .events import (EV_CAT, EV_CLEAR, EV_EXIT, EV_JOIN, EV_PRINT, EV_PRINTF, EV_TIME,
                     EV_ZERO, JOIN_ARGNUM, JOIN_ARGSIZE)

_TIME_UNITS = {"s": 10**9, "ms": 10**6, "us": 10**3}
#: bpftrace's short names for software events, mapped to the kernel's
_SOFTWARE_ALIASES = {"cpu": "cpu-clock", "faults": "page-faults", "cs": "context-switches",
                     "migrations": "cpu-migrations"}


def __getattr__(name: str):
    # the compiler side, for callers of the former single module (``runtime.compile_script``)
    if name in ("compile_script", "CompiledScript", "MAX_MAP_ENTRIES"):
        from . import build
        return getattr(build, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class Timings:
    """Start-up steps and their durations (``PYBPF_TRACE_TIMINGS=1`` prints them)."""

    def __init__(self) -> None:
        self.enabled = bool(os.environ.get("PYBPF_TRACE_TIMINGS"))
        self.last = time.perf_counter()
        self.steps: list[tuple[str, float]] = []
        cli = sys.modules.get("pybpf.cli")
        if getattr(cli, "STARTED", None) is not None:
            # from the command's start: argument parsing and pybpf's own imports
            self.steps.append(("command", self.last - cli.STARTED))

    def mark(self, step: str) -> None:
        now = time.perf_counter()
        self.steps.append((step, now - self.last))
        self.last = now

    def report(self) -> None:
        if self.enabled:
            parts = "  ".join(f"{s} {d * 1000:.1f}" for s, d in self.steps)
            sys.stderr.write(f"pybpf trace timings (ms): {parts}\n")


def get_plan(source: str, filename: str, timings: Timings | None = None) -> dict:
    """The script's plan, from the cache or compiled now.

    A compilation is checked by pybpf's verifier before anything is loaded, and its verdicts
    go into the plan: a kernel refusal is then explained at script level. A cache hit (the same
    script, pybpf and kernel) reuses the stored verdicts instead of verifying again."""
    from . import plan

    where = plan.cache_dir()
    path = None
    if where is not None:
        path = os.path.join(where, plan.cache_key(source, filename) + ".plan")
        found = plan.read(path)
        if found is not None and plan.wildcards_hold(found):
            if timings:
                timings.mark("cache-hit")
            return found
    # LLVM and the verifier load in a child while this process parses and generates IR
    from .worker import Worker

    worker = Worker(verifier=True)
    from .build import compiled_plan

    made = compiled_plan(source, filename, worker, timings.mark if timings else lambda s: None,
                         _import_session)
    if path is not None:
        plan.write(path, made)
    return made


def _import_session() -> None:
    """Import what starting a session needs, while the LLVM worker compiles (a cache miss):
    the two overlap."""
    from ..kernel import attrs, perf, ringbuf, syscall, uapi  # noqa: F401
    from ..kernel.attach import _perf_link  # noqa: F401
    from . import output  # noqa: F401


class _Loaded:
    """A loaded probe program: the fd the attach functions need, owned until :meth:`close`."""

    def __init__(self, fd: int, info: dict, owner=None):
        self.fd = fd
        self.name = info["name"]
        self.prog_type = info["prog_type"]
        self.info = info
        self.owner = owner  # a KernelProgram that owns the fd (loaded by the engine)

    def close(self) -> None:
        if self.fd >= 0:
            if self.owner is not None:
                self.owner.close()
            else:
                os.close(self.fd)
            self.fd = -1


class _RingMap:
    """What :class:`pybpf.kernel.ringbuf.RingBuffer` reads of a map."""

    def __init__(self, fd: int, max_entries: int):
        self.fd, self.max_entries, self.type, self.name = fd, max_entries, "ringbuf", "events"


class Session:
    """A running script: maps, loaded programs, attachments, the event stream."""

    def __init__(self, plan: dict, out: TextIO = sys.stdout, *, source: str = "",
                 timings: Timings | None = None):
        self.plan = plan
        self.out = out
        self.source = source
        self.timings = timings or Timings()
        self.map_fds: list[int] = []
        self._kernel_maps: list | None = None   # KernelMap wrappers, made when needed
        self.loaded: list[_Loaded] = []
        self.links: list = []
        self.ringbuf = None
        self.exited = False
        self._meta = None
        self._symbols = None

    # --- start-up ---------------------------------------------------------------------------

    def start(self) -> None:
        try:
            self._create_maps()
            self.timings.mark("maps")
            for index, info in enumerate(self.plan["programs"]):
                self.loaded.append(self._load(index, info))
            self.timings.mark("load")
            from ..kernel.ringbuf import RingBuffer

            self._set_start_time()
            _, _, _, _, _, ring_size = self.plan["maps"][0]
            self.ringbuf = RingBuffer(_RingMap(self.map_fds[0], ring_size))
            n = len(self.loaded)
            self.out.write(f"Attaching {n} probe{'s' * (n != 1)}...\n")
            self.out.flush()
            self._run_special("BEGIN")
            for prog in self.loaded:
                if prog.info["provider"] not in ("BEGIN", "END"):
                    self._attach(prog)
            self.timings.mark("attach")
        except BaseException:
            self.close()
            raise

    def _create_maps(self) -> None:
        from ..errors import KernelError, KernelUnsupported
        from ..kernel import syscall, uapi
        from ..kernel.attrs import MapCreateAttr

        for name, type_name, kind, key, value, entries in self.plan["maps"]:
            attr = MapCreateAttr(map_type=kind, key_size=key, value_size=value,
                                 max_entries=entries, map_name=_object_name(name))
            try:
                self.map_fds.append(syscall.bpf(uapi.Cmd.MAP_CREATE, attr))
            except KernelUnsupported:
                raise
            except KernelError:
                # the kernel engine says why, in its words (or manages where this did not)
                self._adopt_engine_map(name, type_name, key, value, entries)

    def _adopt_engine_map(self, name, type_name, key, value, entries) -> None:
        from ..kernel import KernelMap
        from ..program import MapSpec

        kmap = KernelMap.create(MapSpec(name, type_name, key, value, entries))
        self.map_fds.append(os.dup(kmap.fd))
        kmap.close()

    def _set_start_time(self) -> None:
        """``elapsed`` counts from here: the start map's one slot holds CLOCK_MONOTONIC."""
        import ctypes

        from ..kernel import syscall, uapi
        from ..kernel.attrs import MapElemAttr

        key = ctypes.create_string_buffer(4)
        value = ctypes.create_string_buffer(time.monotonic_ns().to_bytes(8, "little"), 8)
        syscall.bpf(uapi.Cmd.MAP_UPDATE_ELEM,
                    MapElemAttr(map_fd=self.map_fds[1], key=ctypes.addressof(key),
                                value=ctypes.addressof(value)))

    def _load(self, index: int, info: dict) -> _Loaded:
        """BPF_PROG_LOAD of the plan's bytecode, maps patched in by fd. A refusal (or a kfunc,
        which needs its kernel function's BTF id) goes through the kernel engine instead."""
        import ctypes

        from ..errors import KernelError
        from ..kernel import syscall, uapi
        from ..kernel.attrs import ProgLoadAttr
        from .plan import patched_insns

        extra = {}
        if info["provider"] in ("kfunc", "kretfunc"):
            extra = self._fentry_attrs(info)
        code = patched_insns(info, self.map_fds)
        code_buf = ctypes.create_string_buffer(code, len(code))
        lic = ctypes.create_string_buffer(info["license"].encode())
        kern_version = 0
        if info["prog_type"] == "kprobe":
            from ..kernel.features import kernel_version_code
            kern_version = kernel_version_code()
        attr = ProgLoadAttr(prog_type=info["ptype"], insn_cnt=len(code) // 8,
                            insns=ctypes.addressof(code_buf), license=ctypes.addressof(lic),
                            kern_version=kern_version, prog_name=_object_name(info["name"]),
                            **extra)
        try:
            return _Loaded(syscall.bpf(uapi.Cmd.PROG_LOAD, attr), info)
        except KernelError:
            # refused (an EPERM here is about this program: the maps were allowed) -- the
            # kernel engine loads it again with its BTF and a log, and says why
            pass
        from .build import load_with_engine

        verdicts = self.plan.get("verdicts") or [None] * len(self.plan["programs"])
        engine_prog = load_with_engine(self.source, self.plan["source_name"], index,
                                       self.kernel_maps(), verdicts[index])
        return _Loaded(engine_prog.fd, info, owner=engine_prog)

    @staticmethod
    def _fentry_attrs(info: dict) -> dict:
        """fentry/fexit programs are bound at load time to the function's BTF id."""
        from ..btf.parser import load_vmlinux
        from ..kernel import uapi

        func = load_vmlinux().find_one(info["func"], "func")
        kind = "trace_fentry" if info["provider"] == "kfunc" else "trace_fexit"
        return {"expected_attach_type": int(uapi.attach_type(kind)), "attach_btf_id": func.id}

    def _run_special(self, which: str) -> None:
        for prog in self.loaded:
            if prog.info["provider"] == which:
                _run_once(prog.fd)
        self.poll()

    def _attach(self, prog: _Loaded) -> None:
        """Attach through pybpf's kernel engine; every attachment is a Link closed on exit."""
        from .. import errors
        from ..kernel import attach

        info = prog.info
        p, raw = info["provider"], info["raw"]
        unit, freq = info["unit"], info["freq"]
        if p == "tracepoint":
            link = attach.attach_tracepoint(prog, info["target"], info["func"])
        elif p == "rawtracepoint":
            link = attach.attach_raw_tracepoint(prog, info["func"])
        elif p in ("kfunc", "kretfunc"):
            # fentry/fexit are bound at load time; BPF_RAW_TRACEPOINT_OPEN without a name
            # attaches them (the fd is the link)
            from ..kernel import syscall, uapi
            from ..kernel.attrs import RawTracepointOpenAttr
            from ..kernel.link import Link

            fd = syscall.bpf(uapi.Cmd.RAW_TRACEPOINT_OPEN,
                             RawTracepointOpenAttr(name=0, prog_fd=prog.fd))
            link = Link(p, info["func"], fd=fd, program=prog)
        elif p in ("uprobe", "uretprobe"):
            link = attach.attach_uprobe(prog, info["target"], info["func"],
                                        retprobe=p == "uretprobe")
        elif p in ("kprobe", "kretprobe"):
            link = attach.attach_kprobe(prog, info["func"], retprobe=p == "kretprobe")
        elif p == "profile":
            if unit == "hz":
                link = attach.attach_perf_event(prog, "cpu-clock", frequency=freq)
            else:
                link = attach.attach_perf_event(prog, "cpu-clock",
                                                period=freq * _TIME_UNITS[unit] // 1000)
        elif p == "software":
            event = _SOFTWARE_ALIASES.get(info["target"], info["target"])
            link = attach.attach_perf_event(prog, event, period=freq or 1000)
        elif p == "interval":
            # bpftrace's interval fires on one CPU only: one cpu-clock event on the first CPU
            from ..kernel import perf
            from ..kernel.attach._perf_link import perf_link

            period = 10**9 // freq if unit == "hz" else freq * _TIME_UNITS[unit]
            attr = perf.PerfEventAttr(type=perf.TYPE_SOFTWARE,
                                      config=perf.SOFTWARE_EVENTS["cpu-clock"],
                                      sample_period=period)
            pfd = perf.perf_event_open(attr, pid=-1, cpu=perf.online_cpus()[0],
                                       what=f"interval {raw}")
            link = perf_link(prog, pfd, "perf_event", raw)
        else:
            raise errors.KernelError(f"cannot attach {raw}: {p} probes are not supported")
        self.links.append(link)

    # --- events and maps --------------------------------------------------------------------

    def kernel_maps(self) -> list:
        """The maps as :class:`pybpf.kernel.KernelMap` objects (made on first use; they own
        the fds from then on)."""
        if self._kernel_maps is None:
            from ..kernel import KernelMap
            from ..program import MapSpec

            self._kernel_maps = [KernelMap(fd, MapSpec(m[0], m[1], m[3], m[4], m[5]))
                                 for fd, m in zip(self.map_fds, self.plan["maps"])]
        return self._kernel_maps

    @property
    def meta(self):
        if self._meta is None:
            from .plan import load_meta
            self._meta = load_meta(self.plan)
        return self._meta

    @property
    def symbols(self):
        if self._symbols is None:
            from .symbols import Symbolizer
            self._symbols = Symbolizer(self._stack_frames, self.meta[1])
        return self._symbols

    def poll(self) -> None:
        for record in self.ringbuf.drain():
            self._event(record)

    def _event(self, record: bytes) -> None:
        import struct

        from . import output

        kind, ident = struct.unpack_from("<QQ", record)
        _, formats, _ = self.meta
        if kind == EV_PRINTF:
            fmt = formats[ident]
            args = output.decode_args(record[16:], fmt.arg_types, self.symbols)
            self.out.write(output.format_printf(fmt.fmt, args))
        elif kind == EV_JOIN:  # the strings up to the first empty one, delimited
            parts = []
            for i in range(JOIN_ARGNUM):
                at = 16 + i * JOIN_ARGSIZE
                text = bytes(record[at:at + JOIN_ARGSIZE]).split(b"\0", 1)[0]
                if not text:
                    break
                parts.append(text.decode(errors="replace"))
            self.out.write(formats[ident].fmt.join(parts) + "\n")
        elif kind == EV_CAT:  # cat(): the file named by the formatted path, as it is
            fmt = formats[ident]
            path = output.format_printf(fmt.fmt, output.decode_args(record[16:],
                                                                    fmt.arg_types,
                                                                    self.symbols))
            try:
                with open(path, "rb") as fh:
                    self.out.write(fh.read().decode(errors="replace"))
            except OSError as exc:
                sys.stderr.write(f"pybpf: cat(): cannot read {path}: {exc.strerror}\n")
        elif kind == EV_TIME:
            self.out.write(output.format_time(formats[ident].fmt))
        elif kind == EV_EXIT:
            self.exited = True
        elif kind == EV_PRINT:  # print(@map, top, div)
            top, div = struct.unpack_from("<QQ", record, 16)
            self._print_map(ident, top=top, div=div)
        elif kind in (EV_CLEAR, EV_ZERO):
            km = self.kernel_maps()[ident]
            # an array's elements cannot be deleted: bpftrace zeroes them on clear()
            zero = kind == EV_ZERO or km.type.endswith("array")
            for k in list(km.keys()):
                if zero:
                    km.update(k, bytes(km.value_size))  # every CPU's slot
                else:
                    km.delete(k)
        self.out.flush()

    def _stack_frames(self, stack_id: int) -> list[int]:
        import struct

        stacks = self.kernel_maps()[self.meta[2]]
        try:
            raw = stacks.lookup(struct.pack("<I", stack_id))
        except Exception:  # the id was evicted or never stored: print no frames
            return []
        return list(struct.unpack(f"<{len(raw) // 8}Q", bytes(raw)))

    def _print_map(self, index: int, *, top: int = 0, div: int = 0) -> None:
        from . import output

        info = next(i for i in self.meta[0].values() if i.index == index)
        km = self.kernel_maps()[index]
        if km.percpu:  # aggregations: one value per CPU, merged as bpftrace merges them
            entries = [(bytes(k), output.merge_percpu(info, [bytes(x) for x in v]))
                       for k, v in km.items()]
        else:
            entries = [(bytes(k), bytes(v)) for k, v in km.items()]
        text = output.format_map(info, entries, self.symbols, top=top, div=div)
        if text:
            self.out.write(text)

    def print_all_maps(self) -> None:
        self.out.write("\n\n")
        for info in sorted(self.meta[0].values(), key=lambda m: m.name):
            self._print_map(info.index)
        self.out.flush()

    # --- the end ----------------------------------------------------------------------------

    def detach(self) -> None:
        for link in self.links:
            link.close()
        self.links.clear()

    def close(self) -> None:
        self.detach()
        if self.ringbuf is not None:
            self.ringbuf.close()
            self.ringbuf = None
        for prog in self.loaded:
            prog.close()
        self.loaded.clear()
        if self._kernel_maps is not None:
            for m in self._kernel_maps:
                m.close()
        else:
            for fd in self.map_fds:
                os.close(fd)
        self._kernel_maps = None
        self.map_fds.clear()


def _object_name(name: str) -> bytes:
    """The kernel accepts ``[A-Za-z0-9_.]`` in object names, at most 15 characters (as
    :func:`pybpf.kernel.maps.sanitize_name`, without importing the map module)."""
    return "".join(c if c.isascii() and (c.isalnum() or c in "_.") else "_"
                   for c in name)[:15].encode()


def _run_once(fd: int) -> None:
    """BPF_PROG_TEST_RUN of a raw_tracepoint program: no data, no repeat (the kernel refuses
    both for this type), run once on this CPU in this process."""
    from ..kernel import syscall, uapi
    from ..kernel.attrs import TestRunAttr

    syscall.bpf(uapi.Cmd.PROG_TEST_RUN, TestRunAttr(prog_fd=fd))


class _Child:
    """The traced command (``-c``), started with posix_spawn: no fork of this process, no
    :mod:`subprocess` import on the start-up path. Our fds are close-on-exec (bpf(2) and
    perf_event_open make them so), so the command inherits none of them."""

    def __init__(self, command: list[str]):
        self.returncode: int | None = None
        try:
            self.pid = os.posix_spawnp(command[0], command, os.environ)
        except OSError as exc:
            from ..errors import UsageError
            raise UsageError(f"cannot run {command[0]}: {exc.strerror}") from None

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def terminate_and_wait(self) -> None:
        if self.poll() is None:
            import signal
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            _, status = os.waitpid(self.pid, 0)
            self.returncode = os.waitstatus_to_exitcode(status)


def run(source: str, filename: str = "<script>", *, command: list[str] | None = None,
        out: TextIO = sys.stdout, timeout: float | None = None,
        on_start: Callable[[], None] | None = None) -> int:
    """Compile (or take from the cache), load and run a script until exit(), Ctrl-C,
    ``command`` ending or ``timeout``.

    Returns the exit status (the command's, when one is run)."""
    import signal

    timings = Timings()
    plan = get_plan(source, filename, timings)
    session = Session(plan, out=out, source=source, timings=timings)
    try:
        session.start()
    except BaseException:
        timings.report()
        raise
    status = 0
    child = None
    interrupted = False
    old_handler = signal.getsignal(signal.SIGINT)

    def on_sigint(signum, frame):
        nonlocal interrupted
        interrupted = True

    try:
        signal.signal(signal.SIGINT, on_sigint)
    except ValueError:  # not the main thread
        pass
    try:
        if command:
            child = _Child(command)
            timings.mark("spawn")
        timings.report()
        if on_start is not None:
            on_start()
        deadline = None if timeout is None else time.monotonic() + timeout
        while not session.exited and not interrupted:
            session.poll()
            if child is not None and child.poll() is not None:
                status = child.returncode
                break
            if deadline is not None and time.monotonic() >= deadline:
                break
            session.ringbuf.poll(0.01 if child is not None else 0.05)
        session.detach()
        session.poll()
        session._run_special("END")
        session.print_all_maps()
    finally:
        try:
            signal.signal(signal.SIGINT, old_handler)
        except ValueError:
            pass
        if child is not None:
            child.terminate_and_wait()
        session.close()
    return status
