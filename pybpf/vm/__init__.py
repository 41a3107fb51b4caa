"""The reference interpreter (RFC 9669 semantics as Linux executes them).

``Interpreter(program, maps=None, budget=1_000_000).run(data)`` returns r0; see
:mod:`.interpreter` for the memory layout and :mod:`.translate` / :mod:`.stepper` for the two
execution paths.
"""

from . import translate  # noqa: F401  (the translator, for callers and tests)
from .interpreter import DEFAULT_BUDGET, Env, Interpreter, ProgramExit

__all__ = ["DEFAULT_BUDGET", "Env", "Interpreter", "ProgramExit"]
