"""Planted-truth arenas (synthetic, seeded): pairwise video-QA votes and image rankings.

Truth: theta[q, m] = skill[m] + question noise, so models differ overall but not on every question
(the pattern a model-level prior can exploit, and that real arenas show). Annotator kinds:
``good`` (BT votes), ``noisy`` (a coin flip 60 % of the time), ``adversarial`` (BT with the sign
flipped), ``position`` (votes model_a 70 % of the time); ``hostile`` = many adversarial and
position-biased annotators. Pair coverage is uneven (popular models
meet more often), votes per question are log-normal.

Response texts carry one planted, documented signal, so a text scorer visibly beats chance on the demo:
the response of model m to question q has ``response_words(theta)`` filler words, about 12 + 2 * theta[q, m]
plus Gaussian noise (sd 4), i.e. better responses tend to be longer (as in many real arenas). The words
come from their own seeded stream, so the votes are the same as without the signal.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import expit

from mr2bench.seeding import rng_for

MODEL_NAMES = (
    "aurora-7b", "borealis-13b", "cirrus-4b", "delta-vl-8b", "ember-2b", "fjord-34b", "glacier-72b",
    "halo-9b", "ion-3b", "jade-14b", "kite-1b", "lumen-26b", "mistral-vid-7b", "nova-11b", "onyx-6b",
    "prism-20b", "quill-5b", "rune-40b", "sable-12b",
)

SETTINGS: dict[str, dict[str, float]] = {
    "clean": {"good": 1.0},
    "noisy": {"good": 0.6, "noisy": 0.4},
    "adversarial": {"good": 0.5, "noisy": 0.2, "adversarial": 0.15, "position": 0.15},
    "hostile": {"good": 0.4, "noisy": 0.1, "adversarial": 0.2, "position": 0.3},
}


FILLER = ("the", "clip", "shows", "a", "scene", "where", "someone", "moves", "slowly", "then", "turns",
          "toward", "light", "and", "answers", "clearly", "with", "detail", "about", "each", "object")


def response_words(seed: int, kind: str, theta: np.ndarray) -> np.ndarray:
    """Planted signal: word counts that grow with the true quality (see the module docstring)."""
    noise = rng_for(seed, "demo-text", kind, theta.shape).normal(0.0, 4.0, theta.shape)
    return np.maximum(2, np.round(12 + 2 * theta + noise)).astype(int)


def response_text(label: str, qid: str, words: int) -> str:
    return f"[synthetic] {label} for {qid}: " + " ".join(FILLER[i % len(FILLER)] for i in range(words)) + "."


@dataclass(frozen=True)
class Arena:
    judgments: pd.DataFrame   # canonical pairwise columns (or image ranking rows)
    truth: pd.DataFrame       # question_id, model, theta
    annotators: pd.DataFrame  # annotator_id, kind


def _annotators(rng: np.random.Generator, n: int, setting: str) -> tuple[np.ndarray, np.ndarray]:
    mix = SETTINGS[setting]
    kinds = rng.choice(list(mix), size=n, p=np.array(list(mix.values())) / sum(mix.values()))
    volume = rng.gamma(1.5, 1.0, size=n)
    return kinds, volume / volume.sum()


def _truth(rng: np.random.Generator, n_q: int, n_m: int, model_sd: float, question_sd: float) -> np.ndarray:
    skill = rng.normal(0, model_sd, n_m)
    return skill[None, :] + rng.normal(0, question_sd, (n_q, n_m))


def votes(rng: np.random.Generator, d: np.ndarray, kind: np.ndarray, tie_rate: float = 0.08,
          both_bad_rate: float = 0.04) -> np.ndarray:
    """Winners ("model_a" / "model_b" / "tie" / "both_bad") for true gaps d = theta_a - theta_b, one per
    vote, from annotators of the given kinds (the module docstring's vote model)."""
    total = len(d)
    p_a = expit(d)
    p_a = np.where(kind == "adversarial", 1 - p_a, p_a)
    p_a = np.where((kind == "noisy") & (rng.random(total) < 0.6), 0.5, p_a)
    p_a = np.where((kind == "position") & (rng.random(total) < 0.7), 1.0, p_a)
    u = rng.random(total)
    winner = np.where(rng.random(total) < p_a, "model_a", "model_b").astype(object)
    winner[u < tie_rate] = "tie"
    winner[(u >= tie_rate) & (u < tie_rate + both_bad_rate)] = "both_bad"
    return winner


def answer(arena: Arena, requests: pd.DataFrame, seed: int, tie_rate: float = 0.08,
           both_bad_rate: float = 0.04) -> pd.DataFrame:
    """Simulated annotators answer ``requests`` (question_id, model_a, model_b): an annotator drawn
    uniformly from the arena's pool votes on the planted truth with its kind. Canonical pairwise rows."""
    rng = rng_for(seed, "answer", len(requests))
    truth = arena.truth.set_index(["question_id", "model"])["theta"]
    ta = truth.reindex(pd.MultiIndex.from_arrays([requests["question_id"], requests["model_a"]])).to_numpy()
    tb = truth.reindex(pd.MultiIndex.from_arrays([requests["question_id"], requests["model_b"]])).to_numpy()
    ann = rng.integers(0, len(arena.annotators), len(requests))
    kind = arena.annotators["kind"].to_numpy()[ann]
    return pd.DataFrame({"question_id": requests["question_id"].to_numpy(), "model_a": requests["model_a"].to_numpy(),
                         "model_b": requests["model_b"].to_numpy(),
                         "winner": votes(rng, ta - tb, kind, tie_rate, both_bad_rate),
                         "annotator_id": arena.annotators["annotator_id"].to_numpy()[ann]})


def pairwise_arena(seed: int = 0, *, n_questions: int = 300, n_models: int = 19, votes_per_question: float = 190,
                   n_annotators: int = 60, setting: str = "adversarial", model_sd: float = 0.7,
                   question_sd: float = 0.7, tie_rate: float = 0.08, both_bad_rate: float = 0.04) -> Arena:
    rng = rng_for(seed, "arena", setting, n_questions, votes_per_question)
    models = np.array(MODEL_NAMES[:n_models] if n_models <= len(MODEL_NAMES)
                      else [f"model-{k:02d}" for k in range(n_models)])
    theta = _truth(rng, n_questions, n_models, model_sd, question_sd)
    kinds, volume = _annotators(rng, n_annotators, setting)
    popularity = rng.gamma(3.0, 1.0, n_models)
    counts = np.maximum(8, rng.lognormal(np.log(votes_per_question) - 0.18, 0.6, n_questions)).astype(int)
    total = int(counts.sum())
    q = np.repeat(np.arange(n_questions), counts)
    a = rng.choice(n_models, size=total, p=popularity / popularity.sum())
    b = rng.choice(n_models - 1, size=total)
    b = b + (b >= a)  # a by popularity, b uniform over the others, then a random left/right slot
    swap = rng.random(total) < 0.5
    a, b = np.where(swap, b, a), np.where(swap, a, b)
    ann = rng.choice(n_annotators, size=total, p=volume)
    winner = votes(rng, theta[q, a] - theta[q, b], kinds[ann], tie_rate, both_bad_rate)
    qid = np.array([f"q{k:04d}" for k in range(n_questions)])
    words = response_words(seed, "pairwise", theta)
    texts = [[response_text(f"response {m:02d}", qid[k], words[k, m]) for m in range(n_models)]
             for k in range(n_questions)]
    df = pd.DataFrame({
        "question_id": qid[q], "model_a": models[a], "model_b": models[b], "winner": winner,
        "annotator_id": np.array([f"ann{k:03d}" for k in range(n_annotators)])[ann],
        "timestamp": np.char.mod("%d", 1_700_000_000 + np.arange(total)),
        "question": [f"Synthetic question {k}: what happens in the clip?" for k in q],
        "video": [f"media/{qid[k]}.mp4" for k in q],
        "response_a": [texts[k][m] for m, k in zip(a, q)],
        "response_b": [texts[k][m] for m, k in zip(b, q)],
    })
    truth = pd.DataFrame({"question_id": np.repeat(qid, n_models), "model": np.tile(models, n_questions),
                          "theta": theta.ravel()})
    anns = pd.DataFrame({"annotator_id": [f"ann{k:03d}" for k in range(n_annotators)], "kind": kinds})
    return Arena(df, truth, anns)


def ranking_arena(seed: int = 0, *, n_prompts: int = 60, n_models: int = 8, annotators_per_prompt: int = 3,
                  n_annotators: int = 12, setting: str = "noisy", model_sd: float = 0.7,
                  question_sd: float = 0.7) -> Arena:
    """Image-style data: each annotator ranks all models' responses to a prompt (Plackett-Luce noise);
    equal rounded utilities become ties."""
    rng = rng_for(seed, "ranking-arena", setting, n_prompts)
    models = np.array(MODEL_NAMES[:n_models])
    theta = _truth(rng, n_prompts, n_models, model_sd, question_sd)
    kinds, _ = _annotators(rng, n_annotators, setting)
    words = response_words(seed, "ranking", theta)
    rows = []
    for p in range(n_prompts):
        for k in rng.choice(n_annotators, size=min(annotators_per_prompt, n_annotators), replace=False):
            util = theta[p] + rng.gumbel(size=n_models)
            if kinds[k] == "adversarial":
                util = -util
            elif kinds[k] in ("noisy", "position") and rng.random() < 0.6:
                util = rng.gumbel(size=n_models)
            util = np.round(util * 2) / 2  # coarse utilities: some ties
            rank = 1 + (util[None, :] > util[:, None]).sum(axis=1)
            for m in range(n_models):
                rows.append((f"p{p:04d}", models[m], int(rank[m]), f"ann{k:03d}",
                             f"Synthetic prompt {p}: describe the image.", f"media/p{p:04d}.png",
                             response_text(f"description {m:02d}", f"p{p:04d}", words[p, m])))
    df = pd.DataFrame(rows, columns=["prompt_id", "model", "rank", "annotator_id", "prompt", "image", "response"])
    pid = np.array([f"p{k:04d}" for k in range(n_prompts)])
    truth = pd.DataFrame({"question_id": np.repeat(pid, n_models), "model": np.tile(models, n_prompts),
                          "theta": theta.ravel()})
    anns = pd.DataFrame({"annotator_id": [f"ann{k:03d}" for k in range(n_annotators)], "kind": kinds})
    return Arena(df, truth, anns)
