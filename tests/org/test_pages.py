"""The attribution pages: who may open what (out of scope answers 404), and the preview-then-save flow."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.org.models import AttributionRun, Identity, PeopleImport, Rule, Task
from tests.org.conftest import BIG, ONE, owner_of

ORGANISATION_WIDE_PAGES = [
    "/attribution/identities/",
    "/attribution/identities/new/",
    "/attribution/tasks/",
    "/attribution/runs/",
    "/attribution/people/",
    "/audit/",
]


@pytest.fixture
def objects(acme, teams, people):
    """One of each object a page shows, for the detail URLs."""
    task = Task.objects.create(organisation=acme, key="triage", name="Triage")
    return {
        "payments_rule": Rule.objects.create(
            organisation=acme, field="user", pattern="^bob", team=teams["payments"]
        ),
        "platform_rule": Rule.objects.create(
            organisation=acme, field="user", pattern="^al", team=teams["platform"]
        ),
        "identity": Identity.objects.create(
            organisation=acme, kind="project", value="p1", team=teams["emea"]
        ),
        "task": task,
        "run": AttributionRun.objects.create(organisation=acme, requested_by_label="x", reason="x"),
        "import": PeopleImport.objects.create(
            organisation=acme, file_name="hr.csv", content="email,name,team\n", uploaded_by_label="x"
        ),
    }


def detail_pages(objects) -> list[str]:
    return [
        f"/attribution/rules/{objects['payments_rule'].pk}/",
        f"/attribution/rules/{objects['payments_rule'].pk}/delete/",
        f"/attribution/identities/{objects['identity'].pk}/",
        f"/attribution/identities/{objects['identity'].pk}/delete/",
        f"/attribution/tasks/{objects['task'].pk}/",
        f"/attribution/runs/{objects['run'].pk}/",
        f"/attribution/people/{objects['import'].pk}/",
    ]


@pytest.mark.parametrize("persona", ["cio", "finops"])
def test_cio_and_finops_open_every_page(as_persona, objects, persona):
    client = as_persona(persona)
    for path in [
        "/attribution/",
        "/attribution/rules/new/",
        *ORGANISATION_WIDE_PAGES,
        *detail_pages(objects),
    ]:
        assert client.get(path).status_code == 200, path
    assert "Attribution" in client.get("/").content.decode()


def test_a_member_gets_404_everywhere_and_no_menu_entry(as_persona, objects):
    client = as_persona("alice")
    for path in [
        "/attribution/",
        "/attribution/rules/new/",
        *ORGANISATION_WIDE_PAGES,
        *detail_pages(objects),
    ]:
        assert client.get(path).status_code == 404, path
    assert client.post("/attribution/runs/now/").status_code == 404
    assert ">Attribution<" not in client.get("/").content.decode()


def test_a_manager_sees_only_the_rules_of_their_teams(as_persona, objects):
    client = as_persona("platform_manager")
    response = client.get("/attribution/")
    assert response.status_code == 200
    assert [rule.pk for rule in response.context["rules"]] == [objects["platform_rule"].pk]
    assert client.get(f"/attribution/rules/{objects['platform_rule'].pk}/").status_code == 200
    for path in [*ORGANISATION_WIDE_PAGES, *detail_pages(objects)]:
        assert client.get(path).status_code == 404, path
    # Posting to another team's rule changes nothing.
    rule = objects["payments_rule"]
    response = client.post(
        f"/attribution/rules/{rule.pk}/", {"field": "user", "pattern": "x", "order": 1, "action": "save"}
    )
    assert response.status_code == 404
    assert client.post(f"/attribution/rules/{rule.pk}/delete/").status_code == 404
    assert Rule.objects.get(pk=rule.pk).pattern == "^bob"


def test_another_organisations_cio_gets_404_on_our_objects(as_persona, objects):
    client = as_persona("outsider")
    for path in detail_pages(objects):
        assert client.get(path).status_code == 404, path
    assert client.get("/attribution/").context["rules"].count() == 0


def form(team, **extra) -> dict:
    return {
        "order": 10,
        "field": "api_key_alias",
        "pattern": "^billing-",
        "team": team.pk,
        "is_active": "on",
        **extra,
    }


def test_a_manager_previews_then_saves_a_rule_for_their_team(as_persona, teams, usage, jobs_run_inline):
    client = as_persona("eng_manager")
    preview = client.post("/attribution/rules/new/", {**form(teams["payments"]), "action": "preview"})
    assert preview.status_code == 200
    plan = preview.context["plan"]
    assert (plan.rows_moved, plan.nanos_moved) == (4, 2 * ONE + BIG)
    assert 'data-testid="preview-nanos">3100000<' in preview.content.decode()
    # Saving without the preview's fingerprint only shows the preview again.
    assert (
        client.post("/attribution/rules/new/", {**form(teams["payments"]), "action": "save"}).status_code
        == 200
    )
    assert not Rule.objects.exists()

    with jobs_run_inline():
        saved = client.post(
            "/attribution/rules/new/",
            {**form(teams["payments"]), "action": "save", "fingerprint": plan.fingerprint},
        )
    assert saved.status_code == 302
    run = AttributionRun.objects.get()
    assert (run.status, run.rows_moved, run.nanos_moved) == ("done", 4, 3_100_000)
    assert owner_of("k3") == (teams["payments"].pk, None, None)


def test_a_manager_cannot_take_rows_from_a_team_they_do_not_manage(as_persona, teams, people, usage):
    client = as_persona("platform_manager")
    # bob's row belongs to Payments; a rule giving bob's email to Platform would move it.
    data = {**form(teams["platform"], field="user", pattern="^bob@"), "action": "preview"}
    preview = client.post("/attribution/rules/new/", data)
    assert preview.status_code == 200
    assert preview.context["refusal"].startswith("This would move 1 rows of teams you do not manage")
    assert "Payments" not in preview.content.decode()  # the other team stays unnamed
    fingerprint = preview.context["plan"].fingerprint
    refused = client.post("/attribution/rules/new/", {**data, "action": "save", "fingerprint": fingerprint})
    assert "teams you do not manage" in refused.content.decode()
    assert not Rule.objects.exists()
    # A team outside their scope cannot even be chosen.
    other = client.post("/attribution/rules/new/", {**form(teams["payments"]), "action": "preview"})
    assert "team" in other.context["form"].errors


def test_the_identity_page_previews_and_saves(as_persona, teams, usage, jobs_run_inline):
    client = as_persona("finops")
    data = {"kind": "gateway_team", "value": "team-pay", "team": teams["emea"].pk}
    preview = client.post("/attribution/identities/new/", {**data, "action": "preview"})
    assert (preview.context["plan"].rows_moved, preview.context["plan"].nanos_moved) == (2, 2 * ONE)
    with jobs_run_inline():
        client.post(
            "/attribution/identities/new/",
            {**data, "action": "save", "fingerprint": preview.context["plan"].fingerprint},
        )
    assert owner_of("g1") == (teams["emea"].pk, None, None)


def test_a_task_is_created_from_a_tag_seen_on_usage(as_persona, teams, usage, jobs_run_inline):
    client = as_persona("cio")
    page = client.get("/attribution/tasks/")
    assert [(t.tag, t.rows, t.nanos) for t in page.context["unnamed"]] == [("code-review", 1, ONE)]
    with jobs_run_inline():
        assert (
            client.post("/attribution/tasks/", {"name": "Code review", "tag": "code-review"}).status_code
            == 302
        )
    task = Task.objects.get(key="code-review")
    assert owner_of("t1")[2] == task.pk
    assert client.get("/attribution/tasks/").context["unnamed"] == []


def test_the_people_page_uploads_previews_and_applies(as_persona, teams, people):
    client = as_persona("finops")
    content = b"email,name,team\nalice@acme.example,Alice,Engineering/Platform\nnew@acme.example,New,Sales/Nordics\n"
    response = client.post(
        "/attribution/people/", {"file": SimpleUploadedFile("hr.csv", content), "full_list": ""}
    )
    assert response.status_code == 302
    detail = client.get(response["Location"])
    plan = detail.context["plan"]
    assert (plan.summary()["new_people"], plan.summary()["new_teams"], plan.deactivated) == (1, 1, [])
    applied = client.post(response["Location"], {"fingerprint": plan.fingerprint})
    assert applied.status_code == 302
    assert PeopleImport.objects.get().summary["new_people"] == 1
    assert people["alice"].__class__.objects.filter(email="new@acme.example", team__name="Nordics").exists()


def test_a_file_without_a_header_is_refused_on_the_upload_page(as_persona, teams):
    client = as_persona("cio")
    response = client.post(
        "/attribution/people/", {"file": SimpleUploadedFile("hr.csv", b"email,name\n"), "full_list": "on"}
    )
    assert response.status_code == 200
    assert "hr.csv line 1: missing column(s) team" in response.content.decode()
    assert not PeopleImport.objects.exists()


def test_every_attribution_and_audit_route_answers_404_to_a_member_and_an_outsider(as_persona, objects):
    """Route enumeration (TESTPLAN F1) for these two apps: a new page cannot be added without its check."""
    from django.urls import reverse

    from apps.audit import urls as audit_urls
    from apps.org import urls as org_urls

    ids = {
        "rule_id": objects["payments_rule"].pk,
        "identity_id": objects["identity"].pk,
        "task_id": objects["task"].pk,
        "run_id": objects["run"].pk,
        "import_id": objects["import"].pk,
    }
    paths = [
        (reverse(f"{module.app_name}:{pattern.name}", kwargs={k: ids[k] for k in pattern.pattern.converters}),
         bool(pattern.pattern.converters))
        for module in (org_urls, audit_urls)
        for pattern in module.urlpatterns
    ]  # fmt: skip
    assert len(paths) == 16
    member = as_persona("alice")
    for path, _ in paths:
        assert member.get(path).status_code in (404, 405), path  # 405: the POST-only "re-attribute now"
        assert member.post(path).status_code == 404, path
    outsider = as_persona("outsider")
    for path, names_an_object in paths:
        if names_an_object:
            assert outsider.get(path).status_code == 404, path
            assert outsider.post(path).status_code == 404, path
