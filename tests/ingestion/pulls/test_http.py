"""The retry rules on their own: Retry-After forms, the backoff curve, which 429 is a spend cap."""

from __future__ import annotations

import datetime as dt

import pytest

from apps.ingestion.credentials import Secret
from apps.ingestion.providers.http import SPEND_CAP, RetryPolicy, provider_message, retry_after_seconds

NOW = dt.datetime(2026, 8, 6, 12, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("2", 2.0),
        (" 120 ", 120.0),
        ("Thu, 06 Aug 2026 12:00:07 GMT", 7.0),
        ("Thu, 06 Aug 2026 11:59:00 GMT", 0.0),  # a date in the past: go now
        (None, None),
        ("", None),
        ("soon", None),
        ("-5", None),
    ],
)
def test_retry_after_is_read_as_seconds_or_an_http_date(header, seconds):
    assert retry_after_seconds(header, now=NOW) == seconds


def test_backoff_doubles_from_the_base_up_to_the_cap_with_equal_jitter():
    policy = RetryPolicy(max_attempts=8, backoff_base=1.0, backoff_cap=60.0, max_wait=300)

    lowest = [policy.backoff(retry, rand=lambda: 0.0) for retry in range(8)]
    highest = [policy.backoff(retry, rand=lambda: 1.0) for retry in range(8)]

    assert lowest == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert highest == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]


@pytest.mark.parametrize(
    ("message", "is_cap"),
    [
        (
            "insufficient_quota: You exceeded your current quota, please check your plan and billing details.",
            True,
        ),
        ("rate_limit_error: spend limit reached for this organization", True),
        ("Your workspace has reached its usage limit", True),
        ("requests: Rate limit reached for gpt-4.1 in organization org-1 on requests per min (RPM)", False),
        ("rate_limit_error: Number of request tokens has exceeded your per-minute rate limit", False),
    ],
)
def test_a_spend_cap_is_told_apart_from_a_rate_limit(message, is_cap):
    assert bool(SPEND_CAP.search(message)) is is_cap


def test_provider_messages_are_read_from_either_error_shape_and_never_carry_the_key():
    secret = Secret("sk-ant-admin01-0123456789abcdef")
    anthropic = b'{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}'
    echoed = b'{"error":{"message":"bad key sk-ant-admin01-0123456789abcdef"}}'

    assert provider_message(anthropic) == "authentication_error: invalid x-api-key"
    assert provider_message(echoed, secret) == "bad key …cdef"
    assert provider_message(b"<html>\n  Bad   gateway</html>") == "<html> Bad gateway</html>"
    assert len(provider_message(b"x" * 5000)) == 300
