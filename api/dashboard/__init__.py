"""OmniDash: the dashboard the API serves under ``/dashboard`` (see ``pages.py``)."""

from __future__ import annotations

from api.dashboard.pages import install

__all__ = ["install"]
