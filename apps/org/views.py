"""Attribution pages: rules, identities, tasks, re-attribution runs and the HR import.

Thin: resolve the viewer, call selectors and services. A change is saved only after its preview was
shown: the save carries the preview's fingerprint, and a preview that no longer holds is shown again.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from apps.accounts.scoping import Viewer, viewer_for_user
from apps.org import selectors, services
from apps.org.forms import IDENTITY_KINDS, IdentityForm, PeopleUploadForm, RuleForm, TaskForm, TaskRenameForm
from apps.org.people_import import MAX_BYTES, PeopleFileError
from apps.org.people_import import StalePreview as StaleImportPreview
from apps.org.services import AttributionChangeRefused, Editor, StalePreview


def _editor(request: HttpRequest, viewer: Viewer) -> Editor:
    return Editor(viewer=viewer, user=request.user, request=request)


def _plan_context(viewer: Viewer, editor: Editor, plan) -> dict:
    return {
        "plan": plan,
        "moves": selectors.describe_plan(viewer, plan),
        "refusal": services.preview_refusal(editor, plan),
    }


@login_required
def home(request: HttpRequest) -> HttpResponse:
    viewer = viewer_for_user(request.user)
    rules = selectors.rules_for(viewer)  # 404 for members
    context = {"viewer": viewer, "rules": rules}
    if viewer.sees_organisation:
        context["identity_count"] = selectors.identities_for(viewer).count()
        context["runs"] = selectors.attribution_runs_for(viewer)[:5]
    return render(request, "org/home.html", context)


def _edit(request: HttpRequest, *, kind: str, obj, form_class, preview, save) -> HttpResponse:
    """The preview-then-save flow shared by rules and identities."""
    viewer = viewer_for_user(request.user)
    editor = _editor(request, viewer)
    plan = None
    notice = ""
    if request.method == "POST":
        form = form_class(viewer, request.POST)
        if form.is_valid():
            data = form.to_input()
            try:
                if request.POST.get("action") == "save":
                    _, run = save(editor, obj, data, expected_fingerprint=request.POST.get("fingerprint", ""))
                    messages.success(request, f"Saved. Re-attribution run #{run.pk} is moving the rows.")
                    return redirect("org:home" if kind == "rule" else "org:identities")
                plan = preview(editor, obj, data)
            except StalePreview:
                plan = preview(editor, obj, data)
                notice = "Check the numbers below (usage or attribution changed since), then save."
            except (AttributionChangeRefused, ValueError) as error:
                form.add_error(None, str(error))
    else:
        form = form_class(viewer, initial=form_class.initial_for(obj) if obj else None)
    context = {"form": form, "object": obj, "kind": kind, "notice": notice, "kinds": IDENTITY_KINDS}
    if plan is not None:
        context.update(_plan_context(viewer, editor, plan))
    # A refused choice (a team, person or source outside the viewer's scope) is a bad request, not a page.
    return render(request, "org/edit.html", context, status=400 if form.errors else 200)


def _delete(request: HttpRequest, *, kind: str, obj, preview, delete) -> HttpResponse:
    viewer = viewer_for_user(request.user)
    editor = _editor(request, viewer)
    error = notice = ""
    if request.method == "POST":
        try:
            run = delete(editor, obj, expected_fingerprint=request.POST.get("fingerprint", ""))
            messages.success(request, f"Deleted. Re-attribution run #{run.pk} is moving the rows.")
            return redirect("org:home" if kind == "rule" else "org:identities")
        except StalePreview:
            notice = "Check the numbers below (usage or attribution changed since), then delete."
        except AttributionChangeRefused as refused:
            error = str(refused)
    plan = preview(editor, obj, None)
    context = {"object": obj, "kind": kind, "notice": notice, "error": error}
    context.update(_plan_context(viewer, editor, plan))
    return render(request, "org/delete.html", context)


@login_required
def rule_new(request: HttpRequest) -> HttpResponse:
    selectors.require_rule_editor(viewer_for_user(request.user))
    return _edit(
        request,
        kind="rule",
        obj=None,
        form_class=RuleForm,
        preview=services.rule_preview,
        save=services.rule_save,
    )


@login_required
def rule_edit(request: HttpRequest, rule_id: int) -> HttpResponse:
    rule = selectors.rule_get(viewer_for_user(request.user), rule_id=rule_id)
    return _edit(
        request,
        kind="rule",
        obj=rule,
        form_class=RuleForm,
        preview=services.rule_preview,
        save=services.rule_save,
    )


@login_required
def rule_delete(request: HttpRequest, rule_id: int) -> HttpResponse:
    rule = selectors.rule_get(viewer_for_user(request.user), rule_id=rule_id)
    return _delete(request, kind="rule", obj=rule, preview=services.rule_preview, delete=services.rule_delete)


@login_required
def identity_list(request: HttpRequest) -> HttpResponse:
    identities = selectors.identities_for(viewer_for_user(request.user))
    return render(request, "org/identities.html", {"identities": identities})


@login_required
def identity_new(request: HttpRequest) -> HttpResponse:
    selectors.require_organisation_wide(viewer_for_user(request.user))
    return _edit(
        request,
        kind="identity",
        obj=None,
        form_class=IdentityForm,
        preview=services.identity_preview,
        save=services.identity_save,
    )


@login_required
def identity_edit(request: HttpRequest, identity_id: int) -> HttpResponse:
    identity = selectors.identity_get(viewer_for_user(request.user), identity_id=identity_id)
    return _edit(
        request,
        kind="identity",
        obj=identity,
        form_class=IdentityForm,
        preview=services.identity_preview,
        save=services.identity_save,
    )


@login_required
def identity_delete(request: HttpRequest, identity_id: int) -> HttpResponse:
    identity = selectors.identity_get(viewer_for_user(request.user), identity_id=identity_id)
    return _delete(
        request,
        kind="identity",
        obj=identity,
        preview=services.identity_preview,
        delete=services.identity_delete,
    )


@login_required
def task_list(request: HttpRequest) -> HttpResponse:
    viewer = viewer_for_user(request.user)
    tasks = selectors.tasks_for(viewer)  # 404 below CIO/FinOps
    form = TaskForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            task = services.task_create(
                _editor(request, viewer),
                name=form.cleaned_data["name"],
                key=form.cleaned_data["key"],
                tag=form.cleaned_data["tag"],
            )
        except ValueError as error:
            form.add_error(None, str(error))
        else:
            messages.success(request, f"Task {task.name} created; a re-attribution run moves its rows to it.")
            return redirect("org:tasks")
    context = {"tasks": tasks, "form": form, "unnamed": selectors.unnamed_tags(viewer)}
    return render(request, "org/tasks.html", context)


@login_required
def task_edit(request: HttpRequest, task_id: int) -> HttpResponse:
    viewer = viewer_for_user(request.user)
    task = selectors.task_get(viewer, task_id=task_id)
    form = TaskRenameForm(request.POST or None, initial={"name": task.name})
    if request.method == "POST" and form.is_valid():
        try:
            services.task_rename(_editor(request, viewer), task, name=form.cleaned_data["name"])
        except ValueError as error:
            form.add_error(None, str(error))
        else:
            return redirect("org:tasks")
    return render(request, "org/task_edit.html", {"task": task, "form": form})


@login_required
def run_list(request: HttpRequest) -> HttpResponse:
    runs = selectors.attribution_runs_for(viewer_for_user(request.user))[:200]
    return render(request, "org/runs.html", {"runs": runs})


@login_required
def run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    run = selectors.attribution_run_get(viewer_for_user(request.user), run_id=run_id)
    return render(request, "org/run.html", {"run": run})


@login_required
def people_import(request: HttpRequest) -> HttpResponse:
    viewer = viewer_for_user(request.user)
    uploads = selectors.people_imports_for(viewer)  # 404 below CIO/FinOps
    form = PeopleUploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            if upload.size > MAX_BYTES:  # before reading it into memory
                raise PeopleFileError(f"{upload.name}: larger than {MAX_BYTES // (1024 * 1024)} MB")
            stored = services.people_import_upload(
                _editor(request, viewer),
                file_name=upload.name,
                data=upload.read(),
                full_list=form.cleaned_data["full_list"],
            )
        except PeopleFileError as error:
            form.add_error("file", str(error))
        else:
            return redirect("org:people-import-detail", import_id=stored.pk)
    return render(request, "org/people_import.html", {"form": form, "uploads": uploads[:20]})


@login_required
def people_import_detail(request: HttpRequest, import_id: int) -> HttpResponse:
    viewer = viewer_for_user(request.user)
    upload = selectors.people_import_get(viewer, import_id=import_id)
    notice = ""
    if request.method == "POST" and upload.applied_at is None:
        try:
            _, run = services.people_import_apply(
                _editor(request, viewer), upload, expected_fingerprint=request.POST.get("fingerprint", "")
            )
        except StaleImportPreview:
            notice = "People or teams changed since this preview; check it again before applying."
        else:
            messages.success(
                request,
                "Applied."
                + (f" Re-attribution run #{run.pk} moves the usage." if run else " Nothing changed."),
            )
            return redirect("org:people-import-detail", import_id=upload.pk)
    plan = None
    if upload.applied_at is None:
        try:
            plan = services.people_import_preview(upload)
        except PeopleFileError as error:
            notice = str(error)
    return render(
        request, "org/people_import_detail.html", {"upload": upload, "plan": plan, "notice": notice}
    )


@login_required
@require_POST
def run_now(request: HttpRequest) -> HttpResponse:
    """Re-attribute on demand (after an ingestion that ran while rules changed, for instance)."""
    viewer = viewer_for_user(request.user)
    selectors.require_organisation_wide(viewer)
    run = services.attribution_run_request(
        organisation_id=viewer.organisation_id,
        requested_by=request.user,
        label=_editor(request, viewer).actor_label,
        reason="requested on the runs page",
    )
    return redirect("org:run", run_id=run.pk)
