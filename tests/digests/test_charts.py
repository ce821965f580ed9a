"""Charts travel as inline PNG images (multipart/related, Content-ID), drawn offline by the system Chromium."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from apps.digests import services
from tests.digests.conftest import WEEK, html_part, text_part

pytestmark = pytest.mark.django_db

CHROMIUM = "/usr/bin/chromium"
needs_chromium = pytest.mark.skipif(
    not Path(CHROMIUM).is_file(),
    reason=f"no Chromium at {CHROMIUM} to draw charts with (.ci/run installs it; apt-get install chromium)",
)


@needs_chromium
def test_charts_are_inline_images_referenced_by_content_id(
    acme, readers, weeks_of_usage, smtp_server, settings
):
    settings.SPENDWATCH_CHROMIUM_PATH = CHROMIUM
    summary = services.send_digests(organisation=acme, week=WEEK)
    assert (summary.sent, summary.charts) == (6, "")

    message = smtp_server.to("cio@acme.example")[0]
    plain, related = message.iter_parts()
    assert (message.get_content_type(), plain.get_content_type(), related.get_content_type()) == (
        "multipart/alternative",
        "text/plain",
        "multipart/related",
    )
    html, *images = related.iter_parts()
    assert html.get_content_type() == "text/html"
    assert [image.get_content_type() for image in images] == ["image/png", "image/png"]
    body = html_part(message)
    user_id = readers["cio"].pk
    for image, name in zip(images, ("trend", "teams"), strict=True):
        assert image["Content-ID"] == f"<{name}.2026-W32.{user_id}>"
        assert image.get_content_disposition() == "inline"
        assert image.get_content()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f'src="cid:{name}.2026-W32.{user_id}"' in body
    # Every image has its alt text, and its numbers are written out beside it and in the plain text.
    assert len(re.findall(r'<img [^>]*alt="Bar chart: Spend', body)) == 2
    for text in (body, text_part(message)):
        assert "Payments: $1.00 this week, $1.20 last week" in text
        assert "Charts are not included" not in text


def test_without_a_browser_the_email_goes_out_without_images_and_says_so(
    acme, readers, weeks_of_usage, smtp_server, settings
):
    settings.SPENDWATCH_CHROMIUM_PATH = "/nonexistent/chromium"
    summary = services.send_digests(organisation=acme, week=WEEK)

    assert (summary.sent, summary.charts) == (6, "no browser at /nonexistent/chromium")
    message = smtp_server.to("cio@acme.example")[0]
    assert [part.get_content_type() for part in message.walk()] == [
        "multipart/alternative",
        "text/plain",
        "text/html",
    ]
    note = "Charts are not included in this email: no browser at /nonexistent/chromium."
    assert note in text_part(message) and note in html_part(message)
    assert "<img" not in html_part(message)
