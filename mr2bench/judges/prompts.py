"""Judge prompt templates: one versioned file per template in ``prompts/``, loaded and rendered here.

A template file is a Jinja2 body preceded by a YAML header inside a Jinja comment (``{# ... #}``):
``id`` (the file stem), ``parser`` (a name in ``mr2bench.judges.parse.PARSERS``), ``labels``
(``numbers`` -> 1, 2, ...; ``letters`` -> A, B, ...), ``n_responses`` (2, or null for any N), ``media``
(``before_text`` / ``after_text``: where images and frames go in the user turn), ``remove`` (strings
deleted from the rendered text) and a dated ``changelog``. Changing a template's wording means a new
file with a new id (``..._v2``) and a version bump of the benchmarks that name it.

Which template a request gets: an explicit ``--model-arg prompt=ID``, else the benchmark spec's
``judge_prompt``, else ``pairwise_v1`` for two responses and ``nway_best_v1`` for more.
"""
from __future__ import annotations

import re
import string
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ..registry import Registry, UnknownNameError
from ..schema import DataError, ScoringRequest

PROMPT_DIR = Path(__file__).with_name("prompts")
DEFAULT_PAIRWISE = "pairwise_v1"
DEFAULT_NWAY = "nway_best_v1"
LABEL_SCHEMES = ("numbers", "letters")
MEDIA_POSITIONS = ("before_text", "after_text")
_HEADER = re.compile(r"\A\{#(.*?)#\}\n", re.DOTALL)


@dataclass(frozen=True)
class PromptTemplate:
    id: str
    parser: str
    labels: str
    n_responses: int | None
    media: str
    remove: tuple[str, ...]
    description: str
    source: str
    changelog: tuple[str, ...]
    body: str  # the Jinja2 source without its header

    def label_list(self, n: int) -> list[str]:
        if self.labels == "numbers":
            return [str(i + 1) for i in range(n)]
        if n > len(string.ascii_uppercase):
            raise DataError(f"template {self.id!r} labels at most 26 responses, got {n}", field="responses")
        return list(string.ascii_uppercase[:n])

    def render(self, question: str, responses: tuple[str, ...] | list[str]) -> str:
        n = len(responses)
        if self.n_responses is not None and n != self.n_responses:
            raise DataError(f"judge prompt {self.id!r} takes {self.n_responses} responses, got {n}",
                            field="responses")
        labels = self.label_list(n)
        text = _compile(self.id, self.body).render(
            question=question, n=n, labels=labels,
            responses=[{"label": lab, "text": r} for lab, r in zip(labels, responses)])
        for s in self.remove:
            text = text.replace(s, "")
        return text


@lru_cache(maxsize=None)
def _compile(template_id: str, body: str):
    import jinja2

    env = jinja2.Environment(trim_blocks=True, keep_trailing_newline=True, autoescape=False,
                             undefined=jinja2.StrictUndefined)
    return env.from_string(body)


def load_template(path: Path) -> PromptTemplate:
    import yaml

    source = path.read_text(encoding="utf-8")
    m = _HEADER.match(source)
    if not m:
        raise DataError("a judge prompt starts with a '{# ... #}' YAML header", file=str(path))
    try:
        meta = yaml.safe_load(m.group(1)) or {}
    except yaml.YAMLError as exc:
        raise DataError(f"unreadable YAML header: {exc}", file=str(path)) from None
    known = {"id", "parser", "labels", "n_responses", "media", "remove", "description", "source",
             "changelog"}
    unknown = sorted(set(meta) - known)
    if unknown:
        raise DataError(f"unknown header keys {unknown}; known: {sorted(known)}", file=str(path))
    if meta.get("id") != path.stem:
        raise DataError(f"header id {meta.get('id')!r} must equal the file stem {path.stem!r}", file=str(path),
                        field="id")
    if meta.get("labels") not in LABEL_SCHEMES:
        raise DataError(f"must be one of {LABEL_SCHEMES}", file=str(path), field="labels")
    if meta.get("media") not in MEDIA_POSITIONS:
        raise DataError(f"must be one of {MEDIA_POSITIONS}", file=str(path), field="media")
    from .parse import PARSERS

    if meta.get("parser") not in PARSERS:
        raise DataError(f"unknown parser {meta.get('parser')!r}; known: {sorted(PARSERS)}", file=str(path),
                        field="parser")
    return PromptTemplate(
        id=meta["id"], parser=meta["parser"], labels=meta["labels"],
        n_responses=meta.get("n_responses"),
        media=meta["media"], remove=tuple(meta.get("remove") or ()), description=meta.get("description", ""),
        source=meta.get("source", ""), changelog=tuple(meta.get("changelog") or ()), body=source[m.end():])


@lru_cache(maxsize=1)
def templates() -> Registry[PromptTemplate]:
    reg: Registry[PromptTemplate] = Registry("judge prompt")
    for path in sorted(PROMPT_DIR.glob("*.j2")):
        t = load_template(path)
        reg.register(t.id, t)
    return reg


def template_ids() -> list[str]:
    """The template ids (file stems)."""
    return sorted(p.stem for p in PROMPT_DIR.glob("*.j2"))


def get_template(template_id: str) -> PromptTemplate:
    return templates().get(template_id)


def template_id_for(request: ScoringRequest, override: str | None = None) -> str:
    """The template a request gets: override, then the benchmark's ``judge_prompt``, then by N."""
    if override:
        return override
    if request.benchmark:
        try:
            from ..registry import get_benchmark

            spec_prompt = get_benchmark(request.benchmark).judge_prompt
        except (ImportError, UnknownNameError):
            spec_prompt = ""  # an ad-hoc benchmark name: fall back on the number of responses
        if spec_prompt:
            return spec_prompt
    return DEFAULT_PAIRWISE if len(request.responses) == 2 else DEFAULT_NWAY


def template_for(request: ScoringRequest, override: str | None = None) -> PromptTemplate:
    return get_template(template_id_for(request, override))
