"""Fault plans for the Twilio simulator: which request fails, and how. Deterministic when seeded.

A plan is an ordered list of rules. Each rule names an operation ("*" for all), at most one
selector (probability, every_nth, or count = "the next N requests"; none means every request)
and an action. For one request: latencies of all matching rules add up; the first matching
rule with a request-ending action (429, 5xx, timeout, drop_after_accept) wins; callback
modifiers of all matching rules apply to the message the request creates.

How the request-ending actions show up at the client:

| action            | in-process (httpx.ASGITransport)   | real HTTP (`serve`, uvicorn)            |
| ----------------- | ---------------------------------- | --------------------------------------- |
| 429               | 429, code 20429, Retry-After if set | same                                   |
| 5xx               | 500/503 Twilio JSON, 502 HTML page | same                                    |
| timeout           | held `seconds`, then as a drop (1) | held; the client's read timeout fires   |
| drop_after_accept | message created, then raises       | message created, socket aborted: httpx  |
|                   | `SimulatedDisconnect`, an          | RemoteProtocolError, aiohttp            |
|                   | httpx.RemoteProtocolError          | ServerDisconnectedError                 |

(1) ASGITransport enforces no client timeout: bound such calls with asyncio.wait_for.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, get_args

FaultAction = Literal[
    "429", "5xx", "latency", "timeout", "drop_after_accept", "callbacks_out_of_order", "callbacks_duplicated"
]
Operation = Literal["*", "create_message", "fetch_message", "list_messages", "fetch_account", "create_call",
                    "fetch_call", "list_calls"]

ACTIONS: frozenset[str] = frozenset(get_args(FaultAction))
OPERATIONS: frozenset[str] = frozenset(get_args(Operation))
ENDING_ACTIONS = frozenset({"429", "5xx", "timeout", "drop_after_accept"})
FIVE_XX = frozenset({500, 502, 503})
DEFAULT_HANG_SECONDS = 30.0


@dataclass(frozen=True)
class FaultRule:
    """One rule of a fault plan; see the module docstring for the matching semantics."""

    action: FaultAction
    operation: Operation = "*"
    probability: float | None = None
    every_nth: int | None = None
    count: int | None = None
    status: int = 500
    retry_after: int | None = None
    seconds: float = 0.0

    def __post_init__(self) -> None:
        problems = [
            (self.action not in ACTIONS, f"unknown action {self.action!r}"),
            (self.operation not in OPERATIONS, f"unknown operation {self.operation!r}"),
            (sum(s is not None for s in (self.probability, self.every_nth, self.count)) > 1,
             "use at most one of probability, every_nth, count"),
            (self.probability is not None and not 0.0 <= self.probability <= 1.0,
             "probability must be in 0..1"),
            (self.every_nth is not None and self.every_nth < 1, "every_nth must be >= 1"),
            (self.count is not None and self.count < 0, "count must be >= 0"),
            (self.action == "5xx" and self.status not in FIVE_XX, "5xx status must be 500, 502 or 503"),
            (self.seconds < 0, "seconds must be >= 0"),
        ]
        for failed, message in problems:
            if failed:
                raise ValueError(f"fault rule: {message}")

    @property
    def hang_seconds(self) -> float:
        return self.seconds or DEFAULT_HANG_SECONDS

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> FaultRule:
        """Build a rule from JSON, refusing unknown keys and wrongly typed values."""
        for key, value in data.items():
            expected = _JSON_TYPES.get(key)
            if expected is None:
                raise ValueError(f"fault rule: unknown key {key!r}")
            if value is not None and (isinstance(value, bool) or not isinstance(value, expected)):
                raise ValueError(f"fault rule: {key} has the wrong type")
        return cls(**data)  # type: ignore[arg-type]


_JSON_TYPES: dict[str, type | tuple[type, ...]] = {
    "action": str,
    "operation": str,
    "probability": (int, float),
    "every_nth": int,
    "count": int,
    "status": int,
    "retry_after": int,
    "seconds": (int, float),
}


@dataclass(frozen=True)
class FaultDecision:
    """What the plan decided for one request."""

    latency: float = 0.0
    ending: FaultRule | None = None
    callbacks_out_of_order: bool = False
    callbacks_duplicated: bool = False


NO_FAULT = FaultDecision()


@dataclass
class FaultPlan:
    """Rules plus the state that makes them deterministic: per-rule counters and a seeded RNG."""

    rules: tuple[FaultRule, ...] = ()
    seed: int = 0
    _seen: list[int] = field(default_factory=list)
    _rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        self._seen = [0] * len(self.rules)
        self._rng = random.Random(self.seed)

    @classmethod
    def of(cls, rules: Iterable[FaultRule], seed: int = 0) -> FaultPlan:
        return cls(rules=tuple(rules), seed=seed)

    def decide(self, operation: str) -> FaultDecision:
        if not self.rules:
            return NO_FAULT
        fired = [rule for index, rule in enumerate(self.rules) if self._fires(index, rule, operation)]
        if not fired:
            return NO_FAULT
        return FaultDecision(
            latency=sum(r.seconds for r in fired if r.action == "latency"),
            ending=next((r for r in fired if r.action in ENDING_ACTIONS), None),
            callbacks_out_of_order=any(r.action == "callbacks_out_of_order" for r in fired),
            callbacks_duplicated=any(r.action == "callbacks_duplicated" for r in fired),
        )

    def _fires(self, index: int, rule: FaultRule, operation: str) -> bool:
        if rule.operation not in ("*", operation):
            return False
        self._seen[index] += 1
        seen = self._seen[index]
        if rule.count is not None:
            return seen <= rule.count
        if rule.every_nth is not None:
            return seen % rule.every_nth == 0
        if rule.probability is not None:
            return self._rng.random() < rule.probability
        return True


def plan_from_json(data: Mapping[str, object]) -> FaultPlan:
    """Build a plan from the control API's JSON: {"seed": 1, "rules": [{...}, ...]}."""
    raw_rules = data.get("rules", [])
    seed = data.get("seed", 0)
    if not isinstance(raw_rules, Sequence) or not isinstance(seed, int):
        raise ValueError("faults: expected {'seed': int, 'rules': [ {...}, ... ]}")
    rules = []
    for raw in raw_rules:
        if not isinstance(raw, Mapping):
            raise ValueError("faults: each rule must be an object")
        rules.append(FaultRule.from_json(raw))
    return FaultPlan.of(rules, seed=seed)
