"""The simulator: replays real cluster traces through the scheduler the control plane runs (`aidc.sched`).

Pure like `aidc.sched`: no database, no network, no real clock. Reading trace files and cluster files
(`aidc.sim.traces`, `aidc.sim.clusters`) is its only I/O."""
