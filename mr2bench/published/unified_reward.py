"""``unified-reward:MODEL``: UnifiedReward-Qwen (CodeGoat24/UnifiedReward-qwen-7b), a Qwen2.5-VL generative
pairwise judge for image and video understanding.

Source: github CodeGoat24/UnifiedReward @ff6f520: ``inference_qwen/image_understanding/
qwen_pair_rank_image_understanding.py`` and ``inference_qwen/video_understanding/
qwen_pair_rank_video_understanding.py``, read and re-written here.
What their code does and we follow: one user turn, media first, then the pair prompt of the modality
(``IMAGE_TEMPLATE`` / ``VIDEO_TEMPLATE``, reproduced below); the Qwen2.5-VL chat template with
``add_generation_prompt=True``; ``max_new_tokens`` 4096; the decision stated as "Answer 1 is better" /
"Answer 2 is better" (video: "Overall Judgment: Answer X is better than Answer Y").
Assumptions, declared: their scripts print the output and give no parser; here the LAST "Answer N is better"
(case-insensitive, ``*`` and newlines removed first) is the verdict, anything else unreadable. Items with no
media use the image prompt. N-way items: every pair (``_shared.all_pairs``). The LLaVA-based UnifiedReward
checkpoints (``UnifiedReward-7b``) run through the LLaVA-NeXT code and are not covered by this kind.
"""
from __future__ import annotations

import re

from ..schema import ScoringRequest, Verdict
from ._shared import VLMGenerator, all_pairs, int_arg, need_target

IMAGE_TEMPLATE = (
    "You are given an image and a question related to it. Your job is to evaluate the two responses based on these "
    "five factors:\n\n"
    "1. Accuracy of Object Descriptions: Review how accurately the objects are described in the responses, ensuring "
    "they match those in the ground truth. Be mindful of irrelevant or incorrect objects being mentioned.\n\n"
    "2. Relationship Between Objects: Check if the response properly describes how the objects relate to each "
    "other, reflecting their actual positions or interactions, as seen in the image.\n\n"
    "3. Description of Attributes: Assess how well the response captures the attributes (e.g., size, color, shape) "
    "of the objects in the image, in line with the ground truth.\n\n"
    "4. Helpfulness: Consider whether the response offers useful information that enhances the understanding of "
    "the image. Does it add context or provide extra insights? Also, evaluate whether it follows the instructions "
    "given in the prompt.\n\n"
    "5. Ethical Concerns: Review the response to ensure it avoids sensitive, harmful, or inappropriate content. The "
    "response should be fair, respect privacy, and be free of bias or offensive material.\n\n"
    "After evaluating both answers, determine which one is better based on these factors and clearly state your "
    "decision, such as 'Answer 1 is better' or 'Answer 2 is better.'\n\n"
    "Question: {question}\nAnswer 1: {answer1}\nAnswer 2: {answer2}\n"
)
VIDEO_TEMPLATE = (
    "Please analyze the following video and question, then determine which of the two provided answers is better\n"
    "Question: {question}\nAnswer 1: {answer1}\nAnswer 2: {answer2}\n"
    "Please evaluate both answers based on the following criteria:\n"
    "1. Accuracy: How well does the answer align with the visual information in the video?\n"
    "2. Completeness: Does the answer fully address all aspects of the question?\n"
    "3. Clarity: Is the answer easy to understand and well-articulated?\n"
    "4. Relevance: Does the answer directly relate to the question and the video?\n"
    "After your evaluation, please:\n"
    "1. Explain your reasoning for each criterion.\n"
    "2. Provide an overall judgment on which answer is better (Answer 1 or Answer 2). For example: \"Overall "
    "Judgment: Answer 1 is better than Answer 2.\"\n"
    "Your response should be structured and detailed, demonstrating your understanding of both the visual and "
    "textual elements of the task. You have to choose the better of the two answers and can't say that both "
    "answers are equally good."
)
_VERDICT = re.compile(r"Answer\s*([12])\s*is\s*(?:the\s*)?(?:slightly\s*)?better", re.IGNORECASE)


def render(question: str, answer1: str, answer2: str, video: bool = False) -> str:
    return (VIDEO_TEMPLATE if video else IMAGE_TEMPLATE).format(question=question, answer1=answer1, answer2=answer2)


def parse(text: str) -> int | None:
    found = _VERDICT.findall(text.replace("*", "").replace("\n", " "))
    return None if not found else int(found[-1]) - 1


class UnifiedRewardAdapter:
    MAX_TOKENS = 4096

    def __init__(self, target: str, options) -> None:
        need_target("unified-reward", target)
        self.max_tokens = int_arg(options, "max_tokens", self.MAX_TOKENS, ("max_tokens",))
        self.vlm = VLMGenerator(target, options)

    def score(self, request: ScoringRequest) -> Verdict:
        video = any(m.kind == "video" for m in request.media)

        def judge(i: int, j: int) -> tuple[int | None, str]:
            prompt = render(request.prompt, request.responses[i], request.responses[j], video)
            text = self.vlm.generate(request, prompt, self.max_tokens)
            return parse(text), text

        return all_pairs(len(request.responses), judge)
