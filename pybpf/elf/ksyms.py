"""``__ksym`` externs: kernel functions (kfuncs) and kernel variables, resolved as libbpf does.

An object declares them as ``extern`` symbols in the ``.ksyms`` DATASEC of its BTF
(``bpf_object__resolve_ksyms_btf_id`` / ``bpf_object__read_kallsyms_file`` in libbpf):

- a kfunc (a BTF FUNC with extern linkage) is found by name among the kernel's BTF FUNCs; its
  calls become ``call`` with ``src=BPF_PSEUDO_KFUNC_CALL``, ``imm`` = the kernel's BTF id and
  ``off`` = 0 (vmlinux, not a module);
- a typed variable (a VAR of a real type) is found among the kernel's BTF VARs; its address
  loads become ``lddw`` with ``src=BPF_PSEUDO_BTF_ID`` and ``imm`` = the kernel's BTF id;
- an untyped variable (``extern const void sym __ksym``) takes its address from
  ``/proc/kallsyms`` as a plain 64-bit immediate.

A ``__weak`` extern the kernel lacks resolves to 0 (a kfunc call is then poisoned, so the
verifier refuses it only if the call is reachable, as libbpf arranges).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..btf import types as T
from ..errors import ObjectFileError

#: libbpf's poison for calls to unresolved weak kfuncs: a helper id no kernel has
POISON_KFUNC_BASE = 2002000000


@dataclass
class Ksym:
    """One ``__ksym`` extern and what it resolved to."""

    name: str
    kind: str           # "kfunc", "var" (typed, by BTF id) or "addr" (untyped, by address)
    btf_id: int = 0
    address: int = 0
    weak: bool = False

    @property
    def resolved(self) -> bool:
        return bool(self.btf_id or self.address)


_kallsyms: dict[str, int] | None = None


def kallsyms() -> dict[str, int]:
    """Kernel symbol addresses from /proc/kallsyms (zeros when kptr_restrict hides them)."""
    global _kallsyms
    if _kallsyms is None:
        table: dict[str, int] = {}
        try:
            with open("/proc/kallsyms") as f:
                for line in f:
                    parts = line.split()
                    if len(parts) >= 3:
                        table.setdefault(parts[2], int(parts[0], 16))
        except OSError:
            pass
        _kallsyms = table
    return _kallsyms


def resolve_ksyms(local: T.BTF, datasec: T.Datasec, weak: dict[str, bool], kernel_btf,
                  where: str) -> dict[str, Ksym]:
    """Resolve every entry of the object's ``.ksyms`` DATASEC against the running kernel.

    ``kernel_btf`` is called (lazily) for the kernel's BTF.
    """
    out: dict[str, Ksym] = {}
    for info in datasec.vars:
        t = local[info.type_id]
        name = t.name
        is_weak = weak.get(name, False)
        if isinstance(t, T.Func):
            found = [f for f in kernel_btf().find(name, "func")]
            sym = Ksym(name, "kfunc", found[0].id if found else 0, weak=is_weak)
        elif isinstance(t, T.Var) and local.skip_modifiers(t.type_id).kind == "void":
            sym = Ksym(name, "addr", address=kallsyms().get(name, 0), weak=is_weak)
        elif isinstance(t, T.Var):
            found = [v for v in kernel_btf().find(name, "var")]
            sym = Ksym(name, "var", found[0].id if found else 0, weak=is_weak)
        else:
            continue
        if not sym.resolved and not is_weak:
            what = {"kfunc": "kernel function (kfunc)", "var": "kernel variable",
                    "addr": "kernel symbol"}[sym.kind]
            raise ObjectFileError(f"{where}: extern {what} '{name}' is not in the running "
                                  f"kernel (declare it __weak to allow that)")
        out[name] = sym
    return out
