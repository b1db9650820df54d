"""MR^2Bench-Video: crowdsourced pairwise judgments -> denoised full rankings -> 4-response items."""
from __future__ import annotations

import pandas as pd

from mr2bench.build_folder import atomic_output

from .inputs import (PAIRWISE_OPTIONAL, PAIRWISE_REQUIRED, VOTE_KEYS, Table, check_pairwise, first_per_key,
                     read_table)
from .pipeline import BuildConfig, Context, Timer, build


def pairwise_context(kept: pd.DataFrame) -> Context:
    resp: dict[tuple[str, str], str] = {}
    for side in ("a", "b"):
        col = f"response_{side}"
        if col in kept.columns:
            s = kept[["question_id", f"model_{side}", col]].dropna().drop_duplicates(["question_id", f"model_{side}"])
            for q, m, t in s.itertuples(index=False):
                resp.setdefault((q, m), t)
    return Context(prompt=first_per_key(kept, "question_id", "question"), media=first_per_key(kept, "question_id", "video"),
                   response=resp, category=first_per_key(kept, "question_id", "category"))


@atomic_output  # builds into a temporary sibling of cfg.out, swapped in sealed
def build_video(source: str | Table | None, cfg: BuildConfig, column_map: dict[str, str] | None = None,
                split: str | None = None) -> dict:
    """Build from a file / dataset folder / Hub id, a Table (e.g. ``judgments_table(judgments)``), or,
    with ``source=None``, the embedded demo arena."""
    timer = Timer()
    truth = kinds = None
    if source is None:
        from .demo import demo_table, video_arena

        arena = video_arena(cfg.seed, cfg.out)
        table = demo_table(arena, "demo:video-arena", cfg.out)
        truth, kinds = arena.truth, arena.annotators
    elif isinstance(source, Table):
        table = source
    else:
        table = read_table(source, PAIRWISE_REQUIRED, PAIRWISE_OPTIONAL, column_map, split, cfg.value_map)
    cfg.source, cfg.input_sha256 = table.label, table.sha256
    timer.lap("read input")
    root = cfg.media_root or table.root
    rows_in = len(table.df)
    checked = check_pairwise(table.df, root)
    del table   # at 3M votes every frame copy costs ~250 MB of pointers: keep only the validated one alive
    timer.lap("validate")
    # the per-vote keys only tell repeats apart (done in validation); nothing downstream reads them
    kept = checked.kept.drop(columns=["_row", *(c for c in VOTE_KEYS if c in checked.kept.columns)])
    quarantine, counts = checked.quarantine, checked.counts
    del checked
    return build(kept, quarantine, rows_in, pairwise_context(kept), cfg, root=root,
                 truth=truth, annotator_kinds=kinds, timer=timer, checks=counts)
