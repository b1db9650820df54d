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

    def codes(col: pd.Series, cats: list[str]) -> np.ndarray:
        return pd.Categorical(col, categories=cats).codes.astype(np.int64)

    if "annotator_id" in df and df["annotator_id"].notna().any():
        ann_col = df["annotator_id"]
        annotators = sorted(ann_col.dropna().unique())
        ann = codes(ann_col, annotators)  # missing -> -1
    else:
        annotators, ann = [], np.full(len(df), -1, dtype=np.int64)
    coded = Coded(
        q=codes(df["question_id"], questions), a=codes(df["model_a"], models),
        b=codes(df["model_b"], models), y=df["winner"].map(OUTCOME).to_numpy(float),
        annotator=ann, n_questions=len(questions), n_models=len(models), n_annotators=len(annotators))
    return coded, Codebook(questions, models, annotators)
