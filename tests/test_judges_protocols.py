"""Judge protocols declared by benchmark specs, against scripted judges on loopback (started here, no network).

VL-RewardBench (real-artifacts.md, "Benchmarks on the Hub and their official scorers", the VL-RewardBench
line; read from vl-rewardbench/VL_RewardBench cal.py and inference_hf.py): a parsed "Answer N" agrees unless
N is the rejected position (so "Answer 3" agrees), each of the k samples is shown in a fresh order,
unreadable samples count toward k but the item is left out unless agree or reject has a strict majority,
generation max_tokens 2048 (T 0.2 / top_p 0.2 when sampling). The official rule is written again below
from that page (``official_cal``), over what the scripted judge saw and said, never through mr2bench's
metric code, and compared with ``evaluate-model --model api:...`` on the real sample records laid out as the
Hub parquet (``test_evaluate.build_vlrb``: rows in both stored orders, as the Hub's ``human_ranking`` has).

The API request options of the paper's proprietary judges (``api_presets``) are checked as the exact
request body a loopback server receives.
"""
from __future__ import annotations

import json
import random
import threading
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from mr2bench.adapters import AdapterOptions, load_adapter
from mr2bench.cli import main
from mr2bench.judges.base import benchmark_judging, sample_orders
from mr2bench.judges.config import judge_config
from mr2bench.metrics import agree_unless_rejected
from mr2bench.schema import DataError, ScoringRequest

from test_evaluate import build_vlrb, results, samples, vlrb_group

KEY_ENV = "MR2BENCH_TEST_PROTOCOL_KEY"
MODEL = "api__scripted"
# policy(row index, position the chosen answer is shown at (1 or 2), the body's seed) -> the N the judge
# names ("Answer N is better"), or None for a reply with no verdict in it
Policy = Callable[[int, int, "int | None"], "int | None"]


class ReplayJudge:
    """Chat completions on 127.0.0.1 that finds which sample row it was shown (both responses, in which
    order) and replies with the policy's answer; every call is logged as (row, chosen position, answer)."""

    def __init__(self, rows: list[dict], policy: Policy) -> None:
        self.rows, self.policy = rows, policy
        self.log: list[tuple[int, int, int | None]] = []
        self.bodies: list[dict] = []
        self.lock = threading.Lock()
        judge = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status, payload = judge.respond(body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def shown(self, text: str) -> tuple[int, int]:
        for i, r in enumerate(self.rows):
            if f"Answer 1: {r['chosen']}\n\nAnswer 2: {r['rejected']}\n\n" in text:
                return i, 1
            if f"Answer 1: {r['rejected']}\n\nAnswer 2: {r['chosen']}\n\n" in text:
                return i, 2
        raise LookupError("no sample row matches the prompt")

    def respond(self, body: dict) -> tuple[int, dict]:
        text = next(p["text"] for p in body["messages"][0]["content"] if p["type"] == "text")
        try:
            row, chosen_pos = self.shown(text)
        except LookupError as exc:
            return 500, {"error": {"message": str(exc)}}
        answer = self.policy(row, chosen_pos, body.get("seed"))
        with self.lock:
            self.log.append((row, chosen_pos, answer))
            self.bodies.append(body)
        reply = ("Both answers have merits; it is hard to say." if answer is None else
                 f"1. Accuracy: ...\n4. Relevance: ...\n**Overall Judgment**: Answer {answer} is better.")
        return 200, {"choices": [{"index": 0, "message": {"role": "assistant", "content": reply}}],
                     "usage": {"prompt_tokens": 50, "completion_tokens": 5}}

    def __enter__(self) -> "ReplayJudge":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# ---------------------------------------------------------------- the official rules, written again here
def official_cal(log, rows, k: int) -> dict:
    """cal.py: per item, each sample is agree unless its number is the rejected position, reject when it is,
    doesntMatch when unreadable; an item is right when agree > total/2, wrong when reject > total/2, else it
    counts nowhere; accuracy per group, macro = mean of the three groups."""
    flags: dict[int, Counter] = defaultdict(Counter)
    for row, chosen_pos, answer in log:
        rejected_pos = 3 - chosen_pos
        flags[row]["doesntMatch" if answer is None else "reject" if answer == rejected_pos else "agree"] += 1
    return _groups({row: c for row, c in flags.items()}, rows, k, lambda c, n: (c["agree"] > n / 2, c["reject"] > n / 2))


def previous_rule(log, rows, k: int) -> dict:
    """mr2bench before spec 1.2.0: a number outside 1..2 is unreadable; one order for all k; the response
    named by more than half of the k samples wins."""
    votes: dict[int, Counter] = defaultdict(Counter)
    for row, chosen_pos, answer in log:
        votes[row]["chosen" if answer == chosen_pos else "rejected" if answer == 3 - chosen_pos else "none"] += 1
    return _groups(votes, rows, k, lambda c, n: (c["chosen"] > n / 2, c["rejected"] > n / 2))


def _groups(counts: dict[int, Counter], rows, k: int, decide) -> dict:
    correct, total = Counter(), Counter()
    for row, c in counts.items():
        n = sum(c.values())
        assert n == k, f"row {row}: {n} samples logged for k = {k}"
        right, wrong = decide(c, n)
        group = vlrb_group(rows[row]["id"])
        if right or wrong:
            total[group] += 1
            correct[group] += right
    acc = {g: correct[g] / total[g] for g in total}
    return {"macro": sum(acc.values()) / 3, "accuracy": sum(correct.values()) / sum(total.values()),
            "n": dict(total), "excluded": len(counts) - sum(total.values())}


# ---------------------------------------------------------------- scripted judges
def adversarial(row: int, chosen_pos: int, seed) -> int | None:
    """k = 1: right, 'Answer 3', no verdict, wrong, 'Answer 0', by row."""
    return (chosen_pos, 3, None, 3 - chosen_pos, 0)[row % 5]


def position_biased(row: int, chosen_pos: int, seed) -> int | None:
    """Says 'Answer 1' 55% of the time whatever is shown, 'Answer 3' 10%, nothing 5%, else the right one;
    drawn from the body's seed, so one sample gets the same draw in every run."""
    r = random.Random(seed).random()
    return 1 if r < 0.55 else 3 if r < 0.65 else None if r < 0.7 else chosen_pos


def run_judge(data: Path, out: Path, url: str, *args: str) -> int:
    return main(["evaluate-model", "--no-progress", "--model", "api:scripted", "--benchmarks", "vl-rewardbench",
                 "--data-dir", str(data), "--out", str(out), "--api-base", url, "--api-key-env", KEY_ENV,
                 "--batch-size", "8", "--seed", "11", "--model-arg", "backoff=0.01", *args])


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, "sk-protocol-test")


def run_before(monkeypatch, *argv) -> int:
    """The same run with VL-RewardBench as spec 1.1.0 judged it: judge_protocol 'vote' (one order for all k,
    a number outside 1..2 unreadable), for the before/after comparison."""
    from mr2bench.registry import BENCHMARKS, get_benchmark

    spec = get_benchmark("vl-rewardbench")
    with monkeypatch.context() as m:
        m.setitem(BENCHMARKS._items, "vl-rewardbench", replace(spec, judge_protocol="vote", judge_defaults=()))
        benchmark_judging.cache_clear()
        try:
            return run_judge(*argv)
        finally:
            benchmark_judging.cache_clear()


def assert_same(got: dict, expected: dict) -> None:
    assert (got["n"], got["excluded"]) == (expected["n"], expected["excluded"])
    assert got["macro"] == pytest.approx(expected["macro"]) and got["accuracy"] == pytest.approx(expected["accuracy"])


def _metrics(out: Path) -> dict:
    res = results(out, MODEL, "vl-rewardbench")
    return {"macro": res["metrics"]["macro_accuracy"], "accuracy": res["metrics"]["accuracy"],
            "n": {g: res["per_category"][g]["n"] for g in ("general", "hallucination", "reasoning")},
            "excluded": res["n_parse_failures"]}


# ---------------------------------------------------------------- VL-RewardBench, k = 1, out-of-range answers
def test_vlrb_answer_3_agrees_as_cal_py(samples_dir, tmp_path):
    rows = build_vlrb(samples_dir, tmp_path / "vlrb")
    with ReplayJudge(rows, adversarial) as judge:
        assert run_judge(tmp_path / "vlrb", tmp_path / "out", judge.url) == 0
    assert len(judge.log) == len(rows) == 47
    expected = official_cal(judge.log, rows, k=1)
    got = _metrics(tmp_path / "out")
    assert_same(got, expected)
    assert got["excluded"] == sum(a is None for _, _, a in judge.log) == 9   # only the unreadable ones
    # the generation default the spec declares reached the wire: one greedy sample of up to 2048 tokens
    assert {(b["max_tokens"], b["temperature"], b["top_p"], "seed" in b) for b in judge.bodies} == {(2048, 0.0, 1.0, False)}
    # rescore recomputes it from the stored samples; a stored answer changed is caught
    assert main(["rescore", str(tmp_path / "out" / MODEL)]) == 0
    path = tmp_path / "out" / MODEL / "vl-rewardbench" / "samples.jsonl"
    recs = [json.loads(line) for line in path.read_text().splitlines()]
    target = next(r for r in recs if r["extra"]["judge_samples"][0]["answer"] == 3)
    target["extra"]["judge_samples"][0]["answer"] = target["extra"]["judge_samples"][0]["order"].index(
        target["rankings"].index(2)) + 1                                      # now it names the rejected one
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    assert main(["rescore", str(tmp_path / "out" / MODEL)]) == 1


def test_vlrb_answer_3_before(samples_dir, tmp_path, monkeypatch):
    """The same script under the previous protocol: 'Answer 3' and 'Answer 0' were left out."""
    rows = build_vlrb(samples_dir, tmp_path / "vlrb")
    with ReplayJudge(rows, adversarial) as judge:
        assert run_before(monkeypatch, tmp_path / "vlrb", tmp_path / "out", judge.url) == 0
    before = _metrics(tmp_path / "out")
    assert_same(before, previous_rule(judge.log, rows, k=1))
    after = official_cal(judge.log, rows, k=1)
    named = Counter(a for _, _, a in judge.log)
    assert before["excluded"] == named[None] + named[3] + named[0] and after["excluded"] == named[None]
    assert after["macro"] > before["macro"] + 0.1
    print(f"adversarial k=1: macro before {100 * before['macro']:.1f}, official {100 * after['macro']:.1f}")


# ---------------------------------------------------------------- VL-RewardBench, k = 5, a position-biased judge
def _orders_seen(log) -> dict[int, set[int]]:
    seen: dict[int, set[int]] = defaultdict(set)
    for row, chosen_pos, _ in log:
        seen[row].add(chosen_pos)
    return seen


def test_vlrb_fresh_order_per_sample(samples_dir, tmp_path):
    rows = build_vlrb(samples_dir, tmp_path / "vlrb")
    with ReplayJudge(rows, position_biased) as judge:
        assert run_judge(tmp_path / "vlrb", tmp_path / "out", judge.url, "--model-arg", "samples=5") == 0
    assert len(judge.log) == 5 * 47
    got = _metrics(tmp_path / "out")
    assert_same(got, official_cal(judge.log, rows, k=5))
    assert all(b["temperature"] == 0.2 and b["top_p"] == 0.2 and b["max_tokens"] == 2048 for b in judge.bodies)
    assert sum(len(s) == 2 for s in _orders_seen(judge.log).values()) >= 40   # both orders within one item
    # each record holds its 5 samples (order over original indices, answer as named): the server's log again
    by_row: dict[int, Counter] = defaultdict(Counter)
    for row, chosen_pos, answer in judge.log:
        by_row[row][chosen_pos, answer] += 1
    recs = samples(tmp_path / "out", MODEL, "vl-rewardbench")
    stored = Counter()
    for r in recs:
        gold = r["rankings"].index(1)
        stored[frozenset(Counter((s["order"].index(gold) + 1, s["answer"]) for s in r["extra"]["judge_samples"])
                         .items())] += 1
    assert stored == Counter(frozenset(c.items()) for c in by_row.values())
    assert main(["rescore", str(tmp_path / "out" / MODEL)]) == 0


def test_vlrb_one_order_for_all_k_before(samples_dir, tmp_path, monkeypatch):
    """The same judge and sample seeds with one order for all 5 samples: its bias lands on one response."""
    rows = build_vlrb(samples_dir, tmp_path / "vlrb")
    with ReplayJudge(rows, position_biased) as judge:
        assert run_before(monkeypatch, tmp_path / "vlrb", tmp_path / "out", judge.url, "--model-arg", "samples=5") == 0
    before = _metrics(tmp_path / "out")
    assert_same(before, previous_rule(judge.log, rows, k=5))
    assert all(len(s) == 1 for s in _orders_seen(judge.log).values())
    with ReplayJudge(rows, position_biased) as fresh:
        assert run_judge(tmp_path / "vlrb", tmp_path / "fresh", fresh.url, "--model-arg", "samples=5") == 0
    after = _metrics(tmp_path / "fresh")
    assert_same(after, official_cal(fresh.log, rows, k=5))
    assert after["macro"] > before["macro"] + 0.05
    print(f"position-biased k=5: macro before {100 * before['macro']:.1f}, official {100 * after['macro']:.1f}; "
          f"accuracy {before['accuracy']:.3f} -> {after['accuracy']:.3f}")


# ---------------------------------------------------------------- the rule and the orders, directly
@pytest.mark.parametrize("answers, orders, expected", [
    ([3], [[0, 1]], 1.0),                      # out of range: not the rejected position, so it agrees
    ([0], [[1, 0]], 1.0),
    ([2], [[0, 1]], 0.0),                      # names the rejected response (original index 1)
    ([2], [[1, 0]], 1.0),                      # the same number in the other order names the chosen one
    ([None], [[0, 1]], None),
    ([1, 2, None], [[0, 1], [0, 1], [0, 1]], None),     # 1 agree, 1 reject, 1 unreadable: no majority
    ([1, 3, None], [[0, 1], [1, 0], [0, 1]], 1.0),      # agree 2 of 3 (the unreadable one counts toward k)
    ([2, 1, None, None], [[0, 1], [1, 0], [0, 1], [0, 1]], None),  # reject 2 of 4 is not > k/2
])
def test_agree_unless_rejected(answers, orders, expected):
    samples = [{"order": o, "answer": a} for o, a in zip(orders, answers)]
    assert agree_unless_rejected((1, 2), samples) == expected


def test_sample_orders_fresh_per_sample_and_deterministic():
    vlrb = ScoringRequest(prompt="q", responses=("a", "b"), item_id="item-1", benchmark="vl-rewardbench")
    orders = sample_orders(vlrb, 10, seed=3)
    assert orders[0] == (0, 1) and set(orders) == {(0, 1), (1, 0)}    # sample 0: the evaluator's order
    assert sample_orders(vlrb, 10, seed=3) == orders and sample_orders(vlrb, 10, seed=4) != orders
    assert sample_orders(replace(vlrb, item_id="item-2"), 10, seed=3) != orders
    other = replace(vlrb, benchmark="multimodal-rewardbench")            # judge_protocol 'vote'
    assert sample_orders(other, 10, seed=3) == [(0, 1)] * 10


def test_malformed_samples_from_an_adapter_fail_the_item(tmp_path):
    from mr2bench.judges.verdict import samples_in_original

    assert samples_in_original([{"order": [1, 0], "answer": 3}], (1, 0)) == [{"order": [0, 1], "answer": 3}]
    for bad in ({"order": [0, 0], "answer": 1}, {"order": [0, 1], "answer": "1"}, {"order": None}, "x"):
        with pytest.raises(DataError, match="field 'samples'"):
            samples_in_original([bad], (0, 1))


# ---------------------------------------------------------------- API request options and the presets
class BodyServer(ReplayJudge):
    """Records each body and answers 'Answer 1' (the rows are irrelevant here)."""

    def __init__(self) -> None:
        super().__init__([], lambda *a: 1)

    def respond(self, body: dict) -> tuple[int, dict]:
        with self.lock:
            self.bodies.append(body)
        return 200, {"choices": [{"message": {"content": "Overall Judgment: Answer 1 is better."}}], "usage": {}}


def _score_one(url: str, model: str, args: dict, benchmark: str, key_env: str = KEY_ENV) -> dict:
    a = load_adapter(model, AdapterOptions(api_base=url, api_key_env=key_env, extra=args))
    a.score(ScoringRequest(prompt="q", responses=("x", "y"), item_id="i", benchmark=benchmark))
    return a


@pytest.mark.parametrize("name, expected", [
    ("gpt-5", {"model": "gpt-5", "max_completion_tokens": 16384, "reasoning_effort": "medium"}),
    ("claude-sonnet-4.5", {"model": "claude-sonnet-4-5", "max_tokens": 4096, "temperature": 0.0}),
    ("gemini-2.5-pro", {"model": "gemini-2.5-pro", "max_tokens": 16384, "temperature": 0.0, "top_p": 1.0}),
])
@pytest.mark.parametrize("benchmark", ["vl-rewardbench", "mr2bench-image"])
def test_api_preset_request_body(name, expected, benchmark, monkeypatch):
    """The exact body each preset sends (its max_tokens wins over VL-RewardBench's declared 2048)."""
    from mr2bench.published.api_presets import get_preset

    preset = get_preset(name)
    assert preset.request_gaps == ()
    monkeypatch.setenv(preset.api_key_env, "sk-preset")
    with BodyServer() as server:
        _score_one(server.url, preset.model, dict(preset.model_args), benchmark, preset.api_key_env)
    (body,) = server.bodies
    assert {k: v for k, v in body.items() if k != "messages"} == expected


def test_request_options_with_k_samples_and_defaults():
    with BodyServer() as server:
        _score_one(server.url, "api:m", {"samples": "2", "omit": "top_p", "max_tokens_field": "max_completion_tokens"},
              "vl-rewardbench")
        _score_one(server.url, "api:m", {}, "mr2bench-image")
    bodies = [{k: v for k, v in b.items() if k not in ("messages", "seed")} for b in server.bodies]
    assert bodies[:2] == [{"model": "m", "max_completion_tokens": 2048, "temperature": 0.2}] * 2
    assert all("seed" in b for b in server.bodies[:2])
    assert bodies[2] == {"model": "m", "max_tokens": 1024, "temperature": 0.0, "top_p": 1.0}   # no defaults there


@pytest.mark.parametrize("args, message", [
    ({"max_tokens_field": "max_new_tokens"}, "max_tokens_field"),
    ({"reasoning_effort": "extreme"}, "reasoning_effort"),
    ({"omit": "top_p,seed"}, "cannot omit"),
    ({"samples": "3", "temperature": "0"}, "temperature > 0"),
])
def test_request_option_errors(args, message):
    with pytest.raises(DataError, match=message):
        judge_config(args, kind="api")
    with pytest.raises(DataError, match="unknown --model-arg 'omit' for judge:"):
        judge_config({"omit": "top_p"}, kind="judge")
    judge_config({"samples": "3", "temperature": "0", "omit": "temperature"}, kind="api")  # provider default T


def test_parsed_answer_keeps_out_of_range_numbers():
    from mr2bench.judges.parse import parse_vlrb, parsed_answer

    text = "Reasoning...\n**Overall Judgment**: Answer 3 is better."
    assert parse_vlrb(text, 2) is None and parsed_answer("vlrb", text, 2) == 3   # vote: unreadable; cal.py: 3
    assert parsed_answer("vlrb", "no verdict here", 2) is None
    assert parsed_answer("mmrb", "[[B]]", 2) == 2 and parsed_answer("mmrb", "[[C]]", 2) is None
