# Sum the integers 1..N and return the total: N = 100, so the program returns 5050.
# Assemble with `pybpf asm sum.s`, run with `pybpf run sum.s`.
	r0 = 0                  # the running total
	r1 = 100                # N, counted down to 0
loop:
	r0 += r1
	r1 -= 1
	if r1 != 0 goto loop
	exit
