"""Canonical pairwise rows (strings) <-> integer codes for the ranking core."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .ensemble import Coded

OUTCOME = {"model_a": 1.0, "model_b": 0.0, "tie": 0.5, "both_bad": 0.5}


@dataclass(frozen=True)
class Codebook:
    questions: list[str]
    models: list[str]
    annotators: list[str]


def encode(df: pd.DataFrame) -> tuple[Coded, Codebook]:
    """``df`` has question_id, model_a, model_b, winner (canonical) and optional annotator_id.
    Codes follow sorted string order, so equal inputs give equal codes."""
    questions = sorted(df["question_id"].unique())
    models = sorted(set(df["model_a"]) | set(df["model_b"]))
    qi = {k: n for n, k in enumerate(questions)}
    mi = {k: n for n, k in enumerate(models)}
    if "annotator_id" in df and df["annotator_id"].notna().any():
        ann_col = df["annotator_id"]
        annotators = sorted(ann_col.dropna().unique())
        ai = {k: n for n, k in enumerate(annotators)}
        ann = np.array([-1 if pd.isna(v) else ai[v] for v in ann_col], dtype=np.int64)
    else:
        annotators, ann = [], np.full(len(df), -1, dtype=np.int64)
    coded = Coded(
        q=df["question_id"].map(qi).to_numpy(np.int64), a=df["model_a"].map(mi).to_numpy(np.int64),
        b=df["model_b"].map(mi).to_numpy(np.int64), y=df["winner"].map(OUTCOME).to_numpy(float),
        annotator=ann, n_questions=len(questions), n_models=len(models), n_annotators=len(annotators))
    return coded, Codebook(questions, models, annotators)
