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

import ctypes
import errno
import mmap
import os
import signal
import struct
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, TextIO

from .. import isa
from ..errors import KernelError
from ..program import MapSpec, Program
from . import ast, codegen, output, probes
from .parser import TraceSyntaxError, parse

_libc = ctypes.CDLL(None, use_errno=True)
_SYS_PERF_EVENT_OPEN = 298  # x86_64
PERF_TYPE_HARDWARE, PERF_TYPE_SOFTWARE, PERF_TYPE_TRACEPOINT = 0, 1, 2
PERF_COUNT_SW_CPU_CLOCK = 0
PERF_EVENT_IOC_ENABLE = 0x2400
PERF_EVENT_IOC_DISABLE = 0x2401
PERF_EVENT_IOC_SET_BPF = 0x40042408
PERF_FLAG_FD_CLOEXEC = 8
_SOFTWARE_EVENTS = {"cpu-clock": 0, "cpu": 0, "task-clock": 1, "page-faults": 2, "faults": 2,
                    "context-switches": 3, "cs": 3, "cpu-migrations": 4, "migrations": 4,
                    "minor-faults": 5, "major-faults": 6, "alignment-faults": 7,
                    "emulation-faults": 8, "dummy": 9, "bpf-output": 10}
MAX_MAP_ENTRIES = 4096  # bpftrace's default map size


class _PerfEventAttr(ctypes.Structure):
    _fields_ = [("type", ctypes.c_uint32), ("size", ctypes.c_uint32),
                ("config", ctypes.c_uint64), ("sample_period", ctypes.c_uint64),
                ("sample_type", ctypes.c_uint64), ("read_format", ctypes.c_uint64),
                ("flags", ctypes.c_uint64), ("wakeup_events", ctypes.c_uint32),
                ("bp_type", ctypes.c_uint32), ("config1", ctypes.c_uint64),
                ("config2", ctypes.c_uint64), ("branch_sample_type", ctypes.c_uint64),
                ("sample_regs_user", ctypes.c_uint64), ("sample_stack_user", ctypes.c_uint32),
                ("clockid", ctypes.c_int32), ("sample_regs_intr", ctypes.c_uint64),
                ("aux_watermark", ctypes.c_uint32), ("sample_max_stack", ctypes.c_uint16),
                ("reserved", ctypes.c_uint16), ("aux_sample_size", ctypes.c_uint32),
                ("reserved2", ctypes.c_uint32), ("sig_data", ctypes.c_uint64),
                ("config3", ctypes.c_uint64)]


_FLAG_FREQ = 1 << 10


def _perf_event_open(attr: _PerfEventAttr, pid: int, cpu: int, what: str) -> int:
    attr.size = ctypes.sizeof(_PerfEventAttr)
    fd = _libc.syscall(_SYS_PERF_EVENT_OPEN, ctypes.byref(attr), pid, cpu, -1,
                       PERF_FLAG_FD_CLOEXEC)
    if fd < 0:
        err = ctypes.get_errno()
        raise KernelError(f"cannot attach {what}: perf_event_open: {os.strerror(err)}",
                          errno=err, command="perf_event_open")
    return fd


def _ioctl(fd: int, request: int, arg: int, what: str) -> None:
    if _libc.ioctl(fd, ctypes.c_ulong(request), ctypes.c_ulong(arg)) < 0:
        err = ctypes.get_errno()
        raise KernelError(f"cannot attach {what}: ioctl: {os.strerror(err)}", errno=err,
                          command="ioctl")


def _online_cpus() -> list[int]:
    try:
        text = open("/sys/devices/system/cpu/online").read().strip()
    except OSError:
        return list(range(os.cpu_count() or 1))
    cpus: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        cpus.extend(range(int(lo), int(hi or lo) + 1))
    return cpus


def uprobe_offset(path: str, symbol: str) -> int:
    """File offset of ``symbol`` in an ELF binary (what the uprobe PMU wants)."""
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    try:
        with open(path, "rb") as fh:
            elf = ELFFile(fh)
            for secname in (".symtab", ".dynsym"):
                sec = elf.get_section_by_name(secname)
                if sec is None:
                    continue
                for sym in sec.iter_symbols():
                    if sym.name == symbol and sym["st_value"] and \
                            sym["st_info"]["type"] in ("STT_FUNC", "STT_GNU_IFUNC"):
                        vaddr = sym["st_value"]
                        for seg in elf.iter_segments():
                            if seg["p_type"] == "PT_LOAD" and \
                                    seg["p_vaddr"] <= vaddr < seg["p_vaddr"] + seg["p_memsz"]:
                                return vaddr - seg["p_vaddr"] + seg["p_offset"]
                        return vaddr
    except (OSError, ELFError) as exc:
        raise TraceSyntaxError(f"cannot read {path}: {exc}") from None
    raise TraceSyntaxError(f"function '{symbol}' not found in {path}")


@dataclass
class CompiledScript:
    unit: codegen.CompileUnit
    programs: list[tuple[str, Program, ast.AttachPoint]]
    map_specs: list[MapSpec]
    object_code: bytes


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
            elif ap.provider in ("BEGIN", "END"):
                items.append((probe, ap, f"raw_tracepoint/{ap.provider}"))
            else:
                items.append((probe, ap, f"{probes.PROG_TYPES.get(ap.provider, 'x')}/"
                                         f"{ap.provider}"))
    return items, fields


def compile_script(source: str, filename: str = "<script>") -> CompiledScript:
    """Parse, type-check and compile a script to BPF programs (nothing is loaded)."""
    script = parse(source, filename)
    items, fields = _expand(script)
    for _, ap, _ in items:
        if ap.provider in ("kfunc", "kretfunc", "usdt", "watchpoint", "hardware"):
            raise TraceSyntaxError(f"{ap.provider} probes are not supported yet", filename,
                                   ap.line, ap.col)
    unit = codegen.Compiler(script, tracepoint_fields=fields).compile(items)
    obj = codegen.emit_object(unit.module)
    specs = [MapSpec("events", "ringbuf", 0, 0, codegen.RINGBUF_SIZE),
             MapSpec("start", "array", 4, 8, 1)]
    for info in sorted(unit.maps.values(), key=lambda m: m.index):
        specs.append(MapSpec(info.name[:15] or "_", "hash", info.key_size, info.value_size,
                             MAX_MAP_ENTRIES))
    programs = []
    sections = _text_sections(obj)
    for name, probe, ap, section in unit.functions:
        code = sections.get(section)
        if code is None:
            raise TraceSyntaxError(f"internal: section {section} missing from the object")
        prog_type = probes.PROG_TYPES[ap.provider]
        prog = Program(isa.decode(code), name=name, prog_type=prog_type, maps=specs,
                       section=section)
        programs.append((name, prog, ap))
    return CompiledScript(unit, programs, specs, obj)


def _text_sections(obj: bytes) -> dict[str, bytes]:
    """Code of each executable section (the object has no relocations: maps are pseudo
    map-index loads and helpers are called by id)."""
    import io

    from elftools.elf.elffile import ELFFile

    elf = ELFFile(io.BytesIO(obj))
    out: dict[str, bytes] = {}
    for sec in elf.iter_sections():
        if sec["sh_type"] == "SHT_PROGBITS" and sec["sh_flags"] & 0x4:  # SHF_EXECINSTR
            out[sec.name] = sec.data()
    return out


class RingBufferReader:
    """Consumer of a BPF ring buffer map through mmap (the kernel's ringbuf ABI)."""

    def __init__(self, map_fd: int, size: int):
        self.size = size
        page = mmap.PAGESIZE
        self._consumer = mmap.mmap(map_fd, page, mmap.MAP_SHARED,
                                   mmap.PROT_READ | mmap.PROT_WRITE, offset=0)
        self._data = mmap.mmap(map_fd, page + 2 * size, mmap.MAP_SHARED, mmap.PROT_READ,
                               offset=page)
        self._page = page

    def close(self) -> None:
        self._consumer.close()
        self._data.close()

    def drain(self) -> list[bytes]:
        out = []
        (cons,) = struct.unpack_from("<Q", self._consumer, 0)
        (prod,) = struct.unpack_from("<Q", self._data, 0)
        while cons < prod:
            pos = self._page + (cons & (self.size - 1))
            (hdr,) = struct.unpack_from("<I", self._data, pos)
            if hdr & (1 << 31):  # busy: the producer has not committed yet
                break
            length = hdr & ~((1 << 31) | (1 << 30))
            if not hdr & (1 << 30):  # not discarded
                out.append(bytes(self._data[pos + 8:pos + 8 + length]))
            cons += (length + 8 + 7) & ~7
            struct.pack_into("<Q", self._consumer, 0, cons)
        return out


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
    perf_fds: list[int] = field(default_factory=list)
    exited: bool = False

    def start(self) -> None:
        from .. import kernel

        try:
            for spec in self.compiled.map_specs:
                self.kernel_maps.append(kernel.KernelMap.create(spec))
            for name, prog, ap in self.compiled.programs:
                self.loaded.append((kernel.load_program(prog, maps=self.kernel_maps), ap))
            self.kernel_maps[1][0] = struct.pack("<Q", time.monotonic_ns())
            self.ringbuf = RingBufferReader(self.kernel_maps[0].fd, codegen.RINGBUF_SIZE)
            attachable = [x for x in self.loaded if x[1].provider not in ("BEGIN", "END")]
            print(f"Attaching {len(self.loaded)} probe{'s' * (len(self.loaded) != 1)}...",
                  file=self.out, flush=True)
            self._run_special("BEGIN")
            for prog, ap in attachable:
                self._attach(prog, ap)
        except BaseException:
            self.close()
            raise

    def _run_special(self, which: str) -> None:
        for prog, ap in self.loaded:
            if ap.provider == which:
                _run_once(prog.fd)
        self.poll()

    def _attach(self, prog, ap: ast.AttachPoint) -> None:
        what = ap.raw
        attrs: list[tuple[_PerfEventAttr, int, int]] = []
        if ap.provider == "tracepoint":
            # the program hangs off the tracepoint itself and runs on every CPU: one event
            a = _PerfEventAttr(type=PERF_TYPE_TRACEPOINT,
                               config=probes.tracepoint_id(ap.target, ap.func),
                               sample_period=1, wakeup_events=1)
            attrs.append((a, -1, _online_cpus()[0]))
        elif ap.provider in ("interval", "profile", "software"):
            if ap.provider == "software":
                config = _SOFTWARE_EVENTS.get(ap.target)
                if config is None:
                    raise TraceSyntaxError(f"unknown software event '{ap.target}'")
                period, freq = ap.freq or 1000, False
            else:
                config = PERF_COUNT_SW_CPU_CLOCK
                if ap.unit == "hz":
                    period, freq = ap.freq, True
                else:
                    period = ap.freq * {"s": 10**9, "ms": 10**6, "us": 10**3}[ap.unit]
                    freq = False
            cpus = _online_cpus()[:1] if ap.provider == "interval" else _online_cpus()
            for cpu in cpus:
                a = _PerfEventAttr(type=PERF_TYPE_SOFTWARE, config=config, sample_period=period,
                                   flags=_FLAG_FREQ if freq else 0)
                attrs.append((a, -1, cpu))
        elif ap.provider in ("uprobe", "uretprobe"):
            path = ap.target
            pmu = int(open("/sys/bus/event_source/devices/uprobe/type").read())
            offset = uprobe_offset(path, ap.func)
            self._keep = getattr(self, "_keep", [])
            cpath = ctypes.create_string_buffer(os.path.realpath(path).encode())
            self._keep.append(cpath)
            a = _PerfEventAttr(type=pmu, config=1 if ap.provider == "uretprobe" else 0,
                               sample_period=1, wakeup_events=1,
                               config1=ctypes.addressof(cpath), config2=offset)
            attrs.append((a, -1, 0))
            # a uprobe is process-wide; one event on any CPU sees every process
        elif ap.provider in ("kprobe", "kretprobe"):
            if not os.path.exists("/sys/bus/event_source/devices/kprobe/type"):
                raise KernelError(f"cannot attach {what}: this kernel has no kprobe support "
                                  "(CONFIG_KPROBES / CONFIG_KPROBE_EVENTS is off)")
            raise KernelError(f"cannot attach {what}: kprobes are not supported by pybpf yet")
        else:
            raise KernelError(f"cannot attach {what}: {ap.provider} is not supported")
        for attr, pid, cpu in attrs:
            fd = _perf_event_open(attr, pid, cpu, what)
            self.perf_fds.append(fd)
            _ioctl(fd, PERF_EVENT_IOC_SET_BPF, prog.fd, what)
            _ioctl(fd, PERF_EVENT_IOC_ENABLE, 0, what)

    def poll(self) -> None:
        for record in self.ringbuf.drain():
            self._event(record)

    def _event(self, record: bytes) -> None:
        kind, ident = struct.unpack_from("<QQ", record)
        unit = self.compiled.unit
        if kind == codegen.EV_PRINTF:
            fmt = unit.formats[ident]
            args = output.decode_args(record[16:], fmt.arg_types)
            self.out.write(output.format_printf(fmt.fmt, args))
        elif kind == codegen.EV_TIME:
            self.out.write(output.format_time(unit.formats[ident].fmt))
        elif kind == codegen.EV_EXIT:
            self.exited = True
        elif kind == codegen.EV_PRINT:
            self._print_map(ident)
        elif kind in (codegen.EV_CLEAR, codegen.EV_ZERO):
            km = self.kernel_maps[ident]
            keys = list(km.keys())
            for k in keys:
                if kind == codegen.EV_CLEAR:
                    km.delete(k)
                else:
                    km.update(k, bytes(km.value_size))
        self.out.flush()

    def _info_by_index(self, index: int) -> codegen.MapInfo:
        for info in self.compiled.unit.maps.values():
            if info.index == index:
                return info
        raise KeyError(index)

    def _print_map(self, index: int) -> None:
        info = self._info_by_index(index)
        km = self.kernel_maps[index]
        entries = [(bytes(k), bytes(v)) for k, v in km.items()]
        text = output.format_map(info, entries)
        if text:
            self.out.write(text)

    def print_all_maps(self) -> None:
        self.out.write("\n\n")
        for info in sorted(self.compiled.unit.maps.values(), key=lambda m: m.name):
            self._print_map(info.index)
        self.out.flush()

    def detach(self) -> None:
        for fd in self.perf_fds:
            try:
                _ioctl(fd, PERF_EVENT_IOC_DISABLE, 0, "")
            except KernelError:
                pass
            os.close(fd)
        self.perf_fds.clear()

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
    compiled = compile_script(source, filename)
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
            time.sleep(0.01)
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
