"""The loop users write by hand: twilio-python, one `messages.create` after another.

    python bench/baseline.py --rows 2000 [--latency 0.15]

No store, no callbacks, no retries: this is the floor the connector is compared with. Its
messages carry no StatusCallback, so the simulator does only the create for it.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Sequence
from pathlib import Path

from common import ACCOUNT_SID, AUTH_TOKEN, SENDER, Stopwatch, machine, make_queue_erp, queue_rows, sim_process
from twilio.rest import Client  # type: ignore[import-untyped]


def run_baseline(twilio_url: str, rows: Sequence[tuple[str, str]]) -> float:
    """Send each (to, body) sequentially; returns the seconds it took."""
    client = Client(ACCOUNT_SID, AUTH_TOKEN)
    client.api.base_url = twilio_url
    clock = Stopwatch()
    for to, text in rows:
        client.messages.create(to=to, from_=SENDER, body=text)
    return clock()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--latency", type=float, default=0.0)
    args = parser.parse_args()
    print(machine())
    with tempfile.TemporaryDirectory(prefix="mlc-bench-") as tmp, sim_process(args.latency) as url:
        make_queue_erp(Path(tmp) / "erp.db", args.rows)
        seconds = run_baseline(url, queue_rows(Path(tmp) / "erp.db", args.rows))
    print(f"twilio-python sequential, latency {args.latency * 1000:.0f} ms: {args.rows} messages in "
          f"{seconds:.2f} s = {args.rows / seconds:,.1f}/s")


if __name__ == "__main__":
    main()
