"""The event protocol between a script's programs and user space: each ring buffer record
starts with (kind, id) as two u64; the kinds are below. Kept in a module of its own so the
runtime reads events without importing the compiler's type definitions."""

EV_PRINTF, EV_EXIT, EV_PRINT, EV_CLEAR, EV_ZERO, EV_TIME, EV_JOIN, EV_CAT = 1, 2, 3, 4, 5, 6, 7, 8

#: join(): bpftrace 0.17 reads up to 16 strings of up to 1024 bytes (with the NUL) each
JOIN_ARGNUM, JOIN_ARGSIZE = 16, 1024
