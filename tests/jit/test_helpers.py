"""Helpers under the JIT: the generic trampoline into pybpf.helpers, the native fast paths
(array lookups inlined, clocks, prandom) and tail calls -- compared with the interpreter on
the same programs, map contents included."""

from __future__ import annotations

import time

import pytest

from pybpf.asm import assemble
from pybpf.errors import HelperError, VMError
from pybpf.jit import JITProgram
from pybpf.vm import Interpreter

COUNTER = """
.map counters {kind} key=4 value=8 max_entries=8
    r6 = r1
    r7 = 0
loop:
    r1 = r7
    r1 &= 7
    *(u32 *)(r10 - 4) = r1
    r1 = counters ll
    r2 = r10
    r2 += -4
    call bpf_map_lookup_elem
    if r0 != 0 goto found
    r1 = counters ll
    r2 = r10
    r2 += -4
    r3 = r10
    r3 += -16
    *(u64 *)(r10 - 16) = r7
    r4 = 0
    call bpf_map_update_elem
    goto next
found:
    r1 = r7
    lock *(u64 *)(r0 + 0) += r1
next:
    r7 += 3
    if r7 < 40 goto loop
    r0 = r7
    exit
"""


@pytest.mark.parametrize("kind", ["array", "hash", "lru_hash"])
@pytest.mark.parametrize("checked", [True, False])
def test_a_map_counter_leaves_the_interpreters_map_contents(kind, checked):
    prog = assemble(COUNTER.format(kind=kind))
    interp = Interpreter(prog)
    jit = JITProgram(prog, checked=checked)
    for engine in (interp, jit):
        assert engine.run(b"x" * 20) == 42
        assert engine.run(b"x" * 20) == 42
    assert sorted(jit.maps[0].items()) == sorted(interp.maps[0].items())


@pytest.mark.kernel
@pytest.mark.parametrize("kind", ["array", "hash", "lru_hash"])
def test_a_map_counter_leaves_the_kernels_map_contents(kind):
    from pybpf import kernel

    prog = assemble(COUNTER.format(kind=kind))
    with kernel.load_program(prog) as kp:
        for _ in range(2):
            assert kp.test_run(bytes(14)).retval == 42
        expected = sorted(kp.maps[0].items())
    jit = JITProgram(prog, checked=False)
    for _ in range(2):
        assert jit.run(bytes(14)) == 42
    assert sorted(jit.maps[0].items()) == expected


def test_array_lookups_are_inlined_without_a_call_into_python():
    jit = JITProgram(assemble(COUNTER.format(kind="array")), checked=False)
    ir = jit.emit_llvm()
    body = ir[ir.index("@p0.f0"):]
    body = body[: body.index("\n}\n")]
    calls = [line for line in body.splitlines() if "call i64 %" in line]
    # one trampoline call is left: bpf_map_update_elem (mode 0, helper id 2); no lookup (id 1)
    assert len(calls) == 1 and "i64 0, i64 2," in calls[0]


def test_an_out_of_range_array_key_gives_null_like_the_kernel():
    src = """
    .map a array key=4 value=8 max_entries=4
        r1 = 4
        *(u32 *)(r10 - 4) = r1
        r1 = a ll
        r2 = r10
        r2 += -4
        call bpf_map_lookup_elem
        exit
    """
    assert JITProgram(assemble(src)).run() == 0


def test_a_helper_misused_raises_the_interpreters_helper_error():
    src = "r1 = 12345\nr2 = r10\nr2 += -8\ncall bpf_map_lookup_elem\nexit"
    prog = assemble(src)
    errors = []
    for engine in (Interpreter(prog, sandbox=True), JITProgram(prog, sandbox=True)):
        with pytest.raises(HelperError) as info:
            engine.run()
        errors.append((str(info.value), info.value.pc))
    assert errors[0] == errors[1]


def test_a_helper_reading_outside_memory_raises_vmerror_with_the_call_pc():
    src = """
    .map h hash key=8 value=8 max_entries=4
        r1 = h ll
        r2 = 16
        call bpf_map_lookup_elem
        exit
    """
    jit = JITProgram(assemble(src), sandbox=True)
    with pytest.raises(VMError) as info:
        jit.run()
    with pytest.raises(VMError) as expected:
        jit.vm.run()
    assert info.value.pc == expected.value.pc == 3     # the call's slot (lddw takes two)
    assert info.value.message == expected.value.message


def test_native_ktime_is_the_monotonic_clock():
    jit = JITProgram(assemble("call bpf_ktime_get_ns\nexit"))
    before = time.monotonic_ns()
    now = jit.run()
    after = time.monotonic_ns()
    assert before <= now <= after
    assert "call i64 %" not in jit.emit_llvm().split("@p0.f0")[1].split("\n}\n")[0]


def test_native_prandom_gives_32_bit_values_that_vary():
    jit = JITProgram(assemble("call bpf_get_prandom_u32\nexit"))
    values = {jit.run() for _ in range(20)}
    assert len(values) > 15 and all(v < 1 << 32 for v in values)


def test_an_overridden_helper_is_called_instead_of_the_native_path():
    jit = JITProgram(assemble("call bpf_ktime_get_ns\nexit"), helpers={5: lambda env, *a: 77})
    assert jit.run() == 77


TAIL = """
.map jt prog_array key=4 value=4 max_entries=4
    r6 = r1
    r1 = r6
    r2 = jt ll
    r3 = 1
    call bpf_tail_call
    r0 = 99
    exit
"""


def test_a_tail_call_ends_the_program_with_the_targets_r0():
    target = assemble("r0 = *(u8 *)(r1 + 1)\nr0 += 40\nexit")
    jit = JITProgram(assemble(TAIL))
    jit.maps[0].update(1, target)
    assert jit.run(b"\x00\x02") == 42
    assert JITProgram(assemble(TAIL)).run(b"\x00\x02") == 99   # empty slot: falls through


LOOP = """
    r6 = 0
    *(u64 *)(r10 - 8) = r6
    r1 = {n}
    r2 = cb ll
    r3 = r10
    r3 += -8
    r4 = {flags}
    call bpf_loop
    r1 = *(u64 *)(r10 - 8)
    r0 <<= 32
    r0 |= r1
    exit
cb:
    r3 = *(u64 *)(r2 + 0)
    r3 += r1
    *(u64 *)(r2 + 0) = r3
    r0 = 0
    if r1 != {stop} goto keep
    r0 = 1
keep:
    exit
"""


def _loop_program(n: int, flags: int = 0, stop: int = 1000):
    from pybpf import isa

    prog = assemble(LOOP.format(n=n, flags=flags, stop=stop))
    insns = list(prog.insns)
    for i, insn in enumerate(insns):   # `r2 = cb ll` as the callback's address (PSEUDO_FUNC)
        if insn.opcode == isa.LDDW and insn.dst == 2:
            target = next(p for p, name in prog.labels.items() if name == "cb")
            slot = isa.slot_starts(insns)[i]
            insns[i] = isa.Instruction(isa.LDDW, 2, isa.PSEUDO_FUNC, 0, target - slot - 1, 0)
    prog.insns = insns
    return prog


# checked only: without BTF func_info the verifier (the kernel's too) refuses a callback, so
# these assembled programs run sandboxed
@pytest.mark.parametrize("checked", [True])
def test_bpf_loop_runs_the_callback_natively_like_the_kernel_defines_it(checked):
    # returns the number of iterations (high half) and the sum of indices seen (low half)
    assert JITProgram(_loop_program(10), checked=checked, sandbox=True).run() == (10 << 32) | 45
    assert JITProgram(_loop_program(10, stop=3), checked=checked, sandbox=True).run() == (4 << 32) | 6
    assert JITProgram(_loop_program(0), checked=checked, sandbox=True).run() == 0
    assert JITProgram(_loop_program(5, flags=1), checked=checked, sandbox=True).run() == \
        ((-22 & 0xFFFFFFFF) << 32)
    assert JITProgram(_loop_program((1 << 23) + 1), checked=checked, sandbox=True).run() == \
        ((-7 & 0xFFFFFFFF) << 32)


LOOP_C = r"""
typedef unsigned int __u32; typedef unsigned long long __u64;
#define SEC(x) __attribute__((section(x), used))
static long (*bpf_loop)(__u32 nr, void *fn, void *ctx, __u64 flags) = (void *) 181;
struct ctx { __u64 sum; __u32 stop; };
static long cb(__u32 index, struct ctx *c) { c->sum += index * 3 + 1; return index == c->stop; }
SEC("socket")
int run_loop(void *skb)
{
    struct ctx c = { .sum = 0, .stop = STOP };
    long n = bpf_loop(10, cb, &c, 0);
    return (int)(c.sum * 100 + n);
}
char LICENSE[] SEC("license") = "GPL";
"""


@pytest.mark.kernel
@pytest.mark.parametrize("stop", [6, 99])
def test_bpf_loop_in_a_clang_program_gives_the_kernels_result(tmp_path, stop):
    import shutil
    import subprocess

    from pybpf import kernel
    from pybpf.elf import load_object

    if not shutil.which("clang-19"):
        pytest.skip("clang-19 not installed")
    src = tmp_path / "loop.c"
    src.write_text(LOOP_C.replace("STOP", str(stop)))
    obj = tmp_path / "loop.o"
    subprocess.run(["clang-19", "-O2", "-g", "-target", "bpf", "-c", str(src), "-o", str(obj)],
                   check=True)
    prog = load_object(obj).programs["run_loop"]
    expected = kernel.test_run(prog, bytes(14)).retval
    assert JITProgram(prog).run(bytes(14)) & 0xFFFFFFFF == expected
    assert JITProgram(prog, checked=False).run(bytes(14)) & 0xFFFFFFFF == expected


def test_a_tail_call_chain_stops_after_33_calls_like_the_kernel():
    # a program that tail-calls itself, counting in an array map
    src = """
    .map jt prog_array key=4 value=4 max_entries=1
    .map n array key=4 value=8 max_entries=1
        r6 = r1
        r1 = 0
        *(u32 *)(r10 - 4) = r1
        r1 = n ll
        r2 = r10
        r2 += -4
        call bpf_map_lookup_elem
        if r0 == 0 goto out
        r1 = 1
        lock *(u64 *)(r0 + 0) += r1
        r1 = r6
        r2 = jt ll
        r3 = 0
        call bpf_tail_call
    out:
        r0 = 7
        exit
    """
    prog = assemble(src)
    jit = JITProgram(prog)
    jit.maps[0].update(0, prog)
    assert jit.run() == 7
    assert int.from_bytes(jit.maps[1][0], "little") == 34


FOR_EACH = """
.map a array key=4 value=8 max_entries=5
    r1 = 0
    *(u64 *)(r10 - 8) = r1
    r1 = a ll
    r2 = cb ll
    r3 = r10
    r3 += -8
    r4 = 0
    call bpf_for_each_map_elem
    r1 = *(u64 *)(r10 - 8)
    r0 <<= 32
    r0 |= r1
    exit
cb:
    r5 = *(u32 *)(r2 + 0)
    r6 = *(u64 *)(r4 + 0)
    r6 += r5
    r6 += 10
    *(u64 *)(r4 + 0) = r6
    r0 = 0
    exit
"""


@pytest.mark.parametrize("checked", [True])     # sandboxed: no BTF func_info (see above)
def test_for_each_map_elem_calls_back_into_native_code_for_every_element(checked):
    from pybpf import isa

    prog = assemble(FOR_EACH)
    insns = list(prog.insns)
    starts = isa.slot_starts(insns)
    target = next(p for p, name in prog.labels.items() if name == "cb")
    for i, insn in enumerate(insns):
        if insn.opcode == isa.LDDW and insn.dst == 2:
            insns[i] = isa.Instruction(isa.LDDW, 2, isa.PSEUDO_FUNC, 0, target - starts[i] - 1, 0)
    prog.insns = insns
    # five elements visited; the callback summed their keys 0..4 plus 10 each
    assert JITProgram(prog, checked=checked, sandbox=True).run() == (5 << 32) | 60
