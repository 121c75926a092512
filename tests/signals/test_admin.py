"""The signals admin: model versions (promote action, emergency override with reason + fresh
OTP, audited), validations with the old-vs-new scatter, hydration runs; the SVG is pure."""

from __future__ import annotations

from typing import Any

import pytest

from signals.charts import scatter_svg
from signals.models import ModelVersion, ShadowValidation
from signals.promotion import model_promote
from tests.helpers import totp_now
from tests.signals.support import activate_first, train
from tradeops.models import AuditEvent

pytestmark = pytest.mark.django_db

MODELS = "/admin/signals/modelversion/"


def action(admin: Any, name: str, model: ModelVersion, **form: str) -> Any:
    return admin.post(
        MODELS,
        {"action": name, "_selected_action": [str(model.pk)], "confirmed": "yes", **form},
    )


def test_promote_action_runs_the_validation(stored_bars: Any, q_sync: None, ops_admin: Any) -> None:
    model = train("alpha")
    page = action(ops_admin, "promote", model, reason="first model of the desk")
    assert page.status_code == 302
    model.refresh_from_db()
    assert model.status == "active"
    event = AuditEvent.objects.get(action="model.promote")
    assert (event.actor, event.reason) == (ops_admin.user, "first model of the desk")
    listing = ops_admin.get(MODELS)
    assert listing.status_code == 200 and b"alpha" in listing.content


def test_override_needs_a_reason_and_a_fresh_otp_and_is_audited(
    stored_bars: Any, q_sync: None, ops_admin: Any
) -> None:
    import time

    import time_machine

    serving = activate_first(train("alpha"))
    bad = train("alpha", transform=lambda y: -y)
    refused = action(
        ops_admin, "activate_without_validation", bad, reason="market stress", otp_token="000000"
    )
    assert refused.status_code == 200 and b"Invalid or already used OTP code" in refused.content
    bad.refresh_from_db()
    assert bad.status == "candidate"
    assert not AuditEvent.objects.filter(action="model.activate_unvalidated").exists()
    failed = AuditEvent.objects.get(action="step_up.failed")
    assert (failed.actor, failed.object_id) == (ops_admin.user, "model.activate_unvalidated")
    no_reason = action(ops_admin, "activate_without_validation", bad, reason="", otp_token="1")
    assert no_reason.status_code == 200  # the form asks again
    device = ops_admin.user.totpdevice_set.get()
    with time_machine.travel(time.time() + 3, tick=True):
        done = action(
            ops_admin,
            "activate_without_validation",
            bad,
            reason="vendor outage, old model broken",
            otp_token=totp_now(device),
        )
    assert done.status_code == 302
    bad.refresh_from_db()
    serving.refresh_from_db()
    assert (bad.status, serving.status) == ("active", "retired")
    event = AuditEvent.objects.get(action="model.activate_unvalidated")
    assert event.actor == ops_admin.user and "vendor outage" in event.reason
    assert event.after["step_up"]["action"] == "model.activate_unvalidated"
    override = bad.validations.get()
    assert (override.kind, override.outcome) == ("override", "skipped")


def test_override_needs_the_permission(stored_bars: Any, q_sync: None, client: Any) -> None:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from signals.promotion import model_override_activate
    from tradeops.errors import PermissionDenied

    viewer = get_user_model().objects.create_user("viewer", password="pw-viewer-123", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_modelversion"))
    TOTPDevice.objects.create(user=viewer, name="phone", confirmed=True)
    client.force_login(viewer)
    session = client.session
    session["otp_device_id"] = viewer.totpdevice_set.get().persistent_id
    session.save()
    page = client.get(MODELS)
    assert page.status_code == 200 and b"activate_without_validation" not in page.content
    with pytest.raises(PermissionDenied):
        model_override_activate(model=train("alpha"), actor=viewer, reason="because")


def test_validation_page_shows_figures_and_the_scatter(
    stored_bars: Any, q_sync: None, ops_admin: Any
) -> None:
    activate_first(train("alpha"))
    validation = model_promote(
        model=train("alpha", transform=lambda y: -y), actor="test", reason="test promotion"
    )
    page = ops_admin.get(f"/admin/signals/shadowvalidation/{validation.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert html.count("<circle") == validation.n_samples
    assert "serving model (old)" in html and "rejected" in html
    listing = ops_admin.get("/admin/signals/shadowvalidation/")
    assert (
        listing.status_code == 200 and f"{validation.spearman_mean:.3f}" in listing.content.decode()
    )
    assert ops_admin.get("/admin/signals/hydrationrun/").status_code == 200


def test_validation_list_is_constant_query(
    stored_bars: Any, q_sync: None, ops_admin: Any, django_assert_max_num_queries: Any
) -> None:
    activate_first(train("alpha"))
    for seed in (3, 4, 5):
        model_promote(model=train("alpha", seed=seed), actor="test", reason="test promotion")
    assert ShadowValidation.objects.count() == 4
    with django_assert_max_num_queries(12):
        assert ops_admin.get("/admin/signals/shadowvalidation/").status_code == 200


def test_scatter_svg_places_points_on_the_diagonal_for_a_rescaled_model() -> None:
    svg = scatter_svg(old=[1.0, 2.0, 3.0], new=[3.0, 6.0, 9.0], labels=["A", "B", "C<"], title="t")
    assert svg.startswith("<svg") and svg.count("<circle") == 3
    assert 'cx="64.0" cy="372.0"' in svg and 'cx="404.0" cy="16.0"' in svg  # corners
    assert "C&lt;" in svg  # labels escaped
    nan = scatter_svg(old=[1.0, float("nan")], new=[1.0, 2.0], labels=["A", "B"], title="t")
    assert nan.count("<circle") == 1
