from __future__ import annotations

import dataclasses

import pytest

from mr2bench.adapters import MODEL_KINDS, load_adapter, model_slug, split_spec
from mr2bench.registry import BenchmarkSpec, Registry, UnknownNameError, benchmark_names, get_benchmark
from mr2bench.schema import DataError

SPEC = dict(name="toy", version="1.0", hub_id="org/toy", split="test", primary_metric="accuracy",
            aggregation="micro", tie_policy="strict", parse_policy="wrong", order_policy="shuffle",
            loader="mod:load")


def test_registry_rejects_duplicates_and_suggests():
    reg: Registry[int] = Registry("thing")
    reg.register("vl-rewardbench", 1)
    reg.register("videorewardbench", 2)
    with pytest.raises(ValueError, match="already registered"):
        reg.register("vl-rewardbench", 3)
    with pytest.raises(UnknownNameError) as err:
        reg.get("vl-rewardbenc")
    msg = str(err.value)
    assert "Did you mean vl-rewardbench" in msg and "Known: videorewardbench, vl-rewardbench" in msg
    assert reg.names() == ["videorewardbench", "vl-rewardbench"] and "videorewardbench" in reg


def test_spec_is_frozen_and_validated():
    spec = BenchmarkSpec(**SPEC)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.version = "2"  # type: ignore[misc]
    assert spec.headline_metric == "accuracy"
    for field, bad in [("tie_policy", "coin"), ("primary_metric", "f1"), ("loader", "nocolon"),
                       ("hub_id", ""), ("order_policy", "random")]:
        with pytest.raises(DataError) as err:
            BenchmarkSpec(**{**SPEC, field: bad})
        assert err.value.field == field


def test_bundled_benchmarks_registered():
    names = benchmark_names()
    for expected in ("mr2bench-image", "mr2bench-video", "vl-rewardbench", "multimodal-rewardbench",
                     "mm-rlhf-rewardbench", "videorewardbench"):
        assert expected in names
    with pytest.raises(UnknownNameError, match="Did you mean mm-rlhf-rewardbench"):
        get_benchmark("mm-rlhf-rewardbnch")


def test_model_kinds():
    assert split_spec("seqcls:org/m") == ("seqcls", "org/m") and split_spec("length") == ("length", "")
    assert {"random", "length", "python", "seqcls", "mr2", "mr2-single", "judge", "api"} <= set(MODEL_KINDS.names())
    with pytest.raises(DataError, match="Did you mean length") as err:  # the CLI's one line, not a traceback
        load_adapter("lenght")
    assert err.value.field == "--model"
    assert model_slug("seqcls:org/m") == "seqcls__org__m"


def test_unloadable_model_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="cannot load model 'seqcls:.*no-such-model'") as err:
        load_adapter(f"seqcls:{tmp_path / 'no-such-model'}")
    assert err.value.field == "--model"
