"""Every route and API operation, every persona, the exact status (TESTPLAN F1-F6, F8, F9).

The matrix below names each URL pattern of the project and each operation of the OpenAPI schema once, with
the status every one of eight personas gets. A new route without an entry fails the enumeration tests.
Out of scope answers 404, never 403 and never an empty 200, so nobody learns that an object exists.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import orjson
import pytest
from django.db import transaction
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator

from apps.budgets.models import Limit
from apps.metrics.models import MetricValue
from apps.org.models import Rule
from tests.conftest import litellm_record
from tests.security.conftest import EXCERPTS, KEYS, PERSONAS, SIGNED_IN


def walk(patterns, prefix: str = ""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))
        else:
            assert isinstance(pattern, URLPattern)
            yield prefix + str(pattern.pattern)


def enumerated_routes() -> list[str]:
    return list(walk(get_resolver().url_patterns))


def schema_operations() -> list[str]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return [f"{method.upper()} {path}" for path, ops in schema["paths"].items() for method in ops]


@dataclass(frozen=True)
class Call:
    method: str
    path: str  # filled from world.ids with str.format
    statuses: dict[str, int]
    body: bytes | dict | None = None
    content_type: str = "application/x-www-form-urlencoded"


def _statuses(signed_in: dict[str, int], *, others: int = 302, **extra: int) -> dict[str, int]:
    """Pages: anonymous visitors and machine keys (which pages do not accept) go to the login form."""
    statuses = {"anonymous": others, **dict.fromkeys(KEYS, others), **signed_in, **extra}
    assert set(statuses) == set(PERSONAS), statuses
    return statuses


def roles(*, member: int, a1: int, b: int, cio: int, outsider: int) -> dict[str, int]:
    return {"member": member, "manager_a1": a1, "manager_b": b, "cio": cio, "outsider": outsider}


ALL = roles(member=200, a1=200, b=200, cio=200, outsider=200)
NO_MEMBERS = roles(member=404, a1=200, b=200, cio=200, outsider=200)
# Pages about the whole organisation: CIO/FinOps only; another organisation's CIO sees their own.
ORG_WIDE = roles(member=404, a1=404, b=404, cio=200, outsider=200)
# One object of Acme's organisation-wide pages (a run, a rule, an override...): Acme's CIO only.
ACME_ADMIN = roles(member=404, a1=404, b=404, cio=200, outsider=404)
# Team A1 (Platform) and its people: its manager and the CIO; alice herself where it is about her.
TEAM_A1 = roles(member=404, a1=200, b=404, cio=200, outsider=404)
ALICE = roles(member=200, a1=200, b=404, cio=200, outsider=404)
ACME_EVERYONE = roles(member=200, a1=200, b=200, cio=200, outsider=404)


def get(path: str, signed_in: dict[str, int], **extra: int) -> Call:
    return Call("GET", path, _statuses(signed_in, **extra))


def post(path: str, signed_in: dict[str, int], body: dict | None = None, **extra: int) -> Call:
    return Call("POST", path, _statuses(signed_in, **extra), body or {})


TODAY = "{today}"
INGEST_BODY = orjson.dumps(litellm_record("api-1", user="alice@acme.example")) + b"\n"
METRIC_BODY = orjson.dumps({"values": [{"team": "platform", "period": "2026-08-03", "value": 3}]})

# Every URL pattern outside admin/ and accounts/ (those two are matched by prefix rules further down).
MATRIX: dict[str, Call] = {
    # --- dashboards ---------------------------------------------------------------------------------
    "": get("/", ALL),
    "teams/": get("/teams/", NO_MEMBERS),
    "teams/<slug:table>.csv": get("/teams/tree.csv", NO_MEMBERS),
    "teams/<slug:slug>/": get("/teams/platform/", TEAM_A1),
    "teams/<slug:slug>/<slug:table>.csv": get("/teams/platform/people.csv", TEAM_A1),
    "people/<int:person_id>/": get("/people/{alice}/", ALICE),
    "people/<int:person_id>/<slug:table>.csv": get("/people/{alice}/models.csv", ALICE),
    "models/": get("/models/", ALL),
    "models/<slug:table>.csv": get("/models/models.csv", ALL),
    "tasks/": get("/tasks/", ALL),
    "tasks/<slug:table>.csv": get("/tasks/tasks.csv", ALL),
    "tasks/<slug:key>/": get("/tasks/code-review/", ACME_EVERYONE),
    "tasks/<slug:key>/<slug:table>.csv": get("/tasks/code-review/people.csv", ACME_EVERYONE),
    "facts/": get("/facts/", ALL),
    "sources/": get("/sources/", ORG_WIDE),
    "sources/<slug:table>.csv": get("/sources/runs.csv", ORG_WIDE),
    # --- sources: uploads, runs, pulls, reconciliation ----------------------------------------------
    "sources/upload/": get("/sources/upload/", ORG_WIDE),
    "sources/runs/<int:run_id>/": get("/sources/runs/{run}/", ACME_ADMIN),
    "sources/runs/<int:run_id>/rejected.csv": get("/sources/runs/{run}/rejected.csv", ACME_ADMIN),
    "sources/runs/<int:run_id>/rejected.jsonl": get("/sources/runs/{run}/rejected.jsonl", ACME_ADMIN),
    "sources/pulls/": get("/sources/pulls/", ORG_WIDE),
    "sources/pulls/<int:source_id>/": get("/sources/pulls/{pull_source}/", ACME_ADMIN),
    "sources/pulls/<int:source_id>/pull-now/": post("/sources/pulls/{pull_source}/pull-now/", {**ACME_ADMIN, "cio": 302}),
    "sources/reconciliation/": get("/sources/reconciliation/", ORG_WIDE),
    "sources/reconciliation/reconciliation.csv": get("/sources/reconciliation/reconciliation.csv", ORG_WIDE),
    # --- budgets ------------------------------------------------------------------------------------
    "budgets/": get("/budgets/", ALL),
    "budgets/new/": get("/budgets/new/", NO_MEMBERS),
    "budgets/settings/": get("/budgets/settings/", ORG_WIDE),
    # A member sees the limits that name them, not their team's; the manager is in the team they manage,
    # and nobody removes a limit that applies to themself (refused: 403, logged).
    "budgets/<int:limit_id>/": get("/budgets/{limit_a1}/", TEAM_A1),
    # An empty edit is a bad form (400) for those who may edit, and 404 for everyone else.
    "budgets/<int:limit_id>/edit/": post("/budgets/{limit_a1}/edit/", {**TEAM_A1, "manager_a1": 400, "cio": 400}),
    "budgets/<int:limit_id>/deactivate/": post("/budgets/{limit_a1}/deactivate/", {**TEAM_A1, "manager_a1": 403, "cio": 302}),
    # --- savings ------------------------------------------------------------------------------------
    "savings/": get("/savings/", ALL),
    "savings/feedback/<int:observation_id>/not-trivial/": post(
        "/savings/feedback/{obs_alice}/not-trivial/", roles(member=302, a1=302, b=404, cio=302, outsider=404)
    ),
    # --- attribution --------------------------------------------------------------------------------
    "attribution/": get("/attribution/", NO_MEMBERS),
    "attribution/rules/new/": get("/attribution/rules/new/", NO_MEMBERS),
    "attribution/rules/<int:rule_id>/": get("/attribution/rules/{rule}/", TEAM_A1),
    "attribution/rules/<int:rule_id>/delete/": get("/attribution/rules/{rule}/delete/", TEAM_A1),
    "attribution/identities/": get("/attribution/identities/", ORG_WIDE),
    "attribution/identities/new/": get("/attribution/identities/new/", ORG_WIDE),
    "attribution/identities/<int:identity_id>/": get("/attribution/identities/{identity}/", ACME_ADMIN),
    "attribution/identities/<int:identity_id>/delete/": get("/attribution/identities/{identity}/delete/", ACME_ADMIN),
    "attribution/tasks/": get("/attribution/tasks/", ORG_WIDE),
    "attribution/tasks/<int:task_id>/": get("/attribution/tasks/{task}/", ACME_ADMIN),
    "attribution/runs/": get("/attribution/runs/", ORG_WIDE),
    "attribution/runs/now/": post("/attribution/runs/now/", {**ORG_WIDE, "cio": 302, "outsider": 302}),
    "attribution/runs/<int:run_id>/": get("/attribution/runs/{attribution_run}/", ACME_ADMIN),
    "attribution/people/": get("/attribution/people/", ORG_WIDE),
    "attribution/people/<int:import_id>/": get("/attribution/people/{people_import}/", ACME_ADMIN),
    # --- audit, prices, exports, digests ------------------------------------------------------------
    "audit/": get("/audit/", ORG_WIDE),
    "prices/": get("/prices/", ORG_WIDE),
    "prices/overrides/<int:override_id>/": get("/prices/overrides/{override}/", ACME_ADMIN),
    "prices/overrides/<int:override_id>/delete/": post("/prices/overrides/{override}/delete/", {**ACME_ADMIN, "cio": 302}),
    "prices/mappings/<int:mapping_id>/delete/": post("/prices/mappings/{mapping}/delete/", {**ACME_ADMIN, "cio": 302}),
    "prices/unpriced/": get("/prices/unpriced/", ORG_WIDE),
    # An empty form: 400 for Acme's CIO (the queue page with the errors), 404 for everyone else.
    "prices/unpriced/<int:model_id>/map/": post("/prices/unpriced/{unpriced_model}/map/", {**ACME_ADMIN, "cio": 400}),
    "prices/unpriced/<int:model_id>/price/": post("/prices/unpriced/{unpriced_model}/price/", {**ACME_ADMIN, "cio": 400}),
    "exports/spend.csv": get("/exports/spend.csv", ALL),
    "exports/focus.csv": get("/exports/focus.csv", ORG_WIDE),
    "digests/preview/": get("/digests/preview/", ORG_WIDE),
    "digests/preferences/": get("/digests/preferences/", ALL),
    # A link from an email: anyone may follow it; a token that was never issued is no page at all.
    "digests/unsubscribe/<str:token>/": get("/digests/unsubscribe/not-a-token/", dict.fromkeys(SIGNED_IN, 404), others=404),
    # --- metrics ------------------------------------------------------------------------------------
    "metrics/": get("/metrics/", NO_MEMBERS),
    "metrics/new/": get("/metrics/new/", ORG_WIDE),
    "metrics/upload/": get("/metrics/upload/", NO_MEMBERS),
    "metrics/adoption/": get("/metrics/adoption/", ORG_WIDE),
    "metrics/<slug:key>/": get("/metrics/{metric}/", roles(member=404, a1=200, b=200, cio=200, outsider=404)),
    "metrics/<slug:key>/edit/": get("/metrics/{metric}/edit/", ACME_ADMIN),
    # --- API ----------------------------------------------------------------------------------------
    # Machine-key endpoints do not accept a session: 401 with a Bearer challenge for every login.
    "api/v1/ingest/<str:source_format>/": Call(
        "POST", "/api/v1/ingest/litellm_spend_logs/",
        {"anonymous": 401, **dict.fromkeys(SIGNED_IN, 401), "gateway": 403, "ingest": 200},
        INGEST_BODY, "application/x-ndjson",
    ),
    "api/v1/ingest/receipts/<str:receipt_id>/": Call(
        "GET", "/api/v1/ingest/receipts/{receipt}/",
        {"anonymous": 401, **dict.fromkeys(SIGNED_IN, 401), "gateway": 403, "ingest": 200},
    ),
    "api/v1/metrics/<slug:key>/values/": Call(
        "POST", "/api/v1/metrics/{metric}/values/",
        {"anonymous": 401, **dict.fromkeys(SIGNED_IN, 401), "gateway": 403, "ingest": 200},
        METRIC_BODY, "application/json",
    ),
    "api/v1/budgets/check/": Call(
        "GET", "/api/v1/budgets/check/?person=alice@acme.example",
        {"anonymous": 401, **dict.fromkeys(SIGNED_IN, 401), "gateway": 200, "ingest": 403},
    ),
    # Sessions of any member (scoped to them), or a key with the read scope; neither key here holds it.
    "api/v1/spend/": Call(
        "GET", "/api/v1/spend/?group_by=person&start={today}&end={today}",
        {"anonymous": 403, **dict.fromkeys(SIGNED_IN, 200), "gateway": 403, "ingest": 403},
    ),
    "api/schema/": Call("GET", "/api/schema/", {"anonymous": 403, **dict.fromkeys(SIGNED_IN, 200), "gateway": 403, "ingest": 403}),
    "api/docs/": Call("GET", "/api/docs/", {"anonymous": 403, **dict.fromkeys(SIGNED_IN, 200), "gateway": 403, "ingest": 403}),
    "healthz": get("/healthz", ALL, others=200),
}  # fmt: skip

# The operations of /api/schema/, each with the matrix route that exercises it.
OPERATIONS = {
    "POST /api/v1/ingest/{source_format}/": "api/v1/ingest/<str:source_format>/",
    "GET /api/v1/ingest/receipts/{receipt_id}/": "api/v1/ingest/receipts/<str:receipt_id>/",
    "POST /api/v1/metrics/{key}/values/": "api/v1/metrics/<slug:key>/values/",
    "GET /api/v1/budgets/check/": "api/v1/budgets/check/",
    "GET /api/v1/spend/": "api/v1/spend/",
}


# The admin site is for staff, and no persona is staff: every admin route sends them to the admin login,
# which itself refuses a signed-in non-staff user (403) and sends everyone else to the site's login.
ADMIN_LOGIN = _statuses(dict.fromkeys(SIGNED_IN, 403))
ADMIN_OTHER = _statuses(dict.fromkeys(SIGNED_IN, 302))
ADMIN_SPECIAL = {"admin/login/": ADMIN_LOGIN, "admin/logout/": ADMIN_OTHER}


def admin_path(route: str) -> str:
    """A concrete URL of an admin route (object ids 1; app labels and catch-alls an arbitrary word)."""
    route = route.replace("^", "").replace("$", "")
    route = re.sub(r"\(\?P<\w+>[^)]*\)", "anything", route)
    return "/" + re.sub(r"<[^>]+>", "1", route)


def _accounts(signed_out: int, signed_in: int) -> dict[str, int]:
    return _statuses(dict.fromkeys(SIGNED_IN, signed_in), others=signed_out)


# allauth (sign-in, account, MFA and SSO pages): the status for visitors without a session (anonymous and
# machine keys, which pages ignore) and for every signed-in persona. None of them shows organisation data.
ACCOUNTS: dict[str, tuple[str, dict[str, int]]] = {
    "accounts/login/": ("/accounts/login/", _accounts(200, 302)),
    "accounts/logout/": ("/accounts/logout/", _accounts(302, 200)),
    "accounts/inactive/": ("/accounts/inactive/", _accounts(200, 200)),
    "accounts/signup/": ("/accounts/signup/", _accounts(200, 302)),
    "accounts/reauthenticate/": ("/accounts/reauthenticate/", _accounts(302, 200)),
    "accounts/email/": ("/accounts/email/", _accounts(302, 200)),
    "accounts/confirm-email/": ("/accounts/confirm-email/", _accounts(200, 200)),
    "accounts/password/change/": ("/accounts/password/change/", _accounts(302, 200)),
    "accounts/password/set/": ("/accounts/password/set/", _accounts(302, 302)),
    "accounts/password/reset/": ("/accounts/password/reset/", _accounts(200, 200)),
    "accounts/login/code/confirm/": ("/accounts/login/code/confirm/", _accounts(302, 302)),
    "accounts/^confirm-email/(?P<key>[-:\\w]+)/$": ("/accounts/confirm-email/bogus/", _accounts(200, 200)),
    "accounts/password/reset/key/done/": ("/accounts/password/reset/key/done/", _accounts(200, 200)),
    "accounts/^password/reset/key/(?P<uidb36>[0-9A-Za-z]+)-(?P<key>.+)/$": (
        "/accounts/password/reset/key/1-bogus/", _accounts(200, 200)),
    "accounts/password/reset/done/": ("/accounts/password/reset/done/", _accounts(200, 200)),
    "accounts/2fa/": ("/accounts/2fa/", _accounts(302, 200)),
    "accounts/2fa/authenticate/": ("/accounts/2fa/authenticate/", _accounts(302, 302)),
    "accounts/2fa/reauthenticate/": ("/accounts/2fa/reauthenticate/", _accounts(302, 200)),
    "accounts/2fa/totp/activate/": ("/accounts/2fa/totp/activate/", _accounts(302, 302)),
    "accounts/2fa/totp/deactivate/": ("/accounts/2fa/totp/deactivate/", _accounts(302, 302)),
    "accounts/2fa/recovery-codes/": ("/accounts/2fa/recovery-codes/", _accounts(302, 404)),
    "accounts/2fa/recovery-codes/generate/": ("/accounts/2fa/recovery-codes/generate/", _accounts(302, 302)),
    "accounts/2fa/recovery-codes/download/": ("/accounts/2fa/recovery-codes/download/", _accounts(302, 404)),
    "accounts/3rdparty/login/cancelled/": ("/accounts/3rdparty/login/cancelled/", _accounts(200, 200)),
    "accounts/3rdparty/login/error/": ("/accounts/3rdparty/login/error/", _accounts(401, 401)),
    "accounts/3rdparty/signup/": ("/accounts/3rdparty/signup/", _accounts(302, 302)),
    "accounts/3rdparty/": ("/accounts/3rdparty/", _accounts(302, 200)),
    "accounts/social/login/cancelled/": ("/accounts/social/login/cancelled/", _accounts(301, 301)),
    "accounts/social/login/error/": ("/accounts/social/login/error/", _accounts(301, 301)),
    "accounts/social/signup/": ("/accounts/social/signup/", _accounts(301, 301)),
    "accounts/social/connections/": ("/accounts/social/connections/", _accounts(301, 301)),
    # SSO endpoints of an organisation with no identity provider configured: nothing there.
    "accounts/^saml/(?P<organization_slug>[^/]+)/acs/": ("/accounts/saml/acme/acs/", _accounts(302, 302)),
    "accounts/^saml/(?P<organization_slug>[^/]+)/acs/finish/": ("/accounts/saml/acme/acs/finish/", _accounts(404, 404)),
    "accounts/^saml/(?P<organization_slug>[^/]+)/sls/": ("/accounts/saml/acme/sls/", _accounts(404, 404)),
    "accounts/^saml/(?P<organization_slug>[^/]+)/metadata/": ("/accounts/saml/acme/metadata/", _accounts(404, 404)),
    "accounts/^saml/(?P<organization_slug>[^/]+)/login/": ("/accounts/saml/acme/login/", _accounts(404, 404)),
    "accounts/oidc/^(?P<provider_id>[^/]+)/login/": ("/accounts/oidc/acme/login/", _accounts(404, 404)),
    "accounts/oidc/^(?P<provider_id>[^/]+)/login/callback/": ("/accounts/oidc/acme/login/callback/", _accounts(404, 404)),
    "accounts/sessions/": ("/accounts/sessions/", _accounts(302, 200)),
}  # fmt: skip


def _request(world, persona: str, call: Call):
    client = world.clients[persona]
    path = call.path.format(**world.ids, today=timezone.now().date().isoformat())
    if call.method == "GET":
        return client.get(path)
    return client.generic(call.method, path, _encode(call), content_type=call.content_type)


def _encode(call: Call) -> bytes:
    if isinstance(call.body, bytes):
        return call.body
    from urllib.parse import urlencode

    return urlencode(call.body or {}).encode()


class _Rollback(Exception):
    pass


def _status_rolled_back(world, persona: str, call: Call) -> int:
    """The status of one request whose writes are all undone, so the next persona meets the same world."""
    status = None
    try:
        with transaction.atomic():
            status = _request(world, persona, call).status_code
            raise _Rollback
    except _Rollback:
        pass
    return status


# --- F1: enumeration -----------------------------------------------------------------------------------


def test_every_route_has_a_matrix_entry():
    routes = enumerated_routes()
    assert len(routes) == len(set(routes)), "a route pattern appears twice"
    own = [route for route in routes if not route.startswith(("admin/", "accounts/"))]
    missing = sorted(set(own) - set(MATRIX))
    gone = sorted(set(MATRIX) - set(own))
    assert not missing, f"routes without a matrix entry: {missing}"
    assert not gone, f"matrix entries for routes that no longer exist: {gone}"
    for route, call in MATRIX.items():
        assert set(call.statuses) == set(PERSONAS), route
    assert len(own) == len(MATRIX) == 75
    accounts = [route for route in routes if route.startswith("accounts/")]
    assert sorted(accounts) == sorted(ACCOUNTS)
    admin = [route for route in routes if route.startswith("admin/")]
    assert set(ADMIN_SPECIAL) <= set(admin)
    # Every route is covered: the project's own, allauth's, and the admin site's (by its rule).
    assert len(routes) == len(MATRIX) + len(ACCOUNTS) + len(admin)


def test_every_api_operation_has_a_matrix_entry():
    operations = schema_operations()
    assert sorted(operations) == sorted(OPERATIONS)
    for operation, route in OPERATIONS.items():
        method = operation.split()[0]
        assert MATRIX[route].method == method, operation
    assert len(operations) == 5


@pytest.mark.django_db
def test_each_persona_gets_the_matrix_status_on_every_route(world):
    wrong = []
    for route, call in MATRIX.items():
        for persona in PERSONAS:
            status = _status_rolled_back(world, persona, call)
            if status != call.statuses[persona]:
                wrong.append(
                    f"{persona:10} {call.method} {route}: {status}, expected {call.statuses[persona]}"
                )
    assert not wrong, "\n".join(wrong)


@pytest.mark.django_db
def test_account_and_admin_routes_answer_each_persona_as_their_rules_say(world):
    wrong = []
    admin = [route for route in enumerated_routes() if route.startswith("admin/")]
    calls = [(route, path, statuses) for route, (path, statuses) in ACCOUNTS.items()]
    calls += [(route, admin_path(route), ADMIN_SPECIAL.get(route, ADMIN_OTHER)) for route in admin]
    for route, path, statuses in calls:
        for persona in PERSONAS:
            response = world.clients[persona].get(path)
            if response.status_code != statuses[persona]:
                wrong.append(f"{persona:10} {route}: {response.status_code}, expected {statuses[persona]}")
            elif route.startswith("admin/") and route not in ADMIN_SPECIAL:
                assert response["Location"].startswith("/admin/login/"), (persona, route)
    assert not wrong, "\n".join(wrong)


# --- F2-F5: other teams' and other organisations' objects answer 404 ----------------------------------

EDIT = {"amount": "999.00", "thresholds": "50, 100"}
# What each persona must not reach, by URL and by object id: every one answers exactly 404.
NOT_THEIRS: dict[str, list[tuple[str, str, dict | None]]] = {
    # Manager of Platform: nothing of Payments (a sibling), nor of Engineering above, nor of Sales.
    "manager_a1": [
        ("GET", "/teams/payments/", None), ("GET", "/teams/payments/trend.csv", None),
        ("GET", "/teams/engineering/", None), ("GET", "/teams/sales/people.csv", None),
        ("GET", "/people/{bob}/", None), ("GET", "/people/{bob}/trend.csv", None), ("GET", "/people/{carol}/", None),
        ("GET", "/budgets/{limit_b}/", None), ("POST", "/budgets/{limit_b}/edit/", EDIT),
        ("POST", "/budgets/{limit_b}/deactivate/", {}), ("POST", "/savings/feedback/{obs_bob}/not-trivial/", {}),
        ("GET", "/metrics/{metric}/?subject=payments", None), ("GET", "/facts/?team=payments", None),
        ("GET", "/facts/?person={bob}", None), ("GET", "/sources/runs/{run}/", None),
        ("GET", "/digests/preview/?recipient=erin@acme.example", None), ("GET", "/attribution/tasks/{task}/", None),
    ],
    "manager_b": [
        ("GET", "/teams/platform/", None), ("GET", "/people/{alice}/", None), ("GET", "/people/{dave}/models.csv", None),
        ("GET", "/budgets/{limit_a1}/", None), ("GET", "/budgets/{limit_dave}/", None),
        ("POST", "/budgets/{limit_dave}/edit/", EDIT), ("POST", "/savings/feedback/{obs_alice}/not-trivial/", {}),
        ("GET", "/attribution/rules/{rule}/", None), ("GET", "/attribution/rules/{rule}/delete/", None),
        ("GET", "/facts/?person={alice}", None), ("GET", "/metrics/{metric}/?subject=platform", None),
    ],
    # An employee: their own usage only.
    "member": [
        ("GET", "/people/{bob}/", None), ("GET", "/people/{dave}/", None), ("GET", "/people/{dave}/tasks.csv", None),
        ("GET", "/teams/platform/", None), ("GET", "/teams/tree.csv", None), ("GET", "/budgets/{limit_b}/", None),
        ("GET", "/budgets/{limit_dave}/", None), ("POST", "/savings/feedback/{obs_bob}/not-trivial/", {}),
        ("GET", "/facts/?person={bob}", None), ("GET", "/facts/?team=payments", None),
        ("GET", "/metrics/{metric}/", None), ("GET", "/attribution/", None),
    ],
    # Another organisation's CIO: nothing of Acme, whichever id or slug they try.
    "outsider": [
        ("GET", "/teams/platform/", None), ("GET", "/teams/engineering/tree.csv", None), ("GET", "/people/{alice}/", None),
        ("GET", "/tasks/code-review/", None), ("GET", "/budgets/{limit_a1}/", None), ("POST", "/budgets/{limit_a1}/edit/", EDIT),
        ("POST", "/budgets/{limit_b}/deactivate/", {}), ("GET", "/sources/runs/{run}/rejected.csv", None),
        ("GET", "/sources/pulls/{pull_source}/", None), ("POST", "/sources/pulls/{pull_source}/pull-now/", {}),
        ("GET", "/attribution/rules/{rule}/", None), ("GET", "/attribution/identities/{identity}/", None),
        ("GET", "/attribution/tasks/{task}/", None), ("GET", "/attribution/runs/{attribution_run}/", None),
        ("GET", "/attribution/people/{people_import}/", None), ("GET", "/prices/overrides/{override}/", None),
        ("POST", "/prices/overrides/{override}/delete/", {}), ("POST", "/prices/mappings/{mapping}/delete/", {}),
        ("POST", "/prices/unpriced/{unpriced_model}/price/", {"input_mtok": "1", "output_mtok": "1"}),
        ("GET", "/metrics/{metric}/", None), ("GET", "/metrics/{metric}/edit/", None),
        ("POST", "/savings/feedback/{obs_alice}/not-trivial/", {}), ("GET", "/digests/preview/?recipient=cio@acme.example", None),
        ("GET", "/facts/?person={alice}", None), ("GET", "/facts/?team=platform", None),
    ],
    # Acme's ingest key: no receipt of a body Globex pushed.
    "ingest": [("GET", "/api/v1/ingest/receipts/{globex_receipt}/", None)],
    # And the other way round: Acme's CIO sees nothing of Globex.
    "cio": [
        ("GET", "/teams/ops/", None), ("GET", "/people/{zed}/", None), ("GET", "/tasks/triage/", None),
        ("GET", "/budgets/{limit_globex}/", None), ("GET", "/sources/runs/{globex_run}/", None),
        ("GET", "/sources/pulls/{globex_pull_source}/", None), ("GET", "/attribution/rules/{globex_rule}/", None),
        ("GET", "/attribution/identities/{globex_identity}/", None), ("GET", "/attribution/runs/{globex_attribution_run}/", None),
        ("GET", "/attribution/people/{globex_people_import}/", None), ("GET", "/prices/overrides/{globex_override}/", None),
        ("POST", "/prices/mappings/{globex_mapping}/delete/", {}), ("GET", "/metrics/tickets-closed/", None),
        ("POST", "/savings/feedback/{obs_zed}/not-trivial/", {}), ("GET", "/digests/preview/?recipient=cio@globex.example", None),
    ],
}  # fmt: skip


@pytest.mark.django_db
def test_objects_of_other_teams_and_organisations_answer_404(world):
    reached = []
    for persona, probes in NOT_THEIRS.items():
        for method, path, body in probes:
            call = Call(method, path, {}, body)
            status = _status_rolled_back(world, persona, call)
            if status != 404:
                reached.append(f"{persona} {method} {path}: {status}")
    assert not reached, "\n".join(reached)


# Detail routes by numeric id, for guessing: the world id of the outsider's own object of that kind.
GUESSED = {
    "/people/{}/": "zed",
    "/budgets/{}/": "limit_globex",
    "/sources/runs/{}/": "globex_run",
    "/sources/pulls/{}/": "globex_pull_source",
    "/attribution/rules/{}/": "globex_rule",
    "/attribution/identities/{}/": "globex_identity",
    "/attribution/runs/{}/": "globex_attribution_run",
    "/attribution/people/{}/": "globex_people_import",
    "/prices/overrides/{}/": "globex_override",
}


@pytest.mark.django_db
def test_guessing_numeric_ids_finds_only_the_guessers_own_objects(world):
    client = world.clients["outsider"]
    opened = {}
    for template, own in GUESSED.items():
        # Every id just below and above their own: where Acme's objects of the kind were numbered.
        for guess in range(max(1, world.ids[own] - 8), world.ids[own] + 4):
            status = client.get(template.format(guess)).status_code
            assert status in (200, 404), (template, guess, status)
            if status == 200:
                opened.setdefault(template, []).append(guess)
    assert opened == {template: [world.ids[own]] for template, own in GUESSED.items()}


def _spend_keys(world, persona: str, group_by: str) -> set:
    today = timezone.now().date().isoformat()
    response = world.clients[persona].get(f"/api/v1/spend/?group_by={group_by}&start={today}&end={today}")
    assert response.status_code == 200
    return {group["key"] for group in response.json()["groups"]}


@pytest.mark.django_db
def test_lists_and_totals_hold_no_row_of_what_the_viewer_may_not_see(world):
    emails = {name: person.email for name, person in world.people.items()}
    # F2/F3: the manager of Platform sees Platform's people only; F4: a member sees themself only.
    assert _spend_keys(world, "manager_a1", "person") == {emails["alice"], emails["dave"]}
    assert _spend_keys(world, "manager_b", "person") == {emails["bob"]}
    assert _spend_keys(world, "member", "person") == {emails["alice"]}
    assert _spend_keys(world, "outsider", "person") == {emails["zed"]}
    assert _spend_keys(world, "cio", "team") == {"platform", "payments", "emea"}
    assert _spend_keys(world, "manager_a1", "team") == {"platform"}
    budgets = world.clients["manager_a1"].get("/budgets/").content.decode()
    assert f"/budgets/{world.ids['limit_a1']}/" in budgets
    assert f"/budgets/{world.ids['limit_b']}/" not in budgets
    assert f"/budgets/{world.ids['limit_globex']}/" not in budgets


@pytest.mark.django_db
def test_nobody_is_shown_the_prompt_excerpts_of_people_outside_their_scope(world):
    """F4: no excerpt of others' prompts, on the savings page or anywhere a persona may look."""
    allowed = {"member": {"alice"}, "manager_a1": {"alice"}, "manager_b": {"bob"}, "cio": {"alice", "bob"},
               "outsider": {"zed"}}  # fmt: skip
    for persona, names in allowed.items():
        client = world.clients[persona]
        pages = "".join(client.get(path).content.decode() for path in ("/savings/", "/facts/", "/"))
        shown = {name for name, text in EXCERPTS.items() if text in pages}
        assert shown <= names, persona


# --- F6: foreign ids in request bodies ---------------------------------------------------------------


def _counts() -> dict[str, int]:
    from apps.metrics.models import Adoption
    from apps.org.models import Identity

    return {model.__name__: model.objects.count() for model in (Limit, Rule, Identity, MetricValue, Adoption)}


@pytest.mark.django_db
def test_foreign_ids_in_request_bodies_write_nothing(world):
    teams, people = world.teams, world.people
    limit = {"scope_kind": "team", "unit": "usd", "amount": "10", "period": "month", "thresholds": "50, 100"}
    rule = {"order": "1", "field": "user", "pattern": "^x$", "is_active": "on", "action": "save"}
    from apps.ingestion.models import DataSource

    globex_source = DataSource.objects.exclude(name="push").get(organisation=world.globex)
    attempts = [
        ("manager_a1", "/budgets/new/", {**limit, "team": teams["payments"].pk}),
        ("manager_a1", "/budgets/new/", {**limit, "scope_kind": "person", "person": people["bob"].pk}),
        ("cio", "/budgets/new/", {**limit, "team": teams["ops"].pk}),
        ("cio", "/budgets/new/", {**limit, "scope_kind": "person", "person": people["zed"].pk}),
        ("manager_a1", "/attribution/rules/new/", {**rule, "team": teams["payments"].pk}),
        ("manager_a1", "/attribution/rules/new/", {**rule, "person": people["bob"].pk}),
        ("cio", "/attribution/rules/new/", {**rule, "team": teams["ops"].pk}),
        ("cio", "/attribution/rules/new/", {**rule, "team": teams["platform"].pk, "source": globex_source.pk}),
        ("cio", "/attribution/identities/new/", {"kind": "user", "value": "x@y", "person": people["zed"].pk, "action": "save"}),
        ("outsider", "/metrics/adoption/", {"team": teams["platform"].pk, "adopted_on": "2026-01-05"}),
    ]  # fmt: skip
    before = _counts()
    for persona, path, body in attempts:
        status = world.clients[persona].post(path, body).status_code
        assert status in (400, 404), (persona, path, body, status)
    ingest = world.clients["ingest"]
    # A team slug of another organisation is an unknown team; another organisation's metric is no metric.
    body = orjson.dumps({"values": [{"team": "ops", "period": "2026-08-03", "value": 3}]})
    response = ingest.post("/api/v1/metrics/prs-merged/values/", body, content_type="application/json")
    assert (response.status_code, response.json()["rejected"]) == (200, 1)
    response = ingest.post(
        "/api/v1/metrics/tickets-closed/values/", METRIC_BODY, content_type="application/json"
    )
    assert response.status_code == 404
    assert _counts() == before


# --- F7: limits a manager may not change -------------------------------------------------------------


@pytest.mark.django_db
def test_a_manager_cannot_change_another_teams_limit_nor_raise_their_own(world):
    from apps.budgets.models import AuditAction, BudgetAudit

    def amounts() -> dict[int, int]:
        return dict(Limit.objects.values_list("pk", "amount"))

    before, refused = amounts(), BudgetAudit.objects.filter(action=AuditAction.REFUSED).count()
    client = world.clients["manager_a1"]
    # Payments' limit: not theirs, so no such page; Dave's own limit ($5): he may not raise it.
    assert client.post(f"/budgets/{world.ids['limit_b']}/edit/", EDIT).status_code == 404
    assert client.post(f"/budgets/{world.ids['limit_dave']}/edit/", EDIT).status_code == 403
    assert client.post(f"/budgets/{world.ids['limit_dave']}/deactivate/").status_code == 403
    assert amounts() == before
    assert Limit.objects.filter(is_active=False).count() == 0
    attempts = BudgetAudit.objects.filter(action=AuditAction.REFUSED).order_by("pk")[refused:]
    assert [(a.actor_label, a.limit_id) for a in attempts] == [
        ("dave@acme.example", None),
        ("dave@acme.example", world.ids["limit_dave"]),
        ("dave@acme.example", world.ids["limit_dave"]),
    ]
    assert "outside the actor's scope" in attempts[0].reason


# --- F8: machine keys ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_key_reaches_only_the_api_its_scope_names(world):
    from apps.accounts.models import KeyScope
    from apps.accounts.services import machine_key_create

    read = machine_key_create(organisation=world.acme, name="bi", scopes=[KeyScope.READ])[1]
    check = "/api/v1/budgets/check/?person=alice@acme.example"
    for text, path, expected in [
        (world.keys["ingest"], check, 403),
        (read, check, 403),
        (world.keys["gateway"], "/api/v1/spend/?group_by=team&start=2026-08-01&end=2026-08-31", 403),
        (world.keys["gateway"], "/api/v1/metrics/prs-merged/values/", 403),
    ]:
        client = world.clients["anonymous"]
        method = client.post if "values" in path else client.get
        assert method(path, HTTP_AUTHORIZATION=f"Bearer {text}").status_code == expected, (text[:8], path)
    # The admin site does not know machine keys: the key holder is an anonymous visitor there.
    response = world.clients["ingest"].get("/admin/budgets/limit/")
    assert (response.status_code, response["Location"][:13]) == (302, "/admin/login/")


@pytest.mark.django_db
def test_key_creation_grants_no_scope_its_creator_does_not_hold(world):
    from apps.accounts.models import KeyScope, MachineKey
    from apps.accounts.services import KeyScopeRefused, machine_key_create
    from apps.audit.models import AuditEntry

    keys = MachineKey.objects.count()
    for persona, organisation, scopes in [
        ("manager_a1", world.acme, [KeyScope.GATEWAY]),
        ("manager_a1", world.acme, [KeyScope.READ]),
        ("member", world.acme, [KeyScope.INGEST]),
        ("outsider", world.acme, [KeyScope.GATEWAY]),  # a CIO, of another organisation
    ]:
        with pytest.raises(KeyScopeRefused):
            machine_key_create(
                organisation=organisation, name="k", scopes=scopes, created_by=world.users[persona]
            )
    assert MachineKey.objects.count() == keys
    assert AuditEntry.objects.filter(action="machine_key.refused").count() == 4
    key, _ = machine_key_create(
        organisation=world.acme, name="gw2", scopes=[KeyScope.GATEWAY], created_by=world.users["cio"]
    )
    assert key.scopes == [KeyScope.GATEWAY]


# --- F9: a gateway key asks about another organisation ----------------------------------------------


@pytest.mark.django_db
def test_a_gateway_key_knows_nothing_of_another_organisations_people_and_teams(world):
    def check(key: str, query: str) -> dict:
        response = world.clients["anonymous"].get(
            f"/api/v1/budgets/check/?{query}", HTTP_AUTHORIZATION=f"Bearer {key}"
        )
        assert response.status_code == 200
        return response.json()

    unknown = {"allowed": True, "scope": None, "limit_usd": None, "spent_usd": None, "remaining_usd": None}
    globex_key, acme_key = world.keys["globex_gateway"], world.keys["gateway"]
    assert check(globex_key, "person=alice@acme.example") == {**unknown, "unknown": ["person"]}
    assert check(globex_key, "team=platform") == {**unknown, "unknown": ["team"]}
    assert check(globex_key, f"person={world.people['dave'].pk}") == {**unknown, "unknown": ["person"]}
    assert check(acme_key, "person=zed@globex.example&team=ops") == {**unknown, "unknown": ["person", "team"]}
    # Their own people and teams are answered, with their own limits.
    assert check(globex_key, "person=zed@globex.example")["limit_usd"] == "300.000000000"
    assert check(acme_key, "team=platform")["limit_usd"] == "100.000000000"
