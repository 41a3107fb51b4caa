"""The kernel as the oracle: load a program with BPF_PROG_LOAD and return its verdict and log.

Uses :func:`pybpf.kernel.load_program` when the kernel engineer's module is present; otherwise
a minimal private bpf(2) shim (x86_64 syscall 321) that is enough for verdicts: it creates the
program's maps, patches PSEUDO_MAP_IDX loads to map fds and loads with a log buffer.
"""

from __future__ import annotations

import ctypes
import os
import re
import struct
from dataclasses import dataclass

from pybpf import isa
from pybpf.program import Program

_libc = ctypes.CDLL(None, use_errno=True)
_SYS_BPF = 321
_MAP_CREATE, _PROG_LOAD = 0, 5
PROG_TYPES = {"socket_filter": 1, "kprobe": 2, "sched_cls": 3, "sched_act": 4,
              "tracepoint": 5, "xdp": 6, "perf_event": 7, "cgroup_skb": 8,
              "raw_tracepoint": 17}
MAP_TYPES = {"hash": 1, "array": 2, "prog_array": 3, "perf_event_array": 4,
             "percpu_hash": 5, "percpu_array": 6, "lru_hash": 9, "ringbuf": 27,
             "queue": 22, "stack": 23}


@dataclass
class Verdict:
    accepted: bool
    errno: int
    log: str

    @property
    def insns_processed(self) -> int | None:
        m = re.search(r"processed (\d+) insns", self.log)
        return int(m.group(1)) if m else None

    @property
    def verification_ns(self) -> int | None:
        m = re.search(r"verification time (\d+) usec", self.log)
        return int(m.group(1)) * 1000 if m else None


def _bpf(cmd: int, attr: bytes) -> int:
    buf = ctypes.create_string_buffer(attr, len(attr))
    return _libc.syscall(_SYS_BPF, cmd, buf, len(attr))


def _create_map(spec) -> int:
    attr = struct.pack("<IIIII", MAP_TYPES[spec.type], spec.key_size, spec.value_size,
                       spec.max_entries, spec.flags).ljust(72, b"\0")
    fd = _bpf(_MAP_CREATE, attr)
    if fd < 0:
        raise OSError(ctypes.get_errno(), f"map create {spec.name} failed")
    return fd


def kernel_verdict(program: Program, prog_type: str | None = None, log_level: int = 1,
                   log_size: int = 1 << 24) -> Verdict:
    """Load ``program`` in the running kernel and report accept/reject with the log."""
    fds = [_create_map(m) for m in program.maps]
    try:
        insns = []
        for insn in program.insns:
            if insn.opcode == isa.LDDW and insn.src in (isa.PSEUDO_MAP_IDX,
                                                       isa.PSEUDO_MAP_IDX_VALUE):
                src = isa.PSEUDO_MAP_FD if insn.src == isa.PSEUDO_MAP_IDX \
                    else isa.PSEUDO_MAP_VALUE
                insn = isa.Instruction(insn.opcode, insn.dst, src, insn.off,
                                       fds[insn.imm], insn.imm_hi)
            insns.append(insn)
        code = ctypes.create_string_buffer(isa.encode(insns))
        lic = ctypes.create_string_buffer(b"GPL")
        log = ctypes.create_string_buffer(log_size)
        ptype = PROG_TYPES[prog_type or program.prog_type]
        attr = struct.pack("<IIQQIIQ", ptype, len(code.raw) // 8, ctypes.addressof(code),
                           ctypes.addressof(lic), log_level, log_size,
                           ctypes.addressof(log)).ljust(160, b"\0")
        fd = _bpf(_PROG_LOAD, attr)
        err = ctypes.get_errno() if fd < 0 else 0
        text = log.value.decode(errors="replace")
        if fd >= 0:
            os.close(fd)
        return Verdict(fd >= 0, err, text)
    finally:
        for fd in fds:
            os.close(fd)


def kernel_verdict_btf(program: Program, prog_type: str | None = None) -> Verdict:
    """Like :func:`kernel_verdict` for programs from clang objects: loaded through
    :func:`pybpf.kernel.load_program`, which passes the object's BTF, func_info and line_info
    and creates the maps with their BTF types (the kernel needs them for callbacks and spin
    locks)."""
    from pybpf import kernel
    from pybpf.errors import KernelError
    try:
        with kernel.load_program(program, prog_type=prog_type, log_level=1) as kp:
            return Verdict(True, 0, kp.log or "")
    except KernelError as exc:
        return Verdict(False, getattr(exc, "errno", 0) or 0, exc.log or str(exc))
