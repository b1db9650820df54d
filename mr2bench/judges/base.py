"""What every generative judge shares: the benchmark's judge protocol and defaults, the order each sample
is shown in, the prompt, parsing k sample texts, the vote, and the Verdict."""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from ..schema import ScoringRequest, Verdict
from ..seeding import rng_for
from .config import JudgeConfig, judge_config
from .parse import parse_verdict, parsed_answer
from .prompts import PromptTemplate, template_for
from .verdict import tally, vote

Order = tuple[int, ...]


@dataclass(frozen=True)
class JudgePrompt:
    template: PromptTemplate
    text: str
    order: Order = ()         # shown position -> index in the request's responses; () = as the request

    @property
    def media_first(self) -> bool:
        return self.template.media == "before_text"


@lru_cache(maxsize=64)
def benchmark_judging(benchmark: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """(judge_protocol, judge_defaults) of a registered benchmark; ("vote", ()) for an ad-hoc name."""
    if benchmark:
        from ..registry import UnknownNameError, get_benchmark

        try:
            spec = get_benchmark(benchmark)
        except (ImportError, UnknownNameError):
            return "vote", ()
        return spec.judge_protocol, tuple(spec.judge_defaults)
    return "vote", ()


class JudgeConfigs:
    """The user's ``--model-arg`` values (validated once) over each benchmark's ``judge_defaults``."""

    def __init__(self, extra: Mapping[str, Any], kind: str) -> None:
        self.extra, self.kind = dict(extra), kind
        self.base = judge_config(self.extra, kind=kind)   # unknown or mistyped keys fail at load time
        self._by_benchmark: dict[str, JudgeConfig] = {}

    def for_request(self, request: ScoringRequest) -> JudgeConfig:
        name = request.benchmark
        if name not in self._by_benchmark:
            defaults = benchmark_judging(name)[1]
            self._by_benchmark[name] = (judge_config(self.extra, kind=self.kind, defaults=defaults)
                                        if defaults else self.base)
        return self._by_benchmark[name]


def sample_orders(request: ScoringRequest, k: int, seed: int) -> list[Order]:
    """The order each of the k samples shows the responses in (over the request's responses).

    ``vote`` benchmarks: the request's order for every sample. ``agree_unless_rejected`` (VL-RewardBench
    inference: a fresh coin per sample): sample 0 keeps the request's order (itself the evaluator's seeded
    permutation), sample j > 0 a permutation from (seed, item id, j); deterministic, so a rerun hits the cache.
    """
    n = len(request.responses)
    identity = tuple(range(n))
    if benchmark_judging(request.benchmark)[0] != "agree_unless_rejected":
        return [identity] * k
    return [identity] + [tuple(int(i) for i in rng_for(seed, "judge-order", request.item_id, j).permutation(n))
                         for j in range(1, k)]


def render(request: ScoringRequest, config: JudgeConfig, order: Order = ()) -> JudgePrompt:
    template = template_for(request, config.prompt or None)
    shown = request.responses if not order else tuple(request.responses[i] for i in order)
    return JudgePrompt(template, template.render(request.prompt, shown), tuple(order))


def render_samples(request: ScoringRequest, config: JudgeConfig, seed: int) -> list[JudgePrompt]:
    """One prompt per sample, in that sample's order (identical prompts under a ``vote`` protocol)."""
    orders = sample_orders(request, config.samples, seed)
    if all(o == orders[0] for o in orders):
        one = render(request, config, orders[0])
        return [one] * len(orders)
    return [render(request, config, o) for o in orders]


def verdict_from_texts(prompts: JudgePrompt | Sequence[JudgePrompt], texts: Sequence[str], n: int,
                       config: JudgeConfig, usage: Mapping[str, float], benchmark: str = "") -> Verdict:
    """Parse each sample, vote, and keep every raw text (one string; a JSON list when k > 1).

    Under ``agree_unless_rejected`` the Verdict also carries each sample's order and the answer it named
    (out-of-range numbers kept), and its scores are the tally of in-range answers: the metric, which knows
    the rejected response, scores the samples (``mr2bench.metrics.agree_unless_rejected``)."""
    if isinstance(prompts, JudgePrompt):
        prompts = [prompts] * len(texts)
    parser = prompts[0].template.parser
    raw = texts[0] if len(texts) == 1 else json.dumps(list(texts), ensure_ascii=False)
    out = dict(usage)
    if benchmark_judging(benchmark)[0] == "agree_unless_rejected":
        samples = tuple({"order": list(p.order or range(n)), "answer": parsed_answer(parser, t, n)}
                        for p, t in zip(prompts, texts))
        out["unreadable_samples"] = float(sum(s["answer"] is None for s in samples))
        return Verdict(scores=tally(samples, n), raw=raw, usage=out, samples=samples)
    orders = [parse_verdict(parser, t, n) for t in texts]
    out["unreadable_samples"] = float(sum(o is None for o in orders))
    return Verdict(scores=vote(orders, n, config.vote), raw=raw, usage=out)
