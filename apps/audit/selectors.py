"""Reads of the audit trail: organisation-wide roles only; everyone else gets 404."""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import Http404

from apps.accounts.scoping import Viewer
from apps.audit.models import AuditEntry


def audit_entries_for(viewer: Viewer, *, object_type: str = "", action: str = "") -> QuerySet[AuditEntry]:
    if not viewer.sees_organisation:
        raise Http404("no such page")
    entries = AuditEntry.objects.filter(organisation_id=viewer.organisation_id)
    if object_type:
        entries = entries.filter(object_type=object_type)
    if action:
        entries = entries.filter(action=action)
    return entries


def audit_filters(viewer: Viewer) -> tuple[list[str], list[str]]:
    """The object types and actions that occur in this organisation's trail (for the filter menus)."""
    entries = audit_entries_for(viewer)
    types = sorted(set(entries.values_list("object_type", flat=True).distinct().order_by()))
    actions = sorted(set(entries.values_list("action", flat=True).distinct().order_by()))
    return types, actions
