"""pytest fixtures for code that talks to Asana webhooks (registered as a ``pytest11`` entry point).

This module is loaded by every pytest run once the package is installed, so it imports nothing
heavy at import time: fixtures import what they need when used.
"""

from __future__ import annotations
