"""pybpf's verifier: the Linux verifier's verdict on a program, with explanations.

``verify(program)`` walks every path of the program like the kernel's verifier (Linux 6.18,
privileged rules by default) and returns a :class:`VerifierResult`; it never raises for a
rejection. ``check(program)`` raises :class:`pybpf.errors.VerifierError` instead. See
``docs/verifier-differences.md`` for where the verdict may differ from the kernel's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import UsageError, VerifierError
from ..program import Program
from . import cfg
from .check import Env, check_stack_depth, do_check
from .log import VerifierLog, insn_text, summary_line
from .memory import Reject
from .progtypes import PROG_TYPES, get_prog_type

__all__ = ["verify", "check", "VerifierResult", "PROG_TYPES"]


@dataclass
class VerifierResult:
    accepted: bool
    error: str | None
    insns_processed: int
    log: str
    error_id: str | None = None
    pc: int | None = None          # slot index of the rejected instruction
    facts: dict = field(default_factory=dict)
    history: tuple | None = None   # branch decisions of the failing path (pc, next_pc, ...)
    program: Program | None = None
    prog_type: str = "socket_filter"

    def to_json(self) -> dict:
        return {"accepted": self.accepted, "error": self.error,
                "insns_processed": self.insns_processed, "log": self.log,
                "error_id": self.error_id, "insn": self.pc}

    def explain(self):
        from .explain import explain
        return explain(self)


def verify(program: Program, *, prog_type: str | None = None, unprivileged: bool = False,
           log_level: int = 0, data_size: int = 0) -> VerifierResult:
    """The verdict of the verifier on ``program`` (never raises for a rejection).

    ``prog_type="raw"`` checks pybpf's input convention (R1 = ``data_size`` read-write bytes,
    R2 = ``data_size``) instead of a kernel program type's context.
    """
    if log_level not in (0, 1, 2):
        raise UsageError(f"log level {log_level} is not one of 0, 1, 2")
    ptype_name = prog_type or program.prog_type or "socket_filter"
    ptype = get_prog_type(ptype_name)
    log = VerifierLog(log_level, program.maps)
    try:
        layout = cfg.build_layout(program.insns, unprivileged=unprivileged,
                                  has_func_info=bool(getattr(program, "func_info", None)))
    except cfg.StructuralError as exc:
        text = exc.message + "\n" if log_level else ""
        if log_level >= 2 and exc.error_id not in ("empty", "too-large", "bad-call",
                                                    "too-many-subprogs"):
            # check_subprogs prints the subprograms before the later structural checks
            text = "".join(f"func#{i} @{start}\n" for i, start in
                           enumerate(cfg.subprog_starts(program.insns))) + text
        return VerifierResult(False, exc.message, 0, text + "processed 0 insns (limit 1000000) "
                              "max_states_per_insn 0 total_states 0 peak_states 0 mark_read 0\n",
                              exc.error_id, exc.pc, {}, None, program, ptype_name)
    env = Env(program, layout, ptype, unprivileged=unprivileged, log=log, data_size=data_size)
    try:
        do_check(env)
        check_stack_depth(env)
    except Reject as exc:
        if log_level and not exc.facts.get("logged"):
            if exc.pc is not None and layout.insns[exc.pc] is not None and \
                    not log.text().endswith(f"{exc.pc}: {insn_text(layout.insns[exc.pc])}\n"):
                line = f"{exc.pc}: {insn_text(layout.insns[exc.pc])}\n"
                mark = env.log_mark
                if exc.pc == env.last_pc and mark is not None and mark <= len(log.parts) \
                        and line not in log.parts[mark:]:
                    # the instruction goes before what its checks logged (backtracking)
                    log.parts.insert(mark, line)
                elif line not in log.parts[-1:]:
                    log.parts.append(line)
            log.parts.append(exc.message + "\n")
        history = env.last_state.history if env.last_state is not None else None
        text = log.text() + summary_line(env) + "\n"
        return VerifierResult(False, exc.message.splitlines()[-1] if "\n" in exc.message
                              else exc.message, env.insn_processed, text, exc.error_id,
                              exc.pc, exc.facts, history, program, ptype_name)
    text = (log.text() if log_level >= 2 else "") + summary_line(env) + "\n"
    return VerifierResult(True, None, env.insn_processed, text, None, None, {}, None, program,
                          ptype_name)


def check(program: Program, **kwargs) -> VerifierResult:
    """Like :func:`verify`, but raise :class:`VerifierError` when the program is rejected."""
    result = verify(program, **kwargs)
    if not result.accepted:
        raise VerifierError(result.error or "rejected", result.pc, result.log)
    return result
