"""The LLVM worker: a forked child that runs LLVM's BPF backend (and pybpf's verifier) for the
compiler, so that the two overlap on start-up and LLVM cannot take pybpf down with it.

Why a child at all: the BPF backend reports some errors -- the 512-byte stack limit above
all -- on stderr and then *exits the process*; in a child that only ends the child, and its
stderr becomes a :class:`TraceSyntaxError` at the script line LLVM names (the IR carries the
script's lines as debug locations).

Why forked early: importing llvmlite's binding and pybpf's verifier costs about as much as
the parent's own imports, the parse and the IR generation together. ``pybpf trace`` starts
the worker the moment it knows a script is not cached; the child loads LLVM (and the
verifier) while the parent parses and generates IR, then waits for one request on a pipe.

A request is a :mod:`marshal`-ed dict (builtin types only, so neither side imports pickle):
``{"ir": text, "kind": "obj" | "asm" | "code", "opt": 2, ...}``. ``obj``/``asm`` answer with
the object or the assembly. ``code`` answers with each probe section's bytecode, read from
the object with LLVM's own object reader (no ELF/BTF import in either process), and pybpf's
verdict on each probe -- or ``{"fallback": reason}`` when the object needs what only the full
ELF loader does (relocations in a probe section) or the verifier refuses a probe (the
explanation wants the object's line info): the caller then takes the full road.
"""

from __future__ import annotations

import marshal
import os
import re

_LLVM_ERROR = re.compile(r"^(?:error|Error): (?:(?P<file>[^:\n]*):(?P<line>\d+):(?P<col>\d+): )?"
                         r"(?:in function \S+ [^:]*: )?(?P<msg>.*)$", re.M)


class Worker:
    """One forked child that answers one request (then exits).

    ``verifier``: the child imports pybpf's verifier as well while it waits (``code``
    requests verify each probe)."""

    def __init__(self, opt: int = 2, *, verifier: bool = False):
        self.pid: int | None = None
        req_r, self._req_w = os.pipe()
        self._res_r, res_w = os.pipe()
        self._errors = os.memfd_create("pybpf-llvm-stderr")
        pid = os.fork()
        if pid == 0:  # the child: never returns
            code = 1
            try:
                os.close(self._req_w)
                os.close(self._res_r)
                os.dup2(self._errors, 2)
                code = _serve(req_r, res_w, opt, verifier)
            except BaseException as exc:  # noqa: BLE001 - reported through stderr
                os.write(self._errors, f"error: {exc}\n".encode())
            finally:
                os._exit(code)
        self.pid = pid
        os.close(req_r)
        os.close(res_w)

    def request(self, request: dict):
        """Send one request and return the child's answer; LLVM's refusal raises a
        :class:`TraceSyntaxError` at the script line it names."""
        self.send(request)
        return self.answer()

    def send(self, request: dict) -> None:
        """Hand the child its request (it starts at once; :meth:`answer` collects)."""
        try:
            view = memoryview(marshal.dumps(request))
            while view:
                view = view[os.write(self._req_w, view):]
        except BrokenPipeError:  # the child died first: answer() reports its stderr
            pass
        os.close(self._req_w)
        self._req_w = -1

    def answer(self):
        """The child's answer to the request :meth:`send` gave."""
        try:
            data = _read_all(self._res_r)
            status = self._wait()
            diagnostics = self._diagnostics()
        finally:
            self.close()
        failed = not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0
        _raise_diagnostics(diagnostics, failed, status)
        return marshal.loads(data)

    def _wait(self) -> int:
        _, status = os.waitpid(self.pid, 0)
        self.pid = None
        return status

    def _diagnostics(self) -> str:
        os.lseek(self._errors, 0, os.SEEK_SET)
        return _read_all(self._errors).decode(errors="replace")

    def close(self) -> None:
        """Close every descriptor; a child still running (no request was sent: the parse
        failed, or Ctrl-C) is ended and reaped."""
        for name in ("_req_w", "_res_r", "_errors"):
            fd = getattr(self, name)
            if fd >= 0:
                os.close(fd)
                setattr(self, name, -1)
        if self.pid is not None:
            try:
                os.kill(self.pid, 9)
            except ProcessLookupError:
                pass
            self._wait()

    def __del__(self):  # a worker never handed a request must not linger
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass


def _read_all(fd: int) -> bytes:
    """Everything until end of file (a pipe's writer closed it; a memfd's end)."""
    parts = []
    while True:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return b"".join(parts)
        parts.append(chunk)


def emit(text: str, opt: int, kind: str):
    """LLVM IR text -> an object (``kind="obj"``, bytes) or its assembly (``"asm"``, str)."""
    out = Worker(opt).request({"ir": text, "kind": kind})
    return out if kind == "obj" else out.decode()


def _raise_diagnostics(diagnostics: str, failed: bool, status: int) -> None:
    """LLVM's error (or a dead child) as a TraceSyntaxError; warnings go to stderr."""
    from .parser import TraceSyntaxError

    m = _LLVM_ERROR.search(diagnostics)
    if m or failed:
        if not m:
            raise TraceSyntaxError(f"LLVM failed to compile the script: "
                                   f"{diagnostics.strip() or 'status ' + str(status)}")
        line = int(m.group("line")) if m.group("line") else None
        col = int(m.group("col")) if m.group("col") else None
        msg = m.group("msg").split(". Please move")[0]
        if "stack limit" in msg:
            msg += (" (BPF programs have 512 bytes of stack: use fewer string variables or "
                    "split the probe)")
        raise TraceSyntaxError(msg, m.group("file") or "<script>", line, col)
    if diagnostics.strip():
        import sys
        sys.stderr.write(diagnostics)


def verdict_record(prog) -> tuple | None:
    """pybpf's verifier on one probe's program, as plain data: (accepted, pc, explanation).
    None when it cannot say (a program type it does not model): the kernel stays the judge,
    the verdict serves the script-level explanation of a refusal."""
    try:
        from ..verifier import verify
        verdict = verify(prog)
    except Exception:  # noqa: BLE001 - an explanation aid must never stop a trace
        return None
    if verdict.accepted:
        return (True, None, "")
    try:
        explanation = str(verdict.explain())
    except Exception:  # noqa: BLE001
        explanation = verdict.error or ""
    return (False, verdict.pc, explanation)


# --- the child ---------------------------------------------------------------------------

def _serve(req_r: int, res_w: int, opt: int, verifier: bool) -> int:
    """Load LLVM (and the verifier), then answer the one request on ``req_r``."""
    import llvmlite.binding as llvm

    machine = _machine(opt)
    if verifier:
        from .. import verifier as _v  # noqa: F401 - loaded while the parent parses
        from ..program import Program  # noqa: F401
    data = _read_all(req_r)
    if not data:  # the parent gave up (a parse error, Ctrl-C)
        return 0
    request = marshal.loads(data)
    parsed = llvm.parse_assembly(request["ir"])
    parsed.verify()
    _optimize(parsed, machine)
    kind = request["kind"]
    if kind == "asm":
        answer = machine.emit_assembly(parsed).encode()
    else:
        answer = machine.emit_object(parsed)
        if kind == "code":
            answer = _code(answer, request)
    data = memoryview(marshal.dumps(answer))
    while data:
        data = data[os.write(res_w, data):]
    return 0


def _code(obj: bytes, request: dict) -> dict:
    """Each probe's bytecode from the object, and pybpf's verdict on it."""
    import llvmlite.binding as llvm

    sections = {}
    relocated = set()
    for section in llvm.ObjectFileRef.from_data(obj).sections():
        name = (section.name() or b"").decode(errors="replace")
        if name.startswith(".rel"):
            relocated.add(name[4:])
        elif section.is_text():
            sections[name] = bytes(section.data())
    code = []
    for name, section, prog_type in request["programs"]:
        if section in relocated or section not in sections:
            return {"fallback": f"section {section} needs the ELF loader"}
        code.append(sections[section])
    verdicts = []
    if request.get("verify"):
        from ..program import MapSpec, Program

        specs = [MapSpec(*row) for row in request["maps"]]
        for (name, section, prog_type), data in zip(request["programs"], code):
            prog = Program.from_bytes(data, name=name, prog_type=prog_type, maps=specs,
                                      license="GPL", section=section)
            record = verdict_record(prog)
            if record is not None and not record[0]:  # explained with the object's lines
                return {"fallback": f"pybpf's verifier refuses {name}"}
            verdicts.append(record)
    return {"code": code, "verdicts": verdicts}


def _optimize(parsed, machine) -> None:
    """Run LLVM's O2 pipeline (mem2reg first of all) so the BPF stack stays small."""
    import llvmlite.binding as llvm

    try:
        pto = llvm.create_pipeline_tuning_options(speed_level=2)
        pb = llvm.create_pass_builder(machine, pto)
        pm = pb.getModulePassManager()
        pm.run(parsed, pb)
    except AttributeError:  # an older llvmlite: legacy pass manager
        pmb = llvm.create_pass_manager_builder()
        pmb.opt_level = 2
        pm = llvm.create_module_pass_manager()
        pmb.populate(pm)
        pm.run(parsed)


def _machine(opt: int):
    import llvmlite.binding as llvm

    llvm.initialize_all_targets()
    llvm.initialize_all_asmprinters()
    return llvm.Target.from_triple("bpfel").create_target_machine(cpu="v3", opt=opt,
                                                                  reloc="static")
