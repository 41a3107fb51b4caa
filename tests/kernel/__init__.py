"""Tests of pybpf.kernel against the running kernel."""
