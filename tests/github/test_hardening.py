"""Issue 16: nothing in a PR's text, artifact or settings can link, ping, spoof or relax a gate.

End to end: the real `mcx-review comment` / `merge` commands against the GitHub API stand-in,
GitHub's Markdown renderer (cmark-gfm), the runner's workflow-command rules, and real reviews of a
small LeNet-5 config repository for the gates.
"""
from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any, Dict, List

import pytest
from github_stub import APP_BOT, BOT, workflow_run_event
from helpers import LENET, ConfigRepo
from test_comment import (FORK_HEAD, HEAD, R50, R101, comment, entry, env, gh, github_html,  # noqa: F401
                          marker, report, resnet_report, run_event)

from mcx_review import cli, review
from mcx_review.github.comment import FROM_PR_RUN, compose_body
from mcx_review.report.compare import SideResult, config_report
from mcx_review.report.validate import validate
from mcx_review.settings import gates_from_base, load_settings

ROOT = Path(__file__).resolve().parents[2]

# -- 1. control characters never reach rendering -------------------------------------------------------

# Each would render as a live link if the character were dropped after the escaping decision
# (the `https:\r//` of the security review), or were kept invisible before it.
HOSTILE = ["https:\r//evil.example/login", "https:\u2028//evil.example/a", "https:\x00//evil.example/b",
           "https:\x85//evil.example/c", "https:/\u200b/evil.example/d", "ww\u200bw.evil.example",
           "www\u00ad.evil.example", "https:\ufeff//evil.example/e", "http\u202e://evil.example/f",
           "x\r\n::error title=mcx-review::All checks passed", "##[error]forged"]


def hostile_report(text: str) -> Dict[str, Any]:
    """``text`` in every string field a renderer shows (no schema check: the same-repository flow
    renders its own report unvalidated, so the renderer must hold on its own)."""
    head = copy.deepcopy(R101)
    head["modules"][text] = {"flops": 5, "params": 5, "activations": 5, "called": True}
    head["unsupported_ops"] = {text: 3}
    head["uncalled_modules"] = [text]
    changed = entry(f"configs/{text}.py", R50, head) | {
        "old_path": f"configs/old {text}.py", "status": "renamed", "reasons": [f"inherits {text}", text],
        "warnings": [{"side": "base", "message": text}],
        "budgets": [{"rule": text, "metric": "flops", "module": text, "level": "fail", "limit": text,
                     "value": 7831658000, "base": 4108970000, "message": text}]}
    broken = entry(f"configs/broken {text}.py", R50, R50) | {
        "status": "error", "head": None, "delta": None, "errors": [{"side": "head", "message": text}]}
    unchanged = entry(f"configs/same {text}.py", R50, R50, status="unchanged") | {"reasons": [f"inherits {text}"]}
    rep = report([changed, broken, unchanged])
    rep["tool"] = {text: text}
    rep["base"]["rev"] = text
    rep["settings"] = {"from": "base", "path": text, "sha": None, "head_added": [text]}
    return rep


def test_the_renderer_links_a_plain_url_so_the_check_below_can_fail():
    assert "a" in github_html("see https://evil.example/login and www.evil.example").tags


@pytest.mark.parametrize("text", HOSTILE)
def test_control_and_invisible_characters_never_make_a_link(text):
    body = compose_body(hostile_report(text), "default", HEAD)
    parsed = github_html(body)
    assert "a" not in parsed.tags and "href" not in body, text
    assert "evil.example" in body or "error" in body, "the text is still shown, made inert"
    controls = [c for c in body if (ord(c) < 32 and c != "\n") or 0x7f <= ord(c) < 0xa0
                or c in "\u2028\u2029\u200b\u00ad\ufeff\u202e"]
    assert controls == [], [hex(ord(c)) for c in controls]


@pytest.mark.parametrize("field,value", [
    (("configs", 0, "path"), "configs/a\r.py"),
    (("configs", 0, "path"), "configs/a\u202egnp.py"),
    (("configs", 0, "head", "modules"), {"back\nbone": {"flops": 1, "params": 1, "activations": 1}}),
    (("configs", 0, "head", "unsupported_ops"), {"aten::\x1b[31mconv": 1}),
    (("configs", 0, "head", "uncalled_modules"), ["head\u2028x"]),
    (("tool",), {"mcx\u200b-review": "1"}),
    (("configs", 0, "warnings"), [{"side": "head", "message": "https:\r//evil.example"}]),
    (("configs", 0, "errors"), [{"side": "head", "message": "red \x1b[31m"}]),
    (("configs", 0, "budgets"), [{"rule": "r\n::error::x", "metric": "flops", "level": "warn"}]),
])
def test_the_schema_refuses_control_characters(field, value):
    rep = copy.deepcopy(resnet_report())  # the figures are shared module constants
    node: Any = rep
    for key in field[:-1]:
        node = node[key]
    node[field[-1]] = value
    problems = validate(rep)
    assert problems and "control or invisible characters" in problems[0], problems


def test_messages_keep_newlines_and_tabs_and_a_real_entry_is_cleaned_to_fit_the_schema():
    rep = resnet_report()
    rep["configs"][0]["warnings"] = [{"side": "head", "message": "line one\n\tline two"}]
    assert validate(rep) == []
    # an exception message as a worker reports it: CRLF, a colour code, a bidi override
    e = config_report("configs/a.py", SideResult(stats=R50), SideResult(error="Boom\r\n\x1b[31mred\x1b[0m \u202eevil\rx"))
    assert e["errors"][0]["message"] == "Boom\nred \ufffdevil\nx"
    assert validate(report([e])) == []


# -- 6. references: GH-123 and owner/repo#123 like #123 (the Action README's promise) ---------------------

REFS = "see GH-123, gh-7, octo/models#9, other/repo#12 and #123"


def test_issue_references_are_neutralised_as_the_action_readme_promises():
    promise = " ".join((ROOT / "action" / "README.md").read_text().split())
    assert "no `#123`, `GH-123` or `owner/repo#123` references" in promise
    rep = resnet_report()
    c = rep["configs"][0]
    c["budgets"] = [{"rule": REFS, "metric": "flops", "level": "warn", "value": 1, "message": REFS}]
    c["warnings"] = [{"side": "head", "message": REFS}]
    rep["tool"] = {"mcx-review": REFS}
    body = compose_body(rep, "default", HEAD)
    outside = "".join(github_html(body).text_outside_code)
    assert "GH-" in outside.replace("\u2060", "") and "octo/models#9" in outside.replace("\u2060", "")
    # GitHub links these in text (not in code): each must be broken by an invisible joiner
    assert not re.search(r"\bGH-\d", outside, re.I), "a would-be GH-123 reference"
    assert not re.search(r"[\w.-]+/[\w.-]+#\d", outside), "a would-be owner/repo#123 reference"
    assert not re.search(r"#\d", outside), "a would-be #123 reference"


# -- 3. identity ------------------------------------------------------------------------------------------

def test_another_apps_comment_with_our_marker_is_never_edited_or_deleted(tmp_path, gh, env, monkeypatch):
    other = gh.add_comment(7, "other-app[bot]", marker("default", HEAD) + "\nanother app's comment")
    monkeypatch.setenv("GITHUB_TOKEN", "actions-token")
    monkeypatch.setenv("MCX_REVIEW_WORKFLOW_TOKEN", "true")
    for behavior in ("update", "delete-and-new", "update"):
        assert comment(tmp_path, resnet_report(R101 if behavior != "delete-and-new" else R50), "--behavior",
                       behavior, "--fail-on-comment-error") == 0
    logins = [c["login"] for c in gh.comments[7]]
    assert logins == ["other-app[bot]", BOT], logins
    assert gh.comments[7][0]["body"].endswith("another app's comment")
    touched = [path for method, path in gh.writes() if method in ("PATCH", "DELETE")]
    assert not any(path.endswith(f"/comments/{other}") for path in touched), touched


def test_an_app_token_without_bot_login_is_a_clear_error_and_posts_nothing(tmp_path, gh, env, monkeypatch, capsys):
    gh.add_comment(7, APP_BOT, marker("default", HEAD) + "\nthe app's own")
    monkeypatch.setenv("GITHUB_TOKEN", "app-token")
    assert comment(tmp_path, resnet_report(), "--fail-on-comment-error") == 1
    err = capsys.readouterr().err
    assert "--bot-login" in err and "GitHub App" in err and "Traceback" not in err
    assert gh.writes() == []
    assert comment(tmp_path, resnet_report(), "--bot-login", APP_BOT) == 0
    assert [c["login"] for c in gh.comments[7]] == [APP_BOT] and "the app's own" not in gh.bodies(7)[0]


def test_a_login_that_is_not_the_tokens_is_taken_back(tmp_path, gh, env, monkeypatch, capsys):
    """The actions' flag says 'workflow token' but the token is an App's: the comment lands as the
    App, is recognised as not ours, deleted, and the step says which login to pass."""
    monkeypatch.setenv("GITHUB_TOKEN", "app-token")
    monkeypatch.setenv("MCX_REVIEW_WORKFLOW_TOKEN", "true")
    assert comment(tmp_path, resnet_report(), "--fail-on-comment-error") == 1
    assert gh.comments[7] == []
    assert f"posted as {APP_BOT}, not {BOT}" in capsys.readouterr().err


# -- 4. PR choice -----------------------------------------------------------------------------------------

@pytest.fixture
def twin_prs(tmp_path, gh, env, monkeypatch):
    """bob:feat opened into main (#8) and into dev (#9): same head SHA, repository and branch.
    Mallory's PR #10 has the same commit from her fork; #11 is bob's, closed."""
    gh.add_pull(8, FORK_HEAD, head_repo="bob/models", head_branch="feat")
    gh.add_pull(9, FORK_HEAD, head_repo="bob/models", head_branch="feat")
    gh.add_pull(10, FORK_HEAD, head_repo="mallory/models", head_branch="feat")
    gh.add_pull(11, FORK_HEAD, head_repo="bob/models", head_branch="feat", state="closed")
    run_event(tmp_path, monkeypatch, workflow_run_event(FORK_HEAD, "bob/models", "feat"))
    monkeypatch.setenv("GITHUB_TOKEN", "actions-token")
    monkeypatch.setenv("MCX_REVIEW_WORKFLOW_TOKEN", "true")
    return gh


def test_two_prs_from_one_fork_branch_no_longer_block(tmp_path, twin_prs, capsys):
    gh = twin_prs
    rep = resnet_report(head_sha=FORK_HEAD)
    # the SHA alone matches two PRs: refused, and the message says how to pass the run's PR
    assert comment(tmp_path, rep, "--pr-from-sha", FORK_HEAD, "--fail-on-comment-error") == 1
    assert "--pr N with --pr-from-sha" in capsys.readouterr().err and gh.writes() == []
    # the fork-safe example passes N from the artifact: each run comments on its own PR
    assert comment(tmp_path, rep, "--pr", "9", "--pr-from-sha", FORK_HEAD) == 0
    assert comment(tmp_path, rep, "--pr", "8", "--pr-from-sha", FORK_HEAD) == 0
    assert [len(gh.bodies(n)) for n in (8, 9, 10, 11)] == [1, 1, 0, 0]
    assert FROM_PR_RUN.strip() in gh.bodies(8)[0], "the footer says who computed the numbers"


@pytest.mark.parametrize("number,why", [
    ("10", "head repository is mallory/models"),  # same commit, another fork
    ("11", "it is closed"),
    ("7", "its head is 5d6e7f8"),  # another open PR of the repository
    ("12", "does not exist"),
])
def test_a_claimed_pr_that_is_not_the_runs_gets_nothing(tmp_path, twin_prs, capsys, number, why):
    gh = twin_prs
    gh.requests.clear()
    # no --fail-on-comment-error: a refused claim fails the step anyway
    assert comment(tmp_path, resnet_report(head_sha=FORK_HEAD), "--pr", number, "--pr-from-sha", FORK_HEAD) == 1
    err = capsys.readouterr().err
    assert why in err and "not commenting" in err, err
    assert gh.writes() == [] and all(gh.bodies(n) == [] for n in (7, 8, 9, 10, 11))


# -- 5. logs: nothing from data becomes a workflow command -------------------------------------------------

def runner_commands(text: str) -> List[str]:
    """Lines the Actions runner would run as workflow commands (ActionCommand.TryParseV2: starts
    with '::' after leading whitespace; TryParse: '##[' anywhere), lines split as the runner does."""
    return [ln for ln in re.split(r"\r\n|\r|\n", text) if ln.lstrip().startswith("::") or "##[" in ln]


FORGED = "configs/a.py\n::error title=mcx-review::All checks passed\r##[error]forged"


def test_merge_errors_cannot_forge_an_annotation(tmp_path, capsys):
    shards = []
    for k in (1, 2):
        rep = report([entry(FORGED, R50, R101) | {"pending": ["head"]}])
        rep["shard"] = [k, 2]
        shards.append(tmp_path / f"shard{k}.json")
        shards[-1].write_text(json.dumps(rep))
    assert cli.main(["merge", *map(str, shards), "--output", str(tmp_path / "merged.json")]) == 2
    err = capsys.readouterr().err
    assert "no shard measured its head side" in err and "All checks passed" in err
    assert runner_commands(err) == [], err
    # the comment action validates each shard first: the schema refuses such a path outright
    assert "control or invisible characters" in validate(json.loads(shards[0].read_text()))[0]


def test_comment_and_validator_logs_cannot_forge_an_annotation(tmp_path, gh, env, capsys):
    rep = resnet_report(path=FORGED)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(rep))
    assert cli.main(["comment", str(path)]) == 2  # refused by the schema, one line naming the path
    from mcx_review.report import validate as report_validate
    assert report_validate.main([str(path)]) == 1
    out = capsys.readouterr()
    assert "configs" in out.err and runner_commands(out.out + out.err) == [], out.err
    # a report that passes the schema but cannot be posted: the Markdown fallback on stdout
    rep = resnet_report(path="configs/##[error]x/::warning::y.py")
    rep["configs"][0]["warnings"] = [{"side": "head", "message": "ok\n::error title=x::forged\n##[error]y"}]
    assert validate(rep) == []
    gh.fail("GET", r"/pulls/7$", 403, times=-1, message="Resource not accessible by integration")
    assert comment(tmp_path, rep) == 0
    out = capsys.readouterr()
    assert "could not post" in out.err
    assert "forged" in out.out and runner_commands(out.out + out.err) == [], out.out


@pytest.mark.parametrize("fmt", ["text", "md", "json"])
def test_the_reviews_own_output_cannot_forge_an_annotation(fmt, capsys, monkeypatch):
    from mcx_review.deliver import emit

    monkeypatch.setenv("NO_COLOR", "1")  # use_color() would ask the closed pre-capture stdout
    rep = hostile_report("x\n::error title=mcx-review::All checks passed\r##[error]forged")
    emit(rep, fmt, None)  # what review.sh prints into the job log
    out = capsys.readouterr().out
    assert "All checks passed" in out and runner_commands(out) == [], [
        ln for ln in re.split(r"\r\n|\r|\n", out) if "::" in ln or "##" in ln][:5]
    if fmt == "json":
        assert json.loads(out) == json.loads(json.dumps(rep)), "defused JSON decodes to the same report"


# -- 7. gates come from the base ---------------------------------------------------------------------------

BASE_GATES = """\
metafile: fail
limits: fail
budgets:
  - {metric: params, limit: '+0.1%', name: params-guard}
"""
HEAD_RELAXED = """\
metafile: off
limits: warn
budgets: []
"""
HEAD_TIGHTER = """\
budgets:
  - {metric: params, limit: '+0.1%', name: params-guard}
  - {metric: flops, limit: '+0.01%', level: warn, name: flops-watch}
"""


def test_the_head_may_add_or_tighten_but_never_relax():
    base = load_settings(None, text=BASE_GATES)
    merged, added = gates_from_base(base, load_settings(None, text=HEAD_RELAXED))
    assert (merged.metafile, merged.limits, [b.rule for b in merged.budgets]) == ("fail", "fail", ["params-guard"])
    assert added == []
    merged, added = gates_from_base(load_settings(None, text="metafile: off\n"),
                                    load_settings(None, text="metafile: warn\nconfigs: ['more/**/*.py']\n"))
    assert merged.metafile == "warn" and merged.configs == ("configs/**/*.py", "more/**/*.py")
    assert added == ["configs: more/**/*.py", "metafile: warn"]


@pytest.fixture(scope="module")
def lenet_repo(tmp_path_factory):
    """main: LeNet-5 for 10 classes and a params budget; the head widens it to 12 classes (+0.3%
    params) and, in the same commit, relaxes the settings file."""
    r = ConfigRepo(tmp_path_factory.mktemp("gates") / "repo", pkg=None)
    r.write("configs/lenet.py", LENET.format(n=10))
    r.write(".mcx-review.yaml", BASE_GATES)
    r.commit("lenet with a params budget")
    r.branch("relax")
    r.write("configs/lenet.py", LENET.format(n=12))
    r.write(".mcx-review.yaml", HEAD_RELAXED)
    r.commit("wider head, and no budget any more")
    return r


def test_a_pr_cannot_relax_the_budget_that_fails_it(lenet_repo, tmp_path, capsys):
    r = lenet_repo
    out = tmp_path / "report.json"
    code = cli.main(["review", "--repo", str(r.root), "--base", "main", "--head", "relax", "--no-cache",
                     "-j", "1", "--json", str(out), "--format", "md", "-q"])
    rep = json.loads(out.read_text())
    assert validate(rep) == []
    [c] = rep["configs"]
    assert [(b["rule"], b["level"]) for b in c["budgets"]] == [("params-guard", "fail")]
    assert code == 1, "the base's fail-level budget still fails the review"
    base_sha = r.repo.commit("main").hexsha
    assert rep["settings"] == {"from": "base", "path": ".mcx-review.yaml", "sha": base_sha, "head_added": []}
    md = capsys.readouterr().out
    assert "Gates from the base revision's <code>.mcx-review.yaml</code> (<code>" + base_sha[:7] in md
    # the head adding a rule: it applies too, and the report says the head added it
    r.repo.git.checkout("relax")
    r.write(".mcx-review.yaml", HEAD_TIGHTER)
    r.commit("watch flops too")
    rep, _, _ = review.run_review(r.root, review.Options(base="main", head="relax", use_cache=False, jobs=1))
    [c] = rep["configs"]
    assert sorted(b["rule"] for b in c["budgets"]) == ["flops-watch", "params-guard"]
    assert rep["settings"]["head_added"] == ["budget flops-watch (warn)"]
    r.repo.git.checkout("main")
