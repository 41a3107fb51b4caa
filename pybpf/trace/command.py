"""``pybpf trace``'s work, shared by the click command (:mod:`pybpf.cli.trace`) and the
click-free fast path :func:`fast_main` that ``pybpf.cli.main`` takes for plain arguments.

The fast path exists for start-up time (bpftrace's is the target): importing click and the
command's decorators costs more than parsing the handful of options by hand. It accepts only
what it fully understands -- the options of the click command in their plain spellings -- and
returns None for anything else (``--help``, an unknown or malformed option, a missing value),
so click still produces the help text and the usage errors.
"""

from __future__ import annotations

import os
import sys

#: the click command's options: flag -> (parameter, converter or None for a boolean flag)
OPTIONS = {
    "-e": ("program", str), "-c": ("command", str), "-p": ("pid", int),
    "--timeout": ("timeout", float), "-d": ("debug", None), "--json": ("as_json", None),
}


def parse_args(args: list[str]) -> dict | None:
    """The click command's parameters from ``args``, or None when click should decide."""
    params: dict = {"file": None, "program": None, "command": None, "pid": None,
                    "debug": False, "timeout": None, "as_json": False}
    seen_file = False
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        value = None
        if arg.startswith("--") and "=" in arg:
            arg, value = arg.split("=", 1)
        if arg in OPTIONS:
            name, convert = OPTIONS[arg]
            if convert is None:
                if value is not None:
                    return None
                params[name] = True
                continue
            if value is None:
                if i >= len(args) or args[i].startswith("-"):
                    return None
                value = args[i]
                i += 1
            try:
                params[name] = convert(value)
            except ValueError:
                return None
        elif arg.startswith("-") or seen_file:
            return None  # help, unknown options, '--', '-', a second file: click says
        else:
            if os.path.isdir(arg):
                return None  # click's Path(dir_okay=False) refuses it
            params["file"] = arg
            seen_file = True
    return params


def fast_main(args: list[str]) -> int | None:
    """``pybpf trace ARGS`` without click; None hands the arguments to the click command."""
    params = parse_args(args)
    if params is None:
        return None
    return run_command(**params)


#: characters after which :func:`shlex.split` and :meth:`str.split` may differ
_SHELL_SPECIAL = set("'\"\\") | {chr(c) for c in range(32) if chr(c) not in " \t\r\n"}


def split_command(command: str) -> list[str]:
    """``-c CMD`` as :func:`shlex.split` reads it (without importing shlex when a plain split
    gives the same words: no quotes, no backslashes, no unusual whitespace)."""
    if command.isascii() and not _SHELL_SPECIAL.intersection(command):
        return command.split()
    import shlex

    return shlex.split(command)


def _write(text: str) -> None:
    sys.stdout.write(text + "\n")


def run_command(file: str | None, program: str | None, command: str | None, pid: int | None,
                debug: bool, timeout: float | None, as_json: bool) -> int:
    """Run (or with ``debug`` show) a script; returns the exit status."""
    from ..errors import UsageError

    if (file is None) == (program is None):
        raise UsageError("give a script file or -e PROGRAM (one of them)")
    if program is None:
        try:
            with open(file, encoding="utf-8") as fh:
                program = fh.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read {file}: {exc}") from None
        name = file
    else:
        name = "<stdin>"
    if debug:
        _show(program, name, as_json)
        return 0
    cmd = split_command(command) if command else None
    if pid is not None:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            raise UsageError(f"no process {pid}") from None
        cmd = ["sh", "-c", f"while kill -0 {pid} 2>/dev/null; do sleep 0.1; done"]
    from . import runtime

    return runtime.run(program, name, command=cmd, timeout=timeout, out=sys.stdout)


def _show(program: str, name: str, as_json: bool) -> None:
    """``-d``: the AST, the LLVM IR and each probe's eBPF assembly."""
    import json

    from ..asm import disassemble
    from .build import compile_script
    from .parser import parse

    compiled = compile_script(program, name)
    ir_text = compiled.unit.ir_text()
    if as_json:
        _write(json.dumps({
            "ir": ir_text,
            "programs": {n: {"type": p.prog_type, "section": p.section,
                             "asm": disassemble(p)} for n, p, _ in compiled.programs}}))
        return
    _write(repr(parse(program, name)))
    _write(ir_text)
    for n, p, ap in compiled.programs:
        _write(f"; {ap.raw} ({p.prog_type}, section {p.section})")
        _write(disassemble(p))
