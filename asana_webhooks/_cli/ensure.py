"""``asana-webhooks ensure FILE --secrets STORE``: make Asana's webhooks match a declared file."""

from __future__ import annotations

import argparse
from typing import Any, Optional, TextIO

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
With --inbox, the events a re-created webhook missed (since its target last heard from Asana,
as the receiver recorded in STORE) are recovered through the Events API into that inbox.
Running it again changes nothing; runs started together take turns."""

ENSURE_EXIT = """\
exit status:
  0  everything matches (or, with --dry-run, nothing needs changing)
  1  something could not be done (the table says what and why)
  2  a bad FILE or option: nothing was sent to Asana
  3  with --dry-run: changes are needed; with --inbox: a re-created webhook's missed
     events could not all be recovered (a gap: re-read those resources)"""


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
    ensure.add_argument(
        "--inbox",
        metavar="URL",
        help="recover the events re-created webhooks missed into this inbox (as `reconcile`)",
    )
    ensure.set_defaults(run=cmd_ensure)


def cmd_ensure(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from asana_webhooks._declared import DeclarationError, load_declared
    from asana_webhooks._ensure import ensure_webhooks

    try:
        declared = load_declared(args.file)
    except DeclarationError as exc:
        raise UsageError(f"{args.file}: {exc}") from None
    store = open_store(args.secrets)
    inbox = _open_inbox(args.inbox) if args.inbox else None
    repaired: list[tuple[Any, Optional[float]]] = []
    try:
        with opened_api(args) as api:
            result = ensure_webhooks(
                api,
                store,
                declared,
                prune=args.prune,
                dry_run=args.dry_run,
                on_repaired=(lambda item, since: repaired.append((item, since))) if inbox else None,
            )
            recovered = _recover(api, inbox, repaired) if inbox is not None else []
    finally:
        if inbox is not None:
            inbox.close()
    if args.json:
        print_json(out, {"dry_run": result.dry_run, "ok": result.ok,
                         "changes": [_change_json(c) for c in result.changes],
                         "recovered": [_recovered_json(r) for r in recovered]})  # fmt: skip
    else:
        _print_result(out, result)
        _print_recovered(out, recovered)
    if result.failed or any(r.error or r.rate_limited for r in recovered):
        return EXIT_FAILED
    if (result.dry_run and result.pending) or any(r.gap for r in recovered):
        return EXIT_ATTENTION
    return EXIT_OK


def _open_inbox(url: str) -> Any:
    from asana_webhooks._urls import InvalidURLError, open_inbox

    try:
        return open_inbox(url)
    except InvalidURLError as exc:
        raise UsageError(f"--inbox: {exc}") from None


def _recover(api: Any, inbox: Any, repaired: list[tuple[Any, Optional[float]]]) -> list[Any]:
    """For each re-created webhook, read its resource's events since it was last heard from.

    The inbox drops what webhooks brought already; what is new reaches the workers. The
    window is recoverable only while a sync token stored before it is valid (24 hours, and
    only if a reconciler watched the resource): otherwise the result is a gap.
    """
    from asana_webhooks._reconcile import Reconciler

    if not repaired:
        return []
    resources = list(dict.fromkeys(item.resource for item, _ in repaired))
    reconciler = Reconciler(api.api_client, inbox, resources)
    return [reconciler.recover(item.resource, since) for item, since in repaired]


def _recovered_json(result: Any) -> dict[str, Any]:
    from asana_webhooks._cli.reconcile import _as_json

    return _as_json(result)


def _print_recovered(out: TextIO, recovered: list[Any]) -> None:
    from asana_webhooks._cli.reconcile import _describe

    if recovered:
        out.write("\nRecovered through the Events API:\n")
    for result in recovered:
        out.write(f"{result.resource}: {_describe(result)}\n")


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
