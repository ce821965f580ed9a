"""The audit page: who changed what, when, with the before and after of each change."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from apps.accounts.scoping import viewer_for_user
from apps.audit.selectors import audit_entries_for, audit_filters

PAGE_SIZE = 100


def changed_fields(before: dict | None, after: dict | None) -> list[tuple[str, object, object]]:
    """(field, before, after) for each field that differs; a created or deleted object lists all of them."""
    before, after = before or {}, after or {}
    return [
        (key, before.get(key), after.get(key))
        for key in sorted(set(before) | set(after))
        if before.get(key) != after.get(key)
    ]


@login_required
def audit_list(request: HttpRequest) -> HttpResponse:
    viewer = viewer_for_user(request.user)
    object_type = request.GET.get("type", "")
    action = request.GET.get("action", "")
    entries = audit_entries_for(viewer, object_type=object_type, action=action)  # 404 below CIO/FinOps
    page = Paginator(entries, PAGE_SIZE).get_page(request.GET.get("page"))
    for entry in page.object_list:
        entry.changes = changed_fields(entry.before, entry.after)
    types, actions = audit_filters(viewer)
    context = {
        "page": page,
        "types": types,
        "actions": actions,
        "selected_type": object_type,
        "selected_action": action,
    }
    return render(request, "audit/list.html", context)
