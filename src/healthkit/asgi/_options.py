"""The ASGI app's option types, importable without Starlette."""

from __future__ import annotations

from typing import Literal

__all__ = ["ShowDetails"]

#: Whether ``/health`` lists per-model details (``never`` by default: they reveal topology).
ShowDetails = Literal["never", "always"]
