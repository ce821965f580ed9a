"""Redaction (TESTPLAN H6): exact outputs, checksum negatives, and 500 synthetic prompts with planted data."""

import random

import pytest

from apps.overuse.redaction import EXCERPT_CHARS, excerpt, iban_valid, luhn_valid, normalise, redact

CASES = [
    ("my key is sk-proj-AbCdEf1234567890XyZaBcDeF, it fails", "my key is [API_KEY], it fails"),
    ("export OPENAI_API_KEY=sk-AbCdEf1234567890XyZaBcDeF12", "export OPENAI_API_KEY=[API_KEY]"),
    ("use sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123 please", "use [API_KEY] please"),
    ("admin key sk-admin-CANARYx0x0x0x0x0x0x0x0", "admin key [API_KEY]"),
    ("AWS AKIAIOSFODNN7EXAMPLE and ASIAY34FZKBOKMUTVV7A", "AWS [AWS_KEY] and [AWS_KEY]"),
    (
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "aws_secret_access_key = [SECRET]",
    ),
    ("token ghp_abcdefghijklmnopqrstuvwxyz0123456789 in CI", "token [GITHUB_TOKEN] in CI"),
    ("pat github_pat_11ABCDEFG0abcdefghijkl_mnopqrstuvwxyz0123456789", "pat [GITHUB_TOKEN]"),
    ("slack xoxb-1234567890-abcdefghijkl", "slack [TOKEN]"),
    (
        "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U end",
        "jwt [JWT] end",
    ),
    (
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\nq83hd7\n-----END RSA PRIVATE KEY-----\nwhy does it fail?",
        "[PEM_BLOCK]\nwhy does it fail?",
    ),
    ("cut off: -----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA", "cut off: [PEM_BLOCK]"),
    ("Authorization: Bearer abcdefghijklmnop1234", "Authorization: Bearer [TOKEN]"),
    (
        "postgres://app:hunter2pass@db.internal:5432/ledger",
        "postgres://[CREDENTIALS]@db.internal:5432/ledger",
    ),
    ("GET /v1/report?api_key=abc123&month=10", "GET /v1/report?api_key=[SECRET]&month=10"),
    ("password: Sup3rS3cret!", "password: [SECRET]"),
    ("card 4111 1111 1111 1111 expires 12/27", "card [CARD] expires 12/27"),
    ("amex 3782-822463-10005 and 5555555555554444", "amex [CARD] and [CARD]"),
    ("pay DE89 3704 0044 0532 0130 00 BIC COBADEFFXXX", "pay [IBAN] BIC COBADEFFXXX"),
    ("to GB82WEST12345698765432 today", "to [IBAN] today"),
    ("mail john.smith@example.co.uk now", "mail [EMAIL] now"),
    ("call +44 20 7946 0958 or (415) 555-2671", "call [PHONE] or [PHONE]"),
    ("office 020 7946 0958, mobile 07700 900123", "office [PHONE], mobile [PHONE]"),
    ("Tel: +41 44 668 18 00", "Tel: [PHONE]"),
    ("ssn 123-45-6789 from 10.0.0.12", "ssn [SSN] from [IP]"),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_redaction_replaces_each_kind_with_its_placeholder(text, expected):
    assert redact(text) == expected


NOT_SECRETS = [
    "order 4111 1111 1111 1112 was refunded",  # 16 digits, Luhn fails
    "tracking 1234567812345678",  # Luhn fails
    "pay to GB82WEST12345698765433",  # IBAN checksum fails
    "reference DE00 3704 0044 0532 0130 00",  # IBAN checksum fails
    "meeting on 2026-11-20 10:00 about ticket 48213, version 1.2.3",
    "revenue 12,345.67 from 1 000 000 users in Q3",
    "the risk-taking, disk-based cache; sky-high costs",
    "sk-short is not a key",
    "ask-ant-colony optimisation",
    "the range 0 100 200 300 and 0.25",
]


@pytest.mark.parametrize("text", NOT_SECRETS)
def test_things_that_only_look_like_secrets_stay(text):
    assert redact(text) == text


def test_checksums():
    assert luhn_valid("4111111111111111") and luhn_valid("378282246310005")
    assert not luhn_valid("4111111111111112")
    assert iban_valid("GB82 WEST 1234 5698 7654 32") and iban_valid("DE89370400440532013000")
    assert not iban_valid("GB82WEST12345698765433") and not iban_valid("GB82WEST")


def test_an_excerpt_is_redacted_before_it_is_cut():
    text = "x" * 190 + " sk-proj-AbCdEf1234567890XyZaBcDeF and more"
    assert excerpt(text) == "x" * 190 + " [API_KEY] …"[: EXCERPT_CHARS - 190 - 1] + "…"
    assert "sk-proj" not in excerpt(text) and len(excerpt(text)) == EXCERPT_CHARS


def test_normalisation_for_the_hash():
    assert normalise("  Hello\tWORLD \n") == normalise("hello world") == "hello world"
    assert normalise("ｆｕｌｌ width") == "full width"


# --- H6: 500 synthetic prompts with planted data --------------------------------------------------


def _luhn_number(rng: random.Random, prefix: str, length: int) -> str:
    body = prefix + "".join(str(rng.randrange(10)) for _ in range(length - len(prefix) - 1))
    check = next(str(digit) for digit in range(10) if luhn_valid(body + str(digit)))
    return body + check


def _iban(rng: random.Random, country: str, bban_length: int) -> str:
    bban = "".join(str(rng.randrange(10)) for _ in range(bban_length))
    numeric = "".join(str(int(char, 36)) for char in bban + country + "00")
    compact = f"{country}{98 - int(numeric) % 97:02d}{bban}"
    return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4)) if rng.random() < 0.5 else compact


def _alnum(
    rng: random.Random,
    length: int,
    alphabet: str = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789",
) -> str:
    return "".join(rng.choice(alphabet) for _ in range(length))


def _planted(rng: random.Random) -> dict[str, str]:
    first = rng.choice(["dana", "li.wei", "o.brien", "sam_k", "maria-j"])
    domain = rng.choice(["example.org", "acme.co.uk", "mail.example.com", "corp.example.de"])
    card = _luhn_number(rng, rng.choice(["4", "51", "55", "37", "6011"]), 15 if rng.random() < 0.2 else 16)
    if rng.random() < 0.5:
        card = " ".join(card[i : i + 4] for i in range(0, len(card), 4))
    phone = rng.choice(
        [
            f"+44 20 {rng.randrange(7000, 7999)} {rng.randrange(1000, 9999)}",
            f"+1 ({rng.randrange(200, 999)}) {rng.randrange(200, 999)}-{rng.randrange(1000, 9999)}",
            f"{rng.randrange(200, 999)}-{rng.randrange(200, 999)}-{rng.randrange(1000, 9999)}",
            f"07{rng.randrange(100, 999)} {rng.randrange(100000, 999999)}",
            f"+49 30 {rng.randrange(1000000, 9999999)}",
            f"+33 1 {rng.randrange(10, 99)} {rng.randrange(10, 99)} {rng.randrange(10, 99)} {rng.randrange(10, 99)}",
        ]
    )
    return {
        "email": f"{first}{rng.randrange(100)}@{domain}",
        "phone": phone,
        "card": card,
        "iban": _iban(rng, *rng.choice([("DE", 18), ("GB", 18), ("FR", 23), ("NL", 14), ("ES", 20)])).replace(
            "GB", "GB"
        ),
        "openai": "sk-proj-" + _alnum(rng, 40),
        "anthropic": "sk-ant-api03-" + _alnum(rng, 60),
        "aws": "AKIA" + _alnum(rng, 16, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"),
        "github": "ghp_" + _alnum(rng, 36),
        "jwt": "eyJ" + _alnum(rng, 20) + ".eyJ" + _alnum(rng, 40) + "." + _alnum(rng, 43),
        "pem": "-----BEGIN PRIVATE KEY-----\n"
        + _alnum(rng, 64)
        + "\n"
        + _alnum(rng, 64)
        + "\n-----END PRIVATE KEY-----",
    }


TEMPLATES = [
    "Debug this: the client with key {openai} gets 401. Contact {email} or {phone}.",
    "Customer {email} paid with {card} and wants a refund to {iban}. Call them on {phone}.",
    "Here is our config:\nANTHROPIC_API_KEY={anthropic}\nAWS_ACCESS_KEY_ID={aws}\nGITHUB_TOKEN={github}\nWhy does deploy fail?",
    "Decode this token {jwt} and tell me when it expires. The user is {email}.",
    "Our signing key:\n{pem}\nIs it RSA or EC? Ask {email}, phone {phone}.",
    "Invoice for {email}: IBAN {iban}, card on file {card}, key {openai}",
]


def test_h6_every_planted_secret_and_card_is_removed_from_500_prompts():
    rng = random.Random(6)
    missed: dict[str, int] = {}
    planted: dict[str, int] = {}
    for _ in range(500):
        values = _planted(rng)
        template = rng.choice(TEMPLATES)
        text = template.format(**values)
        redacted = redact(text)
        short = excerpt(text)
        assert len(short) <= EXCERPT_CHARS
        for kind, value in values.items():
            if "{" + kind + "}" not in template:
                continue
            planted[kind] = planted.get(kind, 0) + 1
            if value in redacted or (kind != "pem" and value in short):
                missed[kind] = missed.get(kind, 0) + 1
    for kind in ("openai", "anthropic", "aws", "github", "jwt", "pem", "card", "iban"):
        assert planted[kind] > 0 and missed.get(kind, 0) == 0, kind
    for kind in ("email", "phone"):
        assert planted[kind] > 100
        assert missed.get(kind, 0) <= 0.02 * planted[kind], kind
