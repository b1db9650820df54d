"""Baseline adapters anyone can reproduce, and loading a user's adapter from a file.

- ``random``: i.i.d. uniform scores from ``rng_for(seed, "random-adapter", item_id)``: the same item gets
  the same scores in every run, whatever the batch or process split.
- ``length``: score = ``len(response)`` in characters (Python ``len`` of the str), nothing else.
- ``python:path/to/file.py:ClassName``: the file is imported by path (no package needed); the class is
  instantiated with ``(target, options)`` when its constructor takes two or more arguments, else with
  none. ``target`` is the spec after ``python:`` (``path/to/file.py:ClassName``); ``options`` is the
  ``AdapterOptions`` (seed, device, ``--model-arg`` values in ``options.extra``).
"""
from __future__ import annotations

import importlib.util
import inspect
import sys
from pathlib import Path

from .adapters import AdapterOptions
from .schema import DataError, ModelAdapter, ScoringRequest
from .seeding import derive_seed, rng_for


def no_model_args(kind: str, options: AdapterOptions | None) -> None:
    """Baselines take no --model-arg: a typo must not pass silently as an option nobody reads."""
    if options is not None and options.extra:
        raise DataError(f"{kind} takes no --model-arg; got {', '.join(sorted(options.extra))}", field="--model-arg")


class RandomAdapter:
    def __init__(self, target: str = "", options: AdapterOptions | None = None) -> None:
        no_model_args("random", options)
        self.seed = (options or AdapterOptions()).seed
        if target:  # random:7 -> a different stream than random
            self.seed = derive_seed(self.seed, "random-target", target)

    def score(self, request: ScoringRequest) -> list[float]:
        rng = rng_for(self.seed, "random-adapter", request.item_id)
        return [float(x) for x in rng.random(len(request.responses))]


class LengthAdapter:
    def __init__(self, target: str = "", options: AdapterOptions | None = None) -> None:
        no_model_args("length", options)

    def score(self, request: ScoringRequest) -> list[float]:
        return [float(len(r)) for r in request.responses]

    def score_batch(self, requests: list[ScoringRequest]) -> list[list[float]]:
        return [self.score(r) for r in requests]


def load_user_adapter(target: str, options: AdapterOptions) -> ModelAdapter:
    path_str, sep, class_name = target.rpartition(":")
    if not sep or not path_str or not class_name:
        raise DataError(f"expected python:path/to/file.py:ClassName, got python:{target}", field="--model")
    path = Path(path_str)
    if not path.is_file():
        raise DataError(f"adapter file not found: {path}", field="--model")
    mod_name = f"mr2bench_user_adapter_{derive_seed(0, str(path.resolve())) % 10**12}"
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:
        raise DataError(f"cannot import {path}", field="--model")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    spec.loader.exec_module(module)
    cls = getattr(module, class_name, None)
    if cls is None:
        raise DataError(f"{path} has no class {class_name!r}", field="--model")
    try:
        params = [p for p in inspect.signature(cls).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)]
    except (TypeError, ValueError):
        params = []
    takes_two = len(params) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in params)
    adapter = cls(target, options) if takes_two else cls()
    if not callable(getattr(adapter, "score", None)):
        raise DataError(f"{class_name} has no score(request) method", field="--model")
    return adapter
