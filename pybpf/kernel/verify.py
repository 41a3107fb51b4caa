"""The kernel's verdict on a program, in the shape of ``pybpf verify --json``.

``verify(program)`` loads the program with a verifier log and unloads it at once; the verdict
carries what the CLI contract asks for: accepted, the kernel's reason when rejected, the number
of instructions the verifier processed (its ``processed N insns`` line) and the whole log. The
``pybpf verify --engine kernel`` command and the verifier's differential tests both use it.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from ..errors import KernelError, KernelUnsupported
from ..program import Program
from .prog import load_program, summarize_log

_PROCESSED = re.compile(r"processed (\d+) insns")


@dataclass
class KernelVerdict:
    accepted: bool
    error: str | None
    insns_processed: int
    log: str
    errno: int | None = None

    def as_json(self) -> dict:
        out = asdict(self)
        out.pop("errno")
        return out


def verify(program: Program, *, prog_type: str | None = None, log_level: int = 1,
           **load_options) -> KernelVerdict:
    """Ask the running kernel whether it accepts ``program`` (nothing stays loaded).

    Privilege problems raise :class:`KernelUnsupported` rather than becoming a verdict: they
    say nothing about the program."""
    level = max(log_level, 1)  # the instruction count only appears in a log
    try:
        with load_program(program, prog_type=prog_type, log_level=level, **load_options) as prog:
            log = prog.log
    except KernelUnsupported:
        raise
    except KernelError as exc:
        return KernelVerdict(False, summarize_log(exc.log) or str(exc), _processed(exc.log),
                             exc.log if log_level else "", exc.errno)
    return KernelVerdict(True, None, _processed(log), log if log_level else "")


def _processed(log: str) -> int:
    found = _PROCESSED.findall(log)
    return int(found[-1]) if found else 0
