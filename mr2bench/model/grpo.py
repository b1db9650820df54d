"""A GRPO reward with TRL's reward-function signature that scores each prompt's group in one forward pass.

TRL's ``GRPOTrainer`` calls every reward function as ``f(prompts=..., completions=..., completion_ids=...,
**every_dataset_column)``; conversational prompts and completions are lists of ``{"role", "content"}``
messages; images come as the dataset's ``image`` / ``images`` column or as content parts of the prompt
messages. Rows with the same prompt (and media) next to each other form a group, split into chunks of
``num_generations`` when that is known.

A group must be scored together: with several processes TRL spreads one prompt's completions over ranks
unless ``per_device_train_batch_size`` is a multiple of ``num_generations``, and scoring a fragment gives
other scores (causal mode: a response sees the ones before it). So, when ``torch.distributed`` is
initialised, the prompts and completions of all ranks are gathered (``all_gather_object``, text only; the
media of a group are on every rank that holds one of its rows) and each rank scores every group it holds
a row of, whole. Without a process group, a group that is visibly cut (fewer rows than ``num_generations``)
is refused with an error naming both settings; ``check_grpo_config(args)`` refuses such a setup up front.
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


class GroupSplitError(ValueError):
    """A prompt's completions are not all here, and there is no process group to gather them."""


def _fragment_message(seen: int, num_generations: int) -> str:
    return (f"a GRPO group arrived in a fragment ({seen} of num_generations={num_generations} completions): set "
            f"per_device_train_batch_size to a multiple of num_generations, or launch with torch.distributed "
            f"initialised so that mr2bench can gather each group across ranks")


def check_grpo_config(args: Any, distributed: bool | None = None) -> bool:
    """Check TRL GRPO arguments before training; True when groups will be gathered across ranks.

    Raises ``GroupSplitError`` when a group would be split over processes with no process group to gather
    it. ``distributed``: whether torch.distributed will be initialised (default: the launcher's WORLD_SIZE).
    """
    import os

    per_device = int(getattr(args, "per_device_train_batch_size"))
    groups = int(getattr(args, "num_generations"))
    world = int(getattr(args, "world_size", 0) or os.environ.get("WORLD_SIZE", 1))
    if groups < 1 or per_device < 1:
        raise ValueError(f"per_device_train_batch_size ({per_device}) and num_generations ({groups}) must be >= 1")
    if per_device % groups == 0 or world == 1:
        return False
    if distributed is None:
        distributed = world > 1
    if not distributed:
        raise GroupSplitError(f"per_device_train_batch_size={per_device} is not a multiple of num_generations="
                              f"{groups} and {world} processes have no process group: each prompt's group would "
                              f"be scored in fragments; use a multiple, or torch.distributed")
    return True


# -- turning TRL's arguments into text and media ----------------------------------------------------------
def _text(value: Any) -> str:
    """A prompt or completion as text: plain strings, or TRL's conversational [{role, content}] form."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        content = value.get("content", "")
        return content if isinstance(content, str) else _text(content)
    if isinstance(value, (list, tuple)):
        parts = []
        for part in value:
            if isinstance(part, dict) and part.get("type") not in (None, "text"):
                continue
            if isinstance(part, dict) and part.get("role") == "system":
                continue
            parts.append(part.get("text") if isinstance(part, dict) and "text" in part else _text(part))
        return "\n".join(p for p in parts if p)
    return str(value)


def _message_media(prompt: Any) -> list[tuple[str, Any]]:
    """Images (and videos) carried inside the prompt messages' content parts, in order."""
    found: list[tuple[str, Any]] = []
    messages = prompt if isinstance(prompt, (list, tuple)) else []
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        for part in content if isinstance(content, (list, tuple)) else []:
            if not isinstance(part, dict):
                continue
            kind = part.get("type")
            value = part.get(kind) if kind in ("image", "video") else None
            if kind == "image_url" and isinstance(part.get("image_url"), dict):
                kind, value = "image", part["image_url"].get("url")
            if kind in ("image", "video") and value is not None:
                found.append((kind, value))
    return found


def _column_media(kwargs: dict[str, Any], row: int) -> list[tuple[str, Any]]:
    """Every image of the row's ``images`` / ``image`` column, then its ``video``."""
    found: list[tuple[str, Any]] = []
    for key in ("images", "image"):
        col = kwargs.get(key)
        value = col[row] if col is not None else None
        if value is None:
            continue
        values = value if isinstance(value, (list, tuple)) else [value]
        found += [("image", v) for v in values if v is not None]
        break
    video = kwargs.get("video")
    if video is not None and video[row] is not None:
        found.append(("video", video[row]))
    return found


def row_media(prompt: Any, kwargs: dict[str, Any], row: int) -> list[tuple[str, Any]]:
    """The row's media: the dataset columns when present (TRL puts placeholders in the messages then),
    else what the messages carry."""
    return _column_media(kwargs, row) or _message_media(prompt)


def _fingerprint(media: list[tuple[str, Any]]) -> str:
    """Equal media give equal keys even when TRL hands over a fresh object per rollout."""
    digest = hashlib.sha1()
    for kind, value in media:
        raw = value.tobytes() if hasattr(value, "tobytes") else repr(value).encode()
        digest.update(kind.encode() + b"\0" + raw + b"\0")
    return digest.hexdigest()


@dataclass(frozen=True)
class _Row:
    key: tuple[str, str]     # (prompt text, media fingerprint)
    completion: str


def _groups(keys: list[tuple[str, str]], size: int | None) -> list[range]:
    """Runs of equal keys, each cut into chunks of ``size`` (two draws of one prompt sit side by side)."""
    runs, start = [], 0
    while start < len(keys):
        end = start
        while end < len(keys) and keys[end] == keys[start]:
            end += 1
        step = size or (end - start)
        runs += [range(s, min(end, s + step)) for s in range(start, end, step)]
        start = end
    return runs


def _gather(rows: list[_Row]) -> tuple[list[_Row], int] | None:
    """(rows of every rank in rank order, offset of ours) when torch.distributed runs, else None."""
    try:
        import torch.distributed as dist
    except ImportError:  # pragma: no cover - torch is a dependency of the model extra
        return None
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return None
    everyone: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, [(r.key, r.completion) for r in rows])
    rank = dist.get_rank()
    offset = sum(len(part) for part in everyone[:rank])
    return [_Row(tuple(k), c) for part in everyone for k, c in part], offset


class MR2Reward:
    """``reward(prompts, completions, **columns) -> list[float]``, one score per completion, whole groups.

    ``num_generations``: TRL's setting, to split two groups of one prompt and to detect a cut group.
    ``max_group``: at most this many responses per forward pass (a larger group is scored in chunks).
    ``attention``: the packing mode (default: the model's own).
    """

    def __init__(self, model: Any, max_group: int = 8, num_generations: int | None = None,
                 attention: str | None = None, gather: bool = True) -> None:
        self.model = model
        self.max_group = max(1, int(max_group))
        self.num_generations = int(num_generations) if num_generations else None
        self.attention = attention
        self.gather = gather
        self.__name__ = "mr2_reward"  # TRL logs reward functions by __name__

    def __call__(self, prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[float]:
        if len(prompts) != len(completions):
            raise ValueError(f"{len(prompts)} prompts for {len(completions)} completions")
        media = [row_media(p, kwargs, i) for i, p in enumerate(prompts)]
        local = [_Row((_text(p), _fingerprint(m)), _text(c)) for p, m, c in zip(prompts, media, completions)]
        gathered = _gather(local) if self.gather else None
        rows, offset = gathered if gathered is not None else (local, 0)
        groups = _groups([r.key for r in rows], self.num_generations)
        mine = range(offset, offset + len(local))
        rewards = [0.0] * len(local)
        for group in groups:
            if group.stop <= mine.start or group.start >= mine.stop:
                continue  # another rank's group
            if self.num_generations and len(group) < self.num_generations:
                raise GroupSplitError(_fragment_message(len(group), self.num_generations))
            payload = self._payload(media[max(group.start, mine.start) - offset])
            scores = self._score(rows[group.start].key[0], [rows[i].completion for i in group], payload)
            for i, value in zip(group, scores):
                if i in mine:
                    rewards[i - offset] = value
        return rewards

    def _score(self, prompt: str, completions: list[str], payload: list[Any]) -> list[float]:
        out: list[float] = []
        for s in range(0, len(completions), self.max_group):
            item = self.model.build_item(prompt, completions[s:s + self.max_group], payload)
            out += [float(v) for v in self.model.score_items([item], self.attention)[0]]
        return out

    @staticmethod
    def _payload(media: list[tuple[str, Any]]) -> list[Any]:
        from .reward_model import MediaPayload

        out = []
        for kind, value in media:
            if kind == "video":
                out.append(MediaPayload("video", value if hasattr(value, "frames") else np.asarray(value)))
            else:
                out.append(MediaPayload("image", _as_image(value)))
        return out


def _as_image(value: Any) -> Any:
    """A PIL image from what a dataset column or message part holds (PIL, array, path, {"bytes"/"path"})."""
    from PIL import Image

    if isinstance(value, Image.Image):
        return value.convert("RGB")
    if isinstance(value, np.ndarray):
        return Image.fromarray(value).convert("RGB")
    if isinstance(value, dict) and value.get("bytes") is not None:  # datasets' Image feature, not decoded
        import io

        return Image.open(io.BytesIO(value["bytes"])).convert("RGB")
    path = value.get("path") if isinstance(value, dict) else value
    if isinstance(path, str):
        return Image.open(path[7:] if path.startswith("file://") else path).convert("RGB")
    raise ValueError(f"cannot read an image from {type(value).__name__}")
