"""A digest as an email: subject, plain text and HTML from templates/digests/, charts inline.

The MIME tree is the one every client understands:

    multipart/alternative
    ├── text/plain                      (the whole digest, charts as their text alternatives)
    └── multipart/related
        ├── text/html                   (tables and inline styles only; no script, no remote content)
        └── image/png  Content-ID: <…>  (one per chart, referenced as cid:… from the HTML)

so a text-only client shows no attachments, and an HTML client shows the images in place. Headers
carry RFC 8058 one-click unsubscribe (List-Unsubscribe + List-Unsubscribe-Post) and a Message-ID fixed
per recipient and week, so that even a copy sent twice would be folded into one by most clients.
"""

from __future__ import annotations

import base64
import email.policy
from dataclasses import dataclass
from email.message import EmailMessage as MimeMessage
from email.utils import format_datetime
from urllib.parse import urlparse

from django.conf import settings
from django.core.mail import EmailMessage
from django.template.loader import render_to_string
from django.utils import timezone

from apps.digests.charts import Chart, ChartRenderer, digest_charts
from apps.digests.selectors import Digest


@dataclass(frozen=True)
class ChartImage:
    chart: Chart
    png: bytes | None
    src: str  # what the HTML's img src says: "cid:…", a data: URI (preview), or "" (no image)


@dataclass(frozen=True)
class RenderedDigest:
    subject: str
    text: str
    html: str
    images: tuple[ChartImage, ...]
    charts_note: str  # why some charts have no image ("" when all do)


def message_id(digest: Digest) -> str:
    domain = urlparse(settings.SPENDWATCH_BASE_URL).hostname or "spendwatch.invalid"
    return f"<digest.{digest.week}.{digest.recipient.user_id}@{domain}>"


def _subject(digest: Digest) -> str:
    return " ".join(render_to_string("digests/digest-subject.txt", {"digest": digest}).split())


def render_digest(digest: Digest, renderer: ChartRenderer | None, *, inline: bool = False) -> RenderedDigest:
    """Subject and bodies. `inline`: images as data: URIs (the browser preview), else Content-ID links."""
    charts = digest_charts(digest, cid_suffix=f"{digest.week}.{digest.recipient.user_id}")
    images = []
    for chart in charts:
        png = renderer.png(chart) if renderer is not None else None
        if png is None:
            src = ""
        elif inline:
            src = "data:image/png;base64," + base64.b64encode(png).decode()
        else:
            src = f"cid:{chart.cid}"
        images.append(ChartImage(chart, png, src))
    missing = [image for image in images if image.png is None]
    note = ""
    if missing:
        reason = renderer.reason if renderer is not None and renderer.reason else "the chart renderer failed"
        note = (
            f"Charts are not included in this email: {reason}. Each chart's figures are written out instead."
        )
    context = {"digest": digest, "charts": images, "charts_note": note}
    return RenderedDigest(
        subject=_subject(digest),
        text=render_to_string("digests/digest-body.txt", context),
        html=render_to_string("digests/digest-body.html", context),
        images=tuple(images),
        charts_note=note,
    )


def build_mime(digest: Digest, rendered: RenderedDigest, *, from_email: str) -> MimeMessage:
    message = MimeMessage(policy=email.policy.SMTP)
    message["Subject"] = rendered.subject
    message["From"] = from_email
    message["To"] = digest.recipient.email
    message["Date"] = format_datetime(timezone.now())
    message["Message-ID"] = message_id(digest)
    message["List-Unsubscribe"] = f"<{digest.unsubscribe_url}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: out-of-office replies stay away
    message.set_content(rendered.text, subtype="plain", charset="utf-8")
    message.add_alternative(rendered.html, subtype="html", charset="utf-8")
    html_part = message.get_payload()[1]
    for image in rendered.images:
        if image.png is not None:
            # add_related turns the text/html part into multipart/related [html, images...].
            html_part.add_related(
                image.png,
                maintype="image",
                subtype="png",
                cid=f"<{image.chart.cid}>",
                filename=f"{image.chart.cid.split('.')[0]}.png",
                disposition="inline",
            )
    return message


class _Mime:
    """What Django's mail backends call on message(): as_bytes(linesep=...) and as_string()."""

    def __init__(self, mime: MimeMessage):
        self._mime = mime

    def as_bytes(self, unixfrom: bool = False, linesep: str = "\r\n") -> bytes:
        return self._mime.as_bytes(unixfrom=unixfrom, policy=self._mime.policy.clone(linesep=linesep))

    def as_string(self, unixfrom: bool = False, linesep: str = "\n") -> str:
        return self._mime.as_string(unixfrom=unixfrom, policy=self._mime.policy.clone(linesep=linesep))

    def __getitem__(self, name: str):
        return self._mime[name]

    def get_all(self, name: str, failobj=None):
        return self._mime.get_all(name, failobj)


class DigestEmail(EmailMessage):
    """A Django email around a prepared MIME tree (Django builds related parts only as attachments)."""

    def __init__(self, mime: MimeMessage):
        super().__init__(subject=str(mime["Subject"]), from_email=str(mime["From"]), to=[str(mime["To"])])
        self.mime = mime

    def message(self, *args, **kwargs):
        return _Mime(self.mime)
