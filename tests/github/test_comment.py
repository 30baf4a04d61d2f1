"""The sticky PR comment through PyGithub against the GitHub API stand-in on 127.0.0.1, driven
through the real `mcx-review comment` command; plus the Actions plumbing and the report validator."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Dict, List

import cmarkgfm
import pytest
from cmarkgfm.cmark import Options as cmarkgfm_options

from github_stub import APP_BOT, BOT, GitHubStub, parse_outputs, same_repo_pr, workflow_run_event
from mcx_review import cli
from mcx_review.github import env as github_env
from mcx_review.github.comment import (CommentError, PostSettings, compose_body, marker, neutralise_mentions,
                                       parse_marker, post)
from mcx_review.render.markdown import cut_markup
from mcx_review.report.validate import ReportError, load_validated, parse, validate

REPO = "octo/models"
HEAD = "5d6e7f8" + "0" * 33
NEWER = "9a9b9c9" + "1" * 33
BASE = "1a2b3c4" + "2" * 33
PY = sys.executable


# -- reports (inputs, shaped like report.py; figures from comment-example.md) ------------------

def stats(flops: int, params: int, acts: int, hw: int = 224, head_params: int = 2049000) -> Dict[str, Any]:
    return {"input_shape": [3, hw, hw], "forward": "extract_feat", "flops": flops, "params": params,
            "activations": acts, "unsupported_ops": {}, "uncalled_modules": [],
            "modules": {"backbone": {"flops": flops - 100000, "params": params - head_params,
                                     "activations": acts, "called": True},
                        "neck": {"flops": 100000, "params": 0, "activations": 0, "called": True},
                        "head": {"flops": 0, "params": head_params, "activations": 0, "called": False}}}


def entry(path: str, base: Dict[str, Any], head: Dict[str, Any], status: str = "changed") -> Dict[str, Any]:
    return {"path": path, "old_path": None, "status": status, "reasons": ["changed"], "base": base,
            "head": head, "delta": {m: head[m] - base[m] for m in ("flops", "params", "activations")},
            "errors": [], "warnings": [], "budgets": []}


def report(configs: List[Dict[str, Any]], head_sha: str = HEAD) -> Dict[str, Any]:
    return {"schema": "mcx-review/1", "tool": {"mcx-review": "0.1.0", "torch": "2.14.1"},
            "base": {"rev": "main", "sha": BASE}, "head": {"rev": "HEAD", "sha": head_sha, "kind": "commit"},
            "shape": None, "configs": configs}


R50 = stats(4108970000, 25557032, 11114000)
R101 = stats(7831658000, 44549160, 16232000)
R101_WIDE = stats(8120000000, 46000000, 17000000)


def resnet_report(head: Dict[str, Any] = R101, path: str = "configs/resnet/resnet50_8xb32_in1k.py",
                  head_sha: str = HEAD) -> Dict[str, Any]:
    return report([entry(path, R50, head)], head_sha)


def unchanged_report() -> Dict[str, Any]:
    return report([entry("configs/resnet/resnet50_8xb32_in1k.py", R50, R50, status="unchanged")])


# -- harness -------------------------------------------------------------------------------------

@pytest.fixture
def gh():
    with GitHubStub(REPO) as stub:
        stub.add_pull(7, HEAD)
        yield stub


@pytest.fixture
def env(tmp_path: Path, gh: GitHubStub, monkeypatch: pytest.MonkeyPatch) -> Dict[str, str]:
    """A pull_request run: event JSON (head = the PR head, not the merge commit), summary file."""
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"action": "synchronize", "number": 7,
                                 "pull_request": {"number": 7, "head": {"sha": HEAD}, "base": {"sha": BASE}}}))
    values = {"GITHUB_ACTIONS": "true", "GITHUB_REPOSITORY": REPO, "GITHUB_API_URL": gh.url,
              "GITHUB_EVENT_PATH": str(event), "GITHUB_TOKEN": "user-token",
              "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"), "GITHUB_OUTPUT": str(tmp_path / "output"),
              "MCX_REVIEW_GITHUB_BACKOFF": "0.01", "MCX_REVIEW_GITHUB_MAX_WAIT": "0.5",
              "MCX_REVIEW_GITHUB_WRITE_PAUSE": "0", "MCX_REVIEW_GITHUB_TIMEOUT": "2"}
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    return values


def comment(tmp_path: Path, rep: Dict[str, Any], *flags: str) -> int:
    path = tmp_path / f"report-{len(list(tmp_path.glob('report-*.json')))}.json"
    path.write_text(json.dumps(rep))
    return cli.main(["comment", str(path), *flags])


def ours(gh: GitHubStub, pr: int = 7) -> List[Dict[str, Any]]:
    return [c for c in gh.comments[pr] if parse_marker(c["body"])]


# -- the sticky comment --------------------------------------------------------------------------

def test_first_run_creates_one_comment_with_marker_and_totals(tmp_path, gh, env, capsys):
    assert comment(tmp_path, resnet_report()) == 0
    assert [c["login"] for c in gh.comments[7]] == ["reviewer-bot"]
    body = gh.comments[7][0]["body"]
    assert body.startswith(marker("default", HEAD) + "\n")
    assert "resnet50_8xb32_in1k.py" in body and "7.832G" in body and "4.109G" in body
    assert "created" in capsys.readouterr().err


def test_second_run_with_new_numbers_edits_the_same_comment(tmp_path, gh, env):
    comment(tmp_path, resnet_report())
    first = gh.comments[7][0]["id"]
    gh.requests.clear()
    assert comment(tmp_path, resnet_report(R101_WIDE)) == 0
    assert [c["id"] for c in gh.comments[7]] == [first]
    assert "8.12G" in gh.comments[7][0]["body"]
    assert gh.writes() == [("PATCH", f"/repos/{REPO}/issues/comments/{first}")]


def test_rerun_with_the_same_body_writes_nothing(tmp_path, gh, env, capsys):
    comment(tmp_path, resnet_report())
    gh.requests.clear()
    assert comment(tmp_path, resnet_report()) == 0
    assert gh.writes() == []
    assert gh.requests, "it did look"
    assert "unchanged" in capsys.readouterr().err


def test_a_stale_run_does_not_overwrite_a_newer_heads_comment(tmp_path, gh, env, capsys):
    newer = marker("default", NEWER) + "\nresult for the newer head"
    gh.add_comment(7, "reviewer-bot", newer)
    gh.pulls[7]["head_sha"] = NEWER  # pushed to while this (older) run was computing
    assert comment(tmp_path, resnet_report()) == 0
    assert gh.writes() == []
    assert gh.bodies(7) == [newer]
    err = capsys.readouterr().err
    assert "left alone" in err and NEWER[:12] in err


def test_the_head_sha_comes_from_the_event_not_the_merge_commit(tmp_path, gh, env):
    merge_commit = "e" * 40  # a pull_request checkout: the report's head is the merge commit
    assert comment(tmp_path, resnet_report() | {"head": {"rev": "HEAD", "sha": merge_commit, "kind": "commit"}}) == 0
    assert parse_marker(gh.comments[7][0]["body"]) == ("default", HEAD)


def test_another_tag_makes_a_second_comment(tmp_path, gh, env):
    comment(tmp_path, resnet_report())
    assert comment(tmp_path, resnet_report(R101_WIDE), "--tag", "cuda-shapes") == 0
    assert [parse_marker(b)[0] for b in gh.bodies(7)] == ["default", "cuda-shapes"]
    assert "7.832G" in gh.bodies(7)[0], "the default tag's comment is untouched"


def test_a_502_then_201_posts_exactly_one_comment(tmp_path, gh, env, capsys):
    gh.fail("POST", r"/issues/7/comments$", 502, times=1, message="Bad Gateway")
    assert comment(tmp_path, resnet_report()) == 0
    assert len(gh.comments[7]) == 1
    assert [m for m, _ in gh.writes()] == ["POST", "POST"]
    assert "502" in capsys.readouterr().err


def test_a_timeout_is_retried_and_a_write_that_landed_is_not_repeated(tmp_path, gh, env, monkeypatch, capsys):
    monkeypatch.setenv("MCX_REVIEW_GITHUB_TIMEOUT", "1")
    monkeypatch.setenv("MCX_REVIEW_GITHUB_BACKOFF", "1.0")
    # The stand-in writes the comment but answers after the client gave up: the retried sync
    # must find that comment, not post a second one.
    gh.fail("POST", r"/issues/7/comments$", 0, times=1, delay=1.5)
    assert comment(tmp_path, resnet_report()) == 0
    assert len(ours(gh)) == 1
    assert [m for m, _ in gh.writes()] == ["POST"]
    err = capsys.readouterr().err
    assert "did not answer in time" in err and "unchanged" in err


def test_secondary_rate_limits_are_waited_out(tmp_path, gh, env):
    gh.fail("GET", r"/pulls/7$", 403, times=1, message="You have exceeded a secondary rate limit",
            headers={"Retry-After": "0"})
    gh.fail("POST", r"/comments$", 429, times=1, message="Too Many Requests", headers={"Retry-After": "0"})
    assert comment(tmp_path, resnet_report()) == 0
    assert len(ours(gh)) == 1


def test_a_permanent_403_falls_back_to_the_summary_without_a_traceback(tmp_path, gh, env, capsys):
    gh.fail("POST", r"/comments$", 403, times=-1, message="Resource not accessible by integration")
    assert comment(tmp_path, resnet_report()) == 0
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    line = [ln for ln in err.splitlines() if "could not post" in ln]
    assert len(line) == 1 and "403" in line[0] and "read-only token" in line[0]
    assert "7.832G" in out, "the report is printed instead"
    assert "7.832G" in Path(env["GITHUB_STEP_SUMMARY"]).read_text()
    assert comment(tmp_path, resnet_report(), "--fail-on-comment-error") == 1


def test_5xx_for_ever_gives_up_after_the_retries(tmp_path, gh, env, capsys, monkeypatch):
    monkeypatch.setenv("MCX_REVIEW_GITHUB_RETRIES", "2")
    gh.fail("GET", r"/pulls/7$", 503, times=-1, message="Service Unavailable")
    assert comment(tmp_path, resnet_report(), "--fail-on-comment-error") == 1
    assert sum(1 for r in gh.requests if r == ("GET", f"/repos/{REPO}/pulls/7")) == 3
    assert "503" in capsys.readouterr().err.splitlines()[-1]


def test_the_marker_is_found_on_a_later_page(tmp_path, gh, env):
    gh.page_size = 2
    comment(tmp_path, resnet_report())
    mine = gh.comments[7][0]["id"]
    for i in range(7):
        gh.add_comment(7, f"human{i}", f"looks good {i}")
    gh.requests.clear()
    assert comment(tmp_path, resnet_report(R101_WIDE)) == 0
    pages = [r for r in gh.requests if r[1].endswith("/issues/7/comments") and r[0] == "GET"]
    assert len(pages) >= 4
    assert gh.writes() == [("PATCH", f"/repos/{REPO}/issues/comments/{mine}")]


def test_other_users_comments_with_the_marker_are_ignored(tmp_path, gh, env):
    forged = marker("default", HEAD) + "\nsomeone pasted our marker"
    gh.add_comment(7, "mallory", forged)
    assert comment(tmp_path, resnet_report()) == 0
    assert gh.bodies(7)[0] == forged
    assert [c["login"] for c in ours(gh)] == ["mallory", "reviewer-bot"]


def test_actions_token_falls_back_to_the_bot_login(tmp_path, gh, env, monkeypatch):
    monkeypatch.setenv("GITHUB_TOKEN", "actions-token")  # GET /user -> 403 for it
    monkeypatch.setenv("MCX_REVIEW_WORKFLOW_TOKEN", "true")  # what the actions set for github.token
    comment(tmp_path, resnet_report())
    assert comment(tmp_path, resnet_report(R101_WIDE)) == 0
    assert [c["login"] for c in gh.comments[7]] == [BOT]
    assert "8.12G" in gh.comments[7][0]["body"]


def test_no_changes_and_no_earlier_comment_means_no_comment(tmp_path, gh, env, capsys):
    assert comment(tmp_path, unchanged_report()) == 0
    assert comment(tmp_path, report([])) == 0
    assert gh.writes() == [] and gh.comments[7] == []
    assert "no model changes" in capsys.readouterr().err


def test_no_changes_with_an_earlier_comment_updates_it(tmp_path, gh, env):
    comment(tmp_path, resnet_report())
    assert comment(tmp_path, unchanged_report()) == 0
    assert len(gh.comments[7]) == 1 and "7.832G" not in gh.comments[7][0]["body"]


def test_behavior_new_and_delete_and_new(tmp_path, gh, env):
    comment(tmp_path, resnet_report())
    comment(tmp_path, resnet_report(R101_WIDE), "--behavior", "new")
    assert len(ours(gh)) == 2
    gh.add_comment(7, "human", "a question")
    comment(tmp_path, resnet_report(), "--behavior", "delete-and-new")
    assert [c["login"] for c in gh.comments[7]] == ["human", "reviewer-bot"]
    assert "7.832G" in gh.comments[7][1]["body"]
    gh.requests.clear()
    comment(tmp_path, resnet_report(), "--behavior", "delete-and-new")
    assert gh.writes() == []


def test_pr_from_sha_finds_a_fork_pr_through_the_api(tmp_path, gh, env, monkeypatch):
    fork_head = "f" * 40
    gh.add_pull(8, fork_head, head_repo="fork/models")
    for n in range(9, 14):
        gh.add_pull(n, f"{n:040x}")
    gh.page_size = 2
    monkeypatch.delenv("GITHUB_EVENT_PATH")  # a workflow_run job: no pull_request in the event
    assert comment(tmp_path, resnet_report(head_sha=fork_head), "--pr-from-sha", fork_head) == 0
    assert [parse_marker(b) for b in gh.bodies(8)] == [("default", fork_head)]
    assert gh.comments[7] == []


def test_pr_from_sha_without_an_open_pr_is_one_clear_line(tmp_path, gh, env, capsys, monkeypatch):
    monkeypatch.delenv("GITHUB_EVENT_PATH")
    assert comment(tmp_path, resnet_report(), "--pr-from-sha", "c" * 40, "--fail-on-comment-error") == 1
    err = capsys.readouterr().err
    assert "no open PR" in err and "Traceback" not in err
    assert gh.writes() == []


def test_mentions_from_pr_code_are_neutralised(tmp_path, gh, env):
    assert comment(tmp_path, resnet_report(path="configs/@octo-org/admins_r50.py")) == 0
    body = gh.comments[7][0]["body"]
    assert "octo-org" in body and "@octo-org" not in body
    assert neutralise_mentions(neutralise_mentions("@a @\u200db x@y")) == neutralise_mentions("@a @\u200db x@y")
    assert "@\u200b" in neutralise_mentions("@\u200bkept")  # another joiner counts as done


def test_a_huge_report_fits_and_keeps_every_total(tmp_path, gh, env):
    configs = []
    for i in range(120):
        base = stats(4108970000 + i, 25557032, 11114000)
        head = stats(7831658000 + i * 1000000, 44549160, 16232000)
        for m in range(60):
            base["modules"][f"layer{m}"] = head["modules"][f"layer{m}"] = {
                "flops": 1000 + m, "params": m, "activations": m, "called": True}
            head["modules"][f"layer{m}"] = {"flops": 2000 + m, "params": m, "activations": m, "called": True}
        configs.append(entry(f"configs/family{i:03d}/model{i:03d}_8xb32_in1k.py", base, head))
    assert comment(tmp_path, report(configs)) == 0
    body = gh.comments[7][0]["body"]
    assert len(body) <= 65536 and body.startswith(marker("default", HEAD))
    assert all(f"model{i:03d}_8xb32_in1k.py" in body for i in range(120))


def test_missing_token_or_repository_is_a_clear_line(tmp_path, gh, env, capsys, monkeypatch):
    monkeypatch.delenv("GITHUB_TOKEN")
    assert comment(tmp_path, resnet_report(), "--fail-on-comment-error") == 1
    monkeypatch.setenv("GITHUB_TOKEN", "user-token")
    monkeypatch.delenv("GITHUB_REPOSITORY")
    assert comment(tmp_path, resnet_report(), "--fail-on-comment-error") == 1
    err = capsys.readouterr().err
    assert "no GitHub token" in err and "GITHUB_REPOSITORY" in err and "Traceback" not in err


def test_an_invalid_report_is_refused_before_any_request(tmp_path, gh, env, capsys):
    bad = resnet_report()
    bad["configs"][0]["status"] = "pwned"
    assert comment(tmp_path, bad) == 2
    assert gh.requests == []
    err = capsys.readouterr().err
    assert "report-0.json" in err and "status" in err


def test_comment_never_imports_model_code(tmp_path, gh, env):
    path = tmp_path / "report.json"
    path.write_text(json.dumps(resnet_report()))
    code = ("import sys\nfrom mcx_review import cli\nrc = cli.main(['comment', sys.argv[1]])\n"
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('torch', 'mmengine', 'mmcv', 'mmcls', 'mmpretrain', 'fvcore', 'numpy')"
            " or m in ('mcx_review.measure.worker.analysis', 'mcx_review.worker', 'mcx_review.review'))\n"
            "print(rc, heavy)\n")
    out = subprocess.run([PY, "-c", code, str(path)], capture_output=True, text=True, env=os.environ.copy(),
                         timeout=120)
    assert out.stdout.strip() == "0 []", out.stderr
    assert len(ours(gh)) == 1


# -- Actions plumbing ------------------------------------------------------------------------------

def test_outputs_are_multiline_safe(tmp_path):
    out = tmp_path / "output"
    assert github_env.set_outputs({"report-markdown": "line 1\nchanged=false\nline 3", "changed": "true"},
                                  {"GITHUB_OUTPUT": str(out)})
    assert parse_outputs(out.read_text()) == {"report-markdown": "line 1\nchanged=false\nline 3",
                                              "changed": "true"}
    assert not github_env.set_outputs({"x": "y"}, {})


def test_events_give_the_pr_and_its_head():
    pr = {"pull_request": {"number": 7, "head": {"sha": HEAD}}, "number": 7}
    assert (github_env.pr_number(pr), github_env.head_sha(pr)) == (7, HEAD)
    fork_run = {"workflow_run": {"head_sha": NEWER, "pull_requests": []}}
    assert (github_env.pr_number(fork_run), github_env.head_sha(fork_run)) == (None, NEWER)
    same_repo_run = {"workflow_run": {"head_sha": NEWER, "pull_requests": [{"number": 3}]}}
    assert github_env.pr_number(same_repo_run) == 3
    assert github_env.pr_number({"issue": {"number": 5}}) is None  # an issue, not a PR
    assert github_env.pr_number({"pull_request": {"number": "7; rm -rf /"}}) is None


def test_step_summary_is_appended_and_capped(tmp_path):
    path = tmp_path / "summary.md"
    env = {"GITHUB_STEP_SUMMARY": str(path)}
    assert github_env.append_step_summary("# one", env) and github_env.append_step_summary("# two", env)
    assert path.read_text() == "# one\n# two\n"
    github_env.append_step_summary("x" * (2 << 20), env)
    assert os.path.getsize(path) <= github_env.SUMMARY_LIMIT


# -- the report validator ----------------------------------------------------------------------------

def test_validator_accepts_reports_and_names_problems(tmp_path):
    good = resnet_report()
    assert validate(good) == []
    assert validate(report([entry("configs/a.py", R50, R50, "unchanged") | {"pending": ["head"]}])
                    | {"shard": [1, 2]}) == []
    bad = json.loads(json.dumps(good))
    bad["configs"][0]["head"]["flops"] = "7G"
    bad["configs"][0]["evil"] = 1
    bad["head"]["sha"] = "not-a-sha"
    problems = validate(bad)
    assert any("$.configs[0].head.flops: expected integer" in p for p in problems)
    assert any("unexpected key 'evil'" in p for p in problems)
    assert any("$.head.sha" in p for p in problems)
    assert validate(good | {"schema": "mcx-review/2"}) != []
    assert validate([good]) == ["$: expected object, got array"]


def test_validator_enforces_size_and_strict_json(tmp_path):
    path = tmp_path / "report.json"
    path.write_text(json.dumps(resnet_report()))
    assert load_validated(path)["configs"][0]["status"] == "changed"
    with pytest.raises(ReportError, match="over the 100-byte limit"):
        load_validated(path, max_bytes=100)
    with pytest.raises(ReportError, match="duplicate key"):
        parse(b'{"schema": "mcx-review/1", "schema": "mcx-review/1"}', "dup.json")
    with pytest.raises(ReportError, match="NaN"):
        parse(b'{"x": NaN}', "nan.json")
    with pytest.raises(ReportError, match="nested too deeply"):
        parse(b"[" * 100000 + b"]" * 100000, "deep.json", max_bytes=1 << 20)
    with pytest.raises(ReportError, match="missing.json: cannot read"):
        load_validated(tmp_path / "missing.json")


def test_review_comment_flag_posts_from_a_real_review(tmp_path, gh, env, capsys):
    from helpers import ConfigRepo

    repo = ConfigRepo(tmp_path / "ws", pkg=None)
    repo.write("configs/_base_/note.txt", "configs live here\n")
    base = repo.commit("start")
    repo.branch("docs")
    repo.write("README.md", "docs only\n")
    head = repo.commit("docs only")
    gh.pulls[7]["head_sha"] = head
    args = ["review", "--repo", str(repo.root), "--base", base, "--head", head, "--format", "json",
            "--comment", "--pr", "7", "--head-sha", head]
    assert cli.main(args) == 0
    assert gh.comments[7] == [], "no configs touched and no earlier comment: nothing posted"
    gh.add_comment(7, "reviewer-bot", marker("default", base) + "\nold numbers")
    assert cli.main(args) == 0
    [body] = gh.bodies(7)
    assert parse_marker(body) == ("default", head) and "old numbers" not in body
    assert json.loads(capsys.readouterr().out.split("\n}\n")[0] + "\n}")["configs"] == []


# -- the workflow_run side: which PR ----------------------------------------------------------------

FORK_HEAD = "f" * 40


def run_event(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, payload: Dict[str, Any]) -> None:
    path = tmp_path / "workflow_run.json"
    path.write_text(json.dumps(payload))
    monkeypatch.setenv("GITHUB_EVENT_PATH", str(path))


def test_a_copied_head_commit_in_another_fork_neither_blocks_nor_receives_the_comment(tmp_path, gh, env,
                                                                                        monkeypatch):
    """Mallory pushes alice's PR head commit to her own fork and opens a PR: alice's workflow_run
    still finds alice's PR (head SHA + head repository + head branch), and never mallory's."""
    gh.add_pull(8, FORK_HEAD, head_repo="alice/models", head_branch="wider-neck")
    gh.add_pull(9, FORK_HEAD, head_repo="mallory/models", head_branch="wider-neck")
    run_event(tmp_path, monkeypatch, workflow_run_event(FORK_HEAD, "alice/models", "wider-neck"))
    assert comment(tmp_path, resnet_report(head_sha=FORK_HEAD), "--fail-on-comment-error") == 0
    assert [parse_marker(b) for b in gh.bodies(8)] == [("default", FORK_HEAD)] and gh.bodies(9) == []

    # alice's PR is closed: her next run finds no PR; mallory's twin does not get the comment.
    del gh.pulls[8]
    gh.requests.clear()
    assert comment(tmp_path, resnet_report(R101_WIDE, head_sha=FORK_HEAD), "--fail-on-comment-error") == 1
    assert gh.bodies(9) == [] and gh.writes() == []


def test_pr_from_sha_is_narrowed_by_the_runs_repository_and_branch(tmp_path, gh, env, monkeypatch, capsys):
    gh.add_pull(8, FORK_HEAD, head_repo="alice/models", head_branch="wider-neck")
    gh.add_pull(9, FORK_HEAD, head_repo="mallory/models", head_branch="main")
    run_event(tmp_path, monkeypatch, workflow_run_event(FORK_HEAD, "mallory/models", "main"))
    # what the comment action passes: --pr-from-sha; the event adds repository and branch
    assert comment(tmp_path, resnet_report(head_sha=FORK_HEAD), "--pr-from-sha", FORK_HEAD) == 0
    assert gh.bodies(8) == [] and len(gh.bodies(9)) == 1
    # without the event, the SHA alone is ambiguous: one clear line, nothing posted
    monkeypatch.delenv("GITHUB_EVENT_PATH")
    gh.requests.clear()
    assert comment(tmp_path, resnet_report(R101_WIDE, head_sha=FORK_HEAD), "--pr-from-sha", FORK_HEAD,
                   "--fail-on-comment-error") == 1
    assert "2 open PRs" in capsys.readouterr().err and gh.writes() == []
    # explicit flags do what the event does
    assert comment(tmp_path, resnet_report(R101_WIDE, head_sha=FORK_HEAD), "--pr-from-sha", FORK_HEAD,
                   "--pr-head-repo", "alice/models", "--pr-head-branch", "wider-neck") == 0
    assert len(gh.bodies(8)) == 1


def test_a_same_repository_run_uses_the_events_pull_requests(tmp_path, gh, env, monkeypatch):
    gh.add_pull(9, NEWER, head_branch="feature")  # same head elsewhere, never looked at
    run_event(tmp_path, monkeypatch, workflow_run_event(HEAD, REPO, "branch-7",
                                                        pull_requests=[same_repo_pr(7, HEAD, "branch-7")]))
    assert comment(tmp_path, resnet_report()) == 0
    assert len(gh.bodies(7)) == 1 and gh.bodies(9) == []
    assert ("GET", f"/repos/{REPO}/pulls") not in gh.requests, "no search: GitHub said which PR"
    assert github_env.workflow_run_pr(workflow_run_event(HEAD, REPO, "b", pull_requests=[
        same_repo_pr(7, NEWER, "b")]))["numbers"] == [], "an entry for another head is not this run's PR"


# -- whose comment ---------------------------------------------------------------------------------

def test_an_app_installation_token_finds_its_own_comment(tmp_path, gh, env, monkeypatch):
    """GET /user is refused for App tokens too: with --bot-login the App's marked comment is ours,
    a person's comment with our marker is not."""
    gh.add_comment(7, "mallory", marker("default", HEAD) + "\nforged by a person")
    monkeypatch.setenv("GITHUB_TOKEN", "app-token")
    assert comment(tmp_path, resnet_report(), "--bot-login", APP_BOT) == 0
    assert comment(tmp_path, resnet_report(R101_WIDE), "--bot-login", APP_BOT) == 0
    assert [c["login"] for c in gh.comments[7]] == ["mallory", APP_BOT]
    assert "8.12G" in gh.comments[7][1]["body"] and "forged" in gh.comments[7][0]["body"]
    assert [m for m, _ in gh.writes()] == ["POST", "PATCH"]


def test_an_explicit_login_picks_the_comment(tmp_path, gh, env, monkeypatch):
    gh.add_comment(7, BOT, marker("default", HEAD) + "\nanother workflow's bot")
    monkeypatch.setenv("GITHUB_TOKEN", "app-token")
    assert comment(tmp_path, resnet_report(), "--bot-login", APP_BOT) == 0
    assert [c["login"] for c in gh.comments[7]] == [BOT, APP_BOT]
    assert "another workflow" in gh.comments[7][0]["body"], "another bot's comment is left alone"
    assert comment(tmp_path, resnet_report(R101_WIDE), "--bot-login", "not a login!",
                   "--fail-on-comment-error") == 1


# -- overlapping runs --------------------------------------------------------------------------------

def _poster(tmp_path: Path, rep: Dict[str, Any], head_sha: str, results: Dict[str, Any], name: str) -> None:
    try:
        results[name] = post(rep, repo_name=REPO, pr_number=7, token="actions-token", api_url=os.environ["GITHUB_API_URL"],
                             head_sha=head_sha, workflow_token=True, settings=PostSettings(retries=2, backoff=0.01, write_pause=0))
    except Exception as exc:  # noqa: BLE001 - the test reads it
        results[name] = exc


@pytest.mark.parametrize("lands_first", ["older", "newer"])
def test_two_interleaved_runs_leave_one_comment_with_the_newer_heads_body(tmp_path, gh, env, lands_first):
    """Two runs both list no comment, then both post (a barrier at POST makes them overlap; then
    one POST is held back so the given one lands first): after healing, one comment remains and it
    holds the newer head's report, whichever landed first."""
    barrier = threading.Barrier(2, timeout=30)

    def overlap(payload: Dict[str, Any]) -> None:
        barrier.wait()
        is_newer = NEWER in payload["body"]
        if is_newer != (lands_first == "newer"):
            time.sleep(0.5)

    gh.before("POST", r"/issues/7/comments$", overlap, times=2)
    results: Dict[str, Any] = {}
    older = threading.Thread(target=_poster, args=(tmp_path, resnet_report(), HEAD, results, "older"))
    newer = threading.Thread(target=_poster, args=(tmp_path, resnet_report(R101_WIDE, head_sha=NEWER), NEWER,
                                                   results, "newer"))
    # the older run reads the PR head before the push, the newer one after it
    older.start()
    while sum(1 for r in gh.requests if r == ("GET", f"/repos/{REPO}/pulls/7")) < 1:
        time.sleep(0.01)
    gh.pulls[7]["head_sha"] = NEWER
    newer.start()
    older.join(60)
    newer.join(60)
    assert not isinstance(results["older"], Exception) and not isinstance(results["newer"], Exception), results
    [kept] = gh.comments[7]
    assert parse_marker(kept["body"]) == ("default", NEWER) and "8.12G" in kept["body"]
    assert sum(1 for m, _ in gh.writes() if m == "POST") == 2, "both did post: the race happened"
    assert sum(1 for m, _ in gh.writes() if m == "DELETE") >= 1


def test_duplicates_left_by_an_earlier_race_are_folded_into_the_oldest(tmp_path, gh, env):
    first = gh.add_comment(7, "reviewer-bot", marker("default", HEAD) + "\nrun A")
    gh.add_comment(7, "human", "question")
    gh.add_comment(7, "reviewer-bot", marker("default", HEAD) + "\nrun B")
    assert comment(tmp_path, resnet_report(R101_WIDE)) == 0
    assert [c["id"] for c in ours(gh)] == [first] and "8.12G" in ours(gh)[0]["body"]
    assert [c["login"] for c in gh.comments[7]] == ["reviewer-bot", "human"]


# -- rate limits ---------------------------------------------------------------------------------------

def _post_recording(gh: GitHubStub, **settings: Any) -> List[float]:
    slept: List[float] = []
    post(resnet_report(), repo_name=REPO, pr_number=7, token="user-token", api_url=gh.url, head_sha=HEAD,
         settings=PostSettings(**{"backoff": 0.01, "write_pause": 0, **settings}), sleep=slept.append)
    return slept


def test_retry_after_is_honoured(gh):
    gh.fail("POST", r"/comments$", 403, message="You have exceeded a secondary rate limit",
            headers={"Retry-After": "7"})
    assert _post_recording(gh) == [7.0]
    assert len(ours(gh)) == 1


def test_an_exhausted_primary_limit_waits_for_the_reset(gh):
    reset = int(time.time()) + 30
    gh.fail("GET", r"/pulls/7$", 403, message="API rate limit exceeded for installation",
            headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)})
    [slept] = _post_recording(gh)
    assert 25 <= slept <= 32
    assert len(ours(gh)) == 1


def test_a_secondary_limit_without_headers_waits_a_minute(gh):
    gh.fail("PATCH", r"/comments/\d+$", 429, message="Too Many Requests")
    gh.add_comment(7, "reviewer-bot", marker("default", HEAD) + "\nold")
    assert _post_recording(gh) == [60.0]
    gh.fail("POST", r"/comments$", 403, message="You have exceeded a secondary rate limit. Please wait a few "
                                                 "minutes before you try again.")
    gh.comments[7].clear()
    assert _post_recording(gh, backoff=100.0) == [100.0], "a longer backoff wins over the minute"


def test_a_wait_beyond_the_maximum_gives_up_with_one_line(tmp_path, gh, env, capsys):
    gh.fail("POST", r"/comments$", 403, times=-1, message="API rate limit exceeded",
            headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(time.time()) + 3000)})
    started = time.monotonic()
    assert comment(tmp_path, resnet_report(), "--max-wait", "120", "--fail-on-comment-error") == 1
    assert time.monotonic() - started < 20, "gave up at once instead of sleeping"
    [line] = [ln for ln in capsys.readouterr().err.splitlines() if "could not post" in ln]
    assert "more than the 120s allowed" in line and "giving up" in line and "Traceback" not in line
    with pytest.raises(CommentError, match="Retry-After|asks to wait 9000s"):
        gh.failures.clear()
        gh.fail("GET", r"/pulls/7$", 429, message="slow down", headers={"Retry-After": "9000"})
        _post_recording(gh)


# -- what GitHub renders: no links from PR text, no half-cut markup -------------------------------------

LINKY = ("x https://evil.example/a?b=c www.evil.example b.c@evil.example mailto:c@evil.example "
         "xmpp:d@evil.example ftp://evil.example/f @admins #123 octo/models#9 <https://e.x> [l](https://e.x) "
         "![i](https://e.x/i.png) HTTP://E.X/Y WWW.E.X")
SHORT_LINKY = "https://e.x/a www.e.x b@e.x @a #1"


class _Html(HTMLParser):
    """Tags in order, text outside <code>, and whether every opened element was closed."""

    VOID = {"br", "hr", "img", "input"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: List[str] = []
        self.stack: List[str] = []
        self.unbalanced: List[str] = []
        self.text_outside_code: List[str] = []

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        self.tags.append(tag)
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in self.VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.unbalanced.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
            if tag in self.stack:
                del self.stack[self.stack.index(tag):]
            return
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        if "code" not in self.stack:
            self.text_outside_code.append(data)


def github_html(markdown: str) -> _Html:
    """Render like GitHub (cmark-gfm with its extensions, autolink included; raw HTML kept) and parse."""
    html_text = cmarkgfm.github_flavored_markdown_to_html(markdown, options=cmarkgfm_options.CMARK_OPT_UNSAFE)
    parsed = _Html()
    parsed.feed(html_text)
    parsed.close()
    return parsed


def linky_report() -> Dict[str, Any]:
    """Every string field of a valid report holds URL, www, e-mail, mention and issue-ref text."""
    p = f"configs/{LINKY}.py"
    head = stats(7831658000, 44549160, 16232000)
    head["modules"][LINKY] = {"flops": 5, "params": 5, "activations": 5, "called": True}
    head["unsupported_ops"] = {LINKY: 3}
    head["uncalled_modules"] = [LINKY]
    changed = entry(p, R50, head) | {
        "old_path": f"configs/old {LINKY}.py", "status": "renamed", "reasons": [f"inherits {p}", LINKY],
        "warnings": [{"side": "base", "message": LINKY}],
        "budgets": [{"rule": LINKY, "metric": "flops", "module": LINKY, "level": "fail", "limit": SHORT_LINKY,
                     "value": 7831658000, "base": 4108970000, "message": LINKY}]}
    broken = entry(f"configs/broken {LINKY}.py", R50, R50) | {
        "status": "error", "head": None, "delta": None, "errors": [{"side": "head", "message": LINKY}]}
    unchanged = entry(f"configs/same {LINKY}.py", R50, R50, status="unchanged") | {"reasons": [f"inherits {LINKY}"]}
    rep = report([changed, broken, unchanged])
    rep["tool"] = {SHORT_LINKY: SHORT_LINKY}
    rep["base"]["rev"] = LINKY
    rep["head"]["rev"] = LINKY
    return rep


def test_no_link_comes_from_pr_controlled_text():
    rep = linky_report()
    assert validate(rep) == [], "a report the comment job accepts"
    body = compose_body(rep, "default", HEAD)
    parsed = github_html(body)
    assert "a" not in parsed.tags and "img" not in parsed.tags, [t for t in parsed.tags if t in ("a", "img")]
    assert body.count("evil.example") >= 10, "the text is all there, just inert"
    outside = "".join(parsed.text_outside_code)
    assert not re.search(r"@(?![\u200b\u200c\u200d\u2060])", outside), "a would-be mention"
    assert not re.search(r"#(?!\u2060)\d", outside), "a would-be issue reference"
    # the same holds for the text renderer's sibling: every cut of the body too
    for limit in (20000, 8000, 3000):
        assert "a" not in github_html(compose_body(rep, "default", HEAD, max_chars=limit)).tags


def test_the_size_capped_body_never_cuts_inside_an_entity_or_leaves_a_tag_open():
    configs = [entry(f"configs/fam{i:03d}/{'<&>|' * 30}{SHORT_LINKY}_{i}.py", R50, R101) for i in range(300)]
    rep = report(configs)
    rep["tool"] = {f"k{i}": "<&>" * 33 for i in range(10)}
    assert validate(rep) == []
    bad_entity = re.compile(r"&(?!#\d+;|#x[0-9a-fA-F]+;|[a-zA-Z]+;)")
    for limit in list(range(2500, 4000, 97)) + [65536]:
        body = compose_body(rep, "default", HEAD, max_chars=limit)
        assert len(body) <= limit
        assert not bad_entity.search(body), (limit, bad_entity.search(body))
        parsed = github_html(body)
        assert not parsed.unbalanced and not parsed.stack, (limit, parsed.unbalanced, parsed.stack)
    # the cut itself, on one long line of entities and tags, at every length
    line = "<sub>" + "".join(f"<code>a&#124;b&#95;{i}</code> \u00b7 " for i in range(40)) + "</sub>"
    for limit in range(60, len(line), 7):
        cut = cut_markup(line, limit, " (cut)")
        assert len(cut) <= limit and cut.endswith(" (cut)")
        assert not bad_entity.search(cut) and re.fullmatch(r"(?:[^<]|<(/?)(sub|code)>)*", cut), cut
        parsed = github_html(cut)
        assert not parsed.unbalanced and not parsed.stack, (limit, cut)


@pytest.mark.parametrize("mutate, problem", [
    (lambda r: r["configs"][0]["head"].__setitem__("flops", 10 ** 400), "head.flops"),
    (lambda r: r["configs"][0]["delta"].__setitem__("params", -10 ** 19), "delta.params"),
    (lambda r: r["configs"][0]["head"]["modules"]["backbone"].__setitem__("activations", 10 ** 30), "activations"),
    (lambda r: r.__setitem__("tool", {"x" * 41: "1"}), "$.tool"),
    (lambda r: r.__setitem__("tool", {"mcx-review": "v" * 101}), "$.tool"),
    (lambda r: r.__setitem__("tool", {f"k{i}": "1" for i in range(11)}), "$.tool"),
    (lambda r: r["configs"][0]["head"].__setitem__("input_shape", [3, 10 ** 7, 224]), "input_shape"),
])
def test_a_hostile_artifact_is_one_clear_line(tmp_path, gh, env, capsys, mutate, problem):
    rep = json.loads(json.dumps(resnet_report()))  # R50/R101 are shared
    mutate(rep)
    path = tmp_path / "hostile.json"
    path.write_text(json.dumps(rep))
    assert cli.main(["comment", str(path)]) == 2  # documented: 2 = the report file is not a valid report
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert "hostile.json" in err and problem in err, err
    assert gh.requests == []


@pytest.mark.parametrize("raw, problem", [
    (b'{"schema": "mcx-review/1", "base": {"sha": null}, "head": {"sha": null}, "configs": [], "x": 1e400}',
     "unexpected key"),
    (b'{"n": 1' + b"0" * 5000 + b"}", "not valid JSON"),
    (b'{"n": Infinity}', "Infinity"),
])
def test_number_tricks_are_refused_by_the_strict_parse(tmp_path, raw, problem):
    path = tmp_path / "tricky.json"
    path.write_bytes(raw)
    proc = subprocess.run([PY, "-m", "mcx_review.report_validate", str(path)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 1 and problem in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_the_footer_shows_short_shas():
    rep = resnet_report()
    rep["base"]["rev"] = BASE  # the action passes the PR's base commit as a full SHA
    body = compose_body(rep, "default", HEAD)
    footer = body.strip().splitlines()[-1]
    assert BASE[:7] in footer and BASE not in footer and HEAD not in footer
    rep["base"] = {"rev": NEWER, "sha": BASE}  # merge-base differs from the given base
    footer = compose_body(rep, "default", HEAD).strip().splitlines()[-1]
    assert f"merge-base with <code>{NEWER[:7]}</code>" in footer and NEWER not in footer
