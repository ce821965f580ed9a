"""Digest pages. Thin: resolve the viewer or the token, call selectors and services, render."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from apps.accounts.models import Membership
from apps.accounts.scoping import viewer_for_user
from apps.digests import selectors, services
from apps.digests.emails import render_digest
from apps.digests.tokens import user_id_from_token
from apps.digests.weeks import IsoWeek, last_complete_week
from apps.org.models import Organisation


@login_required
def preview(request: HttpRequest) -> HttpResponse:
    """/digests/preview/?recipient=<user id or email>&week=YYYY-Www: the email as that person gets it.

    For CIO and FinOps only (404 for anyone else): they may see every digest of their organisation.
    """
    viewer = viewer_for_user(request.user)
    if not viewer.sees_organisation:
        raise Http404("no such page")
    organisation = Organisation.objects.get(pk=viewer.organisation_id)
    members = list(
        Membership.objects.filter(organisation=organisation, user__is_active=True)
        .exclude(user__email="")
        .select_related("user")
        .order_by("user__email")
    )
    wanted = request.GET.get("recipient", "").strip()
    chosen = next((m for m in members if wanted in (str(m.user_id), m.user.email)), None) if wanted else None
    if wanted and chosen is None:
        raise Http404("no such recipient")
    error = ""
    week = last_complete_week(organisation.time_zone, timezone.now())
    if request.GET.get("week"):
        try:
            week = IsoWeek.parse(request.GET["week"])
        except ValueError as invalid:
            error = str(invalid)
    context = {"members": members, "chosen": chosen, "week": week, "error": error, "rendered": None}
    if chosen is not None and not error:
        recipient = selectors.recipient_get(organisation.pk, user_id=chosen.user_id)
        if recipient is None:
            context["notice"] = f"{chosen.user.email} gets no digest (a manager of no team, or no person)."
        else:
            digest = selectors.build_digest(recipient, selectors.OrganisationWeek(organisation, week))
            with_charts = request.GET.get("charts", "1") != "0"
            with services.chart_renderer() as renderer:
                context["rendered"] = render_digest(digest, renderer if with_charts else None, inline=True)
            context["subscribed"] = recipient.subscribed
    return render(request, "digests/preview.html", context, status=400 if error else 200)


@login_required
@require_http_methods(["GET", "POST"])
def preferences(request: HttpRequest) -> HttpResponse:
    """A user's own choice: on or off (members opt in here)."""
    viewer_for_user(request.user)  # 404 for a user of no organisation
    saved = False
    if request.method == "POST":
        services.preference_set(
            user=request.user, subscribed=request.POST.get("subscribed") == "on", via="preferences page"
        )
        saved = True
    context = {"subscribed": selectors.preference_of(request.user), "saved": saved}
    return render(request, "digests/preferences.html", context)


@csrf_exempt  # the token is the credential; RFC 8058 mail clients POST without cookies or a CSRF token
@require_http_methods(["GET", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    """GET asks to confirm (link checkers and prefetchers must not unsubscribe anyone); POST - the
    button on that page, or a mail client's one-click "List-Unsubscribe=One-Click" - turns digests off."""
    if user_id_from_token(token) is None:
        raise Http404("no such link")
    if request.method == "POST":
        if services.unsubscribe_with_token(token=token) is None:
            raise Http404("no such link")
        return render(request, "digests/unsubscribe.html", {"done": True})
    return render(request, "digests/unsubscribe.html", {"done": False, "token": token})
