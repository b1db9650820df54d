"""A GRPO reward with TRL's reward-function signature that scores each rollout group in one forward pass.

TRL calls ``reward(prompts=..., completions=..., **columns)`` with the G completions of a prompt next to
each other. Consecutive rows with the same prompt (and media) form a group; a group larger than
``max_group`` is scored in chunks of at most ``max_group`` responses.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def _text(value: Any) -> str:
    """A prompt or completion as text: plain strings, or TRL's conversational [{role, content}] form."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        content = value.get("content", "")
        return _text(content) if not isinstance(content, str) else content
    if isinstance(value, (list, tuple)):
        parts = []
        for part in value:
            if isinstance(part, dict) and part.get("type") not in (None, "text"):
                continue
            if isinstance(part, dict) and part.get("role") == "system":
                continue
            parts.append(part.get("text", None) if isinstance(part, dict) and "text" in part else _text(part))
        return "\n".join(p for p in parts if p)
    return str(value)


def _fingerprint(media: Any) -> str | None:
    """Equal media give equal keys even when TRL hands over a fresh object per rollout."""
    if media is None:
        return None
    import hashlib

    value = media[1]
    raw = value.tobytes() if hasattr(value, "tobytes") else repr(value).encode()
    return media[0] + hashlib.sha1(raw).hexdigest()


class MR2Reward:
    """``reward(prompts, completions, **kwargs) -> list[float]``; media come from ``image``/``images``/``video``."""

    def __init__(self, model: Any, max_group: int = 8) -> None:
        self.model = model
        self.max_group = max(1, int(max_group))
        self.__name__ = "mr2_reward"  # TRL logs reward functions by __name__

    def __call__(self, prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[float]:
        if len(prompts) != len(completions):
            raise ValueError(f"{len(prompts)} prompts for {len(completions)} completions")
        media = self._media_column(kwargs, len(prompts))
        keys = [(_text(p), _fingerprint(m)) for p, m in zip(prompts, media)]
        rewards = [0.0] * len(prompts)
        start = 0
        while start < len(prompts):
            end = start
            while end < len(prompts) and keys[end] == keys[start]:
                end += 1
            for s in range(start, end, self.max_group):
                idx = list(range(s, min(end, s + self.max_group)))
                payload = self._payload(media[start])
                item = self.model.build_item(keys[start][0], [_text(completions[i]) for i in idx], payload)
                scores = self.model.score_items([item])[0]
                for i, v in zip(idx, scores):
                    rewards[i] = float(v)
            start = end
        return rewards

    @staticmethod
    def _media_column(kwargs: dict[str, Any], n: int) -> list[Any]:
        for key in ("image", "images", "video"):
            col = kwargs.get(key)
            if col is not None:
                vals = [c[0] if isinstance(c, (list, tuple)) and c else c for c in col]
                return [(key.rstrip("s"), v) if v is not None else None for v in vals]
        return [None] * n

    @staticmethod
    def _payload(media: Any) -> list[Any]:
        from .reward_model import MediaPayload

        if media is None:
            return []
        kind, value = media
        if kind == "video":
            return [MediaPayload("video", np.asarray(value))]
        return [MediaPayload("image", value)]
