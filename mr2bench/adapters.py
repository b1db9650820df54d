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

@dataclass(frozen=True)
class ModelKind:
    """A ``--model`` kind: the factory's import path and what ``mr2bench models`` says of it."""

    factory: str
    usage: str
    description: str


MODEL_KINDS: Registry[ModelKind] = Registry("model kind")
for _kind, _spec in {
    "random": ModelKind("mr2bench.baselines:RandomAdapter", "random",
                        "seeded random scores per item (chance baseline)"),
    "length": ModelKind("mr2bench.baselines:LengthAdapter", "length",
                        "score = number of characters of the response"),
    "python": ModelKind("mr2bench.baselines:load_user_adapter", "python:path/to/file.py:ClassName",
                        "your own adapter class (score(request) -> one float per response)"),
    "seqcls": ModelKind("mr2bench.seqcls:SeqClsAdapter", "seqcls:HUB_ID_OR_DIR",
                        "a transformers sequence-classification reward model, one pass per response"),
    "mr2": ModelKind("mr2bench.model.adapter:MR2Adapter", "mr2:HUB_ID_OR_DIR",
                     "the bundled multi-response reward model: all N responses in one forward pass"),
    "mr2-single": ModelKind("mr2bench.model.adapter:MR2SingleAdapter", "mr2-single:HUB_ID_OR_DIR",
                            "the same weights, one forward pass per response (conventional baseline)"),
    "judge": ModelKind("mr2bench.judges.local:LocalJudgeAdapter", "judge:HUB_ID_OR_DIR",
                       "a local transformers VLM generating a verdict with the benchmark's judge prompt"),
    "api": ModelKind("mr2bench.judges.api:APIJudgeAdapter", "api:MODEL_NAME",
                     "an OpenAI-compatible chat-completions endpoint (--api-base, --api-key-env)"),
    # published baselines of the paper's table (mr2bench/published/: each module names its source)
    "skywork-vl": ModelKind("mr2bench.published.skywork_vl:SkyworkVLAdapter", "skywork-vl:HUB_ID_OR_DIR",
                            "Skywork-VL-Reward: Qwen2.5-VL + value head at the last token, each response alone"),
    "ixc-reward": ModelKind("mr2bench.published.ixc_reward:IXCRewardAdapter", "ixc-reward:HUB_ID_OR_DIR",
                            "IXC-2.5-Reward: the model's remote get_score(chat, images), --trust-remote-code"),
    "r1-reward": ModelKind("mr2bench.published.r1_reward:R1RewardAdapter", "r1-reward:HUB_ID_OR_DIR",
                           "R1-Reward: Qwen2.5-VL judge, <answer>1|2</answer>, every pair of an N-way item"),
    "mm-rlhf-reward": ModelKind("mr2bench.published.mm_rlhf_reward:MMRLHFRewardAdapter",
                                "mm-rlhf-reward:HUB_ID_OR_DIR",
                                "MM-RLHF-Reward: critique then reward head, each response alone (llava package)"),
    "llava-critic": ModelKind("mr2bench.published.llava_critic:LLaVACriticAdapter", "llava-critic:HUB_ID_OR_DIR",
                              "LLaVA-Critic: pairwise judge through the llava package, every pair"),
    "unified-reward": ModelKind("mr2bench.published.unified_reward:UnifiedRewardAdapter",
                                "unified-reward:HUB_ID_OR_DIR",
                                "UnifiedReward-Qwen: 'Answer N is better' pairwise judge, every pair"),
}.items():
    MODEL_KINDS.register(_kind, _spec)


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
    from .registry import UnknownNameError

    kind, target = split_spec(spec)
    try:
        module_name, _, attr = MODEL_KINDS.get(kind).factory.partition(":")
    except UnknownNameError as exc:  # close matches + the list; `mr2bench models` describes each
        raise DataError(str(exc), field="--model") from None
    factory = getattr(importlib.import_module(module_name), attr)
    try:
        return factory(target, options or AdapterOptions())
    except (OSError, ImportError) as exc:  # missing weights, no network, a missing extra: the user's to fix
        raise DataError(f"cannot load model {spec!r}: {type(exc).__name__}: {exc}", field="--model") from None


def model_slug(spec: str) -> str:
    """A folder name for a model spec: 'seqcls:org/m' -> 'seqcls__org__m'."""
    keep = "".join(c if c.isalnum() or c in "-._" else "_" for c in spec.replace(":", "__").replace("/", "__"))
    return keep.strip("._") or "model"
