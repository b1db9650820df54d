"""Every command's --help works and shows examples; start-up does not import the heavy stack."""
from __future__ import annotations

import subprocess
import sys

import pytest

from mr2bench import __version__
from mr2bench.cli import COMMANDS, build_parser, main


def test_top_level_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for name in ("build-benchmark", "evaluate-model", "publish"):
        assert name in out


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_command_help_has_examples(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "example" in out.lower()
    assert "--log-level" in out


def test_version(capsys):
    with pytest.raises(SystemExit):
        main(["--version"])
    assert __version__ in capsys.readouterr().out


def test_console_scripts_share_parsers():
    assert build_parser("build-benchmark").prog == "build-benchmark"
    assert build_parser("evaluate-model").prog == "evaluate-model"


def test_startup_imports_no_heavy_modules():
    code = ("import sys; from mr2bench.cli import build_parser; build_parser(); "
            "print(','.join(m for m in ('torch', 'transformers', 'datasets') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == ""


def test_debug_log_level_is_ours_not_matplotlibs(tmp_path):
    """--log-level debug shows mr2bench's stage lines; third-party loggers (matplotlib's font scan) stay quiet."""
    res = subprocess.run([sys.executable, "-m", "mr2bench", "build-benchmark", "image", "--out", str(tmp_path / "b"),
                          "--log-level", "debug"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    debug = [ln for ln in res.stderr.splitlines() if " DEBUG " in ln]
    assert any("mr2bench.builders.pipeline: stage denoise" in ln for ln in debug)
    assert not [ln for ln in debug if not ln.split(" DEBUG ", 1)[1].startswith("mr2bench")]
