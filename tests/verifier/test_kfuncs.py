"""kfuncs with scalar or no arguments (the bpf_rcu_read_lock and bpf_preempt_disable regions,
a scalar kfunc) and the numeric iterator's argument checks: pybpf's verdict on each small
program is the running kernel's, and a rejection carries the kernel's error line.

The kfuncs are called by their BTF ids in the running kernel's ``/sys/kernel/btf/vmlinux``
(``call`` with src=BPF_PSEUDO_KFUNC_CALL), as a loaded object's calls are after libbpf (or
pybpf's ELF loader) resolved its ``__ksym`` externs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pybpf import isa
from pybpf.program import Program
from pybpf.verifier import verify

from .oracle import kernel_verdict

pytestmark = pytest.mark.skipif(not Path("/sys/kernel/btf/vmlinux").exists(),
                                reason="no kernel BTF: kfunc ids cannot be resolved")

I = isa.Instruction
EXIT = I(isa.JMP | isa.EXIT, 0, 0, 0, 0)
LOCK, UNLOCK = "bpf_rcu_read_lock", "bpf_rcu_read_unlock"
PDIS, PEN = "bpf_preempt_disable", "bpf_preempt_enable"
NEW, DESTROY = "bpf_iter_num_new", "bpf_iter_num_destroy"
MODRET = "bpf_modify_return_test_tp"


def kf(name: str):
    from pybpf.btf import load_vmlinux
    return I(isa.JMP | isa.CALL, 0, isa.CALL_KFUNC, 0, load_vmlinux().find(name, "func")[0].id)


def mov(d: int, imm: int):
    return I(isa.ALU64 | isa.MOV | isa.K, d, 0, 0, imm)


def movx(d: int, s: int):
    return I(isa.ALU64 | isa.MOV | isa.X, d, s, 0, 0)


def fp(d: int, off: int):
    return [movx(d, 10), I(isa.ALU64 | isa.ADD | isa.K, d, 0, 0, off)]


LDABS = I(isa.LD | isa.ABS | isa.B, 0, 0, 0, 0)

PROGRAMS = {
    "rcu_region": lambda: [kf(LOCK), kf(UNLOCK), mov(0, 0), EXIT],
    "rcu_nested": lambda: [kf(LOCK), kf(LOCK), kf(UNLOCK), kf(UNLOCK), mov(0, 0), EXIT],
    "rcu_unmatched_unlock": lambda: [kf(UNLOCK), mov(0, 0), EXIT],
    "rcu_exit_inside": lambda: [kf(LOCK), mov(0, 0), EXIT],
    "rcu_locked_on_one_branch": lambda: [I(isa.JMP | isa.JEQ | isa.K, 1, 0, 1, 0), kf(LOCK),
                                         mov(0, 0), EXIT],
    "rcu_helper_inside": lambda: [kf(LOCK), I(isa.JMP | isa.CALL, 0, 0, 0, 5), kf(UNLOCK),
                                  mov(0, 0), EXIT],
    "rcu_subprog_inside": lambda: [kf(LOCK), I(isa.JMP | isa.CALL, 0, 1, 0, 3), kf(UNLOCK),
                                   mov(0, 0), EXIT, mov(0, 0), EXIT],
    "rcu_locked_in_subprog": lambda: [I(isa.JMP | isa.CALL, 0, 1, 0, 3), kf(UNLOCK), mov(0, 0),
                                      EXIT, kf(LOCK), mov(0, 0), EXIT],
    "rcu_ld_abs_inside": lambda: [movx(6, 1), kf(LOCK), LDABS, kf(UNLOCK), mov(0, 0), EXIT],
    "preempt_nested": lambda: [kf(PDIS), kf(PDIS), kf(PEN), kf(PEN), mov(0, 0), EXIT],
    "preempt_left_disabled": lambda: [kf(PDIS), kf(PDIS), kf(PEN), mov(0, 0), EXIT],
    "preempt_unmatched_enable": lambda: [kf(PEN), mov(0, 0), EXIT],
    "preempt_ld_abs_inside": lambda: [movx(6, 1), kf(PDIS), LDABS, kf(PEN), mov(0, 0), EXIT],
    "regions_interleaved": lambda: [kf(PDIS), kf(LOCK), kf(PEN), kf(UNLOCK), mov(0, 0), EXIT],
    "both_regions_open_at_exit": lambda: [kf(PDIS), kf(LOCK), mov(0, 0), EXIT],
    "iterator_leak_and_rcu_open": lambda: [*fp(1, -8), mov(2, 0), mov(3, 3), kf(NEW), kf(LOCK),
                                           mov(0, 0), EXIT],
    "scalar_kfunc": lambda: [mov(1, 5), kf(MODRET), EXIT],
    "scalar_kfunc_uninit_arg": lambda: [kf(MODRET), mov(0, 0), EXIT],
    "scalar_kfunc_pointer_arg": lambda: [movx(1, 10), kf(MODRET), mov(0, 0), EXIT],
    "iter_new_uninit_end": lambda: [*fp(1, -8), mov(2, 0), kf(NEW), mov(0, 0), EXIT],
    "iter_new_scalar_iterator": lambda: [mov(1, 0), mov(2, 0), mov(3, 3), kf(NEW), mov(0, 0),
                                         EXIT],
    "iter_new_ctx_iterator": lambda: [mov(2, 0), mov(3, 3), kf(NEW), mov(0, 0), EXIT],
    "iter_new_past_the_stack": lambda: [*fp(1, -516), mov(2, 0), mov(3, 3), kf(NEW),
                                        *fp(1, -516), kf(DESTROY), mov(0, 0), EXIT],
    "iter_new_destroy": lambda: [*fp(1, -16), mov(2, 0), mov(3, 3), kf(NEW), *fp(1, -16),
                                 kf(DESTROY), mov(0, 0), EXIT],
    "iter_destroy_twice": lambda: [*fp(1, -16), mov(2, 0), mov(3, 3), kf(NEW), *fp(1, -16),
                                   kf(DESTROY), *fp(1, -16), kf(DESTROY), mov(0, 0), EXIT],
}


@pytest.mark.kernel
@pytest.mark.parametrize("prog_type", ["socket_filter", "xdp"])
@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_kfunc_program_gets_the_kernels_verdict_and_words(name, prog_type):
    if prog_type == "xdp" and "ld_abs" in name:
        pytest.skip("LD_ABS is a socket-filter instruction")
    prog = Program(insns=PROGRAMS[name](), prog_type=prog_type)
    ours = verify(prog)
    theirs = kernel_verdict(prog, prog_type)
    assert ours.accepted == theirs.accepted, (ours.error, theirs.log[-500:])
    if not theirs.accepted:
        assert ours.error in theirs.log, (ours.error, theirs.log[-500:])


def test_an_unmodelled_kfunc_is_refused_by_name():
    prog = Program(insns=[kf("bpf_ktime_get_coarse_ns"), mov(0, 0), EXIT])
    ours = verify(prog)
    assert not ours.accepted
    assert "bpf_ktime_get_coarse_ns" in ours.error and "not supported" in ours.error


def test_a_kfunc_id_that_is_no_kernel_function_is_refused():
    prog = Program(insns=[I(isa.JMP | isa.CALL, 0, isa.CALL_KFUNC, 0, 1), mov(0, 0), EXIT])
    ours = verify(prog)
    assert not ours.accepted and "BTF id 1" in ours.error
