"""MR^2Bench-Video: crowdsourced pairwise judgments -> denoised full rankings -> 4-response items."""
from __future__ import annotations

import pandas as pd

from .inputs import PAIRWISE_OPTIONAL, PAIRWISE_REQUIRED, Table, check_pairwise, hash_frame, read_table
from .pipeline import BuildConfig, Context, Timer, build


def _first(df: pd.DataFrame, key: str, col: str) -> dict:
    if col not in df.columns:
        return {}
    s = df[[key, col]].dropna().drop_duplicates(key)
    return dict(zip(s[key], s[col]))


def pairwise_context(kept: pd.DataFrame) -> Context:
    resp: dict[tuple[str, str], str] = {}
    for side in ("a", "b"):
        col = f"response_{side}"
        if col in kept.columns:
            s = kept[["question_id", f"model_{side}", col]].dropna().drop_duplicates(["question_id", f"model_{side}"])
            for q, m, t in s.itertuples(index=False):
                resp.setdefault((q, m), t)
    return Context(prompt=_first(kept, "question_id", "question"), media=_first(kept, "question_id", "video"),
                   response=resp, category=_first(kept, "question_id", "category"))


def build_video(source: str | None, cfg: BuildConfig, column_map: dict[str, str] | None = None,
                split: str | None = None) -> dict:
    timer = Timer()
    truth = kinds = None
    if source is None:
        from .demo import video_arena

        arena = video_arena(cfg.seed, cfg.out)
        raw = arena.judgments.astype(object).where(arena.judgments.notna(), None)
        raw.insert(0, "_row", range(1, len(raw) + 1))
        table = Table(raw, "demo:video-arena", hash_frame(arena.judgments), cfg.out)
        truth, kinds = arena.truth, arena.annotators
    else:
        table = read_table(source, PAIRWISE_REQUIRED, PAIRWISE_OPTIONAL, column_map, split)
    cfg.source, cfg.input_sha256 = table.label, table.sha256
    timer.lap("read input")
    checked = check_pairwise(table.df)
    timer.lap("validate")
    kept = checked.kept.drop(columns="_row")
    return build(kept, checked.quarantine, len(table.df), pairwise_context(kept), cfg, root=table.root,
                 truth=truth, annotator_kinds=kinds, timer=timer)
