"""The rules of webhook signatures (duro.server.WebhookAuth, verify) and of what a signal
route's request carries (its fields, payload and delivery id)."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import pytest

from duro.errors import InvalidArgumentError
from duro.server import InvalidSignatureError, WebhookAuth, verify
from duro.server._webhooks import check_webhooks, delivery

BODY = b'{"action": "opened", "number": 42}'
SECRET = b"it's a secret to everybody"


def sign(body: bytes, secret: bytes = SECRET, stamp: int | None = None) -> str:
    signed = body if stamp is None else f"{stamp}.".encode() + body
    return "sha256=" + hmac.new(secret, signed, hashlib.sha256).hexdigest()


AUTH = WebhookAuth(secrets=(SECRET,), header="X-Hub-Signature-256")
STAMPED = WebhookAuth(secrets=(SECRET,), timestamp_header="X-Timestamp", tolerance=300)


def test_a_matching_signature_passes() -> None:
    verify(AUTH, BODY, {"X-Hub-Signature-256": sign(BODY)})
    bare = WebhookAuth(secrets=(SECRET,), prefix="")
    verify(bare, BODY, {"X-Signature": sign(BODY).removeprefix("sha256=")})


@pytest.mark.parametrize("headers", [
    {},  # no signature at all
    {"X-Hub-Signature-256": ""},
    {"X-Hub-Signature-256": "sha256="},
    {"X-Hub-Signature-256": "sha256=zz"},  # not hex
    {"X-Hub-Signature-256": sign(BODY).upper()},  # SHA256=: another scheme's
    {"X-Hub-Signature-256": sign(BODY, b"another secret")},
    {"X-Hub-Signature-256": sign(BODY + b" ")},  # the body was changed
    {"X-Hub-Signature-256": sign(BODY)[:-2]},  # a truncated digest
    {"X-Signature": sign(BODY)},  # the wrong header
])
def test_anything_else_is_refused(headers: dict[str, str]) -> None:
    with pytest.raises(InvalidSignatureError):
        verify(AUTH, BODY, headers)


def test_several_signatures_and_several_secrets_while_rotating() -> None:
    rotating = WebhookAuth(secrets=(b"old secret", SECRET), header="X-Hub-Signature-256")
    verify(rotating, BODY, {"X-Hub-Signature-256": sign(BODY)})
    verify(rotating, BODY, {"X-Hub-Signature-256": sign(BODY, b"old secret")})
    # A provider signing with both (and another scheme besides) in one header.
    both = f"v0=abc, {sign(BODY, b'unknown')},{sign(BODY)}"
    verify(AUTH, BODY, {"X-Hub-Signature-256": both})
    with pytest.raises(InvalidSignatureError):
        verify(AUTH, BODY, {"X-Hub-Signature-256": f"{sign(BODY, b'x')} {sign(BODY, b'y')}"})


def test_a_timestamp_is_signed_with_the_body_and_must_be_recent() -> None:
    now = 1_700_000_000

    def clock() -> float:
        return now + 0.5

    verify(STAMPED, BODY, {"X-Timestamp": str(now), "X-Signature": sign(BODY, stamp=now)},
           now=clock)
    verify(STAMPED, BODY, {"X-Timestamp": str(now - 299),
                           "X-Signature": sign(BODY, stamp=now - 299)}, now=clock)
    refused: list[dict[str, str]] = [
        {"X-Signature": sign(BODY, stamp=now)},  # no timestamp
        {"X-Timestamp": "soon", "X-Signature": sign(BODY, stamp=now)},
        {"X-Timestamp": str(now), "X-Signature": sign(BODY)},  # the body alone signed
        {"X-Timestamp": str(now + 1), "X-Signature": sign(BODY, stamp=now)},  # moved
        # A captured delivery replayed later (or one from a clock far ahead).
        {"X-Timestamp": str(now - 301), "X-Signature": sign(BODY, stamp=now - 301)},
        {"X-Timestamp": str(now + 302), "X-Signature": sign(BODY, stamp=now + 302)},
        # Numbers no clock reads: refused as such (10**400 overflowed a float: a 500).
        {"X-Timestamp": "1" + "0" * 400, "X-Signature": sign(BODY, stamp=now)},
        {"X-Timestamp": "-" + "9" * 400, "X-Signature": sign(BODY, stamp=now)},
        {"X-Timestamp": "1e9", "X-Signature": sign(BODY, stamp=now)},
        {"X-Timestamp": "", "X-Signature": sign(BODY, stamp=now)},
    ]
    for headers in refused:
        with pytest.raises(InvalidSignatureError):
            verify(STAMPED, BODY, headers, now=clock)


def test_the_secret_stays_out_of_reprs_and_messages() -> None:
    assert "secret" not in repr(AUTH).replace("secrets", "")
    with pytest.raises(InvalidSignatureError) as caught:
        verify(AUTH, BODY, {"X-Hub-Signature-256": sign(BODY, b"x")})
    assert SECRET.decode() not in str(caught.value)


@pytest.mark.parametrize("options", [
    {"secrets": ()},
    {"secrets": SECRET},  # bytes, not a tuple of them
    {"secrets": ("text",)},
    {"secrets": (b"",)},
    {"secrets": (SECRET,), "header": "X Signature"},
    {"secrets": (SECRET,), "header": ""},
    {"secrets": (SECRET,), "timestamp_header": "X-Time\n"},
    {"secrets": (SECRET,), "prefix": "sha256=\n"},
    {"secrets": (SECRET,), "tolerance": 0},
    {"secrets": (SECRET,), "tolerance": float("inf")},
    {"secrets": (SECRET,), "tolerance": True},
])
def test_bad_configurations_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgumentError):
        WebhookAuth(**options)


def test_routes_are_named() -> None:
    assert check_webhooks({"signal-with-start": AUTH, "signal": AUTH}) == {
        "/v1/signal-with-start": AUTH, "/v1/runs/{workflow_id}/signals/{name}": AUTH}
    assert check_webhooks(None) == {}
    with pytest.raises(InvalidArgumentError, match="no webhook route named"):
        check_webhooks({"/v1/signal-with-start": AUTH})
    with pytest.raises(InvalidArgumentError, match="must be a WebhookAuth"):
        check_webhooks({"signal": "secret"})  # type: ignore[dict-item]


def test_a_delivery_s_fields_payload_and_id() -> None:
    body = {"workflow": "w", "payload": {"a": 1}, "signal_id": "d-1"}
    assert delivery(body, {}, {}, None) == (body, {"a": 1}, "d-1")
    # The header when the body names none; the provider's own header last.
    hooked = WebhookAuth(secrets=(SECRET,), id_header="X-GitHub-Delivery")
    assert delivery({}, {}, {"Duro-Signal-Id": "d-2"}, None)[2] == "d-2"
    assert delivery({}, {}, {"Duro-Signal-Id": "d-2", "X-GitHub-Delivery": "g"},
                    hooked)[2] == "d-2"
    assert delivery({}, {}, {"X-GitHub-Delivery": "g"}, hooked)[2] == "g"
    assert delivery({}, {}, {"X-GitHub-Delivery": "g"}, None)[2] is None
    # ?payload=body: a provider's own JSON is the payload, the fields are the query's.
    query = {"payload": "body", "workflow": "w", "id": "x", "signal": "s"}
    fields, payload, signal_id = delivery({"number": 42}, query, {}, None)
    assert fields == query and payload == {"number": 42} and signal_id is None
    with pytest.raises(InvalidArgumentError, match="payload"):
        delivery({}, {"payload": "raw"}, {}, None)
    for bad in ["", "a\nb", "x" * 1001, 5]:
        with pytest.raises(InvalidArgumentError, match="signal id"):
            delivery({"signal_id": bad}, {}, {}, None)
