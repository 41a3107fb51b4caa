"""``pybpf verify``: the verifier's verdict on a program, from pybpf or from the kernel.

Exit status 0 when the program is accepted, 1 when it is rejected. Humans get the verdict and,
for a rejection, the explanation (the instruction, C line when known, the rule, the values, the
path and a suggested fix); ``--log-level`` prints the kernel-style log; ``--json`` prints
``{"accepted", "error", "insns_processed", "log"}`` plus the stable ``error_id`` and the
explanation.
"""

from __future__ import annotations

import json
import sys

import click

from ..errors import UsageError
from ..program import Program
from . import cli


def load_prog(path: str, section: str | None, name: str | None) -> Program:
    """A Program from a .s file, raw .bin bytecode or an ELF .o: the same reading as
    ``pybpf run`` (one implementation, so both commands accept the same files)."""
    from .run import load_program
    return load_program(path, section=section, name=name)


def _kernel_verdict(program: Program, prog_type: str, log_level: int) -> dict:
    from .. import kernel
    from ..errors import KernelError
    reason = kernel.features.bpf_unavailable_reason()
    if reason:
        raise UsageError(f"the kernel engine is unavailable: {reason}")
    try:
        with kernel.load_program(program, prog_type=prog_type, log_level=log_level or 1) as kp:
            log = kp.log or ""
        accepted, error = True, None
    except KernelError as exc:
        log = exc.log or ""
        accepted = False
        lines = [ln for ln in log.splitlines() if ln and not ln.startswith(("processed ",
                                                                            "verification "))]
        error = lines[-1] if lines else str(exc)
    import re
    m = re.search(r"processed (\d+) insns", log)
    return {"accepted": accepted, "error": error,
            "insns_processed": int(m.group(1)) if m else 0, "log": log}


def pybpf_explanation(program: Program, prog_type: str):
    """pybpf's explanation of why ``program`` is refused, when pybpf's verifier refuses it too
    (None when it accepts it or cannot say)."""
    from ..verifier import verify as run_verifier
    try:
        result = run_verifier(program, prog_type=prog_type)
    except Exception:  # noqa: BLE001 - an explanation aid must never hide the kernel's verdict
        return None
    return None if result.accepted else result.explain()


def side_by_side(kernel_log: str, kernel_error: str | None, explanation) -> str:
    """A kernel refusal for people: the kernel's own log (its last lines, where the reason is),
    then pybpf's explanation of the same program."""
    lines = [ln for ln in (kernel_log or "").splitlines() if ln.strip()]
    tail = lines[-12:]
    out = [f"rejected by the kernel: {kernel_error}", "", "kernel verifier log:"]
    if len(lines) > len(tail):
        out.append(f"  ... ({len(lines) - len(tail)} earlier lines)")
    out += [f"  {ln}" for ln in tail]
    out += ["", "pybpf's explanation:"]
    if explanation is None:
        out.append("  (pybpf's verifier does not refuse this program; the kernel's log is the "
                   "reason)")
    else:
        out += [f"  {ln}" for ln in explanation.text().splitlines()]
    return "\n".join(out)


@cli.command()
@click.argument("prog", type=click.Path(dir_okay=False))
@click.option("--type", "prog_type", help="program type (socket_filter, xdp, sched_cls, ...)")
@click.option("--section", help="ELF section holding the program")
@click.option("--program", "prog_name", help="C function name of the program in an ELF object")
@click.option("--log-level", type=click.IntRange(0, 2), default=0, show_default=True)
@click.option("--engine", type=click.Choice(["pybpf", "kernel"]), default="pybpf",
              show_default=True)
@click.option("--explain/--no-explain", default=None,
              help="explain a rejection (the default unless --json or --log-level)")
@click.option("--unprivileged", is_flag=True, help="apply the rules for programs without CAP_BPF")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def verify(prog, prog_type, section, prog_name, log_level, engine, explain, unprivileged,
           as_json):
    """Verify PROG (.s, .bin or .o) and say why it is rejected."""
    program = load_prog(prog, section, prog_name)
    ptype = prog_type or (program.prog_type if program.section or prog_type is None
                          else None) or "socket_filter"
    if engine == "kernel":
        if unprivileged:
            raise UsageError("--unprivileged is only supported by the pybpf engine")
        out = _kernel_verdict(program, ptype, log_level)
        explanation = None
        if not out["accepted"] and (explain is None or explain):
            explanation = pybpf_explanation(program, ptype)
        if as_json:
            if explanation is not None:
                out["explanation"] = explanation.to_json()
            click.echo(json.dumps(out))
        elif out["accepted"]:
            if log_level:
                click.echo(out["log"], nl=False)
            click.echo("accepted")
        else:
            click.echo(side_by_side(out["log"], out["error"], explanation), err=True)
        sys.exit(0 if out["accepted"] else 1)
    from ..verifier import verify as run_verifier
    result = run_verifier(program, prog_type=ptype, unprivileged=unprivileged,
                          log_level=log_level)
    if as_json:
        data = result.to_json()
        if not result.accepted:
            data["explanation"] = result.explain().to_json()
        click.echo(json.dumps(data))
        sys.exit(0 if result.accepted else 1)
    if log_level:
        click.echo(result.log, nl=False)
    if result.accepted:
        click.echo(f"accepted ({result.insns_processed} instructions processed)")
        sys.exit(0)
    if explain is None:
        explain = not log_level
    click.echo(f"rejected: {result.error}", err=True)
    if explain:
        click.echo(result.explain().text(), err=True)
    sys.exit(1)
