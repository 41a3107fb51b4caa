"""The bpf_conformance plugin protocol: ``pybpf plugin`` and the ``pybpf-plugin`` executable.

The suite's runner starts the plugin once per test: the program's bytecode as hex on standard
input, the input memory as hex (with or without spaces) in the first argument, plugin options
after it. The plugin prints r0 in hex (``%lx``: lowercase, no prefix) on standard output and
exits 0; a program it refuses or cannot run gets a message on standard error and a non-zero
exit. The memory is passed in r1 with its length in r2.

Helper 5 means uBPF's ``unwind`` in the suite (not the kernel's ``ktime_get_ns``): it returns
r1, and when that is 0 the program stops at once returning 0. It is installed only here.
"""

from __future__ import annotations

import os
import re
import sys

from ..errors import BPFError, UsageError

USAGE = ("usage: pybpf-plugin [MEMORY_HEX] [--engine interpreter|jit|kernel] "
         "[--budget N] < PROGRAM_HEX")
_HEX = re.compile(r"^(?:0x)?[0-9a-fA-F\s]*$")


def unwind(env, r1: int, *_args) -> int:
    """uBPF's test helper 5: returns r1; a zero result ends the program returning 0."""
    from ..vm import ProgramExit

    if r1 == 0:
        raise ProgramExit(0)
    return r1


def parse_args(argv: list[str]) -> tuple[str, dict[str, str]]:
    """(memory hex, options) from the plugin's arguments."""
    memory_parts: list[str] = []
    options: dict[str, str] = {"engine": "interpreter"}
    i = 0
    while i < len(argv) and not argv[i].startswith("-") and _HEX.match(argv[i]):
        memory_parts.append(argv[i])   # the runner may split "aa bb" into several arguments
        i += 1
    while i < len(argv):
        arg = argv[i]
        name, eq, value = arg.partition("=")
        if name in ("--engine", "--budget"):
            if not eq:
                if i + 1 >= len(argv):
                    raise UsageError(f"option {name} needs a value")
                value = argv[i + 1]
                i += 1
            options[name[2:]] = value
        elif arg in ("--jit",):
            options["engine"] = "jit"
        elif arg in ("--interpret", "--interpreter"):
            options["engine"] = "interpreter"
        elif arg in ("-h", "--help"):
            raise UsageError(USAGE)
        elif not memory_parts and _HEX.match(arg):
            memory_parts.append(arg)
        else:
            raise UsageError(f"unknown plugin option '{arg}' ({USAGE})")
        i += 1
    return " ".join(memory_parts), options


def run_plugin(program_hex: str, memory_hex: str, engine: str = "interpreter",
               budget: int | None = None) -> int:
    """r0 of the program run on the memory (the whole protocol minus the I/O)."""
    from ..program import Program
    from .run import execute, parse_hex

    code = parse_hex(program_hex, "program")
    if not code:
        raise UsageError("the program is empty")
    memory = parse_hex(memory_hex, "memory")
    program = Program.from_bytes(code, name="conformance")
    options = {}
    if engine in ("interpreter", "jit"):
        # the conformance suite runs programs no verifier would take (uBPF's helpers, raw
        # memory in r1): a sandboxed run, every memory access checked
        options = {"helpers": {5: unwind}, "budget": budget, "sandbox": True}
    return execute(program, engine, memory, **options).retval


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``pybpf-plugin``."""
    args = sys.argv[1:] if argv is None else argv
    try:
        memory_hex, options = parse_args(args)
        budget = options.get("budget")
        if budget is not None and not budget.isdigit():
            raise UsageError(f"--budget must be a number, not '{budget}'")
        r0 = run_plugin(sys.stdin.read(), memory_hex, options["engine"],
                        int(budget) if budget else None)
    except BPFError as exc:
        if os.environ.get("PYBPF_DEBUG"):
            raise
        print(f"pybpf-plugin: {exc}", file=sys.stderr)
        sys.exit(1)
    except Exception as exc:  # never a traceback through the protocol
        if os.environ.get("PYBPF_DEBUG"):
            raise
        print(f"pybpf-plugin: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(2)
    print(f"{r0:x}")


def _register() -> None:
    import click

    from . import cli

    @cli.command("plugin", context_settings={"ignore_unknown_options": True,
                                             "allow_interspersed_args": False})
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def plugin_command(args: tuple[str, ...]) -> None:
        """bpf_conformance plugin: PROGRAM_HEX on stdin, [MEMORY_HEX] [--engine E]; prints r0."""
        main(list(args))


if __name__ != "__main__":
    _register()

if __name__ == "__main__":  # pragma: no cover
    main()
