"""``bpf_map_lookup_elem`` on hash maps in native code (:mod:`pybpf.jit.hashindex`): the
map's native index must follow every insert, delete and eviction -- made by the program
through helpers, or by Python between runs -- so the JIT finds exactly the keys the
interpreter and the kernel find, with the same map contents afterwards."""

from __future__ import annotations

import pytest

from pybpf.asm import assemble
from pybpf.jit import JITProgram
from pybpf.jit.hashindex import attach, capacity_for
from pybpf.vm import Interpreter

#: insert keys k & 15 (value = the counter), bump found ones, delete every fourth found one:
#: deletes leave tombstones, re-inserts reuse them, and 600 rounds force index rebuilds
CHURN = """
.map h hash key={ks} value=8 max_entries=16
    r6 = 0
loop:
    r1 = r6
    r1 *= 7
    r1 &= 15
    *(u64 *)(r10 - 16) = r1
    *(u64 *)(r10 - 8) = r1
    r1 = h ll
    r2 = r10
    r2 += -16
    call bpf_map_lookup_elem
    if r0 != 0 goto found
    r1 = h ll
    r2 = r10
    r2 += -16
    r3 = r10
    r3 += -24
    *(u64 *)(r10 - 24) = r6
    r4 = 0
    call bpf_map_update_elem
    goto next
found:
    r1 = 1
    lock *(u64 *)(r0 + 0) += r1
    r7 = *(u64 *)(r0 + 0)
    r7 &= 3
    if r7 != 0 goto next
    r1 = h ll
    r2 = r10
    r2 += -16
    call bpf_map_delete_elem
next:
    r6 += 1
    if r6 < {rounds} goto loop
    r0 = 0
    r1 = 5
    *(u64 *)(r10 - 16) = r1
    *(u64 *)(r10 - 8) = r1
    r1 = h ll
    r2 = r10
    r2 += -16
    call bpf_map_lookup_elem
    if r0 == 0 goto out
    r0 = *(u64 *)(r0 + 0)
out:
    exit
"""


def churn(key_size: int, rounds: int = 600):
    return assemble(CHURN.format(ks=key_size, rounds=rounds))


def contents(engine):
    return sorted(engine.maps[0].items())


@pytest.mark.parametrize("key_size", [4, 8, 12, 16])
@pytest.mark.parametrize("checked", [True, False], ids=["checked", "unchecked"])
def test_churn_gives_the_interpreters_result_and_map(key_size, checked):
    prog = churn(key_size)
    jit = JITProgram(prog, checked=checked)
    assert "hl.head" in jit.emit_llvm(optimised=False)     # the native path was taken
    vm = Interpreter(prog)
    for _ in range(3):
        assert jit.run() == vm.run()
        assert contents(jit) == contents(vm)


def test_python_updates_between_runs_are_seen_by_native_lookups():
    prog = churn(8, rounds=0)       # only the final lookup of key 5
    jit = JITProgram(prog, checked=False)
    key = (5).to_bytes(8, "little")
    assert jit.run() == 0
    jit.maps[0].update(key, (77).to_bytes(8, "little"))
    assert jit.run() == 77
    jit.maps[0].delete(key)
    assert jit.run() == 0
    for k in range(16):             # fill, empty and refill: tombstones swept by rebuilds
        jit.maps[0].update(k.to_bytes(8, "little"), k.to_bytes(8, "little"))
    for k in range(16):
        jit.maps[0].delete(k.to_bytes(8, "little"))
    jit.maps[0].update(key, (9).to_bytes(8, "little"))
    assert jit.run() == 9
    index = attach(jit.maps[0])
    assert index.capacity == capacity_for(16)
    assert index.deleted <= index.capacity // 4


def test_hash_maps_with_odd_key_sizes_still_go_through_the_helper():
    """Keys that are not whole 32-bit words have no native hash: the trampoline."""
    odd = assemble(CHURN.format(ks=8, rounds=50).replace("key=8", "key=6")
                   .replace("*(u64 *)(r10 - 8) = r1", "*(u16 *)(r10 - 10) = r1"))
    jit = JITProgram(odd, checked=True)
    assert "hl.head" not in jit.emit_llvm(optimised=False)
    vm = Interpreter(odd)
    assert jit.run() == vm.run()
    assert contents(jit) == contents(vm)


@pytest.mark.parametrize("kind", ["lru_hash", "percpu_hash", "lru_percpu_hash"])
def test_lru_and_per_cpu_hash_churn_is_native_and_gives_the_interpreters_map(kind):
    prog = assemble(CHURN.format(ks=8, rounds=200).replace(" hash ", f" {kind} "))
    jit = JITProgram(prog, checked=True)
    assert "hl.head" in jit.emit_llvm(optimised=False)
    vm = Interpreter(prog)
    for _ in range(2):
        assert jit.run() == vm.run()
        assert contents(jit) == contents(vm)


@pytest.mark.kernel
@pytest.mark.parametrize("key_size", [4, 16])
def test_churn_gives_the_kernels_result_and_map(key_size):
    from pybpf import kernel

    prog = churn(key_size)
    prog.prog_type = "socket_filter"
    jit = JITProgram(prog, checked=False)
    r0 = jit.run(bytes(64))
    with kernel.load_program(prog) as kp:
        res = kp.test_run(bytes(64))
        assert res.retval == r0 & 0xFFFFFFFF
        assert sorted(kp.maps[0].items()) == contents(jit)
