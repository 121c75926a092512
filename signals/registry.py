"""The model registry: LightGBM boosters in LightGBM's own text format (never pickle: loading
a pickle runs code), stored under MODEL_DIR, verified by sha256 on every load.

Status changes (promote, activate, reject, retire, override) live in ``signals/promotion.py``;
this module registers and loads.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Max

from signals.features import FEATURE_NAMES, FEATURE_SET_VERSION
from signals.models import ModelVersion
from tradeops.audit import actor_label, audit_record
from tradeops.errors import TradeOpsError

if TYPE_CHECKING:  # imported where used: importing them costs ~1 s at process start
    import lightgbm as lgb
    import numpy as np

logger = logging.getLogger(__name__)

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
TEXT_MODEL_HEADER = "tree\n"  # the first line of every LightGBM text model
MAX_ARTIFACT_BYTES = 50 * 1024 * 1024


class ModelError(TradeOpsError):
    """A registry refusal: unknown model, bad artifact, other feature set, wrong status."""

    status_code = 422
    code = "model_error"


@dataclass(frozen=True)
class LoadedModel:
    """A verified, ready-to-score model."""

    id: int
    name: str
    version: int
    sha256: str
    feature_set_version: str
    booster: lgb.Booster

    @property
    def label(self) -> str:
        return f"{self.name} v{self.version}"

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        """Scores for rows of FEATURE_NAMES (float64)."""
        import numpy as np

        if len(matrix) == 0:
            return np.empty(0)
        return np.asarray(self.booster.predict(matrix, num_threads=1), dtype="float64")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def booster_from_text(data: bytes, *, feature_set_version: str) -> lgb.Booster:
    """Parse a LightGBM text model and check it takes this feature set's features, in order.
    Anything else (a pickle, a JSON dump, a binary) is refused before LightGBM sees it."""
    import lightgbm as lgb

    if feature_set_version != FEATURE_SET_VERSION:
        raise ModelError(
            f"feature set {feature_set_version!r} is not served by this build "
            f"(it computes {FEATURE_SET_VERSION!r})",
            code="feature_set_mismatch",
        )
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        text = ""
    if not text.startswith(TEXT_MODEL_HEADER):
        raise ModelError(
            "not a LightGBM text model (save it with Booster.save_model(path)); pickles and "
            "other formats are refused",
            code="model_artifact_invalid",
        )
    try:
        booster = lgb.Booster(model_str=text)
    except lgb.basic.LightGBMError as exc:
        raise ModelError(
            f"LightGBM cannot read the model: {exc}", code="model_artifact_invalid"
        ) from None
    names = booster.feature_name()
    if names != FEATURE_NAMES:
        raise ModelError(
            f"the model's features {names} are not feature set {FEATURE_SET_VERSION}'s "
            f"{FEATURE_NAMES}",
            code="feature_set_mismatch",
            details={"model_features": names, "expected": FEATURE_NAMES},
        )
    return booster


def _store(data: bytes, relative: str) -> None:
    """Write atomically (temp file + rename): a reader never sees half an artifact."""
    target = Path(settings.MODEL_DIR) / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        Path(tmp).chmod(0o444)
        Path(tmp).replace(target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def model_register(
    *,
    data: bytes,
    name: str,
    actor: Any,
    feature_set_version: str = FEATURE_SET_VERSION,
    training_start: date | None = None,
    training_end: date | None = None,
    training_rows: int | None = None,
    params: dict[str, Any] | None = None,
    note: str = "",
) -> ModelVersion:
    """Verify an artifact, keep a copy under MODEL_DIR and record it as the next version of
    ``name`` (a candidate). Nothing is written when the artifact is refused."""
    if not NAME_RE.match(name):
        raise ModelError(
            f"invalid model name {name!r}: lowercase letters, digits, '-' and '_' (max 64)",
            code="validation_error",
        )
    if len(data) > MAX_ARTIFACT_BYTES:
        raise ModelError("artifact larger than 50 MiB", code="model_artifact_invalid")
    booster_from_text(data, feature_set_version=feature_set_version)
    digest = _sha256(data)
    for _ in range(3):  # two registrations of one name at once: the loser takes the next number
        version = (ModelVersion.objects.filter(name=name).aggregate(v=Max("version"))["v"] or 0) + 1
        relative = f"{name}/v{version}-{digest[:12]}.txt"
        _store(data, relative)
        try:
            with transaction.atomic():
                model = ModelVersion.objects.create(
                    name=name,
                    version=version,
                    artifact_path=relative,
                    artifact_sha256=digest,
                    feature_set_version=feature_set_version,
                    feature_names=list(FEATURE_NAMES),
                    training_start=training_start,
                    training_end=training_end,
                    training_rows=training_rows,
                    params=params or {},
                    created_by=actor_label(actor),
                    status_reason=note,
                )
                audit_record(
                    actor=actor,
                    action="model.register",
                    object_type="model_version",
                    object_id=model.pk,
                    reason=note,
                    after={"model": model.label, "sha256": digest, "path": relative},
                )
        except IntegrityError:
            continue
        logger.info("registered %s (sha256 %s) as a candidate", model.label, digest[:12])
        return model
    raise ModelError(f"could not allocate a version for {name}: retry", code="conflict")


def model_get(*, name: str, version: int) -> ModelVersion:
    model = ModelVersion.objects.filter(name=name, version=version).first()
    if model is None:
        raise ModelError(f"no model {name} v{version}", code="not_found")
    return model


def model_load(model: ModelVersion) -> LoadedModel:
    """Read the artifact, check its sha256 against the registry and its feature set against
    this build, and parse it. Raises ModelError; never returns an unverified model."""
    path = Path(settings.MODEL_DIR) / model.artifact_path
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(
            f"{model.label}: artifact {path} unreadable: {exc.strerror or exc}",
            code="model_artifact_missing",
        ) from None
    digest = _sha256(data)
    if digest != model.artifact_sha256:
        raise ModelError(
            f"{model.label}: artifact {path} has sha256 {digest[:12]}..., the registry "
            f"recorded {model.artifact_sha256[:12]}... (tampered or corrupt): refused",
            code="model_artifact_tampered",
        )
    booster = booster_from_text(data, feature_set_version=model.feature_set_version)
    return LoadedModel(
        id=model.pk,
        name=model.name,
        version=model.version,
        sha256=digest,
        feature_set_version=model.feature_set_version,
        booster=booster,
    )
