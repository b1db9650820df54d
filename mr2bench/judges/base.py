"""What every generative judge shares: render the prompt, parse k sample texts, vote, build the Verdict."""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..schema import ScoringRequest, Verdict
from .config import JudgeConfig
from .parse import parse_verdict
from .prompts import PromptTemplate, template_for
from .verdict import vote


@dataclass(frozen=True)
class JudgePrompt:
    template: PromptTemplate
    text: str

    @property
    def media_first(self) -> bool:
        return self.template.media == "before_text"


def render(request: ScoringRequest, config: JudgeConfig) -> JudgePrompt:
    template = template_for(request, config.prompt or None)
    return JudgePrompt(template, template.render(request.prompt, request.responses))


def verdict_from_texts(prompt: JudgePrompt, texts: Sequence[str], n: int, config: JudgeConfig,
                       usage: Mapping[str, float]) -> Verdict:
    """Parse each sample, vote, and keep every raw text (one string; a JSON list when k > 1)."""
    orders = [parse_verdict(prompt.template.parser, t, n) for t in texts]
    scores = vote(orders, n, config.vote)
    raw = texts[0] if len(texts) == 1 else json.dumps(list(texts), ensure_ascii=False)
    out = dict(usage)
    out["unreadable_samples"] = float(sum(o is None for o in orders))
    return Verdict(scores=scores, raw=raw, usage=out)
