"""Issue 17, items 6-7: GRPO rewards with TRL-shaped calls (whole groups, images from the messages, several
images, groups gathered across ranks) and `mr2bench train --recipe paper` (settings, exact resume, paths)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")
pytest.importorskip("accelerate")

from mr2bench.cli import main  # noqa: E402
from mr2bench.jsonl import read_jsonl  # noqa: E402
from mr2bench.model.checkpoint import LoadOptions, load_reward_model, new_reward_model  # noqa: E402
from mr2bench.model.grpo import GroupSplitError, MR2Reward, check_grpo_config  # noqa: E402
from mr2bench.model.tiny import save_tiny_model  # noqa: E402
from mr2bench.model.train import RECIPES, resolve_recipe  # noqa: E402

from model_helpers import sharpen  # noqa: E402

torch.set_num_threads(1)
COMPLETIONS = ["The cat sits on the mat.", "A dog runs.", "yes", "The answer is no, the square is blue."]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("base") / "qwen", "qwen2_5_vl")


@pytest.fixture(scope="module")
def rm(base):
    return sharpen(new_reward_model(str(base), device="cpu", seed=0).eval())


def _images():
    from PIL import Image

    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (56, 84, 3), dtype=np.uint8)) for _ in range(2)]


def _conversation(text, parts):
    """A TRL conversational prompt: [{"role", "content": [parts..., {"type": "text"}]}] (real-artifacts.md,
    'TRL's GRPOTrainer calls each reward function ...')."""
    return [{"role": "user", "content": [*parts, {"type": "text", "text": text}]}]


def _trl_call(reward, prompts, completions, **columns):
    """Called the way GRPOTrainer calls a reward function: keywords only, completion_ids, every column."""
    return reward(prompts=prompts, completions=[[{"role": "assistant", "content": c}] for c in completions],
                  completion_ids=[[1, 2, 3] for _ in completions], **columns)


def _expected(rm, prompt, completions, images):
    from mr2bench.model.reward_model import MediaPayload

    item = rm.build_item(prompt, completions, [MediaPayload("image", im) for im in images])
    return rm.score_items([item])[0]


# -- GRPO ---------------------------------------------------------------------------------------------------
def test_images_inside_the_messages_are_used_all_of_them(rm):
    imgs = _images()
    prompt = _conversation("Which picture?", [{"type": "image", "image": im} for im in imgs])
    out = _trl_call(MR2Reward(rm), [prompt] * 4, COMPLETIONS)
    np.testing.assert_allclose(out, _expected(rm, "Which picture?", COMPLETIONS, imgs), rtol=1e-5, atol=1e-6)
    first_only = _expected(rm, "Which picture?", COMPLETIONS, imgs[:1])
    assert max(abs(a - b) for a, b in zip(out, first_only)) > 1e-4  # the second image counts


def test_images_column_with_placeholders_in_the_messages(rm):
    """TRL's vision datasets: an `images` column per row and bare {"type": "image"} parts in the prompt."""
    imgs = _images()
    prompt = _conversation("Which picture?", [{"type": "image"}, {"type": "image"}])
    out = _trl_call(MR2Reward(rm), [prompt] * 4, COMPLETIONS, images=[imgs] * 4, solution=["x"] * 4)
    np.testing.assert_allclose(out, _expected(rm, "Which picture?", COMPLETIONS, imgs), rtol=1e-5, atol=1e-6)
    single = _trl_call(MR2Reward(rm), ["Which picture?"] * 4, COMPLETIONS, image=[imgs[0]] * 4)
    np.testing.assert_allclose(single, _expected(rm, "Which picture?", COMPLETIONS, imgs[:1]), rtol=1e-5, atol=1e-6)


def test_two_draws_of_one_prompt_are_two_groups(rm):
    calls = []
    original = rm.score_items
    rm.score_items = lambda items, mode=None: calls.append([len(i.responses) for i in items]) or original(items, mode)
    try:
        out = _trl_call(MR2Reward(rm, num_generations=4), ["Same prompt?"] * 8, COMPLETIONS * 2)
    finally:
        rm.score_items = original
    assert calls == [[4], [4]] and out[:4] == out[4:]


def test_a_cut_group_without_a_process_group_is_refused(rm):
    with pytest.raises(GroupSplitError, match="per_device_train_batch_size.*num_generations"):
        _trl_call(MR2Reward(rm, num_generations=4), ["Cut?"] * 2, COMPLETIONS[:2])


def test_check_grpo_config_before_training():
    args = SimpleNamespace(per_device_train_batch_size=2, num_generations=4, world_size=2)
    with pytest.raises(GroupSplitError, match="per_device_train_batch_size=2 is not a multiple of num_generations=4"):
        check_grpo_config(args, distributed=False)
    assert check_grpo_config(args, distributed=True) is True  # groups will be gathered
    assert check_grpo_config(SimpleNamespace(per_device_train_batch_size=8, num_generations=4, world_size=2)) is False
    assert check_grpo_config(SimpleNamespace(per_device_train_batch_size=2, num_generations=4, world_size=1)) is False


def _rank_worker(rank: int, world: int, init: str, base: str, out: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        model = sharpen(new_reward_model(base, device="cpu", seed=0).eval())
        # TRL's order: one prompt's 4 completions consecutive, then split over the 2 ranks (2 rows each)
        mine = slice(2 * rank, 2 * rank + 2)
        rewards = _trl_call(MR2Reward(model, num_generations=4), ["Spread?"] * 2, COMPLETIONS[mine])
        Path(out, f"rank{rank}.json").write_text(json.dumps(rewards))
    finally:
        dist.destroy_process_group()


def test_a_group_spread_over_ranks_is_gathered_and_scored_whole(base, rm, tmp_path):
    import torch.multiprocessing as mp

    init = f"file://{tmp_path / 'rendezvous'}"
    mp.spawn(_rank_worker, args=(2, init, str(base), str(tmp_path)), nprocs=2, join=True)
    got = json.loads((tmp_path / "rank0.json").read_text()) + json.loads((tmp_path / "rank1.json").read_text())
    whole = rm.score_items([rm.build_item("Spread?", COMPLETIONS)], "causal")[0]
    np.testing.assert_allclose(got, whole, rtol=1e-5, atol=1e-6)
    fragment = rm.score_items([rm.build_item("Spread?", COMPLETIONS[2:])], "causal")[0]
    assert max(abs(a - b) for a, b in zip(whole[2:], fragment)) > 1e-4  # what scoring the fragment would give


# -- training recipe ----------------------------------------------------------------------------------------
def test_paper_recipe_is_the_releases_train_sh_and_flags_override_it():
    # scripts/train.sh of the release (real-artifacts.md "Training"): r 128, alpha 16, dropout 0.05, GC on,
    # lr 1e-4 linear, warm-up 0, clip 1.0, weight decay 0, 3 epochs, global batch 64, 24,576 / 16,384 tokens
    paper = resolve_recipe("paper", {})
    assert paper == {**RECIPES["paper"]} and paper["global_batch"] == 64 and paper["gradient_checkpointing"]
    assert (paper["lora_r"], paper["lora_alpha"], paper["lora_dropout"], paper["lr"]) == (128, 16, 0.05, 1e-4)
    assert (paper["max_length"], paper["max_vision_tokens"], paper["epochs"]) == (24576, 16384, 3)
    assert (paper["warmup_ratio"], paper["max_grad_norm"], paper["weight_decay"]) == (0.0, 1.0, 0.0)
    mine = resolve_recipe("paper", {"lr": 5e-3, "gradient_checkpointing": False, "grad_accum": 2, "lora_r": None})
    assert mine["lr"] == 5e-3 and mine["gradient_checkpointing"] is False and mine["lora_r"] == 128
    assert mine["grad_accum"] == 2 and "global_batch" not in mine  # an explicit accumulation replaces it


def _rows(n: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    words = "dog red ball field photo square video blue green answer image first".split()
    out = []
    for _ in range(n):
        resp = [" ".join(rng.choice(words, 3)) for _ in range(3)]
        resp[0] = "the cat " + resp[0]
        out.append({"prompt": "Which mentions the cat?", "responses": resp, "rankings": [1, 2, 3]})
    return out


def _data(tmp_path: Path, n: int) -> Path:
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in _rows(n)))
    return path


def test_cli_paper_recipe_trains_with_the_release_settings(base, tmp_path):
    data = _data(tmp_path, 4)
    out = tmp_path / "run"
    code = main(["train", "--recipe", "paper", "--data", str(data), "--base", str(base), "--out", str(out),
                 "--epochs", "1", "--max-length", "512", "--device", "cpu"])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["grad_accum"] == 64 and summary["steps"] == 1  # 4 rows < 64: one step at the epoch's end
    state = json.loads(next((out / "checkpoints").glob("step-*/trainer_state.json")).read_text())["config"]
    assert state["gradient_checkpointing"] and state["global_batch"] == 64 and state["lora_dropout"] == 0.05
    adapter = json.loads((out / "final" / "adapter" / "adapter_config.json").read_text())
    assert adapter["r"] == 128 and adapter["lora_alpha"] == 16 and adapter["lora_dropout"] == 0.05
    # a global batch that the micro-batches cannot make is a clear error (exit 2)
    assert main(["train", "--data", str(data), "--base", str(base), "--out", str(tmp_path / "bad"),
                 "--global-batch", "3", "--batch-size", "2", "--device", "cpu"]) == 2


class Killed(RuntimeError):
    """Stands for the process dying (SIGKILL, OOM) between two saves."""


def _kill_at(monkeypatch, step: int) -> None:
    """Make the run die right after optimizer step `step` is logged (between two saves)."""
    import mr2bench.model.train as train_mod

    real = train_mod.append_jsonl

    def append(path, record):
        real(path, record)
        if Path(path).name == "train_log.jsonl" and record.get("step") == step:
            raise Killed(f"killed after step {step}")

    monkeypatch.setattr(train_mod, "append_jsonl", append)


def _final_state(folder: Path) -> dict:
    from safetensors.torch import load_file

    return {**load_file(str(folder / "value_head.safetensors")),
            **load_file(str(folder / "adapter" / "adapter_model.safetensors"))}


def test_resume_after_a_kill_is_bit_identical_with_dropout_and_paths_survive_a_move(base, tmp_path, monkeypatch):
    shutil.copytree(base, tmp_path / "base")
    monkeypatch.chdir(tmp_path)  # a relative --base, as users type it
    _data(tmp_path, 6)
    common = ["train", "--recipe", "none", "--data", "train.jsonl", "--base", "./base", "--lora-r", "4",
              "--lora-dropout", "0.3", "--lr", "5e-3", "--epochs", "2", "--batch-size", "2",
              "--max-length", "512", "--save-steps", "2", "--device", "cpu"]
    assert main(common + ["--out", "straight"]) == 0
    _kill_at(monkeypatch, 5)
    with pytest.raises(Killed):
        main(common + ["--out", "parted"])
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    shutil.copytree("parted", "no_rng")
    assert main(common + ["--out", "parted", "--resume"]) == 0  # from step 4: step 5 is run again
    straight = list(read_jsonl(Path("straight/train_log.jsonl")))
    parted = list(read_jsonl(Path("parted/train_log.jsonl")))
    assert [r["step"] for r in parted] == [1, 2, 3, 4, 5, 6]
    assert [r["loss"] for r in parted] == [r["loss"] for r in straight]  # bit-identical on CPU
    a, b = _final_state(Path("straight/final")), _final_state(Path("parted/final"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # the attack: the same resume without restoring the RNG states drifts (dropout draws other masks)
    monkeypatch.setattr("mr2bench.model.train.load_rng", lambda folder: None)
    assert main(common + ["--out", "no_rng", "--resume"]) == 0
    drift = [r["loss"] for r in read_jsonl(Path("no_rng/train_log.jsonl"))]
    assert drift[:4] == [r["loss"] for r in straight[:4]] and drift[4:] != [r["loss"] for r in straight[4:]]
    # the stored base is absolute (and relative to the checkpoint): moving the checkpoint keeps it loadable
    cfg = json.loads(Path("straight/final/reward_model_config.json").read_text())
    assert Path(cfg["base_model"]).is_absolute() and cfg["base_model"] == str((tmp_path / "base").resolve())
    assert cfg["base_model_relative"] == "../../base"
    moved = tmp_path / "elsewhere" / "ckpt"
    shutil.move("straight/final", moved)
    monkeypatch.chdir(moved.parent)
    loaded = load_reward_model(str(moved), LoadOptions(device="cpu"))
    item = loaded.build_item("Which mentions the cat?", ["the cat sits", "a dog"])
    assert len(loaded.score_items([item])[0]) == 2


def test_resume_with_other_settings_is_refused(base, tmp_path):
    data = _data(tmp_path, 4)
    common = ["train", "--recipe", "none", "--data", str(data), "--base", str(base), "--lora-r", "4",
              "--epochs", "1", "--max-length", "512", "--save-steps", "1", "--device", "cpu", "--out",
              str(tmp_path / "run")]
    assert main(common + ["--batch-size", "2", "--max-steps", "1"]) == 0
    assert main(common + ["--batch-size", "1", "--resume"]) == 2  # another data order: a clear error
