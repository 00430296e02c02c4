"""The api refuses what it cannot authenticate, over real HTTP, and changes nothing: Slack
requests whose signature is bad, missing, expired, from the future, replayed or of another
version; HTTP actions without the exact bearer token. Every table is compared whole before
and after; a correct request (the control) does change them. And the api's responses carry
the security headers."""

from __future__ import annotations

import base64
import time
from urllib.parse import urlsplit

import pytest

from alerts.actions import Action
from tests.fakes.slack import FakeSlack
from tests.security.conftest import (
    ApiServer,
    Paged,
    Secrets,
    block_action,
    dump,
    slack_signed,
)

INTERACTIONS = "/slack/interactions"


def refused(api: ApiServer, paged: Paged, fake: FakeSlack, path: str, body: bytes,
            headers: dict[str, str]) -> None:
    """``path`` answers 401 and nothing changed: no table, no call to Slack."""
    before, calls = dump(paged.db), len(fake.calls)
    resp = api.request("POST", path, body, headers)
    assert resp.status == 401, resp.body
    assert dump(paged.db) == before
    assert len(fake.calls) == calls


def bad_signatures(secret: str, body: bytes, now: int) -> dict[str, dict[str, str]]:
    good = slack_signed(secret, body, now)
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    return {
        "bad": slack_signed("0" * 32, body, now),
        "missing": form,
        "no timestamp": {k: v for k, v in good.items() if k != "X-Slack-Request-Timestamp"},
        "timestamp not a number": slack_signed(secret, body, f"{now}a"),
        "expired": slack_signed(secret, body, now - 301),
        "future": slack_signed(secret, body, now + 301),
        "version v1": {**good, "X-Slack-Signature": "v1=" + good["X-Slack-Signature"][3:]},
        "no version": {**good, "X-Slack-Signature": good["X-Slack-Signature"][3:]},
        "empty": {**good, "X-Slack-Signature": ""},
        "v0= only": {**good, "X-Slack-Signature": "v0="},
        "another body": slack_signed(secret, body.replace(b"acknowledge", b"resolve"), now),
        "secret as signature": {**good, "X-Slack-Signature": f"v0={secret}"},
    }


CASES = list(bad_signatures("s", b"acknowledge", 0))


@pytest.mark.parametrize("case", CASES)
def test_a_slack_request_without_a_valid_signature_is_refused_and_changes_nothing(
    api: ApiServer, paged: Paged, made_up: Secrets, fake_slack: tuple[FakeSlack, str],
    case: str,
) -> None:
    body = block_action(paged.alert_id, "acknowledge", paged.channel, paged.ts)
    headers = bad_signatures(made_up.signing_secret, body, int(time.time()))[case]
    refused(api, paged, fake_slack[0], INTERACTIONS, body, headers)


def test_a_replayed_slack_request_is_refused_and_changes_nothing(
    api: ApiServer, paged: Paged, made_up: Secrets, fake_slack: tuple[FakeSlack, str],
) -> None:
    fake = fake_slack[0]
    body = block_action(paged.alert_id, "not_actionable", paged.channel, paged.ts,
                        user="U0REPLAY")
    headers = slack_signed(made_up.signing_secret, body, int(time.time()))
    before = dump(paged.db)
    first = api.request("POST", INTERACTIONS, body, headers)
    assert first.status == 200, first.body
    after = dump(paged.db)
    assert after != before  # the control: a signed press is applied
    (new,) = [r for r in after["acknowledgements"] if r not in before["acknowledgements"]]
    assert new[2:4] == ("not_actionable", "U0REPLAY")
    assert fake.calls[-1][0] == "chat.update"
    refused(api, paged, fake, INTERACTIONS, body, headers)


BEARER_CASES = ["none", "wrong", "prefix", "longer", "other case", "basic", "basic user",
                "no scheme", "token scheme", "empty bearer", "two tokens", "in the query"]


def bad_authorizations(token: str) -> dict[str, dict[str, str]]:
    assert token.upper() != token
    return {
        "none": {},
        "wrong": {"Authorization": f"Bearer {'0' * len(token)}"},
        "prefix": {"Authorization": f"Bearer {token[:-1]}"},
        "longer": {"Authorization": f"Bearer {token}0"},
        "other case": {"Authorization": f"Bearer {token.upper()}"},
        "basic": {"Authorization": "Basic " + base64.b64encode(token.encode()).decode()},
        "basic user": {"Authorization": "Basic "
                       + base64.b64encode(f"api:{token}".encode()).decode()},
        "no scheme": {"Authorization": token},
        "token scheme": {"Authorization": f"Token {token}"},
        "empty bearer": {"Authorization": "Bearer "},
        "two tokens": {"Authorization": f"Bearer {'0' * len(token)}, Bearer {token}"},
        "in the query": {},  # the token as ?access_token=, not a header
    }


@pytest.mark.parametrize("case", BEARER_CASES)
def test_an_http_action_without_the_exact_bearer_token_is_refused_and_changes_nothing(
    api: ApiServer, paged: Paged, made_up: Secrets, fake_slack: tuple[FakeSlack, str],
    case: str,
) -> None:
    headers = {"Content-Type": "application/json",
               **bad_authorizations(made_up.api_token)[case]}
    query = f"?access_token={made_up.api_token}&token={made_up.api_token}" * (
        case == "in the query")
    for action in Action:
        refused(api, paged, fake_slack[0], f"/api/alerts/{paged.alert_id}/{action.command}"
                + query, b'{"by": "mallory"}', headers)


def test_the_exact_bearer_token_acts(
    api: ApiServer, paged: Paged, made_up: Secrets,
) -> None:
    """The control of the refusals above: the same request with the token is applied."""
    before = dump(paged.db)
    resp = api.request("POST", f"/api/alerts/{paged.alert_id}/ack", b'{"by": "alice"}',
                       {"Authorization": f"Bearer {made_up.api_token}",
                        "Content-Type": "application/json"})
    assert resp.status == 200, resp.body
    assert resp.json()["acknowledged_by"] == "alice"
    assert dump(paged.db) != before


# -- security headers -----------------------------------------------------------------------

REFERRER_POLICIES = {"no-referrer", "same-origin", "strict-origin",
                     "strict-origin-when-cross-origin"}


def test_responses_carry_security_headers_and_no_server_version(api: ApiServer) -> None:
    answers = {"health": api.request("GET", "/healthz"),
               "not found": api.request("GET", "/no/such/page"),
               "refused": api.request("POST", "/api/alerts/x/ack", b"{}"),
               "page": api.request("GET", "/")}
    if answers["page"].status in (301, 302, 303, 307, 308):  # to a login page: that one
        answers["page"] = api.request("GET", urlsplit(answers["page"].headers["location"])
                                      ._replace(scheme="", netloc="").geturl())
    for name, resp in answers.items():
        h = resp.headers
        assert h.get("x-content-type-options") == "nosniff", name
        assert (h.get("x-frame-options", "").upper() in {"DENY", "SAMEORIGIN"}
                or "frame-ancestors" in h.get("content-security-policy", "")), name
        assert h.get("referrer-policy") in REFERRER_POLICIES, name
        assert not any(c.isdigit() for c in h.get("server", "")), (name, h.get("server"))
    page = answers["page"]
    assert page.status == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "default-src" in csp and "frame-ancestors" in csp
    assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp
