"""The Twilio simulator in a process of its own, on a loopback port, for the benchmarks.

Its own process keeps the simulator's CPU out of the connector's event loop (on a 2-core
machine they still compete for the cores). Prints `READY <base url>` once serving, and stops
when its stdin closes, so it cannot outlive the benchmark that started it.

    python bench/sim_server.py [--port 0] [--latency 0.15] [--callback-delay 0 0] [--callback-client raw|aiohttp|httpx]
                               [--callback-concurrency 256]
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from callback_transport import AiohttpCallbackTransport, RawCallbackTransport

from ml_connector.demo import DEMO_ACCOUNT_SID, DEMO_AUTH_TOKEN, DEMO_SENDER
from ml_connector.runtime.loop import run
from ml_connector.sim.twilio import Account, TwilioSim, serve
from ml_connector.sim.twilio_lifecycle import MAX_CALLBACKS_IN_FLIGHT
from ml_connector.web.server import freeze_long_lived_objects


async def main(args: argparse.Namespace) -> None:
    low, high = args.callback_delay
    lean = args.callback_client != "httpx"
    concurrency = args.callback_concurrency or (256 if lean else MAX_CALLBACKS_IN_FLIGHT)
    transports = {"raw": RawCallbackTransport, "aiohttp": AiohttpCallbackTransport}
    transport = transports[args.callback_client](max_connections=concurrency) if lean else None
    sim = TwilioSim(
        accounts=(Account(sid=DEMO_ACCOUNT_SID, auth_token=DEMO_AUTH_TOKEN, numbers=(DEMO_SENDER,)),),
        api_keys=(), services=(), latency=args.latency, callback_delay=(low, high), callback_transport=transport,
        callback_concurrency=concurrency,
    )
    async with serve(sim, "127.0.0.1", args.port) as url:
        freeze_long_lived_objects()  # as `ml-connector run` does: no full GC pass over the startup heap
        print(f"READY {url}", flush=True)
        await asyncio.to_thread(sys.stdin.read)  # EOF: the parent is done (or gone)
    await sim.aclose()
    if transport is not None:
        await transport.aclose()


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every REST answer")
    parser.add_argument("--callback-delay", type=float, nargs=2, default=(0.0, 0.0), metavar=("LOW", "HIGH"),
                        help="random pause before each status change and its callback")
    parser.add_argument("--callback-client", choices=("raw", "aiohttp", "httpx"), default="raw",
                        help="httpx is the simulator's own client; see callback_transport.py for why not by default")
    parser.add_argument("--callback-concurrency", type=int, default=0,
                        help="callbacks in flight at most (default: 256, or the simulator's own 64 with httpx; "
                             "Twilio itself has no such cap, and 64 throttled the end-to-end benchmark)")
    return parser.parse_args()


if __name__ == "__main__":
    run(main(parse()))
