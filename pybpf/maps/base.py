"""What every live map shares: flags, errno, key/value coercion, native storage, the dict API.

A live map (cilium/ebpf's ``Map``, the kernel's ``struct bpf_map``) is made from a
:class:`pybpf.program.MapSpec`. Its values live in native memory -- ctypes buffers that never
move -- so the address :meth:`Map.lookup_address` hands to a program stays valid while the
program runs, and JIT-compiled code can dereference it directly. The buffers are exposed as
:class:`pybpf.memory.Region` objects (:meth:`Map.regions`) that an engine adds to its Memory.

Two faces, as in the kernel:

* the *syscall* face (``lookup``, ``update``, ``delete``, ``get_next_key``, batch operations),
  used from Python; failures raise :class:`pybpf.errors.MapError` with the errno bpf(2) would
  set, and a failing call leaves the map as it was;
* the *program* face (``lookup_address``, ``program_update``, ``program_delete``, ...), used by
  the helpers in :mod:`pybpf.helpers.maps`; failures are returned as ``-errno``.

The semantics follow the kernel (``kernel/bpf/syscall.c`` and the per-type ``*map.c`` files),
checked by ``tests/maps`` against bpf(2) on the running kernel.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import functools
import os
import weakref
from typing import Any, ClassVar, Iterator

from ..errors import MapError
from ..program import MapSpec

# --- update flags (include/uapi/linux/bpf.h) ---------------------------------------------------
BPF_ANY = 0
BPF_NOEXIST = 1
BPF_EXIST = 2
BPF_F_LOCK = 4

# --- creation flags -----------------------------------------------------------------------------
BPF_F_NO_PREALLOC = 1 << 0
BPF_F_NO_COMMON_LRU = 1 << 1
BPF_F_NUMA_NODE = 1 << 2
BPF_F_RDONLY = 1 << 3
BPF_F_WRONLY = 1 << 4
BPF_F_ZERO_SEED = 1 << 6
BPF_F_RDONLY_PROG = 1 << 7
BPF_F_WRONLY_PROG = 1 << 8
BPF_F_MMAPABLE = 1 << 10
BPF_F_PRESERVE_ELEMS = 1 << 11
BPF_F_INNER_MAP = 1 << 12

#: the access bits every map type accepts (``bpf_map_flags_access_ok``)
ACCESS_MASK = BPF_F_RDONLY | BPF_F_WRONLY | BPF_F_RDONLY_PROG | BPF_F_WRONLY_PROG

# --- errno values the kernel returns ------------------------------------------------------------
ENOENT = _errno.ENOENT
EEXIST = _errno.EEXIST
E2BIG = _errno.E2BIG
EINVAL = _errno.EINVAL
ENOSPC = _errno.ENOSPC
EPERM = _errno.EPERM
EBUSY = _errno.EBUSY
EAGAIN = _errno.EAGAIN
EOPNOTSUPP = _errno.EOPNOTSUPP
ENOMEM = _errno.ENOMEM
#: the kernel-internal ENOTSUPP (not EOPNOTSUPP); bpf(2) leaks it to user space for some maps
ENOTSUPP = 524

#: largest key a hash map accepts (MAX_BPF_STACK: a program builds keys on its stack)
MAX_KEY_SIZE = 512


def round_up(n: int, align: int = 8) -> int:
    return (n + align - 1) // align * align


@functools.cache
def possible_cpus() -> int:
    """The kernel's number of possible CPUs: per-CPU map values come in this many copies.

    Read from ``/sys/devices/system/cpu/possible`` (as libbpf does), so pybpf's per-CPU maps
    have exactly as many slots as a kernel map on the same machine.
    """
    try:
        with open("/sys/devices/system/cpu/possible") as f:
            text = f.read().strip()
        count = 0
        for part in text.split(","):
            lo, _, hi = part.partition("-")
            count += int(hi or lo) - int(lo) + 1
        return max(count, 1)
    except (OSError, ValueError):
        return os.cpu_count() or 1


#: the CPU a program "runs on" in userspace engines; per-CPU helpers use it
_current_cpu = 0


def current_cpu() -> int:
    return _current_cpu


def set_current_cpu(cpu: int) -> None:
    """Pretend the running program is on ``cpu`` (0 <= cpu < possible_cpus())."""
    global _current_cpu
    if not 0 <= cpu < possible_cpus():
        raise MapError(f"CPU {cpu} is not a possible CPU (0..{possible_cpus() - 1})", EINVAL)
    _current_cpu = cpu


def fail(message: str, errno: int) -> MapError:
    return MapError(f"{message} ({_errno.errorcode.get(errno, errno)})", errno=errno)


# --- key / value coercion -------------------------------------------------------------------------

def to_bytes(obj: Any, size: int, what: str) -> bytes:
    """``obj`` as exactly ``size`` bytes: bytes-like as is, ints little-endian, ctypes by memory."""
    if isinstance(obj, (bytes, bytearray, memoryview)):
        data = bytes(obj)
    elif isinstance(obj, bool):
        data = int(obj).to_bytes(size, "little")
    elif isinstance(obj, int):
        if size == 0 or not -(1 << (8 * size - 1)) <= obj < (1 << (8 * size)):
            raise fail(f"{what} {obj} does not fit in {size} bytes", EINVAL)
        data = (obj & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
    elif isinstance(obj, (ctypes.Structure, ctypes.Union, ctypes.Array, ctypes._SimpleCData)):
        data = bytes(memoryview(obj).cast("B")) if ctypes.sizeof(obj) else b""
    else:
        raise fail(f"{what} must be bytes, an int or a ctypes object, not "
                   f"{type(obj).__name__}", EINVAL)
    if len(data) != size:
        raise fail(f"{what} must be {size} bytes, got {len(data)}", EINVAL)
    return data


def from_bytes(data: bytes, kind: Any) -> Any:
    """Turn stored bytes into the Python type a user asked for (``bytes``, ``int``, ctypes)."""
    if kind is None or kind is bytes:
        return data
    if kind is int:
        return int.from_bytes(data, "little")
    return kind.from_buffer_copy(data)


# --- registry of live maps by handle -------------------------------------------------------------

_BY_HANDLE: "weakref.WeakValueDictionary[int, Map]" = weakref.WeakValueDictionary()


def map_from_handle(handle: int) -> "Map | None":
    """The live map whose :attr:`Map.handle` is ``handle`` (any map, inner maps included)."""
    return _BY_HANDLE.get(handle)


#: the most value storage one map may preallocate here (the kernel would say ENOMEM)
MAX_STORAGE = 1 << 32


def alloc(size: int) -> ctypes.Array:
    """Zeroed, 8-byte aligned native memory that never moves (MapError ENOMEM if too big)."""
    if size > MAX_STORAGE:
        raise fail(f"cannot preallocate {size} bytes of map storage", ENOMEM)
    try:
        return (ctypes.c_uint64 * max((size + 7) // 8, 1))()
    except (MemoryError, OverflowError):
        raise fail(f"cannot preallocate {size} bytes of map storage", ENOMEM) from None


class Map:
    """A live map. Subclasses implement one kernel map family."""

    #: the kernel's type names this class implements (without ``BPF_MAP_TYPE_``)
    type_names: ClassVar[tuple[str, ...]] = ()
    #: creation flags this family accepts beyond which bpf(2) answers EINVAL
    allowed_flags: ClassVar[int] = ACCESS_MASK | BPF_F_NUMA_NODE
    #: does the map have keys at all (queue, stack, bloom filter and ring buffer do not)
    has_keys: ClassVar[bool] = True
    percpu: ClassVar[bool] = False

    def __init__(self, spec: MapSpec):
        self.spec = spec
        self.name = spec.name
        self.type = spec.type
        self.key_size = spec.key_size
        self.value_size = spec.value_size
        self.max_entries = spec.max_entries
        self.flags = spec.flags
        self.check_flags()
        self.check_spec()
        #: Python types keys and values are returned as (``bytes``, ``int`` or a ctypes type)
        self.key_type: Any = bytes
        self.value_type: Any = bytes
        self._anchor = alloc(8)
        self.handle = ctypes.addressof(self._anchor)
        _BY_HANDLE[self.handle] = self
        self._regions: list = []

    # --- creation checks ------------------------------------------------------------------------
    def check_flags(self) -> None:
        f = self.flags
        if f & ~self.allowed_flags:
            raise fail(f"{self.type} map '{self.name}': flags {f:#x} not allowed", EINVAL)
        if (f & BPF_F_RDONLY and f & BPF_F_WRONLY) or \
                (f & BPF_F_RDONLY_PROG and f & BPF_F_WRONLY_PROG):
            raise fail(f"{self.type} map '{self.name}': contradicting access flags {f:#x}", EINVAL)

    def check_spec(self) -> None:
        """Raise MapError(EINVAL/E2BIG) for sizes the kernel refuses; overridden per family."""
        if self.key_size <= 0 or self.value_size <= 0 or self.max_entries <= 0:
            raise fail(f"{self.type} map '{self.name}': key, value size and max_entries must "
                       f"be positive (key={self.key_size} value={self.value_size} "
                       f"max_entries={self.max_entries})", EINVAL)

    def where(self) -> str:
        return f"{self.type} map '{self.name}'"

    # --- native memory --------------------------------------------------------------------------
    def make_region(self, buffer: ctypes.Array, size: int, suffix: str = "") -> Any:
        from ..memory import Region  # the VM engineer's module; import late (no cycle)

        region = Region(f"map:{self.name}{suffix}", ctypes.addressof(buffer), size,
                        not self.flags & BPF_F_RDONLY_PROG, buffer)
        self._regions.append(region)
        return region

    def regions(self) -> list:
        """The :class:`pybpf.memory.Region` objects a program may reach through this map."""
        return list(self._regions)

    # --- coercion -------------------------------------------------------------------------------
    def key_bytes(self, key: Any) -> bytes:
        return to_bytes(key, self.key_size, f"{self.where()}: key")

    def value_bytes(self, value: Any) -> bytes:
        return to_bytes(value, self.value_size, f"{self.where()}: value")

    def check_update_flags(self, flags: int) -> None:
        if not isinstance(flags, int):
            raise fail(f"{self.where()}: update flags must be an int, not "
                       f"{type(flags).__name__}", EINVAL)
        if flags & ~BPF_F_LOCK > BPF_EXIST or flags < 0:
            raise fail(f"{self.where()}: bad update flags {flags:#x}", EINVAL)
        if flags & BPF_F_LOCK:
            raise fail(f"{self.where()}: BPF_F_LOCK needs a bpf_spin_lock in the value", EINVAL)

    def check_read(self) -> None:
        if self.flags & BPF_F_WRONLY:
            raise fail(f"{self.where()} is write-only for user space", EPERM)

    def check_write(self) -> None:
        if self.flags & BPF_F_RDONLY:
            raise fail(f"{self.where()} is read-only for user space", EPERM)
        if getattr(self, "frozen", False):
            raise fail(f"{self.where()} is frozen (read-only for user space)", EPERM)

    def freeze(self) -> None:
        """BPF_MAP_FREEZE: user space may no longer write the map; programs still may.
        Freezing needs write access, which a frozen map no longer grants (EPERM)."""
        self.check_write()
        self.frozen = True

    # --- syscall face (subclasses implement the _raw methods on bytes) ----------------------------
    def lookup(self, key: Any) -> Any:
        """The value stored under ``key`` (per-CPU maps: a list, one value per CPU)."""
        self.check_read()
        return self.decode_value(self.lookup_raw(self.key_bytes(key)))

    def update(self, key: Any, value: Any, flags: int = BPF_ANY) -> None:
        self.check_write()
        k = self.key_bytes(key)
        v = self.encode_value(value)
        self.check_update_flags(flags)
        self.update_raw(k, v, flags)

    def delete(self, key: Any) -> None:
        self.check_write()
        self.delete_raw(self.key_bytes(key))

    def get_next_key(self, key: Any = None) -> Any:
        """The key after ``key`` (the first key for None or a key not in the map); ENOENT at
        the end."""
        self.check_read()
        k = None if key is None else self.key_bytes(key)
        return from_bytes(self.next_key_raw(k), self.key_type)

    def lookup_and_delete(self, key: Any) -> Any:
        """Only hash maps (and queue/stack, as pop) support this through bpf(2)."""
        raise fail(f"{self.where()}: lookup_and_delete is not supported", ENOTSUPP)

    def encode_value(self, value: Any) -> Any:
        return self.value_bytes(value)

    def decode_value(self, raw: Any) -> Any:
        if isinstance(raw, list):
            return [from_bytes(v, self.value_type) for v in raw]
        return from_bytes(raw, self.value_type)

    def lookup_raw(self, key: bytes) -> Any:
        raise fail(f"{self.where()}: lookup is not supported", ENOTSUPP)

    def update_raw(self, key: bytes, value: Any, flags: int) -> None:
        raise fail(f"{self.where()}: update is not supported", ENOTSUPP)

    def delete_raw(self, key: bytes) -> None:
        raise fail(f"{self.where()}: delete is not supported", ENOTSUPP)

    def next_key_raw(self, key: bytes | None) -> bytes:
        raise fail(f"{self.where()}: get_next_key is not supported", ENOTSUPP)

    # --- batch operations (kernel: generic_map_*_batch / htab_map_*_batch) ------------------------
    #: which BPF_MAP_*_BATCH commands the family implements (others are ENOTSUPP, as bpf(2))
    batch_ops: ClassVar[frozenset[str]] = frozenset()

    def _check_batch(self, op: str, flags: int = 0) -> None:
        if op not in self.batch_ops:
            raise fail(f"{self.where()}: batch {op} is not supported", ENOTSUPP)
        if flags & ~BPF_F_LOCK:
            raise fail(f"{self.where()}: bad batch element flags {flags:#x}", EINVAL)
        if flags & BPF_F_LOCK:
            raise fail(f"{self.where()}: BPF_F_LOCK needs a bpf_spin_lock in the value", EINVAL)

    def lookup_batch(self, start: Any = None, count: int | None = None, delete: bool = False,
                     *, batch_size: int = 256, flags: int = 0) -> tuple[list, Any]:
        """Up to ``count`` (key, value) pairs (all for None) in get_next_key order, resuming
        after the token ``start`` a previous call returned, as BPF_MAP_LOOKUP_BATCH
        (``..._AND_DELETE_BATCH`` with ``delete``) walks the map. Returns (pairs, token),
        the token None once the map is exhausted; the same call as
        :meth:`pybpf.kernel.KernelMap.lookup_batch`."""
        self._check_batch("lookup_and_delete" if delete else "lookup", flags)
        self.check_read()
        if delete:
            self.check_write()
        if batch_size <= 0 or (count is not None and count < 0):
            raise fail(f"{self.where()}: batch size must be positive", EINVAL)
        pairs = []
        key = None if start is None else self.key_bytes(start)
        while count is None or len(pairs) < count:
            try:
                key = self.next_key_raw(key)
            except MapError as exc:
                if exc.errno != ENOENT:
                    raise
                key = None
                break
            try:
                pairs.append((key, self.lookup_raw(key)))
            except MapError as exc:  # an empty slot (fd arrays): skipped, as the kernel does
                if exc.errno != ENOENT:
                    raise
        if delete:
            for k, _ in pairs:
                self.delete_raw(k)
        out = [(from_bytes(k, self.key_type), self.decode_value(v)) for k, v in pairs]
        return out, (None if key is None else from_bytes(key, self.key_type))

    def update_batch(self, items: Any, flags: int = BPF_ANY) -> int:
        """Update pairs in order (element flags: only BPF_ANY or BPF_F_LOCK, as the kernel
        takes them for a batch); stops at the first failure,
        raising it with ``.count`` set to the number of pairs applied, as
        BPF_MAP_UPDATE_BATCH reports in ``count``."""
        self._check_batch("update", flags)
        pairs = list(items.items() if hasattr(items, "items") else items)
        done = 0
        for key, value in pairs:
            try:
                self.update(key, value, flags)
            except MapError as exc:
                exc.count = done
                raise
            done += 1
        return done

    def delete_batch(self, keys: Any) -> int:
        """Delete keys in order; stops at the first failure (``.count`` on the error)."""
        self._check_batch("delete")
        done = 0
        for key in keys:
            try:
                self.delete(key)
            except MapError as exc:
                exc.count = done
                raise
            done += 1
        return done

    # --- program face ---------------------------------------------------------------------------
    def lookup_address(self, key: bytes) -> int:
        """Native address of the value under ``key`` (this CPU's copy), 0 when absent."""
        raise NotImplementedError

    def program_update(self, key: bytes, value: bytes, flags: int) -> int:
        """bpf_map_update_elem from a program: 0 or -errno."""
        try:
            if flags & ~BPF_F_LOCK > BPF_EXIST or flags & BPF_F_LOCK:
                return -EINVAL
            self.update_raw(key, self.program_value(value), flags)
        except MapError as exc:
            return -(exc.errno or EINVAL)
        return 0

    def program_value(self, value: bytes) -> Any:
        return value

    def program_delete(self, key: bytes) -> int:
        try:
            self.delete_raw(key)
        except MapError as exc:
            return -(exc.errno or EINVAL)
        return 0

    # --- dict-like Python API -------------------------------------------------------------------
    def __getitem__(self, key: Any) -> Any:
        try:
            return self.lookup(key)
        except MapError as exc:
            if exc.errno == ENOENT:
                raise KeyError(key) from exc
            raise

    def __setitem__(self, key: Any, value: Any) -> None:
        self.update(key, value)

    def __delitem__(self, key: Any) -> None:
        try:
            self.delete(key)
        except MapError as exc:
            if exc.errno == ENOENT:
                raise KeyError(key) from exc
            raise

    def __contains__(self, key: Any) -> bool:
        try:
            self.lookup_raw(self.key_bytes(key))
        except MapError as exc:
            if exc.errno == ENOENT:
                return False
            raise
        return True

    def get(self, key: Any, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def iter_raw_keys(self) -> Iterator[bytes]:
        """Keys in get_next_key order (a snapshot, so the map may change while iterating)."""
        keys = []
        key = None
        while True:
            try:
                key = self.next_key_raw(key)
            except MapError as exc:
                if exc.errno == ENOENT:
                    break
                raise
            keys.append(key)
        return iter(keys)

    def __iter__(self) -> Iterator[Any]:
        return (from_bytes(k, self.key_type) for k in self.iter_raw_keys())

    def keys(self) -> list:
        return list(self)

    def items(self) -> list[tuple[Any, Any]]:
        out = []
        for k in self.iter_raw_keys():
            try:
                out.append((from_bytes(k, self.key_type), self.decode_value(self.lookup_raw(k))))
            except MapError:
                continue
        return out

    def values(self) -> list:
        return [v for _, v in self.items()]

    def __len__(self) -> int:
        return sum(1 for _ in self.iter_raw_keys())

    def clear(self) -> None:
        for k in list(self.iter_raw_keys()):
            self.delete_raw(k)

    def raw_items(self) -> list[tuple[bytes, Any]]:
        """(key bytes, value bytes or list of bytes) -- what ``pybpf run --json`` prints."""
        return [(k, self.lookup_raw(k)) for k in self.iter_raw_keys()]

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} {self.name!r} type={self.type} key={self.key_size} "
                f"value={self.value_size} max_entries={self.max_entries}>")


class PerCPUMixin:
    """Per-CPU values: Python sees a list of ``possible_cpus()`` values; bpf(2) would see them
    packed with each value rounded up to 8 bytes (accepted here too)."""

    percpu = True

    def encode_value(self, value: Any) -> list[bytes]:
        n = possible_cpus()
        stride = round_up(self.value_size)
        if isinstance(value, (list, tuple)):
            if len(value) != n:
                raise fail(f"{self.where()}: per-CPU value needs {n} values (one per possible "
                           f"CPU), got {len(value)}", EINVAL)
            return [self.value_bytes(v) for v in value]
        if isinstance(value, (bytes, bytearray, memoryview)) and len(value) == stride * n \
                and stride * n != self.value_size:
            raw = bytes(value)
            return [raw[i * stride: i * stride + self.value_size] for i in range(n)]
        # one value for every CPU
        return [self.value_bytes(value)] * n

    def program_value(self, value: bytes) -> Any:
        return OneCPU(value)


class OneCPU(bytes):
    """A per-CPU map value written by a program: only the current CPU's copy changes (a new
    element's other copies are zeroed, as ``pcpu_init_value`` does)."""
