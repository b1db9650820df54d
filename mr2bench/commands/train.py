"""`mr2bench train`: train the multi-response reward model (N-way cross-entropy, all N in one pass)."""
from __future__ import annotations

import argparse

from mr2bench.cli import add_shared

HELP = """train the multi-response reward model on {prompt, responses[], rankings[], image?, video?} rows

Loss: softmax cross-entropy over the N scores toward the best-ranked response (a tie for first is broken at
random on every load; responses are reshuffled on every load). Pairwise rows are N = 2 (Bradley-Terry).
Media paths are relative to the JSONL's folder. Bad rows go to OUT/quarantine.jsonl with reasons.
Writes OUT/final (loadable as mr2:OUT/final), OUT/checkpoints/step-* (for --resume), OUT/train_log.jsonl."""
EPILOG = """examples:
  mr2bench train --data data/train.jsonl --base Qwen/Qwen2.5-VL-3B-Instruct --out runs/rm
  mr2bench train --data data/train.jsonl --base ./tiny-qwen --out runs/rm --lora-r 8 --lr 5e-3 --epochs 2 \\
      --batch-size 4 --max-length 2048 --attention isolated
  mr2bench train --data data/train.jsonl --base ./tiny-qwen --out runs/rm --resume
  accelerate launch -m mr2bench train --data data/train.jsonl --base MODEL --out runs/rm   # several GPUs"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, metavar="JSONL", help="training rows")
    parser.add_argument("--base", required=True, metavar="MODEL", help="base VLM: Hub id or folder")
    parser.add_argument("--lora-r", type=int, default=128, help="LoRA rank; 0 = train all weights (default 128)")
    parser.add_argument("--lora-alpha", type=int, default=16, help="LoRA alpha (default 16)")
    parser.add_argument("--lora-dropout", type=float, default=0.05, help="LoRA dropout (default 0.05)")
    parser.add_argument("--lr", type=float, default=1e-4, help="AdamW learning rate, linear decay (default 1e-4)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs (default 3)")
    parser.add_argument("--max-steps", type=int, default=None, help="stop after this many optimizer steps (the LR schedule still spans --epochs, so --resume continues it)")
    parser.add_argument("--batch-size", type=int, default=1, help="items per micro-batch (default 1)")
    parser.add_argument("--grad-accum", type=int, default=1, help="micro-batches per optimizer step (default 1)")
    parser.add_argument("--max-length", type=int, default=24576, help="token budget per item; media shrink to fit")
    parser.add_argument("--num-frames", type=int, default=16, help="video frames sampled uniformly (default 16)")
    parser.add_argument("--gradient-checkpointing", action="store_true", help="trade compute for memory")
    parser.add_argument("--resume", action="store_true", help="continue from the latest OUT/checkpoints/step-*")
    parser.add_argument("--attention", choices=["causal", "isolated"], default="causal",
                        help="causal: later responses see earlier ones (the paper); isolated: each sees only itself")
    parser.add_argument("--save-steps", type=int, default=50, help="save a resumable state every N steps")
    parser.add_argument("--log-steps", type=int, default=10, help="log loss/accuracy every N steps")
    parser.add_argument("--merge", action="store_true", help="save merged weights instead of a LoRA adapter")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    parser.add_argument("--trust-remote-code", action="store_true", help="allow the base model's own code")
    add_shared(parser, "seed", "out", "log-level", "limit", out_required=True)


def run(args: argparse.Namespace) -> int:
    from mr2bench.jsonl import dumps
    from mr2bench.model.train import TrainConfig, train

    for name in ("epochs", "batch_size", "grad_accum", "max_length", "num_frames", "save_steps", "log_steps"):
        if getattr(args, name) < 1:
            from mr2bench.schema import DataError

            raise DataError(f"must be >= 1, got {getattr(args, name)}", field="--" + name.replace("_", "-"))
    cfg = TrainConfig(data=args.data, base=args.base, out=args.out, lora_r=args.lora_r, lora_alpha=args.lora_alpha,
                      lora_dropout=args.lora_dropout, lr=args.lr, epochs=args.epochs, batch_size=args.batch_size,
                      grad_accum=args.grad_accum, max_length=args.max_length, num_frames=args.num_frames,
                      gradient_checkpointing=args.gradient_checkpointing, resume=args.resume,
                      attention=args.attention, seed=args.seed, limit=args.limit, device=args.device,
                      save_steps=args.save_steps, log_steps=args.log_steps, max_steps=args.max_steps,
                      merge=args.merge, trust_remote_code=args.trust_remote_code)
    summary = train(cfg)
    print(dumps(summary))
    return 0
