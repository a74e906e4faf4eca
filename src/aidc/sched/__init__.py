"""The scheduler: snapshot + clock in, decisions out. No I/O, so the simulator runs the very same code."""
