"""Shared fixtures. Real sample records live in ../shared/samples beside the checkout; tests that
need them skip cleanly when that folder is absent (never copy them into the repository)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

# Property tests draw the same examples on every run (CI must not fail at random);
# HYPOTHESIS_PROFILE=explore searches anew each time.
settings.register_profile("default", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("explore", deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

REPO = Path(__file__).resolve().parents[1]
SAMPLES = Path(os.environ.get("MR2BENCH_SAMPLES", REPO.parent / "shared" / "samples"))

# Two cores, several processes: one thread per test process keeps torch from oversubscribing.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    if not SAMPLES.is_dir():
        pytest.skip(f"real sample records not present at {SAMPLES}")
    return SAMPLES
