"""The multi-response reward model: backbone + value head, all N responses scored in one forward pass.

Score positions (``score_position``, recorded in ``reward_model_config.json``):

- ``before_separator`` (the release's training layout; the default): the user turn holds the media, then the
  prompt; the assistant turn holds all N responses as ONE text joined with SEPARATOR, rendered through the chat
  template with the assistant message (``add_generation_prompt=False``) and tokenized jointly. Response i < N is
  read at the token just before the i-th ``<|resp_sep|>``, the last response at the final token of the sequence
  (whatever the template closes the turn with). A single pass (N = 1) is the same rule with one response: it is
  read at the final token, after the template's closing tokens. ``attention=isolated`` packs those N single
  passes side by side (no separators), so it equals N single passes, not the joint layout.
- ``response_last_token`` (mr2bench checkpoints of format version 1): the generation prompt, then
  ``r1 SEP r2 ... rN`` tokenized response by response, each read at its own last token.

Text budget: when the text alone leaves less than ``MEDIA_RESERVE`` tokens per medium under ``max_length``, the
prompt is cut in the middle (down to half the room at most) and every response is capped at one shared length
(its end cut); separators and score positions stay. Media then get what is left. Both reductions are reported
in the item's ``notes``.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .backbone import RESP_SEP, ensure_separator, hidden_size, unwrap
from .media_inputs import QwenMediaEncoder
from .packing import (ATTENTION_MODES, SEPARATOR, ItemInput, PackedBatch, concat_media, isolated_mask,
                      masked_scores, pack, restart_offsets)
from .tiny import CHAT_TEMPLATE, MOLMO2_CHAT_TEMPLATE
from .value_head import ValueHead, represent

log = logging.getLogger(__name__)

DEFAULT_MAX_LENGTH = 24576
DEFAULT_MAX_VISION_TOKENS = 16384
MEDIA_RESERVE = 256  # text is cut before it leaves a medium fewer tokens than this
SCORE_POSITIONS = ("before_separator", "response_last_token")
MEDIA_MARKERS = {"image": "<|vision_start|><|image_pad|><|vision_end|>",
                 "video": "<|vision_start|><|video_pad|><|vision_end|>"}
MOLMO2_MARKERS = {"image": "<|image|>", "video": "<|video|>"}
QWEN_FAMILIES = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl")


@dataclass(frozen=True)
class MediaPayload:
    """A decoded medium: a PIL image, or uint8 frames [T, H, W, 3]."""

    kind: str
    value: Any


@dataclass
class TextLayout:
    """An item's text tokens: ``pieces`` around the media markers (the last ends where the responses start)."""

    pieces: list[list[int]]
    joint: list[int]
    starts: list[int]
    ends: list[int]
    singles: list[list[int]]

    @property
    def length(self) -> int:
        return sum(len(p) for p in self.pieces) + len(self.joint)


def fit_lengths(prompt: int, responses: list[int], budget: int) -> tuple[int, list[int]]:
    """Token counts to keep (prompt, each response) so that they sum to at most ``budget``.

    The prompt gives way first, down to half the budget; the responses share the rest under one common cap
    (water-filling), at least one token each.
    """
    if prompt + sum(responses) <= budget:
        return prompt, list(responses)
    keep_prompt = max(0, min(prompt, max(budget - sum(responses), budget // 2)))
    rest = max(budget - keep_prompt, len(responses))
    lo, hi = 1, max(responses)
    while lo < hi:  # the largest cap whose total fits
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if sum(min(r, mid) for r in responses) <= rest else (lo, mid - 1)
    return keep_prompt, [min(r, lo) for r in responses]


class RewardModel(nn.Module):
    def __init__(self, backbone: Any, tokenizer: Any, image_processor: Any = None, head: ValueHead | None = None,
                 attention: str = "causal", max_length: int = DEFAULT_MAX_LENGTH,
                 max_vision_tokens: int = DEFAULT_MAX_VISION_TOKENS,
                 score_position: str = "before_separator") -> None:
        super().__init__()
        if attention not in ATTENTION_MODES:
            raise ValueError(f"attention must be one of {ATTENTION_MODES}, got {attention!r}")
        if score_position not in SCORE_POSITIONS:
            raise ValueError(f"score_position must be one of {SCORE_POSITIONS}, got {score_position!r}")
        self.backbone = backbone
        self.tokenizer = tokenizer
        self.sep_ids = ensure_separator(unwrap(backbone), tokenizer)
        self.sep_id = int(tokenizer.convert_tokens_to_ids(RESP_SEP))
        self.head = head if head is not None else ValueHead(hidden_size(backbone))
        self.attention = attention
        self.score_position = score_position
        self.max_length = max_length
        self.max_vision_tokens = max_vision_tokens
        self.family = unwrap(backbone).config.model_type
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.encoder: Any = None
        if self.family in QWEN_FAMILIES:
            self.encoder = QwenMediaEncoder(unwrap(backbone).config, tokenizer, image_processor)
        elif self.family == "molmo2":
            from .molmo2_media import Molmo2MediaEncoder

            self.encoder = Molmo2MediaEncoder(tokenizer, image_processor)

    @property
    def device(self) -> torch.device:
        return next(self.head.parameters()).device

    # -- text -----------------------------------------------------------------------------------------
    def encode_text(self, text: str) -> list[int]:
        ids = self.tokenizer.encode(text, add_special_tokens=False)
        return ids or self.tokenizer.encode(" ", add_special_tokens=False)  # an empty response still needs a token

    def _render(self, prompt: str, kinds: list[str], assistant: str | None) -> str:
        """The chat text: with the assistant message when given (the release), else the generation prompt."""
        molmo2 = self.family == "molmo2"
        template = self.tokenizer.chat_template or (MOLMO2_CHAT_TEMPLATE if molmo2 else CHAT_TEMPLATE)
        content = [{"type": k} for k in kinds] + [{"type": "text", "text": prompt}]
        messages = [{"role": "user", "content": content}]
        if assistant is not None:
            messages.append({"role": "assistant", "content": [{"type": "text", "text": assistant}]})
        text = self.tokenizer.apply_chat_template(messages, chat_template=template, tokenize=False,
                                                  add_generation_prompt=assistant is None)
        # Molmo2Processor starts a text with BOS (EOS where there is none); the release's text-only path calls
        # the tokenizer alone, so text-only items get none (format 1 checkpoints had it always)
        if molmo2 and (kinds or self.score_position == "response_last_token"):
            bos = self.tokenizer.bos_token or self.tokenizer.eos_token
            text = text if not bos or text.startswith(bos) else bos + text
        return text

    def _split_tokens(self, text: str, kinds: list[str], assistant: str) -> tuple[list[list[int]], list[int]]:
        """(token pieces around the media markers up to the assistant text, tokens from it to the end).

        The last piece is tokenized in one go, as the release does, and cut at the assistant text's offset.
        """
        parts = _split_markers(text, kinds, MOLMO2_MARKERS if self.family == "molmo2" else MEDIA_MARKERS)
        last = parts[-1]
        at = last.rfind(assistant)
        if at < 0:
            raise ValueError("the chat template changed the responses' text; the score positions cannot be found")
        try:
            enc = self.tokenizer(last, add_special_tokens=False, return_offsets_mapping=True)
            ids, offsets = list(enc["input_ids"]), enc["offset_mapping"]
            cut = next((j for j, (_, end) in enumerate(offsets) if end > at), len(ids))
            head, tail = ids[:cut], ids[cut:]
        except NotImplementedError:  # a slow tokenizer has no offsets: tokenize both sides apart
            head = self.tokenizer.encode(last[:at], add_special_tokens=False)
            tail = self.tokenizer.encode(last[at:], add_special_tokens=False)
        pieces = [self.tokenizer.encode(p, add_special_tokens=False) for p in parts[:-1]] + [head]
        return pieces, tail

    def text_layout(self, prompt: str, responses: list[str], kinds: list[str]) -> TextLayout:
        """Token ids of an item's text under this model's ``score_position`` rule."""
        if self.score_position == "response_last_token":
            text = self._render(prompt, kinds, None)
            parts = _split_markers(text, kinds, MOLMO2_MARKERS if self.family == "molmo2" else MEDIA_MARKERS)
            pieces = [self.tokenizer.encode(p, add_special_tokens=False) for p in parts]
            singles = [self.encode_text(r) for r in responses]
            joint, starts, ends = [], [], []
            for i, r in enumerate(singles):
                starts.append(len(joint))
                joint += r
                ends.append(len(joint) - 1)
                joint += list(self.sep_ids) if i < len(singles) - 1 else []
            return TextLayout(pieces, joint, starts, ends, singles)
        responses = [r if r else " " for r in responses]  # an empty response still needs a token of its own
        joined = SEPARATOR.join(responses)
        pieces, tail = self._split_tokens(self._render(prompt, kinds, joined), kinds, joined)
        head = pieces[-1]
        seps = [len(head) + j for j, t in enumerate(tail) if t == self.sep_id]
        if len(seps) != len(responses) - 1:
            raise ValueError(f"expected {len(responses) - 1} {RESP_SEP} tokens among the responses, found "
                             f"{len(seps)}: a response contains {RESP_SEP} itself")
        whole, alone = head + tail, []
        for r in responses:
            own, rest = self._split_tokens(self._render(prompt, kinds, r), kinds, r)
            if own[:-1] != pieces[:-1]:
                raise ValueError("the chat template renders the prompt differently for different responses")
            alone.append(own[-1] + rest)
        # the shared prefix ends where the first sequence departs (a token merged across the assistant header
        # and a response's first character belongs to that response)
        cut = min([len(head)] + [_common_prefix(whole, a) for a in alone])
        pieces = pieces[:-1] + [head[:cut]]
        starts = [len(head) - cut] + [p + 1 - cut for p in seps]
        ends = [p - 1 - cut for p in seps] + [len(whole) - 1 - cut]
        singles = [a[cut:] for a in alone]
        joint = whole[cut:]
        return TextLayout(pieces, joint, starts, ends, singles)

    def fit_text(self, prompt: str, responses: list[str], kinds: list[str]) -> tuple[TextLayout, dict[str, float]]:
        """The text layout within ``max_length`` minus MEDIA_RESERVE per medium; cuts are reported in notes."""
        text = self.text_layout(prompt, responses, kinds)
        limit = self.max_length - MEDIA_RESERVE * len(kinds)
        if text.length <= limit:
            return text, {}
        p_ids = self.tokenizer.encode(prompt, add_special_tokens=False)
        r_ids = [self.tokenizer.encode(r, add_special_tokens=False) for r in responses]
        full = text.length
        budget = limit - (full - len(p_ids) - sum(len(r) for r in r_ids))  # minus template and separators
        decode = self.tokenizer.decode
        for _ in range(4):  # re-tokenizing cut text can merge differently: measure and tighten
            keep_p, keep_r = fit_lengths(len(p_ids), [len(r) for r in r_ids], budget)
            cut_prompt = prompt if keep_p >= len(p_ids) else (
                decode(p_ids[: keep_p // 2]) + " … " + decode(p_ids[len(p_ids) - (keep_p - keep_p // 2):]))
            cut = [r if k >= len(ids) else decode(ids[:k]) for r, ids, k in zip(responses, r_ids, keep_r)]
            text = self.text_layout(cut_prompt, cut, kinds)
            if text.length <= limit:
                break
            budget -= text.length - limit
        notes = {"text_truncated": 1.0, "text_tokens_full": float(full), "text_tokens": float(text.length),
                 "prompt_tokens_cut": float(len(p_ids) - keep_p),
                 "response_tokens_cut": float(sum(len(r) - k for r, k in zip(r_ids, keep_r)))}
        return text, notes

    # -- building inputs ------------------------------------------------------------------------------
    def build_item(self, prompt: str, responses: list[str], media: list[MediaPayload] = ()) -> ItemInput:
        """Token ids for one item; text, then media, shrunk to fit ``max_length`` (reported in ``notes``)."""
        if self.family == "molmo2":  # its template puts every image before every video
            media = sorted(media, key=lambda m: m.kind != "image")
        kinds = [m.kind for m in media]
        if media and self.encoder is None:
            raise ValueError(f"media inputs are not supported for backbone type {self.family!r} yet")
        text, notes = self.fit_text(prompt, list(responses), kinds)
        room = self.max_length - text.length - 3 * len(media)
        budget = min(self.max_vision_tokens, max(room, 1)) // max(1, len(media))
        prefix_ids, prefix_types = list(text.pieces[0]), [0] * len(text.pieces[0])
        encoded = []
        for m, after in zip(media, text.pieces[1:]):
            enc = (self.encoder.encode_image(m.value, max_tokens=budget) if m.kind == "image"
                   else self.encoder.encode_video(m.value, max_tokens=budget))
            for k, v in enc.notes.items():
                notes[k] = notes.get(k, 0.0) + v
            prefix_ids += enc.placeholder_ids + after
            prefix_types += enc.placeholder_types + [0] * len(after)
            encoded.append(enc)
        item = ItemInput(prefix_ids, prefix_types, text.singles, _merge_media(encoded), notes,
                         joint=text.joint, ends=text.ends, starts=text.starts)
        if item.length > self.max_length:
            notes["over_max_length"] = float(item.length)
        return item

    # -- forward ---------------------------------------------------------------------------------------
    def position_ids(self, batch: PackedBatch) -> torch.Tensor:
        """(3, B, L) M-RoPE positions as the model computes them, before any restart."""
        base = unwrap(self.backbone)
        b, length = batch.input_ids.shape
        if self.family == "molmo2" or not batch.media:
            pos = torch.arange(length, device=batch.input_ids.device).expand(b, length)
            return pos if self.family == "molmo2" else pos[None].expand(3, b, length)
        pos, _ = base.get_rope_index(batch.input_ids, batch.mm_token_type_ids,
                                     image_grid_thw=batch.media.get("image_grid_thw"),
                                     video_grid_thw=batch.media.get("video_grid_thw"),
                                     attention_mask=batch.attention_mask)
        return pos

    def forward(self, batch: PackedBatch) -> torch.Tensor:
        """Scores [B, N] (divided by sqrt(H)); missing response slots are -inf."""
        kwargs: dict[str, Any] = dict(input_ids=batch.input_ids, use_cache=False)
        if batch.media or self.family == "molmo2":
            kwargs["mm_token_type_ids"] = batch.mm_token_type_ids
        kwargs.update(batch.media)
        if batch.mode == "isolated":
            pos = self.position_ids(batch)
            offsets = restart_offsets(batch.segment_ids)
            kwargs["position_ids"] = pos - (offsets if pos.dim() == 2 else offsets[None])
            # Molmo2: all image tokens form one bidirectional block (the model's own block_sequence_ids),
            # which a 4-D mask replaces, so the block is put into the mask here
            blocks = (torch.where(batch.mm_token_type_ids == 1, 0, -1) if self.family == "molmo2" else None)
            kwargs["attention_mask"] = isolated_mask(batch.segment_ids, blocks)
        else:
            kwargs["attention_mask"] = batch.attention_mask
        hidden = self.backbone(**kwargs).last_hidden_state
        starts = batch.start_positions if batch.start_positions is not None else batch.score_positions
        rep = represent(hidden, starts, batch.score_positions, self.head.spec.repr_mode).float()
        return masked_scores(self.head(rep), batch.valid)

    def pack(self, items: list[ItemInput], mode: str | None = None) -> PackedBatch:
        return pack(items, self.pad_id, mode or self.attention).to(self.device)

    @torch.no_grad()
    def score_items(self, items: list[ItemInput], mode: str | None = None) -> list[list[float]]:
        """Scores per item (N_i floats each), in one forward pass for the whole list."""
        scores = self(self.pack(items, mode)).cpu()
        return [scores[i, : len(it.responses)].tolist() for i, it in enumerate(items)]


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def _split_markers(text: str, kinds: list[str], markers: dict[str, str] = MEDIA_MARKERS) -> list[str]:
    """Cut the rendered chat text at each media marker, in order: len(kinds) + 1 pieces."""
    pieces, rest = [], text
    for kind in kinds:
        marker = markers[kind]
        head, found, rest = rest.partition(marker)
        if not found:
            raise ValueError(f"the chat template did not emit the {kind} marker {marker!r}")
        pieces.append(head)
    return pieces + [rest]


def _merge_media(encoded: list[Any]) -> Any:
    if not encoded:
        return None
    if len(encoded) == 1:
        return encoded[0]
    from .media_inputs import EncodedMedia

    return EncodedMedia("mixed", concat_media([enc.tensors for enc in encoded]), [], [], {})
