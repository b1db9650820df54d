"""N-way reward-model training: cross-entropy toward the best-ranked response, all N in one pass.

Rows: ``{prompt, responses[], rankings[], image?, video?}`` (media paths relative to the JSONL's folder).
Every load reshuffles a row's responses and breaks a tie for first at random, from (seed, epoch, row), so
a run is reproducible and a resumed run sees the same batches. Batches hold one modality each.

``RECIPES["paper"]`` is the release's ``scripts/train.sh``: LoRA r 128 / alpha 16 / dropout 0.05 on the
language model's attention and MLP projections, gradient checkpointing, a global batch of 64 reached by
gradient accumulation (1 per device), AdamW lr 1e-4 with linear decay and no warm-up, clip 1.0, weight
decay 0, 3 epochs, 24,576 tokens per item of which at most 16,384 vision tokens, bf16 on GPU. The release
targets Molmo2's fused ``att_proj attn_out ff_proj ff_out``; transformers' native Molmo2 splits att_proj into
q/k/v and ff_proj into up/gate, so LoRA goes on those (and o/down): the same weights, but one adapter per
split matrix instead of one shared A over the fused one (more parameters, a superset of the fused
adapter's updates).

A resumable state (``checkpoints/step-*``) holds the trainable weights, optimizer, scheduler, the torch
(CPU and CUDA), numpy and Python RNG states and the position in the data order; resuming from it gives
the run that was never interrupted, bit for bit on CPU.
"""
from __future__ import annotations

import json
import logging
import math
import os
import random
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from ..jsonl import append_jsonl, dumps, read_jsonl, write_json
from ..schema import BenchmarkItem, DataError, Media
from ..seeding import derive_seed, rng_for

log = logging.getLogger(__name__)

MODALITIES = ("text", "image", "video")
STATE_DIR = "checkpoints"
RNG_FILE = "rng_state.pt"
RNG_HOST_FILE = "rng_state.json"

# Training settings by recipe; an explicit flag overrides any of them.
RECIPES: dict[str, dict[str, Any]] = {
    "paper": dict(lora_r=128, lora_alpha=16, lora_dropout=0.05, gradient_checkpointing=True, batch_size=1,
                  global_batch=64, lr=1e-4, warmup_ratio=0.0, max_grad_norm=1.0, weight_decay=0.0, epochs=3,
                  max_length=24576, max_vision_tokens=16384),
    "none": dict(lora_r=128, lora_alpha=16, lora_dropout=0.05, gradient_checkpointing=False, batch_size=1,
                 grad_accum=1, lr=1e-4, warmup_ratio=0.0, max_grad_norm=1.0, weight_decay=0.0, epochs=3,
                 max_length=24576, max_vision_tokens=16384),
}


@dataclass(frozen=True)
class TrainRow:
    index: int                 # 1-based line number in the source file
    prompt: str
    responses: tuple[str, ...]
    rankings: tuple[int, ...]
    media: Media | None
    frame_interval: float | None = None   # seconds between a frame folder's frames (the row's fps field)

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
    max_vision_tokens: int = 16384
    global_batch: int | None = None      # items per optimizer step over all processes; sets grad_accum
    weight_decay: float = 0.0
    warmup_ratio: float = 0.0
    recipe: str | None = None


def resolve_recipe(name: str, explicit: dict[str, Any]) -> dict[str, Any]:
    """The recipe's settings overridden by the explicitly given ones (None = not given).

    An explicit --grad-accum replaces the recipe's global batch (and an explicit global batch its accum).
    """
    if name not in RECIPES:
        raise DataError(f"unknown recipe {name!r}; choose from {sorted(RECIPES)}", field="--recipe")
    given = {k: v for k, v in explicit.items() if v is not None}
    values = dict(RECIPES[name])
    if "grad_accum" in given and "global_batch" not in given:
        values.pop("global_batch", None)
    if "global_batch" in given and "grad_accum" not in given:
        values.pop("grad_accum", None)
    values.update(given)
    known = {f.name for f in fields(TrainConfig)}
    return {k: v for k, v in values.items() if k in known}


def accumulation_steps(cfg: TrainConfig, processes: int) -> int:
    """Micro-batches per optimizer step: from the global batch when one is set."""
    if cfg.global_batch is None:
        return cfg.grad_accum
    per_step = cfg.batch_size * processes
    if cfg.global_batch < per_step or cfg.global_batch % per_step:
        raise DataError(f"the global batch {cfg.global_batch} is not a multiple of --batch-size {cfg.batch_size} x "
                        f"{processes} processes; change --global-batch or --batch-size", field="--global-batch")
    return cfg.global_batch // per_step
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
    interval = raw.get("sampling_interval", raw.get("fps"))  # the release reads `fps` as the frame interval
    if interval is not None and (isinstance(interval, bool) or not isinstance(interval, (int, float))
                                 or not math.isfinite(interval) or interval <= 0):
        raise DataError(f"must be a positive number of seconds between frames, got {interval!r}", field="fps")
    return TrainRow(index, item.prompt, item.responses, item.rankings, media,
                    None if interval is None else float(interval))


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
def _payload(row: TrainRow, root: Path, num_frames: int, family: str = "") -> list[Any]:
    from ..media import load_image, load_video_frames
    from .reward_model import MediaPayload

    if row.media is None:
        return []
    if row.media.kind == "image":
        return [MediaPayload("image", load_image(row.media, root))]
    if family == "molmo2":  # the release's own video sampling and timestamps
        from .molmo2_media import load_release_video

        return [MediaPayload("video", load_release_video(row.media, root, interval=row.frame_interval))]
    return [MediaPayload("video", load_video_frames(row.media, root, num_frames=num_frames))]


def accuracy(scores: Any, examples: list[Example]) -> float:
    """Share of items whose top score falls on a best-ranked response."""
    top = scores.argmax(dim=1).tolist()
    hits = [ex.rankings[t] == min(ex.rankings) for t, ex in zip(top, examples)]
    return float(sum(hits)) / max(1, len(hits))


def _trainable_state(rm: Any) -> dict[str, Any]:
    return {n: p.detach().cpu().contiguous() for n, p in rm.named_parameters() if p.requires_grad}


def _latest_state(out: Path) -> Path | None:
    states = sorted((p for p in (out / STATE_DIR).glob("step-*") if (p / "trainer_state.json").is_file()),
                    key=lambda p: int(p.name.split("-")[1]))
    return states[-1] if states else None


def save_rng(folder: Path) -> None:
    """Torch (CPU, CUDA) RNG states as tensors; numpy's and Python's as JSON (no pickle to load)."""
    import torch

    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state.update({f"cuda{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    torch.save(state, folder / RNG_FILE)
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, py_gauss = random.getstate()
    write_json(folder / RNG_HOST_FILE, {"numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(gauss)],
                                        "python": [version, list(internal), py_gauss]})


def load_rng(folder: Path) -> None:
    import torch

    state = torch.load(folder / RNG_FILE, weights_only=True)
    torch.set_rng_state(state["torch"])
    cuda = [state[k] for k in sorted((k for k in state if k.startswith("cuda")), key=lambda k: int(k[4:]))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    host = json.loads((folder / RNG_HOST_FILE).read_text(encoding="utf-8"))
    kind, keys, pos, has_gauss, gauss = host["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, gauss))
    version, internal, py_gauss = host["python"]
    random.setstate((version, tuple(internal), py_gauss))


def stored_base(base: str, checkpoint: Path) -> tuple[str, str | None]:
    """(base as stored, path relative to the checkpoint): a local folder becomes absolute, a Hub id stays."""
    path = Path(base).expanduser()
    if not path.is_dir():
        return base, None
    absolute = path.resolve()
    return str(absolute), os.path.relpath(absolute, checkpoint.resolve())


def _check_same_run(saved: dict[str, Any], cfg: TrainConfig, accum: int, processes: int, where: Path) -> None:
    """A resumed run must see the same data order: same seed, batch size, accumulation and process count."""
    now = {"seed": cfg.seed, "batch_size": cfg.batch_size, "grad_accum": accum, "processes": processes,
           "limit": cfg.limit}
    was = {k: saved.get(k) for k in now}
    if saved.get("processes") is None:  # a state written before these were recorded
        return
    diff = {k: (was[k], now[k]) for k in now if was[k] != now[k]}
    if diff:
        raise DataError(f"--resume with other settings than the saved run (saved, now): {diff}; the data order "
                        "would differ", file=str(where))


def _truncate_log(path: Path, step: int) -> None:
    """Drop log lines written after the state we resume from (a crash between two saves)."""
    if path.is_file():
        kept = [r for r in read_jsonl(path) if int(r.get("step", 0)) <= step]
        path.write_text("".join(dumps(r) + "\n" for r in kept), encoding="utf-8")


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
    accum = accumulation_steps(cfg, accel.num_processes)
    try:
        rm = new_reward_model(cfg.base, device=str(accel.device), dtype="fp32" if cpu else "bf16",
                              lora_r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                              attention=cfg.attention, max_length=cfg.max_length,
                              max_vision_tokens=cfg.max_vision_tokens,
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
    optim = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    per_epoch = max(1, len(make_batches(rows, cfg.batch_size, cfg.seed, 0)) // accel.num_processes)
    total = cfg.epochs * math.ceil(per_epoch / accum)  # --max-steps stops early, same schedule
    sched = get_linear_schedule_with_warmup(optim, int(cfg.warmup_ratio * total), total)
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
        _check_same_run(meta.get("run", {}), cfg, accum, accel.num_processes, state_dir)
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
        save_rng(d)
        run = {"seed": cfg.seed, "batch_size": cfg.batch_size, "grad_accum": accum,
               "processes": accel.num_processes, "limit": cfg.limit}
        write_json(d / "trainer_state.json", {"step": step, "epoch": epoch, "next_batch": next_batch,
                                             "run": run, "config": asdict(cfg)})  # written last: marks it whole

    log_path = out / "train_log.jsonl"
    if state_dir is None:
        log_path.write_text("", encoding="utf-8")
    else:
        _truncate_log(log_path, step)
        load_rng(state_dir)  # last: nothing between here and the first batch draws random numbers
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
            items = [rm.build_item(ex.row.prompt, list(ex.responses),
                                   _payload(ex.row, root, cfg.num_frames, rm.family)) for ex in examples]
            batch = rm.pack(items)
            targets = torch.tensor([ex.target for ex in examples], device=accel.device)
            with accel.autocast():
                scores = model(batch)
            loss = torch.nn.functional.cross_entropy(scores.float(), targets)
            accel.backward(loss / accum)
            window.append((loss.item(), accuracy(scores.detach(), examples)))
            micro += 1
            if micro % accum and bi != len(batches) - 1:
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
        base, relative = stored_base(cfg.base, out / "final")
        save_reward_model(accel.unwrap_model(model), out / "final", base_model=base, merge=cfg.merge,
                          extra={"trained_steps": step, "base_model_relative": relative, "recipe": cfg.recipe,
                                 "global_batch": cfg.batch_size * accel.num_processes * accum})
    summary = {"rows_in": len(rows) + quarantined, "rows_kept": len(rows), "rows_quarantined": quarantined,
               "steps": step, **last, "grad_accum": accum, "final": str(out / "final")}
    (out / "summary.json").write_text(dumps(summary) + "\n", encoding="utf-8")
    return summary
