"""Script -> :class:`CompiledScript`: parse, expand wildcards, compile through LLVM, read the
object back with pybpf's ELF loader; and the script-level explanation of a kernel refusal.

Only a compilation (a cache miss, ``-d``) or a refused probe imports this module: a cached
script starts from its plan (:mod:`.plan`) without the parser, LLVM or the ELF reader.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import KernelError
from . import ast, probes, types
from .parser import TraceSyntaxError, parse
from .plan import file_stamp as plan_stamp
from .worker import verdict_record

if TYPE_CHECKING:  # pybpf.program is imported only by the full road
    from ..program import MapSpec, Program

MAX_MAP_ENTRIES = 4096  # bpftrace's default map size


@dataclass
class CompiledScript:
    unit: types.CompileUnit
    programs: list[tuple[str, Program, ast.AttachPoint]]
    map_specs: list[MapSpec]
    object_code: bytes
    source_name: str = "<script>"
    wildcards: list = field(default_factory=list)  # see plan.wildcards_hold


_LOG_INSN = re.compile(r"^(\d+): \(", re.M)


def _script_error(filename: str, prog: Program, ap: ast.AttachPoint, exc: KernelError,
                  verdict: tuple | None) -> TraceSyntaxError:
    """The kernel refused a probe: say where in the script, why, and pybpf's explanation."""
    refused = verdict is not None and not verdict[0]
    pc = None
    if refused and verdict[1] is not None:
        pc = verdict[1]
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
    if refused and verdict[2]:
        message += f"\n  pybpf: {verdict[2]}"
    return TraceSyntaxError(message, filename, line, col)


def load_with_engine(source: str, filename: str, index: int, kernel_maps: list,
                     verdict: tuple | None):
    """Probe ``index`` was refused when loaded from its plan (bytecode only): load it through
    the kernel engine from a fresh compilation, with its BTF, func and line info, as
    :func:`pybpf.kernel.load_program` does. Returns the loaded program when the kernel takes
    it so (a program that needs its BTF); otherwise raises the error that explains the refusal
    at script level (the kernel's log names script lines; pybpf's verdict adds its reading)."""
    from .. import kernel

    compiled = compile_script(source, filename)
    _, prog, ap = compiled.programs[index]
    options = {}
    if ap.provider in ("kfunc", "kretfunc"):
        from ..btf.parser import load_vmlinux

        options = {"expected_attach_type": "trace_fentry" if ap.provider == "kfunc"
                   else "trace_fexit",
                   "attach_btf_id": load_vmlinux().find_one(ap.func, "func").id}
    try:
        return kernel.load_program(prog, maps=kernel_maps, **options)
    except KernelError as exc:
        if options:
            kind = options["expected_attach_type"].split("_")[1]
            raise KernelError(f"cannot attach {ap.raw}: the kernel refused an {kind} program "
                              f"({exc.message.splitlines()[0]}); kfunc/kretfunc need BPF "
                              "trampolines, which this kernel does not allow",
                              errno=exc.errno, log=exc.log) from None
        if exc.log:
            raise _script_error(filename, prog, ap, exc, verdict if verdict is not None
                                else verdict_record(prog)) from None
        raise


def _expand(script: ast.Script):
    """(probe, attach point, section) per program; wildcards expanded; fields gathered; and
    what each wildcard matched on this machine (a cached plan is valid while it still does)."""
    items = []
    fields: dict[tuple[str, str], list] = {}
    wildcards: list = []
    for probe in script.probes:
        for ap in probe.attach_points:
            if ap.provider in ("uprobe", "uretprobe") and "/" not in ap.target:
                ap = _resolved_target(ap, script, wildcards)
            if ap.provider == "tracepoint":
                matches = probes.expand_tracepoints(ap.target, ap.func)
                if not matches:
                    raise TraceSyntaxError(f"no tracepoint matches {ap.raw}", script.filename,
                                           ap.line, ap.col)
                if any(c in ap.target + ap.func for c in "*?["):
                    wildcards.append(("tracepoint", ap.target, ap.func,
                                      [list(m) for m in matches]))
                for cat, ev in matches:
                    one = ast.AttachPoint(ap.line, ap.col, "tracepoint", cat, ev,
                                          raw=f"tracepoint:{cat}:{ev}")
                    fields[(cat, ev)] = probes.tracepoint_fields(cat, ev)
                    items.append((probe, one, f"tracepoint/{cat}/{ev}"))
            elif ap.provider in ("uprobe", "uretprobe"):
                # as bpftrace 0.17: the function is matched against the binary's symbols, a
                # name without wildcards too; one that matches nothing attaches nothing
                names = _matching_functions(ap)
                wildcards.append(("uprobe", ap.target, ap.func, plan_stamp(ap.target)))
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
    return items, fields, wildcards


def _resolved_target(ap: ast.AttachPoint, script: ast.Script,
                     wildcards: list) -> ast.AttachPoint:
    """``uprobe:libc:malloc`` as bpftrace names it, ``uprobe:/lib/.../libc.so.6:malloc``: the
    bare name resolved (:func:`probes.resolve_uprobe_target`), and recorded, so a cached plan
    is used only while the name still resolves to that file."""
    path = probes.resolve_uprobe_target(ap.target)
    if path is None:
        raise TraceSyntaxError(f"uprobe target file '{ap.target}' does not exist or is not "
                               "executable (neither on $PATH nor a library in the dynamic "
                               "linker's cache)", script.filename, ap.line, ap.col)
    wildcards.append(("target", ap.target, "", path))
    return ast.AttachPoint(ap.line, ap.col, ap.provider, path, ap.func,
                           raw=f"{ap.provider}:{path}:{ap.func}")


def _matching_functions(ap: ast.AttachPoint) -> list[str]:
    """Function symbols of a binary matching the probe's function (``uprobe:/bin/bash:readl*``
    or a plain name); a missing binary is the attach's error, so it is kept then."""
    import fnmatch

    from .symbols import function_names

    if not os.path.exists(ap.target):
        return [ap.func]  # attaching says: no such binary
    names = function_names(ap.target)
    if not any(c in ap.func for c in "*?["):
        return [ap.func] if ap.func in names else []
    return sorted(n for n in names if fnmatch.fnmatchcase(n, ap.func))


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


def compile_script(source: str, filename: str = "<script>", timings=None) -> CompiledScript:
    """Parse, type-check and compile a script to BPF programs (nothing is loaded).
    ``timings`` (a :class:`pybpf.trace.runtime.Timings`) records each step's duration."""
    mark = timings.mark if timings is not None else (lambda step: None)
    unit, wildcards = compile_unit(source, filename, mark)
    from . import codegen

    obj = codegen.emit_object(unit.ir_text())
    mark("llvm")
    compiled = finish(unit, obj, filename, wildcards)
    mark("elf")
    return compiled


def compile_unit(source: str, filename: str, mark=lambda step: None):
    """The front half: parse, expand wildcards, generate LLVM IR (a :class:`types.CompileUnit`)
    and what the wildcards matched."""
    mark("imports")
    script = parse(source, filename)
    items, fields, wildcards = _expand(script)
    if not items:  # every probe was a uprobe on a function its binary does not have
        raise TraceSyntaxError("no probes to attach (no function named by the script's "
                               "uprobes exists in its binary)", filename, 1, 1)
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
    mark("parse")
    from . import codegen  # LLVM: imported only when a script is compiled

    unit = codegen.Compiler(script, tracepoint_fields=fields).compile(items)
    mark("codegen")
    return unit, wildcards


def map_rows(unit: types.CompileUnit) -> list[tuple[str, str, int, int, int]]:
    """(name, type, key size, value size, max entries) of every map the script uses: the
    three internal ones (events, the start time, stacks) first, in index order."""
    rows = [("events", "ringbuf", 0, 0, types.RINGBUF_SIZE),
            ("start", "array", 4, 8, 1),
            ("stacks", "stack_trace", 4, 8 * types.MAX_STACK_FRAMES,
             MAX_MAP_ENTRIES if unit.uses_stacks else 1)]
    for info in sorted(unit.maps.values(), key=lambda m: m.index):
        rows.append((info.name[:15] or "_", info.map_type, info.key_size, info.value_size,
                     1 if info.is_array else MAX_MAP_ENTRIES))
    return rows


def finish(unit: types.CompileUnit, obj: bytes, filename: str,
           wildcards: list) -> CompiledScript:
    """The back half: pybpf's own object loader reads the programs back from LLVM's object,
    with BTF and the script's lines; each gets its maps, license and program type."""
    from ..elf import load_object
    from ..program import MapSpec

    specs = [MapSpec(*row) for row in map_rows(unit)]
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
    return CompiledScript(unit, programs, specs, obj, filename, wildcards)


def verified_plan(compiled: CompiledScript) -> dict:
    """The compilation's plan with pybpf's verifier's verdict on each probe."""
    from .plan import make_plan

    made = make_plan(compiled)
    made["verdicts"] = [verdict_record(prog) for _, prog, _ in compiled.programs]
    return made


def compiled_plan(source: str, filename: str, worker, mark=lambda step: None,
                  while_waiting=None) -> dict:
    """A cache miss's plan the quick way: ``worker`` (a :class:`.worker.Worker` forked with
    the verifier before the parse began) compiles the IR, cuts each probe's bytecode out of
    the object and verifies it, so this process needs neither the ELF and BTF readers nor
    the verifier; ``while_waiting`` runs here while the worker compiles. When the worker
    cannot (a probe section with relocations; a probe its verifier refuses, whose
    explanation wants the object's line info) the full road (:func:`compile_script`,
    :func:`verified_plan`) gives the plan."""
    from .plan import assemble

    try:
        unit, wildcards = compile_unit(source, filename, mark)
        programs = [(name, section, probes.PROG_TYPES[ap.provider])
                    for name, _, ap, section in unit.functions]
        rows = map_rows(unit)
        worker.send({"ir": unit.ir_text(), "kind": "code", "verify": True,
                     "programs": programs, "maps": rows})
        if while_waiting is not None:
            while_waiting()
        answer = worker.answer()
    finally:
        worker.close()
    mark("llvm+verify")
    if "fallback" in answer:
        return verified_plan(compile_script(source, filename))
    probes_code = [(name, prog_type, code, "GPL", ap)
                   for (name, _, prog_type), code, (_, _, ap, _)
                   in zip(programs, answer["code"], unit.functions)]
    made = assemble(filename, rows, probes_code, unit, wildcards)
    made["verdicts"] = answer["verdicts"]
    return made

