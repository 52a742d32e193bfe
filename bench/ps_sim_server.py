"""The PeopleSoft simulator in a process of its own, on a loopback port, for bench/payrun.py.

Prints `READY <base url>` once serving and stops when its stdin closes.

    python bench/ps_sim_server.py --employees 10000
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from ml_connector.runtime.loop import run
from ml_connector.sim.peoplesoft import PsSim
from ml_connector.web.server import serving


async def main(args: argparse.Namespace) -> None:
    sim = PsSim(employees=args.employees)
    async with serving(sim.create_app(), "127.0.0.1", 0) as url:
        sim.post_payrun("BW1")  # the seeded open pay run of pay group BW1 posts now
        print(f"READY {url}", flush=True)
        await asyncio.to_thread(sys.stdin.read)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--employees", type=int, default=10_000)
    run(main(parser.parse_args()))
