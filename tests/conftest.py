"""Shared pytest configuration: real-service fixtures live in tests/harness/fixtures.py."""

pytest_plugins = ["tests.harness.fixtures"]
