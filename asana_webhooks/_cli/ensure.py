"""``asana-webhooks ensure FILE --secrets STORE``: make Asana's webhooks match a declared file."""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from asana_webhooks._cli._common import (
    EXIT_ATTENTION,
    EXIT_FAILED,
    EXIT_OK,
    UsageError,
    api_options,
    opened_api,
    para,
)
from asana_webhooks._cli._common import open_secret_store as open_store
from asana_webhooks._cli._output import print_json, print_table

ENSURE_HELP = """\
Make the webhooks Asana has match FILE, a TOML file of [[webhook]] entries (workspace,
resource, target, filters). Missing webhooks are created with a verified handshake (the
receiver serving the targets must be running and use the same --secrets store), filters that
differ are updated, and webhooks whose secret is no longer in the store are created again.
With --prune, webhooks on the declared targets' hosts that FILE does not list are deleted.
Running it again changes nothing; runs started together take turns."""

ENSURE_EXIT = """\
exit status:
  0  everything matches (or, with --dry-run, nothing needs changing)
  1  something could not be done (the table says what and why)
  2  a bad FILE or option: nothing was sent to Asana
  3  with --dry-run: changes are needed"""


def register(commands: Any) -> None:
    ensure = commands.add_parser(
        "ensure",
        parents=[api_options()],
        help="create, update (and with --prune delete) webhooks to match a declared file",
        description=para(ENSURE_HELP),
        epilog=ENSURE_EXIT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ensure.add_argument("file", metavar="FILE", help="the declared webhooks (TOML)")
    ensure.add_argument(
        "--secrets",
        required=True,
        metavar="STORE",
        help="the secret store the receiving `serve` (or web app) uses",
    )
    ensure.add_argument(
        "--prune",
        action="store_true",
        help="also delete webhooks on the declared targets' hosts that FILE does not list",
    )
    ensure.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    ensure.set_defaults(run=cmd_ensure)


def cmd_ensure(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from asana_webhooks._declared import DeclarationError, load_declared
    from asana_webhooks._ensure import ensure_webhooks

    try:
        declared = load_declared(args.file)
    except DeclarationError as exc:
        raise UsageError(f"{args.file}: {exc}") from None
    store = open_store(args.secrets)
    with opened_api(args) as api:
        result = ensure_webhooks(api, store, declared, prune=args.prune, dry_run=args.dry_run)
    if args.json:
        print_json(out, {"dry_run": result.dry_run, "ok": result.ok,
                         "changes": [_change_json(c) for c in result.changes]})  # fmt: skip
    else:
        _print_result(out, result)
    if result.failed:
        return EXIT_FAILED
    if result.dry_run and result.pending:
        return EXIT_ATTENTION
    return EXIT_OK


def _change_json(change: Any) -> dict[str, Any]:
    return {
        "action": change.action,
        "reason": change.reason,
        "resource": change.resource,
        "target": change.target,
        "gid": change.gid,
        "done": change.done,
        "error": change.error,
    }


def _print_result(out: TextIO, result: Any) -> None:
    rows = [
        [change.action, change.resource, change.target, change.reason] for change in result.changes
    ]
    out.write("Plan:\n")
    print_table(out, ["ACTION", "RESOURCE", "TARGET", "WHY"], rows)
    if result.dry_run:
        count = len(result.pending)
        out.write(f"\nDry run: {count} change{'s' * (count != 1)} needed, none made.\n")
        return
    if not result.pending:
        out.write("\nNothing to do: every declared webhook matches.\n")
        return
    out.write("\nDone:\n")
    done_rows = [
        [
            change.action,
            change.gid or "-",
            change.target,
            "ok" if change.done else f"FAILED: {change.error}",
        ]
        for change in result.pending
    ]
    print_table(out, ["ACTION", "GID", "TARGET", "RESULT"], done_rows)
