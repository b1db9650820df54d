"""``mm-rlhf-reward:MODEL``: MM-RLHF-Reward-7B (yifanzhang114/MM-RLHF-Reward-7B-llava-ov-qwen), a critique-then-
score reward model on LLaVA-OneVision-Qwen, pointwise.

Source: github yfzhang114/MM-RLHF @7c8af1d ``llava/eval/eval_mm_reward_bench.py`` and the copy in github
yfzhang114/r1_reward @3693413 ``inference/Multimodal-Reward/get_mm-rlhf_reward.py`` (Apache-2.0), read and
re-written here. Per answer, two passes through the authors' ``llava`` package (``_llava.LlavaBackend``):
1. critique: the user turn ``<image>\\n`` + ``CRITIC_TEMPLATE`` (question, answer) in the ``qwen_1_5``
   conversation with an open assistant turn, greedy decoding (temperature 0, max_new_tokens 4096);
2. reward: the same user turn with the critique as the assistant's message, one forward with
   ``rm_forward=True``; the reward is the first output's value.
An empty question becomes "Write a caption of the image." (their ``make_conv_rm``); the ``<image>`` marker
is put once at the front (their code strips any in the text first). Assumptions, declared: video items pass
``--num-frames`` sampled frames (their scripts: 32, ``linspace`` over the sorted frame files);
``--model-arg max_tokens=N`` bounds the critique. N-way items: each response pointwise (as their code).
"""
from __future__ import annotations

from ..schema import ScoringRequest, Verdict
from ._shared import int_arg, need_target

CRITIC_TEMPLATE = (
    "You are an unbiased and fair evaluator tasked with assessing the quality of answers provided by a Large "
    "Multimodal Model (LMM). Given the following question and the LMM's response, please evaluate the correctness, "
    "clarity, and completeness of the answer. Provide a detailed explanation of your assessment, including "
    "specific points of strength and areas for improvement.\n\n"
    "[Question]: {question}\n"
    "[LMM Response]: {answer}\n\n"
    "[Evaluation]:"
)
DEFAULT_QUESTION = "Write a caption of the image."


def user_turn(question: str, answer: str, image_token: str = "<image>", has_media: bool = True) -> str:
    text = CRITIC_TEMPLATE.format(question=question or DEFAULT_QUESTION, answer=answer)
    if not has_media:
        return text
    return (image_token + "\n" + text.replace(image_token, "").strip()).strip()


class MMRLHFRewardAdapter:
    MAX_TOKENS = 4096

    def __init__(self, target: str, options) -> None:
        need_target("mm-rlhf-reward", target)
        from ._llava import LlavaBackend

        self.max_tokens = int_arg(options, "max_tokens", self.MAX_TOKENS, ("max_tokens",))
        self.llava = LlavaBackend("mm-rlhf-reward", target, options)

    def score(self, request: ScoringRequest) -> Verdict:
        scores, critiques = [], []
        for answer in request.responses:
            user = user_turn(request.prompt, answer, self.llava.image_token, bool(request.media))
            critique = self.llava.generate(self.llava.conversation(user, None), request, self.max_tokens)
            critiques.append(critique)
            scores.append(self.llava.reward(self.llava.conversation(user, critique), request))
        import json

        return Verdict(scores=tuple(scores), raw=json.dumps(critiques, ensure_ascii=False))
