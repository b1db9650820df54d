"""``judge:MODEL``: a transformers vision-language model (Hub id or folder) that writes a verdict.

The model's chat template gets one user turn with the rendered judge prompt and the item's media
(images; a video as the model's video input when its processor has a video processor, otherwise as
its sampled frames, one image each). Decoding is greedy for k = 1. For k > 1 every sample draws its
tokens from its own ``torch.Generator`` seeded by (seed, item id, sample index) through a logits
processor, so nothing reads or changes torch's global random state and a re-run is identical. On a
benchmark whose ``judge_protocol`` shows each sample in a fresh order (VL-RewardBench), each sample gets
its own prompt (``base.sample_orders``); the benchmark's ``judge_defaults`` (max_tokens 2048 there) apply
unless a ``--model-arg`` sets the key.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from ..media import load_image, load_video_frames
from ..schema import DataError, ScoringRequest, Verdict
from ..seeding import derive_seed
from .base import JudgeConfigs, JudgePrompt, render_samples, verdict_from_texts

log = logging.getLogger(__name__)


def load_processor(target: str, trust_remote_code: bool = False) -> Any:
    """AutoProcessor, or (when it needs torchvision for the video processor, as Qwen-VL does on a CPU
    torch) the model's processor class built from its image processor and tokenizer, video-less."""
    import transformers
    from transformers import AutoConfig, AutoImageProcessor, AutoProcessor, AutoTokenizer

    try:
        proc = AutoProcessor.from_pretrained(target, trust_remote_code=trust_remote_code)
        if hasattr(proc, "image_processor"):
            return proc
    except (ImportError, AttributeError) as exc:
        log.info("AutoProcessor failed (%s); building an image-only processor", str(exc).strip()[:120])
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING_NAMES

    config = AutoConfig.from_pretrained(target, trust_remote_code=trust_remote_code)
    name = PROCESSOR_MAPPING_NAMES.get(config.model_type)
    base = getattr(transformers, name, None) if isinstance(name, str) else None
    if base is None:
        raise DataError(f"no processor class known for model type {config.model_type!r}", field="model")

    class ImageOnlyProcessor(base):  # type: ignore[misc, valid-type]
        def check_argument_for_proper_class(self, arg_name, arg):  # accept video_processor=None
            return None if arg is None else super().check_argument_for_proper_class(arg_name, arg)

    tok = AutoTokenizer.from_pretrained(target, trust_remote_code=trust_remote_code)
    image_proc = AutoImageProcessor.from_pretrained(target, trust_remote_code=trust_remote_code)
    return ImageOnlyProcessor(image_processor=image_proc, tokenizer=tok, video_processor=None,
                              chat_template=getattr(tok, "chat_template", None))


def _seeded_sampler(temperature: float, top_p: float, seed: int):
    """A LogitsProcessor that samples one token with its own generator and masks every other one, so
    that greedy decoding emits exactly the sampled token."""
    import torch
    from transformers import LogitsProcessor

    class SeededSampler(LogitsProcessor):
        def __init__(self) -> None:
            self.generator: torch.Generator | None = None

        def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
            if self.generator is None:
                self.generator = torch.Generator(device=scores.device).manual_seed(seed)
            probs = torch.softmax(scores.float() / temperature, dim=-1)
            if top_p < 1.0:
                sorted_p, order = probs.sort(dim=-1, descending=True)
                drop = sorted_p.cumsum(-1) - sorted_p > top_p  # keep the smallest set reaching top_p
                sorted_p = sorted_p.masked_fill(drop, 0.0)
                probs = torch.zeros_like(probs).scatter(-1, order, sorted_p)
            picked = torch.multinomial(probs, 1, generator=self.generator)
            out = torch.full_like(scores, float("-inf"))
            return out.scatter(-1, picked, 0.0)

    return SeededSampler()


class LocalJudgeAdapter:
    """``judge:MODEL [--model-arg samples=K,prompt=ID,max_tokens=N,temperature=T,top_p=P,vote=RULE]``."""

    def __init__(self, target: str, options) -> None:
        if not target:
            raise DataError("give a Hub id or a folder: judge:MODEL", field="model")
        import torch
        from transformers import AutoModelForImageTextToText

        self.options = options
        self.configs = JudgeConfigs(options.extra, kind="judge")
        self.config = self.configs.base
        device = options.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        dtype = options.dtype if options.dtype == "auto" else getattr(torch, options.dtype)
        self.model = AutoModelForImageTextToText.from_pretrained(
            target, dtype=dtype, trust_remote_code=options.trust_remote_code).to(self.device).eval()
        self.processor = load_processor(target, options.trust_remote_code)
        self.tokenizer = getattr(self.processor, "tokenizer", self.processor)
        self.video_native = getattr(self.processor, "video_processor", None) is not None

    def _inputs(self, prompt: JudgePrompt, request: ScoringRequest) -> Any:
        images, videos, parts = [], [], []
        for m in request.media:
            if m.kind == "image":
                images.append(load_image(m, request.media_root))
                parts.append({"type": "image"})
            elif self.video_native:
                videos.append(load_video_frames(m, request.media_root, self.options.num_frames))
                parts.append({"type": "video"})
            else:
                from PIL import Image

                for frame in load_video_frames(m, request.media_root, self.options.num_frames):
                    images.append(Image.fromarray(frame))
                    parts.append({"type": "image"})
        text_part = [{"type": "text", "text": prompt.text}]
        content = parts + text_part if prompt.media_first else text_part + parts
        chat = self.processor.apply_chat_template([{"role": "user", "content": content}],
                                                  add_generation_prompt=True, tokenize=False)
        kwargs: dict[str, Any] = {"text": [chat], "return_tensors": "pt"}
        if images:
            kwargs["images"] = images
        if videos:
            kwargs["videos"] = videos
        return self.processor(**kwargs).to(self.device)

    def score(self, request: ScoringRequest) -> Verdict:
        import torch

        cfg = self.configs.for_request(request)
        prompts = render_samples(request, cfg, self.options.seed)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        texts, completion, n_prompt = [], 0, 0
        inputs = None
        for k, prompt in enumerate(prompts):
            if inputs is None or prompt is not prompts[k - 1]:  # a fresh order per sample: its own prompt
                inputs = self._inputs(prompt, request)
            n_in = int(inputs["input_ids"].shape[1])
            n_prompt += n_in
            extra: dict[str, Any] = {}
            if cfg.samples > 1:
                seed = derive_seed(self.options.seed, "judge-sample", request.item_id, k) % 2**63
                extra["logits_processor"] = [_seeded_sampler(cfg.sampling_temperature, cfg.sampling_top_p, seed)]
            with torch.inference_mode():
                out = self.model.generate(**inputs, max_new_tokens=cfg.max_tokens, do_sample=False, num_beams=1,
                                          pad_token_id=pad, **extra)
            new = out[0, n_in:]
            completion += int(new.numel())
            texts.append(self.tokenizer.decode(new, skip_special_tokens=True))
        usage = {"prompt_tokens": float(n_prompt), "completion_tokens": float(completion)}
        return verdict_from_texts(prompts, texts, len(request.responses), cfg, usage, request.benchmark)

    def score_batch(self, requests: Sequence[ScoringRequest]) -> list[Verdict]:
        return [self.score(r) for r in requests]
