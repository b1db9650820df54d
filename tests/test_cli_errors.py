"""Common mistakes on the evaluate-model command line are one line naming the flag and the fix."""
from __future__ import annotations

import json

import pytest

from mr2bench.cli import main


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "img"
    assert main(["build-benchmark", "image", "--out", str(out)]) == 0
    return out


def _eval(build, out, *extra):
    return main(["evaluate-model", "--model", "length", "--benchmarks", "mr2bench-image", "--data-dir", str(build),
                 "--out", str(out), "--no-progress", *extra])


@pytest.mark.parametrize("flag,value,expected", [("--dtype", "xx", "unknown dtype 'xx'"),
                                                 ("--device", "tpu9", "unknown device 'tpu9'"),
                                                 ("--limit", "0", "must be >= 1")])
def test_bad_flag_values_are_refused_at_parse_time(build, tmp_path, capsys, flag, value, expected):
    with pytest.raises(SystemExit) as exit_:
        _eval(build, tmp_path / "o", flag, value)
    assert exit_.value.code == 2 and expected in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_out_or_data_dir_that_is_a_file_and_unknown_model_args(build, tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert _eval(build, afile) == 2
    assert "is a file; --out takes a folder" in capsys.readouterr().err
    assert main(["evaluate-model", "--model", "length", "--benchmarks", "mr2bench-image", "--data-dir", str(afile),
                 "--out", str(tmp_path / "o")]) == 2
    assert "is a file; --data-dir takes the benchmark's folder" in capsys.readouterr().err
    assert _eval(build, tmp_path / "o", "--model-arg", "temprature=0.2") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "length takes no --model-arg; got temprature" in err[0]


def test_dtype_alias_model_name_and_runtime_are_recorded(build, tmp_path, capsys):
    assert _eval(build, tmp_path / "o", "--dtype", "bf16", "--model-name", "len-rm", "--limit", "5") == 0
    out = capsys.readouterr().out
    res = json.loads((tmp_path / "o" / "len-rm" / "mr2bench-image" / "results.json").read_text())
    assert res["runtime"] == {"device": "auto", "dtype": "bfloat16", "batch_size": 1, "num_frames": 16, "processes": 1}
    assert res["model_name"] == "len-rm" and res["model"] == "length" and res["synthetic"] is True
    assert any(line.startswith("len-rm ") and "MR2B-I" not in line for line in out.splitlines())  # the table
    assert main(["rescore", str(tmp_path / "o")]) == 0   # OUT itself: every model, every benchmark
    assert "len-rm/mr2bench-image: ok" in capsys.readouterr().out


def test_help_names_every_benchmark_and_model_kind(capsys):
    from mr2bench.adapters import MODEL_KINDS
    from mr2bench.registry import benchmark_names

    with pytest.raises(SystemExit):
        main(["evaluate-model", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for name in benchmark_names():
        assert name in text.replace("- ", "-")
    for kind in MODEL_KINDS.names():
        assert kind in text
