"""Errors the local host raises."""

from __future__ import annotations


class HostStartupError(RuntimeError):
    """The app cannot be hosted as configured: a clear, user-facing message, no traceback needed."""
