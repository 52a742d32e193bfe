"""Message create validation and list paging, as Twilio's Messages resource does them.

Validation is one ordered table of (failing condition, error code): the first condition that
holds answers the request. Twilio does not document its own check order; this order puts
missing parameters first, then formats, then ownership, then destination reachability.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from urllib.parse import urlencode

from ml_connector.sim import twilio_wire as wire
from ml_connector.sim.twilio_state import Account, MessageIndex, MessagingService, Outcome, SimMessage

Form = Mapping[str, Sequence[str]]


@dataclass(frozen=True)
class CreateRequest:
    """The create parameters the simulator acts on, read once from the form."""

    account: Account
    services: Mapping[str, MessagingService]
    to: str
    from_: str
    service_sid: str
    body: str
    media_urls: tuple[str, ...]
    content_sid: str
    status_callback: str | None
    validity: str | None

    @classmethod
    def read(cls, account: Account, services: Mapping[str, MessagingService], form: Form) -> CreateRequest:
        def first(name: str) -> str:
            values = form.get(name)
            return values[0] if values else ""

        return cls(
            account=account,
            services=services,
            to=first("To").strip(),
            from_=first("From").strip(),
            service_sid=first("MessagingServiceSid").strip(),
            body=first("Body"),
            media_urls=tuple(u for u in form.get("MediaUrl", ()) if u),
            content_sid=first("ContentSid"),
            status_callback=form["StatusCallback"][0] if form.get("StatusCallback") else None,
            validity=form["ValidityPeriod"][0] if form.get("ValidityPeriod") else None,
        )

    @property
    def service(self) -> MessagingService | None:
        found = self.services.get(self.service_sid)
        return found if found is not None and found.account_sid == self.account.sid else None


def _unknown_service(r: CreateRequest) -> bool:
    return bool(r.service_sid) and r.service is None


def _from_not_owned(r: CreateRequest) -> bool:
    owned = set(r.account.numbers)
    if r.service is not None:
        owned.update(r.service.pool)
    bare = wire.strip_channel(r.from_)
    return bool(bare) and bare not in owned and bare not in wire.MAGIC_FROM


_CHECKS: tuple[tuple[Callable[[CreateRequest], bool], int], ...] = (
    (lambda r: not r.to, 21604),
    (lambda r: not r.from_ and not r.service_sid, 21603),
    (lambda r: not r.body and not r.media_urls and not r.content_sid, 21602),
    (lambda r: not wire.is_valid_to(r.to) or r.to == r.from_, 21211),
    (lambda r: bool(r.from_) and not wire.is_valid_sender(r.from_), 21212),
    (lambda r: bool(r.service_sid) and not wire.SERVICE_SID.match(r.service_sid), 21705),
    (_unknown_service, 21701),
    (_from_not_owned, 21606),
    (lambda r: len(r.body) > wire.MAX_BODY_CHARS, 21617),
    (lambda r: len(r.media_urls) > wire.MAX_MEDIA, 21623),
    (lambda r: r.status_callback is not None and not wire.is_valid_callback_url(r.status_callback), 21609),
    (lambda r: r.validity is not None and wire.parse_validity(r.validity) is None, 21624),
)


def validate_create(request: CreateRequest, outcomes: Mapping[str, Outcome]) -> wire.ApiError | None:
    """The error Twilio would answer for this create, or None when it would accept it."""
    for failing, code in _CHECKS:
        if failing(request):
            return wire.api_error(code)
    magic_from = wire.MAGIC_FROM.get(wire.strip_channel(request.from_))
    if magic_from is not None:
        return wire.api_error(magic_from)
    outcome = outcomes.get(wire.strip_channel(request.to))
    if outcome is not None and outcome.status == "rejected" and outcome.error_code is not None:
        return wire.api_error(outcome.error_code)
    return None


@dataclass(frozen=True)
class ListQuery:
    """Filters and paging of GET Messages.json. DateSent< and DateSent> are inclusive (<=, >=)."""

    to: str | None = None
    from_: str | None = None
    sent_on: date | None = None
    sent_until: date | None = None
    sent_since: date | None = None
    page_size: int = wire.PAGE_SIZE_DEFAULT
    page: int = 0
    page_token: str | None = None
    raw_filters: tuple[tuple[str, str], ...] = ()

    def matches(self, message: SimMessage) -> bool:
        if self.to is not None and message.to != self.to:
            return False
        if self.from_ is not None and message.from_ != self.from_:
            return False
        if self.sent_on is None and self.sent_until is None and self.sent_since is None:
            return True
        sent = message.sent_on()
        return sent is not None and all(
            (
                self.sent_on is None or sent == self.sent_on,
                self.sent_until is None or sent <= self.sent_until,
                self.sent_since is None or sent >= self.sent_since,
            )
        )


_FILTER_ORDER = ("To", "From", "DateSent", "DateSent<", "DateSent>")
_DATE_FIELDS = {"DateSent": "sent_on", "DateSent<": "sent_until", "DateSent>": "sent_since"}


def parse_list_query(params: Mapping[str, str]) -> ListQuery | wire.ApiError:
    """Read list parameters; bad values answer 400 (Twilio's exact code for these is not documented)."""
    dates: dict[str, date] = {}
    for name, attr in _DATE_FIELDS.items():
        if name in params:
            parsed = wire.parse_date_filter(params[name])
            if parsed is None:
                return wire.api_error(20001, f"Invalid {name} value")
            dates[attr] = parsed
    size_raw, page_raw = params.get("PageSize", str(wire.PAGE_SIZE_DEFAULT)), params.get("Page", "0")
    if not size_raw.isdigit() or not 1 <= int(size_raw) <= wire.PAGE_SIZE_MAX:
        return wire.api_error(20001, f"PageSize must be between 1 and {wire.PAGE_SIZE_MAX}")
    if not page_raw.isdigit():
        return wire.api_error(20001, "Page must be a non-negative integer")
    return ListQuery(
        to=params.get("To"),
        from_=params.get("From"),
        page_size=int(size_raw),
        page=int(page_raw),
        page_token=params.get("PageToken"),
        raw_filters=tuple((k, params[k]) for k in _FILTER_ORDER if k in params),
        **dates,
    )


def _by_seq(message: SimMessage) -> int:
    return message.seq


def _select(index: MessageIndex, account_sid: str, query: ListQuery) -> tuple[list[SimMessage], bool] | None:
    """One page, newest first, and whether more exist beyond it; None for an unknown PageToken."""
    candidates = index.candidates(account_sid, query.to, query.from_)
    token = query.page_token
    anchor = index.by_sid.get(token[2:]) if token and token[:2] in ("PA", "PB") else None
    if token and anchor is None:
        return None
    if anchor is not None and token is not None and token.startswith("PB"):
        newer = (m for m in candidates[bisect.bisect_right(candidates, anchor.seq, key=_by_seq):]
                 if query.matches(m))
        page: list[SimMessage] = []
        for message in newer:
            page.append(message)
            if len(page) == query.page_size:
                break
        return list(reversed(page)), True
    top = bisect.bisect_left(candidates, anchor.seq, key=_by_seq) if anchor is not None else len(candidates)
    skip = 0 if anchor is not None else query.page * query.page_size
    selected: list[SimMessage] = []
    for position in range(top - 1, -1, -1):
        message = candidates[position]
        if not query.matches(message):
            continue
        if skip:
            skip -= 1
            continue
        if len(selected) == query.page_size:
            return selected, True
        selected.append(message)
    return selected, False


def list_page(index: MessageIndex, account_sid: str, query: ListQuery) -> dict[str, object] | wire.ApiError:
    """Twilio's list envelope for one page of messages."""
    chosen = _select(index, account_sid, query)
    if chosen is None:
        return wire.api_error(20001, "Invalid PageToken")
    messages, more = chosen
    path = f"/{wire.API_VERSION}/Accounts/{account_sid}/Messages.json"

    def uri(page: int, token: str | None) -> str:
        pairs = [*query.raw_filters, ("PageSize", str(query.page_size)), ("Page", str(page))]
        if token:
            pairs.append(("PageToken", token))
        return f"{path}?{urlencode(pairs)}"

    start = query.page * query.page_size
    return {
        "messages": [m.resource() for m in messages],
        "page": query.page,
        "page_size": query.page_size,
        "start": start,
        "end": start + max(len(messages) - 1, 0),
        "uri": uri(query.page, query.page_token),
        "first_page_uri": uri(0, None),
        "next_page_uri": uri(query.page + 1, "PA" + messages[-1].sid) if more and messages else None,
        "previous_page_uri": (
            uri(query.page - 1, "PB" + messages[0].sid) if query.page > 0 and messages else None
        ),
    }
