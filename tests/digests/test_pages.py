"""Unsubscribe without logging in, preferences, and the preview page for admins."""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.digests import services
from apps.digests.models import DigestPreference
from apps.digests.tokens import unsubscribe_token
from tests.digests.conftest import EXPECTED_RECIPIENTS, WEEK

pytestmark = pytest.mark.django_db


def test_one_click_unsubscribe_needs_no_login_and_stops_the_next_digest(
    acme, readers, weeks_of_usage, smtp_server, client
):
    services.send_digests(organisation=acme, week=WEEK)
    message = smtp_server.to("finops@acme.example")[0]
    link = message["List-Unsubscribe"].strip("<>")
    path = link.removeprefix("https://spendwatch.acme.example")

    # A link checker or a prefetch (GET) changes nothing ...
    page = client.get(path)
    assert page.status_code == 200
    assert b"Stop the weekly SpendWatch digest" in page.content
    assert not DigestPreference.objects.filter(user=readers["finops"]).exists()
    # ... the mail client's RFC 8058 one-click POST, without cookies or CSRF token, unsubscribes.
    answer = client.post(path, "List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded")
    assert answer.status_code == 200
    assert b"You are unsubscribed" in answer.content
    assert DigestPreference.objects.get(user=readers["finops"]).subscribed is False

    summary = services.send_digests(organisation=acme, week=WEEK.shifted(1))
    assert summary.sent == 5
    week_33 = [tos[0] for tos, content in smtp_server.messages[6:]]
    assert sorted(week_33) == [email for email in EXPECTED_RECIPIENTS if email != "finops@acme.example"]


def test_a_forged_or_altered_unsubscribe_token_is_refused(readers, client):
    token = unsubscribe_token(readers["cio"].pk)
    for bad in (token[:-2] + "xx", unsubscribe_token(readers["cio"].pk).replace("eyJ", "eyK"), "nonsense"):
        assert client.post(reverse("digests:unsubscribe", args=[bad])).status_code == 404
    assert not DigestPreference.objects.filter(user=readers["cio"]).exists()


def test_a_member_opts_in_on_their_preferences_page(acme, readers, weeks_of_usage, smtp_server, client):
    client.force_login(readers["bob"])
    assert b"checked" not in client.get(reverse("digests:preferences")).content  # members start opted out
    saved = client.post(reverse("digests:preferences"), {"subscribed": "on"})
    assert b"Saved: you get the weekly digest." in saved.content
    assert b"checked" in client.get(reverse("digests:preferences")).content
    assert DigestPreference.objects.get(user=readers["bob"]).subscribed is True

    services.send_digests(organisation=acme, week=WEEK)
    assert "bob@acme.example" in smtp_server.recipients


def preview(client, user, **params):
    client.force_login(user)
    return client.get(reverse("digests:preview"), {"week": "2026-W32", "charts": "0", **params})


def test_admins_preview_anyones_digest(readers, weeks_of_usage, client):
    page = preview(client, readers["finops"], recipient=readers["platform_lead"].pk)
    assert page.status_code == 200
    content = page.content.decode()
    assert "SpendWatch · your teams: $0.80 in 3–9 Aug 2026 (last week $0.40)" in content
    assert "Platform" in content and "srcdoc=" in content

    by_email = preview(client, readers["cio"], recipient="alice@acme.example")
    assert "your AI usage in 3–9 Aug 2026: $0.80" in by_email.content.decode()


@pytest.mark.parametrize("who", ["platform_lead", "alice", "globex_cio"])
def test_the_preview_is_for_admins_of_the_recipients_organisation_only(readers, who, client):
    assert preview(client, readers[who], recipient=readers["cio"].pk).status_code == 404


def test_the_preview_refuses_a_bad_week_and_an_unknown_recipient(readers, client):
    assert preview(client, readers["cio"], recipient=readers["cio"].pk, week="2026-W99").status_code == 400
    assert preview(client, readers["cio"], recipient="cio@globex.example").status_code == 404
    client.logout()
    assert client.get(reverse("digests:preview")).status_code == 302  # to the login page


def test_every_link_in_a_digest_opens_for_its_recipient(
    acme, readers, weeks_of_usage, budgets, prompts, smtp_server, client
):
    import re

    from tests.digests.conftest import html_part

    services.send_digests(organisation=acme, week=WEEK)
    users = {user.email: user for user in readers.values()}
    checked = 0
    for message in smtp_server.parsed():
        client.force_login(users[message["To"]])
        links = set(re.findall(r'href="https://spendwatch\.acme\.example([^"]*)"', html_part(message)))
        assert links, message["To"]
        for path in sorted(links):
            assert client.get(path).status_code == 200, f"{message['To']}: {path}"
            checked += 1
    assert checked == 60  # distinct links per digest, over the six digests
