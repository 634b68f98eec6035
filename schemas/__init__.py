"""The contract: one Avro schema per event and version, and ``released.json``.

The files ship inside the installed package; :func:`directory` finds them wherever it
is installed (a checkout, site-packages, a wheel unpacked in a container).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def directory() -> Path:
    """The folder holding the ``.avsc`` files and ``released.json``."""
    return Path(str(files(__name__)))
