"""One registry of frozen benchmark specs (and the generic registry the model kinds use too)."""
from __future__ import annotations

import difflib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from .schema import DataError

T = TypeVar("T")

METRICS = ("best_of_n", "accuracy", "macro_accuracy", "acc", "acc_plus", "pairwise_accuracy",
           "kendall_tau_b", "exact_order")
AGGREGATIONS = ("micro", "macro")
# strict: a tie at the top is wrong (RewardBench v1, MM-RLHF); split: a k-way tie that holds a
# gold-best response earns 1/k (RewardBench v2, MR^2Bench best-of-4).
TIE_POLICIES = ("strict", "split")
# What an unreadable judge verdict becomes: dropped from the denominator (VL-RewardBench cal.py),
# wrong (VLMEvalKit), a seeded random pick per item, or Multimodal RewardBench's own rule: one
# random.Random(123) stream, one draw per unreadable verdict or failed call in the loader's order.
PARSE_POLICIES = ("exclude", "wrong", "seeded_random", "ordered_random")
# shuffle: the evaluator permutes responses per item from (seed, item id); fixed: stored order.
ORDER_POLICIES = ("shuffle", "fixed")
# How a generative judge's k samples become the item's outcome. vote: one order for all k, combined in the
# adapter (``--model-arg vote``). agree_unless_rejected (VL-RewardBench cal.py): each sample in a fresh order;
# a parsed answer agrees unless it names the rejected response (an out-of-range "Answer 3" agrees); strict
# majority of the k samples, else the item is excluded (mr2bench.metrics.agree_unless_rejected).
JUDGE_PROTOCOLS = ("vote", "agree_unless_rejected")


class UnknownNameError(KeyError):
    """A name that is not registered; the message lists close matches and every known name."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


class Registry(Generic[T]):
    """Name -> value, duplicates rejected, unknown names answered with close matches and the list."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str, value: T) -> T:
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._items[name] = value
        return value

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            close = difflib.get_close_matches(name, self._items, n=3, cutoff=0.5)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise UnknownNameError(f"unknown {self.kind} {name!r}.{hint} "
                                   f"Known: {', '.join(sorted(self._items)) or '(none)'}") from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)


@dataclass(frozen=True)
class BenchmarkSpec:
    """Everything that pins a benchmark's numbers. Change items, prompts, scoring or a policy:
    bump ``version`` and add a dated line to ``changelog``."""

    name: str
    version: str
    hub_id: str
    split: str
    primary_metric: str
    aggregation: str
    tie_policy: str
    parse_policy: str
    order_policy: str
    loader: str                      # "module:function" that yields BenchmarkItems from a data root
    headline: str = ""               # the metric the paper's table reports, if not the primary one
    revision: str | None = None      # a data commit sha; None: the Hub's main (results record the sha resolved)
    config: str | None = None        # the dataset config (README ``configs``); None: the only / default one
    hub_files: tuple[str, ...] = ()  # allow_patterns for the Hub snapshot (data + media); empty: the whole repo
    field_map: tuple[tuple[str, str], ...] = ()  # (canonical, theirs) renames from ``--field``
    categories: tuple[str, ...] = ()
    description: str = ""
    protocol: str = ""               # which official implementation the scoring matches
    judge_prompt: str = ""           # prompt template id for generative judges (mr2bench/judges/prompts)
    judge_protocol: str = "vote"     # JUDGE_PROTOCOLS
    judge_defaults: tuple[tuple[str, str], ...] = ()  # judge:/api: --model-arg defaults here (explicit args win)
    changelog: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        for name in ("name", "version", "hub_id", "split", "loader"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise DataError("must be a non-empty string", field=name)
        for name, allowed in (("primary_metric", METRICS), ("aggregation", AGGREGATIONS),
                              ("tie_policy", TIE_POLICIES), ("parse_policy", PARSE_POLICIES),
                              ("order_policy", ORDER_POLICIES), ("judge_protocol", JUDGE_PROTOCOLS)):
            if getattr(self, name) not in allowed:
                raise DataError(f"must be one of {allowed}, got {getattr(self, name)!r}", field=name)
        if self.headline and self.headline not in METRICS:
            raise DataError(f"must be one of {METRICS}, got {self.headline!r}", field="headline")
        if ":" not in self.loader:
            raise DataError("must look like 'package.module:function'", field="loader")

    @property
    def headline_metric(self) -> str:
        return self.headline or self.primary_metric

    @property
    def source(self) -> str:
        """``HUB_ID[:CONFIG][@REVISION]``, the form ``--source`` takes."""
        return self.hub_id + (f":{self.config}" if self.config else "") + (f"@{self.revision}" if self.revision else "")


BENCHMARKS: Registry[BenchmarkSpec] = Registry("benchmark")


def register_benchmark(spec: BenchmarkSpec) -> BenchmarkSpec:
    return BENCHMARKS.register(spec.name, spec)


def get_benchmark(name: str) -> BenchmarkSpec:
    """Look a benchmark up, importing the bundled evaluators on first use."""
    import mr2bench.evaluators  # noqa: F401  (registers the bundled specs)
    return BENCHMARKS.get(name)


def benchmark_names() -> list[str]:
    import mr2bench.evaluators  # noqa: F401
    return BENCHMARKS.names()
