"""Extract the Twilio API operations ml-connector uses from Twilio's OpenAPI document.

The full twilio_api_v2010.json is 1.9 MB and lives outside the repository; this writes the few
operations the client builds (with the schemas they reference, descriptions and examples
dropped) to twilio_oai_subset.json next to this file, so the conformance test runs from a fresh
clone. The test re-extracts and compares whenever the full document is present.

    python tests/channels/make_oai_subset.py [path/to/twilio_api_v2010.json]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SUBSET = HERE / "twilio_oai_subset.json"
FULL = HERE.parents[1].parent / "shared" / "reference" / "twilio-oai" / "twilio_api_v2010.json"

#: (path, method) of every operation the client uses.
OPERATIONS: tuple[tuple[str, str], ...] = (
    ("/2010-04-01/Accounts/{AccountSid}/Messages.json", "post"),
    ("/2010-04-01/Accounts/{AccountSid}/Messages.json", "get"),
    ("/2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json", "get"),
    ("/2010-04-01/Accounts/{Sid}.json", "get"),
    ("/2010-04-01/Accounts/{AccountSid}/Calls.json", "post"),
    ("/2010-04-01/Accounts/{AccountSid}/Calls.json", "get"),
    ("/2010-04-01/Accounts/{AccountSid}/Calls/{Sid}.json", "get"),
)

#: Documentation-only keys, dropped everywhere (no property or parameter is named like these).
DROP = frozenset({"description", "examples", "example", "summary", "tags", "servers", "pii"})

#: Only success responses are described by Twilio's spec; keep their JSON schema.
SUCCESS = ("200", "201")


def _strip(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _strip(v) for k, v in node.items() if k not in DROP}
    if isinstance(node, list):
        return [_strip(v) for v in node]
    return node


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"].rsplit("/", 1)[-1]} if isinstance(node.get("$ref"), str) else set()
        for value in node.values():
            found |= _refs(value)
        return found
    if isinstance(node, list):
        return set().union(*(_refs(v) for v in node)) if node else set()
    return set()


def _operation(op: dict[str, Any]) -> dict[str, Any]:
    kept: dict[str, Any] = {
        k: op[k] for k in ("operationId", "parameters", "requestBody", "x-twilio") if k in op
    }
    kept["responses"] = {code: op["responses"][code] for code in SUCCESS if code in op.get("responses", {})}
    return _strip(kept)  # type: ignore[no-any-return]


def extract(spec: dict[str, Any]) -> dict[str, Any]:
    """The subset: our operations plus every component schema they reach."""
    paths: dict[str, dict[str, Any]] = {}
    for path, method in OPERATIONS:
        paths.setdefault(path, {})[method] = _operation(spec["paths"][path][method])
    schemas = spec["components"]["schemas"]
    wanted: set[str] = set()
    todo = _refs(paths)
    while todo:
        name = todo.pop()
        if name not in wanted:
            wanted.add(name)
            todo |= _refs(schemas[name])
    return {
        "openapi": spec["openapi"],
        "info": {"title": spec["info"]["title"], "version": spec["info"]["version"]},
        "x-extracted-from": "twilio-oai tag 2.6.7, spec/json/twilio_api_v2010.json (MIT License)",
        "paths": paths,
        "components": {"schemas": {name: _strip(schemas[name]) for name in sorted(wanted)}},
    }


def render(subset: dict[str, Any]) -> str:
    return json.dumps(subset, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    source = Path(argv[1]) if len(argv) > 1 else FULL
    if not source.is_file():
        print(f"full spec not found: {source}", file=sys.stderr)
        return 1
    SUBSET.write_text(render(extract(json.loads(source.read_text(encoding="utf-8")))), encoding="utf-8")
    print(f"wrote {SUBSET} ({SUBSET.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
