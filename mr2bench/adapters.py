"""Model specs (``KIND:TARGET``) -> ModelAdapter instances.

Each kind names a factory by import path, so that ``evaluate-model --help`` never imports torch and a
new kind is one line here plus its module. A factory is ``factory(target: str, options: AdapterOptions)``.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from collections.abc import Mapping

from .registry import Registry
from .schema import DataError, ModelAdapter

MODEL_KINDS: Registry[str] = Registry("model kind")
for _kind, _factory in {
    "random": "mr2bench.baselines:RandomAdapter",          # seeded per item
    "length": "mr2bench.baselines:LengthAdapter",          # score = number of characters
    "python": "mr2bench.baselines:load_user_adapter",      # python:path/to/file.py:ClassName
    "seqcls": "mr2bench.seqcls:SeqClsAdapter",             # transformers sequence-classification RM
    "mr2": "mr2bench.model.adapter:MR2Adapter",            # bundled model, all N in one pass
    "mr2-single": "mr2bench.model.adapter:MR2SingleAdapter",  # same weights, one pass per response
    "judge": "mr2bench.judges.local:LocalJudgeAdapter",   # a transformers VLM generating a verdict
    "api": "mr2bench.judges.api:APIJudgeAdapter",         # OpenAI-compatible chat completions
}.items():
    MODEL_KINDS.register(_kind, _factory)


@dataclass(frozen=True)
class AdapterOptions:
    """Options every adapter may read; kind-specific ones arrive as ``--model-arg key=value``."""

    seed: int = 0
    device: str = "auto"
    dtype: str = "auto"
    batch_size: int = 1
    num_frames: int = 16
    trust_remote_code: bool = False
    api_base: str | None = None
    api_key_env: str | None = None
    cache_dir: str | None = None
    extra: Mapping[str, str] = field(default_factory=dict)


def split_spec(spec: str) -> tuple[str, str]:
    """'seqcls:org/model' -> ('seqcls', 'org/model'); a bare 'length' -> ('length', '')."""
    kind, _, target = spec.partition(":")
    return kind, target


def load_adapter(spec: str, options: AdapterOptions | None = None) -> ModelAdapter:
    kind, target = split_spec(spec)
    module_name, _, attr = MODEL_KINDS.get(kind).partition(":")
    factory = getattr(importlib.import_module(module_name), attr)
    try:
        return factory(target, options or AdapterOptions())
    except (OSError, ImportError) as exc:  # missing weights, no network, a missing extra: the user's to fix
        raise DataError(f"cannot load model {spec!r}: {type(exc).__name__}: {exc}", field="--model") from None


def model_slug(spec: str) -> str:
    """A folder name for a model spec: 'seqcls:org/m' -> 'seqcls__org__m'."""
    keep = "".join(c if c.isalnum() or c in "-._" else "_" for c in spec.replace(":", "__").replace("/", "__"))
    return keep.strip("._") or "model"
