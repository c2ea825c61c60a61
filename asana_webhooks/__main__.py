"""``python -m asana_webhooks``: the ``asana-webhooks`` command."""

from asana_webhooks._cli import main

if __name__ == "__main__":
    raise SystemExit(main())
