"""Run the secret store contract (``secret_store_contract.py``) against every store listed there."""

from secret_store_contract import *  # noqa: F403
