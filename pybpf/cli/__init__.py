"""The ``pybpf`` command.

One click group; each subcommand lives in its own module of this package and registers itself
on :data:`cli`. :func:`main` turns every :class:`pybpf.errors.BPFError` (and any other
unexpected exception) into one clear line on stderr and a non-zero exit: users never see a
traceback (set ``PYBPF_DEBUG=1`` to get one).

Start-up time is a feature (``pybpf trace`` competes with bpftrace's): this module imports
neither click nor any command until it is needed. ``pybpf trace`` with plain arguments takes a
fast path (:func:`pybpf.trace.command.fast_main`) that parses them without click; anything it
does not fully understand (``--help``, a malformed option, ...) goes to the click command, so
options, errors and help stay those of the click command.
"""

from __future__ import annotations

import importlib
import os
import sys
import time

#: when the command began (after the interpreter's own start-up): ``pybpf trace``'s start-up
#: timings count from here
STARTED = time.perf_counter()

#: modules that define subcommands; each imports :data:`cli` and decorates its commands
COMMAND_MODULES = [
    "asm",      # asm, disasm
    "run",      # run
    "plugin",   # plugin (bpf_conformance protocol)
    "verify",   # verify
    "filter",   # filter, tap (classic BPF)
    "kernel",   # prog, map, attach
    "trace",    # trace
]

#: which module defines a command, so ``pybpf CMD`` imports only what CMD needs (start-up
#: time is a feature: ``pybpf trace`` competes with bpftrace's); unknown names load them all
COMMAND_HOMES = {
    "asm": "asm", "disasm": "asm", "run": "run", "plugin": "plugin", "verify": "verify",
    "filter": "filter", "tap": "filter", "prog": "kernel", "map": "kernel",
    "attach": "kernel", "trace": "trace",
}

#: commands with a click-free fast path: name -> (module, function taking the arguments after
#: the command name and returning an exit status, or None to leave them to click)
FAST_PATHS = {"trace": ("pybpf.trace.command", "fast_main")}


def _import_command_module(name: str) -> None:
    try:
        importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as exc:
        # a subcommand module not written yet; only tolerate the module itself missing
        if exc.name != f"{__name__}.{name}":
            raise


def _load_commands() -> None:
    for name in COMMAND_MODULES:
        _import_command_module(name)


def _make_group():
    """The click group, built on first use (``from . import cli`` in a command module)."""
    import click

    class _LazyGroup(click.Group):
        def get_command(self, ctx, cmd_name):
            if cmd_name not in self.commands:
                home = COMMAND_HOMES.get(cmd_name)
                if home is not None:
                    _import_command_module(home)
                if cmd_name not in self.commands:
                    _load_commands()
            return super().get_command(ctx, cmd_name)

        def list_commands(self, ctx):
            _load_commands()
            return super().list_commands(ctx)

    @click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
    @click.version_option(package_name="pybpf")
    def cli() -> None:
        """BPF and eBPF in Python: assemble, run, verify, JIT and load programs."""

    return cli


def _group():
    group = globals().get("cli")
    if group is None:
        group = globals()["cli"] = _make_group()
    return group


def __getattr__(name: str):
    # PEP 562: ``cli`` (the click group) exists once somebody asks for it
    if name == "cli":
        return _group()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def fail(message: str, code: int = 1) -> "NoReturn":  # type: ignore[name-defined]
    sys.stderr.write(f"pybpf: error: {message}\n")
    sys.stderr.flush()
    sys.exit(code)


def _fast_path(args: list[str]) -> int | None:
    entry = FAST_PATHS.get(args[0]) if args else None
    if entry is None:
        return None
    module, function = entry
    return getattr(importlib.import_module(module), function)(args[1:])


def _click_main(argv: list[str] | None) -> None:
    import click

    try:
        _group().main(args=argv, prog_name="pybpf", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        fail("aborted", 130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)


def main(argv: list[str] | None = None) -> None:
    from ..errors import BPFError

    try:
        status = _fast_path(sys.argv[1:] if argv is None else list(argv))
        if status is not None:
            sys.exit(status)
        _click_main(argv)
    except BPFError as exc:
        if os.environ.get("PYBPF_DEBUG"):
            raise
        fail(str(exc))
    except BrokenPipeError:
        sys.exit(0)
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except Exception as exc:  # a bug in pybpf: still one line, but say it is internal
        if os.environ.get("PYBPF_DEBUG"):
            raise
        fail(f"internal error: {type(exc).__name__}: {exc} (set PYBPF_DEBUG=1 for a traceback)", 2)
