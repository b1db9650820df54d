"""publish, stage side: a build folder becomes a Hub folder that `datasets.load_dataset` reads back exactly,
with a card whose YAML is strict and whose sections carry the build's real values."""
from __future__ import annotations

import hashlib
import io
import json
import math
from pathlib import Path

import pytest
import yaml

from mr2bench.schema import DataError

MODELS = ["alpha-7b", "beta-13b", "gamma-34b", "delta-2b", "eps-1b"]
INPUT_HASH = "sha256:" + hashlib.sha256(b"fixture judgments").hexdigest()
COMMAND = "mr2bench build-benchmark video --out runs/video --seed 7"


def _png(seed: int, size: tuple[int, int] = (8, 6)) -> bytes:
    from PIL import Image

    img = Image.new("RGB", size, ((seed * 40) % 256, (seed * 90) % 256, 17))
    img.putpixel((seed % size[0], 0), (255, 255, 255))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def make_build(root: Path, kind: str = "video", n_questions: int = 3) -> Path:
    """A build-benchmark output folder as issue 3 specifies it (tiny PNGs, a few-frame mp4)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mr2bench.build_folder import write_manifest
    from mr2bench.jsonl import write_json, write_jsonl
    from mr2bench.media import write_test_video

    root.mkdir(parents=True, exist_ok=True)
    (root / "media").mkdir()
    rank_rows, items = [], []
    for q in range(n_questions):
        qid = f"q{q:03d}"
        order = MODELS[q % len(MODELS):] + MODELS[:q % len(MODELS)]
        for r, m in enumerate(order, start=1):
            low = math.nan if (q == 1 and r == 5) else 1.0 - 0.2 * r
            rank_rows.append({"question_id": qid, "model": m, "rank": r if r != 3 else 2,
                              "score": 2.5 - 0.5 * r, "ci_low": low, "ci_high": 3.0 - 0.5 * r})
        if kind == "video":
            rel = f"media/{qid}.mp4"
            write_test_video(root / rel, frames=4, size=(32, 24), fps=4)
        else:
            rel = f"media/{qid}.png"
            (root / rel).write_bytes(_png(q))
        for v in range(2):
            picked = [order[0], order[(v + 1) % 4 + 1], order[2], order[4 - v]]
            items.append({"id": f"{qid}-v{v}", "question_id": qid, "prompt": f"What happens in clip {q}?",
                          "responses": [f"answer by {m} \u00e9" for m in picked], "rankings": [1, 3, 2, 4],
                          "models": picked, kind: None if (q == 2 and v == 1 and kind == "image") else rel,
                          "category": ["action", "count"][q % 2], "variant": v})
    pq.write_table(pa.Table.from_pylist(rank_rows), root / "rankings.parquet")
    pq.write_table(pa.Table.from_pylist(items), root / "items.parquet")
    write_jsonl(root / "quarantine.jsonl", [{"row": 4, "reason": "self_pair"}, {"row": 9, "reason": "unknown_winner"}])
    # the report keys issue 3's builder writes (and mr2bench.cards reads)
    report = {
        "seed": 7, "input_sha256": INPUT_HASH, "command": COMMAND, "mr2bench_version": "0.1.0", "kind": kind,
        "benchmark": f"mr2bench-{kind}", "source": "fixture", "synthetic": True, "license": "",
        "counts": {"rows_in": 120, "kept": 118, "quarantined": 2, "annotators": 4, "items": len(items),
                   "models": len(MODELS), "best_slot_counts": [2, 2, 1, 1], "judgments_with_zero_weight": 3,
                   "media_missing": 0, "quarantine_reasons": {"self_pair": 1, "unknown_winner": 1},
                   "questions_filtered": {}, "questions_in": n_questions, "questions_ranked": n_questions,
                   "questions_with_items": n_questions, "questions_without_items": {}},
        "config": {"posterior_draws": 1000, "prior_precision": 4.0, "variants": 2},  # as pipeline._report writes it
        "thresholds": {"drop_annotator_below": 0.25, "min_judgments": 5, "separation": 0.9, "tie_confidence": 0.9},
        "diagnostics": {"ensemble_graph_3cycles_after": 0, "ensemble_graph_3cycles_before": 3,
                        "fas_solver_components": {"dp": 1}, "feedback_arcs_removed": 1,
                        "judgments_per_question_median": 40.0, "questions_with_cycles": 1,
                        "removed_weight_share_mean": 0.042, "response_pairs": 30, "tie_groups_mean": 4.5,
                        "tied_responses": 1, "vote_graph_3cycles": 5},
        "annotators": {"counts": {"kept": 3, "down-weighted": 1, "dropped": 0}, "per_annotator": [],
                       "rule": "weight = clip(competence / median competence, 0, 1)"},
        "recovery": None, "leaderboard": [],
    }
    write_json(root / "build_report.json", report)
    write_json(root / "timings.json", {"total_s": 0.5})
    (root / "leaderboard.csv").write_text("model,score\nalpha-7b,1.0\n", encoding="utf-8")
    (root / "leaderboard.md").write_text("| model | score |\n|---|---|\n| alpha-7b | 1.0 |\n", encoding="utf-8")
    (root / "leaderboard.png").write_bytes(_png(99, (16, 12)))
    (root / "README.md").write_text("old card, replaced by the stage\n", encoding="utf-8")
    write_manifest(root)   # sealed last, as build-benchmark does (mr2bench.build_folder)
    return root


def strict_front_matter(readme: str) -> dict:
    from mr2bench.hub.validate import split_card

    meta, _ = split_card(readme)
    return meta


@pytest.fixture(params=["video", "image"])
def staged(request, tmp_path):
    from mr2bench.hub.stage import stage_benchmark

    build = make_build(tmp_path / "build", request.param)
    return request.param, build, stage_benchmark(build, tmp_path / "stage", max_shard_bytes=600)


def test_stage_roundtrip_through_load_dataset(staged):
    import datasets
    import pyarrow.parquet as pq

    kind, build, res = staged
    stage = res.stage_dir
    built_items = pq.read_table(build / "items.parquet").to_pylist()
    built_ranks = pq.read_table(build / "rankings.parquet").to_pylist()

    # own cache per test: datasets keys local-folder caches loosely, two stages must not share one
    cache = str(stage.parent / "cache")
    items = datasets.load_dataset(str(stage), "items", split="test", cache_dir=cache)
    ranks = datasets.load_dataset(str(stage), "full_rankings", split="test", cache_dir=cache)
    assert items.num_rows == len(built_items) == 6 and ranks.num_rows == len(built_ranks) == 15
    # small shards: the items config really is split over several Parquet files
    assert len(res.configs[0].shards) > 1
    assert res.configs[0].shards[0] == f"data/items/test-00000-of-{len(res.configs[0].shards):05d}.parquet"
    assert ranks.features["rank"] == datasets.Value("int64")
    assert ranks.features["ci_low"] == datasets.Value("float64")
    got_ranks = ranks.to_list()
    for g, w in zip(got_ranks, built_ranks):
        assert g.keys() == w.keys()
        for k in w:
            assert g[k] == w[k] or (math.isnan(g[k]) and math.isnan(w[k])), (k, g, w)
    assert items.features["responses"] == datasets.List(datasets.Value("string"))
    assert items.features["rankings"] == datasets.List(datasets.Value("int64"))
    if kind == "image":
        assert items.features["image"] == datasets.Image()
        raw = items.cast_column("image", datasets.Image(decode=False)).to_list()
        for g, w in zip(raw, built_items):
            if w["image"] is None:
                assert g["image"] is None
            else:
                assert g["image"]["bytes"] == (build / w["image"]).read_bytes()
        first = items[0]["image"]            # decodes as a PIL image, pixels as built
        from PIL import Image

        assert first.size == (8, 6)
        assert first.convert("RGB").tobytes() == Image.open(build / "media/q000.png").convert("RGB").tobytes()
        assert not (stage / "media").exists()   # embedded, not copied
        assert "| `image` | `datasets` Image |" in (stage / "README.md").read_text()
    else:
        assert items.features["video"] == datasets.Value("string")
        assert "| `video` | string or null |" in (stage / "README.md").read_text()
        for g, w in zip(items.to_list(), built_items):
            assert g["video"] == w["video"]
            assert (stage / g["video"]).read_bytes() == (build / w["video"]).read_bytes()
    for g, w in zip(items.to_list(), built_items):
        for k in ("id", "question_id", "prompt", "responses", "rankings", "models", "category", "variant"):
            assert g[k] == w[k]


def test_card_yaml_strict_and_sections_real(staged):
    from mr2bench.hub.validate import BENCHMARK_SECTIONS, PLACEHOLDERS, find_section, sections, split_card

    kind, build, res = staged
    readme = (res.stage_dir / "README.md").read_text(encoding="utf-8")
    meta, body = split_card(readme)
    for key in ("license", "task_categories", "size_categories", "pretty_name", "tags"):
        assert meta.get(key), key
    assert meta["configs"] == [
        {"config_name": "items", "data_files": [{"split": "test", "path": "data/items/test-*.parquet"}]},
        {"config_name": "full_rankings",
         "data_files": [{"split": "test", "path": "data/full_rankings/test-*.parquet"}]}]
    assert not PLACEHOLDERS.search(readme)
    secs = sections(body)
    for name, words in BENCHMARK_SECTIONS.items():
        assert find_section(secs, words), name
    construction = find_section(secs, BENCHMARK_SECTIONS["construction"])
    for value in (COMMAND, INPUT_HASH, "0.1.0"):
        assert value in construction
    structure = find_section(secs, BENCHMARK_SECTIONS["structure"])
    for field in ("question_id", "responses", "rankings", "models", kind, "ci_low", "ci_high", "score"):
        assert field in structure


def test_validator_passes_good_stage_and_catches_bad_ones(staged, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mr2bench.hub.validate import validate_benchmark_stage

    kind, build, res = staged
    validate_benchmark_stage(res.stage_dir, build, res.card_configs)   # no error

    readme = res.stage_dir / "README.md"
    good = readme.read_text(encoding="utf-8")
    readme.write_text(good.replace("---\n", "---\nlicense: mit\n", 1), encoding="utf-8")   # duplicate key
    with pytest.raises(DataError, match="duplicate key 'license'"):
        validate_benchmark_stage(res.stage_dir, build, res.card_configs)
    readme.write_text(good + "\n## Notes\n\nTODO fill in\n", encoding="utf-8")
    with pytest.raises(DataError, match="placeholder"):
        validate_benchmark_stage(res.stage_dir, build, res.card_configs)
    readme.write_text(good.replace(INPUT_HASH, "sha256:unknown"), encoding="utf-8")
    with pytest.raises(DataError, match="does not state"):
        validate_benchmark_stage(res.stage_dir, build, res.card_configs)
    readme.write_text(good, encoding="utf-8")

    # a shard that lost a row no longer round-trips
    shard = res.stage_dir / res.configs[1].shards[0]
    t = pq.read_table(shard)
    pq.write_table(t.slice(1), shard)
    with pytest.raises(DataError, match="rows loaded"):
        validate_benchmark_stage(res.stage_dir, build, res.card_configs)
    pq.write_table(t, shard)
    # a changed cell is named with its config, row and field
    tampered = t.to_pylist()
    tampered[0]["model"] = "someone-else"
    pq.write_table(pa.Table.from_pylist(tampered, schema=t.schema), shard)
    with pytest.raises(DataError, match=r"full_rankings row 1: fields \['model'\]"):
        validate_benchmark_stage(res.stage_dir, build, res.card_configs)


def test_duplicate_key_loader():
    from mr2bench.hub.validate import load_yaml_strict

    assert load_yaml_strict("a: 1\nb: {c: 2}\n") == {"a": 1, "b": {"c": 2}}
    with pytest.raises(yaml.YAMLError, match="duplicate key 'c'"):
        load_yaml_strict("a: 1\nb:\n  c: 2\n  c: 3\n")


def test_stage_is_deterministic_and_refuses_dirty_folder(tmp_path):
    from mr2bench.hub.stage import stage_benchmark

    build = make_build(tmp_path / "build", "image")
    a = stage_benchmark(build, tmp_path / "a")
    b = stage_benchmark(build, tmp_path / "b")
    files_a = sorted(p.relative_to(a.stage_dir) for p in a.stage_dir.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b.stage_dir) for p in b.stage_dir.rglob("*") if p.is_file())
    assert files_a == files_b
    for f in files_a:
        assert (a.stage_dir / f).read_bytes() == (b.stage_dir / f).read_bytes(), f
    assert a.build_hash == b.build_hash and len(a.build_hash) == 64
    assert "build_report.json" in a.copied and "leaderboard.png" in a.copied
    with pytest.raises(DataError, match="not empty"):
        stage_benchmark(build, tmp_path / "a")


def test_bad_media_path_is_a_clear_error(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mr2bench.build_folder import write_manifest
    from mr2bench.hub.stage import stage_benchmark

    build = make_build(tmp_path / "build", "video")
    rows = pq.read_table(build / "items.parquet").to_pylist()
    rows[2]["video"] = "../../etc/passwd"
    pq.write_table(pa.Table.from_pylist(rows), build / "items.parquet")
    write_manifest(build)   # a sealed build whose items point outside it
    with pytest.raises(DataError, match=r"items.parquet:row 3: field 'media.path'.*escapes"):
        stage_benchmark(build, tmp_path / "s1")
    rows[2]["video"] = "media/missing.mp4"
    pq.write_table(pa.Table.from_pylist(rows), build / "items.parquet")
    write_manifest(build)
    with pytest.raises(DataError, match=r"row 3: field 'video': video file not found"):
        stage_benchmark(build, tmp_path / "s2")


def test_plan_shards():
    from mr2bench.hub.stage import plan_shards

    assert plan_shards([5, 5, 5, 5], 10) == [(0, 2), (2, 4)]
    assert plan_shards([50, 1, 1], 10) == [(0, 1), (1, 3)]   # an oversized row gets a shard of its own
    assert plan_shards([], 10) == [(0, 0)]
    assert plan_shards([1] * 7, 100) == [(0, 7)]


def test_cli_stage_only(tmp_path, capsys):
    from mr2bench.cli import main

    build = make_build(tmp_path / "build", "video")
    rc = main(["publish", str(build), "--stage-only", str(tmp_path / "stage")])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "items 6 rows" in out and "full_rankings 15 rows" in out and "nothing uploaded" in out
    meta = strict_front_matter((tmp_path / "stage" / "README.md").read_text(encoding="utf-8"))
    assert meta["configs"][0]["config_name"] == "items"
    # missing BENCH_DIR and --results together, or neither: clear usage error
    assert main(["publish", "--stage-only", str(tmp_path / "x")]) == 2
    assert main(["publish", str(build), "--repo-id", "not a repo", "--stage-only", str(tmp_path / "y")]) == 2


# ---------------------------------------------------------------- evaluation runs (issue 4's OUT/<model>)

def make_run(root: Path) -> Path:
    """An evaluate-model output folder OUT/<model>: two benchmarks, samples + results, summary, leaderboard."""
    from mr2bench.jsonl import write_json, write_jsonl
    from mr2bench.results import SCHEMA_VERSION

    run = root / "length"
    for bench, n in (("mr2bench-video", 4), ("vl-rewardbench", 3)):
        (run / bench).mkdir(parents=True)
        rows = [{"id": f"{bench}-{i}", "category": "general", "group": f"{bench}-{i}", "rankings": [1, 2],
                 "permutation": [1, 0], "scores": [float(10 + i), 3.0], "credit": 1.0, "status": "ok",
                 "error": None, "extra": {}} for i in range(n)]
        rows[-1].update(scores=None, credit=None, status="failed", error="missing media")
        write_jsonl(run / bench / "samples.jsonl", rows)
        write_json(run / bench / "results.json", {
            "schema_version": SCHEMA_VERSION, "benchmark": bench, "benchmark_version": "1.0", "hub_id": None,
            "revision": None, "split": "test", "protocol": "n-way", "primary_metric": "accuracy",
            "headline_metric": "accuracy", "metrics": {"accuracy": 1.0, "pairwise": 0.75},
            "per_category": {"general": {"accuracy": 1.0}}, "ci95": [0.8, 1.0], "n_items": n,
            "n_scored": n - 1, "n_failed": 1, "n_parse_failures": 0, "seed": 13, "model": "length",
            "permutations": 1, "packages": {"mr2bench": "0.1.0", "datasets": "5.2.0"}, "git_sha": "abc1234",
            "command": f"mr2bench evaluate-model --model length --benchmarks {bench} --out runs/eval --seed 13"})
    write_json(run / "summary.json", {"model": "length", "avg": 1.0})
    (run / "leaderboard.md").write_text("# Leaderboard\n\n| Model | MR2-Video | Avg |\n|---|---|---|\n"
                                        "| length | 100.0 | 100.0 |\n", encoding="utf-8")
    (run / "leaderboard.png").write_bytes(_png(3))
    return run


def test_stage_results_card_and_load(tmp_path):
    import datasets

    from mr2bench.hub.stage_run import stage_results, validate_results_stage
    from mr2bench.hub.validate import split_card

    run = make_run(tmp_path / "out")
    staged = stage_results(run, tmp_path / "stage", repo_id="me/results")
    validate_results_stage(staged)
    assert staged.benchmarks == ("mr2bench-video", "vl-rewardbench") and staged.model == "length"
    readme = (staged.stage_dir / "README.md").read_text(encoding="utf-8")
    meta, body = split_card(readme)
    assert [c["config_name"] for c in meta["configs"]] == ["mr2bench-video", "vl-rewardbench"]
    assert "| length | 100.0 | 100.0 |" in body and "\n# Leaderboard\n" not in body
    assert "| mr2bench-video | 1.0 | accuracy | 1.0000 | [0.8000, 1.0000] | 4 | 3 | 1 | 0 |" in body
    assert "mr2bench evaluate-model --model length --benchmarks vl-rewardbench" in body
    assert "Seed: 13" in body and "datasets 5.2.0" in body and "abc1234" in body
    ds = datasets.load_dataset(str(staged.stage_dir), "vl-rewardbench", split="test",
                               cache_dir=str(tmp_path / "cache"))
    assert ds["id"] == ["vl-rewardbench-0", "vl-rewardbench-1", "vl-rewardbench-2"]
    assert ds[2]["status"] == "failed" and ds[2]["scores"] is None
    for f in ("summary.json", "leaderboard.md", "leaderboard.png", "mr2bench-video/results.json"):
        assert (staged.stage_dir / f).read_bytes() == (run / f).read_bytes()


def test_results_missing_primary_metric_is_clear(tmp_path):
    from mr2bench.hub.stage_run import stage_results

    run = make_run(tmp_path / "out")
    res = json.loads((run / "vl-rewardbench" / "results.json").read_text())
    res["primary_metric"] = "macro_accuracy"
    (run / "vl-rewardbench" / "results.json").write_text(json.dumps(res))
    with pytest.raises(DataError, match=r"vl-rewardbench/results.json: field 'primary_metric'"):
        stage_results(run, tmp_path / "stage")


def test_real_image_build_stages_and_validates(tmp_path, capsys):
    """issue 3's real builder (small demo arena) -> stage -> load_dataset round trip + card checks."""
    import datasets

    from mr2bench.cli import main

    build = tmp_path / "build"
    assert main(["build-benchmark", "image", "--out", str(build), "--limit", "4", "--variants", "1", "--min-judgments", "1"]) == 0
    assert main(["publish", str(build), "--stage-only", str(tmp_path / "stage")]) == 0
    out = capsys.readouterr().out
    assert "media image" in out and "validated" in out
    items = datasets.load_dataset(str(tmp_path / "stage"), "items", split="test", cache_dir=str(tmp_path / "c"))
    assert items.features["image"] == datasets.Image() and items.num_rows >= 1
    assert items[0]["image"].size[0] > 0
