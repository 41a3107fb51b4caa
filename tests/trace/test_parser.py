"""The bpftrace-language parser: real scripts parse, bad ones point at line and column."""

from __future__ import annotations

from pathlib import Path

import pytest

from pybpf.trace import TraceSyntaxError, parse

TOOLS = Path(__file__).resolve().parents[2] / "pybpf" / "trace" / "tools"


def test_probe_specifications_are_split_per_provider():
    script = parse('tracepoint:syscalls:sys_enter_openat, t:syscalls:sys_enter_open { }\n'
                   'uprobe:/bin/bash:readline { }\ninterval:s:1 { }\nprofile:hz:99 { }\n'
                   'BEGIN { } END { }\nsoftware:page-faults:100 { }')
    points = [(a.provider, a.target, a.func, a.unit, a.freq)
              for p in script.probes for a in p.attach_points]
    assert points == [
        ("tracepoint", "syscalls", "sys_enter_openat", "", 0),
        ("tracepoint", "syscalls", "sys_enter_open", "", 0),
        ("uprobe", "/bin/bash", "readline", "", 0),
        ("interval", "", "", "s", 1),
        ("profile", "", "", "hz", 99),
        ("BEGIN", "", "", "", 0), ("END", "", "", "", 0),
        ("software", "page-faults", "", "", 100),
    ]


def test_predicates_and_operator_precedence_follow_c():
    script = parse('t:a:b /pid == 1 || comm == "x" && 1 + 2 * 3 > 4/ { $x = 1 ? 2 : 3; }')
    pred = script.probes[0].predicate
    assert pred.op == "||" and pred.right.op == "&&"
    assert pred.right.right.left.right.op == "*"


@pytest.mark.parametrize("source, line, col, words", [
    ("BEGIN { @x = 1 + ; }", 1, 18, "expected an expression"),
    ("foo:bar { }", 1, 1, "unknown probe type 'foo'"),
    ("BEGIN {\n  x = 1\n}", 2, 3, "unknown identifier 'x'"),
    ("BEGIN { @x = 1", 1, 15, "expected ';' or '}'"),
    ("interval:q:1 { }", 1, 1, "interval needs"),
    ("BEGIN { unroll(1000) { } }", 1, 16, "unroll count"),
    ("BEGIN { 1 = 2; }", 1, 11, "only maps"),
    ('BEGIN { printf("unterminated); }', 1, 16, "unexpected character"),
])
def test_errors_name_the_line_and_column(source, line, col, words):
    with pytest.raises(TraceSyntaxError) as info:
        parse(source, "s.bt")
    err = info.value
    assert (err.line, err.col) == (line, col), str(err)
    assert words in str(err) and str(err).startswith(f"s.bt:{line}:{col}:")


def test_shipped_tools_parse():
    tools = sorted(TOOLS.glob("*.bt"))
    assert len(tools) >= 5
    for tool in tools:
        parse(tool.read_text(), tool.name)
