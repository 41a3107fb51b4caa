"""BTF, the BPF Type Format: types of an object file or of the running kernel.

``parse_btf`` / ``parse_btf_ext`` read the ``.BTF`` and ``.BTF.ext`` sections of an object,
``load_vmlinux`` the kernel's own BTF; ``cprinter`` prints types as C like
``bpftool btf dump ... format c``; ``core`` resolves CO-RE relocations against a target BTF
as libbpf does; ``values`` turns raw map keys and values into typed Python objects.
"""

from .parser import (BTFExt, CoreRelo, FuncInfo, LineInfo, load_vmlinux, parse_btf,
                     parse_btf_ext)
from .types import BTF

__all__ = ["BTF", "BTFExt", "CoreRelo", "FuncInfo", "LineInfo", "load_vmlinux", "parse_btf",
           "parse_btf_ext"]
