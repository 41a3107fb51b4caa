"""Which helpers a program type may call: pybpf refuses at load, naming the helper, exactly the
calls the kernel's verifier refuses as unknown for that type; a helper pybpf lacks is refused at
load with its name; helper misuse at run time is a clear error naming the instruction."""

from __future__ import annotations

import pytest

from pybpf import kernel
from pybpf.asm import assemble
from pybpf.errors import BPFError, HelperError, KernelError, VMError
from pybpf.helpers import load_all
from pybpf.vm import Interpreter

from .compare import frame, ipv4

TYPES = ["xdp", "socket_filter", "sched_cls", "sched_act", "cgroup_skb", "kprobe", "tracepoint",
         "raw_tracepoint", "perf_event"]


def implemented() -> list[str]:
    return sorted(h.name[4:] if h.name.startswith("bpf_") else h.name
                  for h in load_all().values() if h.impl is not None)


def caller(helper: str) -> str:
    return f"r6 = r1\nr2 = 0\nr3 = 0\nr4 = 0\nr5 = 0\ncall bpf_{helper}\nr0 = 0\nexit"


@pytest.mark.kernel
@pytest.mark.parametrize("prog_type", TYPES)
def test_a_helper_is_refused_for_a_type_exactly_when_the_kernel_refuses_it(prog_type):
    differences = []
    for helper in implemented():
        program = assemble(caller(helper))
        try:
            kernel.load_program(program, prog_type=prog_type).close()
            kernel_refuses = False
        except KernelError as exc:
            text = exc.log or str(exc)
            kernel_refuses = "unknown func" in text or "cannot use helper" in text
        try:
            # the interpreter's own per-type helper table, which holds in sandboxed runs too
            Interpreter(program, prog_type=prog_type, sandbox=True)
            ours = False
        except HelperError as exc:
            assert f"bpf_{helper}" in str(exc) and "pc 5" in str(exc)
            ours = "may not be called" in str(exc)
        if ours != kernel_refuses:
            differences.append((helper, "refused by " + ("the kernel" if kernel_refuses
                                                         else "pybpf")))
    assert differences == []


def test_a_helper_pybpf_lacks_is_refused_at_load_with_its_name():
    with pytest.raises(HelperError, match="bpf_fib_lookup .* not implemented"):
        Interpreter(assemble(caller("fib_lookup")), prog_type="xdp", sandbox=True)


def test_a_packet_helper_without_a_program_type_is_a_clear_run_time_error():
    vm = Interpreter(assemble(caller("skb_load_bytes")), sandbox=True)
    with pytest.raises(HelperError, match=r"pc 5: .*needs a packet.*--type"):
        vm.run(b"\0" * 64)


def test_a_helper_given_a_bad_pointer_faults_at_its_call():
    source = """
        r1 = 0x1234 ll
        r2 = 4
        r3 = 0
        r4 = 0
        r5 = 0
        call bpf_csum_diff
        exit
    """
    vm = Interpreter(assemble(source), prog_type="xdp", sandbox=True)
    with pytest.raises(VMError, match="pc 6"):
        vm.run(frame(payload=ipv4()))


def test_skb_load_bytes_to_nowhere_faults_at_its_call():
    source = """
        r2 = 0
        r3 = 16
        r4 = 4
        call bpf_skb_load_bytes
        exit
    """
    vm = Interpreter(assemble(source), prog_type="sched_cls", sandbox=True)
    with pytest.raises(VMError, match="pc 3: .*0x10"):
        vm.run(frame(payload=ipv4()))


def test_an_unknown_program_type_is_named():
    with pytest.raises(BPFError, match="unknown program type 'xdpp'"):
        Interpreter(assemble("r0 = 0\nexit"), prog_type="xdpp", sandbox=True)
