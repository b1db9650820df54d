"""judge:MODEL with a tiny random-weight Qwen2.5-VL saved to a folder and loaded through from_pretrained:
its text is unreadable, which exercises the parse-failure path end to end."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from mr2bench.adapters import AdapterOptions, load_adapter  # noqa: E402
from mr2bench.media import write_test_video  # noqa: E402
from mr2bench.schema import Media, ScoringRequest  # noqa: E402


@pytest.fixture(scope="module")
def tiny_judge(tmp_path_factory) -> Path:
    from mr2bench.model.tiny import save_tiny_model

    torch.set_num_threads(1)
    return save_tiny_model(tmp_path_factory.mktemp("tiny") / "judge", family="qwen2_5_vl", seed=0)


def png(path: Path, value: int = 90) -> Path:
    from PIL import Image

    Image.fromarray(np.full((28, 28, 3), value, np.uint8)).save(path)
    return path


def judge(model_dir: Path, **extra: str):
    return load_adapter(f"judge:{model_dir}", AdapterOptions(device="cpu", num_frames=4, seed=5,
                                                             extra={"max_tokens": "6", **extra}))


def test_unreadable_text_is_a_parse_failure(tiny_judge, tmp_path):
    a = judge(tiny_judge)
    request = ScoringRequest(prompt="What colour?", responses=("grey", "blue"), item_id="i1",
                             media=(Media(kind="image", path=str(png(tmp_path / "a.png"))),))
    v = a.score(request)
    assert v.scores is None and isinstance(v.raw, str) and v.raw
    assert v.usage["completion_tokens"] <= 6 and v.usage["prompt_tokens"] > 20
    assert v.usage["unreadable_samples"] == 1
    assert a.score(request).raw == v.raw                        # greedy: the same text again


def test_video_as_frames_and_seeded_samples(tiny_judge, tmp_path):
    video = write_test_video(tmp_path / "v.mp4", frames=6)
    request = ScoringRequest(prompt="Which is best?", responses=("a", "b", "c", "d"), item_id="v1",
                             media=(Media(kind="video", path=str(video)),))
    one = judge(tiny_judge, samples="2", temperature="1.0").score(request)
    two = judge(tiny_judge, samples="2", temperature="1.0").score(request)
    texts = json.loads(one.raw)
    assert len(texts) == 2 and one.raw == two.raw and one.scores is None   # reproducible, no global RNG
    state = torch.random.get_rng_state()
    judge(tiny_judge, samples="2", temperature="1.0").score(request)
    assert torch.equal(state, torch.random.get_rng_state())


def test_seeded_sampler_masks_all_but_one_token():
    from mr2bench.judges.local import _seeded_sampler

    scores = torch.tensor([[0.0, 1.0, 2.0, 3.0, 0.5]])
    picks = []
    for seed in range(20):
        out = _seeded_sampler(1.0, 1.0, seed)(None, scores)
        assert torch.isfinite(out).sum() == 1
        picks.append(int(out.argmax()))
    assert len(set(picks)) > 1                                   # it samples
    assert picks == [int(_seeded_sampler(1.0, 1.0, s)(None, scores).argmax()) for s in range(20)]
    assert {int(_seeded_sampler(1.0, 0.01, s)(None, scores).argmax()) for s in range(20)} == {3}  # top-p


def test_evaluate_model_counts_parse_failures(tiny_judge, tmp_path):
    from mr2bench.cli import evaluate_model_main

    data, out = tmp_path / "mr2", tmp_path / "out"
    data.mkdir()
    rows = [{"id": f"q{i}", "prompt": "Rank them", "responses": ["w", "x", "y", "z"],
             "rankings": [1, 2, 3, 4], "image": png(data / f"{i}.png", 40 * i).name} for i in range(2)]
    (data / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    rc = evaluate_model_main(["--model", f"judge:{tiny_judge}", "--benchmarks", "mr2bench-image", "--data-dir",
                              str(data), "--out", str(out), "--device", "cpu", "--no-progress",
                              "--model-arg", "max_tokens=4"])
    assert rc == 0
    bench = next((out).glob("judge__*/mr2bench-image"))
    res = json.loads((bench / "results.json").read_text())
    recs = [json.loads(line) for line in (bench / "samples.jsonl").read_text().splitlines()]
    assert res["n_items"] == 2 and res["n_parse_failures"] == 2 and res["n_failed"] == 0
    assert all(r["status"] == "parse_failure" and r["extra"]["raw"] for r in recs)
    # the declared MR^2Bench rule: a seeded pick, credited against the gold ranking
    expected = [1.0 if r["rankings"][r["extra"]["fallback_pick"]] == 1 else 0.0 for r in recs]
    assert [r["credit"] for r in recs] == expected
    assert res["metrics"]["best_of_n"] == pytest.approx(sum(expected) / 2)
    assert 0 < res["usage"]["completion_tokens"] <= 8


def test_vlrb_each_sample_in_its_own_order(tiny_judge, tmp_path):
    """VL-RewardBench's judge_protocol: k prompts, one per sample order, each recorded with its answer."""
    from mr2bench.judges.base import sample_orders

    a = judge(tiny_judge, samples="3")
    request = ScoringRequest(prompt="Which?", responses=("left one", "right one"), item_id="vl5",
                             benchmark="vl-rewardbench",
                             media=(Media(kind="image", path=str(png(tmp_path / "a.png"))),))
    shown: list[str] = []
    inputs = a._inputs
    a._inputs = lambda prompt, req: shown.append(prompt.text) or inputs(prompt, req)
    v = a.score(request)
    orders = sample_orders(request, 3, seed=5)
    assert [tuple(s["order"]) for s in v.samples] == orders and len(set(orders)) == 2
    assert all(s["answer"] is None for s in v.samples) and v.scores is None   # random weights: unreadable
    first = [t.index("Answer 1: left one") < t.index("Answer 2:") if "Answer 1: left one" in t else False
             for t in shown]
    assert len(shown) == 3 and first == [o == (0, 1) for o in orders]
    assert a.configs.for_request(request).max_tokens == 6          # the explicit arg wins over the spec's 2048
    assert a.configs.for_request(replace_benchmark(request)).sampling_temperature == 0.2


def replace_benchmark(request: ScoringRequest) -> ScoringRequest:
    from dataclasses import replace

    return replace(request, benchmark="mr2bench-image")
