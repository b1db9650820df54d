"""Pack items (prompt + media + N responses) into one right-padded batch.

An item is its ``prefix`` (chat template, media placeholders, prompt: everything before the assistant text)
plus two layouts of what follows:

- ``joint``: all N responses as ONE assistant text, ``"\\n\\n<|resp_sep|>\\n\\n".join(responses)``, tokenized
  together with the template's closing tokens (the release's training layout). ``ends[i]`` is the scored token of
  response i, ``starts[i]`` its first token (both indices into ``joint``).
- ``responses``: each response laid out alone, as its own N = 1 item would be (same rule), read at its last token.

``causal`` packs ``prefix + joint``: later responses attend to earlier ones (the paper). ``isolated`` packs
``prefix + responses[0] + ... + responses[N-1]`` with a 4-D mask (a response sees the prefix and itself) and
positions restarted at every response, so one pass gives exactly the scores of N single passes. Segment ids:
-1 padding, 0 prefix, i+1 response i (in ``causal`` a separator belongs to the response before it).
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
    """One item's token ids, before packing.

    Built without ``joint`` (e.g. from raw ids in a benchmark), the joint layout is the responses back to back.
    """

    prefix_ids: list[int]
    prefix_types: list[int]
    responses: list[list[int]]       # per response: its single-pass tokens after the prefix, scored at the last
    media: EncodedMedia | None = None
    notes: dict[str, float] = field(default_factory=dict)
    joint: list[int] | None = None
    ends: list[int] | None = None
    starts: list[int] | None = None

    def __post_init__(self) -> None:
        if any(len(r) == 0 for r in self.responses):
            raise ValueError("every response needs at least one token (encode empty text as a space)")
        if self.joint is None:
            self.joint = [t for r in self.responses for t in r]
            ends, k = [], 0
            for r in self.responses:
                k += len(r)
                ends.append(k - 1)
            self.ends = ends
            self.starts = [e - len(r) + 1 for e, r in zip(ends, self.responses)]
        if self.ends is None or self.starts is None or not (len(self.ends) == len(self.starts) == len(self.responses)):
            raise ValueError("joint layout needs one start and one end per response")

    @property
    def length(self) -> int:
        return len(self.prefix_ids) + len(self.joint or [])


@dataclass
class PackedBatch:
    input_ids: torch.Tensor          # [B, L]
    attention_mask: torch.Tensor     # [B, L] 1 = real token
    mm_token_type_ids: torch.Tensor  # [B, L]
    segment_ids: torch.Tensor        # [B, L] -1 pad, 0 prefix, i+1 response i
    score_positions: torch.Tensor    # [B, N] index of the scored token of response i (0 where invalid)
    valid: torch.Tensor              # [B, N] False for missing response slots
    media: dict[str, torch.Tensor]   # concatenated vision tensors
    mode: str = "causal"
    start_positions: torch.Tensor | None = None  # [B, N] first token of response i (for resp_repr_mode)

    def to(self, device: torch.device | str) -> "PackedBatch":
        mv = {k: v.to(device) for k, v in self.media.items()}
        starts = self.start_positions.to(device) if self.start_positions is not None else None
        return PackedBatch(self.input_ids.to(device), self.attention_mask.to(device),
                           self.mm_token_type_ids.to(device), self.segment_ids.to(device),
                           self.score_positions.to(device), self.valid.to(device), mv, self.mode, starts)


def layout(item: ItemInput, mode: str = "causal") -> tuple[list[int], list[int], list[int], list[int], list[int]]:
    """(ids, mm types, segment ids, score positions, start positions) of one item, unpadded."""
    base = len(item.prefix_ids)
    ids, types = list(item.prefix_ids), list(item.prefix_types)
    segs = [0] * base
    if mode == "isolated":
        starts, ends = [], []
        for i, resp in enumerate(item.responses):
            starts.append(len(ids))
            ids += resp
            ends.append(len(ids) - 1)
            segs += [i + 1] * len(resp)
        return ids, types + [0] * (len(ids) - base), segs, ends, starts
    joint = list(item.joint or [])
    bounds = list(item.starts or []) + [len(joint)]
    segs += [0] * bounds[0]
    for i in range(len(item.responses)):
        segs += [i + 1] * (bounds[i + 1] - bounds[i])
    return (ids + joint, types + [0] * len(joint), segs, [base + e for e in item.ends or []],
            [base + s for s in item.starts or []])


def pack(items: list[ItemInput], pad_id: int, mode: str = "causal") -> PackedBatch:
    """Right-padded batch; per-item N may differ (missing slots are marked invalid)."""
    if mode not in ATTENTION_MODES:
        raise ValueError(f"attention mode must be one of {ATTENTION_MODES}, got {mode!r}")
    laid = [layout(it, mode) for it in items]
    b, length = len(items), max(len(x[0]) for x in laid)
    n = max(len(x[3]) for x in laid)
    input_ids = torch.full((b, length), pad_id, dtype=torch.long)
    attn = torch.zeros((b, length), dtype=torch.long)
    types = torch.zeros((b, length), dtype=torch.long)
    segs = torch.full((b, length), -1, dtype=torch.long)
    pos = torch.zeros((b, n), dtype=torch.long)
    first = torch.zeros((b, n), dtype=torch.long)
    valid = torch.zeros((b, n), dtype=torch.bool)
    for row, (ids, tt, sg, sp, st) in enumerate(laid):
        k = len(ids)
        input_ids[row, :k] = torch.tensor(ids)
        attn[row, :k] = 1
        types[row, :k] = torch.tensor(tt)
        segs[row, :k] = torch.tensor(sg)
        pos[row, : len(sp)] = torch.tensor(sp)
        first[row, : len(st)] = torch.tensor(st)
        valid[row, : len(sp)] = True
    media = concat_media([it.media.tensors for it in items if it.media is not None])
    return PackedBatch(input_ids, attn, types, segs, pos, valid, media, mode, first)


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
