"""Fixtures for the whole suite. Servers the tests start live in plugins under tests/fixtures."""

pytest_plugins = ["tests.fixtures.postgres", "tests.fixtures.runtimes", "tests.fixtures.ray", "tests.fixtures.slurm"]
