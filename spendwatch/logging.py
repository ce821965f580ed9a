"""A logging filter that blanks key-shaped strings before any handler writes a record (TESTPLAN H2).

Defence in depth: the code never logs a provider key (a decrypted key lives in a `Secret` that prints only
its last four characters, and tests/security/test_canary.py proves it), but a provider that echoes the key
in an error body, a library that logs request headers or a stray f-string must not put one in a log file.
Two places: `configure` (settings.LOGGING_CONFIG) wraps the log record factory, so every record is scrubbed
when it is made, whichever handler writes it (Celery's worker handlers included); and the console handler in
settings.LOGGING carries the `RedactSecrets` filter. The record's message, arguments and formatted traceback
are rewritten in place, so everything after sees only the redacted text.
"""

from __future__ import annotations

import logging
import logging.config
import re

# Provider and platform key shapes. Each keeps only its last four characters, as the pages do.
KEY_PATTERNS = [
    re.compile(r"\bsk-(?:ant-|admin-|proj-|svcacct-)?[A-Za-z0-9_\-]{16,}"),  # OpenAI, Anthropic
    re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),  # AWS access key ids
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}"),  # GitHub tokens
    re.compile(r"\bgithub_pat_[A-Za-z0-9_]{30,}"),
    re.compile(r"\bxox[abpr]-[A-Za-z0-9\-]{10,}"),  # Slack tokens (webhook alerts)
]
# An Authorization header's credential, whatever its shape.
BEARER = re.compile(r"\b(Bearer|Basic|Token|Api-Key)\s+[A-Za-z0-9._~+/=\-]{8,}", re.IGNORECASE)


def redact(text: str) -> str:
    """The text with every key-shaped string replaced by `[redacted …last4]`."""
    text = BEARER.sub(lambda match: f"{match.group(1)} [redacted …{match.group(0)[-4:]}]", text)
    for pattern in KEY_PATTERNS:
        text = pattern.sub(lambda match: f"[redacted …{match.group(0)[-4:]}]", text)
    return text


def redact_record(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except Exception:  # a record whose arguments do not fit its format: the handler reports that itself
        return
    redacted = redact(message)
    if redacted != message:
        record.msg, record.args = redacted, None
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)


class RedactSecrets(logging.Filter):
    """Rewrites the record so that no handler sees a key; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record)
        return True


def configure(logging_settings: dict) -> None:
    """settings.LOGGING_CONFIG: Django's usual dictConfig, then every new record is redacted when made."""
    logging.config.dictConfig(logging_settings)
    install_record_factory()


def install_record_factory() -> None:
    current = logging.getLogRecordFactory()
    if getattr(current, "redacts_secrets", False):
        return

    def make_record(*args, **kwargs) -> logging.LogRecord:
        record = current(*args, **kwargs)
        redact_record(record)
        return record

    make_record.redacts_secrets = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(make_record)
