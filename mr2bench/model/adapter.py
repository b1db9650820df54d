"""``mr2:TARGET`` and ``mr2-single:TARGET``: the bundled reward model behind the ModelAdapter protocol.

``mr2`` scores all of an item's responses in one forward pass; ``mr2-single`` scores the same weights one
response per pass (the conventional baseline). Kind-specific options (``--model-arg key=value``):
``attention=causal|isolated``, ``max_length=INT``, ``max_vision_tokens=INT``, ``revision=REV``.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from ..media import load_image, load_video_frames
from ..schema import DataError, ScoringRequest, Verdict

log = logging.getLogger(__name__)

KNOWN_ARGS = ("attention", "max_length", "max_vision_tokens", "revision")


def _int_arg(extra: Mapping[str, str], key: str) -> int | None:
    if key not in extra:
        return None
    try:
        return int(extra[key])
    except ValueError:
        raise DataError(f"--model-arg {key} must be an integer, got {extra[key]!r}", field="model-arg") from None


def _load(target: str, options: Any) -> Any:
    from .checkpoint import LoadOptions, load_reward_model

    extra = dict(getattr(options, "extra", {}) or {})
    unknown = sorted(set(extra) - set(KNOWN_ARGS))
    if unknown:
        raise DataError(f"unknown --model-arg {unknown} for mr2 models; known: {list(KNOWN_ARGS)}", field="model-arg")
    if not target:
        raise DataError("give a checkpoint folder or Hub id, e.g. mr2:yinuoy/MR2-Molmo2-4B-RM", field="model")
    attention = extra.get("attention")
    if attention is not None and attention not in ("causal", "isolated"):
        raise DataError(f"attention must be causal or isolated, got {attention!r}", field="model-arg")
    opts = LoadOptions(device=options.device, dtype=options.dtype, trust_remote_code=options.trust_remote_code,
                       cache_dir=options.cache_dir, revision=extra.get("revision"), attention=attention,
                       max_length=_int_arg(extra, "max_length"),
                       max_vision_tokens=_int_arg(extra, "max_vision_tokens"))
    try:
        return load_reward_model(target, opts)
    except Exception as exc:  # noqa: BLE001 - any loading failure (files, config, library) is one clear line
        log.debug("loading %s failed", target, exc_info=True)
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise DataError(f"--model: cannot load the reward model {target!r} ({type(exc).__name__}): {detail}",
                        field="model") from None


class MR2Adapter:
    """All N responses of an item in one forward pass."""

    one_pass = True

    def __init__(self, target: str, options: Any) -> None:
        self.options = options
        self.model = _load(target, options)
        self.batch_size = max(1, int(getattr(options, "batch_size", 1)))
        self.num_frames = int(getattr(options, "num_frames", 16))

    def _payloads(self, request: ScoringRequest) -> list[Any]:
        from .reward_model import MediaPayload

        out = []
        for m in request.media:
            if m.kind == "image":
                out.append(MediaPayload("image", load_image(m, request.media_root)))
            elif self.model.family == "molmo2":  # the release's own sampler: its frames and real timestamps
                from .molmo2_media import load_release_video

                out.append(MediaPayload("video", load_release_video(m, request.media_root)))
            else:
                out.append(MediaPayload("video", load_video_frames(m, request.media_root, num_frames=self.num_frames)))
        return out

    def _items(self, request: ScoringRequest) -> list[Any]:
        media = self._payloads(request)
        if self.one_pass:
            return [self.model.build_item(request.prompt, list(request.responses), media)]
        return [self.model.build_item(request.prompt, [r], media) for r in request.responses]

    def score(self, request: ScoringRequest) -> Verdict:
        return self.score_batch([request])[0]

    def score_batch(self, requests: Sequence[ScoringRequest]) -> list[Verdict]:
        per_request = [self._items(r) for r in requests]
        flat = [it for items in per_request for it in items]
        scores: list[list[float]] = []
        for start in range(0, len(flat), self.batch_size):
            scores += self.model.score_items(flat[start:start + self.batch_size])
        verdicts, k = [], 0
        for req, items in zip(requests, per_request):
            chunk = scores[k:k + len(items)]
            k += len(items)
            values = chunk[0] if self.one_pass else [s[0] for s in chunk]
            notes = dict(items[0].notes)
            notes["forward_passes"] = float(len(items))
            if any(key in notes for key in ("frames_dropped", "frames_downscaled", "image_downscaled",
                                            "text_truncated", "over_max_length")):
                log.warning("item %s: input reduced to fit the token budget: %s", req.item_id, notes)
            verdicts.append(Verdict(tuple(float(v) for v in values), raw="", usage=notes))
        return verdicts


class MR2SingleAdapter(MR2Adapter):
    """The same weights, one response per forward pass."""

    one_pass = False
