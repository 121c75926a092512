"""The one rule for operators' reasons.

Every change an operator makes is audited with a reason (DESIGN §1.6), and a reason is only
useful if it says something: after stripping, at least ``REASON_MIN_LENGTH`` and at most
``REASON_MAX_LENGTH`` characters. Services, admin forms, API serializers and commands all apply
this rule through ``reason_clean`` (or the form/serializer fields built on it), so a reason
that one door accepts is never refused by another.

The one exception is a strategy's program cancelling its own order or plan through the API:
it is not an operator, so it may leave the reason blank (``optional=True``); a reason it does
send follows the same rule.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from tradeops.errors import ValidationFailed

REASON_MIN_LENGTH = 5
REASON_MAX_LENGTH = 1000
REASON_RULE = (
    f"A reason of {REASON_MIN_LENGTH} to {REASON_MAX_LENGTH} characters is required "
    "(leading and trailing spaces do not count)."
)


def reason_problem(reason: Any) -> str:
    """What is wrong with ``reason`` ("" when it satisfies the rule). Pure."""
    if reason is not None and not isinstance(reason, str):
        return "The reason must be text."
    text = (reason or "").strip()
    if not REASON_MIN_LENGTH <= len(text) <= REASON_MAX_LENGTH:
        return REASON_RULE
    return ""


def reason_clean(reason: Any, *, optional: bool = False, field: str = "reason") -> str:
    """The stripped reason, or ``ValidationFailed`` (400 ``validation_error``) naming the rule.
    ``optional``: a blank reason is allowed (a strategy acting on its own orders only)."""
    if optional and (reason is None or (isinstance(reason, str) and not reason.strip())):
        return ""
    problem = reason_problem(reason)
    if problem:
        raise ValidationFailed(f"{field}: {problem}", details={"fields": {field: [problem]}})
    return reason.strip()


def reason_validator(value: Any) -> None:
    """The rule as a Django validator: admin form fields and DRF serializer fields use it (DRF
    turns a Django ValidationError raised by a validator into a 400 with the message)."""
    problem = reason_problem(value)
    if problem:
        raise ValidationError(problem)


class ReasonFormField(forms.CharField):
    """An admin form's reason field: the rule, a textarea, the audit hint."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("widget", forms.Textarea(attrs={"rows": 3, "cols": 60}))
        kwargs.setdefault(
            "help_text",
            f"Recorded in the audit trail ({REASON_MIN_LENGTH} to {REASON_MAX_LENGTH} characters).",
        )
        super().__init__(max_length=REASON_MAX_LENGTH, validators=[reason_validator], **kwargs)
