"""The LLaVA-NeXT code path (``llava`` package) that LLaVA-Critic and MM-RLHF-Reward are published for.

Both checkpoints are ``llava_qwen`` models of the LLaVA-NeXT repository (github LLaVA-VL/LLaVA-NeXT; the
MM-RLHF fork github yfzhang114/MM-RLHF adds the reward head), not a transformers architecture, so they load
through that package exactly as the authors' scripts do: ``load_pretrained_model(path, None, "llava_qwen")``,
``process_images``, ``tokenizer_image_token`` and the ``qwen_1_5`` conversation template. Without the package
the kind stops with one line naming it. Images: ``process_images`` of every image (a video's sampled frames
with ``modalities=["video"]``, as the MM-RLHF scripts pass frames: UNVERIFIED beyond their code).
"""
from __future__ import annotations

import copy
from typing import Any

from ..schema import DataError, ScoringRequest
from ._shared import torch_device

CONV = "qwen_1_5"
INSTALL = {"llava-critic": "pip install git+https://github.com/LLaVA-VL/LLaVA-NeXT",
           "mm-rlhf-reward": "pip install git+https://github.com/yfzhang114/MM-RLHF (its llava package has the "
                             "reward head)"}


def import_llava(kind: str) -> dict[str, Any]:
    try:
        from llava.constants import DEFAULT_IMAGE_TOKEN, IMAGE_TOKEN_INDEX
        from llava.conversation import conv_templates
        from llava.mm_utils import process_images, tokenizer_image_token
        from llava.model.builder import load_pretrained_model
    except ImportError as exc:
        raise DataError(f"{kind}: needs the authors' llava package ({exc.name or exc}); {INSTALL[kind]}",
                        field="model") from None
    return dict(DEFAULT_IMAGE_TOKEN=DEFAULT_IMAGE_TOKEN, IMAGE_TOKEN_INDEX=IMAGE_TOKEN_INDEX,
                conv_templates=conv_templates, process_images=process_images,
                tokenizer_image_token=tokenizer_image_token, load_pretrained_model=load_pretrained_model)


class LlavaBackend:
    def __init__(self, kind: str, target: str, options: Any) -> None:
        self.api = import_llava(kind)
        self.options = options
        self.device = torch_device(options)
        self.tokenizer, self.model, self.image_processor, _ = self.api["load_pretrained_model"](
            target, None, "llava_qwen", device_map=str(self.device))
        self.model.eval()

    @property
    def image_token(self) -> str:
        return self.api["DEFAULT_IMAGE_TOKEN"]

    def conversation(self, user: str, assistant: str | None) -> str:
        """The ``qwen_1_5`` template with one user turn and an assistant turn (open when None)."""
        conv = copy.deepcopy(self.api["conv_templates"][CONV])
        conv.append_message(conv.roles[0], user)
        conv.append_message(conv.roles[1], assistant)
        return conv.get_prompt()

    def _inputs(self, prompt: str, request: ScoringRequest) -> dict[str, Any]:
        from ._shared import request_media

        images, _, _ = request_media(request, self.options.num_frames, video_native=False)
        ids = self.api["tokenizer_image_token"](prompt, self.tokenizer, self.api["IMAGE_TOKEN_INDEX"],
                                                return_tensors="pt").unsqueeze(0).to(self.device)
        kwargs: dict[str, Any] = {}
        if images:
            video = any(m.kind == "video" for m in request.media)
            kwargs = dict(images=self.api["process_images"](images, self.image_processor, self.model.config),
                          image_sizes=[im.size for im in images], modalities=["video" if video else "image"])
        return {"input_ids": ids, **kwargs}

    def generate(self, prompt: str, request: ScoringRequest, max_new_tokens: int) -> str:
        import torch

        inputs = self._inputs(prompt, request)
        with torch.inference_mode():
            out = self.model.generate(inputs.pop("input_ids"), do_sample=False, temperature=0, top_p=None,
                                      num_beams=1, max_new_tokens=max_new_tokens, use_cache=True, **inputs)
        return self.tokenizer.batch_decode(out, skip_special_tokens=True)[0].strip()

    def reward(self, prompt: str, request: ScoringRequest) -> float:
        """MM-RLHF's reward head: ``model(input_ids, images=..., rm_forward=True)`` -> (reward, _)."""
        import torch

        inputs = self._inputs(prompt, request)
        inputs.pop("modalities", None)
        with torch.inference_mode():
            reward, _ = self.model(inputs.pop("input_ids"), rm_forward=True, **inputs)
        return float(reward[0].item())
