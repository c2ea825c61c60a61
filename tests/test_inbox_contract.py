"""Run the inbox contract (``inbox_contract.py``) against every backend listed there."""

from inbox_contract import *  # noqa: F403
