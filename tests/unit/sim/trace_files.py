"""Where the real traces are for the tests, and a mark that skips a test, saying why, when they are absent."""

from __future__ import annotations

import pytest

from aidc.sim.traces import ENV_VAR, traces_dir

TRACES = traces_dir()

needs_traces = pytest.mark.skipif(
    not TRACES.is_dir(),
    reason=f"the real traces are not here ({TRACES}); set {ENV_VAR} to the shared traces directory",
)
