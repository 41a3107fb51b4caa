"""One exception family for everything pybpf refuses.

Every user-facing error says *what* went wrong and *where*: a file, line and column for text
inputs, an instruction index for bytecode, a byte offset for binary files. The CLI prints
``str(error)`` on one line and exits non-zero, so the message must stand on its own.
"""

from __future__ import annotations


class BPFError(Exception):
    """Base of every error pybpf raises on purpose."""

    #: short stable identifier, used by ``--json`` output
    kind = "error"


class SourceLocation:
    """A place in a text input (1-based line and column).

    A plain class with a dataclass's ``__init__``/``__eq__``/``__repr__``: importing
    :mod:`dataclasses` (and :mod:`inspect` with it) here would cost every command its
    start-up time, ``pybpf trace`` included."""

    __slots__ = ("file", "line", "column")

    def __init__(self, file: str | None = None, line: int | None = None,
                 column: int | None = None):
        self.file, self.line, self.column = file, line, column

    def __eq__(self, other) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return (self.file, self.line, self.column) == (other.file, other.line, other.column)

    def __repr__(self) -> str:
        return f"SourceLocation(file={self.file!r}, line={self.line!r}, column={self.column!r})"

    def __str__(self) -> str:
        parts = [self.file or "<input>"]
        if self.line is not None:
            parts.append(str(self.line))
            if self.column is not None:
                parts.append(str(self.column))
        return ":".join(parts)


class DecodeError(BPFError):
    """Bytecode that is not a valid eBPF instruction stream."""

    kind = "decode"

    def __init__(self, message: str, index: int | None = None):
        self.index = index
        self.message = message
        where = f"instruction {index}: " if index is not None else ""
        super().__init__(f"{where}{message}")


class AssemblyError(BPFError):
    """Assembly text that cannot be assembled; carries file, line and column."""

    kind = "assembly"

    def __init__(self, message: str, file: str | None = None, line: int | None = None,
                 column: int | None = None):
        self.message = message
        self.location = SourceLocation(file, line, column)
        super().__init__(f"{self.location}: {message}")


class VMError(BPFError):
    """A fault while running a program: bad memory access, budget exhausted, bad call."""

    kind = "vm"

    def __init__(self, message: str, pc: int | None = None, address: int | None = None,
                 source: str | None = None):
        self.message = message
        self.pc = pc
        self.address = address
        self.source = source
        where = f"pc {pc}: " if pc is not None else ""
        tail = f" ({source})" if source else ""
        super().__init__(f"{where}{message}{tail}")


class BudgetExceeded(VMError):
    """The program ran more instructions than its budget allows (it may not terminate)."""

    kind = "budget"


class HelperError(VMError):
    """A helper call the engine cannot honour (unknown id, bad arguments at run time)."""

    kind = "helper"


class VerifierError(BPFError):
    """A program the verifier rejects."""

    kind = "verifier"

    def __init__(self, message: str, index: int | None = None, log: str = ""):
        self.message = message
        self.index = index
        self.log = log
        where = f"instruction {index}: " if index is not None else ""
        super().__init__(f"{where}{message}")


class MapError(BPFError):
    """A map operation that fails; ``errno`` is what the kernel would return."""

    kind = "map"

    def __init__(self, message: str, errno: int | None = None):
        self.message = message
        self.errno = errno
        super().__init__(message)


class KernelError(BPFError):
    """A bpf(2) call that failed: the command, errno and, for loads, the verifier log."""

    kind = "kernel"

    def __init__(self, message: str, errno: int | None = None, command: str | None = None,
                 log: str = ""):
        self.message = message
        self.errno = errno
        self.command = command
        self.log = log
        super().__init__(message)


class KernelUnsupported(KernelError):
    """bpf(2) is not permitted here, or the kernel lacks a feature."""

    kind = "unsupported"


class ObjectFileError(BPFError):
    """A malformed or unsupported ELF object; names the section or symbol."""

    kind = "object"


class BTFError(ObjectFileError):
    """Malformed BTF data."""

    kind = "btf"


class FilterError(BPFError):
    """A pcap-filter expression that cannot be compiled; points at the offending token."""

    kind = "filter"

    def __init__(self, message: str, expression: str | None = None, position: int | None = None):
        self.message = message
        self.expression = expression
        self.position = position
        text = message
        if expression is not None and position is not None:
            text = f"{message} at column {position + 1} in '{expression}'"
        super().__init__(text)


class CaptureError(BPFError):
    """A pcap/pcapng file that cannot be read or written, or a live capture that fails."""

    kind = "capture"


class UsageError(BPFError):
    """A request that does not make sense (wrong option combination, unknown program type)."""

    kind = "usage"
