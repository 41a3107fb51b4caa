"""Kernel functions (kfuncs) the engines run: ``call`` with ``src_reg = 2`` and the kfunc's BTF
id in the running kernel's BTF (as libbpf resolves ``__ksym`` externs, see
:mod:`pybpf.elf.ksyms`).

A kfunc has no stable number, so a call is resolved by *name*: the id is looked up in
``/sys/kernel/btf/vmlinux`` (:func:`kfunc_name`), then the name in :data:`KFUNCS`. The
implementations follow the kernel's behaviour (``kernel/bpf/bpf_iter.c`` for the numeric
iterator behind libbpf's ``bpf_for``/``bpf_repeat``; read for behaviour only):

* ``bpf_iter_num_new(it, start, end)``: an empty or valid range sets the iterator one before
  ``start`` and returns 0; ``start > end`` gives -EINVAL and a range longer than
  BPF_MAX_LOOPS (8M) -E2BIG, both leaving an exhausted iterator;
* ``bpf_iter_num_next(it)``: the address of the iterator's current value after stepping it,
  or NULL (and an exhausted iterator) once ``end`` is reached;
* ``bpf_iter_num_destroy(it)``: exhausts it.

The iterator is 8 bytes of the program's stack: ``cur`` and ``end`` as two s32.

The packet dynptr kfuncs (``bpf_dynptr_from_skb``/``_xdp``, ``bpf_dynptr_slice[_rdwr]``) live
with the other dynptr code in :mod:`pybpf.helpers.dynptr`, which registers them here.
"""

from __future__ import annotations

import errno
import functools
import struct
from typing import Callable

from . import Impl

#: kfunc call keys live above the 32-bit helper ids, so one table serves both in the engines
KFUNC_KEY = 1 << 32
MAX_LOOPS = 1 << 23
_PAIR = struct.Struct("<ii")

KFUNCS: dict[str, Impl] = {}


def kfunc(name: str) -> Callable[[Impl], Impl]:
    def register(impl: Impl) -> Impl:
        KFUNCS[name] = impl
        return impl
    return register


def _s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


@kfunc("bpf_iter_num_new")
def iter_num_new(env, it, start, end, *_):
    start, end = _s32(start), _s32(end)
    if start > end:
        env.write(it, _PAIR.pack(0, 0))
        return -errno.EINVAL & 0xFFFFFFFFFFFFFFFF
    if end - start > MAX_LOOPS:
        env.write(it, _PAIR.pack(0, 0))
        return -errno.E2BIG & 0xFFFFFFFFFFFFFFFF
    env.write(it, _PAIR.pack(_s32(start - 1), end))
    return 0


@kfunc("bpf_iter_num_next")
def iter_num_next(env, it, *_):
    cur, end = _PAIR.unpack(env.read(it, 8))
    if cur + 1 >= end:
        env.write(it, _PAIR.pack(0, 0))
        return 0
    env.write(it, _PAIR.pack(cur + 1, end))
    return it


@kfunc("bpf_iter_num_destroy")
def iter_num_destroy(env, it, *_):
    env.write(it, _PAIR.pack(0, 0))
    return 0


@kfunc("bpf_rcu_read_lock")
def rcu_read_lock(env, *_):
    return 0            # one thread, nothing to protect against


@kfunc("bpf_rcu_read_unlock")
def rcu_read_unlock(env, *_):
    return 0


@kfunc("bpf_preempt_disable")
def preempt_disable(env, *_):
    return 0            # nothing preempts a run here


@kfunc("bpf_preempt_enable")
def preempt_enable(env, *_):
    return 0


@kfunc("bpf_modify_return_test_tp")
def modify_return_test_tp(env, nonce, *_):
    """A test hook: fires a tracepoint (none here) and returns its argument."""
    return _s32(nonce) & 0xFFFFFFFFFFFFFFFF


@functools.lru_cache(maxsize=None)
def kfunc_name(btf_id: int) -> str | None:
    """The name of the kernel function with BTF id ``btf_id`` (None if there is none, or no
    kernel BTF is readable)."""
    try:
        from ..btf import load_vmlinux
        btf = load_vmlinux()
        t = btf[btf_id]
    except Exception:  # noqa: BLE001 - no kernel BTF, or an id outside it: not a kfunc
        return None
    return t.name if type(t).__name__ == "Func" else None


from . import dynptr  # noqa: E402,F401 - registers the packet dynptr kfuncs (bpf_dynptr_from_skb, ...)
