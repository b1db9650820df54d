"""`mr2bench report`: a self-contained HTML page with the results, the plots and an item browser."""
from __future__ import annotations

import argparse
from pathlib import Path

from mr2bench.cli import add_shared

HELP = """Write one self-contained static HTML page (no server, no network) for an evaluation or a build.

For evaluate-model's OUT: the paper's table with intervals, the significance of every gap, the plots and an
item browser (filter by benchmark, category, right/wrong per model; search ids and text), each item with
its prompt, media thumbnails, the responses in the order shown, the gold ranking and every model's scores.
For a build-benchmark folder: the build's counts, every question's ranking with intervals, the sampled
items and the report figures. Opens in any browser; the filter state can be set from the URL fragment."""
EPILOG = """examples:
  mr2bench report runs/eval                         # -> runs/eval/report.html
  mr2bench report runs/eval --data-dir mr2bench-video=runs/demo-video
  mr2bench report runs/demo-video --output /tmp/build.html"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", metavar="DIR", help="evaluate-model's --out, or a build-benchmark folder")
    parser.add_argument("--output", metavar="FILE", default=None, help="the HTML file (default: DIR/report.html)")
    parser.add_argument("--data-dir", action="append", default=[], metavar="BENCH=DIR",
                        help="where a benchmark's items are, for their text and media (default: the folder "
                             "the run recorded)")
    parser.add_argument("--max-items", type=int, default=2000, metavar="N",
                        help="items per benchmark in the browser (default 2000)")
    add_shared(parser, "log-level")


def run(args: argparse.Namespace) -> int:
    from mr2bench.report import write_report
    from mr2bench.schema import DataError

    if args.max_items < 1:
        raise DataError("must be >= 1", field="--max-items")
    data_dirs = {}
    for value in args.data_dir:
        name, sep, folder = value.partition("=")
        if not sep or not name or not folder:
            raise DataError(f"expected BENCH=DIR, got {value!r}", field="--data-dir")
        data_dirs[name] = Path(folder)
    target = write_report(Path(args.path), Path(args.output) if args.output else None, data_dirs, args.max_items)
    print(f"wrote {target}")
    return 0
