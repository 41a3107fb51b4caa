"""``bpf_spin_lock``/``bpf_spin_unlock``: where the lock is in a map value and the rules for
holding it, as the kernel's ``process_spin_lock``, ``check_map_access`` and
``check_resource_leak`` (kernel/bpf/verifier.c, Linux 6.18).

The lock's place comes from the map value's BTF type (``struct bpf_spin_lock`` as a member;
the kernel's ``btf_parse_fields``), so only objects with BTF (clang ``-g``) can use it, as in
the kernel. A path holds at most one lock, identified by (map, pointer id); while it is held
no helper other than ``bpf_spin_unlock`` may be called, ``LD_ABS``/``LD_IND`` are refused and
the program may not exit; the lock's bytes may not be read or written directly.
"""

from __future__ import annotations

from . import state as st
from .memory import Reject
from .state import RegState

LOCK_SIZE = 4
#: program types that may not use maps with a spin lock (check_map_prog_compatibility)
LOCK_FORBIDDEN = {
    "socket_filter": "socket filter progs cannot use bpf_spin_lock yet",
    "kprobe": "tracing progs cannot use bpf_spin_lock yet",
    "tracepoint": "tracing progs cannot use bpf_spin_lock yet",
    "perf_event": "tracing progs cannot use bpf_spin_lock yet",
    "raw_tracepoint": "tracing progs cannot use bpf_spin_lock yet",
}
_QUALIFIERS = ("typedef", "volatile", "const", "restrict", "type_tag")


def _lock_offset(btf, type_id: int, base: int = 0, depth: int = 0) -> int | None:
    """Byte offset of the ``struct bpf_spin_lock`` inside type ``type_id`` (nested structs
    searched too), or None."""
    if depth > 8 or not type_id:
        return None
    t = btf[type_id]
    while t.kind in _QUALIFIERS:
        t = btf[t.type_id]
    if t.kind not in ("struct", "union"):
        return None
    if t.name == "bpf_spin_lock":
        return base
    for m in t.members:
        found = _lock_offset(btf, m.type_id, base + m.bit_offset // 8, depth + 1)
        if found is not None:
            return found
    return None


def lock_offsets(program) -> dict[int, int]:
    """Map index -> offset of its value's spin lock, for maps whose BTF value has one."""
    out: dict[int, int] = {}
    if not getattr(program, "btf", None):
        return out
    try:
        from ..btf.parser import parse_btf
        btf = parse_btf(program.btf)
    except Exception:
        return out
    for i, spec in enumerate(program.maps):
        if spec.btf_value_type_id:
            try:
                off = _lock_offset(btf, spec.btf_value_type_id)
            except Exception:
                off = None
            if off is not None:
                out[i] = off
    return out


def check_map_use(env, map_index: int, pc: int) -> None:
    """A map with a spin lock may not be used by some program types."""
    if map_index in env.lock_offs:
        msg = LOCK_FORBIDDEN.get(env.ptype.name)
        if msg:
            raise Reject(msg, "spin-lock-prog-type", pc)


def check_direct_access(env, r: RegState, regno: int, off: int, size: int, pc: int) -> None:
    """``check_map_access``: a load or store may not touch the lock's bytes."""
    p = env.lock_offs.get(r.map)
    if p is None:
        return
    lo = r.smin + r.off + off
    hi = r.umax + r.off + off + size
    if lo < p + LOCK_SIZE and p < hi:
        raise Reject("bpf_spin_lock cannot be accessed directly by load/store",
                     "spin-lock-direct", pc, regno=regno)


def process_spin_lock(env, state, r: RegState, regno: int, is_lock: bool, pc: int) -> None:
    """``process_spin_lock``: R1 points exactly at the map value's lock; lock/unlock pair."""
    if r.type != st.MAP_VALUE:
        raise Reject(f"R{regno} type={_type(r)} expected=map_value", "helper-arg-type", pc,
                     regno=regno)
    if r.var_off.mask:
        raise Reject(f"R{regno} doesn't have constant offset. bpf_spin_lock has to be at the "
                     f"constant offset", "spin-lock-offset", pc, regno=regno)
    spec = env.maps[r.map]
    if not getattr(env.program, "btf", None) or not spec.btf_value_type_id:
        raise Reject(f"map '{spec.name}' has to have BTF in order to use bpf_spin_lock",
                     "spin-lock-btf", pc)
    lock_off = env.lock_offs.get(r.map)
    if lock_off is None:
        raise Reject(f"map '{spec.name}' has no valid bpf_spin_lock", "spin-lock-none", pc)
    val = r.var_off.value + r.off
    if val != lock_off:
        raise Reject(f"off {val} doesn't point to 'struct bpf_spin_lock' that is at {lock_off}",
                     "spin-lock-offset", pc)
    ident = (r.map, r.id)
    if is_lock:
        if state.lock is not None:
            raise Reject("Locking two bpf_spin_locks are not allowed", "spin-lock-twice", pc)
        state.lock = ident
    else:
        if state.lock is None:
            raise Reject("bpf_spin_unlock without taking a lock", "spin-unlock-unlocked", pc)
        if state.lock != ident:
            raise Reject("bpf_spin_unlock of different lock", "spin-unlock-other", pc)
        state.lock = None


def _type(r: RegState) -> str:
    from .memory import reg_type_str
    return reg_type_str(r)


def check_call_while_locked(state, name: str | None, pc: int) -> None:
    if state.lock is not None and name != "spin_unlock":
        raise Reject("function calls are not allowed while holding a lock", "call-in-lock", pc)
