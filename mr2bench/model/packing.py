"""Pack items (prompt + media + N responses) into one right-padded batch.

Layout of one sequence: ``prefix`` (chat template, media placeholders, prompt, assistant header), then
``r1 SEP r2 SEP ... rN`` with ``SEP`` = the token ids of ``"\\n\\n<|resp_sep|>\\n\\n"``. The score of response
i is read at its last token. Segment ids: -1 padding, 0 prefix, i+1 response i (its trailing separator
included, so that a response never sees its own separator).

``causal`` lets later responses attend to earlier ones (the paper). ``isolated`` adds a 4-D mask (a
response sees the prefix and itself) and restarts positions at every response, so one pass gives the
scores of N separate passes.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .media_inputs import EncodedMedia

SEPARATOR = "\n\n<|resp_sep|>\n\n"
ATTENTION_MODES = ("causal", "isolated")


@dataclass
class ItemInput:
    """One item's token ids, before packing."""

    prefix_ids: list[int]
    prefix_types: list[int]
    responses: list[list[int]]
    media: EncodedMedia | None = None
    notes: dict[str, float] = field(default_factory=dict)

    @property
    def length(self) -> int:
        return len(self.prefix_ids) + sum(len(r) for r in self.responses)


@dataclass
class PackedBatch:
    input_ids: torch.Tensor          # [B, L]
    attention_mask: torch.Tensor     # [B, L] 1 = real token
    mm_token_type_ids: torch.Tensor  # [B, L]
    segment_ids: torch.Tensor        # [B, L] -1 pad, 0 prefix, i+1 response i
    score_positions: torch.Tensor    # [B, N] index of the last token of response i (0 where invalid)
    valid: torch.Tensor              # [B, N] False for missing response slots
    media: dict[str, torch.Tensor]   # concatenated vision tensors
    mode: str = "causal"

    def to(self, device: torch.device | str) -> "PackedBatch":
        mv = {k: v.to(device) for k, v in self.media.items()}
        return PackedBatch(self.input_ids.to(device), self.attention_mask.to(device),
                           self.mm_token_type_ids.to(device), self.segment_ids.to(device),
                           self.score_positions.to(device), self.valid.to(device), mv, self.mode)


def layout(item: ItemInput, sep_ids: list[int]) -> tuple[list[int], list[int], list[int], list[int]]:
    """(ids, mm types, segment ids, score positions) of one item, unpadded."""
    if any(len(r) == 0 for r in item.responses):
        raise ValueError("every response needs at least one token (encode empty text as a space)")
    ids, types = list(item.prefix_ids), list(item.prefix_types)
    segs = [0] * len(ids)
    positions: list[int] = []
    last = len(item.responses) - 1
    for i, resp in enumerate(item.responses):
        chunk = list(resp) + (list(sep_ids) if i < last else [])
        ids += chunk
        types += [0] * len(chunk)
        positions.append(len(segs) + len(resp) - 1)
        segs += [i + 1] * len(chunk)
    return ids, types, segs, positions


def pack(items: list[ItemInput], sep_ids: list[int], pad_id: int, mode: str = "causal") -> PackedBatch:
    """Right-padded batch; per-item N may differ (missing slots are marked invalid)."""
    if mode not in ATTENTION_MODES:
        raise ValueError(f"attention mode must be one of {ATTENTION_MODES}, got {mode!r}")
    laid = [layout(it, sep_ids) for it in items]
    b, length = len(items), max(len(x[0]) for x in laid)
    n = max(len(x[3]) for x in laid)
    input_ids = torch.full((b, length), pad_id, dtype=torch.long)
    attn = torch.zeros((b, length), dtype=torch.long)
    types = torch.zeros((b, length), dtype=torch.long)
    segs = torch.full((b, length), -1, dtype=torch.long)
    pos = torch.zeros((b, n), dtype=torch.long)
    valid = torch.zeros((b, n), dtype=torch.bool)
    for row, (ids, tt, sg, sp) in enumerate(laid):
        k = len(ids)
        input_ids[row, :k] = torch.tensor(ids)
        attn[row, :k] = 1
        types[row, :k] = torch.tensor(tt)
        segs[row, :k] = torch.tensor(sg)
        pos[row, : len(sp)] = torch.tensor(sp)
        valid[row, : len(sp)] = True
    media = concat_media([it.media.tensors for it in items if it.media is not None])
    return PackedBatch(input_ids, attn, types, segs, pos, valid, media, mode)


def concat_media(parts: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Concatenate vision tensors in sequence order.

    Molmo2's ``image_token_pooling`` indexes the flattened patches of the whole call (crops x patches), so
    each part's indices are shifted by the patches before it; -1 (padding) stays.
    """
    out: dict[str, torch.Tensor] = {}
    offset = 0
    pooled: list[torch.Tensor] = []
    for part in parts:
        if "image_token_pooling" in part:
            idx = part["image_token_pooling"]
            pooled.append(torch.where(idx >= 0, idx + offset, idx))
            pv = part["pixel_values"]
            offset += pv.shape[0] * pv.shape[1]
    for key in ("pixel_values", "image_grid_thw", "pixel_values_videos", "video_grid_thw", "image_grids"):
        chunks = [p[key] for p in parts if key in p]
        if chunks:
            out[key] = torch.cat(chunks)
    if pooled:  # image (2x2) and video (3x3) pooling windows differ in width: pad with -1 (= no patch)
        width = max(p.shape[1] for p in pooled)
        out["image_token_pooling"] = torch.cat([F.pad(p, (0, width - p.shape[1]), value=-1) for p in pooled])
    return out


def isolated_mask(segment_ids: torch.Tensor, block_ids: torch.Tensor | None = None) -> torch.Tensor:
    """[B, L] segments -> [B, 1, L, L] bool, True = may attend: causal AND (key in prefix OR same segment).

    ``block_ids`` [B, L] (>= 0 = member of a bidirectional block, -1 = none): tokens of one block also see
    each other in both directions, as Molmo2 does for all its image tokens. Blocks lie inside the prefix.
    Padding queries attend to themselves only (an all-False row would make SDPA return NaN).
    """
    length = segment_ids.shape[1]
    causal = torch.ones(length, length, dtype=torch.bool, device=segment_ids.device).tril()
    if block_ids is not None:
        bq, bk = block_ids[:, :, None], block_ids[:, None, :]
        causal = causal | ((bq == bk) & (bq >= 0))
    q, k = segment_ids[:, :, None], segment_ids[:, None, :]
    allowed = causal & (q != -1) & (k != -1) & ((k == 0) | (k == q))
    eye = torch.eye(length, dtype=torch.bool, device=segment_ids.device)
    allowed = allowed | (eye & (q == -1))
    return allowed[:, None]


def restart_offsets(segment_ids: torch.Tensor) -> torch.Tensor:
    """[B, L] amount to subtract from each token's position so every response starts where response 1 does."""
    length = segment_ids.shape[1]
    idx = torch.arange(length, device=segment_ids.device).expand_as(segment_ids)
    big = torch.full_like(idx, length)
    first = torch.where(segment_ids == 1, idx, big).min(dim=1).values           # start of response 1
    out = torch.zeros_like(segment_ids)
    for s in range(2, int(segment_ids.max().item()) + 1):
        start = torch.where(segment_ids == s, idx, big).min(dim=1).values
        shift = (start - first).clamp(min=0)
        out = torch.where(segment_ids == s, shift[:, None].expand_as(out), out)
    return out


def masked_scores(raw: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Invalid response slots -> -inf."""
    return raw.masked_fill(~valid, float("-inf"))
