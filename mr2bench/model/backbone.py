"""Loading a vision-language backbone (base model, no LM head), its tokenizer, the separator token and LoRA."""
from __future__ import annotations

import inspect
import logging
from typing import Any

import torch

from .packing import SEPARATOR

log = logging.getLogger(__name__)

RESP_SEP = "<|resp_sep|>"
SUPPORTED = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl", "molmo2")
# LoRA only on the language model's projections: a plain name list would also hit Qwen2.5-VL's vision MLP.
LORA_TARGET = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj|att_proj|attn_out|ff_proj|ff_out)"


def resolve_device(device: str) -> torch.device:
    if device in ("", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """'auto' = bf16 on GPU, fp32 on CPU."""
    if dtype in ("", "auto"):
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    table = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16,
             "fp32": torch.float32, "float32": torch.float32}
    if dtype not in table:
        raise ValueError(f"unknown dtype {dtype!r}; choose from {sorted(table)} or auto")
    return table[dtype]


def load_backbone(name_or_path: str, *, dtype: torch.dtype, device: torch.device, trust_remote_code: bool = False,
                  cache_dir: str | None = None, revision: str | None = None) -> tuple[Any, Any, Any]:
    """(base model with use_cache=False, tokenizer, image processor or None) via the from_pretrained paths."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    common = dict(trust_remote_code=trust_remote_code, cache_dir=cache_dir, revision=revision)
    config = AutoConfig.from_pretrained(name_or_path, **common)
    if config.model_type not in SUPPORTED and not trust_remote_code:
        raise ValueError(f"backbone type {config.model_type!r} is not supported; supported: {SUPPORTED} "
                         "(others may work with --trust-remote-code)")
    model = AutoModel.from_pretrained(name_or_path, dtype=dtype, **common)
    _disable_cache(model)
    model.to(device)
    tokenizer = AutoTokenizer.from_pretrained(name_or_path, **common)
    return model, tokenizer, _image_processor(name_or_path, config, common)


def _disable_cache(model: Any) -> None:
    for cfg in (model.config, getattr(model.config, "text_config", None)):
        if cfg is not None and hasattr(cfg, "use_cache"):
            cfg.use_cache = False


def _image_processor(name_or_path: str, config: Any, common: dict[str, Any]) -> Any:
    """The Pillow image processor; AutoProcessor needs torchvision for the video half, so build in code.

    Molmo2: its own image and video processors on torch-only resize/normalise (``molmo2_media``).
    """
    if config.model_type == "molmo2":
        from .molmo2_media import load_processors

        return load_processors(name_or_path, common)
    if config.model_type not in ("qwen2_vl", "qwen2_5_vl", "qwen3_vl"):
        return None
    from transformers import Qwen2VLImageProcessorPil

    try:
        return Qwen2VLImageProcessorPil.from_pretrained(name_or_path, **common)
    except (OSError, ValueError, TypeError) as exc:
        log.info("no image processor config at %s (%s); using defaults for %s", name_or_path, exc, config.model_type)
        return None


def add_special_token(tokenizer: Any, token: str) -> None:
    """Register ``token`` as an extra special token, keeping the ones already registered.

    The keyword that keeps them is ``replace_extra_special_tokens`` in transformers 5 and
    ``replace_additional_special_tokens`` in 4.x; read it off the installed signature, not the version.
    """
    params = inspect.signature(tokenizer.add_special_tokens).parameters
    keep = [k for k in ("replace_extra_special_tokens", "replace_additional_special_tokens") if k in params]
    if keep:
        tokenizer.add_special_tokens({"additional_special_tokens": [token]}, **{keep[0]: False})
    else:  # neither keyword: an added special token leaves the registered list alone
        tokenizer.add_tokens([token], special_tokens=True)


def fit_embeddings(model: Any, tokenizer: Any) -> int:
    """Give every tokenizer id an input-embedding row; return how many rows were added.

    A checkpoint's tokenizer holds ``<|resp_sep|>`` while a base model from before it has no row for it
    (LoRA checkpoints store no embedding). New rows are the mean of the existing ones, so doing this again
    at load time gives the same weights as at training time.
    """
    emb = model.get_input_embeddings()
    old = int(emb.weight.shape[0])
    need = max(len(tokenizer), max(tokenizer.get_vocab().values(), default=-1) + 1)
    if need <= old:  # never shrink: Qwen pads its vocabulary, Molmo2 adds rows the tokenizer does not list
        return 0
    model.resize_token_embeddings(need, mean_resizing=False)
    with torch.no_grad():
        w = model.get_input_embeddings().weight
        w[old:] = w[:old].mean(dim=0, keepdim=True)
    return need - old


def ensure_separator(model: Any, tokenizer: Any) -> list[int]:
    """Add ``<|resp_sep|>`` as one special token when missing, fit the embedding; return SEPARATOR's token ids."""
    if RESP_SEP not in tokenizer.get_vocab():
        add_special_token(tokenizer, RESP_SEP)
    added = fit_embeddings(model, tokenizer)
    if added:
        log.info("added %d input-embedding row(s) for tokens the base model lacks (%s)", added, RESP_SEP)
    sep_id = tokenizer.convert_tokens_to_ids(RESP_SEP)
    ids = tokenizer.encode(SEPARATOR, add_special_tokens=False)
    if ids.count(sep_id) != 1:
        raise ValueError(f"the tokenizer splits {RESP_SEP} into several tokens: {ids}")
    return ids


def apply_lora(model: Any, r: int = 128, alpha: int = 16, dropout: float = 0.05) -> Any:
    """Wrap the base model with LoRA on the language model's projections only."""
    from peft import LoraConfig, get_peft_model

    cfg = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=LORA_TARGET, bias="none")
    return get_peft_model(model, cfg)


def unwrap(model: Any) -> Any:
    """The transformers base model under a peft wrapper (or the model itself)."""
    get = getattr(model, "get_base_model", None)
    return get() if callable(get) else model


def hidden_size(model: Any) -> int:
    return int(unwrap(model).config.get_text_config().hidden_size)
