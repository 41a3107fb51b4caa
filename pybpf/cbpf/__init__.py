"""Classic BPF (the 1992 BSD Packet Filter and Linux's socket filter dialect).

* :mod:`.isa` opcode tables and :class:`Instruction`;
* :mod:`.machine` the interpreter (A, X, M[0..15]) with Linux ancillary loads;
* :mod:`.checker` the kernel's ``bpf_check_classic`` rules;
* :mod:`.to_ebpf` translation to an eBPF socket filter :class:`pybpf.program.Program`;
* :mod:`.parser` / :mod:`.codegen` / :mod:`.optimizer` the pcap-filter(7) compiler;
* :mod:`.printer` tcpdump's ``-d`` / ``-dd`` / ``-ddd`` formats.
"""

from .isa import Instruction, decode, encode, parse_ddd  # noqa: F401
from .machine import Machine, SkbContext, run  # noqa: F401
from .checker import CheckError, check, is_valid  # noqa: F401


def compile_filter(expression: str, linktype: str | int = "EN10MB", *, snaplen: int = 262144,
                   optimize: bool = True, linux_ext: bool = False):
    """Compile a pcap-filter(7) expression into a list of classic instructions."""
    from .codegen import compile_expression
    return compile_expression(expression, linktype, snaplen=snaplen, optimize=optimize,
                              linux_ext=linux_ext)
