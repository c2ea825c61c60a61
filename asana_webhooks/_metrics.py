"""Counters a site can graph: the receiver's (per process) and the inbox's (shared).

``ReceiverMetrics`` counts what one receiver answered: deliveries accepted, refused by reason,
events received and duplicates dropped. ``prometheus_text`` writes them, with an inbox's
``stats()``, in the Prometheus text format: through ``prometheus_client`` when it is
installed, else directly (the same names either way). ``metrics_app`` serves that at
``GET /metrics`` in front of a receiver's WSGI app, as ``asana-webhooks serve`` does.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Optional

if TYPE_CHECKING:
    from asana_webhooks._health import HealthMetrics
    from asana_webhooks._inbox import Inbox, InboxStats

logger = logging.getLogger("asana_webhooks")

_PREFIX = "asana_webhooks_"
PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class ReceiverMetrics:
    """Thread-safe counters of one receiver, since it was made."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._refused: dict[str, int] = {}

    def count(self, name: str, by: int = 1) -> None:
        with self._lock:
            self._counts[name] = self._counts.get(name, 0) + by

    def accepted(self, events: int, *, duplicates: int = 0) -> None:
        """A delivery carrying ``events`` was answered 200 (``duplicates`` already known)."""
        with self._lock:
            for name, by in (
                ("deliveries_accepted", 1),
                ("events_received", events),
                ("duplicates_dropped", duplicates),
            ):
                self._counts[name] = self._counts.get(name, 0) + by

    def refused(self, reason: str) -> None:
        with self._lock:
            self._refused[reason] = self._refused.get(reason, 0) + 1

    def snapshot(self) -> dict[str, Any]:
        """``{"deliveries_accepted": n, ..., "refused": {reason: n}}``."""
        with self._lock:
            return {**self._counts, "refused": dict(self._refused)}


# (name, type, help, value from the receiver snapshot or the inbox stats)
_RECEIVER_COUNTERS = (
    ("deliveries_accepted", "Deliveries answered 200 (heartbeats not counted)."),
    ("heartbeats", "Heartbeats (deliveries without events) answered 200."),
    ("handshakes_accepted", "Handshakes accepted and their secret stored."),
    ("events_received", "Events in accepted deliveries, duplicates included."),
    ("duplicates_dropped", "Events in accepted deliveries that the inbox already had."),
)
_INBOX_GAUGES = (
    ("inbox_pending", "Events waiting for a worker.", "pending"),
    ("inbox_in_progress", "Events claimed by a live worker.", "in_progress"),
    ("inbox_failed", "Events parked as failed now.", "failed"),
    (
        "inbox_oldest_pending_age_seconds",
        "Age of the oldest event not yet handled (0 when none).",
        "oldest_pending_age",
    ),
)
_INBOX_COUNTERS = (
    ("inbox_stored", "Events stored in the inbox.", "stored"),
    ("inbox_duplicates", "Events dropped because their key was known.", "duplicates"),
    ("inbox_handled", "Events a handler completed.", "handled"),
    ("inbox_retried", "Times an event was sent back after its handler raised.", "retried"),
    ("inbox_parked", "Events parked as failed.", "parked"),
    ("inbox_gaps", "Sync-token gaps reported by the reconciler.", "gaps"),
)


def _families(
    receiver: Optional[ReceiverMetrics],
    stats: Optional[InboxStats],
    health: Optional[HealthMetrics] = None,
) -> Iterator[tuple[str, str, str, list[tuple[dict[str, str], float]]]]:
    """(name, type, help, [(labels, value)]) for every metric, names without ``_total``."""
    checked = health.snapshot() if health is not None else None
    if checked is not None:
        counts, checked_at = checked
        yield (
            _PREFIX + "webhooks",
            "gauge",
            "Webhooks in each health state (ok, failing, silent, missing, drifted) at the "
            "last webhook_health run.",
            [({"state": state}, float(count)) for state, count in counts.items()],
        )
        yield (
            _PREFIX + "health_checked_timestamp_seconds",
            "gauge",
            "When webhook_health last ran (Unix time).",
            [({}, checked_at)],
        )
    if receiver is not None:
        snapshot = receiver.snapshot()
        for name, help_text in _RECEIVER_COUNTERS:
            yield _PREFIX + name, "counter", help_text, [({}, float(snapshot.get(name, 0)))]
        refused = snapshot["refused"]
        yield (
            _PREFIX + "requests_refused",
            "counter",
            "Requests (deliveries and handshakes) refused, by reason.",
            [({"reason": reason}, float(n)) for reason, n in sorted(refused.items())],
        )
    if stats is not None:
        for name, help_text, field in _INBOX_GAUGES:
            value = getattr(stats, field)
            yield _PREFIX + name, "gauge", help_text, [({}, float(value or 0))]
        for name, help_text, field in _INBOX_COUNTERS:
            yield _PREFIX + name, "counter", help_text, [({}, float(getattr(stats, field)))]


def prometheus_text(
    receiver: Optional[ReceiverMetrics] = None,
    inbox: Optional[Inbox] = None,
    health: Optional[HealthMetrics] = None,
) -> bytes:
    """The metrics in the Prometheus text format (``inbox.stats()`` is read once), with the
    webhook health gauges of ``health`` once ``webhook_health`` has fed it."""
    stats = inbox.stats() if inbox is not None else None
    families = list(_families(receiver, stats, health))
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        return _write_text(families)
    return _with_prometheus_client(families)


def _write_text(
    families: Iterable[tuple[str, str, str, list[tuple[dict[str, str], float]]]],
) -> bytes:
    lines: list[str] = []
    for name, kind, help_text, samples in families:
        full = name + "_total" if kind == "counter" else name
        lines.append(f"# HELP {full} {help_text}")
        lines.append(f"# TYPE {full} {kind}")
        for labels, value in samples:
            label_text = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
            lines.append(f"{full}{{{label_text}}} {value!r}" if labels else f"{full} {value!r}")
    return ("\n".join(lines) + "\n").encode("utf-8")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _with_prometheus_client(
    families: list[tuple[str, str, str, list[tuple[dict[str, str], float]]]],
) -> bytes:
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    class _Collector:
        def collect(self) -> Iterator[Any]:
            for name, kind, help_text, samples in families:
                label_names = sorted({key for labels, _ in samples for key in labels})
                family_class = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
                family = family_class(name, help_text, labels=label_names)
                for labels, value in samples:
                    family.add_metric([labels[key] for key in label_names], value)
                yield family

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector())
    return bytes(generate_latest(registry))


StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def metrics_app(
    app: WSGIApp,
    receiver: Optional[ReceiverMetrics] = None,
    inbox: Optional[Inbox] = None,
    *,
    path: str = "/metrics",
    health: Optional[HealthMetrics] = None,
) -> WSGIApp:
    """``app`` with ``GET path`` answered by the metrics (a POST there still reaches ``app``)."""

    def application(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != path or environ.get("REQUEST_METHOD") != "GET":
            return app(environ, start_response)
        try:
            body = prometheus_text(receiver, inbox, health)
        except Exception:
            logger.exception("Could not read the inbox's stats for /metrics")
            body, status = b"could not read the inbox's stats\n", "503 Service Unavailable"
            start_response(status, [("Content-Type", "text/plain; charset=utf-8")])
            return [body]
        start_response(
            "200 OK",
            [("Content-Type", PROMETHEUS_CONTENT_TYPE), ("Content-Length", str(len(body)))],
        )
        return [body]

    return application
