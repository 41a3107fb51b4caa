"""``pybpf trace``: run a bpftrace-language script (``-e PROGRAM`` or a ``.bt`` file).

The work is :func:`pybpf.trace.command.run_command`; ``pybpf.cli.main`` calls it directly
(without click) for plain arguments, and through this command for everything else (help,
usage errors), so both paths behave the same.
"""

from __future__ import annotations

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
    from ..trace.command import run_command

    status = run_command(file, program, command, pid, debug, timeout, as_json)
    if not debug:
        sys.exit(status)
