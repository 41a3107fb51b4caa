"""``pybpf run``: load a program (.s, raw .bin or ELF .o) and run it on an engine.

The engines share one calling convention (DESIGN.md §3): the input data is passed as the
program's packet/memory (r1 = its address, r2 = its length in the interpreter; the kernel gets
it through BPF_PROG_TEST_RUN), and the result is the full 64-bit r0 (the kernel reports only
its low 32 bits). ``--repeat N`` runs N times inside the engine and reports the mean.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import click

from .. import isa
from ..errors import UsageError
from ..program import Program
from . import cli

ENGINES = ("interpreter", "jit", "kernel")


@dataclass
class RunResult:
    retval: int
    ns_per_run: float | None
    engine: str
    maps: dict[str, list[list[str]]] = field(default_factory=dict)
    trace_pipe: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"retval": self.retval, "ns_per_run": self.ns_per_run, "engine": self.engine,
                "maps": self.maps}


# --- loading ------------------------------------------------------------------------------------

def load_program(path: str, *, prog_type: str | None = None, section: str | None = None,
                 name: str | None = None) -> Program:
    """A Program from a ``.s`` file, an ELF object or raw bytecode (chosen by content)."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if raw[:4] == b"\x7fELF":
        program = _from_object(path, raw, section, name)
    elif p.suffix.lower() in (".s", ".asm") or (p.suffix.lower() != ".bin"
                                                 and _looks_like_text(raw)):
        try:
            from ..asm import assemble
        except ImportError as exc:
            raise UsageError(f"{path}: the assembler is not available ({exc})") from None
        program = assemble(raw.decode("utf-8", "replace"), filename=path)
    else:
        program = Program.from_bytes(raw, name=p.stem)
    if prog_type:
        program.prog_type = prog_type
    return program


def _looks_like_text(raw: bytes) -> bool:
    if not raw or len(raw) % 8:
        return bool(raw) and all(b in b"\t\n\r" or 32 <= b < 127 for b in raw[:4096])
    return False


@functools.lru_cache(maxsize=4)
def _object_spec(raw: bytes, path: str):
    """An object file read once per command: choosing the program and deciding whether it
    must run inside its whole object both need the spec."""
    from ..elf import load_object
    return load_object(raw, name=path)


def _from_object(path: str, raw: bytes, section: str | None, name: str | None) -> Program:
    obj = _object_spec(raw, path)
    programs = dict(obj.programs)
    if name is not None:
        if name not in programs:
            raise UsageError(f"{path}: no program named '{name}' (programs: "
                             f"{', '.join(programs) or 'none'})")
        return programs[name]
    if section is not None:
        found = [p for p in programs.values() if p.section == section]
        if len(found) != 1:
            raise UsageError(f"{path}: section '{section}' holds {len(found)} programs; "
                             "choose one with --program NAME")
        return found[0]
    if len(programs) != 1:
        raise UsageError(f"{path}: the object holds {len(programs)} programs "
                         f"({', '.join(programs) or 'none'}); choose one with --program NAME")
    return next(iter(programs.values()))


def parse_hex(text: str, what: str = "data") -> bytes:
    """Hex bytes, with or without spaces, an optional 0x prefix per byte group."""
    cleaned = re.sub(r"\s+|0x", "", text.strip().lower())
    if len(cleaned) % 2:
        raise UsageError(f"{what}: odd number of hex digits ({len(cleaned)})")
    try:
        return bytes.fromhex(cleaned)
    except ValueError:
        bad = next(c for c in cleaned if c not in "0123456789abcdef")
        raise UsageError(f"{what}: '{bad}' is not a hex digit") from None


# --- engines ------------------------------------------------------------------------------------

def _dump_maps(programs_maps: list[Any], specs: list[Any]) -> dict[str, list[list[str]]]:
    out: dict[str, list[list[str]]] = {}
    for spec, live in zip(specs, programs_maps):
        rows = []
        try:
            items = list(live.items())
        except Exception:  # a map type that cannot be iterated (ringbuf, ...)
            items = []
        for k, v in items:
            rows.append([_hex(k, spec.key_size), _hex(v, spec.value_size)])
        out[spec.name] = rows
    return out


def _hex(value: Any, size: int) -> str:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, int):
        return (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little").hex()
    if isinstance(value, (list, tuple)):
        return "".join(_hex(v, size // max(len(value), 1)) for v in value)
    # prog_array and map-in-map slots hold live programs and maps: show them by name (the
    # kernel engine shows their ids)
    name = getattr(value, "name", None)
    if isinstance(name, str):
        return f"<{name}>"
    return str(value)


def run_interpreter(program: Program, data: bytes, repeat: int = 1, *,
                    trace: Callable | None = None, budget: int | None = None,
                    helpers: dict | None = None, prog_type: str | None = None,
                    ctx: bytes | None = None, sandbox: bool = False) -> RunResult:
    """Without ``prog_type``, r1 = the data and r2 = its length (the bpf_conformance and uBPF
    convention); with it, r1 = that type's context built from the data (and ``ctx``) as
    BPF_PROG_TEST_RUN builds it. The program is verified first unless ``sandbox``."""
    from ..vm import DEFAULT_BUDGET, Interpreter

    vm = Interpreter(program, budget=budget or DEFAULT_BUDGET, helpers=helpers,
                     prog_type=prog_type, sandbox=sandbox)
    options = {"ctx": ctx} if ctx is not None else {}
    if trace is not None:
        r0, ns = vm.run(data, trace=trace, **options), None
    elif ctx is not None:
        r0, ns = vm.run(data, **options), None
    else:
        r0, ns = vm.time_runs(data, max(repeat, 1))
    return RunResult(r0, ns, "interpreter", _dump_maps(vm.maps, program.maps), vm.trace_pipe)


def run_jit(program: Program, data: bytes, repeat: int = 1, *,
            budget: int | None = None, helpers: dict | None = None,
            prog_type: str | None = None, ctx: bytes | None = None,
            emit: Callable[[str], None] | None = None, emit_kind: str | None = None,
            sandbox: bool = False) -> RunResult:
    """Like :func:`run_interpreter` on the LLVM JIT; ``emit_kind`` ("llvm" or "asm") hands the
    generated IR or machine code to ``emit`` before running."""
    try:
        from ..jit import JITProgram  # type: ignore[attr-defined]
    except ImportError:
        raise UsageError("engine 'jit' is not available yet") from None
    # a verified program runs as native code without run-time checks; a sandboxed one keeps
    # the inline bounds checks and the budget
    options: dict[str, Any] = {"sandbox": sandbox, "checked": sandbox}
    if budget:
        options["budget"] = budget
    if helpers:
        options["helpers"] = helpers
    if prog_type:
        options["prog_type"] = prog_type
    jp = JITProgram(program, **options)
    if emit is not None and emit_kind is not None:
        emit(jp.emit_llvm() if emit_kind == "llvm" else jp.emit_asm())
    run_options = {"ctx": ctx} if ctx is not None else {}
    if hasattr(jp, "time_runs"):
        r0, ns = jp.time_runs(data, repeat, **run_options)
    else:
        import time

        start = time.perf_counter_ns()
        for _ in range(max(repeat, 1)):
            r0 = jp.run(data)
        ns = (time.perf_counter_ns() - start) / max(repeat, 1)
    maps = getattr(jp, "maps", [])
    return RunResult(r0, ns, "jit", _dump_maps(maps, program.maps))


def run_kernel(program: Program, data: bytes, repeat: int = 1, *,
               ctx: bytes | None = None, sandbox: bool = False) -> RunResult:
    try:
        from .. import kernel
    except ImportError as exc:
        raise UsageError(f"engine 'kernel' is not available ({exc})") from None
    from ..errors import KernelError

    # BPF_PROG_TEST_RUN reports 32 bits; capture_r0 keeps the full 64-bit r0 the contract asks
    try:
        kp = kernel.load_program(program, capture_r0=True)
    except KernelError as exc:
        if not exc.log:
            raise
        from .verify import pybpf_explanation, side_by_side
        lines = [ln for ln in exc.log.splitlines() if ln and not ln.startswith(
            ("processed ", "verification "))]
        text = side_by_side(exc.log, lines[-1] if lines else exc.message,
                            pybpf_explanation(program, program.prog_type or "socket_filter"))
        raise KernelError(text, errno=exc.errno, command=exc.command, log=exc.log) from None
    with kp:
        res = kp.test_run(data, ctx=ctx, repeat=max(repeat, 1))
        maps = _dump_maps(getattr(kp, "maps", []), program.maps)
    r0 = res.r0 if res.r0 is not None else res.retval
    return RunResult(r0, float(res.duration_ns), "kernel", maps)


def needs_collection(path: str):
    """The object's spec when some map must be filled with the object's other programs or
    maps (prog_array tail-call tables, map-in-map): then a program only runs right inside its
    whole object, as libbpf loads it. None otherwise."""
    try:
        raw = Path(path).read_bytes()
    except OSError:
        return None
    if raw[:4] != b"\x7fELF":
        return None
    spec = _object_spec(raw, path)
    return spec if any(m.init_refs for m in spec.maps.values()) else None


def run_in_collection(spec, program: Program, engine: str, data: bytes, repeat: int = 1, *,
                      ctx: bytes | None = None, budget: int | None = None,
                      prog_type: str | None = None, sandbox: bool = False,
                      **_ignored) -> RunResult:
    """Run ``program`` of object ``spec`` with every map and program of the object live
    (pybpf.elf.collection), on the interpreter or in the kernel."""
    from ..elf.collection import KernelCollection, VMCollection

    name = program.name
    if engine == "kernel":
        with KernelCollection(spec) as coll:
            res = coll.programs[name].test_run(data, ctx=ctx, repeat=max(repeat, 1))
            maps = _dump_maps([coll.maps[m.name] for m in program.maps], program.maps)
        return RunResult(res.retval, float(res.duration_ns), "kernel", maps)
    if engine != "interpreter":
        raise UsageError(f"{program.name} tail-calls or uses map-in-map: run it with "
                         "--engine interpreter or --engine kernel")
    from ..vm import DEFAULT_BUDGET

    coll = VMCollection(spec, budget=budget or DEFAULT_BUDGET, sandbox=sandbox)
    vm = coll.programs[name].vm
    if ctx is not None:
        r0, ns = vm.run(data, ctx=ctx), None
    else:
        r0, ns = vm.time_runs(data, max(repeat, 1))
    maps = _dump_maps([coll.maps[m.name] for m in program.maps], program.maps)
    return RunResult(r0, ns, "interpreter", maps, vm.trace_pipe)


def execute(program: Program, engine: str, data: bytes, repeat: int = 1, **options) -> RunResult:
    if engine == "interpreter":
        return run_interpreter(program, data, repeat, **options)
    if engine == "jit":
        return run_jit(program, data, repeat, **options)
    if engine == "kernel":
        return run_kernel(program, data, repeat, **options)
    raise UsageError(f"unknown engine '{engine}' (engines: {', '.join(ENGINES)})")


# --- tracing ------------------------------------------------------------------------------------

def format_insn(insn: isa.Instruction) -> str:
    try:
        from ..asm import format_instruction
    except ImportError:
        format_instruction = None
    if format_instruction is not None:
        try:
            return format_instruction(insn)
        except Exception:  # the printer is someone else's; fall back to the raw fields
            pass
    return (f"{insn.name} dst=r{insn.dst} src=r{insn.src} off={insn.off} imm={insn.imm}"
            + (f" imm_hi={insn.imm_hi}" if insn.imm_hi is not None else ""))


def tracer(out: Callable[[str], None], lines: dict[int, str] | None = None) -> Callable:
    """A trace callback printing ``pc: instruction`` and the registers it changed, preceded by
    the source line (C or assembly) whenever execution reaches a slot that has one."""
    lines = lines or {}

    def trace(pc: int, insn: isa.Instruction, before: list[int], after: list[int]) -> None:
        source = lines.get(pc)
        if source:
            out(f"       ; {source.strip()}")
        changed = " ".join(f"r{i}={after[i]:#x}" for i in range(len(after))
                           if after[i] != before[i])
        text = f"{pc:5}: {format_insn(insn)}"
        out(f"{text:<44} {changed}".rstrip())

    return trace


# --- over a capture -----------------------------------------------------------------------------

def run_pcap(prog: str, prog_type: str | None, section: str | None, prog_name: str | None,
             ctx_file: str | None, engine: str, budget: int | None, pcap_file: str | None,
             write_file: str | None, as_json: bool, conflicting: bool,
             sandbox: bool = False) -> None:
    """``--pcap FILE [-w OUT]``: every packet through one interpreter (pybpf.progtypes.packets)."""
    from ..progtypes.packets import run_capture
    from ..vm import DEFAULT_BUDGET, Interpreter

    if pcap_file is None:
        raise UsageError("-w needs --pcap (the packets to run the program on)")
    if conflicting:
        raise UsageError("--pcap runs on the capture's packets: no --data, --data-file or --trace")
    if engine != "interpreter":
        raise UsageError("--pcap runs on the interpreter engine")
    program = load_program(prog, prog_type=prog_type, section=section, name=prog_name)
    if prog_type is None and program.section is None:
        raise UsageError("--pcap needs --type (xdp, sched_cls, socket_filter, ...) for a .s or "
                         ".bin program")
    ctx = None
    if ctx_file is not None:
        try:
            ctx = Path(ctx_file).read_bytes()
        except OSError as exc:
            raise UsageError(f"{ctx_file}: cannot read: {exc.strerror or exc}") from None
    vm = Interpreter(program, budget=budget or DEFAULT_BUDGET, prog_type=program.prog_type,
                     sandbox=sandbox)
    outcome = run_capture(vm, pcap_file, out_path=write_file, ctx=ctx)
    maps = _dump_maps(vm.maps, vm.program.maps)
    for line in vm.trace_pipe:
        click.echo(f"trace_printk: {line}", err=True)
    if as_json:
        click.echo(json.dumps({**outcome.as_json(), "engine": "interpreter", "maps": maps}))
        return
    click.echo(f"{outcome.packets} packet{'s' if outcome.packets != 1 else ''}")
    for verdict, n in sorted(outcome.verdicts.items(), key=lambda kv: (-kv[1], kv[0])):
        click.echo(f"  {verdict}: {n}")
    for number, why in outcome.skipped:
        click.echo(f"  packet {number} skipped: {why}")
    if write_file:
        click.echo(f"wrote {outcome.packets} packets to {write_file}")
    for name, rows in maps.items():
        click.echo(f"map {name}: {len(rows)} entr{'y' if len(rows) == 1 else 'ies'}")
        for k, v in rows:
            click.echo(f"  {k}: {v}")


# --- the command --------------------------------------------------------------------------------

@cli.command("run")
@click.argument("prog", type=click.Path(dir_okay=False))
@click.option("--type", "prog_type", help="program type (socket_filter, xdp, ...)")
@click.option("--section", help="ELF section holding the program")
@click.option("--program", "prog_name", help="program (C function) name in an ELF object")
@click.option("--data", "data_hex", help="input data as hex")
@click.option("--data-file", type=click.Path(dir_okay=False), help="input data file")
@click.option("--ctx-file", type=click.Path(dir_okay=False), help="context (kernel engine)")
@click.option("--engine", type=click.Choice(ENGINES), default="interpreter", show_default=True)
@click.option("--repeat", type=click.IntRange(min=1), default=1, show_default=True,
              help="run N times inside the engine; report mean ns per run")
@click.option("--budget", type=click.IntRange(min=1), default=None,
              help="interpreter instruction budget (default 1,000,000)")
@click.option("--trace", is_flag=True, help="print each instruction and the registers it changed")
@click.option("--pcap", "pcap_file", type=click.Path(dir_okay=False),
              help="run on every packet of a capture (maps kept across packets); print the "
                   "verdict counts")
@click.option("-w", "--write", "write_file", type=click.Path(dir_okay=False),
              help="with --pcap: write the packets as the program left them to a pcap file")
@click.option("--emit-llvm", is_flag=True, help="with --engine jit: print the LLVM IR")
@click.option("--emit-asm", is_flag=True, help="with --engine jit: print the machine code")
@click.option("--sandbox", is_flag=True,
              help="run without verifying (the interpreter and the JIT check every memory "
                   "access at run time instead)")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def run_command(prog: str, prog_type: str | None, section: str | None, prog_name: str | None,
                data_hex: str | None, data_file: str | None, ctx_file: str | None, engine: str,
                repeat: int, budget: int | None, trace: bool, pcap_file: str | None,
                write_file: str | None, emit_llvm: bool, emit_asm: bool, sandbox: bool,
                as_json: bool) -> None:
    """Run PROG (.s, .bin or .o) once (or --repeat N times) and print r0.

    Like the kernel, pybpf runs only what its verifier accepts (as the program's type, or for
    the input's size when there is no type); --sandbox runs an unverified program with every
    memory access checked."""
    if sandbox and engine == "kernel":
        raise UsageError("--sandbox is for the interpreter and the JIT: the kernel always "
                         "verifies")
    if pcap_file is not None or write_file is not None:
        run_pcap(prog, prog_type, section, prog_name, ctx_file, engine, budget, pcap_file,
                 write_file, as_json, data_hex is not None or data_file is not None or trace,
                 sandbox)
        return
    if data_hex is not None and data_file is not None:
        raise UsageError("give --data or --data-file, not both")
    if trace and engine != "interpreter":
        raise UsageError("--trace needs the interpreter engine")
    if (emit_llvm or emit_asm) and engine != "jit":
        raise UsageError("--emit-llvm and --emit-asm need --engine jit")
    if emit_llvm and emit_asm:
        raise UsageError("give --emit-llvm or --emit-asm, not both")
    data = b""
    if data_hex is not None:
        data = parse_hex(data_hex, "--data")
    elif data_file is not None:
        try:
            data = Path(data_file).read_bytes()
        except OSError as exc:
            raise UsageError(f"{data_file}: cannot read: {exc.strerror or exc}") from None
    program = load_program(prog, prog_type=prog_type, section=section, name=prog_name)
    # the interpreter builds a program type's context when one is named (or comes from an
    # object file's section); otherwise r1 = data, r2 = length
    typed = prog_type or (program.prog_type if program.section else None)
    if ctx_file is not None and engine in ("interpreter", "jit") and not typed:
        raise UsageError("--ctx-file needs --type (or an object file) with the interpreter or "
                         "the JIT, or --engine kernel")
    options: dict[str, Any] = {}
    if ctx_file is not None:
        try:
            options["ctx"] = Path(ctx_file).read_bytes()
        except OSError as exc:
            raise UsageError(f"{ctx_file}: cannot read: {exc.strerror or exc}") from None
    if engine in ("interpreter", "jit"):
        options["sandbox"] = sandbox
    if engine == "interpreter":
        options["budget"] = budget
        options["prog_type"] = typed
        if trace:
            options["trace"] = tracer(lambda line: click.echo(line, err=as_json),
                                      program.lines if program.section else None)
    elif engine == "jit":
        options["budget"] = budget
        options["prog_type"] = typed
        if emit_llvm or emit_asm:
            options["emit_kind"] = "llvm" if emit_llvm else "asm"
            options["emit"] = lambda text: click.echo(text, err=as_json)
    spec = needs_collection(prog) if not trace else None
    if spec is not None:
        result = run_in_collection(spec, program, engine, data, repeat, **options)
    else:
        result = execute(program, engine, data, repeat, **options)
    for line in result.trace_pipe:
        click.echo(f"trace_printk: {line}", err=True)
    if as_json:
        click.echo(json.dumps(result.as_json()))
        return
    click.echo(f"retval = {result.retval} ({result.retval:#x})")
    if repeat > 1 and result.ns_per_run is not None:
        click.echo(f"{result.ns_per_run:.0f} ns per run (mean of {repeat}, {engine})")
    for name, rows in result.maps.items():
        click.echo(f"map {name}: {len(rows)} entr{'y' if len(rows) == 1 else 'ies'}")
        for k, v in rows:
            click.echo(f"  {k}: {v}")
