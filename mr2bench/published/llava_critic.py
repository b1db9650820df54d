"""``llava-critic:MODEL``: LLaVA-Critic-7B (lmms-lab/llava-critic-7b), a LLaVA-OneVision-Qwen generative judge,
pairwise.

Source: the model card of lmms-lab/llava-critic-7b ("Quick Start", pairwise ranking) and arXiv 2410.02712,
read and re-written here. The card runs the LLaVA-NeXT ``llava`` package (``_llava.LlavaBackend``):
``load_pretrained_model(path, None, "llava_qwen")``, the user turn ``<image>\\n`` + ``PAIRWISE_TEMPLATE``
(question, first response, second response, ending in ``ASSISTANT:\\n``) in the ``qwen_1_5`` conversation
with an open assistant turn, greedy decoding (temperature 0, max_new_tokens 4096).
Assumptions, declared: the card gives no output format or parser. Here the verdict is the LAST phrase naming
one response as better: "first/second response (is) ... better", "Response/Answer 1/2 is better", or
"[[A]]"/"[[B]]"; anything else is unreadable (counted, and scored by the benchmark's parse rule; the paper's
14.7 on VRB suggests many unreadable outputs there). N-way items: every pair (``_shared.all_pairs``). An
HF-format (``llava_onevision``) conversion is not what the authors publish and is not used.
"""
from __future__ import annotations

import re

from ..schema import ScoringRequest, Verdict
from ._shared import all_pairs, int_arg, need_target

PAIRWISE_TEMPLATE = (
    "Given an image and a corresponding question, please serve as an unbiased and fair judge to evaluate the quality "
    "of the answers provided by a Large Multimodal Model (LMM). Determine which answer is better and explain your "
    "reasoning with specific details. Your task is provided as follows:\nQuestion: [{question}]\n"
    "The first response: [{answer1}]\nThe second response: [{answer2}]\nASSISTANT:\n"
)
_PATTERNS = (
    (re.compile(r"\b(first|second)\s+(?:response|answer)\s+(?:is|was|provides|offers)?\s*(?:\w+\s+){0,2}better",
                re.IGNORECASE), {"first": 0, "second": 1}),
    (re.compile(r"\b(?:response|answer)\s*([12])\s+is\s+(?:\w+\s+){0,2}better", re.IGNORECASE), {"1": 0, "2": 1}),
    (re.compile(r"\[\[([AB])\]\]"), {"A": 0, "B": 1}),
)


def render(question: str, answer1: str, answer2: str, image_token: str = "<image>", has_media: bool = True) -> str:
    text = PAIRWISE_TEMPLATE.format(question=question, answer1=answer1, answer2=answer2)
    return image_token + "\n" + text if has_media else text


def parse(text: str) -> int | None:
    """The last stated preference in the text, 0 = the first response, 1 = the second, or None."""
    best: tuple[int, int] | None = None     # (position in text, pick)
    for pattern, picks in _PATTERNS:
        for m in pattern.finditer(text):
            if best is None or m.start() > best[0]:
                best = (m.start(), picks[m.group(1).lower() if m.group(1).isalpha() and len(m.group(1)) > 1
                                         else m.group(1)])
    return None if best is None else best[1]


class LLaVACriticAdapter:
    MAX_TOKENS = 4096

    def __init__(self, target: str, options) -> None:
        need_target("llava-critic", target)
        from ._llava import LlavaBackend

        self.max_tokens = int_arg(options, "max_tokens", self.MAX_TOKENS, ("max_tokens",))
        self.llava = LlavaBackend("llava-critic", target, options)

    def score(self, request: ScoringRequest) -> Verdict:
        def judge(i: int, j: int) -> tuple[int | None, str]:
            user = render(request.prompt, request.responses[i], request.responses[j], self.llava.image_token,
                          bool(request.media))
            text = self.llava.generate(self.llava.conversation(user, None), request, self.max_tokens)
            return parse(text), text

        return all_pairs(len(request.responses), judge)
