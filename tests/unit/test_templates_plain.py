"""core.templates: text-and-names templates take a shortcut that must render exactly as Jinja does."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ml_connector.core.templates import compile_template
from ml_connector.errors import TemplateError

NAMES = ("message", "PO_NUMBER", "amount", "record", "flow")
VALUES = st.one_of(
    st.none(), st.text(max_size=20), st.integers(), st.floats(allow_nan=True), st.booleans(),
    st.sampled_from([Decimal("1200.50"), datetime(2024, 5, 1, 12, tzinfo=UTC), date(2024, 5, 1),
                     {"entity": "po", "key": "1"}, [1, "a"], b"\x00"]),
)
TEXT = st.text(alphabet=st.characters(blacklist_characters="{}%#"), max_size=12)


@st.composite
def plain_sources(draw: st.DrawFn) -> str:
    pieces = draw(st.lists(st.one_of(TEXT, st.sampled_from(NAMES).map(lambda n: "{{ " + n + " }}")), max_size=5))
    return "".join(pieces) + draw(st.sampled_from(["", "\n", "\n\n", " "]))


@settings(max_examples=600, deadline=None)
@given(source=plain_sources(), values=st.dictionaries(st.sampled_from(NAMES), VALUES))
def test_shortcut_renders_what_jinja_renders(source: str, values: dict[str, Any]) -> None:
    compiled = compile_template("t", source)
    assert compiled.pieces is not None
    try:
        expected: str | None = compiled.template.render(dict(values))
    except Exception:  # noqa: BLE001 - an undefined name
        expected = None
    if expected is None:
        with pytest.raises(TemplateError):
            compiled.render(values)
    else:
        assert compiled.render(values) == expected


@pytest.mark.parametrize("source", ["{{ a|upper }}", "{{ a.b }}", "{% if a %}x{% endif %}", "{{ 'lit' }}",
                                    "{{ a ~ b }}", "{{ a[0] }}"])
def test_anything_beyond_text_and_names_goes_through_jinja(source: str) -> None:
    assert compile_template("t", source).pieces is None


def test_undefined_name_still_reports_the_template_error() -> None:
    compiled = compile_template("po_approved", "PO {{ PO_NUMBER }} approved")
    assert compiled.pieces == ((False, "PO "), (True, "PO_NUMBER"), (False, " approved"))
    with pytest.raises(TemplateError, match="PO_NUMBER"):
        compiled.render({})
    assert compiled.render({"PO_NUMBER": None}) == "PO  approved"
