"""The bundled model reads checkpoints as the paper's release trained them (issue 17, items 1-3, 5, 5b).

Every fixture that stands for the release is built from real-artifacts.md, "The paper's release": a merged model
folder (config.json + weights + tokenizer), ``value_head.pt`` = torch.save of an nn.Sequential state dict
(``0.weight`` [1024, H], ``0.bias``, ``2.weight`` [1, 1024], ``2.bias``) in bf16, and a reward_model_config.json
with the release's five keys. The tokenizer uses Qwen2's pre-tokenizer split, so that, as with the real Qwen
BPE, the token before a separator is a merged ".\\n\\n". The reference forward pass is
model_helpers.release_reference_scores, written from that page, not from our code.
"""
from __future__ import annotations

import inspect
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from mr2bench.adapters import AdapterOptions, load_adapter  # noqa: E402
from mr2bench.model.backbone import RESP_SEP, add_special_token  # noqa: E402
from mr2bench.model.checkpoint import LoadOptions, load_reward_model, new_reward_model, save_reward_model  # noqa: E402
from mr2bench.model.reward_model import fit_lengths  # noqa: E402
from mr2bench.model.tiny import build_tokenizer, save_tiny_model  # noqa: E402
from mr2bench.schema import DataError, ScoringRequest  # noqa: E402

from model_helpers import RELEASE_SEP, release_reference_scores  # noqa: E402

torch.set_num_threads(1)
PROMPT = "Which answer is right?"
RESPONSES = ["The answer is yes.", "It is blue!", "First point.\n\nSecond point.", "no"]
RELEASE_CONFIG = {"value_head_type": "mlp", "value_head_hidden_dim": 1024, "value_head_activation": "silu",
                  "value_head_input_dim": 64, "resp_repr_mode": "last"}


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A base model whose tokenizer holds <|resp_sep|> (the merged release's tokenizer does, per merge_lora.py)."""
    return save_tiny_model(tmp_path_factory.mktemp("base") / "qwen", "qwen2_5_vl",
                           tokenizer=build_tokenizer(qwen_split=True))


@pytest.fixture(scope="module")
def bare_base(tmp_path_factory):
    """A base like every real one: its tokenizer lacks <|resp_sep|>, its embedding has no row for it."""
    tok = build_tokenizer(qwen_split=True, separator=False)
    assert RESP_SEP not in tok.get_vocab()
    return save_tiny_model(tmp_path_factory.mktemp("bare") / "qwen", "qwen2_5_vl", tokenizer=tok)


def release_folder(base: Path, folder: Path, config: dict | None = None, head: torch.nn.Module | None = None,
                   state: dict | None = None) -> torch.nn.Module:
    """The release's merged layout; the head is random and large enough to separate the responses."""
    shutil.copytree(base, folder)
    if head is None:
        head = torch.nn.Sequential(torch.nn.Linear(64, 1024), torch.nn.SiLU(), torch.nn.Linear(1024, 1))
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for p in head.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))
    head = head.to(torch.bfloat16)
    torch.save(state if state is not None else head.state_dict(), folder / "value_head.pt")
    (folder / "reward_model_config.json").write_text(json.dumps(config or RELEASE_CONFIG))
    return head


def ours(folder: Path, responses=RESPONSES, **opts) -> tuple[list[float], object]:
    rm = load_reward_model(str(folder), LoadOptions(device="cpu", **opts))
    return rm.score_items([rm.build_item(PROMPT, list(responses))])[0], rm


# -- item 1: the separator on the installed transformers ----------------------------------------------------
def test_separator_is_added_with_the_installed_keyword_and_keeps_the_other_special_tokens():
    tok = build_tokenizer(separator=False)
    params = inspect.signature(tok.add_special_tokens).parameters
    # the bug: 4.x's keyword is gone from the installed transformers, so passing it raised TypeError
    assert "replace_additional_special_tokens" not in params
    before = tok.convert_tokens_to_ids("<|im_start|>")
    add_special_token(tok, RESP_SEP)
    sep = tok.convert_tokens_to_ids(RESP_SEP)
    assert tok.encode(RELEASE_SEP, add_special_tokens=False).count(sep) == 1
    assert tok.convert_tokens_to_ids("<|im_start|>") == before
    assert "<|im_start|>" in tok.decode([before], skip_special_tokens=False)
    assert tok.decode([before], skip_special_tokens=True) == ""  # still special after the addition


def test_train_from_a_base_without_the_separator_save_load_score(bare_base, tmp_path):
    """mr2bench train -> final LoRA checkpoint -> mr2: scores (the base embedding lacks the row at load: 5b)."""
    from mr2bench.cli import main

    rows = [{"prompt": f"Question {i}?", "responses": ["The answer is yes.", "no", "It is blue!"],
             "rankings": [1, 3, 2]} for i in range(3)]
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    code = main(["train", "--data", str(data), "--base", str(bare_base), "--out", str(tmp_path / "run"),
                 "--recipe", "none", "--lora-r", "4", "--epochs", "1", "--max-steps", "2", "--device", "cpu",
                 "--save-steps", "100", "--no-gradient-checkpointing"])
    assert code == 0
    final = tmp_path / "run" / "final"
    cfg = json.loads((final / "reward_model_config.json").read_text())
    assert cfg["weights"] == "lora" and cfg["score_position"] == "before_separator"
    from transformers import AutoTokenizer

    assert RESP_SEP in AutoTokenizer.from_pretrained(final).get_vocab()
    adapter = load_adapter(f"mr2:{final}", AdapterOptions(device="cpu"))
    verdict = adapter.score(ScoringRequest(prompt="Question 9?", responses=("no", "The answer is yes."), item_id="q"))
    assert len(verdict.scores) == 2 and all(math.isfinite(v) for v in verdict.scores)
    emb = adapter.model.backbone.get_input_embeddings().weight
    assert emb.shape[0] == len(adapter.model.tokenizer) and emb.shape[0] > len(AutoTokenizer.from_pretrained(bare_base))


def test_any_loading_failure_is_one_line_naming_the_model(base, tmp_path, monkeypatch):
    release_folder(base, tmp_path / "rel")

    def broken(*args, **kwargs):
        raise TypeError("add_special_tokens() got an unexpected keyword argument 'x'")

    monkeypatch.setattr("mr2bench.model.checkpoint.load_backbone", broken)
    with pytest.raises(DataError, match=r"--model.*TypeError.*unexpected keyword") as info:
        load_adapter(f"mr2:{tmp_path / 'rel'}", AdapterOptions(device="cpu"))
    assert "\n" not in str(info.value)


# -- item 2: the release's layout and positions --------------------------------------------------------------
def test_release_checkpoint_scores_equal_the_release_forward_pass(base, tmp_path):
    head = release_folder(base, tmp_path / "rel")
    got, rm = ours(tmp_path / "rel")
    want, ids, ends = release_reference_scores(tmp_path / "rel", head, PROMPT, RESPONSES)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)
    assert rm.score_position == "before_separator"
    item = rm.build_item(PROMPT, RESPONSES)
    assert item.prefix_ids + item.joint == ids  # the same joint tokenization, token for token
    tokens = rm.tokenizer.convert_ids_to_tokens([ids[e] for e in ends])
    assert tokens[0] == ".ĊĊ" and tokens[1] == "!ĊĊ"  # read at the merged token before each separator
    # the old rule (each response's own last token) reads other tokens and gives other scores
    old = load_reward_model(str(tmp_path / "rel"), LoadOptions(device="cpu"))
    old.score_position = "response_last_token"
    moved = old.score_items([old.build_item(PROMPT, RESPONSES)])[0]
    assert np.max(np.abs(np.array(moved) - want)) > 1e-2


def test_assistant_message_is_rendered_by_the_template_not_appended_to_a_generation_prompt(base, tmp_path):
    """Molmo2-4B's template renders an assistant message with a space before <|im_start|>assistant and leaves
    the turn open (real-artifacts.md); the sequence must be the template's own rendering of that message."""
    head = release_folder(base, tmp_path / "rel")
    cfg = json.loads((tmp_path / "rel" / "tokenizer_config.json").read_text())
    template = ("{% for m in messages %}{% if m['role'] == 'assistant' %} <|im_start|>assistant\n"
                "{% for p in m['content'] %}{{ p['text'] }}{% endfor %}{% else %}<|im_start|>{{ m['role'] }}\n"
                "{% for p in m['content'] %}{% if p['type'] == 'text' %}{{ p['text'] }}{% endif %}{% endfor %}"
                "<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    (tmp_path / "rel" / "chat_template.jinja").write_text(template)
    cfg.pop("chat_template", None)
    (tmp_path / "rel" / "tokenizer_config.json").write_text(json.dumps(cfg))
    got, rm = ours(tmp_path / "rel")
    assert rm.tokenizer.chat_template == template
    want, ids, ends = release_reference_scores(tmp_path / "rel", head, PROMPT, RESPONSES)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)
    gen = rm.tokenizer.apply_chat_template([{"role": "user", "content": [{"type": "text", "text": PROMPT}]}],
                                           add_generation_prompt=True, tokenize=False)
    assert rm.tokenizer.encode(gen, add_special_tokens=False) != ids[: len(rm.build_item(PROMPT, RESPONSES).prefix_ids)]
    assert rm.tokenizer.decode(ids[ends[-1]:]) == "no"  # the open turn: the last response ends the sequence


def test_isolated_equals_single_passes_under_the_release_rule(base, tmp_path):
    release_folder(base, tmp_path / "rel")
    rm = load_reward_model(str(tmp_path / "rel"), LoadOptions(device="cpu", attention="isolated"))
    one = rm.score_items([rm.build_item(PROMPT, RESPONSES)])[0]
    singles = [rm.score_items([rm.build_item(PROMPT, [r])], "causal")[0][0] for r in RESPONSES]
    np.testing.assert_allclose(one, singles, rtol=0, atol=1e-4)
    joint = rm.score_items([rm.build_item(PROMPT, RESPONSES)], "causal")[0]
    assert np.max(np.abs(np.array(joint) - singles)) > 1e-3  # isolated is not the joint layout


def test_awkward_responses_keep_the_layout(base, tmp_path):
    """A response starting with a newline merges with the template's header newline; an empty one still scores;
    a response holding the separator itself cannot be laid out and says so."""
    release_folder(base, tmp_path / "rel")
    rm = load_reward_model(str(tmp_path / "rel"), LoadOptions(device="cpu"))
    odd = ["\n\nThe answer is yes.", "", "no"]
    one = rm.score_items([rm.build_item(PROMPT, odd)], "isolated")[0]
    singles = [rm.score_items([rm.build_item(PROMPT, [r])], "causal")[0][0] for r in odd]
    np.testing.assert_allclose(one, singles, rtol=0, atol=1e-4)
    assert len(rm.score_items([rm.build_item(PROMPT, odd)])[0]) == 3
    with pytest.raises(ValueError, match="contains <\\|resp_sep\\|>"):
        rm.build_item(PROMPT, ["a <|resp_sep|> b", "c"])


def test_format_1_checkpoints_keep_their_rule_and_new_ones_record_it(base, tmp_path):
    rm = new_reward_model(str(base), device="cpu", seed=0)
    out = save_reward_model(rm, tmp_path / "ckpt", base_model=str(base), merge=True)
    cfg = json.loads((out / "reward_model_config.json").read_text())
    assert cfg["score_position"] == "before_separator" and cfg["value_head_activation"] == "silu"
    del cfg["score_position"]
    cfg["format_version"] = 1
    (out / "reward_model_config.json").write_text(json.dumps(cfg))
    assert load_reward_model(str(out), LoadOptions(device="cpu")).score_position == "response_last_token"
    cfg["score_position"] = "middle"
    (out / "reward_model_config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="score_position 'middle'"):
        load_reward_model(str(out), LoadOptions(device="cpu"))


# -- item 3: every reward_model_config.json field honoured or refused -----------------------------------------
def test_gelu_head_is_read_as_gelu(base, tmp_path):
    seq = torch.nn.Sequential(torch.nn.Linear(64, 1024), torch.nn.GELU(), torch.nn.Linear(1024, 1))
    head = release_folder(base, tmp_path / "rel", {**RELEASE_CONFIG, "value_head_activation": "gelu"}, seq)
    got, rm = ours(tmp_path / "rel")
    np.testing.assert_allclose(got, release_reference_scores(tmp_path / "rel", head, PROMPT, RESPONSES)[0], atol=1e-4)
    assert isinstance(rm.head.net[1], torch.nn.GELU)


def test_linear_head_and_null_hidden_dim(base, tmp_path):
    lin = torch.nn.Linear(64, 1)
    head = release_folder(base, tmp_path / "lin", {**RELEASE_CONFIG, "value_head_type": "linear",
                                                   "value_head_hidden_dim": None}, lin)
    got, _ = ours(tmp_path / "lin")  # state dict keys "weight" / "bias", as a bare nn.Linear saves them
    np.testing.assert_allclose(got, release_reference_scores(tmp_path / "lin", head, PROMPT, RESPONSES)[0], atol=1e-4)
    seq = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.SELU(), torch.nn.Linear(64, 1))
    head = release_folder(base, tmp_path / "sq", {**RELEASE_CONFIG, "value_head_activation": "selu",
                                                  "value_head_hidden_dim": None}, seq)
    got, _ = ours(tmp_path / "sq")  # null hidden dim = the input dim (the release's rule)
    np.testing.assert_allclose(got, release_reference_scores(tmp_path / "sq", head, PROMPT, RESPONSES)[0], atol=1e-4)


@pytest.mark.parametrize("mode", ["response_mean", "first_last_concat"])
def test_response_representations(base, tmp_path, mode):
    width = 128 if mode == "first_last_concat" else 64
    seq = torch.nn.Sequential(torch.nn.Linear(width, 1024), torch.nn.SiLU(), torch.nn.Linear(1024, 1))
    head = release_folder(base, tmp_path / "rel", {**RELEASE_CONFIG, "resp_repr_mode": mode,
                                                   "value_head_input_dim": width}, seq)
    got, _ = ours(tmp_path / "rel")
    want = release_reference_scores(tmp_path / "rel", head, PROMPT, RESPONSES, mode=mode)[0]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)


@pytest.mark.parametrize("change, message", [
    ({"resp_repr_mode": "first_last"}, "resp_repr_mode 'first_last' is not supported"),
    ({"value_head_activation": "swish"}, "value_head_activation 'swish' is not supported"),
    ({"value_head_type": "attention"}, "value_head_type 'attention' is not supported"),
    ({"value_head_input_dim": 128}, "value_head_input_dim 128 does not match"),
    ({"value_head_hidden_dim": 512}, "do not match the configured head"),
    ({"value_head_norm": "layer"}, "unsupported field"),
])
def test_fields_that_cannot_be_honoured_are_refused_in_one_line(base, tmp_path, change, message):
    release_folder(base, tmp_path / "rel", {**RELEASE_CONFIG, **change})
    with pytest.raises(DataError, match=message) as info:
        load_adapter(f"mr2:{tmp_path / 'rel'}", AdapterOptions(device="cpu"))
    assert "--model" in str(info.value) and "\n" not in str(info.value)


# -- 5b: a released tokenizer without the token; text-only Molmo2 -------------------------------------------------
def test_release_folder_whose_tokenizer_lacks_the_separator(bare_base, tmp_path):
    """merge_lora.py resized the embedding, then may have saved the base tokenizer over it (UNVERIFIED): the row
    exists, the token does not. Re-adding it gives the trained row's id, as the release's README does."""
    from transformers import AutoModel

    folder = tmp_path / "rel"
    head = release_folder(bare_base, folder)
    model = AutoModel.from_pretrained(folder)
    model.resize_token_embeddings(len(build_tokenizer(qwen_split=True, separator=False)) + 1, mean_resizing=False)
    with torch.no_grad():
        model.get_input_embeddings().weight[-1].normal_(generator=torch.Generator().manual_seed(3))
    model.save_pretrained(folder)
    got, rm = ours(folder)
    assert rm.tokenizer.convert_tokens_to_ids(RESP_SEP) == model.get_input_embeddings().weight.shape[0] - 1
    ref_dir = tmp_path / "ref"  # the reference: the same folder with the token added the release's way
    shutil.copytree(folder, ref_dir)
    tok = build_tokenizer(qwen_split=True, separator=False)
    tok.add_special_tokens({"additional_special_tokens": [RESP_SEP]}, replace_extra_special_tokens=False)
    tok.save_pretrained(ref_dir)
    np.testing.assert_allclose(got, release_reference_scores(ref_dir, head, PROMPT, RESPONSES)[0], atol=1e-4)


def test_molmo2_text_only_items_have_no_leading_bos(tmp_path):
    folder = save_tiny_model(tmp_path / "molmo2", "molmo2")
    rm = new_reward_model(str(folder), device="cpu")
    item = rm.build_item(PROMPT, RESPONSES[:2])
    text = rm.tokenizer.apply_chat_template(
        [{"role": "user", "content": [{"type": "text", "text": PROMPT}]},
         {"role": "assistant", "content": [{"type": "text", "text": RELEASE_SEP.join(RESPONSES[:2])}]}],
        add_generation_prompt=False, tokenize=False)
    assert item.prefix_ids + item.joint == rm.tokenizer(text)["input_ids"]  # the release's text-only path


# -- item 5: a token budget on text --------------------------------------------------------------------------------
def test_fit_lengths_cuts_the_prompt_first_then_caps_responses_evenly():
    assert fit_lengths(10, [5, 5], 100) == (10, [5, 5])
    assert fit_lengths(100, [5, 5], 60) == (50, [5, 5])          # prompt down to what is left
    assert fit_lengths(100, [40, 5, 40], 60) == (30, [12, 5, 12])  # half to the prompt, one cap for responses
    assert fit_lengths(0, [9, 9, 9], 2) == (0, [1, 1, 1])          # never below one token per response


def test_over_long_text_is_cut_keeping_every_separator_and_position(base, tmp_path):
    release_folder(base, tmp_path / "rel")
    rm = load_reward_model(str(tmp_path / "rel"), LoadOptions(device="cpu", max_length=120))
    prompt = "Describe the image in detail, please. " * 20 + "Which is better?"
    responses = ["The cat sits on the mat. " * 12, "yes", "The quick brown fox jumps over the lazy dog. " * 8]
    full = load_reward_model(str(tmp_path / "rel"), LoadOptions(device="cpu")).build_item(prompt, responses)
    item = rm.build_item(prompt, responses)
    assert full.length > 120 >= item.length and "over_max_length" not in item.notes
    notes = item.notes
    assert notes["text_truncated"] == 1.0 and notes["text_tokens_full"] == full.length
    assert notes["prompt_tokens_cut"] > 0 and notes["response_tokens_cut"] > 0
    sep = rm.tokenizer.convert_tokens_to_ids(RESP_SEP)
    assert item.joint.count(sep) == len(responses) - 1
    assert rm.tokenizer.decode(item.joint[item.starts[1]:item.ends[1] + 1]).strip() == "yes"  # short one kept whole
    assert "Which is better?" in rm.tokenizer.decode(item.prefix_ids)  # the prompt is cut in the middle
    scores = rm.score_items([item])[0]
    assert len(scores) == 3 and all(math.isfinite(s) for s in scores)
    assert rm.build_item(prompt, responses).notes == notes  # deterministic
