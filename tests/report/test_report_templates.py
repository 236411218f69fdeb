"""The report page from its Jinja2 templates: the same page as before (text, tags and section order, compared
with fixtures rendered by the string-built page it replaced), autoescaped, and its templates shipped."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import tomllib

sys.path.insert(0, str(Path(__file__).resolve().parent))
import page_text  # noqa: E402
import planted_runs  # noqa: E402

from robustperf.report import build_report  # noqa: E402
from robustperf.report.html import TEMPLATES, templates  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", sorted(page_text.PAGES))
def test_the_page_holds_what_the_string_built_page_held(name: str, tmp_path: Path) -> None:
    expected = (page_text.FIXTURES / f"{name}.html").read_text()
    page = page_text.PAGES[name](tmp_path)
    assert page_text.html_events(page) == page_text.html_events(expected)


def test_strings_are_escaped_and_fragments_are_not(tmp_path: Path) -> None:
    assert templates().autoescape is True
    runs = tmp_path / "<script>alert('dir')</script>"
    planted_runs.write_planted_runs(runs, widths=(4, 8), n_trains=(300, 600), failed=0)
    page = build_report(runs, tmp_path / "out", title="<script>alert(1)</script>", bootstrap=0).read_text()
    assert "<script>" not in page
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") == 2  # <title> and <h1>
    assert "<code>" + str(tmp_path / "&lt;script&gt;alert(&#39;dir&#39;)&lt;/script&gt;") + "</code>" in page
    assert "<table" in page and "<svg" in page and "<div class=\"summary\"><p>" in page  # Markup stays markup


def test_the_templates_ship_as_package_data() -> None:
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["robustperf"]
    files = sorted(p.name for p in TEMPLATES.iterdir())
    assert files == ["figure.html", "report.css", "report.html", "run_counts.html"]
    for name in files:
        assert any(Path(f"report/templates/{name}").match(pattern.removeprefix("**/")) for pattern in patterns), name
