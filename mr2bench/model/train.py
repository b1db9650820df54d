"""N-way reward-model training: cross-entropy toward the best-ranked response, all N in one pass.

Rows: ``{prompt, responses[], rankings[], image?, video?}`` (media paths relative to the JSONL's folder).
Every load reshuffles a row's responses and breaks a tie for first at random, from (seed, epoch, row), so
a run is reproducible and a resumed run sees the same batches. Batches hold one modality each.
"""
from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..jsonl import append_jsonl, dumps, read_jsonl, write_json
from ..schema import BenchmarkItem, DataError, Media
from ..seeding import derive_seed, rng_for

log = logging.getLogger(__name__)

MODALITIES = ("text", "image", "video")
STATE_DIR = "checkpoints"


@dataclass(frozen=True)
class TrainRow:
    index: int                 # 1-based line number in the source file
    prompt: str
    responses: tuple[str, ...]
    rankings: tuple[int, ...]
    media: Media | None

    @property
    def modality(self) -> str:
        return self.media.kind if self.media is not None else "text"


@dataclass(frozen=True)
class Example:
    """One row as loaded for one epoch: responses permuted, target = index of the chosen best."""

    row: TrainRow
    responses: tuple[str, ...]
    rankings: tuple[int, ...]
    target: int


@dataclass(frozen=True)
class TrainConfig:
    data: str
    base: str
    out: str
    lora_r: int = 128
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lr: float = 1e-4
    epochs: int = 3
    batch_size: int = 1
    grad_accum: int = 1
    max_length: int = 24576
    num_frames: int = 16
    gradient_checkpointing: bool = False
    resume: bool = False
    attention: str = "causal"
    seed: int = 0
    limit: int | None = None
    device: str = "auto"
    save_steps: int = 50
    log_steps: int = 10
    max_steps: int | None = None
    merge: bool = False
    trust_remote_code: bool = False
    max_grad_norm: float = 1.0


# -- data -----------------------------------------------------------------------------------------------
def parse_row(raw: dict[str, Any], index: int, root: Path) -> TrainRow:
    """Validate one JSONL row (raises DataError naming the field)."""
    if raw.get("image") and raw.get("video"):
        raise DataError("give image or video, not both", field="image")
    media = None
    for kind in ("image", "video"):
        value = raw.get(kind)
        if value is None or value == "":
            continue
        if not isinstance(value, str):
            raise DataError("must be a path string", field=kind)
        from ..media import resolve_inside

        path = resolve_inside(root, value)
        if not path.exists():
            raise DataError(f"file not found: {path}", field=kind)
        media = Media(kind=kind, path=value)
    for key in ("prompt", "responses", "rankings"):
        if key not in raw:
            raise DataError("is missing", field=key)
    item = BenchmarkItem(id=str(index), prompt=raw["prompt"], responses=raw["responses"], rankings=raw["rankings"])
    return TrainRow(index, item.prompt, item.responses, item.rankings, media)


def load_rows(path: str | Path, quarantine: str | Path, limit: int | None = None) -> tuple[list[TrainRow], int]:
    """(kept rows, quarantined count); bad rows go to ``quarantine`` with their reason."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"training data not found: {path}", field="data")
    Path(quarantine).write_text("", encoding="utf-8")
    kept, bad = [], 0
    for index, raw in enumerate(read_jsonl(path), start=1):
        if limit is not None and index > limit:
            break
        try:
            kept.append(parse_row(raw, index, path.parent))
        except DataError as exc:
            bad += 1
            append_jsonl(quarantine, {"row": index, "reason": str(exc.located(file=str(path), row=index)),
                                      "data": raw})
    return kept, bad


def load_example(row: TrainRow, seed: int, epoch: int) -> Example:
    """Shuffle responses and pick the target among the tied best, from (seed, epoch, row)."""
    rng = rng_for(seed, "load", epoch, row.index)
    perm = rng.permutation(len(row.responses))
    responses = tuple(row.responses[p] for p in perm)
    rankings = tuple(row.rankings[p] for p in perm)
    best = [i for i, r in enumerate(rankings) if r == min(rankings)]
    return Example(row, responses, rankings, int(best[rng.integers(len(best))]))


def make_batches(rows: list[TrainRow], batch_size: int, seed: int, epoch: int) -> list[list[TrainRow]]:
    """Batches of one modality each, in a seeded order that changes every epoch."""
    rng = rng_for(seed, "batches", epoch)
    batches: list[list[TrainRow]] = []
    for modality in MODALITIES:
        group = [r for r in rows if r.modality == modality]
        order = rng.permutation(len(group))
        batches += [[group[i] for i in order[s:s + batch_size]] for s in range(0, len(group), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


# -- loop -----------------------------------------------------------------------------------------------
def _payload(row: TrainRow, root: Path, num_frames: int) -> list[Any]:
    from ..media import load_image, load_video_frames
    from .reward_model import MediaPayload

    if row.media is None:
        return []
    if row.media.kind == "image":
        return [MediaPayload("image", load_image(row.media, root))]
    return [MediaPayload("video", load_video_frames(row.media, root, num_frames=num_frames))]


def accuracy(scores: Any, examples: list[Example]) -> float:
    """Share of items whose top score falls on a best-ranked response."""
    top = scores.argmax(dim=1).tolist()
    hits = [ex.rankings[t] == min(ex.rankings) for t, ex in zip(top, examples)]
    return float(sum(hits)) / max(1, len(hits))


def _trainable_state(rm: Any) -> dict[str, Any]:
    return {n: p.detach().cpu().contiguous() for n, p in rm.named_parameters() if p.requires_grad}


def _latest_state(out: Path) -> Path | None:
    states = sorted((out / STATE_DIR).glob("step-*"), key=lambda p: int(p.name.split("-")[1]))
    return states[-1] if states else None


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Run training; returns a summary (steps, final loss and accuracy, rows kept/quarantined)."""
    import torch
    from accelerate import Accelerator
    from safetensors.torch import load_file, save_file
    from transformers import get_linear_schedule_with_warmup

    from .backbone import unwrap
    from .checkpoint import new_reward_model, save_reward_model

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    root = Path(cfg.data).parent
    rows, quarantined = load_rows(cfg.data, out / "quarantine.jsonl", cfg.limit)
    log.info("training rows: %d kept, %d quarantined (see %s)", len(rows), quarantined, out / "quarantine.jsonl")
    if not rows:
        raise DataError("no usable training rows", file=cfg.data)

    cpu = cfg.device == "cpu" or (cfg.device == "auto" and not torch.cuda.is_available())
    accel = Accelerator(cpu=cpu, mixed_precision="no" if cpu else "bf16")
    torch.manual_seed(derive_seed(cfg.seed, "torch"))
    try:
        rm = new_reward_model(cfg.base, device=str(accel.device), dtype="fp32" if cpu else "bf16",
                              lora_r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                              attention=cfg.attention, max_length=cfg.max_length,
                              trust_remote_code=cfg.trust_remote_code, seed=cfg.seed)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot load the base model: {exc}", field="base") from None
    for p in rm.head.parameters():
        p.requires_grad_(True)
    if cfg.gradient_checkpointing:
        base = unwrap(rm.backbone)
        if hasattr(base, "activation_checkpointing_enable"):  # the name since transformers 5.x
            base.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    params = [p for p in rm.parameters() if p.requires_grad]
    optim = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    per_epoch = max(1, len(make_batches(rows, cfg.batch_size, cfg.seed, 0)) // accel.num_processes)
    total = cfg.epochs * math.ceil(per_epoch / cfg.grad_accum)  # --max-steps stops early, same schedule
    sched = get_linear_schedule_with_warmup(optim, 0, total)
    model, optim, sched = accel.prepare(rm, optim, sched)

    step, start_epoch, start_batch = 0, 0, 0
    state_dir = _latest_state(out) if cfg.resume else None
    if cfg.resume and state_dir is None:
        log.warning("--resume: no saved state under %s; starting from step 0", out / STATE_DIR)
    if state_dir is not None:
        trained = load_file(str(state_dir / "trainable.safetensors"))
        missing = rm.load_state_dict(trained, strict=False)
        if missing.unexpected_keys:
            raise DataError(f"saved state does not match the model: {missing.unexpected_keys[:3]}", file=str(state_dir))
        optim.load_state_dict(torch.load(state_dir / "optimizer.pt", weights_only=True))
        sched.load_state_dict(torch.load(state_dir / "scheduler.pt", weights_only=True))
        meta = json.loads((state_dir / "trainer_state.json").read_text())
        step, start_epoch, start_batch = meta["step"], meta["epoch"], meta["next_batch"]
        log.info("resumed from %s (step %d, epoch %d, batch %d)", state_dir, step, start_epoch, start_batch)

    def save_state(epoch: int, next_batch: int) -> None:
        if not accel.is_main_process:
            return
        d = out / STATE_DIR / f"step-{step:06d}"
        d.mkdir(parents=True, exist_ok=True)
        save_file(_trainable_state(rm), str(d / "trainable.safetensors"))
        torch.save(optim.state_dict(), d / "optimizer.pt")
        torch.save(sched.state_dict(), d / "scheduler.pt")
        write_json(d / "trainer_state.json", {"step": step, "epoch": epoch, "next_batch": next_batch,
                                             "config": asdict(cfg)})

    log_path = out / "train_log.jsonl"
    if not cfg.resume:
        log_path.write_text("", encoding="utf-8")
    model.train()
    t0, window, micro, last = time.perf_counter(), [], 0, {"loss": float("nan"), "accuracy": float("nan")}
    done, cursor = False, (start_epoch, start_batch)
    for epoch in range(start_epoch, cfg.epochs):
        batches = make_batches(rows, cfg.batch_size, cfg.seed, epoch)
        if accel.num_processes > 1:  # equal counts per process, or DDP waits forever on the last batch
            batches = batches[: max(1, len(batches) // accel.num_processes) * accel.num_processes]
        batches = batches[accel.process_index::accel.num_processes]
        first = start_batch if epoch == start_epoch else 0
        for bi in range(first, len(batches)):
            examples = [load_example(r, cfg.seed, epoch) for r in batches[bi]]
            items = [rm.build_item(ex.row.prompt, list(ex.responses), _payload(ex.row, root, cfg.num_frames))
                     for ex in examples]
            batch = rm.pack(items)
            targets = torch.tensor([ex.target for ex in examples], device=accel.device)
            with accel.autocast():
                scores = model(batch)
            loss = torch.nn.functional.cross_entropy(scores.float(), targets)
            accel.backward(loss / cfg.grad_accum)
            window.append((loss.item(), accuracy(scores.detach(), examples)))
            micro += 1
            if micro % cfg.grad_accum and bi != len(batches) - 1:
                continue
            accel.clip_grad_norm_(params, cfg.max_grad_norm)
            optim.step()
            sched.step()
            optim.zero_grad(set_to_none=True)
            step += 1
            micro = 0
            cursor = (epoch, bi + 1)
            last = {"loss": float(np.mean([w[0] for w in window])), "accuracy": float(np.mean([w[1] for w in window]))}
            window = []
            if step % cfg.log_steps == 0 or step == total or step == cfg.max_steps:
                rate = step / max(1e-9, time.perf_counter() - t0)
                log.info("step %d/%d epoch %d loss %.4f acc %.3f lr %.2e (%.2f steps/s)", step, total, epoch,
                         last["loss"], last["accuracy"], sched.get_last_lr()[0], rate)
            if accel.is_main_process:
                append_jsonl(log_path, {"step": step, "epoch": epoch, **last, "lr": sched.get_last_lr()[0]})
            if step % cfg.save_steps == 0:
                save_state(epoch, bi + 1)
            if cfg.max_steps is not None and step >= cfg.max_steps:
                done = True
                break
        if done:
            break
    save_state(*cursor)
    accel.wait_for_everyone()
    model.eval()
    if accel.is_main_process:
        save_reward_model(accel.unwrap_model(model), out / "final", base_model=cfg.base, merge=cfg.merge,
                          extra={"trained_steps": step})
    summary = {"rows_in": len(rows) + quarantined, "rows_kept": len(rows), "rows_quarantined": quarantined,
               "steps": step, **last, "final": str(out / "final")}
    (out / "summary.json").write_text(dumps(summary) + "\n", encoding="utf-8")
    return summary
