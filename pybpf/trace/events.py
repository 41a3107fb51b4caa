"""The event protocol between a script's programs and user space: each ring buffer record
starts with (kind, id) as two u64; the kinds are below. Kept in a module of its own so the
runtime reads events without importing the compiler's type definitions."""

EV_PRINTF, EV_EXIT, EV_PRINT, EV_CLEAR, EV_ZERO, EV_TIME = 1, 2, 3, 4, 5, 6
