"""A report page with what changes from one build to the next taken out: the figures' SVG bodies (matplotlib's
ids), the generation time and the runs directory's path. What is left is the page's text and structure."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import planted_runs

from robustperf.report import build_report
from robustperf.sweep import study_from_dict

STUDY = {"name": "planted", "base": {"name": "planted", "optim": {"epochs": 2}},
         "grid": {"model.kwargs.width": [4, 8, 16], "data.n_train": [300, 600, 1200]},
         "fit": {"bootstrap": 0}, "forecast": {"robust_acc_targets": [0.7], "flops_budgets": [1e13]}}


def normalised(page: str, runs_dir: Path) -> str:
    page = re.sub(r"<svg[^>]*>.*?</svg>", "<svg/>", page, flags=re.S)
    page = re.sub(r"Generated \d{4}-\d\d-\d\d \d\d:\d\d UTC", "Generated TIME", page)
    return page.replace(str(runs_dir), "RUNS_DIR")


def planted_page(root: Path) -> str:
    """The report of a 3 x 3 planted grid (one failed run), normalised."""
    runs = root / "runs"
    planted_runs.write_planted_runs(runs, widths=(4, 8, 16), n_trains=(300, 600, 1200))
    path = build_report(runs, root / "report", study=study_from_dict(STUDY))
    return normalised(path.read_text(), runs)


def tuned_page(root: Path) -> str:
    """The report of test_tuning_cost's study (a tuning-cost section before the figures), normalised."""
    import test_tuning_cost

    runs = root / "runs"
    test_tuning_cost._write_runs(runs)
    path = build_report(test_tuning_cost._study(runs_dir=str(runs)), root / "report")
    return normalised(path.read_text(), runs)


PAGES = {"planted": planted_page, "tuned": tuned_page}
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "report_page"

class _Events(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.events: list[tuple[Any, ...]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.events.append(("start", tag, tuple(attrs)))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.events.append(("empty", tag, tuple(attrs)))

    def handle_endtag(self, tag: str) -> None:
        self.events.append(("end", tag))

    def handle_data(self, data: str) -> None:
        if self.events and self.events[-1][0] == "data":
            self.events[-1] = ("data", self.events[-1][1] + data)
        else:
            self.events.append(("data", data))

    def handle_decl(self, decl: str) -> None:
        self.events.append(("decl", decl))


def html_events(page: str) -> list[tuple[Any, ...]]:
    """The page as parsed: tags with their attributes and the text between them, character references decoded
    (``&#x27;`` and ``&#39;`` are the same apostrophe)."""
    parser = _Events()
    parser.feed(page)
    parser.close()
    return parser.events


if __name__ == "__main__":  # python tests/report/page_text.py: write the fixtures (only on purpose)
    import sys
    import tempfile

    for name, page in PAGES.items():
        with tempfile.TemporaryDirectory() as tmp:
            text = page(Path(tmp))
        target = FIXTURES / f"{name}.html"
        target.write_text(text)
        sys.stdout.write(f"wrote {target} ({len(text)} characters)\n")
