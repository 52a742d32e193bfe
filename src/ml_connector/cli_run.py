"""What `ml-connector run` says when it starts: its roles, flows and schedules, webhooks, store."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ml_connector.cli_flows import duration
from ml_connector.core.redact import mask_url


def startup_summary(app: Any, roles: Sequence[str]) -> list[str]:
    """A few lines for the log of a starting process; no secrets (the store URL is masked)."""
    config = app.config
    lines = [f"ml-connector running ({', '.join(roles)}) as {app.worker}; Ctrl-C or SIGTERM stops"]
    lines.append(f"  store: {mask_url(config.store.url)}")
    if "poller" in roles:
        paused = app.store.paused_flows()
        for name, flow in app.flows.items():
            schedule = flow.spec.schedule
            lookback = (f", lookback {duration(schedule.lookback.window)} every {duration(schedule.lookback.every)}"
                        if schedule.lookback else "")
            state = " (paused: `ml-connector flows resume` to poll it)" if name in paused else ""
            lines.append(f"  flow {name}: {flow.spec.source} {flow.spec.entity} every "
                         f"{duration(schedule.every)}{lookback}{state}")
        disabled = [name for name, spec in config.flows.items() if not spec.enabled]
        if disabled:
            lines.append(f"  disabled flows: {', '.join(disabled)}")
    if "web" in roles:
        callback = config.webhooks.status_callback_url or "(no webhooks.public_url: Twilio sends no callbacks)"
        lines.append(f"  webhooks: listening on {config.webhooks.host}:{app.webhook_port} "
                     f"({app.webhook_port_setting}); Twilio calls {callback}")
    if "dispatcher" in roles:
        accounts = ", ".join(f"{name} ({len(a.senders)} sender(s))" for name, a in config.twilio.accounts.items())
        lines.append(f"  sending through Twilio account(s) {accounts}")
    return lines
