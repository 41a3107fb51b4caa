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


def test_integer_literals_take_exponents_and_separators_as_bpftrace_does():
    script = parse("BEGIN { @a = 1e6; @b = 2_000; @c = 3E2; @d = 0x10; "
                   "@e = 18446744073709551615; }")
    values = [stmt.value.value for stmt in script.probes[0].body]
    assert values == [1_000_000, 2000, 300, 16, (1 << 64) - 1]


@pytest.mark.parametrize("literal", ["1e20", "18446744073709551616"])
def test_an_integer_literal_beyond_64_bits_is_refused_at_its_place(literal):
    with pytest.raises(TraceSyntaxError) as err:
        parse(f"BEGIN {{ @a = {literal}; }}")
    assert (err.value.line, err.value.col) == (1, 14) and "64 bits" in str(err.value)


def test_preprocessor_branches_are_taken_as_with_btf():
    """Scripts declare structs for kernels without BTF under #ifndef BPFTRACE_HAVE_BTF."""
    script = parse("#!/usr/bin/env bpftrace\n#ifndef BPFTRACE_HAVE_BTF\n#include <linux/sched.h>\n"
                   "struct cfs_rq { int nr_running; };\n#else\n#include <sys/socket.h>\n"
                   "#endif\n#define MINE 1\n#ifdef MINE\nBEGIN { }\n#else\nEND { }\n#endif\n"
                   "#ifdef NOT_DEFINED\nEND { }\n#endif\ninterval:s:1 { }\n")
    assert [p.attach_points[0].provider for p in script.probes] == ["BEGIN", "interval"]


@pytest.mark.parametrize("source,line,words", [
    ("#ifdef X\nBEGIN { }\n", 3, "without #endif"),
    ("#endif\nBEGIN { }\n", 1, "#endif without #if"),
    ("#else\nBEGIN { }\n", 1, "#else without #if"),
    ("#if 1\nBEGIN { }\n#endif\n", 1, "#if is not supported"),
    ("struct foo { int a; };\nBEGIN { }\n", 1, "struct declarations are not supported"),
])
def test_bad_preprocessor_lines_and_struct_declarations_are_refused_at_their_line(
        source, line, words):
    with pytest.raises(TraceSyntaxError) as err:
        parse(source)
    assert err.value.line == line and words in str(err.value)


def test_sizeof_takes_a_type_or_an_expression():
    script = parse("BEGIN { @a = sizeof(uint32); @b = sizeof(struct task_struct); "
                   "@c = sizeof(comm); }")
    sizes = [stmt.value for stmt in script.probes[0].body]
    assert [(s.type_name, type(s.expr).__name__) for s in sizes] == [
        ("uint32", "NoneType"), ("struct task_struct", "NoneType"), (None, "Builtin")]


@pytest.mark.parametrize("source", ["BEGIN { @a = sizeof(struct); }",
                                    "BEGIN { @a = sizeof(uint32; }"])
def test_a_malformed_sizeof_is_refused_at_its_place(source):
    with pytest.raises(TraceSyntaxError) as err:
        parse(source)
    assert err.value.line == 1 and err.value.col > 14
