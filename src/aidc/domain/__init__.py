"""The vocabulary of aidc: resources, nodes, jobs, queues, decisions, units and errors (pydantic + stdlib only)."""
