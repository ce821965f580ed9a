"""A planted provider admin key appears nowhere but in the request headers sent to its provider (TESTPLAN H1, H2).

A fresh canary `sk-admin-CANARY-<random>` is stored on a pull source, then driven through every path that
could print it: pulls answered 401 (echoing the key), 429 (a spend limit), 500, a timeout and a reset
connection; the Celery messages a pull publishes (captured from the broker's publish signal) and the task's
result; the budget check and ingest APIs given the key as a bearer token; the pull source pages and admin;
a crashing form post under DEBUG off (the 500 page and the error report an admin email would carry). Every
log record of every logger is captured at DEBUG, before any redaction (the redacting filter and record
factory are taken off for this test: the code itself must not log the key). Then the canary is looked for
in all of it, in every row of every database table and in every kept payload file: 0 occurrences, and
only its last four characters ever shown.
"""

from __future__ import annotations

import io
import json
import logging
import secrets
from collections.abc import Iterator

import pytest
from celery.signals import before_task_publish
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.views.debug import ExceptionReporter

from apps.accounts.models import Membership
from apps.ingestion import tasks
from apps.ingestion.models import PullSource
from spendwatch.celery import app as celery_app
from spendwatch.logging import RedactSecrets
from tests.ingestion.pulls.conftest import (  # noqa: F401 - fixtures
    OPENAI_USAGE_PAGES,
    fake_provider,
    make_pull_source,
    pull,
    pull_settings,
)
from tests.ingestion.pulls.fakeprovider import Reply, Seen, paged

pytestmark = pytest.mark.django_db(transaction=True)

CANARY = "sk-admin-CANARY-" + secrets.token_hex(16)
PAGES = [path.read_bytes() for path in OPENAI_USAGE_PAGES]


class Everything(logging.Handler):
    """Keeps every formatted record (message and traceback) of the logger it is attached to."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.texts: list[str] = []
        self.records: list[logging.LogRecord] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.texts.append(self.format(record) + repr(record.args))


@pytest.fixture
def every_log_record() -> Iterator[Everything]:
    """A handler on the root logger and on every named logger, everything at DEBUG, no redaction."""
    handler = Everything()
    factory = logging.getLogRecordFactory()
    logging.setLogRecordFactory(logging.LogRecord)
    loggers = [logging.getLogger()] + [
        logger for logger in logging.root.manager.loggerDict.values() if isinstance(logger, logging.Logger)
    ]
    levels = [(logger, logger.level) for logger in loggers]
    redacting = [
        (h, f) for h in logging.getLogger().handlers for f in h.filters if isinstance(f, RedactSecrets)
    ]
    for h, f in redacting:
        h.removeFilter(f)
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
        if logger is logging.getLogger() or not logger.propagate:
            logger.addHandler(handler)
    try:
        yield handler
    finally:
        for logger, level in levels:
            logger.setLevel(level)
            logger.removeHandler(handler)
        for h, f in redacting:
            h.addFilter(f)
        logging.setLogRecordFactory(factory)


@pytest.fixture
def published() -> Iterator[list[str]]:
    """The body and headers of every task message published while the test runs."""
    messages: list[str] = []

    def keep(body=None, headers=None, **kwargs) -> None:
        messages.append(json.dumps({"body": body, "headers": headers}, default=repr))

    before_task_publish.connect(keep, weak=False)
    yield messages
    before_task_publish.disconnect(keep)


def script(replies: list[Reply]):
    pages = paged(PAGES)
    queue = list(replies)

    def handler(seen: Seen) -> Reply:
        return queue.pop(0) if queue else pages(seen)

    return handler


def dump_every_table() -> str:
    """Every row of every table, as text (dumpdata covers the models; this also covers the rest)."""
    parts = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            parts.append(f"{table}: {cursor.fetchall()!r}")
    out = io.StringIO()
    call_command("dumpdata", stdout=out)
    return "\n".join(parts) + out.getvalue()


def test_the_canary_key_appears_nowhere(
    make_pull_source,  # noqa: F811
    fake_provider,  # noqa: F811
    every_log_record,
    published,
    settings,
    acme,
    django_user_model,
):
    settings.SPENDWATCH_PULL_MAX_ATTEMPTS = 3
    settings.DEBUG = False
    settings.SPENDWATCH_MFA_REQUIRED_ROLES = []
    echo = {"error": {"message": f"Incorrect API key provided: {CANARY}", "type": "invalid_request_error"}}
    server = fake_provider(
        script(
            [
                Reply(500, {"error": {"message": "internal"}}),
                Reply(429, {"error": {"message": "Rate limit reached"}}, {"Retry-After": "0"}),
                Reply(200, PAGES[0], delay=1.5),  # longer than the 1 s timeout
                Reply(200, PAGES[0], reset=True),
            ]
        )
    )
    source = make_pull_source(server.url, credential=CANARY)
    seen: list[str] = []

    # Pulls through every failure, then a pull by the Celery task itself (eager) and one published.
    results = [pull(source), pull(source)]
    server.handler = lambda request: Reply(401, echo)
    results.append(pull(source))
    server.handler = lambda request: Reply(429, {"error": {"message": f"spend limit reached for {CANARY}"}})
    results.append(pull(source))
    PullSource.objects.filter(pk=source.pk).update(status="ok", next_pull_at=None)
    server.handler = paged(PAGES)
    settings.CELERY_TASK_ALWAYS_EAGER = True
    celery_app.conf.task_always_eager = True
    try:
        eager = tasks.pull_source.apply(args=(source.pk,))
        seen.append(json.dumps(eager.result))
    finally:
        celery_app.conf.task_always_eager = False
    with celery_app.connection_for_write("memory://") as broker:
        tasks.pull_source.apply_async((source.pk,), connection=broker)
        tasks.enqueue_due_pulls.apply_async(connection=broker)

    # The APIs, given the key as if it were theirs.
    api = Client()
    for path in ("/api/v1/budgets/check/?person=alice@acme.example", "/api/v1/ingest/litellm_spend_logs/"):
        for header in (f"Bearer {CANARY}", f"Api-Key {CANARY}", CANARY):
            response = api.get(path, HTTP_AUTHORIZATION=header)
            assert response.status_code in (401, 403, 405), (path, response.status_code)
            seen.append(f"{response.status_code} {response.headers!r} {response.content!r}")

    # The pages, signed in as the CIO; then a form post that crashes (the 500 page, the error report).
    cio = django_user_model.objects.create_superuser(
        username="cio@acme.example", email="cio@acme.example", password="pw-for-tests-1"
    )
    Membership.objects.create(user=cio, organisation=acme, role="cio")
    browser = Client(raise_request_exception=False)
    browser.force_login(cio)
    for path in ("/sources/pulls/", f"/sources/pulls/{source.pk}/", "/sources/", "/admin/"):
        response = browser.get(path)
        assert response.status_code == 200, path
        seen.append(response.content.decode())
    assert "…" + CANARY[-4:] in seen[-4]  # the listing shows the last four characters, and only those

    def crash(*args, **kwargs):
        raise RuntimeError("the database went away mid-save")

    form = {"name": "second", "provider": "openai", "credential": CANARY, "interval_minutes": "60"}
    form |= {"backfill_days": "3", "enabled": "on"}
    original_save = PullSource.save
    PullSource.save = crash
    try:
        crashed = browser.post("/sources/pulls/", form)
    finally:
        PullSource.save = original_save
    assert crashed.status_code == 500
    seen.append(crashed.content.decode())
    # What AdminEmailHandler would send for it: the request (POST) and every frame's local variables.
    reports = [r for r in every_log_record.records if getattr(r, "request", None) and r.exc_info]
    assert reports, "the 500 was logged by django.request"
    for record in reports:
        seen.append(ExceptionReporter(record.request, *record.exc_info).get_traceback_text())
        seen.append(ExceptionReporter(record.request, *record.exc_info).get_traceback_html())

    assert [result.status for result in results] == [
        "failing",
        "ok",
        "credentials_rejected",
        "blocked_by_provider_limit",
    ]
    assert eager.result["status"] == "ok"
    assert {request.headers["authorization"] for request in server.requests} == {f"Bearer {CANARY}"}
    assert [json.loads(message)["body"][:2] for message in published] == [[[source.pk], {}], [[], {}]]
    assert any("retrying in" in text for text in every_log_record.texts)  # the logs were captured
    assert any("HTTP Request: GET" in text for text in every_log_record.texts)
    kept_files = [
        path.read_bytes().decode(errors="replace")
        for path in settings.SPENDWATCH_UPLOAD_DIR.rglob("*")
        if path.is_file()
    ]
    everywhere = {
        "logs": "\n".join(every_log_record.texts),
        "pull results": json.dumps([result.summary() for result in results], ensure_ascii=False),
        "task messages": "\n".join(published),
        "responses and reports": "\n".join(seen),
        "database": dump_every_table(),
        "kept payloads": "\n".join(kept_files),
    }
    for place, text in everywhere.items():
        assert text, place
        assert text.count(CANARY) == 0, place
        assert text.count(CANARY[:-4]) == 0, place  # not even partly: only the last four may show
    assert "…" + CANARY[-4:] in everywhere["pull results"]  # the echoed key, replaced by its hint


def test_a_secret_cannot_be_put_in_a_task_message_even_by_mistake():
    from kombu.exceptions import EncodeError

    from apps.ingestion.credentials import Secret

    with celery_app.connection_for_write("memory://") as broker, pytest.raises(EncodeError):
        tasks.pull_source.apply_async((Secret(CANARY),), connection=broker)


@pytest.mark.parametrize(
    ("line", "redacted"),
    [
        (
            f"openai said: Incorrect API key provided: {CANARY}.",
            f"openai said: Incorrect API key provided: [redacted …{CANARY[-4:]}].",
        ),
        ("x-api-key: sk-ant-admin01-Zq8vN3kLmP0aB7cD9eF2gH4jK6", "x-api-key: [redacted …4jK6]"),
        (
            "sk-proj-abcdefghijklmnop1234 and AKIAIOSFODNN7EXAMPLE",  # pragma: allowlist secret
            "[redacted …1234] and [redacted …MPLE]",
        ),
        ("token ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8", "token [redacted …q7R8]"),
        ("Authorization: Bearer eyJhbGciOi.eyJzdWIiOi.sig-nature", "Authorization: Bearer [redacted …ture]"),
        ("pulled 3 pages with key …9b2c in 0.4 s", "pulled 3 pages with key …9b2c in 0.4 s"),
    ],
)
def test_the_log_filter_blanks_key_shaped_strings(line, redacted):
    from spendwatch.logging import redact

    assert redact(line) == redacted


def test_every_configured_log_record_is_redacted_whatever_the_handler():
    """settings.LOGGING_CONFIG installed the redacting record factory: a handler added later (Celery's own,
    a test's) sees only the redacted message, arguments and traceback."""
    seen = Everything()
    logger = logging.getLogger("spendwatch.test.redaction")
    logger.addHandler(seen)
    logger.setLevel(logging.DEBUG)
    try:
        logger.warning("provider answered %s", {"error": f"bad key {CANARY}"})
        try:
            raise RuntimeError(f"while using {CANARY}")
        except RuntimeError:
            logger.exception("pull failed")
    finally:
        logger.removeHandler(seen)

    assert CANARY not in "\n".join(seen.texts)
    assert seen.texts[0].startswith(
        f"spendwatch.test.redaction WARNING provider answered {{'error': 'bad key [redacted …{CANARY[-4:]}]'}}"
    )
    assert f"RuntimeError: while using [redacted …{CANARY[-4:]}]" in seen.texts[1]
