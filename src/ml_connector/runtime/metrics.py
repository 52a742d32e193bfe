"""The process's Prometheus metrics: one registry per process, counted at the runtime's edges.

The poll loop, the dispatcher and the write-back runner report what they did here (a poll's
report, an attempt's result, a write-back's end); the pure core knows nothing of it. Counters
start at zero with the process and survive nothing by design: Prometheus' `rate()` and
`increase()` handle restarts. Several processes (PostgreSQL deployments) are each scraped on
their own admin address and summed in PromQL; the outbox gauges read the shared store, so they
are the same in every process (aggregate them with `max`, not `sum`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ml_connector.store.port import AttemptResult, Outcome
from ml_connector.store.probe import StoreProbe

__all__ = ["RECENT", "ConnectorMetrics", "OutboxCollector"]

log = logging.getLogger(__name__)

#: Twilio answers a create in tens to hundreds of milliseconds; timeouts are seconds.
_SEND_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
#: Outcomes whose error code is Twilio's answer to this attempt's request (a held account's rows
#: repeat the code that held it without asking Twilio: `mlc_twilio_account_held` shows those).
_ANSWERED = frozenset({Outcome.PERMANENT, Outcome.TRANSIENT, Outcome.IN_DOUBT})
#: The window of the store-derived counts (notifications by status, delivery error codes).
RECENT = timedelta(hours=24)


class ConnectorMetrics:
    """Counters and histograms of one process; `registry` is what the admin listener serves."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.polls = Counter("mlc_polls", "Polls completed, by flow and kind (main, lookback).",
                             ["flow", "kind"], registry=r)
        self.poll_errors = Counter("mlc_poll_errors", "Polls that failed, by flow.", ["flow"], registry=r)
        self.records_read = Counter("mlc_records_read", "ERP records read by polls.", ["flow"], registry=r)
        self.events_fired = Counter("mlc_events_fired", "Records whose trigger fired.", ["flow"], registry=r)
        self.notifications_created = Counter(
            "mlc_notifications_created", "Notifications stored by polls (new idempotency keys).",
            ["flow", "channel"], registry=r)
        self.send_seconds = Histogram(
            "mlc_send_seconds", "Time of one send request to the provider (Twilio Messages create).",
            ["account"], buckets=_SEND_BUCKETS, registry=r)
        self.attempts = Counter("mlc_send_attempts", "Send attempts recorded, by account and outcome.",
                                ["account", "outcome"], registry=r)
        self.twilio_errors = Counter("mlc_twilio_errors", "Error codes Twilio's API answered sends with.",
                                     ["code"], registry=r)
        self.retries = Counter("mlc_retries", "Attempts that failed transiently and were scheduled again.",
                               ["account"], registry=r)
        self.pacing_delays = Counter(
            "mlc_pacing_delays", "Sends held for their sender's rate: waited in memory or deferred.",
            ["sender", "how"], registry=r)
        self.pacing_wait_seconds = Counter("mlc_pacing_wait_seconds", "Seconds sends waited for pacing.",
                                           ["sender"], registry=r)
        self.write_backs = Counter("mlc_write_backs", "Write-backs to the ERP, by source and result.",
                                   ["source", "result"], registry=r)
        self.write_back_failures = Counter("mlc_write_back_failures", "Write-back calls the ERP failed.",
                                           ["source"], registry=r)

    # -- poller ----------------------------------------------------------------------------------

    def poll_done(self, flow: str, kind: str, channel: str, read: int, fired: int, inserted: int) -> None:
        self.polls.labels(flow, kind).inc()
        self.records_read.labels(flow).inc(read)
        self.events_fired.labels(flow).inc(fired)
        self.notifications_created.labels(flow, channel).inc(inserted)

    def poll_failed(self, flow: str) -> None:
        self.poll_errors.labels(flow).inc()

    # -- dispatcher ------------------------------------------------------------------------------

    def sent(self, account: str, seconds: float) -> None:
        self.send_seconds.labels(account).observe(seconds)

    def attempt(self, account: str, result: AttemptResult) -> None:
        """One recorded attempt: its outcome, Twilio's error code, and whether it is retried."""
        self.attempts.labels(account, result.outcome.value).inc()
        if result.error_code is not None and result.outcome in _ANSWERED:
            self.twilio_errors.labels(str(result.error_code)).inc()
        if result.outcome is Outcome.TRANSIENT and result.next_attempt_at is not None:
            self.retries.labels(account).inc()

    def paced(self, sender: str, how: str, seconds: float = 0.0) -> None:
        self.pacing_delays.labels(sender, how).inc()
        if seconds > 0:
            self.pacing_wait_seconds.labels(sender).inc(seconds)

    # -- write-back ------------------------------------------------------------------------------

    def write_back(self, source: str, result: str) -> None:
        """result: done, skipped, retry or given_up (the last two are failures of the call)."""
        self.write_backs.labels(source, result).inc()
        if result in ("retry", "given_up"):
            self.write_back_failures.labels(source).inc()


class OutboxCollector(Collector):
    """Gauges read from the store at scrape time: queue depth and ages, the last day's counts.

    A store that cannot be read yields `mlc_store_up 0` and nothing else, never an error page.
    """

    def __init__(self, probe: StoreProbe, clock: Callable[[], datetime]) -> None:
        self._probe = probe
        self._clock = clock

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("mlc_store_up", "1 when the store answered this scrape's reads.")
        now = self._clock()
        try:
            stats = self._probe.outbox(now, RECENT)
        except Exception as exc:  # the scrape still answers; readiness reports the store's problem
            log.debug("metrics: the store could not be read: %s", type(exc).__name__)
            up.add_metric([], 0.0)
            yield up
            return
        up.add_metric([], 1.0)
        yield up
        depth = GaugeMetricFamily("mlc_queue_depth", "Notifications due now and not yet claimed (pending, deferred).")
        depth.add_metric([], float(stats.due))
        yield depth
        oldest = GaugeMetricFamily("mlc_oldest_due_seconds", "Age of the oldest notification due now (0: none).")
        oldest.add_metric([], _age(now, stats.oldest_due))
        yield oldest
        lag = GaugeMetricFamily(
            "mlc_callback_lag_seconds",
            "How long the oldest send accepted by Twilio has waited for its first status callback (0: none).")
        lag.add_metric([], _age(now, stats.oldest_awaiting_callback))
        yield lag
        by_status = GaugeMetricFamily("mlc_notifications", "Notifications created in the last 24 hours, by "
                                      "current status and channel.", labels=["status", "channel"])
        for (status, channel), count in sorted(stats.by_status_channel.items()):
            by_status.add_metric([status, channel], float(count))
        yield by_status
        errors = GaugeMetricFamily("mlc_delivery_errors", "Error codes in Twilio's status callbacks of the last "
                                   "24 hours (30003 unreachable, 30007 filtered, ...).", labels=["code"])
        for code, count in sorted(stats.delivery_errors.items()):
            errors.add_metric([str(code)], float(count))
        yield errors


def _age(now: datetime, then: datetime | None) -> float:
    return max(0.0, (now - then).total_seconds()) if then is not None else 0.0
