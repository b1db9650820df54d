"""Saving and loading reward-model checkpoints through the real from_pretrained / hf_hub_download paths."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from mr2bench.model.checkpoint import LoadOptions, load_reward_model, new_reward_model, save_reward_model  # noqa: E402
from mr2bench.model.tiny import save_tiny_model  # noqa: E402

from model_helpers import release_reference_scores  # noqa: E402

torch.set_num_threads(1)
PROMPT = "Which answer is right?"
RESPONSES = ["The cat sits on the mat.", "A dog runs.", "yes"]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("base") / "qwen", "qwen2_5_vl")


def _scores(rm, responses=RESPONSES):
    return rm.score_items([rm.build_item(PROMPT, responses)])[0]


def _trained_like(base, seed=3):
    """A LoRA model whose adapters and head are non-trivial (as after training)."""
    rm = new_reward_model(str(base), device="cpu", lora_r=4, lora_alpha=8, seed=0)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in rm.named_parameters():
            if "lora_B" in name or name.startswith("head."):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    return rm.eval()


@pytest.mark.parametrize("merge", [False, True])
def test_save_then_load_gives_identical_scores(base, tmp_path, merge):
    rm = _trained_like(base)
    before = _scores(rm)
    plain = new_reward_model(str(base), device="cpu", seed=0).eval()
    plain.head.load_state_dict(rm.head.state_dict())
    assert not np.allclose(before, _scores(plain), atol=1e-4)  # the adapter matters
    out = save_reward_model(rm, tmp_path / "ckpt", base_model=str(base), merge=merge)
    cfg = json.loads((out / "reward_model_config.json").read_text())
    assert cfg["weights"] == ("merged" if merge else "lora") and cfg["value_head_hidden_dim"] == 1024
    assert cfg["score_position"] == "before_separator" and cfg["format_version"] == 2
    assert (out / "value_head.safetensors").is_file()
    assert (out / "adapter" / "adapter_config.json").is_file() != merge
    loaded = load_reward_model(str(out), LoadOptions(device="cpu"))
    np.testing.assert_allclose(_scores(loaded), before, rtol=1e-5, atol=1e-6)


def _release_layout(base, folder):
    """The released checkpoint's layout (real-artifacts.md, "The paper's release"): merged weights + value_head.pt
    (torch.save of an nn.Sequential state dict, bf16) + reward_model_config.json with the release's five keys."""
    shutil.copytree(base, folder)
    gen = torch.Generator().manual_seed(7)
    head = torch.nn.Sequential(torch.nn.Linear(64, 1024), torch.nn.SiLU(), torch.nn.Linear(1024, 1))
    with torch.no_grad():
        for p in head.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))
    head = head.to(torch.bfloat16)
    torch.save(head.state_dict(), folder / "value_head.pt")
    (folder / "reward_model_config.json").write_text(json.dumps(
        {"value_head_type": "mlp", "value_head_hidden_dim": 1024, "value_head_activation": "silu",
         "value_head_input_dim": 64, "resp_repr_mode": "last"}))
    return head


def _manual_scores(folder, head, responses=RESPONSES):
    return release_reference_scores(folder, head, PROMPT, responses)[0]


def test_release_layout_from_a_folder(base, tmp_path):
    head = _release_layout(base, tmp_path / "release")
    rm = load_reward_model(str(tmp_path / "release"), LoadOptions(device="cpu"))
    np.testing.assert_allclose(_scores(rm), _manual_scores(tmp_path / "release", head), rtol=1e-4, atol=1e-5)


def test_release_layout_from_a_hub_id_through_the_cache(base, tmp_path, monkeypatch):
    """A Hub id goes through hf_hub_download / from_pretrained; served here from an offline cache."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "cache" / "models--yinuoy--MR2-tiny-RM"
    head = _release_layout(base, repo / "snapshots" / commit)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    rm = load_reward_model("yinuoy/MR2-tiny-RM", LoadOptions(device="cpu", cache_dir=str(tmp_path / "cache")))
    np.testing.assert_allclose(_scores(rm), _manual_scores(repo / "snapshots" / commit, head), rtol=1e-4, atol=1e-5)


def test_not_a_checkpoint_is_a_clear_error(base):
    with pytest.raises(FileNotFoundError, match="reward_model_config.json"):
        load_reward_model(str(base), LoadOptions(device="cpu"))
