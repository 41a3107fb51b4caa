# Count how many times the program ran, in slot 0 of an array map, and return the new count.
# The map is declared with `.map` and loaded by name; `pybpf run counter.s --json` shows it.
.map counters array key=4 value=8 max_entries=1

	r1 = 0
	*(u32 *)(r10 - 4) = r1      # key = 0, on the stack
	r2 = r10
	r2 += -4                    # r2 = &key
	r1 = counters ll            # r1 = the map
	call bpf_map_lookup_elem    # r0 = &value, or NULL
	if r0 == 0 goto missing
	r1 = 1
	lock *(u64 *)(r0 + 0) += r1 # atomically count this run
	r0 = *(u64 *)(r0 + 0)
	exit
missing:
	r0 = 0
	exit
