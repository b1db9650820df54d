"""MR^2Bench-Image: human rankings (one row per prompt, model, annotator) -> pairwise -> same core."""
from __future__ import annotations

from mr2bench.build_folder import atomic_output

from .inputs import RANKING_OPTIONAL, RANKING_REQUIRED, check_rankings, first_per_key, rankings_to_pairwise, read_table
from .pipeline import BuildConfig, Context, Timer, build


def ranking_context(kept) -> Context:
    resp = {}
    if "response" in kept.columns:
        s = kept[["prompt_id", "model", "response"]].dropna()
        resp = {(p, m): t for p, m, t in s.itertuples(index=False)}
    return Context(prompt=first_per_key(kept, "prompt_id", "prompt"), media=first_per_key(kept, "prompt_id", "image"),
                   response=resp, category=first_per_key(kept, "prompt_id", "category"))


@atomic_output  # builds into a temporary sibling of cfg.out, swapped in sealed
def build_image(source: str | None, cfg: BuildConfig, column_map: dict[str, str] | None = None,
                split: str | None = None) -> dict:
    timer = Timer()
    truth = kinds = None
    if source is None:
        from .demo import demo_table, image_arena

        arena = image_arena(cfg.seed, cfg.out)
        table = demo_table(arena, "demo:image-arena", cfg.out, str_columns=("rank",))
        truth, kinds = arena.truth, arena.annotators
    else:
        table = read_table(source, RANKING_REQUIRED, RANKING_OPTIONAL, column_map, split, cfg.value_map)
    cfg.source, cfg.input_sha256 = table.label, table.sha256
    timer.lap("read input")
    root = cfg.media_root or table.root
    checked = check_rankings(table.df, root)
    timer.lap("validate")
    kept_rows = checked.kept.drop(columns="_row")
    pairs = rankings_to_pairwise(kept_rows)
    extra = {"ranking_rows": {"rows_in": len(table.df), "kept": len(kept_rows),
                              "quarantined": len(checked.quarantine), "pairwise_outcomes": len(pairs)}}
    return build(pairs, checked.quarantine, len(table.df), ranking_context(kept_rows), cfg, root=root,
                 truth=truth, annotator_kinds=kinds, timer=timer, extra_report=extra,
                 rows_kept=len(kept_rows))
