"""Maps of maps: a lookup in the outer map gives, after its null check, a pointer to the inner
map (the kernel's CONST_PTR_TO_MAP to the inner-map template) that map helpers accept. Each
verdict is compared with the running kernel's."""

from __future__ import annotations

import pytest

from pybpf.asm import assemble
from pybpf.errors import KernelError
from pybpf.program import MapSpec
from pybpf.verifier import verify

HEAD = """
.map outer {kind} key=4 value=4 max_entries=4
    r6 = r1
    *(u32 *)(r10 - 4) = 0
    r2 = r10
    r2 += -4
    r1 = outer ll
    call bpf_map_lookup_elem
"""

PROGRAMS = {
    # the inner map, null-checked, used for a second lookup whose value is null-checked too
    "inner_lookup": """
    if r0 == 0 goto out
    r1 = r0
    r2 = r10
    r2 += -4
    call bpf_map_lookup_elem
    if r0 == 0 goto out
    r0 = *(u64 *)(r0 + 0)
out:
    r0 = 0
    exit
""",
    # the inner map used before its null check
    "inner_unchecked": """
    r1 = r0
    r2 = r10
    r2 += -4
    call bpf_map_lookup_elem
    r0 = 0
    exit
""",
    # the inner map pointer written as memory (reading it is the known map_ptr difference)
    "inner_write": """
    if r0 == 0 goto out
    *(u32 *)(r0 + 0) = 1
out:
    r0 = 0
    exit
""",
    # the inner map's value read beyond the template's value size
    "inner_value_oob": """
    if r0 == 0 goto out
    r1 = r0
    r2 = r10
    r2 += -4
    call bpf_map_lookup_elem
    if r0 == 0 goto out
    r0 = *(u64 *)(r0 + 8)
out:
    r0 = 0
    exit
""",
}


def _program(kind: str, name: str):
    program = assemble(HEAD.format(kind=kind) + PROGRAMS[name])
    program.maps[0].inner = MapSpec("inner", "hash", 4, 8, 8)
    return program


def _kernel_accepts(program) -> tuple[bool, str]:
    from pybpf import kernel

    try:
        with kernel.load_program(program, prog_type="socket_filter", log_level=1):
            return True, ""
    except KernelError as exc:
        return False, exc.log or str(exc)


@pytest.mark.kernel
@pytest.mark.parametrize("kind", ["array_of_maps", "hash_of_maps"])
@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_a_map_of_maps_program_gets_the_kernels_verdict(kind, name):
    program = _program(kind, name)
    ours = verify(program, prog_type="socket_filter")
    accepted, log = _kernel_accepts(program)
    assert ours.accepted == accepted, (ours.error, log[-300:])
    if not accepted and name != "inner_write":
        # (a write through the map pointer: the kernel answers from struct bpf_map's BTF,
        # "only read from bpf_htab is supported"; pybpf has no kernel BTF model)
        assert ours.error in log, (ours.error, log[-300:])


def test_a_map_of_maps_without_an_inner_template_is_refused_with_its_name():
    program = assemble(HEAD.format(kind="array_of_maps") + PROGRAMS["inner_lookup"])
    result = verify(program, prog_type="socket_filter")
    assert not result.accepted and "outer" in result.error
