"""`mr2bench train`: train the multi-response reward model (N-way cross-entropy, all N in one pass)."""
from __future__ import annotations

import argparse

from mr2bench.cli import add_shared

HELP = """train the multi-response reward model on {prompt, responses[], rankings[], image?, video?} rows

Loss: softmax cross-entropy over the N scores toward the best-ranked response (a tie for first is broken at
random on every load; responses are reshuffled on every load). Pairwise rows are N = 2 (Bradley-Terry).
Media paths are relative to the JSONL's folder. Bad rows go to OUT/quarantine.jsonl with reasons.
Writes OUT/final (loadable as mr2:OUT/final), OUT/checkpoints/step-* (for --resume), OUT/train_log.jsonl.

--recipe paper (the default) is the release's scripts/train.sh: LoRA r 128 / alpha 16 / dropout 0.05 on the
language model's attention and MLP projections, gradient checkpointing, global batch 64 by accumulation,
lr 1e-4 linear, no warm-up, clip 1.0, weight decay 0, 3 epochs, 24,576 tokens (16,384 vision), bf16 on GPU.
Any flag given explicitly overrides the recipe; --recipe none is batch 1, no accumulation or checkpointing.
A local --base is stored as an absolute path (and relative to OUT/final), so the checkpoint loads elsewhere."""
EPILOG = """examples:
  mr2bench train --data data/train.jsonl --base Qwen/Qwen2.5-VL-3B-Instruct --out runs/rm
  mr2bench train --data data/train.jsonl --base ./tiny-qwen --out runs/rm --lora-r 8 --lr 5e-3 --epochs 2 \\
      --batch-size 4 --max-length 2048 --attention isolated
  mr2bench train --data data/train.jsonl --base ./tiny-qwen --out runs/rm --resume
  mr2bench train --recipe paper --global-batch 16 --data data/train.jsonl --base allenai/Molmo2-4B --out runs/rm
  accelerate launch -m mr2bench train --data data/train.jsonl --base MODEL --out runs/rm   # several GPUs"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, metavar="JSONL", help="training rows")
    parser.add_argument("--base", required=True, metavar="MODEL", help="base VLM: Hub id or folder")
    parser.add_argument("--recipe", choices=["paper", "none"], default="paper",
                        help="settings to start from; explicit flags override them (default paper)")
    parser.add_argument("--lora-r", type=int, default=None, help="LoRA rank; 0 = train all weights (paper 128)")
    parser.add_argument("--lora-alpha", type=int, default=None, help="LoRA alpha (paper 16)")
    parser.add_argument("--lora-dropout", type=float, default=None, help="LoRA dropout (paper 0.05)")
    parser.add_argument("--lr", type=float, default=None, help="AdamW learning rate, linear decay (paper 1e-4)")
    parser.add_argument("--warmup-ratio", type=float, default=None, help="share of steps warming up (paper 0)")
    parser.add_argument("--weight-decay", type=float, default=None, help="AdamW weight decay (paper 0)")
    parser.add_argument("--max-grad-norm", type=float, default=None, help="gradient clipping norm (paper 1.0)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs (paper 3)")
    parser.add_argument("--max-steps", type=int, default=None, help="stop after this many optimizer steps (the LR schedule still spans --epochs, so --resume continues it)")
    parser.add_argument("--batch-size", type=int, default=None, help="items per micro-batch and process (paper 1)")
    parser.add_argument("--global-batch", type=int, default=None,
                        help="items per optimizer step over all processes, reached by accumulation (paper 64)")
    parser.add_argument("--grad-accum", type=int, default=None,
                        help="micro-batches per optimizer step (replaces the recipe's global batch)")
    parser.add_argument("--max-length", type=int, default=None, help="token budget per item; media shrink to fit (paper 24576)")
    parser.add_argument("--max-vision-tokens", type=int, default=None, help="vision-token cap per item (paper 16384)")
    parser.add_argument("--num-frames", type=int, default=16, help="video frames sampled uniformly (default 16)")
    parser.add_argument("--gradient-checkpointing", action=argparse.BooleanOptionalAction, default=None,
                        help="trade compute for memory (paper: on)")
    parser.add_argument("--resume", action="store_true", help="continue from the latest OUT/checkpoints/step-*")
    parser.add_argument("--attention", choices=["causal", "isolated"], default="causal",
                        help="causal: later responses see earlier ones (the paper); isolated: each sees only itself")
    parser.add_argument("--save-steps", type=int, default=50, help="save a resumable state every N steps")
    parser.add_argument("--log-steps", type=int, default=10, help="log loss/accuracy every N steps")
    parser.add_argument("--merge", action="store_true", help="save merged weights instead of a LoRA adapter")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    parser.add_argument("--trust-remote-code", action="store_true", help="allow the base model's own code")
    add_shared(parser, "seed", "out", "log-level", "limit", out_required=True)


RECIPE_FLAGS = ("lora_r", "lora_alpha", "lora_dropout", "lr", "warmup_ratio", "weight_decay", "max_grad_norm",
                "epochs", "batch_size", "global_batch", "grad_accum", "max_length", "max_vision_tokens",
                "gradient_checkpointing")


def run(args: argparse.Namespace) -> int:
    from mr2bench.jsonl import dumps
    from mr2bench.model.train import TrainConfig, resolve_recipe, train
    from mr2bench.schema import DataError

    settings = resolve_recipe(args.recipe, {k: getattr(args, k) for k in RECIPE_FLAGS})
    for name in ("epochs", "batch_size", "grad_accum", "global_batch", "max_length", "max_vision_tokens"):
        if settings.get(name) is not None and settings[name] < 1:
            raise DataError(f"must be >= 1, got {settings[name]}", field="--" + name.replace("_", "-"))
    for name in ("num_frames", "save_steps", "log_steps"):
        if getattr(args, name) < 1:
            raise DataError(f"must be >= 1, got {getattr(args, name)}", field="--" + name.replace("_", "-"))
    cfg = TrainConfig(data=args.data, base=args.base, out=args.out, num_frames=args.num_frames, resume=args.resume,
                      attention=args.attention, seed=args.seed, limit=args.limit, device=args.device,
                      save_steps=args.save_steps, log_steps=args.log_steps, max_steps=args.max_steps,
                      merge=args.merge, trust_remote_code=args.trust_remote_code, recipe=args.recipe, **settings)
    summary = train(cfg)
    print(dumps(summary))
    return 0
