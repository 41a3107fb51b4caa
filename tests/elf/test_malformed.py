"""Malformed objects give a clear ObjectFileError / BTFError naming the section or symbol --
never a traceback, never a hang (a bounded fuzzer over mutated fixtures checks the rest)."""

from __future__ import annotations

import random
import signal
import struct
import subprocess

import pytest

from pybpf.elf import load_object, text_sections
from pybpf.errors import BPFError, BTFError, ObjectFileError
from pybpf.pytest_plugin import find_clang

from .conftest import FIXTURES, FIXTURES_DIR


def sections(data: bytes) -> dict[str, tuple[int, int]]:
    """name -> (file offset, size), read independently of pybpf with pyelftools."""
    import io

    from elftools.elf.elffile import ELFFile
    elf = ELFFile(io.BytesIO(data))
    return {s.name: (s["sh_offset"], s["sh_size"]) for s in elf.iter_sections()}


def symbol_index(data: bytes, name: str) -> tuple[int, int]:
    """(index, file offset of the Elf64_Sym) of a symbol."""
    import io

    from elftools.elf.elffile import ELFFile
    elf = ELFFile(io.BytesIO(data))
    symtab = elf.get_section_by_name(".symtab")
    for i, sym in enumerate(symtab.iter_symbols()):
        if sym.name == name:
            return i, symtab["sh_offset"] + 24 * i
    raise KeyError(name)


def test_truncated_object_names_what_is_cut(fixture_objects):
    data = fixture_objects["packet_counter"].read_bytes()
    for size in (0, 10, 63, 64, 200, len(data) // 2, len(data) - 1):
        with pytest.raises(ObjectFileError) as exc:
            load_object(data[:size], name="counter.o")
        assert "counter.o" in str(exc.value)
        assert "truncated" in str(exc.value) or "too short" in str(exc.value)


def test_object_for_another_machine_is_refused_with_its_architecture(tmp_path):
    clang = find_clang()
    if clang is None:
        pytest.skip("clang is not installed")
    src = tmp_path / "x86.c"
    src.write_text("int f(int x) { return x + 1; }\n")
    out = tmp_path / "x86.o"
    subprocess.run([clang, "-target", "x86_64-linux-gnu", "-c", str(src), "-o", str(out)],
                   check=True)
    with pytest.raises(ObjectFileError, match=r"wrong machine: x86-64 \(expected BPF"):
        load_object(out)


def test_not_an_elf_file_is_refused():
    with pytest.raises(ObjectFileError, match="not an ELF file"):
        load_object(b"#!/bin/sh\n" + bytes(100), name="script.o")


def _patch_reloc(data: bytes, section: str, index: int, *, rtype=None, sym=None) -> bytes:
    off, _ = sections(data)[section]
    at = off + 16 * index + 8
    info = struct.unpack_from("<Q", data, at)[0]
    info = ((sym if sym is not None else info >> 32) << 32) | \
        (rtype if rtype is not None else info & 0xFFFFFFFF)
    out = bytearray(data)
    struct.pack_into("<Q", out, at, info)
    return bytes(out)


def test_bad_relocation_type_names_the_symbol_and_section(fixture_objects):
    data = fixture_objects["packet_counter"].read_bytes()
    bad = _patch_reloc(data, ".relxdp", 0, rtype=3)  # R_BPF_64_ABS32 on a lddw
    with pytest.raises(ObjectFileError) as exc:
        load_object(bad, name="counter.o")
    msg = str(exc.value)
    assert "R_BPF_64_ABS32" in msg and "'counts'" in msg and "section 'xdp'" in msg


def test_relocation_against_a_non_map_symbol_is_refused(fixture_objects):
    data = fixture_objects["packet_counter"].read_bytes()
    lic, _ = symbol_index(data, "LICENSE")
    bad = _patch_reloc(data, ".relxdp", 0, sym=lic)
    with pytest.raises(ObjectFileError, match="'LICENSE' in section 'license', which holds "
                                              "neither maps nor data"):
        load_object(bad)


def test_relocation_to_a_missing_symbol_index_is_refused(fixture_objects):
    data = fixture_objects["packet_counter"].read_bytes()
    bad = _patch_reloc(data, ".relxdp", 0, sym=10_000)
    with pytest.raises(ObjectFileError, match=r"'\.relxdp'.*symbol 10000"):
        load_object(bad)


def test_map_without_its_symbol_is_named(fixture_objects):
    data = fixture_objects["packet_counter"].read_bytes()
    _, at = symbol_index(data, "counts")
    out = bytearray(data)
    struct.pack_into("<H", out, at + 6, 0)  # st_shndx = SHN_UNDEF: the map symbol is gone
    with pytest.raises(ObjectFileError, match="map 'counts' has no symbol"):
        load_object(bytes(out))


def _patch_btf(data: bytes, rel: int, value: bytes) -> bytes:
    off, _ = sections(data)[".BTF"]
    out = bytearray(data)
    out[off + rel:off + rel + len(value)] = value
    return bytes(out)


@pytest.mark.parametrize("rel,value,message", [
    (0, b"\x00\x00", r"\.BTF: bad magic 0x0000"),
    (2, b"\x07", r"\.BTF: unsupported version 7"),
    (12, struct.pack("<I", 1 << 30), r"\.BTF: type or string section runs past the end"),
    (24 + 7, b"\x1f", r"\.BTF: type 1 has unknown kind 31"),
    (24, struct.pack("<I", 1 << 30), r"\.BTF: type 1 name offset \d+ outside the string"),
])
def test_corrupted_btf_gives_btf_error_naming_the_problem(fixture_objects, rel, value, message):
    data = fixture_objects["packet_counter"].read_bytes()
    with pytest.raises(BTFError, match=message) as exc:
        load_object(_patch_btf(data, rel, value), name="counter.o")
    assert str(exc.value).startswith("counter.o: ")


def test_corrupted_btf_ext_is_refused(fixture_objects):
    data = fixture_objects["loops"].read_bytes()
    off, _ = sections(data)[".BTF.ext"]
    out = bytearray(data)
    out[off:off + 2] = b"\x12\x34"
    with pytest.raises(BTFError, match=r"\.BTF\.ext: bad magic"):
        load_object(bytes(out))


class _Timeout(Exception):
    pass


def _mutate(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    how = rng.random()
    if how < 0.15:
        return bytes(out[:rng.randrange(len(out))])
    for _ in range(rng.randint(1, 8)):
        at = rng.randrange(len(out))
        if rng.random() < 0.5:
            out[at] = rng.randrange(256)
        else:
            out[at] ^= 1 << rng.randrange(8)
    return bytes(out)


def test_fuzzed_fixtures_raise_only_pybpf_errors_and_never_hang(fixture_objects):
    """A bounded fuzzer: 300 random byte flips and truncations of the fixtures; each load must
    succeed or raise a pybpf error, and never hang."""
    rng = random.Random(0x5EED)
    corpus = [fixture_objects[name].read_bytes() for name in FIXTURES]

    def alarm(*_):
        raise _Timeout()

    old = signal.signal(signal.SIGALRM, alarm)
    cases = 0
    try:
        # a fixed number of cases, so a loaded machine does not change what is tested; the
        # alarm only catches a hang (it is generous: loads take milliseconds)
        for _ in range(300):
            data = _mutate(rng, rng.choice(corpus))
            signal.setitimer(signal.ITIMER_REAL, 10.0)
            try:
                load_object(data, name="fuzz.o", core_target="local")
                text_sections(data, name="fuzz.o")
            except BPFError:
                pass
            except _Timeout:
                pytest.fail(f"loading a mutated object took more than 10 s (case {cases})")
            except Exception as exc:  # noqa: BLE001 - exactly what the test is about
                pytest.fail(f"case {cases}: raw {type(exc).__name__}: {exc}")
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            cases += 1
    finally:
        signal.signal(signal.SIGALRM, old)
    assert cases == 300


def test_fixture_sources_are_all_in_the_corpus():
    assert {p.stem for p in FIXTURES_DIR.glob("*.c")} == set(FIXTURES) and len(FIXTURES) >= 13


def test_objects_without_debug_info_load_unless_they_need_btf(tmp_path):
    if find_clang() is None:
        pytest.skip("clang is not installed")
    from pybpf.pytest_plugin import compile_c
    plain = load_object(compile_c(FIXTURES_DIR / "xdp_drop_proto.c", tmp_path, "-g0"))
    assert plain.btf is None and list(plain.programs) == ["xdp_drop_udp"]
    assert plain.programs["xdp_drop_udp"].lines == {}
    with pytest.raises(ObjectFileError, match=r"section '\.maps': BTF-defined maps need BTF "
                                              r"\(compile with -g\)"):
        load_object(compile_c(FIXTURES_DIR / "packet_counter.c", tmp_path, "-g0"))
