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
from .reward_model import DEFAULT_MAX_LENGTH, DEFAULT_MAX_VISION_TOKENS, SCORE_POSITIONS, RewardModel
from .value_head import HeadSpec, ValueHead, load_head_state

log = logging.getLogger(__name__)

CONFIG_NAME = "reward_model_config.json"
HEAD_SAFETENSORS = "value_head.safetensors"
HEAD_PT = "value_head.pt"
ADAPTER_DIR = "adapter"
FORMAT = "mr2bench"
FORMAT_VERSION = 2  # 2: score_position recorded (format 1 checkpoints were read at each response's last token)
SCORE_SCALE = "1/sqrt(hidden_size)"
# fields that change scores: honoured below, or refused; any other field is informational
SCORING_PREFIXES = ("value_head", "resp_", "score", "head_", "activation", "response_")
KNOWN_FIELDS = {"format", "format_version", "base_model", "weights", "model_type", "hidden_size", "separator",
                "attention", "max_length", "max_vision_tokens", "score_position", "score_scale",
                "value_head_type", "value_head_hidden_dim", "value_head_activation", "value_head_input_dim",
                "resp_repr_mode", "head_type", "head_hidden_dim", "activation", "response_representation",
                "base_model_relative"}
LEGACY_REPR = {"last_token": "last"}  # format 1's name


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


def check_fields(cfg: dict[str, Any]) -> None:
    """Refuse a field that would change scores and that this loader does not know (never ignore it)."""
    unknown = sorted(k for k in cfg if k not in KNOWN_FIELDS)
    refused = [k for k in unknown if k.startswith(SCORING_PREFIXES)]
    if refused:
        raise ValueError(f"{CONFIG_NAME}: unsupported field(s) {refused}; known: {sorted(KNOWN_FIELDS)}")
    if unknown:
        log.info("%s: informational field(s) %s", CONFIG_NAME, unknown)
    scale = cfg.get("score_scale", SCORE_SCALE)
    if scale != SCORE_SCALE:
        raise ValueError(f"{CONFIG_NAME}: score_scale {scale!r} is not supported; only {SCORE_SCALE!r}")
    sep = cfg.get("separator", SEPARATOR)
    if sep != SEPARATOR:
        raise ValueError(f"{CONFIG_NAME}: separator {sep!r} differs from {SEPARATOR!r}")


def score_position(cfg: dict[str, Any]) -> str:
    """The rule the checkpoint was trained with: its field, else format 1's rule, else the release's."""
    if "score_position" in cfg:
        rule = cfg["score_position"]
    elif cfg.get("format") == FORMAT and int(cfg.get("format_version", 1)) < 2:
        rule = "response_last_token"
    else:
        rule = "before_separator"
    if rule not in SCORE_POSITIONS:
        raise ValueError(f"{CONFIG_NAME}: score_position {rule!r} is not supported; "
                         f"choose from {list(SCORE_POSITIONS)}")
    return rule


def head_spec(cfg: dict[str, Any], hidden: int, state: dict[str, torch.Tensor] | None = None) -> HeadSpec:
    """The head the config describes (release keys first, format 1 keys second), checked against the backbone.

    ``value_head_hidden_dim`` absent: read off the stored weights; present and null: the input dim (the release).
    """
    head_type = str(cfg.get("value_head_type", cfg.get("head_type", "mlp"))).lower()
    activation = str(cfg.get("value_head_activation", cfg.get("activation", "silu"))).lower()
    mode = cfg.get("resp_repr_mode", LEGACY_REPR.get(cfg.get("response_representation", "last"),
                                                      cfg.get("response_representation")))
    if "value_head_hidden_dim" in cfg or "head_hidden_dim" in cfg:
        dim = cfg.get("value_head_hidden_dim", cfg.get("head_hidden_dim"))
        dim = None if dim is None else int(dim)
    else:
        firsts = [v for v in (state or {}).values() if v.dim() == 2 and v.shape[0] != 1]
        dim = int(firsts[0].shape[0]) if len(firsts) == 1 else None
    spec = HeadSpec(hidden, head_type=head_type, hidden_dim=dim, activation=activation, repr_mode=str(mode))
    stated = cfg.get("value_head_input_dim")
    if stated is not None and int(stated) != spec.input_dim:
        raise ValueError(f"{CONFIG_NAME}: value_head_input_dim {stated} does not match the backbone "
                         f"(hidden size {hidden}, resp_repr_mode {spec.repr_mode!r} -> {spec.input_dim})")
    if cfg.get("hidden_size") is not None and int(cfg["hidden_size"]) != hidden:
        raise ValueError(f"{CONFIG_NAME}: hidden_size {cfg['hidden_size']} does not match the backbone's {hidden}")
    return spec


def head_from_state(state: dict[str, torch.Tensor], hidden: int, cfg: dict[str, Any] | None = None) -> ValueHead:
    """The configured head, loaded from the stored weights (mismatches fail with the shapes)."""
    head = ValueHead(hidden, spec=head_spec(cfg or {}, hidden, state))
    load_head_state(head, state)
    return head


def _base_path(cfg: dict[str, Any], target: str, local: bool) -> str:
    """The LoRA base: ``base_model`` where it exists, else read relative to the checkpoint folder
    (``base_model_relative``, or a relative ``base_model``), so a moved run folder still loads."""
    base = str(cfg["base_model"])
    if not local or (Path(base).is_absolute() and Path(base).exists()):
        return base
    for rel in (cfg.get("base_model_relative"), base):
        if rel and not Path(rel).is_absolute() and (Path(target) / rel).exists():
            return str(Path(target) / rel)
    return base


def load_reward_model(target: str, opts: LoadOptions | None = None) -> RewardModel:
    """A RewardModel from a folder or Hub id, in eval mode on the requested device."""
    opts = opts or LoadOptions()
    source = _Source(target, opts)
    cfg = read_config(source)
    check_fields(cfg)
    rule = score_position(cfg)
    HeadSpec(1, **{k: v for k, v in _enum_fields(cfg).items()})  # bad names fail before the backbone loads
    device = resolve_device(opts.device)
    dtype = resolve_dtype(opts.dtype, device)
    lora = cfg.get("format") == FORMAT and cfg.get("weights") == "lora"
    base_name = _base_path(cfg, target, source.local) if lora else target
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
                     or int(cfg.get("max_vision_tokens", DEFAULT_MAX_VISION_TOKENS)),
                     score_position=rule)
    if lora:
        from peft import PeftModel

        kwargs = {"subfolder": ADAPTER_DIR} if not source.local else {}
        path = str(Path(target) / ADAPTER_DIR) if source.local else target
        rm.backbone = PeftModel.from_pretrained(rm.backbone, path, is_trainable=False, **kwargs)
    hidden = int(unwrap(rm.backbone).config.get_text_config().hidden_size)
    rm.head = head_from_state(read_head(source), hidden, cfg)
    return rm.to(device).eval()


def _enum_fields(cfg: dict[str, Any]) -> dict[str, Any]:
    """The head fields that are names, for an early check."""
    out: dict[str, Any] = {}
    for key, legacy, name in (("value_head_type", "head_type", "head_type"),
                              ("value_head_activation", "activation", "activation")):
        if key in cfg or legacy in cfg:
            out[name] = str(cfg.get(key, cfg.get(legacy))).lower()
    if "resp_repr_mode" in cfg:
        out["repr_mode"] = cfg["resp_repr_mode"]
    return out


def reward_model_config(rm: RewardModel, *, base_model: str, weights: str, extra: dict[str, Any] | None = None
                        ) -> dict[str, Any]:
    """The release's head fields plus mr2bench's (score position, attention, budgets)."""
    spec = rm.head.spec
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "base_model": base_model, "weights": weights,
            "model_type": rm.family, "hidden_size": spec.hidden_size, "value_head_type": spec.head_type,
            "value_head_hidden_dim": rm.head.linears[0].out_features if spec.head_type == "mlp" else None,
            "value_head_activation": spec.activation, "value_head_input_dim": spec.input_dim,
            "resp_repr_mode": spec.repr_mode, "score_scale": SCORE_SCALE, "score_position": rm.score_position,
            "separator": SEPARATOR, "attention": rm.attention, "max_length": rm.max_length,
            "max_vision_tokens": rm.max_vision_tokens, **(extra or {})}


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
