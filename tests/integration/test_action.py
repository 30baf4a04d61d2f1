"""action.yml and action/comment/action.yml run as a runner would: inputs and contexts substituted
into each step's env, one `$GITHUB_OUTPUT` file per step, a real event JSON, the GitHub API
stand-in as `GITHUB_API_URL`, bash. `uses:` steps (setup-python, cache) are skipped.

The install steps really run pip, offline (``PIP_NO_INDEX``): a throw-away venv sees the project
venv's site-packages through a .pth file, so torch & co are "already satisfied" and mcx-review is
built from a copy of this tree (``PIP_NO_BUILD_ISOLATION=0`` uses the installed setuptools).
The project venv is never written to. The example workflows (action/workflows and the READMEs')
are checked against the actions and run job by job as written (run_job).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any, Dict, List, Mapping, Tuple

import pytest
import yaml

from github_stub import GitHubStub, parse_outputs
from mcx_review.github.comment import parse_marker
from mcx_review.report.validate import load_validated
from helpers import ConfigRepo

ROOT = Path(__file__).resolve().parents[2]
REPO = "octo/models"
EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


# -- a tiny runner ---------------------------------------------------------------------------------

def evaluate(expr: str, ctx: Mapping[str, Any]) -> str:
    """The expressions our actions use: context paths, 'literals', `a || b` and `a == b`."""
    if "==" in expr:
        left, right = (evaluate(side.strip(), ctx) for side in expr.split("==", 1))
        return "true" if left == right else "false"
    for part in (p.strip() for p in expr.split("||")):
        if part.startswith("'") and part.endswith("'"):
            value: Any = part[1:-1]
        elif re.fullmatch(r"[A-Za-z_][\w-]*(\.[\w-]+)*", part):
            value = ctx
            for key in part.split("."):
                value = value.get(key, "") if isinstance(value, dict) else ""
        else:
            raise AssertionError(f"the test runner does not understand ${{{{ {expr} }}}}")
        if value not in ("", None):
            return str(value)
    return ""


def substitute(text: Any, ctx: Mapping[str, Any]) -> str:
    return EXPR.sub(lambda m: evaluate(m.group(1), ctx), str(text))


def load_action(path: Path) -> Dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def run_action(path: Path, inputs: Mapping[str, str], env: Mapping[str, str], workspace: Path,
               github: Mapping[str, Any]) -> Tuple[int, Dict[str, str], str]:
    """Run a composite action's steps; (exit code of the first failing step or 0, outputs, log)."""
    action = load_action(path)
    given = {k: v for k, v in inputs.items()}
    unknown = set(given) - set(action["inputs"])
    assert not unknown, f"inputs not declared in {path}: {unknown}"
    ctx: Dict[str, Any] = {"github": {**github, "action_path": str(path.parent)},
                           "runner": {"os": "Linux", "temp": env["RUNNER_TEMP"]}, "steps": {}}
    ctx["inputs"] = {name: given.get(name, substitute(spec.get("default", ""), ctx))
                     for name, spec in action["inputs"].items()}
    log: List[str] = []
    code = 0
    for i, step in enumerate(action["runs"]["steps"]):
        if "uses" in step:
            log.append(f"skip uses: {step['uses']}")
            continue
        assert "if" not in step, "run steps keep their conditions in bash (the runner here has no if:)"
        out_file = Path(env["RUNNER_TEMP"]) / f"output-{i}"
        out_file.write_text("")
        step_env = {**env, "GITHUB_OUTPUT": str(out_file), "GITHUB_ACTION_PATH": str(path.parent)}
        step_env.update({k: substitute(v, ctx) for k, v in (step.get("env") or {}).items()})
        cwd = workspace / substitute(step.get("working-directory", "."), ctx)
        script = Path(env["RUNNER_TEMP"]) / f"step-{i}.sh"
        script.write_text(substitute(step["run"], ctx))
        proc = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)], cwd=cwd,
                              env=step_env, capture_output=True, text=True, timeout=900)
        log.append(f"== {step.get('name')} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        if "id" in step:
            ctx["steps"][step["id"]] = {"outputs": parse_outputs(out_file.read_text())}
        if proc.returncode:
            code = proc.returncode
            break
    outputs = {name: substitute(spec.get("value", ""), ctx) for name, spec in (action.get("outputs") or {}).items()}
    return code, outputs, "\n".join(log)


# -- fixtures ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def action_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This tree as the runner checks the action out (only what pip and the steps need)."""
    dest = tmp_path_factory.mktemp("action") / "mcx-review"
    dest.mkdir()
    for name in ("pyproject.toml", "README.md", "action.yml", "LICENSE"):
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, dest / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "mcx_review", dest / "mcx_review", ignore=ignore)
    shutil.copytree(ROOT / "action", dest / "action", ignore=ignore)
    return dest


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv whose `python` sees the project venv's packages (read-only) through a .pth."""
    root = tmp_path_factory.mktemp("venv") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    purelib = Path(subprocess.run([str(root / "bin" / "python"), "-c",
                                   "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                  capture_output=True, text=True, check=True).stdout.strip())
    (purelib / "project-venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return root


def runner_env(tmp: Path, venv: Path, gh: GitHubStub, event: Dict[str, Any],
               event_name: str = "pull_request") -> Dict[str, str]:
    temp = tmp / "runner-temp"
    temp.mkdir(exist_ok=True)
    (tmp / "event.json").write_text(json.dumps(event))
    keep = {k: v for k, v in os.environ.items() if k in ("HOME", "LANG", "LC_ALL", "TMPDIR", "XDG_CACHE_HOME")}
    return {**keep, "PATH": f"{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin", "CI": "true",
            "GITHUB_ACTIONS": "true", "GITHUB_REPOSITORY": REPO, "GITHUB_API_URL": gh.url,
            "GITHUB_EVENT_PATH": str(tmp / "event.json"), "GITHUB_STEP_SUMMARY": str(tmp / "summary.md"),
            "GITHUB_EVENT_NAME": event_name,
            "GITHUB_WORKSPACE": str(tmp / "ws"), "RUNNER_TEMP": str(temp), "RUNNER_OS": "Linux",
            "PIP_NO_INDEX": "1", "PIP_NO_BUILD_ISOLATION": "0", "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "MCX_REVIEW_GITHUB_BACKOFF": "0.01", "MCX_REVIEW_GITHUB_WRITE_PAUSE": "0"}


def shipped_report(head_sha: str) -> Dict[str, Any]:
    def stats(flops: int, params: int) -> Dict[str, Any]:
        return {"input_shape": [3, 224, 224], "forward": "extract_feat", "flops": flops, "params": params,
                "activations": 11114000, "unsupported_ops": {}, "uncalled_modules": [],
                "modules": {"backbone": {"flops": flops, "params": params - 2049000, "activations": 11114000,
                                         "called": True},
                            "head": {"flops": 0, "params": 2049000, "activations": 0, "called": False}}}
    base, head = stats(4108970000, 25557032), stats(7831658000, 44549160)
    return {"schema": "mcx-review/1", "tool": {"mcx-review": "0.1.0"},
            "base": {"rev": "main", "sha": "1" * 40}, "head": {"rev": "HEAD", "sha": head_sha, "kind": "commit"},
            "shape": None,
            "configs": [{"path": "configs/resnet/resnet50_8xb32_in1k.py", "old_path": None, "status": "changed",
                         "reasons": ["changed"], "base": base, "head": head,
                         "delta": {m: head[m] - base[m] for m in ("flops", "params", "activations")},
                         "errors": [], "warnings": [], "budgets": []}]}


# -- the full action ----------------------------------------------------------------------------------

def test_action_reviews_comments_and_sets_outputs(tmp_path, action_copy, venv):
    repo = ConfigRepo(tmp_path / "ws", pkg="mmcls")
    base_sha = repo.repo.head.commit.hexsha
    repo.branch("deeper")
    repo.edit("configs/resnet/resnet18_8xb32_in1k.py", "model = dict(backbone=dict(depth=34))")
    head_sha = repo.commit("resnet18 -> 34 layers")
    # what a pull_request checkout holds: a merge commit, not the PR head
    repo.checkout("main")
    repo.repo.git.merge("--no-ff", "-m", "Merge deeper into main", "deeper")
    event = {"action": "synchronize", "number": 7,
             "pull_request": {"number": 7, "head": {"sha": head_sha}, "base": {"sha": base_sha}}}
    budgets = tmp_path / "budgets.yaml"
    budgets.write_text("budgets:\n  - metric: flops\n    limit: '+5%'\n    level: fail\n")
    with GitHubStub(REPO) as gh:
        gh.add_pull(7, head_sha)
        env = runner_env(tmp_path, venv, gh, event)
        inputs = {"requirements": "mmcls==1.0.0rc6", "configs": "configs/resnet/*.py", "token": "user-token",
                  "cache-dir": str(tmp_path / "cache"), "python-version": "3.11"}
        github = {"token": "actions-token", "sha": repo.repo.head.commit.hexsha, "workspace": str(tmp_path / "ws")}
        code, outputs, log = run_action(action_copy / "action.yml", inputs, env, tmp_path / "ws", github)
        assert code == 0, log
        assert outputs["changed"] == "true" and outputs["budget-exceeded"] == "false", log
        assert outputs["exit-code"] == "0"
        report = load_validated(outputs["report-json"])
        assert [c["path"] for c in report["configs"] if c["status"] != "unchanged"] == \
            ["configs/resnet/resnet18_8xb32_in1k.py"], log
        assert report["head"]["sha"] == head_sha  # the PR head, not the merge commit
        md = Path(outputs["report-markdown"]).read_text()
        assert "resnet18_8xb32_in1k.py" in md and md.strip() in (tmp_path / "summary.md").read_text()
        [posted] = [c["body"] for c in gh.comments[7]]
        assert parse_marker(posted) == ("default", head_sha)
        assert md.strip()[:200].replace("@", "") in posted.replace("@\u200d", "")

        # Again with a fail-level budget: the comment is still updated, then the action fails.
        inputs["settings"] = str(budgets)
        code, outputs, log = run_action(action_copy / "action.yml", inputs, env, tmp_path / "ws", github)
        assert code == 1, log
        assert outputs["budget-exceeded"] == "true" and outputs["exit-code"] == "1", log
        assert len(gh.comments[7]) == 1 and gh.comments[7][0]["body"] != posted
        assert [m for m, _ in gh.writes()] == ["POST", "PATCH"]


def test_action_with_comment_off_and_a_git_error(tmp_path, action_copy, venv):
    repo = ConfigRepo(tmp_path / "ws", pkg=None)
    repo.write("configs/a.py", "x = 1\n")
    repo.commit("one")
    with GitHubStub(REPO) as gh:
        env = runner_env(tmp_path, venv, gh, {"before": "0" * 40})
        code, outputs, log = run_action(action_copy / "action.yml",
                                        {"base": "no-such-branch", "comment": "false", "torch": ""},
                                        env, tmp_path / "ws", {"token": "user-token"})
        assert code == 2, log
        assert outputs["exit-code"] == "2" and outputs["report-json"] == ""
        assert "no report to post" in log or "commenting is off" in log
        assert gh.requests == []


# -- the comment-only sub-action (workflow_run side of the fork-safe pair) --------------------------

def test_comment_action_finds_the_fork_pr_by_sha_and_refuses_bad_artifacts(tmp_path, action_copy, venv):
    fork_head = "f" * 40
    event = {"workflow_run": {"event": "pull_request", "head_sha": fork_head, "pull_requests": [],
                              "head_repository": {"full_name": "someone/models"}}}
    with GitHubStub(REPO) as gh:
        gh.add_pull(3, "3" * 40)
        gh.add_pull(8, fork_head, head_repo="someone/models")
        env = runner_env(tmp_path, venv, gh, event, "workflow_run")
        (tmp_path / "ws").mkdir()
        good = tmp_path / "artifact" / "report.json"
        good.parent.mkdir()
        good.write_text(json.dumps(shipped_report(fork_head)))
        inputs = {"report": str(good), "pr-from-sha": fork_head, "token": "actions-token"}
        action = action_copy / "action" / "comment" / "action.yml"
        code, _, log = run_action(action, inputs, env, tmp_path / "ws", {"token": "actions-token"})
        assert code == 0, log
        assert [parse_marker(b) for b in gh.bodies(8)] == [("default", fork_head)] and gh.bodies(3) == []
        assert "torch" not in subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "freeze", "--local"],
                                             capture_output=True, text=True).stdout

        tampered = shipped_report(fork_head)
        tampered["configs"][0]["path"] = "x" * 5000
        bad = tmp_path / "artifact" / "tampered.json"
        bad.write_text(json.dumps(tampered))
        gh.requests.clear()
        code, _, log = run_action(action, {**inputs, "report": str(bad)}, env, tmp_path / "ws", {"token": "x"})
        assert code == 1 and "tampered.json" in log and "longer than 1000" in log, log
        assert gh.requests == []

        big = tmp_path / "artifact" / "big.json"
        big.write_text(json.dumps(shipped_report(fork_head)) + " " * 2000)
        code, _, log = run_action(action, {**inputs, "report": str(big), "max-bytes": "1000"}, env,
                                  tmp_path / "ws", {"token": "x"})
        assert code == 1 and "limit" in log and gh.requests == [], log


def test_the_write_token_job_never_imports_from_the_workspace(tmp_path, action_copy, venv):
    """download-artifact without `path:` puts the artifact in the workspace, the directory every
    step starts in: a planted `pip/` or `mcx_review/` there must not run (python -m would put the
    current directory first on sys.path)."""
    head = "e" * 40
    ws = tmp_path / "ws"
    log = tmp_path / "planted.log"
    plant = f"import pathlib\npathlib.Path({str(log)!r}).open('a').write(__name__ + '\\n')\n"
    for pkg, modules in (("pip", ("__init__", "__main__")),
                         ("mcx_review", ("__init__", "__main__", "report_validate", "cli"))):
        for mod in modules:
            (ws / pkg).mkdir(parents=True, exist_ok=True)
            (ws / pkg / f"{mod}.py").write_text(plant)
    (ws / "report.json").write_text(json.dumps(shipped_report(head)))  # the artifact, as downloaded
    event = {"workflow_run": {"event": "pull_request", "head_sha": head, "head_branch": "feature",
                              "head_repository": {"full_name": "someone/models"}, "pull_requests": []}}
    with GitHubStub(REPO) as gh:
        gh.add_pull(4, head, head_repo="someone/models", head_branch="feature")
        env = runner_env(tmp_path, venv, gh, event, "workflow_run")
        code, _, out = run_action(action_copy / "action" / "comment" / "action.yml",
                                  {"report": "report.json", "token": "actions-token"}, env, ws,
                                  {"token": "actions-token"})
        assert code == 0, out
        assert not log.exists(), f"planted code ran: {log.read_text()}"
        assert [parse_marker(b) for b in gh.bodies(4)] == [("default", head)]


def test_the_action_refuses_pull_request_target(tmp_path, action_copy, venv):
    repo = ConfigRepo(tmp_path / "ws", pkg=None)
    repo.write("configs/a.py", "x = 1\n")
    repo.commit("one")
    with GitHubStub(REPO) as gh:
        env = runner_env(tmp_path, venv, gh, {"pull_request": {"number": 1}}, "pull_request_target")
        code, outputs, log = run_action(action_copy / "action.yml", {"torch": ""}, env, tmp_path / "ws",
                                        {"token": "actions-token", "event_name": "pull_request_target"})
        assert code == 1, log
        assert "refusing to run on pull_request_target" in log and "fork-safe pair" in log
        assert "Install" not in log, "nothing was installed or run"
        assert gh.requests == []


# -- the example workflows ----------------------------------------------------------------------------

ACTIONS = {"OWNER/REPO": ROOT / "action.yml",
           "OWNER/REPO/action/comment": ROOT / "action" / "comment" / "action.yml"}


def workflows() -> Dict[str, Dict[str, Any]]:
    return {p.name: yaml.safe_load(p.read_text()) for p in sorted((ROOT / "action" / "workflows").glob("*.yml"))}


def our_steps(wf: Dict[str, Any]) -> List[Tuple[str, Dict[str, Any]]]:
    found = []
    for job in wf["jobs"].values():
        for step in job["steps"]:
            uses = step.get("uses", "")
            if uses.split("@")[0] in ACTIONS:
                found.append((uses.split("@")[0], step))
    return found


def test_workflows_use_only_inputs_that_exist():
    flows = workflows()
    assert set(flows) >= {"mcx-review.yml", "mcx-review-pr.yml", "mcx-review-comment.yml",
                          "mcx-review-sharded.yml"}
    for name, wf in flows.items():
        steps = our_steps(wf)
        assert steps, f"{name} uses no mcx-review action"
        for action, step in steps:
            declared = load_action(ACTIONS[action])["inputs"]
            assert set(step.get("with", {})) <= set(declared), (name, set(step["with"]) - set(declared))
            required = {k for k, v in declared.items() if v.get("required")}
            assert required <= set(step.get("with", {})), (name, required)


def test_every_example_says_where_the_action_lives_the_same_way():
    """Our actions are always `OWNER/REPO@REF` / `OWNER/REPO/action/comment@REF` (explained once, in
    action/README.md and the README); every other action is pinned by commit SHA with its version."""
    docs = [ROOT / "README.md", ROOT / "action" / "README.md", ROOT / "action.yml",
            ROOT / "action" / "comment" / "action.yml", *sorted((ROOT / "action" / "workflows").glob("*.yml"))]
    ours, theirs = set(), []
    for doc in docs:
        for line in doc.read_text().splitlines():
            m = re.search(r"uses:\s*([^\s#]+)(.*)", line)
            if not m:
                continue
            name, _, ref = m.group(1).partition("@")
            if name.startswith("OWNER/REPO"):
                ours.add(m.group(1))
            else:
                theirs.append((doc.name, m.group(1), m.group(2)))
    assert ours == {"OWNER/REPO@REF", "OWNER/REPO/action/comment@REF"}, ours
    for doc, uses, comment in theirs:
        assert PINNED.match(uses) and re.search(r"#\s*v\d+\.\d+\.\d+", comment), (doc, uses, comment)
    for doc in docs + [ROOT / "docs" / "precommit.md"]:
        assert "mcx-review/mcx-review@" not in doc.read_text(), f"{doc}: a place the action does not live"
    for doc in (ROOT / "README.md", ROOT / "action" / "README.md"):
        assert "Where the action lives" in doc.read_text()


def test_actions_reference_only_declared_inputs_and_step_outputs():
    for path in ACTIONS.values():
        text = path.read_text()
        action = load_action(path)
        assert set(re.findall(r"inputs\.([\w-]+)", text)) <= set(action["inputs"]), path
        ids = {s.get("id") for s in action["runs"]["steps"]}
        assert {m for m in re.findall(r"steps\.([\w-]+)\.outputs", text)} <= ids, path
        for step in action["runs"]["steps"]:
            if "run" in step:
                assert "${{" not in step["run"], f"{path}: a run script interpolates an expression"


def test_the_fork_safe_pair_keeps_the_write_token_away_from_pr_code():
    flows = workflows()
    simple, compute, post = flows["mcx-review.yml"], flows["mcx-review-pr.yml"], flows["mcx-review-comment.yml"]
    assert "same-repository prs only" in (ROOT / "action" / "workflows" / "mcx-review.yml").read_text().lower()
    assert simple[True]["pull_request"] is not None or "pull_request" in simple[True]
    # compute: pull_request, read-only, full history, no comment, uploads the JSON
    assert "pull_request" in compute[True] and compute["permissions"] == {"contents": "read"}
    (job,) = compute["jobs"].values()
    assert "permissions" not in job
    assert job["steps"][0]["with"]["fetch-depth"] == 0
    [(_, review)] = our_steps(compute)
    assert review["with"]["comment"] == "false"
    assert any(s.get("uses", "").startswith("actions/upload-artifact") for s in job["steps"])
    # post: workflow_run, writes only there, PR from the run's head SHA, never checks out PR code
    assert post[True]["workflow_run"]["workflows"] == [compute["name"]]
    assert "concurrency" in post
    (job,) = post["jobs"].values()
    assert job["permissions"]["pull-requests"] == "write"
    assert post["permissions"] == {"contents": "read"}
    assert not any(s.get("uses", "").startswith("actions/checkout") for s in job["steps"])
    [(_, comment)] = our_steps(post)
    assert comment["with"]["pr-from-sha"] == "${{ github.event.workflow_run.head_sha }}"
    assert "pr" not in comment["with"] and comment["with"]["pr-file"].endswith("/pr-number"), \
        "the artifact's PR number only as a file the action checks"


def test_the_sharded_example_merges_into_one_comment():
    wf = workflows()["mcx-review-sharded.yml"]
    shards = wf["jobs"]["shard"]
    n = len(shards["strategy"]["matrix"]["shard"])
    [(_, review)] = our_steps({"jobs": {"shard": shards}})
    assert review["with"]["args"] == f"--shard ${{{{ matrix.shard }}}}/{n}" and review["with"]["comment"] == "false"
    [(_, comment)] = our_steps({"jobs": {"comment": wf["jobs"]["comment"]}})
    assert comment["with"]["merge"] and wf["jobs"]["comment"]["needs"] == "shard"


# -- the example workflows, run as written ------------------------------------------------------------
# Every job of the README's and action/'s workflows runs here step by step: checkout (the repository
# is already in the workspace; the step's settings are checked), our two actions (run_action above),
# upload-artifact / download-artifact (a directory stands in for the artifact store), and `if:`.

PINNED = re.compile(r"^actions/[\w-]+@[0-9a-f]{40}$")


def readme_workflows() -> Dict[str, Dict[str, Any]]:
    """The workflow YAML blocks (```yaml ... with `jobs:`) of README.md and action/README.md."""
    found = {}
    for doc in (ROOT / "README.md", ROOT / "action" / "README.md"):
        for i, block in enumerate(re.findall(r"```yaml\n(.*?)```", doc.read_text(), flags=re.S)):
            data = yaml.safe_load(block)
            if isinstance(data, dict) and "jobs" in data:
                found[f"{doc.relative_to(ROOT)}#{i}"] = data
    return found


def condition(expr: str, ctx: Mapping[str, Any], failed: bool) -> bool:
    """The `if:` forms our workflows use: always(), success(), `a == 'b'`, `a != ''`, joined by &&."""
    expr = EXPR.sub(lambda m: m.group(1), expr).strip()
    result, explicit_status = True, False
    for term in (t.strip() for t in expr.split("&&")):
        if term in ("always()", "success()", "failure()"):
            explicit_status = True
            result &= {"always()": True, "success()": not failed, "failure()": failed}[term]
            continue
        m = re.fullmatch(r"(.+?)\s*(==|!=)\s*(.+)", term)
        assert m, f"the test runner does not understand if: {expr}"
        left, right = evaluate(m.group(1), ctx), evaluate(m.group(3), ctx)
        result &= (left == right) == (m.group(2) == "==")
    return result and (explicit_status or not failed)


def run_job(wf: Dict[str, Any], job_id: str, *, ws: Path, env: Dict[str, str], github: Dict[str, Any],
            store: Path, action_copy: Path, matrix: Mapping[str, Any] = {}) -> Tuple[int, List[str]]:
    """Run one job of a workflow; (exit code, log). Our actions resolve to ``action_copy``."""
    job = wf["jobs"][job_id]
    ctx: Dict[str, Any] = {"github": github, "runner": {"os": "Linux", "temp": env["RUNNER_TEMP"]},
                           "steps": {}, "matrix": dict(matrix)}
    log: List[str] = []
    if "if" in job and not condition(job["if"], ctx, failed=False):
        return 0, ["job skipped by its if:"]
    failed = 0
    for step in job["steps"]:
        if "if" in step and not condition(step["if"], ctx, bool(failed)):
            log.append(f"skip (if): {step.get('uses') or step.get('name')}")
            continue
        if "if" not in step and failed:
            continue
        if "run" in step:  # a plain shell step of the workflow
            out_file = Path(env["RUNNER_TEMP"]) / f"wf-output-{len(log)}"
            out_file.write_text("")
            step_env = {**env, "GITHUB_OUTPUT": str(out_file)}
            step_env.update({k: substitute(v, ctx) for k, v in (step.get("env") or {}).items()})
            proc = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", substitute(step["run"], ctx)],
                                  cwd=ws, env=step_env, capture_output=True, text=True, timeout=60)
            log.append(f"== {step.get('name')} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
            if "id" in step:
                ctx["steps"][step["id"]] = {"outputs": parse_outputs(out_file.read_text())}
            failed = failed or proc.returncode
            continue
        uses, given = step["uses"], {k: substitute(v, ctx) for k, v in (step.get("with") or {}).items()}
        name, _, ref = uses.partition("@")
        if name in ACTIONS:
            assert ref == "REF", f"{uses}: examples say OWNER/REPO@REF"
            path = action_copy / ACTIONS[name].relative_to(ROOT)
            code, outputs, out = run_action(path, given, env, ws, github)
            log.append(out)
            if "id" in step:
                ctx["steps"][step["id"]] = {"outputs": outputs}
            failed = failed or code
            continue
        assert PINNED.match(uses), f"{uses}: third-party actions are pinned by commit SHA"
        if name == "actions/checkout":
            assert given.get("fetch-depth") == "0" and given.get("persist-credentials") == "False", given
        elif name == "actions/upload-artifact":
            # files of one directory, as our examples upload them: flat in the artifact
            for src in (Path(p.strip()) for p in given["path"].splitlines() if p.strip()):
                if src.is_file():
                    (store / given["name"]).mkdir(parents=True, exist_ok=True)
                    shutil.copy2(src, store / given["name"] / src.name)
                else:
                    assert given.get("if-no-files-found") == "ignore", f"upload of a missing {src}"
        elif name == "actions/download-artifact":
            dest = Path(given.get("path") or ws)
            if "name" in given:
                shutil.copytree(store / given["name"], dest, dirs_exist_ok=True)
            else:
                for art in sorted(store.glob(given["pattern"])):
                    shutil.copytree(art, dest / art.name, dirs_exist_ok=True)
        else:
            raise AssertionError(f"the test runner does not know {uses}")
        log.append(f"emulated {uses}")
    return failed, log


def pr_repo(tmp_path: Path) -> Tuple[ConfigRepo, str, str]:
    """mmpretrain's shipped configs on main, and a PR branch that makes ResNet-18 34 layers deep."""
    repo = ConfigRepo(tmp_path / "ws", pkg="mmpretrain")
    base = repo.repo.head.commit.hexsha
    repo.branch("deeper")
    repo.edit("configs/resnet/resnet18_8xb32_in1k.py", "model = dict(backbone=dict(depth=34))")
    return repo, base, repo.commit("resnet18 -> 34 layers")


def pull_request_event(number: int, base: str, head: str) -> Dict[str, Any]:
    return {"action": "synchronize", "number": number,
            "pull_request": {"number": number, "head": {"sha": head, "ref": "deeper",
                                                        "repo": {"full_name": REPO}},
                             "base": {"sha": base, "ref": "main"}}}


def assert_counted(report: Dict[str, Any]) -> None:
    """The reviewed config was built and counted at both sides: the stack the example installs
    works (mmpretrain without mmcv fails every config, and the job would still be green)."""
    [entry] = [c for c in report["configs"] if c["status"] != "unchanged"]
    assert entry["path"] == "configs/resnet/resnet18_8xb32_in1k.py" and not entry["errors"], entry["errors"]
    assert entry["base"]["params"] < entry["head"]["params"]


@pytest.mark.parametrize("source", ["README.md#0", "mcx-review.yml"])
def test_the_simple_workflow_runs_as_written(tmp_path, action_copy, venv, source):
    wf = readme_workflows()[source] if source.startswith("README") else workflows()[source]
    repo, base, head = pr_repo(tmp_path)
    assert not (repo.root / ".mcx-review.yaml").exists(), "the settings file is optional"
    with GitHubStub(REPO) as gh:
        gh.add_pull(7, head, head_branch="deeper")
        env = runner_env(tmp_path, venv, gh, pull_request_event(7, base, head)) | {"HOME": str(tmp_path / "home")}
        github = {"token": "actions-token", "event_name": "pull_request", "event": pull_request_event(7, base, head),
                  "workspace": str(repo.root)}
        [job_id] = wf["jobs"]
        assert wf["jobs"][job_id]["permissions"]["pull-requests"] == "write"
        code, log = run_job(wf, job_id, ws=repo.root, env=env, github=github, store=tmp_path / "store",
                            action_copy=action_copy)
        text = "\n".join(log)
        assert code == 0, text
        report = load_validated(Path(env["RUNNER_TEMP"]) / "mcx-review" / "report.json")
        assert_counted(report)
        [body] = gh.bodies(7)
        assert parse_marker(body) == ("default", head) and "resnet18_8xb32_in1k.py" in body
        visible = body.split("\n", 1)[1]  # after the hidden marker
        assert f"<code>{head[:7]}</code>" in visible and head not in visible, "short SHAs in the footer"


def test_the_fork_safe_pair_runs_as_written(tmp_path, action_copy, venv):
    """mcx-review-pr.yml computes for a fork PR and uploads; mcx-review-comment.yml, on the
    workflow_run event, downloads, validates and posts to that PR, never to a twin with the same
    head commit in another fork."""
    flows = workflows()
    repo, base, head = pr_repo(tmp_path)
    store = tmp_path / "store"
    with GitHubStub(REPO) as gh:
        gh.add_pull(12, head, head_repo="alice/models", head_branch="deeper")
        gh.add_pull(13, head, head_repo="mallory/models", head_branch="copied")
        event = pull_request_event(12, base, head)
        (tmp_path / "compute").mkdir()
        env = runner_env(tmp_path / "compute", venv, gh, event) | {"HOME": str(tmp_path / "home")}
        github = {"token": "read-only", "event_name": "pull_request", "event": event, "workspace": str(repo.root)}
        code, log = run_job(flows["mcx-review-pr.yml"], "review", ws=repo.root, env=env, github=github,
                            store=store, action_copy=action_copy)
        assert code == 0, "\n".join(log)
        assert gh.writes() == [], "the compute side never writes"
        assert_counted(load_validated(store / "mcx-review-report" / "report.json"))

        run = {"workflow_run": {"id": 99, "event": "pull_request", "head_sha": head, "head_branch": "deeper",
                                "head_repository": {"full_name": "alice/models"}, "pull_requests": []}}
        (tmp_path / "post").mkdir()
        env = runner_env(tmp_path / "post", venv, gh, run, "workflow_run")
        (tmp_path / "post" / "ws").mkdir()
        github = {"token": "actions-token", "event_name": "workflow_run", "event": run,
                  "workspace": str(tmp_path / "post" / "ws")}
        code, log = run_job(flows["mcx-review-comment.yml"], "comment", ws=tmp_path / "post" / "ws", env=env,
                            github=github, store=store, action_copy=action_copy)
        assert code == 0, "\n".join(log)
        assert [parse_marker(b) for b in gh.bodies(12)] == [("default", head)] and gh.bodies(13) == []
        assert not list((tmp_path / "post" / "ws").iterdir()), "the artifact stays out of the workspace"


def test_the_sharded_workflow_runs_as_written(tmp_path, action_copy, venv):
    """Four shard jobs (separate runners) upload their reports; the comment job merges them into
    one sticky comment."""
    wf = workflows()["mcx-review-sharded.yml"]
    repo, base, head = pr_repo(tmp_path)
    repo.edit("configs/resnet/resnet50_8xb32_in1k.py", "model = dict(backbone=dict(depth=101))")
    head = repo.commit("and ResNet-50 -> 101")
    store = tmp_path / "store"
    event = pull_request_event(5, base, head)
    with GitHubStub(REPO) as gh:
        gh.add_pull(5, head, head_branch="deeper")
        for k in wf["jobs"]["shard"]["strategy"]["matrix"]["shard"]:
            runner = tmp_path / f"shard-{k}"
            runner.mkdir()
            env = runner_env(runner, venv, gh, event) | {"HOME": str(tmp_path / "home")}
            github = {"token": "actions-token", "event_name": "pull_request", "event": event,
                      "workspace": str(repo.root)}
            code, log = run_job(wf, "shard", ws=repo.root, env=env, github=github, store=store,
                                action_copy=action_copy, matrix={"shard": k})
            assert code == 0, "\n".join(log)
        assert gh.writes() == [] and len(list(store.glob("mcx-review-shard-*/report.json"))) == 4
        runner = tmp_path / "comment"
        (runner / "ws").mkdir(parents=True)
        env = runner_env(runner, venv, gh, event) | {"HOME": str(tmp_path / "home")}
        code, log = run_job(wf, "comment", ws=runner / "ws", env=env, github={**github, "workspace": str(runner / "ws")},
                            store=store, action_copy=action_copy)
        assert code == 0, "\n".join(log)
        [body] = gh.bodies(5)
        assert parse_marker(body) == ("default", head)
        assert "resnet18_8xb32_in1k.py" in body and "resnet50_8xb32_in1k.py" in body and "Shard" not in body
        assert "\u2717" not in body and "\u2026" not in body, "every side counted, none pending"


# -- issue 16: events, timeouts, the fork-safe sharded pair ------------------------------------------------

def first_step(event: str, allow: str = "") -> subprocess.CompletedProcess:
    """action.yml's event check, run as the runner runs it."""
    step = load_action(ROOT / "action.yml")["runs"]["steps"][0]
    assert step["name"] == "Refuse events outside the allowlist"
    env = {"PATH": os.environ["PATH"], "GITHUB_EVENT_NAME": event,
           **{k: substitute(v, {"inputs": {"allow-events": allow}}) for k, v in step["env"].items()}}
    return subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]], env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("event", ["pull_request", "push", "merge_group", "workflow_dispatch", "schedule"])
def test_the_review_action_runs_on_the_safe_events(event):
    proc = first_step(event)
    assert proc.returncode == 0 and proc.stdout == "", proc.stdout


@pytest.mark.parametrize("event", ["issue_comment", "workflow_run", "pull_request_review",
                                   "pull_request_review_comment", "repository_dispatch", ""])
def test_the_review_action_refuses_other_events_unless_named(event):
    proc = first_step(event)
    assert proc.returncode == 1
    assert proc.stdout.startswith("::error title=mcx-review::refusing to run on ") and "allow-events" in proc.stdout
    if event:
        named = first_step(event, allow=f"push {event}")
        assert named.returncode == 0 and named.stdout.startswith("::warning title=mcx-review::running on " + event)
    # pull_request_target stays refused whatever the input says
    target = first_step("pull_request_target", allow="pull_request_target")
    assert target.returncode == 1 and "refusing to run on pull_request_target" in target.stdout


def test_the_allowlist_and_its_danger_are_documented():
    text = " ".join((ROOT / "action" / "README.md").read_text().split())
    assert "allow-events" in text and "write token" in text
    desc = load_action(ROOT / "action.yml")["inputs"]["allow-events"]["description"]
    assert "DANGEROUS" in desc and "pull_request_target is always refused" in desc


def test_every_example_job_has_a_timeout_and_no_unpinned_ignore():
    flows = {**workflows(), **readme_workflows()}
    assert {"mcx-review-sharded-pr.yml", "mcx-review-sharded-comment.yml"} <= set(flows)
    for name, wf in flows.items():
        for job_id, job in wf["jobs"].items():
            assert isinstance(job.get("timeout-minutes"), int) and job["timeout-minutes"] <= 120, (name, job_id)
    for path in [*(ROOT / "action" / "workflows").glob("*.yml"), ROOT / "README.md", ROOT / "action" / "README.md"]:
        assert not re.search(r"uses: .*ignore\[unpinned-uses\]", path.read_text()), path


def test_the_fork_safe_sharded_pair_keeps_the_write_token_away_from_pr_code():
    flows = workflows()
    compute, post = flows["mcx-review-sharded-pr.yml"], flows["mcx-review-sharded-comment.yml"]
    assert compute["permissions"] == {"contents": "read"} and "permissions" not in compute["jobs"]["shard"]
    assert post[True]["workflow_run"]["workflows"] == [compute["name"]]
    (job,) = post["jobs"].values()
    assert job["permissions"] == {"actions": "read", "pull-requests": "write"}
    assert not any("checkout" in s.get("uses", "") for s in job["steps"])
    [(_, comment)] = our_steps(post)
    assert comment["with"]["merge"] and comment["with"]["pr-file"].endswith("/pr-number")
    assert comment["with"]["pr-from-sha"] == "${{ github.event.workflow_run.head_sha }}"


def test_the_fork_safe_sharded_pair_runs_as_written(tmp_path, action_copy, venv):
    """bob's fork branch opened into main (#21) and into dev (#22): the same head commit, repository
    and branch. Each PR's sharded compute run uploads its shards and its PR number; each comment run
    merges and posts on its own PR -- the twin no longer blocks -- and an artifact claiming another
    PR gets nothing posted."""
    flows = workflows()
    compute, post = flows["mcx-review-sharded-pr.yml"], flows["mcx-review-sharded-comment.yml"]
    repo, base, head = pr_repo(tmp_path)
    with GitHubStub(REPO) as gh:
        gh.add_pull(21, head, head_repo="bob/models", head_branch="deeper")
        gh.add_pull(22, head, head_repo="bob/models", head_branch="deeper")
        gh.add_pull(23, head, head_repo="mallory/models", head_branch="deeper")
        stores = {}
        for number in (21, 22):
            event = pull_request_event(number, base, head)
            stores[number] = store = tmp_path / f"store-{number}"
            for k in compute["jobs"]["shard"]["strategy"]["matrix"]["shard"]:
                runner = tmp_path / f"pr{number}-shard-{k}"
                runner.mkdir()
                env = runner_env(runner, venv, gh, event) | {"HOME": str(tmp_path / "home")}
                github = {"token": "read-only", "event_name": "pull_request", "event": event,
                          "workspace": str(repo.root)}
                code, log = run_job(compute, "shard", ws=repo.root, env=env, github=github, store=store,
                                    action_copy=action_copy, matrix={"shard": k})
                assert code == 0, "\n".join(log)
            assert (store / "mcx-review-shard-1" / "pr-number").read_text().strip() == str(number)
        assert gh.writes() == [], "the compute side never writes"

        def comment_run(store: Path, name: str) -> Tuple[int, str]:
            run = {"workflow_run": {"id": 7, "event": "pull_request", "head_sha": head, "head_branch": "deeper",
                                    "head_repository": {"full_name": "bob/models"}, "pull_requests": []}}
            runner = tmp_path / name
            (runner / "ws").mkdir(parents=True)
            env = runner_env(runner, venv, gh, run, "workflow_run")
            github = {"token": "actions-token", "event_name": "workflow_run", "event": run,
                      "workspace": str(runner / "ws")}
            code, log = run_job(post, "comment", ws=runner / "ws", env=env, github=github, store=store,
                                action_copy=action_copy)
            return code, "\n".join(log)

        for number in (22, 21):
            code, log = comment_run(stores[number], f"post-{number}")
            assert code == 0, log
        assert [len(gh.bodies(n)) for n in (21, 22, 23)] == [1, 1, 0]
        body = gh.bodies(21)[0]
        assert parse_marker(body) == ("default", head) and "resnet18_8xb32_in1k.py" in body
        assert "computed by the PR's own workflow run" in body
        # an artifact that claims mallory's PR (same commit, another fork): nothing posted, step fails
        (stores[21] / "mcx-review-shard-1" / "pr-number").write_text("23\n")
        gh.requests.clear()
        code, log = comment_run(stores[21], "post-forged")
        assert code == 1 and "PR #23 is not this run's PR" in log and gh.writes() == [], log
        (stores[21] / "mcx-review-shard-1" / "pr-number").write_text("23\n::error title=x::forged\n")
        code, log = comment_run(stores[21], "post-garbage")
        assert code == 1 and "pr-file does not hold a PR number" in log and "forged" not in log
        assert gh.writes() == []
