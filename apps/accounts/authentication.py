"""DRF authentication for machine keys: `Authorization: Bearer sw_…` (or `X-Api-Key: sw_…`)."""

from __future__ import annotations

from dataclasses import dataclass

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions

from apps.accounts.models import MachineKey
from apps.accounts.services import machine_key_authenticate


@dataclass(frozen=True)
class MachinePrincipal:
    """Stands in for request.user when a machine key authenticated the request."""

    key: MachineKey
    is_authenticated: bool = True
    is_anonymous: bool = False

    @property
    def organisation_id(self) -> int:
        return self.key.organisation_id


class MachineKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        header = request.headers.get("Authorization", "")
        text = header[7:].strip() if header.startswith("Bearer ") else request.headers.get("X-Api-Key", "")
        if not text.startswith("sw_"):
            return None  # not ours: let other authenticators (or none) answer
        key = machine_key_authenticate(text)
        if key is None:
            raise exceptions.AuthenticationFailed("invalid or revoked key")
        return MachinePrincipal(key), key

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="spendwatch"'


def scope_required(scope: str) -> type[permissions.BasePermission]:
    class HasScope(permissions.BasePermission):
        message = f"this key lacks the {scope!r} scope"

        def has_permission(self, request, view) -> bool:
            return isinstance(request.user, MachinePrincipal) and scope in request.user.key.scopes

    HasScope.__name__ = f"Has{scope.title()}Scope"
    return HasScope


class MachineKeyScheme(OpenApiAuthenticationExtension):
    """Describes machine keys in the OpenAPI schema (a bearer token)."""

    target_class = "apps.accounts.authentication.MachineKeyAuthentication"
    name = "machineKey"

    def get_security_definition(self, auto_schema) -> dict:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A SpendWatch machine key: sw_<prefix>_<secret>",
        }
