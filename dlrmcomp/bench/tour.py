"""Data and sizes of the codec tour (notebook 00), per profile."""
from __future__ import annotations

import numpy as np

from .. import codecs
from .fields import generated_field, scifloat_fields
from .payload import embedding_payload

PROFILES = {
    "smoke": {"batch": 1024, "dim": 16, "tables": 4, "field_side": 96},
    "demo": {"batch": 16384, "dim": 32, "tables": 8, "field_side": 512},
    "full": {"batch": 65536, "dim": 64, "tables": 26, "field_side": None},
}
FIELD = "sperr_vorticity.512_512"


def tour_data(profile: str, seed: int = 0) -> dict[str, np.ndarray]:
    """{"field": a real (or generated) 2-D field, "embeddings": a Zipf payload [tables*batch, dim]}."""
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {tuple(PROFILES)}, got {profile!r}")
    size = PROFILES[profile]
    field = scifloat_fields().get(FIELD)
    field = generated_field(seed=seed) if field is None else np.asarray(field)
    side = size["field_side"]
    if side:
        field = field[:side, :side]
    tables = embedding_payload(batch=size["batch"], dim=size["dim"], n_tables=size["tables"], seed=seed)
    return {"field": np.ascontiguousarray(field), "embeddings": np.concatenate(tables)}


def lossy_codecs() -> list[str]:
    """Every lossy codec usable on this machine."""
    return [name for name in codecs.available() if codecs.is_lossy(name)]
