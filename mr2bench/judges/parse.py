"""Pure verdict parsers, one per protocol: judge text -> an order of shown indices, or None.

The result is a tuple of 0-based indices into the responses *as shown*, best first: ``(i,)`` names the
best response only, a tuple of all N indices is a full ranking. None means the verdict is unreadable;
what that costs is the benchmark's ``parse_policy``, applied by the evaluator, never a guess here.
"""
from __future__ import annotations

import re
import string
from collections.abc import Callable

Order = tuple[int, ...]

# VL-RewardBench inference_hf.py: newlines and '*' removed, then "Overall Judgment" or "Therefore",
# anything (greedy, so the last match wins), "Answer N is (the) (slightly) better", case-insensitive.
_VLRB = re.compile(r"(?:Overall Judgment|Therefore).*Answer\s*(\d+)\s*is\s*(?:the\s*)?(?:slightly\s*)?better",
                   re.IGNORECASE)
_BRACKET_LETTER = re.compile(r"\[\[\s*([A-Z])\s*\]\]")
_BRACKET_RANKING = re.compile(r"\[\[\s*([A-Z](?:\s*(?:>|,)\s*[A-Z])+)\s*\]\]")


def vlrb_number(text: str) -> int | None:
    """The N of the last 'Overall Judgment ... Answer N is better' as written (may lie outside 1..n)."""
    m = _VLRB.search(text.replace("\n", "").replace("*", ""))
    return int(m.group(1)) if m else None


def parse_vlrb(text: str, n: int) -> Order | None:
    """'Overall Judgment: Answer 2 is better' -> (1,); a number outside 1..n names no response here.

    On a benchmark whose ``judge_protocol`` is ``agree_unless_rejected`` (VL-RewardBench) the raw number
    (``parsed_answer``) is scored instead, as cal.py does: any N but the rejected position agrees.
    """
    k = vlrb_number(text)
    return (k - 1,) if k is not None and 1 <= k <= n else None


def parse_mmrb(text: str, n: int) -> Order | None:
    """Multimodal RewardBench 2_get_accuracy.py: '[[A]]' anywhere wins, then '[[B]]' (A checked first)."""
    for i, label in enumerate(string.ascii_uppercase[:n]):
        if f"[[{label}]]" in text:
            return (i,)
    return None


def parse_pairwise_last(text: str, n: int) -> Order | None:
    """The last '[[X]]' with X a valid label: the final verdict, not an echo of the instructions."""
    found = [m.group(1) for m in _BRACKET_LETTER.finditer(text)]
    valid = [string.ascii_uppercase.index(x) for x in found if string.ascii_uppercase.index(x) < n]
    return (valid[-1],) if valid else None


def parse_nway(text: str, n: int) -> Order | None:
    """'Best: [[C]]' and optionally 'Ranking: [[C > A > D > B]]' (the last of each counts).

    A ranking must list every label once; a malformed ranking is ignored, not an error. When both are
    present and disagree on the top, the 'Best' line wins and the ranking is dropped.
    """
    best = parse_pairwise_last(text, n)
    ranking: Order | None = None
    for m in _BRACKET_RANKING.finditer(text):
        idx = tuple(string.ascii_uppercase.index(x) for x in re.findall(r"[A-Z]", m.group(1)))
        ranking = idx if sorted(idx) == list(range(n)) else None
    if ranking is not None and (best is None or best[0] == ranking[0]):
        return ranking
    return best


PARSERS: dict[str, Callable[[str, int], Order | None]] = {
    "vlrb": parse_vlrb,
    "mmrb": parse_mmrb,
    "pairwise_last": parse_pairwise_last,
    "nway": parse_nway,
}


def parse_verdict(parser: str, text: str, n: int) -> Order | None:
    return PARSERS[parser](text, n)


def parsed_answer(parser: str, text: str, n: int) -> int | None:
    """The 1-based label a sample names, kept even when outside 1..n (the vlrb parser); None: unreadable."""
    if parser == "vlrb":
        return vlrb_number(text)
    order = parse_verdict(parser, text, n)
    return None if order is None else order[0] + 1
