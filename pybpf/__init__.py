"""pybpf: BPF and eBPF, the whole system, in Python."""

__version__ = "0.1.0"
