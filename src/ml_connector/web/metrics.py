"""Prometheus metrics of the webhook app, kept in a registry of their own.

Each app gets its own `CollectorRegistry` (or the one it is handed), so several apps in one
process, and tests, never collide on prometheus_client's global registry.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response

__all__ = ["WebhookMetrics"]

# Handling takes milliseconds; the store's transaction dominates.
_SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class WebhookMetrics:
    """Callbacks counted by result, and how long handling took."""

    def __init__(self, results: Iterable[str], registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.callbacks = Counter(
            "mlc_status_callbacks",
            "Twilio status callbacks received, by how they were handled.",
            ["result"],
            registry=self.registry,
        )
        self.handling_seconds = Histogram(
            "mlc_status_callback_handling_seconds",
            "Time from receiving a status callback to answering it.",
            buckets=_SECONDS_BUCKETS,
            registry=self.registry,
        )
        # Every series exists from the start, at zero; its child is looked up once, not per callback.
        self._by_result = {result: self.callbacks.labels(result=result) for result in results}

    def observe(self, result: str, seconds: float) -> None:
        self._by_result[result].inc()
        self.handling_seconds.observe(seconds)

    async def endpoint(self, request: Request) -> Response:
        """GET /metrics in the Prometheus text format."""
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)
