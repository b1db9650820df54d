"""Benchmark builders (installed as ``mr2bench.builders``): ``video`` (pairwise judgments) and ``image``
(rankings) share ``inputs`` (read, validate, quarantine), ``pipeline`` (denoise, filter, sample items),
``outputs`` (Parquet, leaderboard, plots) and ``demo`` (the synthetic arenas)."""
