"""Run presets for the paper table's judges: proprietary models through ``api:``, open VLMs through ``judge:``.

A preset is the ``--model`` spec plus the flags and ``--model-arg`` values one table entry runs with; nothing
here branches on a model name at run time (``mr2bench reproduce`` reads ``preset`` from its table config,
``evaluate_model_args`` turns a preset into the equivalent ``evaluate-model`` flags). Each judge gets each
benchmark's own prompt from the benchmark spec (``judge_prompt``), as for any ``judge:`` / ``api:`` model.

Sources and assumptions (none of this was run against the real endpoints or weights from here):
- OpenAI GPT-5 (platform.openai.com docs, chat completions): reasoning models accept only the default
  temperature 1 and count reasoning tokens against the completion budget; the documented request fields are
  ``max_completion_tokens`` (``max_tokens`` is refused) and ``reasoning_effort`` (default ``medium``). The
  preset sends the budget as ``max_completion_tokens``, ``reasoning_effort`` medium (the documented default,
  stated so a changed default cannot move the number) and omits ``temperature`` and ``top_p``.
- Anthropic Claude Sonnet 4.5 (docs.anthropic.com, "OpenAI SDK compatibility", base ``/v1/``): max_tokens
  is required; newer Claude models refuse ``temperature`` and ``top_p`` together (UNVERIFIED for the compat
  layer), so the preset sends temperature 0 and omits ``top_p``.
- Google Gemini 2.5 Pro (ai.google.dev, "OpenAI compatibility", base ``/v1beta/openai/``): thinking cannot
  be turned off for 2.5 Pro and its tokens share the output budget, hence a large ``max_tokens``;
  ``reasoning_effort`` could be sent (``--model-arg reasoning_effort=low|medium|high``) but the paper does not
  state one, so the preset leaves the provider's dynamic thinking.
- ``request_gaps`` lists what a provider needs that ``api:`` cannot send; empty for all three since
  ``max_tokens_field``, ``reasoning_effort`` and ``omit`` exist (``mr2bench.judges.config.JudgeConfig``).
- Sampling: one greedy verdict per item (k = 1) unless the paper says otherwise; it does not say, so the
  paper's own k, temperature and frame count are UNVERIFIED.
- Open judges: transformers 5.24 has every architecture natively (``qwen2_5_vl``, ``qwen3_vl``, ``internvl``,
  ``molmo2``), checked in ``transformers.models.auto.configuration_auto.CONFIG_MAPPING_NAMES``. InternVL3's
  original repos are remote code (``internvl_chat``); the ``-hf`` repos are the native conversion, used here.
  Molmo2's Hub config carries an ``auto_map`` to remote code; transformers loads it natively through its
  conversion mapping (real-artifacts.md, "transformers 5 ships a native Molmo2"), so no
  ``--trust-remote-code``.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from ..registry import Registry


@dataclass(frozen=True)
class RunPreset:
    """How one table entry runs: spec, endpoint, key variable, model args, and what it needs."""

    model: str                                   # KIND:TARGET
    model_args: Mapping[str, str] = field(default_factory=dict)
    api_base: str | None = None
    api_key_env: str | None = None
    trust_remote_code: bool = False
    needs_gpu: bool = False                      # too big for a CPU run in reasonable time
    native: str = ""                             # how transformers loads it (judge:) or the provider API (api:)
    request_gaps: tuple[str, ...] = ()           # request options the provider needs that api: cannot send

    def __post_init__(self) -> None:
        object.__setattr__(self, "model_args", MappingProxyType(dict(self.model_args)))


PRESETS: Registry[RunPreset] = Registry("run preset")
for _name, _preset in {
    # ---- proprietary judges, OpenAI-compatible endpoints
    "gpt-5": RunPreset(
        "api:gpt-5", {"max_tokens": "16384", "max_tokens_field": "max_completion_tokens",
                      "reasoning_effort": "medium", "omit": "temperature,top_p", "concurrency": "8"},
        api_base="https://api.openai.com/v1", api_key_env="OPENAI_API_KEY",
        native="OpenAI chat completions"),
    "claude-sonnet-4.5": RunPreset(
        "api:claude-sonnet-4-5", {"max_tokens": "4096", "temperature": "0", "omit": "top_p", "concurrency": "4"},
        api_base="https://api.anthropic.com/v1/", api_key_env="ANTHROPIC_API_KEY",
        native="Anthropic OpenAI SDK compatibility"),
    "gemini-2.5-pro": RunPreset(
        "api:gemini-2.5-pro", {"max_tokens": "16384", "temperature": "0", "concurrency": "4"},
        api_base="https://generativelanguage.googleapis.com/v1beta/openai/", api_key_env="GEMINI_API_KEY",
        native="Gemini OpenAI compatibility"),
    # ---- open VLM judges, native transformers architectures
    "qwen2.5-vl-7b": RunPreset("judge:Qwen/Qwen2.5-VL-7B-Instruct", {"max_tokens": "1024"}, needs_gpu=True,
                               native="qwen2_5_vl (native)"),
    "qwen3-vl-4b": RunPreset("judge:Qwen/Qwen3-VL-4B-Instruct", {"max_tokens": "1024"}, needs_gpu=True,
                             native="qwen3_vl (native)"),
    "qwen3-vl-32b": RunPreset("judge:Qwen/Qwen3-VL-32B-Instruct", {"max_tokens": "1024"}, needs_gpu=True,
                              native="qwen3_vl (native)"),
    "internvl3-8b": RunPreset("judge:OpenGVLab/InternVL3-8B-hf", {"max_tokens": "1024"}, needs_gpu=True,
                              native="internvl (native; OpenGVLab/InternVL3-8B itself is remote code)"),
    "internvl3-78b": RunPreset("judge:OpenGVLab/InternVL3-78B-hf", {"max_tokens": "1024"}, needs_gpu=True,
                               native="internvl (native; OpenGVLab/InternVL3-78B itself is remote code)"),
    "molmo2-4b": RunPreset("judge:allenai/Molmo2-4B", {"max_tokens": "1024"}, needs_gpu=True,
                           native="molmo2 (native, through transformers' conversion mapping)"),
}.items():
    PRESETS.register(_name, _preset)


def get_preset(name: str) -> RunPreset:
    return PRESETS.get(name)


def evaluate_model_args(preset: RunPreset) -> list[str]:
    """The ``evaluate-model`` flags that run ``preset`` (without --benchmarks / --data-dir / --out)."""
    args = ["--model", preset.model]
    if preset.api_base:
        args += ["--api-base", preset.api_base]
    if preset.api_key_env:
        args += ["--api-key-env", preset.api_key_env]
    if preset.trust_remote_code:
        args.append("--trust-remote-code")
    for key, value in preset.model_args.items():
        args += ["--model-arg", f"{key}={value}"]
    return args
