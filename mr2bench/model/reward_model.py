"""The multi-response reward model: backbone + value head, all N responses scored in one forward pass."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .backbone import ensure_separator, hidden_size, unwrap
from .media_inputs import QwenMediaEncoder
from .packing import (ATTENTION_MODES, ItemInput, PackedBatch, concat_media, isolated_mask, masked_scores, pack,
                      restart_offsets)
from .tiny import CHAT_TEMPLATE, MOLMO2_CHAT_TEMPLATE
from .value_head import ValueHead

log = logging.getLogger(__name__)

DEFAULT_MAX_LENGTH = 24576
DEFAULT_MAX_VISION_TOKENS = 16384
MEDIA_MARKERS = {"image": "<|vision_start|><|image_pad|><|vision_end|>",
                 "video": "<|vision_start|><|video_pad|><|vision_end|>"}
MOLMO2_MARKERS = {"image": "<|image|>", "video": "<|video|>"}
QWEN_FAMILIES = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl")


@dataclass(frozen=True)
class MediaPayload:
    """A decoded medium: a PIL image, or uint8 frames [T, H, W, 3]."""

    kind: str
    value: Any


class RewardModel(nn.Module):
    def __init__(self, backbone: Any, tokenizer: Any, image_processor: Any = None, head: ValueHead | None = None,
                 attention: str = "causal", max_length: int = DEFAULT_MAX_LENGTH,
                 max_vision_tokens: int = DEFAULT_MAX_VISION_TOKENS) -> None:
        super().__init__()
        if attention not in ATTENTION_MODES:
            raise ValueError(f"attention must be one of {ATTENTION_MODES}, got {attention!r}")
        self.backbone = backbone
        self.tokenizer = tokenizer
        self.sep_ids = ensure_separator(unwrap(backbone), tokenizer)
        self.head = head if head is not None else ValueHead(hidden_size(backbone))
        self.attention = attention
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

    # -- building inputs ------------------------------------------------------------------------------
    def encode_text(self, text: str) -> list[int]:
        ids = self.tokenizer.encode(text, add_special_tokens=False)
        return ids or self.tokenizer.encode(" ", add_special_tokens=False)  # an empty response still needs a token

    def build_item(self, prompt: str, responses: list[str], media: list[MediaPayload] = ()) -> ItemInput:
        """Token ids for one item; media shrunk to fit ``max_length`` (reported in ``notes``)."""
        if self.family == "molmo2":  # its template puts every image before every video
            media = sorted(media, key=lambda m: m.kind != "image")
        kinds = [m.kind for m in media]
        molmo2 = self.family == "molmo2"
        template = self.tokenizer.chat_template or (MOLMO2_CHAT_TEMPLATE if molmo2 else CHAT_TEMPLATE)
        content = [{"type": k} for k in kinds] + [{"type": "text", "text": prompt}]
        text = self.tokenizer.apply_chat_template([{"role": "user", "content": content}], chat_template=template,
                                                  add_generation_prompt=True, tokenize=False)
        if molmo2:  # Molmo2Processor starts every text with the BOS token (EOS where there is none)
            bos = self.tokenizer.bos_token or self.tokenizer.eos_token
            text = text if not bos or text.startswith(bos) else bos + text
        resp_ids = [self.encode_text(r) for r in responses]
        pieces = _split_markers(text, kinds, MOLMO2_MARKERS if molmo2 else MEDIA_MARKERS)
        text_ids = [self.tokenizer.encode(p, add_special_tokens=False) for p in pieces]
        text_len = sum(len(t) for t in text_ids) + sum(len(r) for r in resp_ids) + len(self.sep_ids) * (len(responses) - 1)
        notes: dict[str, float] = {}
        room = self.max_length - text_len - 3 * len(media)
        if media and self.encoder is None:
            raise ValueError(f"media inputs are not supported for backbone type {self.family!r} yet")
        budget = min(self.max_vision_tokens, max(room, 1)) // max(1, len(media))
        prefix_ids, prefix_types = list(text_ids[0]), [0] * len(text_ids[0])
        encoded = []
        for m, after in zip(media, text_ids[1:]):
            enc = (self.encoder.encode_image(m.value, max_tokens=budget) if m.kind == "image"
                   else self.encoder.encode_video(m.value, max_tokens=budget))
            for k, v in enc.notes.items():
                notes[k] = notes.get(k, 0.0) + v
            prefix_ids += enc.placeholder_ids + after
            prefix_types += enc.placeholder_types + [0] * len(after)
            encoded.append(enc)
        item = ItemInput(prefix_ids, prefix_types, resp_ids, _merge_media(encoded), notes)
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
        idx = batch.score_positions[..., None].expand(-1, -1, hidden.shape[-1])
        picked = hidden.gather(1, idx).float()
        return masked_scores(self.head(picked), batch.valid)

    def pack(self, items: list[ItemInput], mode: str | None = None) -> PackedBatch:
        return pack(items, self.sep_ids, self.pad_id, mode or self.attention).to(self.device)

    @torch.no_grad()
    def score_items(self, items: list[ItemInput], mode: str | None = None) -> list[list[float]]:
        """Scores per item (N_i floats each), in one forward pass for the whole list."""
        scores = self(self.pack(items, mode)).cpu()
        return [scores[i, : len(it.responses)].tolist() for i, it in enumerate(items)]


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
