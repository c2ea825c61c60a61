"""One health state per webhook, from Asana's view and the receiver's own record.

Asana sends a heartbeat every 8 hours and deletes a webhook after 24 hours of failed
deliveries, telling nobody. ``webhook_health`` puts together what Asana reports
(``last_success_at``, ``last_failure_at``, ``failure_deletion_timestamp``, ...) and what the
receiver recorded in its secret store (the last heartbeat and delivery per target), and judges:

- ``missing``: declared, but Asana has no such webhook (deleted, or never created);
- ``failing``: deliveries fail; Asana deletes it at ``deletion_at`` unless one succeeds;
- ``silent``: no heartbeat or delivery for longer than 8 hours plus a margin;
- ``drifted``: its filters differ from the declared ones;
- ``ok``.
"""

from __future__ import annotations

import datetime as _dt
import logging
import threading
from typing import Any, Callable, Literal, Optional, Sequence, Union

import attrs

from asana_webhooks._declared import DeclaredWebhook
from asana_webhooks._models import WebhookResponse
from asana_webhooks._secrets import RecordsContact, SecretStore, target_key

logger = logging.getLogger("asana_webhooks")

State = Literal["ok", "failing", "silent", "missing", "drifted"]
STATES: tuple[State, ...] = ("ok", "failing", "silent", "missing", "drifted")

#: Asana's heartbeat period, and the margin past it before a webhook counts as silent.
HEARTBEAT_INTERVAL = _dt.timedelta(hours=8)
DEFAULT_SILENCE_MARGIN = _dt.timedelta(hours=1)


@attrs.frozen
class WebhookHealth:
    """The judgement on one webhook (declared, or found in the workspace)."""

    state: State
    detail: str  #: A sentence a person can act on.
    resource: str
    target: str
    gid: Optional[str] = None
    deletion_at: Optional[_dt.datetime] = None  #: When Asana deletes it, if it is failing.
    last_heard: Optional[_dt.datetime] = None  #: The receiver's last heartbeat or delivery.
    webhook: Optional[WebhookResponse] = attrs.field(default=None, repr=False, eq=False)

    @property
    def needs_attention(self) -> bool:
        return self.state != "ok"


UnhealthyHandler = Callable[[WebhookHealth], None]


class HealthMetrics:
    """The count of webhooks per state at the last ``webhook_health`` run, for ``/metrics``.

    Give one to ``webhook_health(..., metrics=...)`` and the same one to ``metrics_app`` (or
    ``prometheus_text``): it serves ``asana_webhooks_webhooks{state="..."}`` gauges and
    ``asana_webhooks_health_checked_timestamp_seconds``. Thread-safe. Until the first run it
    serves nothing, so an alert on ``missing > 0`` never fires on a server that just started.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Optional[dict[str, int]] = None
        self._checked_at = 0.0

    def record(self, results: Sequence[WebhookHealth], at: _dt.datetime) -> None:
        counts: dict[str, int] = dict.fromkeys(STATES, 0)
        for health in results:
            counts[health.state] += 1
        with self._lock:
            self._counts, self._checked_at = counts, at.timestamp()

    def snapshot(self) -> Optional[tuple[dict[str, int], float]]:
        """``({state: count}, checked_at)`` of the last run, or None before the first."""
        with self._lock:
            return None if self._counts is None else (dict(self._counts), self._checked_at)


def webhook_health(
    api: Any,
    store: Optional[SecretStore],
    desired_or_workspace: Union[str, Sequence[DeclaredWebhook]],
    *,
    now: Optional[_dt.datetime] = None,
    silence_margin: _dt.timedelta = DEFAULT_SILENCE_MARGIN,
    on_unhealthy: Optional[UnhealthyHandler] = None,
    metrics: Optional[HealthMetrics] = None,
) -> list[WebhookHealth]:
    """Judge each declared webhook, or each webhook of a workspace (give its gid).

    ``store`` is the receiver's secret store (None to judge by Asana's view alone).
    ``on_unhealthy`` is called for each webhook that needs attention; if it raises, the error
    is logged and the others are still judged. ``metrics`` (a ``HealthMetrics``) is updated
    with the count per state, for Prometheus.
    """
    from asana_webhooks._ensure import WEBHOOK_FIELDS, _filter_set

    now = now or _dt.datetime.now(_dt.timezone.utc)
    if isinstance(desired_or_workspace, str):
        workspaces: Sequence[str] = [desired_or_workspace]
        declared: Optional[Sequence[DeclaredWebhook]] = None
    else:
        declared = desired_or_workspace
        workspaces = list(dict.fromkeys(item.workspace for item in declared))
    existing: list[WebhookResponse] = []
    for workspace in workspaces:
        existing.extend(api.iter_webhooks(workspace, opt_fields=list(WEBHOOK_FIELDS)))

    results: list[WebhookHealth] = []
    if declared is None:
        for webhook in existing:
            heard = _heard(store, webhook.target)
            results.append(
                judge_webhook(webhook, now=now, heard=heard, silence_margin=silence_margin)
            )
    else:
        by_place = {
            (webhook.resource.gid if webhook.resource else None, webhook.target): webhook
            for webhook in existing
        }
        for item in declared:
            found = by_place.get((item.resource, item.target))
            if found is None:
                results.append(_missing(item, store, now))
                continue
            drifted = _filter_set(found.filters or []) != _filter_set(item.filters)
            results.append(
                judge_webhook(
                    found,
                    now=now,
                    heard=_heard(store, item.target),
                    silence_margin=silence_margin,
                    drifted=drifted,
                    resource=item.resource,
                )
            )
    if metrics is not None:
        metrics.record(results, now)
    if on_unhealthy is not None:
        for health in results:
            if health.needs_attention:
                try:
                    on_unhealthy(health)
                except Exception:
                    logger.exception("on_unhealthy raised for %s", health.target)
    return results


def _missing(
    item: DeclaredWebhook, store: Optional[SecretStore], now: _dt.datetime
) -> WebhookHealth:
    heard = _heard(store, item.target)
    detail = "Asana has no webhook on this resource for this target"
    if heard is not None:
        detail += f"; the receiver last heard from it at {_when(heard, now)}"
    detail += " (run `asana-webhooks ensure` to create it)"
    return WebhookHealth("missing", detail, item.resource, item.target, last_heard=heard)


def judge_webhook(
    webhook: WebhookResponse,
    *,
    now: _dt.datetime,
    heard: Optional[_dt.datetime] = None,
    silence_margin: _dt.timedelta = DEFAULT_SILENCE_MARGIN,
    drifted: bool = False,
    resource: Optional[str] = None,
) -> WebhookHealth:
    """Judge one webhook Asana has, given when its target last heard from Asana (``heard``,
    the receiver's record) and whether its filters differ from the declared ones."""
    target = webhook.target or "-"
    if resource is None:
        resource = webhook.resource.gid if webhook.resource is not None else "-"
    failure, success = webhook.last_failure_at, webhook.last_success_at
    retries = webhook.delivery_retry_count or 0
    deletion = webhook.failure_deletion_timestamp

    def health(state: State, detail: str) -> WebhookHealth:
        return WebhookHealth(
            state, detail, resource, target, webhook.gid, deletion, heard, webhook=webhook
        )

    if retries or deletion is not None or (failure and (success is None or failure >= success)):
        detail = "deliveries are failing"
        if failure is not None:
            detail += f": last failure at {_when(failure, now)}"
        if retries:
            detail += f", {retries} retr{'y' if retries == 1 else 'ies'} so far"
        if webhook.next_attempt_after is not None:
            detail += f", next attempt at {_when(webhook.next_attempt_after, now)}"
        if deletion is not None and deletion <= now:
            detail += f"; Asana was due to delete it at {_when(deletion, now)}"
        elif deletion is not None:
            detail += f"; Asana deletes it at {_when(deletion, now)} unless a delivery succeeds"
        if webhook.last_failure_content:
            detail += f"; the target said: {' '.join(webhook.last_failure_content.split())[:80]}"
        return health("failing", detail)
    if webhook.active is False:
        return health("failing", "Asana reports it inactive: it is not delivering")
    # Silent: the receiver's own record is the better witness (a target answered by something
    # else looks fine to Asana); without one, Asana's last success.
    last = heard if heard is not None else success
    created = webhook.created_at
    silent_after = HEARTBEAT_INTERVAL + silence_margin
    if last is not None and now - last > silent_after:
        return health(
            "silent", f"nothing heard since {_when(last, now)} (heartbeats come every 8 hours)"
        )
    if last is None and created is not None and now - created > silent_after:
        return health("silent", f"nothing heard since it was created at {_when(created, now)}")
    if drifted:
        return health("drifted", "its filters differ from the declared ones (run ensure)")
    return health("ok", "delivering" if last is not None else "new; no heartbeat yet")


def _heard(store: Optional[SecretStore], target: Optional[str]) -> Optional[_dt.datetime]:
    if not target or store is None or not isinstance(store, RecordsContact):
        return None
    last = store.last_contact(target_key(target)).last
    return None if last is None else _dt.datetime.fromtimestamp(last, _dt.timezone.utc)


def _when(moment: _dt.datetime, now: _dt.datetime) -> str:
    """``2024-05-01 12:00 UTC (2h 5m ago)``: the time to look up, and how far it is."""
    seconds = int((moment - now).total_seconds())
    future, seconds = seconds > 0, abs(seconds)
    if seconds < 3600:
        amount = f"{seconds // 60}m"
    elif seconds < 86400:
        amount = f"{seconds // 3600}h {seconds % 3600 // 60}m"
    else:
        amount = f"{seconds // 86400}d {seconds % 86400 // 3600}h"
    at = moment.astimezone(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"{at} ({'in ' + amount if future else amount + ' ago'})"
