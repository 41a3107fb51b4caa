"""The map, helper and program-type tests of the other packages, run again with the JIT as
the engine.

Those tests run a program in pybpf's interpreter and compare what it returns, writes and
leaves in maps with the kernel (BPF_PROG_TEST_RUN). Here each of them runs once more with the
module's ``Interpreter`` replaced by :class:`JITEngine` -- the same programs, fixtures, inputs
and kernel comparisons, so the JIT must agree with the kernel wherever the interpreter does
(and the original test already holds the interpreter to the kernel). Nothing is copied: the
test functions are imported and re-registered under their own names and parameters.
"""

from __future__ import annotations

import functools
import importlib

import pytest

from pybpf.jit import JITProgram
from pybpf.vm.interpreter import SANDBOX_DEFAULT


class JITEngine(JITProgram):
    """``Interpreter``'s constructor, compiling the program: a verified program runs as
    native code without run-time checks, a sandboxed one (the test asked for it) with them."""

    def __init__(self, program, *, maps=None, budget=None, helpers=None, prog_type=None,
                 sandbox=None, **_):
        sandbox = SANDBOX_DEFAULT if sandbox is None else sandbox
        super().__init__(program, maps=maps, budget=budget, helpers=helpers,
                         prog_type=prog_type, sandbox=sandbox, checked=sandbox)


#: modules whose tests take their engine from a module-level ``Interpreter`` name
MODULES = {
    "tests.maps.test_programs": ["tests.maps.test_programs"],
    "tests.maps.test_helpers": ["tests.maps.test_helpers"],
    "tests.maps.test_program_ops": ["tests.maps.test_program_ops"],
    "tests.maps.test_for_each": ["tests.maps.test_for_each"],
    "tests.maps.test_ringbuf": ["tests.maps.test_ringbuf"],
    "tests.maps.test_lru": ["tests.maps.test_lru"],
    "tests.maps.test_spin_lock": ["tests.maps.test_spin_lock"],
    "tests.maps.test_perf": ["tests.maps.test_perf"],
    "tests.progtypes.test_tracing": ["tests.progtypes.test_tracing"],
    "tests.progtypes.test_tail_calls": ["tests.progtypes.test_tail_calls"],
    "tests.progtypes.test_access_rules": ["tests.progtypes.test_access_rules",
                                          "tests.progtypes.compare"],
    "tests.progtypes.test_helper_rules": ["tests.progtypes.test_helper_rules",
                                          "tests.progtypes.compare"],
    # these compare through tests/progtypes/compare.py (its in_pybpf builds the engine)
    "tests.helpers.test_packet": ["tests.progtypes.compare"],
    "tests.progtypes.test_xdp": ["tests.progtypes.compare"],
    "tests.progtypes.test_skb": ["tests.progtypes.compare"],
}


def _patch_targets(monkeypatch, names: list[str]) -> None:
    for name in names:
        monkeypatch.setattr(importlib.import_module(name), "Interpreter", JITEngine)


def _rerun(module_name: str, test_name: str, targets: list[str]):
    fn = getattr(importlib.import_module(module_name), test_name)

    @functools.wraps(fn)
    def test(*args, **kwargs):
        mp = pytest.MonkeyPatch()
        try:
            _patch_targets(mp, targets)
            return fn(*args, **kwargs)
        finally:
            mp.undo()

    module_marks = getattr(importlib.import_module(module_name), "pytestmark", [])
    module_marks = module_marks if isinstance(module_marks, list) else [module_marks]
    for mark in module_marks:
        test = mark(test)
    return test


def _is_fixture(obj) -> bool:
    return type(obj).__name__ == "FixtureFunctionDefinition" or \
        hasattr(obj, "_pytestfixturefunction")


def _collect() -> dict:
    tests = {}
    for module_name, targets in MODULES.items():
        try:
            module = importlib.import_module(module_name)
        except ImportError:         # a package not present in this checkout
            continue
        if not any(hasattr(importlib.import_module(t), "Interpreter") for t in targets):
            continue
        short = module_name.split(".", 1)[1].replace(".", "_")
        for name in dir(module):        # the module's own fixtures (two modules name none alike)
            obj = getattr(module, name)
            if _is_fixture(obj):
                assert tests.get(name, obj) is obj, f"fixture {name} defined twice"
                tests[name] = obj
        for name in dir(module):
            fn = getattr(module, name)
            if name.startswith("test_") and callable(fn) and not _is_fixture(fn):
                tests[f"test_{short}__{name[5:]}"] = _rerun(module_name, name, targets)
    return tests


globals().update(_collect())
