"""Embedded demo arenas: seeded planted-truth simulations, labelled synthetic, with tiny media files."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mr2bench.ranking.simulate import Arena, pairwise_arena, ranking_arena

from .inputs import Table, hash_frame

DEMO_VIDEO = {"n_questions": 300, "votes_per_question": 190, "n_annotators": 60, "setting": "adversarial"}
DEMO_IMAGE = {"n_prompts": 60, "n_models": 8, "annotators_per_prompt": 3, "n_annotators": 12, "setting": "noisy"}


def _bad_pairwise_rows(df: pd.DataFrame) -> pd.DataFrame:
    """A few malformed votes so the demo shows every quarantine path."""
    r = df.iloc[0].to_dict()
    bad = [dict(r, winner="model_c"), dict(r, model_b=r["model_a"]), dict(r, question_id=None),
           dict(r, response_a="[synthetic] a different text for the same response"), dict(r)]
    return pd.concat([df, pd.DataFrame(bad)], ignore_index=True)


def video_arena(seed: int, out: Path) -> Arena:
    arena = pairwise_arena(seed, **DEMO_VIDEO)
    from mr2bench.media import write_test_video

    media = out / "media"
    media.mkdir(parents=True, exist_ok=True)
    for qid in sorted(arena.judgments["question_id"].unique()):
        write_test_video(media / f"{qid}.mp4", frames=4, size=(32, 32), fps=4)
    return Arena(_bad_pairwise_rows(arena.judgments), arena.truth, arena.annotators)


def image_arena(seed: int, out: Path) -> Arena:
    arena = ranking_arena(seed, **DEMO_IMAGE)
    from PIL import Image

    media = out / "media"
    media.mkdir(parents=True, exist_ok=True)
    for k, pid in enumerate(sorted(arena.judgments["prompt_id"].unique())):
        rgb = np.zeros((16, 16, 3), dtype=np.uint8)
        rgb[..., k % 3] = 40 + (k * 37) % 200
        Image.fromarray(rgb).save(media / f"{pid}.png", optimize=False)
    df = arena.judgments
    r = df.iloc[0].to_dict()
    bad = pd.DataFrame([dict(r, rank="first"), dict(r, rank=0), dict(r, model=None), dict(r)])
    return Arena(pd.concat([df, bad], ignore_index=True), arena.truth, arena.annotators)


def demo_table(arena: Arena, label: str, out: Path, str_columns: tuple[str, ...] = ()) -> Table:
    """The arena as an input Table: the same shape read_table gives a file (values as str or None,
    a 1-based ``_row``), so the demo goes through exactly the validation real data does."""
    raw = arena.judgments.astype(object).where(arena.judgments.notna(), None)
    for col in str_columns:
        raw[col] = raw[col].map(lambda v: None if v is None else str(v))
    raw.insert(0, "_row", range(1, len(raw) + 1))
    return Table(raw, label, hash_frame(arena.judgments), out)
