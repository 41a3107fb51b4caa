"""The JIT's native paths for ring buffers, tail calls and LRU / per-CPU map lookups: the
same results, records and map contents as the interpreter and the kernel (BPF_PROG_TEST_RUN),
and proof that they run without the Python helper trampoline."""

from __future__ import annotations

import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pybpf import isa
from pybpf.asm import assemble
from pybpf.errors import HelperError, VMError
from pybpf.helpers import HELPER_IDS
from pybpf.jit import JITProgram
from pybpf.jit import runtime as jit_runtime
from pybpf.maps import create_map
from pybpf.vm import Interpreter

from ..maps.harness import NO_SHRINK, KernelRingReader, kernel_map, one_cpu
from ..maps.test_ringbuf import EMITTER, PACKET, emitter


@pytest.fixture
def python_calls(monkeypatch):
    """Every call native code makes into Python (helper trampoline), as (mode, helper id)."""
    calls: list[tuple[int, int]] = []
    original = jit_runtime.Runtime.call_helper

    def counting(self, mode, hid, *args):
        calls.append((mode, hid))
        return original(self, mode, hid, *args)

    monkeypatch.setattr(jit_runtime.Runtime, "call_helper", counting)
    return calls


# --- ring buffer ----------------------------------------------------------------------------------

RESERVE_SUBMIT = """
.map events ringbuf key=0 value=0 max_entries=4096
    r6 = 0
loop:
    r1 = events ll
    r2 = 20
    r3 = 0
    call bpf_ringbuf_reserve
    if r0 == 0 goto out
    *(u64 *)(r0 + 0) = r6
    *(u64 *)(r0 + 8) = r6
    *(u32 *)(r0 + 16) = w6
    r1 = r0
    r2 = 0
    r7 = r6
    r7 &= 3
    if r7 == 0 goto drop
    call bpf_ringbuf_submit
    goto next
drop:
    call bpf_ringbuf_discard
next:
    *(u64 *)(r10 - 8) = r6
    r1 = events ll
    r2 = r10
    r2 += -8
    r3 = 8
    r4 = 0
    call bpf_ringbuf_output
    r6 += 1
    if r6 < 40 goto loop
out:
    r0 = r6
    exit
"""


@pytest.mark.parametrize("checked", [True, False], ids=["checked", "unchecked"])
def test_ring_buffer_helpers_run_without_python_and_leave_the_interpreters_records(
        checked, python_calls):
    prog = assemble(RESERVE_SUBMIT)
    jit = JITProgram(prog, checked=checked)
    vm = Interpreter(prog)
    for rounds in range(5):      # 40 reservations plus outputs per run fill 4096 bytes: wrap
        assert jit.run(PACKET) == vm.run(PACKET)
        assert list(jit.maps[0]) == list(vm.maps[0])
    assert python_calls == []
    assert jit.maps[0].query(3) == vm.maps[0].query(3)       # producer positions
    assert jit.maps[0].wakeups == vm.maps[0].wakeups > 0


@pytest.mark.kernel
@pytest.mark.parametrize("checked", [True, False], ids=["checked", "unchecked"])
def test_native_ring_buffer_records_are_the_kernels_bytes_through_fill_and_wrap(checked):
    from pybpf import kernel

    program = assemble(EMITTER)
    spec = program.maps[0]
    jit = JITProgram(program, maps=[create_map(spec)], checked=checked)
    with kernel_map(spec) as km, kernel.load_program(program, maps=[km]) as kp:
        reader = KernelRingReader(km.fd, spec.max_entries)
        try:
            for rounds in (80, 30, 70, 10):   # 80 overflows 4096 bytes; the later ones wrap
                for _ in range(rounds):
                    assert jit.run(PACKET) & 0xFFFFFFFF == kp.test_run(PACKET).retval
                assert list(jit.maps[0]) == list(reader)
        finally:
            reader.close()


@pytest.mark.kernel
@settings(max_examples=8, deadline=None, phases=NO_SHRINK,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(sizes=st.lists(st.integers(1, 1500), min_size=1, max_size=5),
       discard_every=st.sampled_from([0, 2, 3]),
       schedule=st.lists(st.integers(0, 4), min_size=2, max_size=5))
def test_random_native_reservations_fill_and_wrap_like_the_kernel(sizes, discard_every,
                                                                   schedule):
    from pybpf import kernel

    program = assemble(emitter(sizes, discard_every))
    spec = program.maps[0]
    jit = JITProgram(program, maps=[create_map(spec)], checked=False)
    vm = Interpreter(program, maps=[create_map(spec)])
    with kernel_map(spec) as km, kernel.load_program(program, maps=[km]) as kp:
        reader = KernelRingReader(km.fd, spec.max_entries)
        try:
            for runs in schedule:
                for _ in range(runs):
                    r0 = kp.test_run(PACKET).retval
                    assert jit.run(PACKET) & 0xFFFFFFFF == r0 == vm.run(PACKET) & 0xFFFFFFFF
                records = list(reader)
                assert list(jit.maps[0]) == records == list(vm.maps[0])
        finally:
            reader.close()


def test_checked_mode_refuses_a_write_past_the_ring_data_like_the_interpreter():
    prog = assemble("""
    .map events ringbuf key=0 value=0 max_entries=4096
        r1 = events ll
        r2 = 16
        r3 = 0
        call bpf_ringbuf_reserve
        if r0 == 0 goto out
        r1 = 1
        *(u64 *)(r0 + 8192) = r1
    out:
        exit
    """)
    for engine in (Interpreter(prog, sandbox=True), JITProgram(prog, checked=True, sandbox=True)):
        with pytest.raises(VMError) as info:
            engine.run()
        assert info.value.pc == 7


def test_submitting_a_pointer_that_is_no_reservation_fails_as_in_the_interpreter():
    prog = assemble("""
    .map events ringbuf key=0 value=0 max_entries=4096
        r1 = events ll
        r2 = 16
        r3 = 0
        call bpf_ringbuf_reserve
        if r0 == 0 goto out
        r6 = r0
        r1 = r0
        r1 += 8
        r2 = 0
        call bpf_ringbuf_submit
        r1 = r6
        r2 = 0
        call bpf_ringbuf_submit
    out:
        exit
    """)
    for engine in (Interpreter(prog, sandbox=True), JITProgram(prog, checked=True, sandbox=True)):
        with pytest.raises(HelperError, match="not a reserved ring buffer record"):
            engine.run()


def test_a_consumer_blocked_in_poll_wakes_when_native_code_submits():
    prog = assemble(RESERVE_SUBMIT.replace("r6 < 40", "r6 < 2"))
    jit = JITProgram(prog, checked=False)
    rb = jit.maps[0]
    got: list[bytes] = []
    waiting = threading.Event()
    consumer = rb.consumer(got.append)

    def poll():
        waiting.set()
        # the first record is discarded: its commit may wake the poll before the second one
        # is submitted, so poll again until a record arrives (as a reader's event loop does)
        deadline = time.monotonic() + 10.0
        while not got and time.monotonic() < deadline:
            consumer.poll(deadline - time.monotonic())

    thread = threading.Thread(target=poll)
    thread.start()
    waiting.wait()
    while not rb.pos.waiters and thread.is_alive():
        threading.Event().wait(0.001)
    jit.run()
    thread.join(10.0)
    assert not thread.is_alive() and got


# --- tail calls -----------------------------------------------------------------------------------

STAGE = """
.map jmp prog_array key=4 value=4 max_entries=4
.map trace array key=4 value=8 max_entries=4
    r6 = r1
    r1 = {stage}
    *(u32 *)(r10 - 4) = r1
    r2 = r10
    r2 += -4
    r1 = trace ll
    call bpf_map_lookup_elem
    if r0 == 0 goto out
    r1 = 1
    lock *(u64 *)(r0 + 0) += r1
    r1 = r6
    r2 = jmp ll
    r3 = {next}
    call bpf_tail_call
out:
    r0 = {ret}
    exit
"""


def pipeline(stages: list[tuple[int, int]]):
    return [assemble(STAGE.format(stage=s, next=n, ret=s + 100)) for s, n in stages]


def linked(engine_class, programs, **options):
    maps = [create_map(s) for s in programs[0].maps]
    for i, p in enumerate(programs):
        maps[0][i] = p
    return engine_class(programs[0], maps=maps, **options)


@pytest.mark.parametrize("checked", [True, False], ids=["checked", "unchecked"])
def test_tail_call_targets_run_natively_after_their_first_jump(checked, python_calls):
    programs = pipeline([(0, 1), (1, 2), (2, 3)])   # stage 2 jumps to an empty slot
    jit = linked(JITProgram, programs, checked=checked)
    vm = linked(Interpreter, programs)
    assert jit.run(PACKET) == vm.run(PACKET) == 102
    # the first run asks Python once per slot (target made, empty slot seen), no helper call
    assert sorted(set(python_calls)) == [(jit_runtime.MODE_TAIL, 0)] and len(python_calls) == 3
    python_calls.clear()
    for _ in range(5):
        assert jit.run(PACKET) == vm.run(PACKET)
    assert python_calls == []
    assert dict(jit.maps[1].items()) == dict(vm.maps[1].items())
    assert jit.maps[1][2] == (6).to_bytes(8, "little")


def test_a_changed_prog_array_is_followed_on_the_next_run():
    programs = pipeline([(0, 1), (1, 2), (2, 3)])
    jit = linked(JITProgram, programs)
    assert jit.run(PACKET) == 102
    jit.maps[0][1] = programs[2]        # slot 1 now jumps straight to stage 2
    assert jit.run(PACKET) == 102
    jit.maps[0].delete(1)
    assert jit.run(PACKET) == 100       # a miss falls through
    assert jit.maps[1][1] == (1).to_bytes(8, "little")
    assert jit.maps[1][2] == (2).to_bytes(8, "little")


@pytest.mark.parametrize("checked", [True, False], ids=["checked", "unchecked"])
def test_a_self_tail_calling_program_stops_after_33_native_tail_calls(checked):
    programs = pipeline([(0, 0)])
    jit = linked(JITProgram, programs, checked=checked)
    vm = linked(Interpreter, programs)
    assert jit.run(PACKET) == vm.run(PACKET) == 100
    assert jit.maps[1][0] == vm.maps[1][0] == (34).to_bytes(8, "little")
    # every run starts a new chain, as BPF_PROG_TEST_RUN does (the kernel test below)
    assert jit.run(PACKET) == 100 and jit.maps[1][0] == (68).to_bytes(8, "little")
    r0, _ = jit.time_runs(PACKET, 10)        # the chain count restarts on every native run
    assert r0 == 100 and jit.maps[1][0] == (68 + 340).to_bytes(8, "little")


def test_a_fault_in_a_native_tail_call_target_is_the_targets_error():
    faulty = assemble("r0 = *(u64 *)(r1 + 4096)\nexit")
    programs = pipeline([(0, 1)])
    programs.append(faulty)
    for engine_class in (Interpreter, JITProgram):
        engine = linked(engine_class, programs)
        for _ in range(2):      # the JIT's second run jumps inline to the known target
            with pytest.raises(VMError) as info:
                engine.run(PACKET)
            assert info.value.pc == 0
    jit = linked(JITProgram, programs)
    jit.maps[0][1] = programs[0]       # the process is healthy: the same engine runs on
    assert jit.run(PACKET) == 100


SUBPROG_TAIL = """
.map jmp prog_array key=4 value=4 max_entries=4
    r6 = r1
    call jump
    r0 *= 10
    r0 += 1
    exit
jump:
    r2 = jmp ll
    r3 = *(u8 *)(r1 + 0)
    r3 &= 3
    call bpf_tail_call
    r0 = 5
    exit
"""


def test_a_native_tail_call_in_a_subprogram_returns_to_its_caller():
    # sandboxed (so checked): the kernel's verifier refuses a tail call in a subprogram of a
    # program without BTF, and so does pybpf's
    target = assemble("r0 = *(u8 *)(r1 + 1)\nexit")
    prog = assemble(SUBPROG_TAIL)
    jit = linked(JITProgram, [prog, target], checked=True, sandbox=True)
    for first in range(4):      # slot 0 is the program itself: a chain of 33 first
        data = bytes([first, 7]) + bytes(14)
        assert linked(Interpreter, [prog, target], sandbox=True).run(data) == jit.run(data)
    assert jit.run(bytes([1, 4])) == 41


@pytest.mark.kernel
@pytest.mark.parametrize("checked", [True, False], ids=["checked", "unchecked"])
def test_native_tail_call_pipelines_match_the_kernel(checked):
    from pybpf import kernel

    for stages, expected in (([(0, 1), (1, 2), (2, 3)], None), ([(0, 0)], 34),
                             ([(0, 1), (1, 0)], 17)):
        programs = pipeline(stages)
        for p in programs:
            p.prog_type = "socket_filter"
        jit = linked(JITProgram, programs, checked=checked)
        kmaps = [kernel.KernelMap.create(s) for s in programs[0].maps]
        loaded = []
        try:
            loaded = [kernel.load_program(p, maps=kmaps) for p in programs]
            for i, kp in enumerate(loaded):
                kmaps[0].update(i, kp.fd)
            for _ in range(3):
                assert jit.run(PACKET) & 0xFFFFFFFF == loaded[0].test_run(PACKET).retval
            assert dict(jit.maps[1].items()) == dict(kmaps[1].items())
            if expected is not None:
                assert jit.maps[1][0] == (3 * expected).to_bytes(8, "little")
        finally:
            for kp in loaded:
                kp.close()
            for km in kmaps:
                km.close()


#: prog_array contents in turn (slot -> stage program): a self-calling stage 0, then one that
#: leaves it for stage 1 (which jumps to slot 2), back, into stage 1 and back into stage 0
#: (reached from a target now), and none (a miss falls through)
SLOT_STATES = [{0: 0}, {0: 1}, {0: 0}, {0: 1, 2: 0}, {}]


@pytest.mark.parametrize("checked", [True, False], ids=["checked", "unchecked"])
def test_a_self_tail_call_follows_its_slot_changing_between_runs_like_the_interpreter(checked):
    programs = pipeline([(0, 0), (1, 2)])
    jit = linked(JITProgram, programs, checked=checked)
    vm = linked(Interpreter, programs)
    assert "ts.go" in jit.emit_llvm(optimised=False)      # the self jump is generated
    for state in SLOT_STATES:
        for engine in (jit, vm):
            for slot in range(4):
                if slot in state:
                    engine.maps[0][slot] = programs[state[slot]]
                elif engine.maps[0].program_at(slot) is not None:
                    engine.maps[0].delete(slot)
        for _ in range(2):
            assert jit.run(PACKET) == vm.run(PACKET)
        r0, _ = jit.time_runs(PACKET, 3)
        assert r0 == vm.run(PACKET)
        for _ in range(2):      # the interpreter makes the other two of those three runs
            vm.run(PACKET)
        assert dict(jit.maps[1].items()) == dict(vm.maps[1].items())
    batch = [PACKET, PACKET[:20], PACKET]
    jit.maps[0][0] = vm.maps[0][0] = programs[0]
    assert jit.run_batch(batch) == [vm.run(p) for p in batch]
    assert dict(jit.maps[1].items()) == dict(vm.maps[1].items())


@pytest.mark.parametrize("checked", [True, False], ids=["checked", "unchecked"])
def test_two_programs_tail_calling_each_other_stop_after_33_jumps_like_the_interpreter(checked):
    programs = pipeline([(0, 1), (1, 0)])      # every jump goes to the other program
    jit = linked(JITProgram, programs, checked=checked)
    vm = linked(Interpreter, programs)
    assert "tk.go" in jit.emit_llvm(optimised=False)      # the inline jump is generated
    for _ in range(3):      # 34 runs: the last is stage 1's
        assert jit.run(PACKET) == vm.run(PACKET) == 101
    assert dict(jit.maps[1].items()) == dict(vm.maps[1].items())
    assert jit.maps[1][0] == jit.maps[1][1] == (3 * 17).to_bytes(8, "little")
    batch = [PACKET, PACKET[:20]]
    assert jit.run_batch(batch) == [vm.run(p) for p in batch]
    assert dict(jit.maps[1].items()) == dict(vm.maps[1].items())


@pytest.mark.kernel
@pytest.mark.parametrize("checked", [True, False], ids=["checked", "unchecked"])
def test_a_self_tail_call_follows_its_slot_changing_between_runs_like_the_kernel(checked):
    from pybpf import kernel

    programs = pipeline([(0, 0), (1, 2)])
    for p in programs:
        p.prog_type = "socket_filter"
    jit = linked(JITProgram, programs, checked=checked)
    kmaps = [kernel.KernelMap.create(s) for s in programs[0].maps]
    loaded = []
    try:
        loaded = [kernel.load_program(p, maps=kmaps) for p in programs]
        jit.maps[0].delete(1)           # linked() filled slot 1: both start as the kernel's
        occupied: set[int] = set()
        for state in SLOT_STATES:
            for slot in range(4):
                if slot in state:
                    jit.maps[0][slot] = programs[state[slot]]
                    kmaps[0].update(slot, loaded[state[slot]].fd)
                    occupied.add(slot)
                elif slot in occupied:
                    jit.maps[0].delete(slot)
                    kmaps[0].delete(slot)
                    occupied.discard(slot)
            for _ in range(2):
                assert jit.run(PACKET) & 0xFFFFFFFF == loaded[0].test_run(PACKET).retval
            assert dict(jit.maps[1].items()) == dict(kmaps[1].items())
    finally:
        for kp in loaded:
            kp.close()
        for km in kmaps:
            km.close()


# --- LRU and per-CPU lookups ----------------------------------------------------------------------

def lru_ops_program(kind: str, ops: list[tuple[bool, int]]) -> str:
    """Per op: look key k up (a use) or insert it (may evict); r0 = how many lookups hit."""
    lines = [f".map m {kind} key=4 value=8 max_entries=4", "    r7 = 0"]
    for i, (insert, key) in enumerate(ops):
        lines += [f"    r1 = {key}", "    *(u32 *)(r10 - 4) = r1", "    r1 = m ll",
                  "    r2 = r10", "    r2 += -4"]
        if insert:
            lines += [f"    r3 = {i}", "    *(u64 *)(r10 - 16) = r3", "    r3 = r10",
                      "    r3 += -16", "    r4 = 0", "    call bpf_map_update_elem"]
        else:
            lines += ["    call bpf_map_lookup_elem", f"    if r0 == 0 goto miss{i}",
                      "    r7 += 1", f"miss{i}:"]
    lines += ["    r0 = r7", "    exit"]
    return "\n".join(lines)


@settings(max_examples=25, deadline=None)
@given(kind=st.sampled_from(["lru_hash", "lru_percpu_hash"]),
       ops=st.lists(st.tuples(st.booleans(), st.integers(0, 7)), min_size=1, max_size=30))
def test_native_lru_lookups_keep_the_interpreters_eviction_order(kind, ops):
    prog = assemble(lru_ops_program(kind, ops))
    jit = JITProgram(prog, checked=True)
    assert ("hl.head" in jit.emit_llvm(optimised=False)) == any(not i for i, _ in ops)
    vm = Interpreter(prog)
    for _ in range(2):
        assert jit.run() == vm.run()
        assert sorted(jit.maps[0].items()) == sorted(vm.maps[0].items())
        assert list(jit.maps[0].recency) == list(vm.maps[0].recency)


PERCPU_COUNTER = """
.map counters {kind} key=4 value=8 max_entries=8
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


@pytest.mark.kernel
@pytest.mark.parametrize("kind", ["percpu_array", "percpu_hash", "lru_percpu_hash",
                                  "lru_hash"])
def test_native_per_cpu_and_lru_lookups_leave_the_kernels_map(kind, python_calls):
    from pybpf import kernel

    prog = assemble(PERCPU_COUNTER.format(kind=kind))
    prog.prog_type = "socket_filter"
    with one_cpu():
        jit = JITProgram(prog, checked=False)
        vm = Interpreter(prog)
        with kernel.load_program(prog) as kp:
            for _ in range(3):
                r0 = kp.test_run(PACKET).retval
                assert jit.run(PACKET) & 0xFFFFFFFF == r0 == vm.run(PACKET) & 0xFFFFFFFF
            assert sorted(jit.maps[0].items()) == sorted(kp.maps[0].items()) \
                == sorted(vm.maps[0].items())
    lookups = [c for c in python_calls if c[1] == HELPER_IDS["map_lookup_elem"]]
    assert lookups == []


def test_per_cpu_lookups_follow_the_current_cpu_between_runs():
    from pybpf.maps import possible_cpus, set_current_cpu

    if possible_cpus() < 2:
        pytest.skip("one possible CPU")
    prog = assemble(PERCPU_COUNTER.format(kind="percpu_array"))
    jit = JITProgram(prog)
    vm = Interpreter(prog)
    try:
        for cpu in (1, 0, 1):
            set_current_cpu(cpu)
            assert jit.run() == vm.run()
    finally:
        set_current_cpu(0)
    assert sorted(jit.maps[0].items()) == sorted(vm.maps[0].items())
    assert jit.maps[0][1][1] == vm.maps[0][1][1] != bytes(8)


def test_native_paths_are_the_generated_code():
    """The helper ids above really are the native ones (guards against a silent fallback)."""
    from pybpf.jit.codegen import NATIVE_HELPERS

    for name in ("ringbuf_reserve", "ringbuf_submit", "ringbuf_discard", "ringbuf_output",
                 "tail_call", "map_lookup_elem"):
        assert HELPER_IDS[name] in NATIVE_HELPERS
    assert isa.MAX_CALL_DEPTH > 0


ADJUST_THEN_JUMP = """
.map jmp prog_array key=4 value=4 max_entries=4
    r6 = r1
    r1 = r6
    r2 = 4
    call bpf_xdp_adjust_head
    r1 = r6
    r2 = jmp ll
    r3 = 1
    call bpf_tail_call
    r0 = 99
    exit
"""
READ_PACKET = """
.map jmp prog_array key=4 value=4 max_entries=4
    r2 = *(u32 *)(r1 + 0)
    r3 = *(u32 *)(r1 + 4)
    r4 = r2
    r4 += 4
    r0 = 1
    if r4 > r3 goto out
    r0 = *(u32 *)(r2 + 0)
out:
    exit
"""


@pytest.mark.kernel
@pytest.mark.parametrize("checked", [True, False], ids=["checked", "unchecked"])
def test_a_native_target_reads_the_packet_its_xdp_caller_moved_like_the_kernel(checked):
    from pybpf import kernel

    programs = [assemble(ADJUST_THEN_JUMP), assemble(READ_PACKET)]
    packet = bytes(range(64))
    jit = linked(JITProgram, programs, checked=checked, prog_type="xdp")
    kmaps = [kernel.KernelMap.create(s) for s in programs[0].maps]
    loaded = []
    try:
        loaded = [kernel.load_program(p, prog_type="xdp", maps=kmaps) for p in programs]
        for i, kp in enumerate(loaded):
            kmaps[0].update(i, kp.fd)
        for _ in range(2):
            theirs = loaded[0].test_run(packet)
            assert jit.run(packet) & 0xFFFFFFFF == theirs.retval == 0x07060504
            assert jit.data_out() == theirs.data_out
    finally:
        for kp in loaded:
            kp.close()
        for km in kmaps:
            km.close()


def test_a_target_whose_packet_load_misses_ends_the_chain_with_r0_0_like_the_interpreter():
    checked = True      # sandboxed: one caller tail-calls from a subprogram (see above)
    missing = assemble("r6 = r1\nr0 = *(u32 *)skb[1000]\nr0 = 5\nexit")
    results = []
    for first in (assemble(STAGE.format(stage=0, next=1, ret=100)), assemble(SUBPROG_TAIL)):
        data = bytes([1, 7]) + bytes(62)
        jit = linked(JITProgram, [first, missing], checked=checked, sandbox=True)
        results.append(jit.run(data))
        assert results[-1] == linked(Interpreter, [first, missing], sandbox=True).run(data)
    # the target's r0 (0) replaces the entry, or the subprogram: its caller makes 0 * 10 + 1
    assert results == [0, 1]


def test_repeated_runs_lend_each_new_input_to_the_targets():
    """Runs with nothing changed skip the per-run tail-call bookkeeping: a new input (of the
    same size or not) or a changed slot must still reach the targets."""
    target = assemble("r6 = r1\nr0 = *(u8 *)skb[1]\nr0 += 1000\nexit")
    other = assemble("r6 = r1\nr0 = *(u8 *)skb[2]\nr0 += 2000\nexit")
    programs = [assemble(STAGE.format(stage=0, next=1, ret=100)), target, other]
    jit = linked(JITProgram, programs, checked=False)
    vm = linked(Interpreter, programs)
    inputs = [bytes([0, i, 2 * i]) + bytes(i % 3) for i in range(1, 12)]
    for n, data in enumerate(inputs):
        if n == 6:
            jit.maps[0][1] = vm.maps[0][1] = other
        assert jit.run(data) == vm.run(data)
        assert jit.run(data) == vm.run(data)
    assert jit.run(inputs[-1]) == 2000 + 2 * 11


def test_native_tail_calls_in_a_batch_see_each_packet():
    """run_batch moves the input window per packet in native code: the target must too."""
    target = assemble("r6 = r1\nr0 = *(u8 *)skb[1]\nr0 += 1000\nexit")
    programs = [assemble(STAGE.format(stage=0, next=1, ret=100)), target]
    packets = [bytes([0, i]) + bytes(i) for i in range(1, 40, 3)]
    for checked in (True, False):
        jit = linked(JITProgram, programs, checked=checked)
        expected = [linked(Interpreter, programs).run(p) for p in packets]
        assert jit.run_batch(packets) == expected == [1000 + i for i in range(1, 40, 3)]
        assert jit.maps[1][0] == len(packets).to_bytes(8, "little")
