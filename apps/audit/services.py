"""Write one audit row per change. Other apps call `audit_record` in the same transaction as the change.

    from apps.audit.services import audit_record

    audit_record(
        organisation=limit.organisation,      # an Organisation or its id
        actor=request.user,                   # a user, a label such as "import_people command", or None
        action="limit.updated",               # "<object>.<verb>": created / updated / deleted / ...
        target=limit,                         # the changed model instance (sets object_type and id) ...
        before={"amount": "100.00"},          # JSON-able snapshots (Decimal, dates and UUIDs are fine);
        after={"amount": "150.00"},           #   None for "did not exist" / "no longer exists"
        request=request,                      # optional: request id (X-Request-ID) and client address
    )

`object_type` and `object_id` may be given instead of `target` (for something that is not a model row).
Rows are append-only: nothing in the application updates or deletes them, and the database refuses.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.db import models
from django.http import HttpRequest

from apps.audit.models import AuditEntry
from apps.org.models import Organisation

SYSTEM = "system"


def audit_record(
    *,
    organisation: Organisation | int,
    actor: Any,
    action: str,
    target: models.Model | None = None,
    object_type: str = "",
    object_id: str | int | None = None,
    before: dict | None = None,
    after: dict | None = None,
    request: HttpRequest | None = None,
    request_id: str = "",
) -> AuditEntry:
    """Append one audit row (see the module docstring for the arguments)."""
    if target is not None:
        object_type = object_type or target._meta.label_lower
        object_id = target.pk if object_id is None else object_id
    if not object_type:
        raise ValueError("an audit row needs a target or an object_type")
    user, label = _actor(actor)
    return AuditEntry.objects.create(
        organisation_id=organisation if isinstance(organisation, int) else organisation.pk,
        actor=user,
        actor_label=label[:254],
        action=action[:64],
        object_type=object_type[:64],
        object_id="" if object_id is None else str(object_id)[:64],
        before=before,
        after=after,
        request_id=(request_id or request_id_of(request))[:64],
        ip_address=_client_address(request),
    )


def request_id_of(request: HttpRequest | None) -> str:
    """The request's id: the proxy's X-Request-ID when it sends one, otherwise one made up once per request.

    Stored on the request, so every row one request writes carries the same id.
    """
    if request is None:
        return ""
    cached = getattr(request, "_audit_request_id", None)
    if cached is None:
        given = request.META.get("HTTP_X_REQUEST_ID", "").strip()
        cached = given[:64] if given.isprintable() and given else uuid.uuid4().hex
        request._audit_request_id = cached  # type: ignore[attr-defined]
    return cached


def _actor(actor: Any) -> tuple[Any, str]:
    if actor is None:
        return None, SYSTEM
    if isinstance(actor, str):
        return None, actor or SYSTEM
    if getattr(actor, "is_authenticated", False) and getattr(actor, "pk", None) is not None:
        return actor, actor.get_username() or actor.email or f"user {actor.pk}"
    return None, str(actor)


def _client_address(request: HttpRequest | None) -> str | None:
    # REMOTE_ADDR only: X-Forwarded-For is whatever the client wants it to be unless a proxy rewrites it.
    address = request.META.get("REMOTE_ADDR") if request is not None else None
    return address or None
