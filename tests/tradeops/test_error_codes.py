"""Every error code a client can receive is in one table (tradeops.errors.ERROR_CODES), in the
README's error table with its status, and in the OpenAPI error responses."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tradeops.errors import ERROR_CODES

ROOT = Path(__file__).resolve().parents[2]
APPS = ("tradeops", "orders", "reconciliation", "signals", "marketdata")
# Literal codes in the source that a client never receives as an error code.
NOT_API_CODES = {
    "error": "TradeOpsError's abstract default, and the handler's fallback for a DRF exception "
    "class it does not know",
    "reserved": "a Django ValidationError code of the strategy id validator (admin forms)",
    "plan_paused": "a slice pre-send outcome inside run_slices, never an HTTP answer",
    "plan_inactive": "a slice pre-send outcome inside run_slices, never an HTTP answer",
    **dict.fromkeys(
        [
            "model_error",
            "model_artifact_invalid",
            "model_artifact_missing",
            "model_artifact_tampered",
            "feature_set_mismatch",
        ],
        "model registry errors: told to the register/promote commands and the admin, never an "
        "HTTP answer (a serving process keeps its loaded model and logs them)",
    ),
}
CODE_LITERAL = re.compile(
    r"""(?:Rejection\(\s*|\bcode\s*=\s*|error_body\(\s*)"([a-z_]+)\"""", re.MULTILINE
)


def codes_in_source() -> dict[str, str]:
    found: dict[str, str] = {}
    for app in APPS:
        for path in (ROOT / app).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            for code in CODE_LITERAL.findall(path.read_text()):
                found.setdefault(code, str(path.relative_to(ROOT)))
    return found


def test_the_scan_finds_codes() -> None:
    found = codes_in_source()
    assert {"otp_required", "quarantined", "gated", "payload_too_large", "throttled"} <= set(found)


def test_every_code_in_the_source_is_in_the_table() -> None:
    unknown = {
        code: where
        for code, where in codes_in_source().items()
        if code not in ERROR_CODES and code not in NOT_API_CODES
    }
    assert unknown == {}, "add these to tradeops.errors.ERROR_CODES and the README"


def readme_error_table() -> dict[str, int]:
    text = (ROOT / "README.md").read_text()
    rows = re.findall(r"^\| `([a-z_]+)` \| (\d{3}) \|", text, re.MULTILINE)
    return {code: int(status) for code, status in rows}


@pytest.mark.parametrize("code", sorted(ERROR_CODES))
def test_the_readme_lists_every_code_with_its_status(code: str) -> None:
    assert readme_error_table().get(code) == ERROR_CODES[code][0]


def test_the_readme_lists_no_other_code() -> None:
    assert set(readme_error_table()) == set(ERROR_CODES)


def test_the_schema_documents_every_code() -> None:
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    components = schema["components"]["schemas"]
    assert components["ErrorDetail"]["properties"]["code"] == {
        "$ref": "#/components/schemas/ErrorCodeEnum"
    }
    assert set(components["ErrorCodeEnum"]["enum"]) == set(ERROR_CODES)
    order_post = schema["paths"]["/api/v1/orders"]["post"]["responses"]
    for code, (status, _) in ERROR_CODES.items():
        assert code in order_post[str(status)]["description"], code
