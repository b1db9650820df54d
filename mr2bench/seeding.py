"""Seeds derived from (seed, key...) with SHA-256: stable across processes and PYTHONHASHSEED."""
from __future__ import annotations

import hashlib

import numpy as np


def derive_seed(seed: int, *keys: object) -> int:
    h = hashlib.sha256(repr((int(seed),) + tuple(str(k) for k in keys)).encode("utf-8")).digest()
    return int.from_bytes(h[:8], "little")


def rng_for(seed: int, *keys: object) -> np.random.Generator:
    """An independent generator for one purpose, e.g. ``rng_for(seed, "order", item_id)``."""
    return np.random.default_rng(derive_seed(seed, *keys))
