"""Object files through the kernel: every C fixture (compiled by clang) loads with its BTF,
maps are shared and described by BTF, tail-call tables and globals are filled in, C source
lines reach the verifier log through line_info."""

from __future__ import annotations

from pathlib import Path

import pytest

from pybpf import kernel
from pybpf.elf import load_object
from pybpf.kernel.collection import load_collection

pytestmark = pytest.mark.kernel

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
NAMES = sorted(p.stem for p in FIXTURES.glob("*.c"))


@pytest.fixture(scope="module")
def objects(tmp_path_factory):
    from pybpf.pytest_plugin import compile_c, find_clang

    if find_clang() is None:
        pytest.skip("clang is not installed")
    out = tmp_path_factory.mktemp("kfixtures")
    cache: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in cache:
            cache[name] = compile_c(FIXTURES / f"{name}.c", out)
        return cache[name]

    return get


def eth(proto: int, size: int = 64) -> bytes:
    return bytes(12) + proto.to_bytes(2, "big") + bytes(size - 14)


@pytest.mark.parametrize("name", NAMES)
def test_every_fixture_object_loads_into_the_kernel_with_its_btf(objects, name):
    with load_collection(str(objects(name))) as col:
        assert col.programs
        for prog in col.programs.values():
            info = prog.info()
            assert info.btf_id != 0 and info.verified_insns > 0


def test_btf_describes_the_maps_keys_and_values(objects):
    with load_collection(str(objects("packet_counter"))) as col:
        info = col.maps["counts"].info()
        assert info.btf_id and info.btf_key_type_id and info.btf_value_type_id


def test_tail_call_table_is_filled_from_the_object(objects):
    with load_collection(str(objects("tail_call"))) as col:
        dispatch = col.programs["dispatch"]
        assert dispatch.test_run(eth(0x0800)).retval == 1      # handle_ipv4: XDP_DROP
        assert dispatch.test_run(eth(0x86DD)).retval == 3      # handle_ipv6: XDP_TX
        assert dispatch.test_run(eth(0x0806)).retval == 2      # empty slot: XDP_PASS


def test_globals_are_initialised_and_rodata_is_frozen(objects):
    obj = load_object(str(objects("globals")))
    obj.set_variable("threshold", 100)
    with load_collection(obj) as col:
        prog = col.programs["xdp_globals"]
        assert prog.test_run(eth(0x0800, 64)).retval == 2
        assert prog.test_run(eth(0x0800, 128)).retval == 1
        data = col.maps[".data"][0]
        assert int.from_bytes(data[:8], "little") == 100 + 64 + 128
        with pytest.raises(Exception):
            col.maps[".rodata"][0] = bytes(col.maps[".rodata"].value_size)


def test_the_verifier_log_shows_c_source_lines_from_line_info(objects):
    prog = load_object(str(objects("packet_counter"))).program("count_ethertypes")
    with kernel.load_program(prog, log_level=2) as kp:
        assert "bpf_map_lookup_elem(&counts, &key)" in kp.log


def test_bpf_loop_callbacks_need_and_get_func_info(objects):
    prog = load_object(str(objects("loops"))).program("sum_bpf_loop")
    with kernel.load_program(prog) as kp:
        assert kp.test_run(eth(0x0800)).retval == kp.test_run(eth(0x0800)).retval
