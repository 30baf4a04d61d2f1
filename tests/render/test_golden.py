"""Outputs byte-identical to the ones recorded before the stage-package layout (issue 14).

``golden/render/*.json`` are real reports the render, view, budget, comment and review tests fed
the renderers, each with the Markdown or text the flat-layout code produced; ``golden/demo-*`` is
`mcx-review demo` (report, comment, terminal text). A change that means to alter an output
re-records the files it changes and says so in its commit.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from mcx_review.render.markdown import render_markdown
from mcx_review.render.text import render_text

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
CASES = sorted((GOLDEN / "render").glob("*.json"))


def test_there_are_cases_of_both_renderers():
    kinds = {json.loads(p.read_text(encoding="utf-8"))["kind"] for p in CASES}
    assert kinds == {"md", "text"} and len(CASES) >= 40


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_render_is_byte_identical(path):
    case = json.loads(path.read_text(encoding="utf-8"))
    render = render_markdown if case["kind"] == "md" else render_text
    assert render(case["report"], **case["kwargs"]) == case["out"]


def test_demo_report_renders_as_recorded():
    report = json.loads((GOLDEN / "demo-report.json").read_text(encoding="utf-8"))
    assert render_markdown(report) == (GOLDEN / "demo-comment.md").read_text(encoding="utf-8")
    text = render_text(report, color=False, width=100, wrap=False)
    assert text == (GOLDEN / "demo-text.txt").read_text(encoding="utf-8")


def _without_revisions(report: dict) -> dict:
    """The demo's commits carry the time they were made: SHAs differ from run to run."""
    out = dict(report)
    for side in ("base", "head"):
        out[side] = {k: v for k, v in report[side].items() if k != "sha"}
    if report.get("settings"):  # the base revision's settings applied: its SHA too
        out["settings"] = {k: v for k, v in report["settings"].items() if k != "sha"}
    return out


def test_demo_report_is_byte_identical(tmp_path, monkeypatch):
    from mcx_review.cli.demo import run_demo

    monkeypatch.chdir(tmp_path)
    assert run_demo(tmp_path) == 0
    got = json.loads((tmp_path / "mcx-review-demo.json").read_text(encoding="utf-8"))
    want = json.loads((GOLDEN / "demo-report.json").read_text(encoding="utf-8"))
    assert _without_revisions(got) == _without_revisions(want)
    sha = re.compile(r"\b[0-9a-f]{7}\b")
    got_md = sha.sub("SHA", (tmp_path / "mcx-review-demo.md").read_text(encoding="utf-8"))
    assert got_md == sha.sub("SHA", (GOLDEN / "demo-comment.md").read_text(encoding="utf-8"))
