"""Pointwise published baselines: Skywork-VL-Reward (tiny Qwen2.5-VL + value head), IXC-2.5-Reward (a tiny
local remote-code folder with the published get_score interface), MM-RLHF-Reward (a stand-in llava package
with the LLaVA-NeXT functions its script calls)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from mr2bench.adapters import AdapterOptions, load_adapter  # noqa: E402
from mr2bench.schema import DataError, Media, ScoringRequest  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))


def png(path: Path, value: int = 90) -> Path:
    from PIL import Image

    Image.fromarray(np.full((28, 28, 3), value, np.uint8)).save(path)
    return path


def tiny_skywork(folder: Path, keys=("v_head.summary.weight", "v_head.summary.bias")) -> Path:
    """A tiny Qwen2.5-VL folder plus value_head.safetensors in TRL's ValueHead layout (Linear(H, 1)), as the
    Skywork-VL-Reward-7B card loads it."""
    from safetensors.torch import save_file

    from mr2bench.model.tiny import save_tiny_model

    torch.set_num_threads(1)
    out = save_tiny_model(folder, family="qwen2_5_vl", seed=0)
    g = torch.Generator().manual_seed(3)
    save_file({keys[0]: torch.randn(1, 64, generator=g), keys[1]: torch.randn(1, generator=g)},
              str(out / "value_head.safetensors"))
    return out


def options(**kw) -> AdapterOptions:
    return AdapterOptions(device="cpu", num_frames=2, **kw)


# ---------------------------------------------------------------- Skywork-VL-Reward
def test_skywork_prompt_position_and_nway(tmp_path):
    from mr2bench.published.skywork_vl import chat_messages

    model = tiny_skywork(tmp_path / "sky")
    a = load_adapter(f"skywork-vl:{model}", options())
    req = ScoringRequest(prompt="What colour?", responses=("grey", "blue", "red", "grey"), item_id="i",
                         media=(Media(kind="image", path=str(png(tmp_path / "a.png"))),))
    # the card's layout: user [image, question], assistant [answer], no generation prompt
    assert chat_messages("Q", "A", [{"type": "image"}]) == [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Q"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "A"}]}]
    text, images, _ = a.render(req, "blue")
    assert text == ("<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>What colour?<|im_end|>\n"
                    "<|im_start|>assistant\nblue<|im_end|>\n") and len(images) == 1
    scores = a.score(req)
    assert len(scores) == 4 and scores[0] == scores[3] and len(set(scores)) >= 2   # N-way: each alone
    # read from the LAST token's final hidden state through the head
    inputs = a.processor(text=[a.render(req, "red")[0]], images=images, return_tensors="pt")
    with torch.inference_mode():
        hs = a.model(**inputs, output_hidden_states=True).hidden_states[-1][0]
        at = [float(a.head(hs[k])[0]) for k in (-1, -2)]
    assert scores[2] == pytest.approx(at[0], abs=1e-5) and scores[2] != pytest.approx(at[1], abs=1e-6)


def test_skywork_head_file_in_another_layout_is_refused(tmp_path):
    model = tiny_skywork(tmp_path / "sky", keys=("summary.weight", "summary.bias"))
    with pytest.raises(DataError, match="no \\['v_head.summary.weight'"):
        load_adapter(f"skywork-vl:{model}", options())
    with pytest.raises(DataError, match="unknown --model-arg 'x'"):
        load_adapter(f"skywork-vl:{model}", options(extra={"x": "1"}))


# ---------------------------------------------------------------- IXC-2.5-Reward (remote code)
CONFIG_PY = '''
from transformers import PretrainedConfig


class TinyIXCConfig(PretrainedConfig):
    model_type = "tiny_ixc_reward"

    def __init__(self, hidden=8, **kw):
        self.hidden = hidden
        super().__init__(**kw)
'''
# mimics the published interface of internlm/internlm-xcomposer2d5-7b-reward (model card, "Basic Usage"):
# model.tokenizer is set by the caller; get_score(chat, image_paths, hd_num=...) -> a float
MODELING_PY = '''
import torch
from transformers import PreTrainedModel

from .configuration_tiny_ixc import TinyIXCConfig


class TinyIXCModel(PreTrainedModel):
    config_class = TinyIXCConfig
    calls = []

    def __init__(self, config):
        super().__init__(config)
        self.emb = torch.nn.Embedding(512, config.hidden)
        self.out = torch.nn.Linear(config.hidden, 1)
        self.post_init()

    def get_score(self, chat, image, hd_num=24):
        TinyIXCModel.calls.append({"chat": chat, "image": list(image), "hd_num": hd_num})
        text = "".join(m["role"] + ":" + m["content"] for m in chat)
        ids = torch.tensor(self.tokenizer(text)["input_ids"]) % 512
        return float(self.out(self.emb(ids).mean(0))[0])
'''


@pytest.fixture(scope="module")
def ixc_folder(tmp_path_factory) -> Path:
    from mr2bench.model.tiny import build_tokenizer

    root = tmp_path_factory.mktemp("ixc")
    (root / "configuration_tiny_ixc.py").write_text(CONFIG_PY)
    (root / "modeling_tiny_ixc.py").write_text(MODELING_PY)
    (root / "config.json").write_text(json.dumps({
        "model_type": "tiny_ixc_reward", "hidden": 8, "architectures": ["TinyIXCModel"],
        "auto_map": {"AutoConfig": "configuration_tiny_ixc.TinyIXCConfig",
                     "AutoModel": "modeling_tiny_ixc.TinyIXCModel"}}))
    build_tokenizer().save_pretrained(root)
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(1)
    save_file({"emb.weight": torch.randn(512, 8, generator=g), "out.weight": torch.randn(1, 8, generator=g),
               "out.bias": torch.zeros(1)}, str(root / "model.safetensors"))
    return root


def test_ixc_needs_trust_remote_code(ixc_folder):
    with pytest.raises(DataError) as exc:
        load_adapter(f"ixc-reward:{ixc_folder}", options())
    assert "pass --trust-remote-code" in str(exc.value) and "\n" not in str(exc.value)


def test_ixc_calls_get_score_per_response(ixc_folder, tmp_path):
    a = load_adapter(f"ixc-reward:{ixc_folder}", options(trust_remote_code=True))
    calls = type(a.model).calls
    calls.clear()
    img = png(tmp_path / "x.png")
    data = (tmp_path / "y.png").write_bytes(png(tmp_path / "y0.png", 30).read_bytes()) and \
        (tmp_path / "y.png").read_bytes()
    req = ScoringRequest(prompt="Describe.", responses=("a cat", "a dog", "a cat"), item_id="i",
                         media=(Media(kind="image", path="x.png"), Media(kind="image", data=data)),
                         media_root=str(tmp_path))
    scores = a.score(req)
    assert len(scores) == 3 and scores[0] == scores[2] != scores[1]
    assert [c["chat"] for c in calls] == [[{"role": "user", "content": "Describe."},
                                           {"role": "assistant", "content": r}] for r in req.responses]
    assert calls[0]["image"][0] == str(img) and Path(calls[0]["image"][1]).read_bytes() == data
    assert calls[0]["hd_num"] == 9


# ---------------------------------------------------------------- MM-RLHF-Reward and LLaVA-Critic (llava package)
LLAVA_FILES = {
    "llava/__init__.py": "",
    "llava/constants.py": "IMAGE_TOKEN_INDEX = -200\nDEFAULT_IMAGE_TOKEN = '<image>'\n",
    # LLaVA-NeXT llava/conversation.py, SeparatorStyle.CHATML, conv_qwen ("qwen_1_5"): system + sep + "\n",
    # then role + "\n" + message + sep + "\n" per filled turn, role + "\n" for the open one
    "llava/conversation.py": '''
import copy


class Conversation:
    def __init__(self):
        self.system = "<|im_start|>system\\nYou are a helpful assistant."
        self.roles = ("<|im_start|>user", "<|im_start|>assistant")
        self.sep = "<|im_end|>"
        self.messages = []

    def append_message(self, role, message):
        self.messages.append([role, message])

    def get_prompt(self):
        ret = self.system + self.sep + "\\n"
        for role, message in self.messages:
            ret += role + "\\n" + (message + self.sep + "\\n" if message else "")
        return ret


conv_templates = {"qwen_1_5": Conversation()}
''',
    "llava/mm_utils.py": '''
import torch


def tokenizer_image_token(prompt, tokenizer, image_token_index, return_tensors=None):
    ids = []
    for k, chunk in enumerate(prompt.split("<image>")):
        if k:
            ids.append(image_token_index)
        ids += tokenizer.encode(chunk)
    return torch.tensor(ids)


def process_images(images, image_processor, config):
    return torch.stack([torch.zeros(3, 4, 4) + k for k, _ in enumerate(images)])
''',
    "llava/model/__init__.py": "",
    "llava/model/builder.py": '''
import torch

PROMPTS = []
CRITIQUE = "Good. Overall, the second response is better."


class Tok:
    def encode(self, text):
        return [ord(c) for c in text]

    def batch_decode(self, out, skip_special_tokens=True):
        return ["".join(chr(int(i)) for i in row) for row in out]


class Model:
    config = None

    def eval(self):
        return self

    def _text(self, ids):
        return "".join("<image>" if int(i) == -200 else chr(int(i)) for i in ids[0])

    def generate(self, input_ids, images=None, image_sizes=None, modalities=None, **kw):
        PROMPTS.append(("generate", self._text(input_ids), None if images is None else len(images), modalities))
        return torch.tensor([[ord(c) for c in CRITIQUE]])

    def __call__(self, input_ids, images=None, image_sizes=None, rm_forward=False):
        assert rm_forward
        text = self._text(input_ids)
        PROMPTS.append(("reward", text, None if images is None else len(images), None))
        return torch.tensor([[float(len(text)) / 100]]), None


def load_pretrained_model(path, base, name, device_map=None, **kw):
    assert name == "llava_qwen"
    return Tok(), Model(), object(), 4096
''',
}


@pytest.fixture
def fake_llava(tmp_path, monkeypatch):
    for rel, text in LLAVA_FILES.items():
        (tmp_path / "pkg" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "pkg" / rel).write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path / "pkg"))
    for name in [m for m in sys.modules if m == "llava" or m.startswith("llava.")]:
        monkeypatch.delitem(sys.modules, name)
    import llava.model.builder as builder

    builder.PROMPTS.clear()
    return builder


def test_llava_package_missing_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "llava", None)
    for kind in ("mm-rlhf-reward", "llava-critic"):
        with pytest.raises(DataError) as exc:
            load_adapter(f"{kind}:some/model", options())
        assert "needs the authors' llava package" in str(exc.value) and "pip install" in str(exc.value)


def test_mm_rlhf_critique_then_reward(fake_llava, tmp_path):
    from mr2bench.published.mm_rlhf_reward import CRITIC_TEMPLATE

    a = load_adapter("mm-rlhf-reward:any/path", options())
    req = ScoringRequest(prompt="What is it?", responses=("A cat.", "A big dog."), item_id="i",
                         media=(Media(kind="image", path=str(png(tmp_path / "a.png"))),))
    v = a.score(req)
    user = "<image>\n" + CRITIC_TEMPLATE.format(question="What is it?", answer="A cat.")
    head = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n" + user + "<|im_end|>\n"
    kinds = [p[0] for p in fake_llava.PROMPTS]
    assert kinds == ["generate", "reward", "generate", "reward"]
    assert fake_llava.PROMPTS[0][1] == head + "<|im_start|>assistant\n"
    assert fake_llava.PROMPTS[1][1] == head + "<|im_start|>assistant\n" + fake_llava.CRITIQUE + "<|im_end|>\n"
    # the reward is the reward head's first output, one per response
    assert v.scores == pytest.approx((len(fake_llava.PROMPTS[1][1]) / 100, len(fake_llava.PROMPTS[3][1]) / 100))
    assert json.loads(v.raw) == [fake_llava.CRITIQUE] * 2 and fake_llava.PROMPTS[0][2] == 1
    assert CRITIC_TEMPLATE.startswith("You are an unbiased and fair evaluator")  # get_mm-rlhf_reward.py wording


def test_llava_critic_pairs(fake_llava):
    from mr2bench.published.llava_critic import PAIRWISE_TEMPLATE

    a = load_adapter("llava-critic:any/path", options())
    req = ScoringRequest(prompt="Which?", responses=("r0", "r1", "r2"), item_id="i")
    v = a.score(req)
    # every pair once, first shown = the lower index; the stand-in always says "the second response is better"
    assert v.scores == (0.0, 1.0, 2.0) and v.usage["pairs"] == 3
    first = fake_llava.PROMPTS[0][1]
    assert first == ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
                     + PAIRWISE_TEMPLATE.format(question="Which?", answer1="r0", answer2="r1")
                     + "<|im_end|>\n<|im_start|>assistant\n")
    assert "The first response: [r0]\nThe second response: [r1]\nASSISTANT:\n" in first   # the card's layout
