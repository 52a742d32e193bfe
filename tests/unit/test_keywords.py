"""core.keywords: opt-out, opt-in and help keywords as Twilio matches them, and replies."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ml_connector.core.keywords import (
    HELP_WORDS,
    OPT_IN_WORDS,
    OPT_OUT_WORDS,
    Intent,
    Keywords,
    classify,
    from_twilio_opt_out_type,
    wants_reply,
    words,
)

PUNCTUATION = st.text(alphabet=".,!?;:'\"()-¡¿…*#", max_size=4)
SPACE = st.text(alphabet=" \t\n\u00a0", max_size=3)


def any_case(word: str) -> st.SearchStrategy[str]:
    return st.tuples(*(st.sampled_from([c.lower(), c.upper()]) for c in word)).map("".join)


@given(st.sampled_from(sorted(OPT_OUT_WORDS)).flatmap(any_case), PUNCTUATION, PUNCTUATION, SPACE, SPACE)
def test_an_opt_out_word_in_any_case_and_punctuation_opts_out(word: str, before: str, after: str,
                                                              lead: str, trail: str) -> None:
    assert classify(f"{lead}{before}{word}{after}{trail}") == Intent.OPT_OUT


@given(st.sampled_from(sorted(OPT_OUT_WORDS)).flatmap(any_case),
       st.lists(st.text(alphabet="abcdefghij XYZ0123", min_size=1, max_size=8), min_size=1, max_size=4))
def test_an_opt_out_word_first_opts_out_whatever_follows(word: str, rest: list[str]) -> None:
    assert classify(" ".join([word, *rest])) == Intent.OPT_OUT


@given(st.sampled_from(sorted(OPT_IN_WORDS)).flatmap(any_case), PUNCTUATION, PUNCTUATION)
def test_an_opt_in_word_alone_opts_in(word: str, before: str, after: str) -> None:
    assert classify(f"{before}{word}{after}") == Intent.OPT_IN


@given(st.sampled_from(sorted(HELP_WORDS)).flatmap(any_case), PUNCTUATION)
def test_a_help_word_alone_asks_for_help(word: str, after: str) -> None:
    assert classify(f"{word}{after}") == Intent.HELP


@pytest.mark.parametrize(("body", "intent"), [
    ("Stop.", Intent.OPT_OUT),
    ("stop please", Intent.OPT_OUT),
    ("STOPALL", Intent.OPT_OUT),
    ("Ｓｔｏｐ", Intent.OPT_OUT),  # full-width letters
    ("YES 4711", Intent.REPLY),  # a reply that carries a reference, not an opt-in
    ("yes!", Intent.OPT_IN),
    ("Help me find PO 4711", Intent.REPLY),
    ("please stop", Intent.REPLY),  # Twilio reads the keyword first, as do we
    ("stopped by the office", Intent.REPLY),  # a word that starts like a keyword is not one
    ("", Intent.REPLY),
    ("...", Intent.REPLY),
    ("NO", Intent.REPLY),
    ("ACK", Intent.REPLY),
])
def test_examples(body: str, intent: Intent) -> None:
    assert classify(body) == intent


def test_a_bare_yes_is_offered_to_reply_matching_too() -> None:
    assert wants_reply(classify("YES"))
    assert wants_reply(classify("approve 4711"))
    assert not wants_reply(classify("STOP"))
    assert not wants_reply(classify("HELP"))


def test_custom_keywords_replace_the_defaults() -> None:
    french = Keywords.of(opt_out=["arret", "ARRÊT"], opt_in=["commencer"], help=["aide"])
    assert classify("Arrêt!", french) == Intent.OPT_OUT
    assert classify("STOP", french) == Intent.REPLY
    assert classify("aide", french) == Intent.HELP


def test_a_keyword_with_two_meanings_is_refused() -> None:
    with pytest.raises(ValueError, match="YES"):
        Keywords.of(opt_out=["STOP", "YES"])


def test_words_drop_punctuation_and_symbols() -> None:
    assert words("  Yes, #4711 — approved! ") == ["YES", "4711", "APPROVED"]


@pytest.mark.parametrize(("value", "intent"), [("STOP", Intent.OPT_OUT), ("start", Intent.OPT_IN),
                                                ("HELP", Intent.HELP), (None, None), ("", None),
                                                ("OTHER", None)])
def test_advanced_opt_out_type(value: str | None, intent: Intent | None) -> None:
    assert from_twilio_opt_out_type(value) == intent
