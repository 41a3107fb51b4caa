"""The tracing fixtures, attached in the kernel and triggered by this process: the values they
record are checked against the operating system itself (our pid, our parent's pid, the
kernel version) -- the end-to-end test of CO-RE relocations and kconfig externs."""

from __future__ import annotations

import contextlib
import os

import pytest

from pybpf.elf import load_object
from pybpf.elf.kconfig import kernel_version

pytestmark = pytest.mark.kernel


@contextlib.contextmanager
def on_cpu0():
    """The perf events behind tracepoints and kprobes are opened on CPU 0 only."""
    old = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {0})
    try:
        yield
    finally:
        os.sched_setaffinity(0, old)


def _attach(kind: str, prog, target: str):
    try:
        from pybpf.kernel.attach import attach_kprobe, attach_tracepoint
    except ImportError as exc:
        pytest.skip(f"pybpf.kernel.attach unavailable: {exc}")
    try:
        if kind == "tracepoint":
            return attach_tracepoint(prog, *target.split(":"))
        return attach_kprobe(prog, target)
    except Exception as exc:  # noqa: BLE001 - a kernel without the hook
        pytest.skip(f"cannot attach {kind} {target}: {exc}")


def test_co_re_reads_our_pid_and_parent_pid_from_task_struct(fixture_objects, bpf_kernel):
    spec = load_object(fixture_objects["core_read"])
    spec.set_variable("target_tgid", os.getpid())
    coll = bpf_kernel(spec)
    with on_cpu0():
        link = _attach("tracepoint", coll.programs["core_facts"], "syscalls:sys_enter_getppid")
        try:
            os.getppid()
        finally:
            link.close()
    facts = coll.typed("facts")
    assert facts[0] == os.getpid()
    assert facts[1] == os.getppid()
    assert facts[3] == 0           # field_that_does_not_exist: not in the kernel's task_struct
    assert facts[4] == 8           # sizeof(real_parent): a pointer
    assert facts[5] == 3           # PIDTYPE_SID in the kernel's enum pid_type
    assert facts[6] == kernel_version()
    from pybpf.btf import load_vmlinux
    task = load_vmlinux().find_one("task_struct", "struct")
    assert facts[2] == next(m for m in task.members if m.name == "tgid").bit_offset // 8


def test_tracepoint_counts_our_openat_calls_in_the_kernel_and_the_vm(fixture_objects,
                                                                     bpf_kernel, bpf_vm):
    spec = load_object(fixture_objects["tracepoint"])
    coll = bpf_kernel(spec)
    with on_cpu0():
        link = _attach("tracepoint", coll.programs["count_openat"], "syscalls:sys_enter_openat")
        try:
            for _ in range(3):
                os.close(os.open("/dev/null", os.O_RDONLY))
        finally:
            link.close()
    counts = coll.typed("opens")
    assert counts.get(os.getpid(), 0) >= 3
    # the same program in the VM, on a context laid out like the tracepoint's
    vm = bpf_vm(spec)
    ctx = bytes(8) + (257).to_bytes(4, "little") + bytes(4) + (-100).to_bytes(8, "little",
                                                                              signed=True)
    ctx += bytes(8) + bytes(8) + bytes(8)      # filename, flags (read-only), mode
    for _ in range(3):
        assert vm.programs["count_openat"].run(ctx=ctx) == 0
    assert vm.typed("opens")[os.getpid()] == 3
