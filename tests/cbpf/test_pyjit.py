"""The Python-source fast path computes what the classic interpreter computes."""

from __future__ import annotations

import struct
import warnings

from hypothesis import HealthCheck, given, settings, strategies as st

from pybpf.cbpf import compile_filter, isa, run
from pybpf.cbpf.pyjit import compile_packet_filter, compile_scanner

from .oracle import corpus
from .packets import frame_pool
from .strategies import valid_programs

warnings.filterwarnings("ignore", category=UserWarning, module="dpkt")
POOL = frame_pool(300, seed=21)


def pcap_bytes(frames) -> bytes:
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)]
    for f in frames:
        out.append(struct.pack("<IIII", 0, 0, len(f), len(f)) + f)
    return b"".join(out)


def test_compiled_corpus_filters_agree_with_the_interpreter():
    for lt, expr in corpus():
        if lt != "EN10MB":
            continue
        insns = compile_filter(expr)
        f = compile_packet_filter(insns)
        scan = compile_scanner(insns)
        buf = pcap_bytes(POOL)
        got: list[int] = []
        scan(buf, 24, len(buf), got)
        expected = [i for i, p in enumerate(POOL) if run(insns, p)]
        assert got == expected, expr
        for p in POOL:
            assert f(p, 0, len(p), len(p)) == run(insns, p), expr


@given(prog=valid_programs(), frame=st.sampled_from(POOL))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_compiled_random_programs_agree_with_the_interpreter(prog, frame):
    f = compile_packet_filter(prog)
    if f is None:   # ancillary / negative-offset loads: not for file records
        assert any(i.code & 7 == isa.LD and i.k & 0x80000000 for i in prog)
        return
    assert f(frame, 0, len(frame), len(frame)) == run(prog, frame)


def test_llvm_batch_scanner_agrees_with_the_interpreter():
    from pybpf.cbpf.llvmjit import compile_batch
    buf = pcap_bytes(POOL)
    exprs = [e for lt, e in corpus() if lt == "EN10MB"][::6]
    for expr in exprs:
        insns = compile_filter(expr)
        got = compile_batch(insns).scan(buf)
        assert got == [i for i, p in enumerate(POOL) if run(insns, p)], expr


def test_llvm_batch_scanner_reports_a_truncated_record():
    import pytest
    from pybpf.cbpf.llvmjit import compile_batch
    from pybpf.errors import CaptureError
    buf = pcap_bytes(POOL[:5])
    with pytest.raises(CaptureError, match="truncated record 5"):
        compile_batch(compile_filter("ip")).scan(buf[:-3])


def test_llvm_batch_scanner_reads_a_mapped_file(tmp_path):
    from pybpf.cbpf.llvmjit import compile_batch
    path = tmp_path / "pool.pcap"
    path.write_bytes(pcap_bytes(POOL))
    insns = compile_filter("tcp or icmp")
    assert compile_batch(insns).scan_file(str(path)) == [i for i, p in enumerate(POOL)
                                                         if run(insns, p)]
