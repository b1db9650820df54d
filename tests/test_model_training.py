"""N-way reward-model training on a generated preference task: learning, data checks, resume, CLI."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")
pytest.importorskip("accelerate")

from mr2bench.cli import main  # noqa: E402
from mr2bench.jsonl import read_jsonl  # noqa: E402
from mr2bench.model.checkpoint import LoadOptions, load_reward_model, new_reward_model  # noqa: E402
from mr2bench.model.tiny import save_tiny_model  # noqa: E402
from mr2bench.model.train import TrainConfig, TrainRow, load_example, make_batches, train  # noqa: E402

torch.set_num_threads(1)
WORDS = "dog red ball field photo square video blue green answer image first".split()


def preference_rows(n: int, seed: int = 0) -> list[dict]:
    """Best response = the one that mentions 'cat' (never as its last word), N = 4."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        resp = [" ".join(rng.choice(WORDS, 4)) for _ in range(4)]
        words = resp[0].split()
        words.insert(int(rng.integers(0, 3)), "cat")
        resp[0] = " ".join(words)
        rows.append({"prompt": "Which mentions the cat?", "responses": resp, "rankings": [1, 2, 3, 4]})
    return rows


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("base") / "qwen", "qwen2_5_vl")


def top1(rm, rows) -> float:
    items = [rm.build_item(r["prompt"], r["responses"]) for r in rows]
    return float(np.mean([int(np.argmax(s) == 0) for s in rm.score_items(items)]))


def test_training_moves_accuracy_from_chance_to_above_90(base, tmp_path):
    rows = preference_rows(32)
    data = write_jsonl(tmp_path / "train.jsonl", rows)
    before = top1(new_reward_model(str(base), device="cpu", seed=0).eval(), rows)
    summary = train(TrainConfig(data=str(data), base=str(base), out=str(tmp_path / "run"), lora_r=8, lora_alpha=16,
                                lr=5e-3, epochs=10, batch_size=4, max_length=512, device="cpu", save_steps=1000))
    after = top1(load_reward_model(summary["final"], LoadOptions(device="cpu")), rows)
    assert before <= 0.4
    assert after > 0.9
    log = list(read_jsonl(tmp_path / "run" / "train_log.jsonl"))
    assert len(log) == summary["steps"] == 80
    assert np.mean([r["loss"] for r in log[-8:]]) < 0.5 * np.mean([r["loss"] for r in log[:8]])


def test_loading_shuffles_every_epoch_and_breaks_top_ties_at_random():
    row = TrainRow(1, "p", ("a", "b", "c", "d"), (1, 1, 3, 4), None)
    picks, orders = set(), set()
    for epoch in range(20):
        ex = load_example(row, seed=0, epoch=epoch)
        assert sorted(ex.responses) == ["a", "b", "c", "d"] and ex.rankings[ex.target] == 1
        assert [row.rankings[row.responses.index(r)] for r in ex.responses] == list(ex.rankings)
        picks.add(ex.responses[ex.target])
        orders.add(ex.responses)
    assert picks == {"a", "b"} and len(orders) > 5
    assert load_example(row, 0, 3) == load_example(row, 0, 3)  # seeded


def test_batches_hold_one_modality(tmp_path):
    from mr2bench.schema import Media

    rows = [TrainRow(i, "p", ("a", "b"), (1, 2), None if i % 3 == 0 else Media("image" if i % 3 == 1 else "video",
                                                                          path="x")) for i in range(1, 20)]
    batches = make_batches(rows, 4, seed=1, epoch=0)
    assert sorted(r.index for b in batches for r in b) == list(range(1, 20))
    assert all(len({r.modality for r in b}) == 1 for b in batches)
    assert make_batches(rows, 4, 1, 0) != make_batches(rows, 4, 1, 1)


def test_media_rows_pairwise_rows_and_quarantine(base, tmp_path):
    from PIL import Image

    from mr2bench.media import write_test_video

    Image.new("RGB", (40, 30), (200, 10, 10)).save(tmp_path / "a.png")
    write_test_video(tmp_path / "clip.mp4", frames=4, size=(32, 32))
    rows = preference_rows(4) + [
        {"prompt": "What color?", "responses": ["red cat", "blue"], "rankings": [1, 2], "image": "a.png"},
        {"prompt": "What moves?", "responses": ["a square", "nothing"], "rankings": [2, 1], "video": "clip.mp4"},
        {"prompt": "x", "responses": ["only one"], "rankings": [1]},                          # N < 2
        {"prompt": "x", "responses": ["a", "b"], "rankings": [1, 2], "image": "missing.png"},  # no file
        {"prompt": "x", "responses": ["a", "b"], "rankings": [2]},                           # length mismatch
        "not json {",
    ]
    data = write_jsonl(tmp_path / "train.jsonl", rows[:-1])
    summary = train(TrainConfig(data=str(data), base=str(base), out=str(tmp_path / "run"), lora_r=4, lr=1e-3,
                                epochs=1, batch_size=2, max_length=512, device="cpu", num_frames=4,
                                gradient_checkpointing=True))
    assert summary["rows_in"] == 9 == summary["rows_kept"] + summary["rows_quarantined"]
    assert summary["rows_quarantined"] == 3
    bad = list(read_jsonl(tmp_path / "run" / "quarantine.jsonl"))
    assert [b["row"] for b in bad] == [7, 8, 9]
    assert "responses" in bad[0]["reason"] and "not found" in bad[1]["reason"] and "rankings" in bad[2]["reason"]
    # a malformed line is a clear error naming file and row, exit code 2 from the CLI
    write_jsonl(tmp_path / "broken.jsonl", rows[:1] + rows[-1:])
    code = main(["train", "--data", str(tmp_path / "broken.jsonl"), "--base", str(base), "--out",
                 str(tmp_path / "run2"), "--device", "cpu"])
    assert code == 2


def _trained_state(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "value_head.safetensors"))


def test_resume_continues_from_the_saved_step(base, tmp_path):
    data = write_jsonl(tmp_path / "train.jsonl", preference_rows(12))
    common = ["train", "--recipe", "none", "--data", str(data), "--base", str(base), "--lora-r", "4", "--lora-dropout", "0", "--lr",
              "5e-3", "--epochs", "2", "--batch-size", "2", "--grad-accum", "2", "--max-length", "512",
              "--save-steps", "2", "--device", "cpu"]
    straight, parted = tmp_path / "straight", tmp_path / "parted"
    assert main(common + ["--out", str(straight)]) == 0
    assert main(common + ["--out", str(parted), "--max-steps", "4"]) == 0
    state = json.loads((parted / "checkpoints" / "step-000004" / "trainer_state.json").read_text())
    assert state["step"] == 4 and state["epoch"] == 1 and state["next_batch"] == 2
    assert main(common + ["--out", str(parted), "--resume"]) == 0
    steps = [r["step"] for r in read_jsonl(parted / "train_log.jsonl")]
    assert steps == [1, 2, 3, 4, 5, 6]  # resumed at 5, nothing repeated
    a, b = _trained_state(straight / "final"), _trained_state(parted / "final")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)
    assert json.loads((parted / "final" / "reward_model_config.json").read_text())["trained_steps"] == 6
