"""Kernel types in scripts, resolved in the running kernel's BTF: what cannot be resolved is
refused at the script's line and column, before anything is loaded (the values themselves
are compared with bpftrace's in test_bpftrace_tools.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pybpf.trace import TraceSyntaxError
from pybpf.trace.build import compile_unit

pytestmark = pytest.mark.skipif(not Path("/sys/kernel/btf/vmlinux").exists(),
                                reason="no kernel BTF")


@pytest.mark.parametrize("body,at,words", [
    ("$t = (struct no_such_struct_here *)curtask;", "(struct",
     "has no struct no_such_struct_here"),
    ("$t = (struct task_struct **)curtask;", "(struct", "cast to a pointer to the struct"),
    ("$t = (struct task_struct)curtask;", "(struct", "cast to a pointer to the struct"),
    ("$t = (struct task_struct *)curtask; @x = $t->no_such_member;", "no_such_member",
     "struct task_struct has no member 'no_such_member'"),
    ("@x = pid->comm;", "comm", "field access needs args or a kernel struct pointer"),
    ("$t = (struct task_struct *)curtask; @x = $t->se[0];", "[",
     "cannot index struct sched_entity"),
    ("$t = (struct task_struct *)curtask; @x = $t->pid_links[4].next;", "4]",
     "index 4 is outside struct hlist_node[4] (0 to 3)"),
    ("$t = (struct task_struct *)curtask; @x = $t->se.load;", "@x",
     "a map cannot hold a struct load_weight"),
    ("$t = (struct task_struct *)curtask; printf(\"%d\", $t->se);", "se)",
     "printf() cannot print a struct sched_entity"),
    ("$t = (struct task_struct *)curtask; @x = $t->comm[16];", "16]",
     "a string's index must be a constant from 0 to 15"),
])
def test_what_the_kernels_btf_cannot_give_is_refused_at_its_place(body, at, words):
    source = f"BEGIN {{ {body} }}"
    with pytest.raises(TraceSyntaxError) as err:
        compile_unit(source, "k.bt")
    assert (err.value.line, err.value.col) == (1, source.index(at) + 1), str(err.value)
    assert words in str(err.value)


def test_members_of_anonymous_unions_and_embedded_structs_are_found():
    unit, _ = compile_unit("BEGIN { $t = (struct task_struct *)curtask; @w = $t->se.load.weight;"
                           " @s = $t->__state; @c[$t->comm] = count(); @p = $t->real_parent; }",
                           "k.bt")
    types = {name: str(info.value_type) for name, info in unit.maps.items()}
    assert types["p"] == "struct task_struct *"
    assert [str(t) for t in unit.maps["c"].key_types] == ["string[16]"]
