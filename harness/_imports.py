"""Objects named by "package.module:name", as scenarios, jobs and setup functions are given by path."""

from __future__ import annotations

import importlib
from typing import Any

from harness.errors import ConfigurationError

__all__ = ["load_attr"]


def load_attr(path: str) -> Any:
    """The object `path` ("package.module:name") names; a `ConfigurationError` saying why when the path is
    not of that form, its module does not import, or the module has no such name."""
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigurationError(f"expected \"package.module:name\", got {path!r}")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(f"cannot load {path!r}: {exc}") from None
