"""Run a compiled script in the kernel: load, attach, stream events, print maps at exit.

The path is bpftrace's: maps created first, every probe's program loaded with them (pybpf's
kernel engine), BEGIN run once before the others attach and END once after they detach (both
as raw_tracepoint programs through BPF_PROG_TEST_RUN, which runs them in this process),
events read from one BPF ring buffer, maps printed at exit.

Attachment uses perf_event_open(2): tracepoints and software/profile events per CPU, uprobes
through the ``uprobe`` PMU with the offset resolved from the binary's ELF symbol table. Every
file descriptor is closed on exit, Ctrl-C included, so nothing stays attached.
"""

from __future__ import annotations

import re
import signal
import struct
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, TextIO

from ..errors import KernelError
from ..kernel.ringbuf import RingBuffer
from ..program import MapSpec, Program
from . import ast, output, probes, types
from .parser import TraceSyntaxError, parse

MAX_MAP_ENTRIES = 4096  # bpftrace's default map size
_TIME_UNITS = {"s": 10**9, "ms": 10**6, "us": 10**3}
#: bpftrace's short names for software events, mapped to the kernel's
_SOFTWARE_ALIASES = {"cpu": "cpu-clock", "faults": "page-faults", "cs": "context-switches",
                     "migrations": "cpu-migrations"}


@dataclass
class CompiledScript:
    unit: types.CompileUnit
    programs: list[tuple[str, Program, ast.AttachPoint]]
    map_specs: list[MapSpec]
    object_code: bytes
    source_name: str = "<script>"


def _pybpf_verdict(prog: Program):
    """pybpf's verifier on one probe's program, before the kernel sees it (None when it
    cannot say: the kernel stays the judge, this only serves the explanation)."""
    try:
        from ..verifier import verify
        return verify(prog)
    except Exception:  # noqa: BLE001 - an explanation aid must never stop a trace
        return None


_LOG_INSN = re.compile(r"^(\d+): \(", re.M)


def _script_error(filename: str, prog: Program, ap: ast.AttachPoint, exc: KernelError,
                  verdict) -> TraceSyntaxError:
    """The kernel refused a probe: say where in the script, why, and pybpf's explanation."""
    pc = None
    if verdict is not None and not verdict.accepted and verdict.pc is not None:
        pc = verdict.pc
    else:
        hits = _LOG_INSN.findall(exc.log or "")
        pc = int(hits[-1]) if hits else None
    line, col = ap.line, ap.col
    where = prog.lines.get(pc) if pc is not None else None
    if where:
        m = re.match(r".*?:(\d+):", where)
        if m:
            line, col = int(m.group(1)), 1
    reason = (exc.log or exc.message).strip().splitlines()
    reason = [r for r in reason if not r.startswith("processed ")]
    message = f"the kernel's verifier refused probe {ap.raw}: {reason[-1] if reason else exc}"
    if verdict is not None and not verdict.accepted:
        try:
            explanation = str(verdict.explain())
        except Exception:  # noqa: BLE001
            explanation = verdict.error or ""
        if explanation:
            message += f"\n  pybpf: {explanation}"
    return TraceSyntaxError(message, filename, line, col)


def _expand(script: ast.Script):
    """(probe, attach point, section) per program; wildcards expanded; fields gathered."""
    items = []
    fields: dict[tuple[str, str], list] = {}
    for probe in script.probes:
        for ap in probe.attach_points:
            if ap.provider == "tracepoint":
                matches = probes.expand_tracepoints(ap.target, ap.func)
                if not matches:
                    raise TraceSyntaxError(f"no tracepoint matches {ap.raw}", script.filename,
                                           ap.line, ap.col)
                for cat, ev in matches:
                    one = ast.AttachPoint(ap.line, ap.col, "tracepoint", cat, ev,
                                          raw=f"tracepoint:{cat}:{ev}")
                    fields[(cat, ev)] = probes.tracepoint_fields(cat, ev)
                    items.append((probe, one, f"tracepoint/{cat}/{ev}"))
            elif ap.provider in ("uprobe", "uretprobe") and any(c in ap.func for c in "*?["):
                names = _matching_functions(ap, script)
                for fn in names:
                    one = ast.AttachPoint(ap.line, ap.col, ap.provider, ap.target, fn,
                                          raw=f"{ap.provider}:{ap.target}:{fn}")
                    items.append((probe, one, f"uprobe/{fn}"))
            elif ap.provider in ("BEGIN", "END"):
                items.append((probe, ap, f"raw_tracepoint/{ap.provider}"))
            elif ap.provider in ("kfunc", "kretfunc"):
                fields[("kfunc", ap.func)] = _kfunc_params(ap, script)
                one = ast.AttachPoint(ap.line, ap.col, ap.provider, "kfunc", ap.func, raw=ap.raw)
                kind = "fentry" if ap.provider == "kfunc" else "fexit"
                items.append((probe, one, f"{kind}/{ap.func}"))
            else:
                items.append((probe, ap, f"{probes.PROG_TYPES.get(ap.provider, 'x')}/"
                                         f"{ap.provider}"))
    return items, fields


def _matching_functions(ap: ast.AttachPoint, script: ast.Script) -> list[str]:
    """Function symbols of a binary matching a wildcard (``uprobe:/bin/bash:readl*``)."""
    import fnmatch

    from .symbols import _elf_symbols

    _, names, _ = _elf_symbols(ap.target)
    found = sorted({n for n in names if fnmatch.fnmatchcase(n, ap.func)})
    if not found:
        raise TraceSyntaxError(f"no function of {ap.target} matches '{ap.func}'",
                               script.filename, ap.line, ap.col)
    return found


def _kfunc_params(ap: ast.AttachPoint, script: ast.Script) -> list:
    """A kernel function's arguments by name, from the running kernel's BTF: fentry/fexit
    programs see them as an array of u64 in their context (the return value follows)."""
    from ..btf.parser import load_vmlinux
    from ..errors import BTFError

    try:
        btf = load_vmlinux()
        func = btf.find_one(ap.func, "func")
        proto = btf[func.type_id]
    except (BTFError, OSError) as exc:
        raise TraceSyntaxError(f"{ap.raw}: {exc}", script.filename, ap.line, ap.col) from None
    return [probes.TracepointField(p.name, "u64", 8 * i, 8, True)
            for i, p in enumerate(proto.params) if p.type_id]


def compile_script(source: str, filename: str = "<script>") -> CompiledScript:
    """Parse, type-check and compile a script to BPF programs (nothing is loaded)."""
    script = parse(source, filename)
    items, fields = _expand(script)
    # one ELF section per program: two probes on one hook must not share a section
    seen: dict[str, int] = {}
    for i, (probe, ap, section) in enumerate(items):
        n = seen.get(section, 0)
        seen[section] = n + 1
        if n:
            items[i] = (probe, ap, f"{section}.{n}")
    for _, ap, _ in items:
        if ap.provider in ("usdt", "watchpoint", "hardware"):
            raise TraceSyntaxError(f"{ap.provider} probes are not supported yet", filename,
                                   ap.line, ap.col)
    from . import codegen  # LLVM: imported only when a script is compiled

    unit = codegen.Compiler(script, tracepoint_fields=fields).compile(items)
    obj = codegen.emit_object(unit.ir_text())
    specs = [MapSpec("events", "ringbuf", 0, 0, types.RINGBUF_SIZE),
             MapSpec("start", "array", 4, 8, 1),
             MapSpec("stacks", "stack_trace", 4, 8 * types.MAX_STACK_FRAMES,
                     MAX_MAP_ENTRIES if unit.uses_stacks else 1)]
    for info in sorted(unit.maps.values(), key=lambda m: m.index):
        specs.append(MapSpec(info.name[:15] or "_", "hash", info.key_size, info.value_size,
                             MAX_MAP_ENTRIES))
    from ..elf import load_object

    # pybpf's own object loader reads the programs back, with BTF and the script's lines
    spec = load_object(obj, name=filename, core_target="local")
    programs = []
    for name, probe, ap, section in unit.functions:
        prog = spec.programs.get(name)
        if prog is None:
            raise TraceSyntaxError(f"internal: program {name} missing from the object")
        prog.maps = specs
        prog.license = "GPL"  # like bpftrace: tracing helpers are GPL-only
        prog.prog_type = probes.PROG_TYPES[ap.provider]
        prog.section = section
        programs.append((name, prog, ap))
    return CompiledScript(unit, programs, specs, obj, filename)


CACHE_ENV = "PYBPF_TRACE_CACHE"


def _cache_dir() -> str | None:
    """Where compiled scripts are kept: $PYBPF_TRACE_CACHE, else ~/.cache/pybpf/trace;
    PYBPF_TRACE_CACHE=0 turns the cache off."""
    import os

    where = os.environ.get(CACHE_ENV)
    if where == "0":
        return None
    if not where:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"),
                                                                ".cache")
        where = os.path.join(base, "pybpf", "trace")
    return where


def _cache_key(source: str, filename: str) -> str:
    """Everything a compilation depends on: the script, its name (it is in the line info),
    the kernel (tracepoint layouts, BTF) and pybpf's own code."""
    import hashlib
    import os
    from pathlib import Path

    from .. import __version__

    h = hashlib.sha256()
    for part in (source, filename, __version__, os.uname().release):
        h.update(part.encode() + b"\0")
    for path in sorted(Path(__file__).parent.glob("*.py")):
        st = path.stat()
        h.update(f"{path.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()


def cached_compile(source: str, filename: str = "<script>") -> CompiledScript:
    """:func:`compile_script`, remembered on disk: a script run again starts without LLVM.

    Only whole successful compilations are stored (written to a temporary file and renamed,
    so a concurrent reader never sees half a file); anything unreadable is compiled again."""
    import os
    import pickle
    import tempfile

    where = _cache_dir()
    if where is None:
        return compile_script(source, filename)
    path = os.path.join(where, _cache_key(source, filename) + ".pickle")
    try:
        with open(path, "rb") as fh:
            compiled = pickle.load(fh)
        if isinstance(compiled, CompiledScript):
            return compiled
    except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ImportError,
            IndexError, TypeError, ValueError):
        pass
    compiled = compile_script(source, filename)
    module, compiled.unit.module = compiled.unit.module, None  # llvmlite IR does not pickle
    try:
        os.makedirs(where, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=where, suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            pickle.dump(compiled, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only home: run without caching
    compiled.unit.module = module
    return compiled


def _run_once(fd: int) -> None:
    """BPF_PROG_TEST_RUN of a raw_tracepoint program: no data, no repeat (the kernel refuses
    both for this type), run once on this CPU in this process."""
    from ..kernel import syscall, uapi
    from ..kernel.attrs import TestRunAttr

    syscall.bpf(uapi.Cmd.PROG_TEST_RUN, TestRunAttr(prog_fd=fd))


@dataclass
class Session:
    """A running script: loaded programs, attachments, maps."""

    compiled: CompiledScript
    out: TextIO = sys.stdout
    kernel_maps: list = field(default_factory=list)
    loaded: list = field(default_factory=list)
    links: list = field(default_factory=list)
    exited: bool = False

    def start(self) -> None:
        from .. import kernel
        from .symbols import Symbolizer

        try:
            for spec in self.compiled.map_specs:
                self.kernel_maps.append(kernel.KernelMap.create(spec))
            for name, prog, ap in self.compiled.programs:
                self.loaded.append((self._load(kernel, prog, ap), ap))
            self.kernel_maps[1][0] = struct.pack("<Q", time.monotonic_ns())
            self.ringbuf = RingBuffer(self.kernel_maps[0])
            self.symbols = Symbolizer(self._stack_frames)
            attachable = [x for x in self.loaded if x[1].provider not in ("BEGIN", "END")]
            print(f"Attaching {len(self.loaded)} probe{'s' * (len(self.loaded) != 1)}...",
                  file=self.out, flush=True)
            self._run_special("BEGIN")
            for prog, ap in attachable:
                self._attach(prog, ap)
        except BaseException:
            self.close()
            raise

    def _load(self, kernel, prog: Program, ap: ast.AttachPoint):
        if ap.provider not in ("kfunc", "kretfunc"):
            try:
                return kernel.load_program(prog, maps=self.kernel_maps)
            except KernelError as exc:
                if exc.log:
                    # only now pybpf's verifier runs: its explanation names the script line
                    # (verifying every probe up front would double the start-up time)
                    raise _script_error(self.compiled.source_name, prog, ap, exc,
                                        _pybpf_verdict(prog)) from None
                raise
        # fentry/fexit: bound to the function's BTF id at load time
        from ..btf.parser import load_vmlinux

        func = load_vmlinux().find_one(ap.func, "func")
        kind = "trace_fentry" if ap.provider == "kfunc" else "trace_fexit"
        try:
            return kernel.load_program(prog, maps=self.kernel_maps, expected_attach_type=kind,
                                       attach_btf_id=func.id)
        except KernelError as exc:
            raise KernelError(f"cannot attach {ap.raw}: the kernel refused an "
                              f"{kind.split('_')[1]} program ({exc.message.splitlines()[0]}); "
                              "kfunc/kretfunc need BPF trampolines, which this kernel does not "
                              "allow", errno=exc.errno, log=exc.log) from None

    def _run_special(self, which: str) -> None:
        for prog, ap in self.loaded:
            if ap.provider == which:
                _run_once(prog.fd)
        self.poll()

    def _attach(self, prog, ap: ast.AttachPoint) -> None:
        """Attach through pybpf's kernel engine; every attachment is a Link closed on exit."""
        from ..kernel import attach, perf
        from ..kernel.attach._perf_link import perf_link

        p = ap.provider
        if p == "tracepoint":
            link = attach.attach_tracepoint(prog, ap.target, ap.func)
        elif p == "rawtracepoint":
            link = attach.attach_raw_tracepoint(prog, ap.func)
        elif p in ("kfunc", "kretfunc"):
            # fentry/fexit are bound at load time; BPF_RAW_TRACEPOINT_OPEN without a name
            # attaches them (the fd is the link)
            from ..kernel import syscall, uapi
            from ..kernel.attrs import RawTracepointOpenAttr
            from ..kernel.link import Link

            fd = syscall.bpf(uapi.Cmd.RAW_TRACEPOINT_OPEN,
                             RawTracepointOpenAttr(name=0, prog_fd=prog.fd))
            link = Link(p, ap.func, fd=fd, program=prog)
        elif p in ("uprobe", "uretprobe"):
            link = attach.attach_uprobe(prog, ap.target, ap.func, retprobe=p == "uretprobe")
        elif p in ("kprobe", "kretprobe"):
            link = attach.attach_kprobe(prog, ap.func, retprobe=p == "kretprobe")
        elif p == "profile":
            if ap.unit == "hz":
                link = attach.attach_perf_event(prog, "cpu-clock", frequency=ap.freq)
            else:
                link = attach.attach_perf_event(prog, "cpu-clock",
                                                period=ap.freq * _TIME_UNITS[ap.unit] // 1000)
        elif p == "software":
            event = _SOFTWARE_ALIASES.get(ap.target, ap.target)
            link = attach.attach_perf_event(prog, event, period=ap.freq or 1000)
        elif p == "interval":
            # bpftrace's interval fires on one CPU only: one cpu-clock event on the first CPU
            if ap.unit == "hz":
                period = 10**9 // ap.freq
            else:
                period = ap.freq * _TIME_UNITS[ap.unit]
            attr = perf.PerfEventAttr(type=perf.TYPE_SOFTWARE,
                                      config=perf.SOFTWARE_EVENTS["cpu-clock"],
                                      sample_period=period)
            pfd = perf.perf_event_open(attr, pid=-1, cpu=perf.online_cpus()[0],
                                       what=f"interval {ap.raw}")
            link = perf_link(prog, pfd, "perf_event", ap.raw)
        else:
            raise KernelError(f"cannot attach {ap.raw}: {p} probes are not supported")
        self.links.append(link)

    def poll(self) -> None:
        for record in self.ringbuf.drain():
            self._event(record)

    def _event(self, record: bytes) -> None:
        kind, ident = struct.unpack_from("<QQ", record)
        unit = self.compiled.unit
        if kind == types.EV_PRINTF:
            fmt = unit.formats[ident]
            args = output.decode_args(record[16:], fmt.arg_types, self.symbols)
            self.out.write(output.format_printf(fmt.fmt, args))
        elif kind == types.EV_TIME:
            self.out.write(output.format_time(unit.formats[ident].fmt))
        elif kind == types.EV_EXIT:
            self.exited = True
        elif kind == types.EV_PRINT:
            self._print_map(ident)
        elif kind in (types.EV_CLEAR, types.EV_ZERO):
            km = self.kernel_maps[ident]
            keys = list(km.keys())
            for k in keys:
                if kind == types.EV_CLEAR:
                    km.delete(k)
                else:
                    km.update(k, bytes(km.value_size))
        self.out.flush()

    def _stack_frames(self, stack_id: int) -> list[int]:
        stacks = self.kernel_maps[self.compiled.unit.stack_index]
        try:
            raw = stacks.lookup(struct.pack("<I", stack_id))
        except Exception:  # the id was evicted or never stored: print no frames
            return []
        return list(struct.unpack(f"<{len(raw) // 8}Q", bytes(raw)))

    def _info_by_index(self, index: int) -> types.MapInfo:
        for info in self.compiled.unit.maps.values():
            if info.index == index:
                return info
        raise KeyError(index)

    def _print_map(self, index: int) -> None:
        info = self._info_by_index(index)
        km = self.kernel_maps[index]
        entries = [(bytes(k), bytes(v)) for k, v in km.items()]
        text = output.format_map(info, entries, self.symbols)
        if text:
            self.out.write(text)

    def print_all_maps(self) -> None:
        self.out.write("\n\n")
        for info in sorted(self.compiled.unit.maps.values(), key=lambda m: m.name):
            self._print_map(info.index)
        self.out.flush()

    def detach(self) -> None:
        for link in self.links:
            link.close()
        self.links.clear()

    def close(self) -> None:
        self.detach()
        if getattr(self, "ringbuf", None) is not None:
            self.ringbuf.close()
            self.ringbuf = None
        for prog, _ in self.loaded:
            prog.close()
        self.loaded.clear()
        for m in self.kernel_maps:
            m.close()
        self.kernel_maps.clear()


def run(source: str, filename: str = "<script>", *, command: list[str] | None = None,
        out: TextIO = sys.stdout, timeout: float | None = None,
        on_start: Callable[[], None] | None = None) -> int:
    """Compile, load and run a script until exit(), Ctrl-C, ``command`` ending or ``timeout``.

    Returns the exit status (the command's, when one is run)."""
    compiled = cached_compile(source, filename)
    session = Session(compiled, out=out)
    session.start()
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
            child = subprocess.Popen(command)
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
        if child is not None and child.poll() is None:
            child.terminate()
            child.wait()
        session.close()
    return status
