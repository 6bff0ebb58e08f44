"""Standard Webhooks signing and verifying, both directions, and hostile headers."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sealscope.delivery.signature import headers, new_secret, sign, verify
from sealscope.errors import WebhookVerificationError

NOW = 1_700_000_000
SECRET = new_secret()


def test_signature_matches_an_independent_hmac() -> None:
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    digest = hmac.new(key, b"msg_1.1700000000.{}", hashlib.sha256).digest()
    assert sign(SECRET, "msg_1", NOW, b"{}") == "v1," + base64.b64encode(digest).decode()


def test_signature_verify_accepts_what_headers_signs() -> None:
    signed = headers(SECRET, "msg_1", b'{"a":1}', now_s=NOW)
    assert set(signed) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert verify(SECRET, signed, b'{"a":1}', now_s=NOW + 10) == "msg_1"


def test_signature_verify_accepts_one_valid_among_several() -> None:
    signed = headers(SECRET, "msg_1", b"x", now_s=NOW)
    other = sign(new_secret(), "msg_1", NOW, b"x")
    signed["webhook-signature"] = f"{other} {signed['webhook-signature']}"
    assert verify(SECRET, signed, b"x", now_s=NOW) == "msg_1"


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (lambda h, b: (h, b + b" "), "no valid"),
        (lambda h, b: ({**h, "webhook-id": "msg_2"}, b), "no valid"),
        (lambda h, b: ({**h, "webhook-timestamp": str(NOW + 1)}, b), "no valid"),
        (lambda h, b: ({**h, "webhook-timestamp": str(NOW - 301)}, b), "tolerance"),
        (lambda h, b: ({**h, "webhook-timestamp": "1e9"}, b), "integer"),
        (lambda h, b: ({k: v for k, v in h.items() if k != "webhook-id"}, b), "missing"),
        (lambda h, b: ({**h, "webhook-signature": "v1," + "A" * 5000}, b), "too long"),
    ],
)
def test_signature_verify_refuses_tampering(tamper, reason) -> None:
    signed, body = tamper(headers(SECRET, "msg_1", b"{}", now_s=NOW), b"{}")
    with pytest.raises(WebhookVerificationError, match=reason):
        verify(SECRET, signed, body, now_s=NOW)


def test_signature_verify_refuses_another_secret() -> None:
    signed = headers(SECRET, "msg_1", b"{}", now_s=NOW)
    with pytest.raises(WebhookVerificationError):
        verify(new_secret(), signed, b"{}", now_s=NOW)


@pytest.mark.parametrize(
    "secret", ["abc", "whsec_!!!", "whsec_" + base64.b64encode(b"short").decode()]
)
def test_signature_refuses_malformed_secrets(secret) -> None:
    with pytest.raises(ValueError, match="secret"):
        sign(secret, "msg_1", NOW, b"{}")


@given(
    msg_id=st.text(max_size=80),
    stamp=st.text(max_size=30),
    signature=st.text(max_size=200),
    body=st.binary(max_size=200),
)
def test_signature_verify_survives_arbitrary_headers(msg_id, stamp, signature, body) -> None:
    received = {"webhook-id": msg_id, "webhook-timestamp": stamp, "webhook-signature": signature}
    with pytest.raises(WebhookVerificationError):
        verify(SECRET, received, body, now_s=NOW)
