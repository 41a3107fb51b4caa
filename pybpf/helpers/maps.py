"""Map helpers: element access, queues, ring buffers, perf output, tail calls, iteration, locks.

Prototypes are the kernel's (``kernel/bpf/helpers.c``, ``kernel/bpf/ringbuf.c``,
``kernel/trace/bpf_trace.c``, ``kernel/bpf/bpf_iter.c``) in its ``ARG_*``/``RET_*`` words,
lower-cased without the prefix. Implementations resolve the map pointer (a live map's
``handle``) and call the map's *program face* (:mod:`pybpf.maps.base`), so errors come back as
``-errno`` exactly where the kernel returns them; only misuse the verifier would have refused
(a pointer that is not a map, a helper on the wrong map type) raises
:class:`pybpf.errors.HelperError`.

Two helpers need the engine's cooperation:

* ``bpf_tail_call`` jumps to another program and never returns on success. If the engine's env
  offers ``tail_call(target, ctx)``, that is called (the engine replaces the running program
  and counts the chain). Otherwise the target runs in a nested interpreter on the current
  input data, sharing live maps by name, and its r0 ends the caller through
  :class:`pybpf.vm.interpreter.ProgramExit`. Either way a chain stops at
  :data:`MAX_TAIL_CALL_CNT` (33) tail calls, after which ``bpf_tail_call`` returns (fails) as in
  the kernel.
* ``bpf_for_each_map_elem`` calls a BPF subprogram per element; it needs the engine's
  ``env.call_function(func_ptr, r1, r2, r3, r4, r5) -> r0``.
"""

from __future__ import annotations

import threading

from ..errors import HelperError
from ..maps.array import ProgArrayMap
from ..maps.base import EINVAL, ENOENT, Map, map_from_handle
from ..maps.bloom import BloomFilterMap
from ..maps.perf import BPF_F_CTXLEN_MASK, BPF_F_INDEX_MASK, PerfEventArrayMap
from ..maps.queue import QueueMap
from ..maps.ringbuf import RingBufMap, ring_of
from . import helper

#: the kernel's limit on tail calls in one chain (``MAX_TAIL_CALL_CNT``)
MAX_TAIL_CALL_CNT = 33
M64 = (1 << 64) - 1
E2BIG = 7
EFAULT = 14

#: program types whose perf_event_output is the skb/xdp variant (packet bytes appended)
PACKET_PROG_TYPES = {"socket_filter", "sched_cls", "sched_act", "xdp", "cgroup_skb", "lwt_in",
                     "lwt_out", "lwt_xmit", "sk_skb"}


def neg(errno: int) -> int:
    return -errno & M64


def get_map(env, ptr: int) -> Map:
    """The live map ``ptr`` points at: one of the program's maps or one reached through a
    map-in-map (whose value storage is then added to the program's memory)."""
    try:
        return env.map_from_ptr(ptr)
    except HelperError:
        found = map_from_handle(ptr)
        if found is None:
            raise
    memory = getattr(env, "memory", None)
    if memory is not None:
        for region in found.regions():
            if memory.region_at(region.address) is None:
                env.add_region(region)
    return found


def _typed(env, ptr: int, kind: type, helper_name: str):
    m = get_map(env, ptr)
    if not isinstance(m, kind):
        raise HelperError(f"{helper_name} needs a {kind.type_names[0]} map, "
                          f"'{m.name}' is a {m.type}")
    return m


# --- element access ------------------------------------------------------------------------

@helper("bpf_map_lookup_elem", "ptr_to_map_value_or_null", "const_map_ptr", "ptr_to_map_key")
def map_lookup_elem(env, map_ptr, key_ptr, *_):
    m = get_map(env, map_ptr)
    if not m.has_keys:
        raise HelperError(f"bpf_map_lookup_elem on {m.type} map '{m.name}' (it has no keys)")
    return m.lookup_address(env.read(key_ptr, m.key_size))


@helper("bpf_map_update_elem", "integer", "const_map_ptr", "ptr_to_map_key", "ptr_to_map_value",
        "anything")
def map_update_elem(env, map_ptr, key_ptr, value_ptr, flags, *_):
    m = get_map(env, map_ptr)
    if not m.has_keys:  # queue, stack and bloom filter take update as push
        return map_push_elem(env, map_ptr, value_ptr, flags)
    key = env.read(key_ptr, m.key_size)
    return m.program_update(key, env.read(value_ptr, m.value_size), flags) & M64


@helper("bpf_map_delete_elem", "integer", "const_map_ptr", "ptr_to_map_key")
def map_delete_elem(env, map_ptr, key_ptr, *_):
    m = get_map(env, map_ptr)
    if not m.has_keys:
        return neg(EINVAL)
    return m.program_delete(env.read(key_ptr, m.key_size)) & M64


@helper("bpf_map_lookup_percpu_elem", "ptr_to_map_value_or_null", "const_map_ptr",
        "ptr_to_map_key", "anything")
def map_lookup_percpu_elem(env, map_ptr, key_ptr, cpu, *_):
    m = get_map(env, map_ptr)
    if not m.percpu:
        raise HelperError(f"bpf_map_lookup_percpu_elem on non-per-CPU map '{m.name}'")
    return m.lookup_percpu_address(env.read(key_ptr, m.key_size), cpu & 0xFFFFFFFF)


# --- queue, stack, bloom filter ------------------------------------------------------------

@helper("bpf_map_push_elem", "integer", "const_map_ptr", "ptr_to_map_value", "anything")
def map_push_elem(env, map_ptr, value_ptr, flags, *_):
    m = get_map(env, map_ptr)
    if not isinstance(m, (QueueMap, BloomFilterMap)):
        raise HelperError(f"bpf_map_push_elem on {m.type} map '{m.name}'")
    return m.program_push(env.read(value_ptr, m.value_size), flags) & M64


def _take(env, map_ptr, value_ptr, delete: bool, name: str) -> int:
    m = get_map(env, map_ptr)
    if isinstance(m, BloomFilterMap):
        if delete:
            return neg(95)  # EOPNOTSUPP
        return m.program_peek(env.read(value_ptr, m.value_size)) & M64
    if not isinstance(m, QueueMap):
        raise HelperError(f"{name} on {m.type} map '{m.name}'")
    rc, value = m.program_take(delete)
    if rc == 0:
        env.write(value_ptr, value)
    return rc & M64


@helper("bpf_map_pop_elem", "integer", "const_map_ptr", "ptr_to_uninit_map_value")
def map_pop_elem(env, map_ptr, value_ptr, *_):
    return _take(env, map_ptr, value_ptr, True, "bpf_map_pop_elem")


@helper("bpf_map_peek_elem", "integer", "const_map_ptr", "ptr_to_uninit_map_value")
def map_peek_elem(env, map_ptr, value_ptr, *_):
    return _take(env, map_ptr, value_ptr, False, "bpf_map_peek_elem")


# --- ring buffer ----------------------------------------------------------------------------------

@helper("bpf_ringbuf_output", "integer", "const_map_ptr", "ptr_to_mem", "const_size_or_zero",
        "anything")
def ringbuf_output(env, map_ptr, data_ptr, size, flags, *_):
    rb = _typed(env, map_ptr, RingBufMap, "bpf_ringbuf_output")
    return rb.output(env.read(data_ptr, size), flags) & M64


@helper("bpf_ringbuf_reserve", "ptr_to_ringbuf_mem_or_null", "const_map_ptr",
        "const_alloc_size_or_zero", "anything")
def ringbuf_reserve(env, map_ptr, size, flags, *_):
    rb = _typed(env, map_ptr, RingBufMap, "bpf_ringbuf_reserve")
    return rb.reserve(size, flags)


def _commit(sample: int, flags: int, discard: bool, name: str) -> int:
    """Find the ring from the record pointer alone (as the kernel does from the header's page
    offset); a pointer that is no reserved record is an error the verifier would refuse."""
    rb = ring_of(sample)
    if rb is None or rb.commit(sample, flags, discard):
        raise HelperError(f"{name}: {sample:#x} is not a reserved ring buffer record")
    return 0


@helper("bpf_ringbuf_submit", "void", "ptr_to_alloc_mem", "anything")
def ringbuf_submit(env, sample, flags, *_):
    return _commit(sample, flags, False, "bpf_ringbuf_submit")


@helper("bpf_ringbuf_discard", "void", "ptr_to_alloc_mem", "anything")
def ringbuf_discard(env, sample, flags, *_):
    return _commit(sample, flags, True, "bpf_ringbuf_discard")


@helper("bpf_ringbuf_query", "integer", "const_map_ptr", "anything")
def ringbuf_query(env, map_ptr, flags, *_):
    rb = _typed(env, map_ptr, RingBufMap, "bpf_ringbuf_query")
    return rb.query(flags) & M64


# --- perf event output ----------------------------------------------------------------------------

@helper("bpf_perf_event_output", "integer", "ptr_to_ctx", "const_map_ptr", "anything",
        "ptr_to_mem", "const_size_or_zero", gpl_only=True)
def perf_event_output(env, ctx, map_ptr, flags, data_ptr, size):
    """Networking programs (``bpf_skb_event_output`` / ``bpf_xdp_event_output``) may ask for
    ``BPF_F_CTXLEN_MASK`` bytes of the packet to be appended to the sample."""
    m = _typed(env, map_ptr, PerfEventArrayMap, "bpf_perf_event_output")
    data = env.read(data_ptr, size)
    program = getattr(env, "program", None)
    if getattr(program, "prog_type", None) in PACKET_PROG_TYPES:
        if flags & ~(BPF_F_CTXLEN_MASK | BPF_F_INDEX_MASK):
            return neg(EINVAL)
        ctxlen = (flags & BPF_F_CTXLEN_MASK) >> 32
        packet = getattr(env, "data", None)
        if ctxlen:
            if packet is None or ctxlen > packet.size:
                return neg(EFAULT)
            data += bytes(packet.view[:ctxlen])
        flags &= BPF_F_INDEX_MASK
    return m.output(flags, data) & M64


# --- tail calls -----------------------------------------------------------------------------------

_chain = threading.local()


def _nested_tail_call(env, prog_array: ProgArrayMap, target, ctx: int) -> int:
    """Run ``target`` in its own interpreter on the current data; returns its r0."""
    runner = target
    if not hasattr(runner, "run") or not hasattr(runner, "memory"):
        caller_maps = list(getattr(env, "maps", []))
        cache = prog_array.__dict__.setdefault("_runners", {})
        ident = (id(target), tuple(id(m) for m in caller_maps))
        runner = cache.get(ident)
        if runner is None:
            from ..maps import create_map
            from ..vm import Interpreter

            shared = {m.name: m for m in caller_maps}
            maps = [shared.get(spec.name) or create_map(spec) for spec in target.maps]
            runner = cache[ident] = Interpreter(target, maps=maps)
    data_region = getattr(env, "data", None)
    data = data_region.bytes() if data_region is not None else b""
    r0 = runner.run(data)
    out = getattr(runner, "data_region", None)
    if data_region is not None and out is not None and out.size == data_region.size:
        data_region.view[: data_region.size] = out.view[: out.size]
    return r0


@helper("bpf_tail_call", "void", "ptr_to_ctx", "const_map_ptr", "anything")
def tail_call(env, ctx, map_ptr, index, *_):
    """Jump to ``prog_array[index]``; on failure (no entry, index out of range, chain of 33
    already) return and let the caller go on, as the kernel does."""
    m = _typed(env, map_ptr, ProgArrayMap, "bpf_tail_call")
    target = m.program_at(index & 0xFFFFFFFF)
    if target is None:
        return neg(ENOENT)
    engine_tail_call = getattr(env, "tail_call", None)
    if engine_tail_call is not None:
        return engine_tail_call(target, ctx)
    depth = getattr(_chain, "depth", 0)
    if depth >= MAX_TAIL_CALL_CNT:
        return neg(E2BIG)
    from ..vm.interpreter import ProgramExit

    _chain.depth = depth + 1
    try:
        r0 = _nested_tail_call(env, m, target, ctx)
    finally:
        _chain.depth = depth
    raise ProgramExit(r0)


# --- iteration ------------------------------------------------------------------------------------

@helper("bpf_for_each_map_elem", "integer", "const_map_ptr", "ptr_to_func",
        "ptr_to_stack_or_null", "anything")
def for_each_map_elem(env, map_ptr, callback, callback_ctx, flags, *_):
    """Call ``callback(map, &key, &value, ctx)`` per element until it returns 1; returns the
    number of elements visited (``bpf_for_each_map_elem``)."""
    if flags:
        return neg(EINVAL)
    m = get_map(env, map_ptr)
    call = getattr(env, "call_function", None)
    if call is None:
        raise HelperError("bpf_for_each_map_elem needs an engine that can call back into the "
                          "program (env.call_function)")
    from ..memory import Region

    keys = list(m.iter_raw_keys())
    key_region = env.add_region(Region.allocate("for_each_map_elem:key", max(m.key_size, 1),
                                                writable=False))
    count = 0
    try:
        for key in keys:
            value = m.lookup_address(key)
            if not value:
                continue
            key_region.view[: m.key_size] = key
            count += 1
            if call(callback, map_ptr, key_region.address, value, callback_ctx, 0) & M64:
                break
    finally:
        env.remove_region(key_region)
    return count


# --- spin locks -----------------------------------------------------------------------------------

@helper("bpf_spin_lock", "void", "ptr_to_spin_lock")
def spin_lock(env, lock, *_):
    """Userspace engines run one program at a time, so a held lock means the program takes it
    twice (a deadlock the verifier would have refused)."""
    if int.from_bytes(env.read(lock, 4), "little"):
        raise HelperError(f"bpf_spin_lock: lock at {lock:#x} is already held")
    env.write(lock, (1).to_bytes(4, "little"))
    return 0


@helper("bpf_spin_unlock", "void", "ptr_to_spin_lock")
def spin_unlock(env, lock, *_):
    if not int.from_bytes(env.read(lock, 4), "little"):
        raise HelperError(f"bpf_spin_unlock: lock at {lock:#x} is not held")
    env.write(lock, (0).to_bytes(4, "little"))
    return 0
