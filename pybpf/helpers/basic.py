"""Basic helpers: time, randomness, the current task, trace_printk and the probe_read family.

Prototypes use the kernel's ``bpf_func_proto`` vocabulary (``kernel/bpf/helpers.c``,
``kernel/trace/bpf_trace.c``). Implementations run in userspace, so "the current task" is this
process (as for a program run by BPF_PROG_TEST_RUN from it), the CPU is whatever the OS reports,
and the probe_read helpers read the program's memory regions: an address outside every region
is the userspace equivalent of an unmapped page, so they fail with ``-EFAULT`` and zero the
destination as the kernel does.
"""

from __future__ import annotations

import errno
import os
import random
import re
import threading
import time

from . import helper

EFAULT = errno.EFAULT
EINVAL = errno.EINVAL
M64 = (1 << 64) - 1


@helper("ktime_get_ns", "integer")
def ktime_get_ns(env, *_args) -> int:
    """CLOCK_MONOTONIC in nanoseconds."""
    return time.monotonic_ns()


@helper("ktime_get_boot_ns", "integer")
def ktime_get_boot_ns(env, *_args) -> int:
    """CLOCK_BOOTTIME in nanoseconds (monotonic, counting suspend)."""
    return time.clock_gettime_ns(time.CLOCK_BOOTTIME)


@helper("ktime_get_coarse_ns", "integer")
def ktime_get_coarse_ns(env, *_args) -> int:
    return time.clock_gettime_ns(getattr(time, "CLOCK_MONOTONIC_COARSE", time.CLOCK_MONOTONIC))


@helper("get_prandom_u32", "integer")
def get_prandom_u32(env, *_args) -> int:
    return random.getrandbits(32)


@helper("get_smp_processor_id", "integer")
def get_smp_processor_id(env, *_args) -> int:
    """The CPU this thread runs on (from /proc/self/stat), 0 when unknown."""
    try:
        with open(f"/proc/self/task/{threading.get_native_id()}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return int(fields[36])    # field 39 "processor", counted after the comm
    except (OSError, IndexError, ValueError):
        return 0


@helper("get_current_pid_tgid", "integer")
def get_current_pid_tgid(env, *_args) -> int:
    """tgid (the process id) in the upper half, the thread id in the lower half."""
    return (os.getpid() << 32) | threading.get_native_id()


@helper("get_current_uid_gid", "integer")
def get_current_uid_gid(env, *_args) -> int:
    return (os.getgid() << 32) | os.getuid()


def _comm() -> bytes:
    try:
        with open(f"/proc/self/task/{threading.get_native_id()}/comm", "rb") as f:
            return f.read().rstrip(b"\n")[:15]
    except OSError:
        return b"python"


@helper("get_current_comm", "integer", "ptr_to_uninit_mem", "const_size")
def get_current_comm(env, buf: int, size: int, *_args) -> int:
    """Copy the task name, NUL-terminated and truncated to ``size`` (kernel: strscpy_pad)."""
    if size == 0:
        return -EINVAL & M64
    comm = _comm()[: size - 1]
    env.write(buf, comm + b"\0" * (size - len(comm)))
    return 0


# --- probe_read ---------------------------------------------------------------------------------

def _probe_read(env, dst: int, size: int, src: int) -> int:
    try:
        data = env.read(src, size)
    except Exception:  # an unmapped address: the kernel's copy_from_kernel_nofault fails
        env.write(dst, b"\0" * size)
        return -EFAULT & M64
    env.write(dst, data)
    return 0


def _probe_read_str(env, dst: int, size: int, src: int) -> int:
    """Copy a NUL-terminated string of at most ``size`` bytes including the NUL; returns the
    length copied including the NUL (``strncpy_from_kernel_nofault`` + the helper's rules)."""
    if size == 0:
        return 0
    try:
        text = env.memory.read_cstring(src, size - 1)
    except Exception:
        env.write(dst, b"\0" * size)
        return -EFAULT & M64
    env.write(dst, text + b"\0")
    return len(text) + 1


_PROBE_ARGS = ("ptr_to_uninit_mem", "const_size_or_zero", "anything")
for _name in ("probe_read", "probe_read_user", "probe_read_kernel"):
    helper(_name, "integer", *_PROBE_ARGS, gpl_only=True)(
        lambda env, dst, size, src, *_: _probe_read(env, dst, size, src))
for _name in ("probe_read_str", "probe_read_user_str", "probe_read_kernel_str"):
    helper(_name, "integer", *_PROBE_ARGS, gpl_only=True)(
        lambda env, dst, size, src, *_: _probe_read_str(env, dst, size, src))


# --- trace_printk -------------------------------------------------------------------------------

_SPEC = re.compile(rb"%(?:%|([-+ 0#]*)(\d*)(ll|l|h|hh|z)?([diuxXcsp]))")
_SIGNED_BITS = {b"ll": 64, b"l": 64, b"z": 64, None: 32, b"h": 32, b"hh": 32}


def format_printk(env, fmt: bytes, args: list[int]) -> str:
    """Format like the kernel's ``bpf_trace_printk`` (at most 3 arguments; %s reads memory)."""
    out = bytearray()
    pos = 0
    it = iter(args)
    for m in _SPEC.finditer(fmt):
        out += fmt[pos:m.start()]
        pos = m.end()
        if m.group(0) == b"%%":
            out += b"%"
            continue
        flags, width, length, conv = m.groups()
        value = next(it, 0)
        bits = _SIGNED_BITS.get(length, 64)
        if conv in b"di":
            v = value & ((1 << bits) - 1)
            v = v - (1 << bits) if v >> (bits - 1) else v
            text = str(v).encode()
        elif conv == b"u":
            text = str(value & ((1 << bits) - 1)).encode()
        elif conv in (b"x", b"X"):
            text = format(value & ((1 << bits) - 1), "x" if conv == b"x" else "X").encode()
        elif conv == b"c":
            text = bytes([value & 0xFF])
        elif conv == b"p":
            text = f"{value:016x}".encode()
        else:  # %s
            try:
                text = env.memory.read_cstring(value, 1024)
            except Exception:
                text = b"(efault)"
        if width:
            pad = b"0" if flags and b"0" in flags and conv != b"s" else b" "
            w = int(width)
            text = text.ljust(w, b" ") if flags and b"-" in flags else text.rjust(w, pad)
        out += text
    out += fmt[pos:]
    return out.decode("utf-8", "replace")


@helper("trace_printk", "integer", "ptr_to_mem", "const_size", gpl_only=True)
def trace_printk(env, fmt_ptr: int, size: int, a1: int, a2: int, a3: int) -> int:
    """Format and append a line to the interpreter's trace pipe; returns its length."""
    raw = env.read(fmt_ptr, size)
    nul = raw.find(b"\0")
    if nul < 0:
        return -EINVAL & M64
    text = format_printk(env, raw[:nul], [a1, a2, a3])
    sink = getattr(env, "trace_printk", None)
    if sink is not None:
        sink(text)
    return len(text.encode())


# --- bpf_loop -----------------------------------------------------------------------------------

#: the kernel's BPF_MAX_LOOPS
MAX_LOOPS = 1 << 23


@helper("loop", "integer", "anything", "ptr_to_func", "ptr_to_stack_or_null", "anything")
def bpf_loop(env, nr_loops: int, callback: int, ctx: int, flags: int, *_args) -> int:
    """Call ``callback(i, ctx)`` for i in 0..nr_loops-1 until it returns non-zero; returns the
    number of calls made (kernel/bpf/bpf_iter.c)."""
    if flags:
        return -EINVAL & M64
    nr_loops &= 0xFFFFFFFF
    if nr_loops > MAX_LOOPS:
        return -errno.E2BIG & M64
    for i in range(nr_loops):
        if env.call_function(callback, i, ctx, 0, 0, 0) & M64:
            return i + 1
    return nr_loops
