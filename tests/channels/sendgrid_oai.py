"""Extract the Mail Send request schema from SendGrid's OpenAPI document (for the conformance test).

The full sendgrid_mail_v3.json lives outside the repository; this writes the request body
schema of POST /v3/mail/send with the component schemas it references (descriptions and
examples dropped) to sendgrid_oai_subset.json next to this file, so the test runs from a fresh
clone. The test re-extracts and compares whenever the full document is present.

    python tests/channels/sendgrid_oai.py [path/to/sendgrid_mail_v3.json]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SUBSET = HERE / "sendgrid_oai_subset.json"
#: The first ancestor's shared/reference copy (the repository may sit deeper than its checkout).
FULL = next((base / "shared" / "reference" / "twilio-oai" / "sendgrid_mail_v3.json" for base in HERE.parents
             if (base / "shared" / "reference" / "twilio-oai" / "sendgrid_mail_v3.json").is_file()),
            HERE.parents[1].parent / "shared" / "reference" / "twilio-oai" / "sendgrid_mail_v3.json")
DROP = frozenset({"description", "examples", "example", "summary", "tags"})


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


def extract(full: dict[str, Any]) -> dict[str, Any]:
    op = full["paths"]["/v3/mail/send"]["post"]
    body_ref = op["requestBody"]["$ref"].rsplit("/", 1)[-1]
    body = full["components"]["requestBodies"][body_ref]["content"]["application/json"]["schema"]
    schemas: dict[str, Any] = {}
    todo = _refs(body)
    while todo:
        name = todo.pop()
        if name not in schemas:
            schemas[name] = full["components"]["schemas"][name]
            todo |= _refs(schemas[name])
    return _strip({
        "operationId": op["operationId"], "path": "/v3/mail/send", "method": "post",
        "requestBody": body, "components": {"schemas": dict(sorted(schemas.items()))},
    })


def main(argv: list[str]) -> None:
    source = Path(argv[1]) if len(argv) > 1 else FULL
    subset = extract(json.loads(source.read_text(encoding="utf-8")))
    SUBSET.write_text(json.dumps(subset, indent=1, sort_keys=True) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv)
