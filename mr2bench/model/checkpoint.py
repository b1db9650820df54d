"""Reward-model checkpoints: the release layout and mr2bench's own.

Release (``yinuoy/MR2-Molmo2-4B-RM``): merged model weights + ``value_head.pt`` + ``reward_model_config.json``.
mr2bench: ``reward_model_config.json`` (``"format": "mr2bench"``) + ``value_head.safetensors`` + either the
merged weights at the top level or a LoRA adapter under ``adapter/`` over ``base_model``; the tokenizer (with
``<|resp_sep|>``) is saved beside them. A folder is read directly; anything else is a Hub id, read through
``hf_hub_download`` / ``from_pretrained``. Remote code runs only when the caller passes trust_remote_code.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .backbone import apply_lora, load_backbone, resolve_device, resolve_dtype, unwrap
from .packing import SEPARATOR
from .reward_model import DEFAULT_MAX_LENGTH, DEFAULT_MAX_VISION_TOKENS, RewardModel
from .value_head import ValueHead, load_head_state

log = logging.getLogger(__name__)

CONFIG_NAME = "reward_model_config.json"
HEAD_SAFETENSORS = "value_head.safetensors"
HEAD_PT = "value_head.pt"
ADAPTER_DIR = "adapter"
FORMAT = "mr2bench"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class LoadOptions:
    device: str = "auto"
    dtype: str = "auto"
    trust_remote_code: bool = False
    cache_dir: str | None = None
    revision: str | None = None
    attention: str | None = None            # None = the checkpoint's own (default causal)
    max_length: int | None = None
    max_vision_tokens: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class _Source:
    """Reads files from a local folder or a Hub repository (the real download path)."""

    def __init__(self, target: str, opts: LoadOptions) -> None:
        self.target, self.opts = target, opts
        self.local = Path(target).is_dir()

    def file(self, name: str) -> Path | None:
        if self.local:
            p = Path(self.target) / name
            return p if p.is_file() else None
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

        try:
            return Path(hf_hub_download(self.target, name, cache_dir=self.opts.cache_dir,
                                        revision=self.opts.revision))
        except (EntryNotFoundError, LocalEntryNotFoundError):  # absent remotely, or absent from the offline cache
            return None


def read_config(source: _Source) -> dict[str, Any]:
    path = source.file(CONFIG_NAME)
    if path is None:
        where = "" if source.local else " (or the Hub is unreachable and it is not in the local cache)"
        raise FileNotFoundError(f"{source.target}: no {CONFIG_NAME}; not a reward-model checkpoint{where}")
    return json.loads(path.read_text(encoding="utf-8"))


def read_head(source: _Source) -> dict[str, torch.Tensor]:
    path = source.file(HEAD_SAFETENSORS)
    if path is not None:
        from safetensors.torch import load_file

        return load_file(str(path))
    path = source.file(HEAD_PT)
    if path is None:
        raise FileNotFoundError(f"{source.target}: neither {HEAD_SAFETENSORS} nor {HEAD_PT}")
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    return {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}


def head_from_state(state: dict[str, torch.Tensor], hidden: int) -> ValueHead:
    """A head sized from the stored weights (the first Linear is the only [D, hidden] matrix)."""
    firsts = [v for v in state.values() if v.dim() == 2 and v.shape[1] == hidden and v.shape[0] != 1]
    if len(firsts) != 1:
        raise ValueError(f"cannot find the value head's first layer [D, {hidden}] in "
                         f"{ {k: tuple(v.shape) for k, v in state.items()} }")
    head = ValueHead(hidden, head_dim=int(firsts[0].shape[0]))
    load_head_state(head, state)
    return head


def load_reward_model(target: str, opts: LoadOptions | None = None) -> RewardModel:
    """A RewardModel from a folder or Hub id, in eval mode on the requested device."""
    opts = opts or LoadOptions()
    source = _Source(target, opts)
    cfg = read_config(source)
    device = resolve_device(opts.device)
    dtype = resolve_dtype(opts.dtype, device)
    lora = cfg.get("format") == FORMAT and cfg.get("weights") == "lora"
    base_name = cfg["base_model"] if lora else target
    model, tokenizer, image_processor = load_backbone(
        base_name, dtype=dtype, device=device, trust_remote_code=opts.trust_remote_code,
        cache_dir=opts.cache_dir, revision=None if lora else opts.revision)
    if lora:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(target, cache_dir=opts.cache_dir, revision=opts.revision)
    rm = RewardModel(model, tokenizer, image_processor, head=ValueHead(1),  # placeholder head, replaced below
                     attention=opts.attention or cfg.get("attention", "causal"),
                     max_length=opts.max_length or int(cfg.get("max_length", DEFAULT_MAX_LENGTH)),
                     max_vision_tokens=opts.max_vision_tokens
                     or int(cfg.get("max_vision_tokens", DEFAULT_MAX_VISION_TOKENS)))
    if lora:
        from peft import PeftModel

        kwargs = {"subfolder": ADAPTER_DIR} if not source.local else {}
        path = str(Path(target) / ADAPTER_DIR) if source.local else target
        rm.backbone = PeftModel.from_pretrained(rm.backbone, path, is_trainable=False, **kwargs)
    rm.head = head_from_state(read_head(source), int(unwrap(rm.backbone).config.get_text_config().hidden_size))
    sep = cfg.get("separator", SEPARATOR)
    if sep != SEPARATOR:
        raise ValueError(f"checkpoint separator {sep!r} differs from {SEPARATOR!r}")
    return rm.to(device).eval()


def reward_model_config(rm: RewardModel, *, base_model: str, weights: str, extra: dict[str, Any] | None = None
                        ) -> dict[str, Any]:
    head = rm.head
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "base_model": base_model, "weights": weights,
            "model_type": rm.family, "hidden_size": head.hidden_size, "head_type": "mlp",
            "head_hidden_dim": head.net[0].out_features, "activation": "silu", "score_scale": "1/sqrt(hidden_size)",
            "response_representation": "last_token", "separator": SEPARATOR, "attention": rm.attention,
            "max_length": rm.max_length, "max_vision_tokens": rm.max_vision_tokens, **(extra or {})}


def save_reward_model(rm: RewardModel, out_dir: str | Path, *, base_model: str, merge: bool = False,
                      extra: dict[str, Any] | None = None) -> Path:
    """Write a loadable checkpoint. ``merge`` folds LoRA into the weights (the release's layout + safetensors)."""
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    is_peft = unwrap(rm.backbone) is not rm.backbone
    if is_peft and not merge:
        rm.backbone.save_pretrained(str(out / ADAPTER_DIR))
        weights = "lora"
    else:
        if is_peft:
            rm.backbone = rm.backbone.merge_and_unload()
        rm.backbone.save_pretrained(str(out))
        weights = "merged"
    rm.tokenizer.save_pretrained(str(out))
    if rm.encoder is not None:
        rm.encoder.save_pretrained(str(out))
    state = {k: v.detach().cpu().contiguous() for k, v in rm.head.state_dict().items()}
    save_file(state, str(out / HEAD_SAFETENSORS))
    cfg = reward_model_config(rm, base_model=base_model, weights=weights, extra=extra)
    (out / CONFIG_NAME).write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return out


def new_reward_model(base: str, *, device: str = "auto", dtype: str = "auto", lora_r: int = 0, lora_alpha: int = 16,
                     lora_dropout: float = 0.05, attention: str = "causal", max_length: int = DEFAULT_MAX_LENGTH,
                     max_vision_tokens: int = DEFAULT_MAX_VISION_TOKENS, trust_remote_code: bool = False,
                     cache_dir: str | None = None, seed: int = 0) -> RewardModel:
    """A fresh reward model over ``base`` (head initialised from ``seed``), LoRA-wrapped when lora_r > 0."""
    dev = resolve_device(device)
    model, tokenizer, image_processor = load_backbone(base, dtype=resolve_dtype(dtype, dev), device=dev,
                                                      trust_remote_code=trust_remote_code, cache_dir=cache_dir)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        rm = RewardModel(model, tokenizer, image_processor, attention=attention, max_length=max_length,
                         max_vision_tokens=max_vision_tokens)
        if lora_r > 0:
            rm.backbone = apply_lora(rm.backbone, r=lora_r, alpha=lora_alpha, dropout=lora_dropout)
    return rm.to(dev)
