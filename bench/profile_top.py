"""Summarise a py-spy raw (collapsed stacks) profile: per process, the top functions.

    py-spy record --subprocesses -r 100 -f raw -o /tmp/prof.txt -- python bench/e2e.py --rows 2000 --store sqlite
    python bench/profile_top.py /tmp/prof.txt [--top 15] [--match ml_connector]

"self" is where the samples were taken; "total" counts a function once per sample anywhere on
the stack (so callers include their callees). Threads are merged per process.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter, defaultdict
from pathlib import Path

_PROCESS = re.compile(r'^process \d+:"([^"]*)"$')


def summarise(path: Path) -> dict[str, tuple[int, Counter[str], Counter[str]]]:
    """process name -> (samples, self counts, total counts)."""
    samples: dict[str, int] = defaultdict(int)
    own: dict[str, Counter[str]] = defaultdict(Counter)
    total: dict[str, Counter[str]] = defaultdict(Counter)
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        processes = [m.group(1) for f in frames if (m := _PROCESS.match(f))]
        frames = [f for f in frames if not _PROCESS.match(f) and not f.startswith("thread ")]
        name = processes[-1].split("/")[-1][:60] if processes else "?"
        samples[name] += count
        if frames:
            own[name][frames[-1]] += count
        for frame in set(frames):
            total[name][frame] += count
    return {name: (samples[name], own[name], total[name]) for name in samples}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--match", default="", help="only list frames containing this text (total table)")
    args = parser.parse_args()
    for name, (count, own, total) in sorted(summarise(args.profile).items(), key=lambda kv: -kv[1][0]):
        print(f"\n== {name}: {count} samples")
        print("  self:")
        for frame, n in own.most_common(args.top):
            print(f"    {n / count:6.1%}  {frame}")
        print("  total" + (f" (frames containing {args.match!r})" if args.match else "") + ":")
        shown = [(f, n) for f, n in total.most_common() if args.match in f][: args.top]
        for frame, n in shown:
            print(f"    {n / count:6.1%}  {frame}")


if __name__ == "__main__":
    main()
