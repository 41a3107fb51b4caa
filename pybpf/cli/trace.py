"""``pybpf trace``: run a bpftrace-language script (``-e PROGRAM`` or a ``.bt`` file)."""

from __future__ import annotations

import json
import shlex
import sys

import click

from . import cli


@cli.command("trace")
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@click.option("-e", "program", help="the script text")
@click.option("-c", "command", help="run COMMAND and trace until it exits")
@click.option("-p", "pid", type=int, help="trace until process PID exits")
@click.option("-d", "debug", is_flag=True, help="show the AST, the LLVM IR and the eBPF assembly")
@click.option("--timeout", type=float, help="stop after this many seconds")
@click.option("--json", "as_json", is_flag=True, help="with -d: machine-readable compilation")
def trace_cmd(file, program, command, pid, debug, timeout, as_json):
    """Trace with bpftrace's language: probes, maps, aggregations, printf."""
    from ..errors import UsageError
    from ..trace import runtime

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
        from ..asm import disassemble
        from ..trace import parse

        compiled = runtime.compile_script(program, name)
        ir_text = compiled.unit.ir_text()
        if as_json:
            click.echo(json.dumps({
                "ir": ir_text,
                "programs": {n: {"type": p.prog_type, "section": p.section,
                                 "asm": disassemble(p)} for n, p, _ in compiled.programs}}))
            return
        click.echo(repr(parse(program, name)))
        click.echo(ir_text)
        for n, p, ap in compiled.programs:
            click.echo(f"; {ap.raw} ({p.prog_type}, section {p.section})")
            click.echo(disassemble(p))
        return
    cmd = shlex.split(command) if command else None
    deadline = timeout
    if pid is not None:
        import os

        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            raise UsageError(f"no process {pid}") from None
        cmd = ["sh", "-c", f"while kill -0 {pid} 2>/dev/null; do sleep 0.1; done"]
    status = runtime.run(program, name, command=cmd, timeout=deadline, out=sys.stdout)
    sys.exit(status)
