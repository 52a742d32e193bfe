"""core.threads: a reply is matched to the notification it answers, or kept unmatched with a reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from ml_connector.core.threads import Inbound, Matched, Sent, Unmatched, match_reply, open_for

T0 = datetime(2026, 12, 7, 15, 0, tzinfo=UTC)
ANA, BEN = "hash-ana", "hash-ben"
ALERTS, OTHER = "+15005550006", "+15005550007"
SERVICE = "MG" + "a" * 32
DAY = timedelta(days=1)


def sent(nid: int, *, to: str = ANA, sender: str = ALERTS, minutes: int = 0, ref: str | None = None,
         window: timedelta = DAY) -> Sent:
    return Sent(nid, to, sender, T0 + timedelta(minutes=minutes), window, ref)


def reply(body: str, *, by: str = ANA, to: str = ALERTS, service: str | None = None, minutes: int = 60) -> Inbound:
    return Inbound(by, to, service, body, T0 + timedelta(minutes=minutes))


def test_the_most_recent_open_notification_is_answered() -> None:
    assert match_reply(reply("ok"), [sent(1), sent(2, minutes=5)]) == Matched(2, "most recent")


def test_a_reference_picks_its_notification_among_several_open() -> None:
    open_ = [sent(1, ref="4711"), sent(2, minutes=5, ref="4712")]
    assert match_reply(reply("YES 4711"), open_) == Matched(1, "reference")
    assert match_reply(reply("no, 4712!"), open_) == Matched(2, "reference")


def test_without_a_reference_several_referenced_notifications_are_ambiguous() -> None:
    result = match_reply(reply("YES"), [sent(1, ref="4711"), sent(2, minutes=5, ref="4712")])
    assert isinstance(result, Unmatched)
    assert "4711" in result.reason and "4712" in result.reason


def test_one_referenced_notification_needs_no_reference() -> None:
    assert match_reply(reply("YES"), [sent(1, ref="4711")]) == Matched(1, "most recent")


def test_other_people_other_senders_and_closed_windows_do_not_match() -> None:
    assert isinstance(match_reply(reply("ok", by=BEN), [sent(1)]), Unmatched)
    assert isinstance(match_reply(reply("ok", to=OTHER), [sent(1)]), Unmatched)
    late = reply("ok", minutes=24 * 60 + 1)
    result = match_reply(late, [sent(1)])
    assert isinstance(result, Unmatched) and "reply window" in result.reason
    before = reply("ok", minutes=-1)
    assert isinstance(match_reply(before, [sent(1)]), Unmatched)


def test_a_notification_through_a_messaging_service_matches_a_reply_to_any_of_its_numbers() -> None:
    assert match_reply(reply("ok", to=OTHER, service=SERVICE), [sent(1, sender=SERVICE)]) == Matched(1, "most recent")


def test_two_sent_at_the_same_moment_are_not_guessed() -> None:
    result = match_reply(reply("ok"), [sent(1), sent(2)])
    assert isinstance(result, Unmatched) and "same moment" in result.reason


def test_a_reference_shared_by_two_open_notifications_is_ambiguous() -> None:
    result = match_reply(reply("YES 4711"), [sent(1, ref="4711"), sent(2, minutes=1, ref="4711")])
    assert isinstance(result, Unmatched) and "several" in result.reason


def test_a_reference_is_a_whole_word() -> None:
    assert match_reply(reply("YES 47110"), [sent(1, ref="4711"), sent(2, minutes=1)]) == Matched(2, "most recent")


@given(st.lists(st.tuples(st.integers(0, 3000), st.sampled_from([ANA, BEN]), st.sampled_from([ALERTS, OTHER])),
                max_size=12, unique_by=lambda t: t[0]),
       st.integers(0, 4000))
def test_a_match_is_always_an_open_notification_and_never_a_guess(rows: list[tuple[int, str, str]],
                                                                   at: int) -> None:
    notes = [sent(i, to=who, sender=sender, minutes=m) for i, (m, who, sender) in enumerate(rows)]
    inbound = reply("ok", minutes=at)
    result = match_reply(inbound, notes)
    candidates = open_for(inbound, notes)
    if isinstance(result, Matched):
        (chosen,) = [n for n in notes if n.notification_id == result.notification_id]
        assert chosen in candidates
        assert chosen.sent_at == max(c.sent_at for c in candidates)
    else:
        assert not candidates or sum(c.sent_at == candidates[0].sent_at for c in candidates) > 1
