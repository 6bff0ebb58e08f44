"""Claim codes (unambiguous, hashed, bound to a device) and the failed-claim limiter."""

from __future__ import annotations

import re

from sealscope.provisioning import ClaimCodes, ClaimLimiter, new_claim_code, normalise_claim_code

PEPPER = b"p" * 32


def test_new_claim_code_is_two_groups_of_unambiguous_characters() -> None:
    codes = {new_claim_code() for _ in range(2000)}
    assert len(codes) == 2000
    for code in codes:
        assert re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{5}-[0-9A-HJKMNP-TV-Z]{5}", code), code


def test_normalise_claim_code_forgives_how_people_type() -> None:
    assert normalise_claim_code("ab1o0-il9zz") == "AB100119ZZ"
    assert normalise_claim_code(" AB100 119ZZ ") == "AB100119ZZ"
    assert normalise_claim_code("AB100-1119U") is None  # U is not in the alphabet
    assert normalise_claim_code("AB100") is None
    assert normalise_claim_code("A" * 1000) is None


def test_claim_codes_match_only_their_device_and_pepper() -> None:
    codes = ClaimCodes(PEPPER)
    code = new_claim_code()
    stored = codes.hash("ACME-1", code)
    assert codes.matches("ACME-1", code.lower().replace("-", " "), stored)
    assert not codes.matches("ACME-2", code, stored)
    assert not codes.matches("ACME-1", new_claim_code(), stored)
    assert not codes.matches("ACME-1", "not a code", stored)
    assert not ClaimCodes(b"q" * 32).matches("ACME-1", code, stored)
    assert code.encode() not in stored


def test_claim_limiter_counts_failures_in_a_sliding_window() -> None:
    now = [1000.0]
    limiter = ClaimLimiter(max_failures=3, window_s=60.0, clock=lambda: now[0])
    for _ in range(3):
        assert limiter.retry_after_s("a") is None
        limiter.failed("a")
        now[0] += 10.0
    assert limiter.retry_after_s("a") == 30  # the first failure leaves the window at 1060
    assert limiter.retry_after_s("b") is None  # per caller
    now[0] = 1060.0
    assert limiter.retry_after_s("a") is None
