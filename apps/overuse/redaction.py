"""Remove secrets and personal data from prompt text before any of it is stored, and hash prompts.

Pattern rules only (no model, nothing downloaded): provider API keys and tokens, JWTs, PEM blocks, AWS
access keys, credentials in URLs, card numbers that pass the Luhn check, IBANs that pass the mod-97
check, emails, phone numbers in common national and international formats, US SSNs and IPv4 addresses.
Names and addresses are NOT removed: the Savings page says so.

Each match becomes a placeholder such as `[EMAIL]`. Order matters: secrets first (a JWT or a URL with
credentials contains characters an email or phone rule would otherwise take), checksummed numbers
before phone numbers (a card number must not be half-eaten as a phone number).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from collections.abc import Callable

EXCERPT_CHARS = 200
# "full" storage keeps at most this much redacted text per prompt: enough to read, bounded in size.
FULL_TEXT_CHARS = 16_000
# Redact a margin beyond the excerpt so a token crossing the cut is matched whole before cutting.
_EXCERPT_WINDOW = 2_000

_PEM = re.compile(
    r"-----BEGIN [A-Z0-9 ]*?-----.*?(?:-----END [A-Z0-9 ]*?-----|\Z)",
    re.DOTALL,
)
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}")
_ANTHROPIC_KEY = re.compile(r"\bsk-ant-[A-Za-z0-9_-]{16,}")
# OpenAI-style keys (sk-..., sk-proj-..., sk-svcacct-..., sk-admin-...) and other `sk_live_`-style secrets.
_SK_KEY = re.compile(r"\b(?:sk|rk|pk)[-_](?:live[-_]|test[-_])?[A-Za-z0-9][A-Za-z0-9_-]{15,}")
_AWS_ACCESS_KEY = re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|AROA|APKA)[A-Z0-9]{16}\b")
_AWS_SECRET = re.compile(
    r"(?i)(aws_secret_access_key|aws_secret|secret_access_key)(\s*[:=]\s*[\"']?)[A-Za-z0-9/+=]{40}"
)
_GITHUB_TOKEN = re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{30,255}|github_pat_[A-Za-z0-9_]{22,255})\b")
_SLACK_TOKEN = re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}")
_GOOGLE_KEY = re.compile(r"\bAIza[0-9A-Za-z_-]{35}")
_BEARER = re.compile(r"(?i)\b(bearer|token)(\s+)[A-Za-z0-9._~+/=-]{16,}")
_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s:@]+:[^/\s@]+@")
_SECRET_PARAM = re.compile(
    r"(?i)([?&](?:api[_-]?key|apikey|key|token|access_token|auth|secret|password|sig|signature)=)[^&\s#]+"
)
_PASSWORD_ASSIGNMENT = re.compile(
    r"(?i)\b(password|passwd|pwd|secret|api[_-]?key)(\s*[:=]\s*)[\"']?(?!\[)[^\s\"'&]{6,}"
)
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
# IBAN candidates: a country code, two check digits, then 11-30 letters/digits, optionally in groups.
_IBAN_CANDIDATE = re.compile(r"\b[A-Z]{2}\d{2}(?:[ -]?[A-Z0-9]){11,30}\b")
# Card candidates: 13-19 digits, optionally grouped by spaces or dashes.
_CARD_CANDIDATE = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
_SSN = re.compile(r"\b\d{3}-\d{2}-\d{4}\b")
# (pattern, fewest digits it must hold): the floors keep dates, versions and amounts out.
_PHONE_PATTERNS = (
    # International: +CC then more digits in groups, e.g. +44 20 7946 0958, +1 (415) 555-2671.
    (re.compile(r"(?<![\w+])\+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?){2,6}(?!\w)"), 8),
    # North American: (415) 555-2671, 415-555-2671, 415.555.2671, 415 555 2671.
    (re.compile(r"(?<![\w-])(?:\(\d{3}\)\s?|\d{3}[-. ])\d{3}[-. ]\d{4}(?![\w-])"), 10),
    # National with a trunk zero: 020 7946 0958, 07700 900123, 030 1234567, 01 23 45 67 89.
    # (Not right after another digit group: that is the tail of an account number, not a phone.)
    (re.compile(r"(?<![\w.,-])(?<!\d )0\d{1,4}(?:[ -]\d{2,8}){1,4}(?![\w-])"), 9),
)
# After a word that says it is a phone number: any 7-15 digits with separators.
_PHONE_AFTER_WORD = re.compile(
    r"(?i)\b((?:phone|tel|mobile|cell|fax|whatsapp|call me on|call me at)[:.]?\s*)(\+?[\d(][\d ()./-]{5,20}\d)"
)
_IPV4 = re.compile(r"\b(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\b")


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum of a string of digits (card numbers)."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def iban_valid(candidate: str) -> bool:
    """ISO 13616 mod-97 check of an IBAN written with or without spaces."""
    compact = re.sub(r"[ -]", "", candidate).upper()
    if not 15 <= len(compact) <= 34 or not compact[:2].isalpha() or not compact[2:4].isdigit():
        return False
    rearranged = compact[4:] + compact[:4]
    numeric = "".join(str(int(char, 36)) for char in rearranged)
    return int(numeric) % 97 == 1


def _replace_ibans(text: str) -> str:
    def replace(match: re.Match) -> str:
        candidate = match.group(0)
        # The candidate can run into a following upper-case word ("... 00 BIC"): try shorter prefixes,
        # ending at a group boundary, before giving up.
        cuts = [len(candidate)] + [
            index for index in range(len(candidate) - 1, 14, -1) if candidate[index] in " -"
        ]
        for cut in cuts:
            if iban_valid(candidate[:cut]):
                return "[IBAN]" + candidate[cut:]
        return candidate

    return _IBAN_CANDIDATE.sub(replace, text)


def _replace_cards(text: str) -> str:
    def replace(match: re.Match) -> str:
        digits = re.sub(r"[ -]", "", match.group(0))
        return "[CARD]" if 13 <= len(digits) <= 19 and luhn_valid(digits) else match.group(0)

    return _CARD_CANDIDATE.sub(replace, text)


def _replace_phones(text: str) -> str:
    def replace_after_word(match: re.Match) -> str:
        digits = sum(char.isdigit() for char in match.group(2))
        return match.group(1) + "[PHONE]" if 7 <= digits <= 15 else match.group(0)

    text = _PHONE_AFTER_WORD.sub(replace_after_word, text)
    for pattern, fewest in _PHONE_PATTERNS:

        def replace(match: re.Match, fewest: int = fewest) -> str:
            digits = sum(char.isdigit() for char in match.group(0))
            return "[PHONE]" if fewest <= digits <= 15 else match.group(0)

        text = pattern.sub(replace, text)
    return text


_RULES: tuple[Callable[[str], str], ...] = (
    lambda text: _PEM.sub("[PEM_BLOCK]", text),
    lambda text: _JWT.sub("[JWT]", text),
    lambda text: _ANTHROPIC_KEY.sub("[API_KEY]", text),
    lambda text: _SK_KEY.sub("[API_KEY]", text),
    lambda text: _GOOGLE_KEY.sub("[API_KEY]", text),
    lambda text: _AWS_ACCESS_KEY.sub("[AWS_KEY]", text),
    lambda text: _AWS_SECRET.sub(r"\1\2[SECRET]", text),
    lambda text: _GITHUB_TOKEN.sub("[GITHUB_TOKEN]", text),
    lambda text: _SLACK_TOKEN.sub("[TOKEN]", text),
    lambda text: _URL_CREDENTIALS.sub(r"\1[CREDENTIALS]@", text),
    lambda text: _SECRET_PARAM.sub(r"\1[SECRET]", text),
    lambda text: _BEARER.sub(r"\1\2[TOKEN]", text),
    lambda text: _PASSWORD_ASSIGNMENT.sub(r"\1\2[SECRET]", text),
    lambda text: _EMAIL.sub("[EMAIL]", text),
    _replace_ibans,
    _replace_cards,
    lambda text: _SSN.sub("[SSN]", text),
    _replace_phones,
    lambda text: _IPV4.sub("[IP]", text),
)


def redact(text: str) -> str:
    """The text with every secret and personal-data match replaced by its placeholder."""
    for rule in _RULES:
        text = rule(text)
    return text


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """A redacted excerpt of at most `limit` characters (redacted before it is cut, never after)."""
    redacted = redact(text[:_EXCERPT_WINDOW])
    return redacted if len(redacted) <= limit else redacted[: limit - 1] + "…"


def full_text(text: str) -> str:
    """The redacted text for the "full" policy, bounded to FULL_TEXT_CHARS."""
    redacted = redact(text[: FULL_TEXT_CHARS + _EXCERPT_WINDOW])
    return redacted if len(redacted) <= FULL_TEXT_CHARS else redacted[: FULL_TEXT_CHARS - 1] + "…"


def normalise(text: str) -> str:
    """What counts as "the same prompt": Unicode-normalised, case-folded, whitespace collapsed."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def prompt_hash(key: bytes, text: str) -> str:
    """HMAC-SHA256 of the normalised prompt: equal prompts match, and "hi" cannot be guessed back
    from its hash without the key."""
    return hmac.new(key, normalise(text).encode("utf-8"), hashlib.sha256).hexdigest()
