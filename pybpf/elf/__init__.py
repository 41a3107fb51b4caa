"""BPF ELF objects built by clang: read them into plain-data specs, the way libbpf opens them.

``load_object(path_or_bytes)`` returns an :class:`ObjectSpec` (programs by C function name,
maps by name, BTF, license, globals and kconfig externs); ``text_sections`` returns the raw
code sections with their symbols, relocations and source lines, for ``pybpf disasm`` of an
object in ``llvm-objdump -d -r -S`` form.
"""

from .loader import ObjectSpec, Variable, load_object
from .text import TextSection, objdump_listing, text_sections

__all__ = ["ObjectSpec", "Variable", "load_object", "TextSection", "objdump_listing",
           "text_sections"]
