"""Map helpers in pybpf's interpreter: the table entries (kernel ids, names, prototypes), spin
locks, and misuse at run time -- a clear HelperError naming the helper, the map left as it
was. (Results of the helpers themselves are compared with the kernel in test_programs.py,
test_ringbuf.py and test_perf.py.)"""

from __future__ import annotations

import pytest

from pybpf.asm import assemble
from pybpf.errors import HelperError, VMError
from pybpf.helpers import HELPER_IDS, get_helper
from pybpf.maps import create_map
from pybpf.vm import Interpreter

PROTOS = {
    "bpf_map_lookup_elem": ("ptr_to_map_value_or_null", ("const_map_ptr", "ptr_to_map_key")),
    "bpf_map_update_elem": ("integer", ("const_map_ptr", "ptr_to_map_key", "ptr_to_map_value",
                                        "anything")),
    "bpf_map_delete_elem": ("integer", ("const_map_ptr", "ptr_to_map_key")),
    "bpf_map_push_elem": ("integer", ("const_map_ptr", "ptr_to_map_value", "anything")),
    "bpf_map_pop_elem": ("integer", ("const_map_ptr", "ptr_to_uninit_map_value")),
    "bpf_map_peek_elem": ("integer", ("const_map_ptr", "ptr_to_uninit_map_value")),
    "bpf_ringbuf_reserve": ("ptr_to_ringbuf_mem_or_null", ("const_map_ptr",
                                                           "const_alloc_size_or_zero",
                                                           "anything")),
    "bpf_tail_call": ("void", ("ptr_to_ctx", "const_map_ptr", "anything")),
}


@pytest.mark.parametrize("name", sorted(PROTOS))
def test_helper_table_has_the_kernels_id_and_prototype(name):
    entry = get_helper(HELPER_IDS[name])
    assert entry is not None and entry.name == name and entry.impl is not None
    assert (entry.proto.ret, entry.proto.args) == PROTOS[name]


LOCKED_COUNTER = """
.map v array key=4 value=16 max_entries=1
    r1 = 0
    *(u32 *)(r10 - 4) = r1
    r1 = v ll
    r2 = r10
    r2 += -4
    call bpf_map_lookup_elem
    if r0 == 0 goto out
    r6 = r0
    r1 = r6
    call bpf_spin_lock
    r1 = *(u64 *)(r6 + 8)
    r1 += 1
    *(u64 *)(r6 + 8) = r1
    r1 = r6
    call bpf_spin_{second}
    r0 = *(u64 *)(r6 + 8)
out:
    exit
"""


def test_spin_lock_and_unlock_protect_a_value():
    program = assemble(LOCKED_COUNTER.format(second="unlock"))
    vm = Interpreter(program, sandbox=True)
    assert [vm.run() for _ in range(3)] == [1, 2, 3]
    assert vm.maps[0][0][:4] == bytes(4)        # the lock word is released


def test_taking_a_held_spin_lock_is_a_helper_error():
    program = assemble(LOCKED_COUNTER.format(second="lock"))
    with pytest.raises(HelperError, match="bpf_spin_lock.*already held"):
        Interpreter(program, sandbox=True).run()


MISUSE = """
.map q queue key=0 value=4 max_entries=2
.map h hash key=4 value=4 max_entries=2
    r1 = {map} ll
    r2 = r10
    r2 += -8
    r3 = 0
    *(u64 *)(r10 - 8) = r3
    call {helper}
    exit
"""


@pytest.mark.parametrize("map_name, helper", [("q", "bpf_map_lookup_elem"),
                                              ("h", "bpf_map_push_elem"),
                                              ("h", "bpf_ringbuf_query")])
def test_a_helper_on_the_wrong_kind_of_map_is_a_clear_error(map_name, helper):
    program = assemble(MISUSE.format(map=map_name, helper=helper))
    vm = Interpreter(program, sandbox=True)
    with pytest.raises(VMError, match=helper):
        vm.run()
    assert vm.maps[1].items() == [] and len(vm.maps[0]) == 0


def test_a_non_map_pointer_is_refused():
    program = assemble("""
        r1 = r10
        r2 = r10
        r2 += -8
        call bpf_map_lookup_elem
        exit
    """)
    with pytest.raises(VMError, match="not a map pointer"):
        Interpreter(program, sandbox=True).run()


def test_program_update_errors_come_back_as_negative_errno():
    program = assemble("""
    .map h hash key=4 value=4 max_entries=1
        r1 = 7
        *(u64 *)(r10 - 8) = r1
        r1 = h ll
        r2 = r10
        r2 += -8
        r3 = r10
        r3 += -8
        r4 = 1
        call bpf_map_update_elem
        exit
    """)
    h = create_map(program.maps[0])
    h[9] = 1
    vm = Interpreter(program, maps=[h])
    assert vm.run() == (-7) & (2**64 - 1)        # E2BIG: full
    del h[9]
    assert vm.run() == 0
    assert vm.run() == (-17) & (2**64 - 1)       # EEXIST with BPF_NOEXIST
