"""Names of aidc's work in a shared engine: one installation finds its own attempts, never another's."""

from __future__ import annotations

from aidc.backends.context import engine_job_name, installation_prefix, parse_engine_job_name


def test_names_round_trip_with_their_installation_prefix() -> None:
    prefix = installation_prefix(b"k" * 32)
    assert prefix.startswith("aidc-")
    assert len(prefix) == len("aidc-") + 6
    name = engine_job_name(12, 3, prefix)
    assert name == f"{prefix}-12-3"
    assert parse_engine_job_name(name, prefix) == (12, 3)


def test_another_installations_names_are_not_ours() -> None:
    ours, theirs = installation_prefix(b"a" * 32), installation_prefix(b"b" * 32)
    assert ours != theirs
    assert installation_prefix(b"a" * 32) == ours  # every instance of one installation agrees
    assert parse_engine_job_name(engine_job_name(12, 3, theirs), ours) is None
    assert parse_engine_job_name("aidc-12-3", ours) is None
    assert parse_engine_job_name(f"{ours}-12-3-x", ours) is None
    assert parse_engine_job_name(f"{ours}-12", ours) is None


def test_names_are_valid_in_every_engine() -> None:
    name = engine_job_name(2**31 - 1, 100, installation_prefix(b"\x00" * 32))
    # Kubernetes object names (DNS-1123 labels) are the strictest: lower case, digits, '-', at most 63.
    assert len(name) <= 63
    assert all(c.islower() or c.isdigit() or c == "-" for c in name)
