"""Shared fixtures for the harness's own tests. Kept light: the 3.12 tracer run installs only the core."""

pytest_plugins = ["pytester"]
