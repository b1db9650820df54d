"""The bundled reward model behind evaluate-model (mr2: and mr2-single:), the adapters directly, and GRPO."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("pyarrow")

from mr2bench.adapters import AdapterOptions, load_adapter  # noqa: E402
from mr2bench.cli import main  # noqa: E402
from mr2bench.jsonl import read_jsonl  # noqa: E402
from mr2bench.model.checkpoint import new_reward_model, save_reward_model  # noqa: E402
from mr2bench.model.tiny import save_tiny_model  # noqa: E402
from mr2bench.schema import Media, ScoringRequest, Verdict  # noqa: E402

torch.set_num_threads(1)
RESPONSES = ["The cat sits on the mat.", "A dog runs on the field.", "yes", "The square is blue."]


def _checkpoint(root: Path, family: str) -> Path:
    base = save_tiny_model(root / "base", family)
    rm = new_reward_model(str(base), device="cpu", seed=0)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for layer in (rm.head.net[0], rm.head.net[2]):
            layer.weight.copy_(torch.randn(layer.weight.shape, generator=gen))
    return save_reward_model(rm, root / "ckpt", base_model=str(base), merge=True)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return _checkpoint(tmp_path_factory.mktemp("mr2"), "qwen3_vl")


@pytest.fixture(scope="module")
def molmo2_ckpt(tmp_path_factory):
    """The released checkpoint's architecture (Molmo2), images through its torch-only processor."""
    return _checkpoint(tmp_path_factory.mktemp("mr2-molmo2"), "molmo2")


def build_benchmark(root: Path, kind: str, n_items: int = 4) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    from mr2bench.media import write_test_video

    (root / "media").mkdir(parents=True)
    rows = []
    for i in range(n_items):
        if kind == "image":
            rel = f"media/q{i}.png"
            Image.new("RGB", (56 + 8 * i, 40), (30 * i, 90, 200)).save(root / rel)
        else:
            rel = f"media/v{i}.mp4"
            write_test_video(root / rel, frames=4 + i, size=(48, 32))
        rows.append({"id": f"q{i}-v0", "question_id": f"q{i}", "prompt": f"What is shown in item {i}?",
                     "responses": [f"{r} ({i})" for r in RESPONSES], "rankings": [2, 1, 4, 3],
                     "models": ["a", "b", "c", "d"], kind: rel, "video" if kind == "image" else "image": None,
                     "category": "photo", "variant": 0})
    pq.write_table(pa.Table.from_pylist(rows), root / "items.parquet")


def run_eval(model: str, bench: str, data: Path, out: Path, *extra: str) -> dict[str, list[float]]:
    code = main(["evaluate-model", "--no-progress", "--model", model, "--benchmarks", bench, "--data-dir",
                 str(data), "--out", str(out), "--device", "cpu", "--num-frames", "4", *extra])
    assert code == 0
    (samples,) = out.glob(f"*/{bench}/samples.jsonl")
    results = json.loads((samples.parent / "results.json").read_text())
    assert results["n_failed"] == 0 and results["n_scored"] == results["n_items"]
    return {r["id"]: (r["scores"], r["permutation"]) for r in read_jsonl(samples)}


@pytest.mark.parametrize("kind", ["image", "video"])
def test_evaluate_model_runs_mr2_and_mr2_single(ckpt, tmp_path, kind):
    _check_three_runs(ckpt, tmp_path, kind)


@pytest.mark.parametrize("kind", ["image", "video"])
def test_evaluate_model_runs_mr2_on_molmo2(molmo2_ckpt, tmp_path, kind):
    _check_three_runs(molmo2_ckpt, tmp_path, kind)


def _check_three_runs(ckpt: Path, tmp_path: Path, kind: str) -> None:
    bench = f"mr2bench-{kind}"
    build_benchmark(tmp_path / "data", kind)
    iso = run_eval(f"mr2:{ckpt}", bench, tmp_path / "data", tmp_path / "iso", "--model-arg", "attention=isolated",
                   "--batch-size", "2")
    single = run_eval(f"mr2-single:{ckpt}", bench, tmp_path / "data", tmp_path / "single")
    causal = run_eval(f"mr2:{ckpt}", bench, tmp_path / "data", tmp_path / "causal")
    assert set(iso) == set(single) == set(causal) and len(iso) == 4
    for item_id, (scores, perm) in single.items():
        # one isolated pass = N single passes, in the original response order
        np.testing.assert_allclose(iso[item_id][0], scores, rtol=1e-4, atol=1e-4)
        # causal is the release's joint layout (read before each separator): not the single passes
        assert causal[item_id][1] == perm
        assert not np.allclose(causal[item_id][0], scores, atol=1e-4)
        assert max(scores) - min(scores) > 1e-3


def test_adapters_through_the_protocol(ckpt, tmp_path):
    from PIL import Image

    Image.new("RGB", (64, 48), (10, 200, 30)).save(tmp_path / "a.png")
    opts = AdapterOptions(device="cpu", batch_size=2, extra={"attention": "isolated"})
    multi = load_adapter(f"mr2:{ckpt}", opts)
    single = load_adapter(f"mr2-single:{ckpt}", opts)
    reqs = [ScoringRequest(prompt="Describe.", responses=tuple(RESPONSES), media=(Media("image", path="a.png"),),
                           item_id="x", media_root=str(tmp_path)),
            ScoringRequest(prompt="Text only?", responses=tuple(RESPONSES[:2]), item_id="y")]
    a, b = multi.score_batch(reqs), [single.score(r) for r in reqs]
    assert all(isinstance(v, Verdict) for v in a + b)
    assert [v.usage["forward_passes"] for v in a + b] == [1.0, 1.0, 4.0, 2.0]
    for x, y in zip(a, b):
        np.testing.assert_allclose(x.scores, y.scores, rtol=1e-4, atol=1e-4)
    with pytest.raises(Exception, match="unknown --model-arg"):
        load_adapter(f"mr2:{ckpt}", AdapterOptions(device="cpu", extra={"atention": "causal"}))


def test_grpo_reward_scores_groups_in_one_pass_and_chunks(ckpt):
    from mr2bench.model.checkpoint import LoadOptions, load_reward_model
    from mr2bench.model.grpo import MR2Reward

    rm = load_reward_model(str(ckpt), LoadOptions(device="cpu", attention="isolated"))
    calls = []
    original = rm.score_items
    rm.score_items = lambda items, mode=None: calls.append([len(i.responses) for i in items]) or original(items, mode)
    reward = MR2Reward(rm, max_group=3)
    prompts = ["p one"] * 4 + [[{"role": "user", "content": "p two"}]] * 2
    completions = [[{"role": "assistant", "content": r}] for r in RESPONSES] + ["short", "longer answer"]
    out = reward(prompts=prompts, completions=completions)
    assert calls == [[3], [1], [2]]  # group of 4 chunked 3 + 1; group of 2 in one pass
    rm.score_items = original
    alone = [rm.score_items([rm.build_item("p one", [r])])[0][0] for r in RESPONSES]
    np.testing.assert_allclose(out[:4], alone, rtol=1e-4, atol=1e-4)  # isolated: chunking changes nothing
    assert len(out) == 6 and all(isinstance(v, float) for v in out)


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    from mr2bench.schema import DataError

    with pytest.raises(DataError, match="reward_model_config.json"):
        load_adapter(f"mr2:{tmp_path}", AdapterOptions(device="cpu"))
