"""``mcx-review comment REPORT.json`` and the review's ``--comment``: post the sticky PR comment.

Needs only the JSON report (validated against the schema first: in the fork-safe flow it is an
untrusted artifact). A failed post is one line on stderr; the Markdown then goes to stdout and the
step summary, and the exit code is 1 only with ``--fail-on-comment-error``.
"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping, Optional

from mcx_review.github import env as github_env
from mcx_review.github.comment import (BEHAVIORS, CommentError, Outcome, PostSettings, PrMismatch, PrQuery, post,
                                       sha_or_none)
from mcx_review.log import inert_lines, log, quiet

# Set to "true" by the actions when the token is the workflow's own (`inputs.token == github.token`):
# its `GET /user` is refused, and its comments are github-actions[bot]'s.
WORKFLOW_TOKEN_ENV = "MCX_REVIEW_WORKFLOW_TOKEN"


EPILOG = """\
exit codes:
  0  posted or updated (or a posting error without --fail-on-comment-error: logged, and the report
     goes to the step summary instead)
  1  the comment could not be posted and --fail-on-comment-error is set
  2  the report cannot be read or does not match the report schema"""


def add_arguments(parser: argparse.ArgumentParser, with_report: bool = True) -> None:
    """The comment flags; ``with_report`` adds the REPORT.json argument (the `comment` subcommand)."""
    from mcx_review.cli.options import positive_int
    if with_report:
        parser.add_argument("report", type=Path, metavar="REPORT.json", help="a report written with --json")
        parser.add_argument("--max-bytes", type=positive_int, default=None, metavar="BYTES",
                            help="refuse a report file larger than this many bytes (default 5 MiB)")
        parser.add_argument("-q", "--quiet", action="store_true", help="no log lines on stderr (errors still show)")
    g = parser.add_argument_group("PR comment")
    g.add_argument("--repo-name", metavar="OWNER/NAME", help="repository (default $GITHUB_REPOSITORY)")
    g.add_argument("--pr", type=positive_int, metavar="N", help="PR number (default: from $GITHUB_EVENT_PATH); with "
                   "--pr-from-sha a claim that is checked: the comment goes to PR N only when it is open and "
                   "its head commit, repository and branch are the run's, else exit 1 and nothing is posted")
    g.add_argument("--pr-from-sha", metavar="SHA",
                   help="find the open PR whose head is SHA through the API (fork-safe workflow_run; "
                        "default in a workflow_run job: the run's head SHA, repository and branch)")
    g.add_argument("--pr-head-repo", metavar="OWNER/NAME", help="with --pr-from-sha: the PR's head repository "
                   "(default: the workflow_run's head_repository)")
    g.add_argument("--pr-head-branch", metavar="BRANCH", help="with --pr-from-sha: the PR's head branch "
                   "(default: the workflow_run's head_branch)")
    g.add_argument("--bot-login", metavar="LOGIN", default=None,
                   help="the login the comment is posted as, e.g. my-app[bot]: required for a token that "
                        "cannot read its user (GitHub App tokens; github-actions[bot] for the workflow's "
                        "GITHUB_TOKEN, which the actions pass by themselves); default the token's user")
    g.add_argument("--max-wait", type=float, metavar="SECONDS", default=None,
                   help="longest wait for a rate limit before giving up (default "
                        "$MCX_REVIEW_GITHUB_MAX_WAIT, else 300)")
    g.add_argument("--token", help="GitHub token (default $GITHUB_TOKEN)")
    g.add_argument("--api-url", help="API root (default $GITHUB_API_URL, else https://api.github.com)")
    g.add_argument("--tag", default=None, help="one comment per tag, for several jobs on one PR (default: "
                   "the settings' comment.tag, else 'default')")
    g.add_argument("--behavior", choices=BEHAVIORS, default=None,
                   help="update the comment in place (default), add a new one, or delete and re-add")
    g.add_argument("--head-sha", metavar="SHA", help="the PR head this report is for (default: from the "
                   "event; a pull_request checkout is a merge commit, so not $GITHUB_SHA)")
    g.add_argument("--fail-on-comment-error", action="store_true",
                   help="exit 1 when the comment cannot be posted (default: say why and exit 0)")


def run(args: argparse.Namespace) -> int:
    """The `comment` subcommand: validate the report file, then post it."""
    from mcx_review.report.validate import DEFAULT_MAX_BYTES, load_validated

    report = load_validated(args.report, args.max_bytes or DEFAULT_MAX_BYTES)  # ReportError: exit 2
    return post_report(report, args, fallback=True)


def post_from_review(report: Mapping[str, Any], args: argparse.Namespace) -> int:
    """The review's ``--comment``. The review has already printed the report and written the step
    summary, so a failure only logs."""
    return post_report(report, args, fallback=False)


def post_report(report: Mapping[str, Any], args: argparse.Namespace, *, fallback: bool = True,
                env: Mapping[str, str] = os.environ) -> int:
    """Post ``report`` with the flags in ``args`` (missing ones default to the environment)."""
    say = quiet if getattr(args, "quiet", False) else log
    event = github_env.load_event(env)
    pr_number: Optional[int] = getattr(args, "pr", None)
    query = None
    if pr_number is None or getattr(args, "pr_from_sha", None) or github_env.workflow_run_pr(event) is not None:
        # in a workflow_run job a --pr N may come from the other run's artifact: a claim, checked
        query = pr_query(event, getattr(args, "pr_from_sha", None), getattr(args, "pr_head_repo", None),
                         getattr(args, "pr_head_branch", None))
        if query is not None and pr_number is not None:
            query, pr_number = replace(query, claimed=pr_number), None  # checked, not trusted
        elif query is None:
            pr_number = github_env.pr_number(event)
    head = report.get("head") or {}
    head_sha = sha_or_none([getattr(args, "head_sha", None), github_env.head_sha(event),
                            head.get("sha") if head.get("kind", "commit") == "commit" else None])
    settings = PostSettings.from_env(env)
    if getattr(args, "max_wait", None) is not None and args.max_wait >= 0:
        settings = replace(settings, max_wait=float(args.max_wait))
    try:
        outcome = post(report, repo_name=getattr(args, "repo_name", None) or github_env.repository(env) or "",
                       pr_number=pr_number, token=getattr(args, "token", None) or env.get("GITHUB_TOKEN", ""),
                       api_url=getattr(args, "api_url", None) or github_env.api_url(env),
                       tag=getattr(args, "tag", None) or _setting(args, "tag") or "default",
                       behavior=getattr(args, "behavior", None) or _setting(args, "behavior") or "update",
                       login=getattr(args, "bot_login", None) or None,
                       workflow_token=env.get(WORKFLOW_TOKEN_ENV) == "true",
                       from_pr_run=query is not None or github_env.workflow_run_pr(event) is not None,
                       head_sha=head_sha, pr_query=query, settings=settings, log=say)
    except CommentError as exc:
        log(f"could not post the PR comment: {exc}")
        if fallback:
            _fallback(report, env)
        return 1 if getattr(args, "fail_on_comment_error", False) or isinstance(exc, PrMismatch) else 0
    say(_describe(outcome))
    return 0


def pr_query(event: Mapping[str, Any], sha: Optional[str], head_repo: Optional[str] = None,
             head_branch: Optional[str] = None) -> Optional[PrQuery]:
    """How to find the PR of a workflow_run job: ``--pr-from-sha`` or the run's head SHA, narrowed
    by the run's head repository and branch and its ``pull_requests`` (when the SHA is the run's);
    None when neither a SHA nor a workflow_run event says anything."""
    run = github_env.workflow_run_pr(event)
    if not sha:
        if run is None:
            return None
        sha = run["head_sha"]
    sha = sha.strip().lower()
    same = run if run is not None and run["head_sha"] == sha else None  # the run is the SHA's own
    return PrQuery(sha, head_repo=head_repo or (same["head_repo"] if same else None),
                   head_branch=head_branch or (same["head_branch"] if same else None),
                   numbers=tuple(same["numbers"]) if same else ())


def _setting(args: argparse.Namespace, key: str) -> Optional[str]:
    """``comment.<key>`` from the settings file the review was given (``--config``), if any."""
    path = getattr(args, "settings", None)
    if not path:
        return None
    try:
        from mcx_review.settings import load_settings

        value = getattr(load_settings(Path(path)).comment, key, None)
    except Exception:  # noqa: BLE001 - the review already reported a bad settings file
        return None
    return str(value) if value else None


def _describe(o: Outcome) -> str:
    where = f" {o.url}" if o.url else ""
    text = {"created": "PR comment created", "updated": "PR comment updated",
            "recreated": "PR comment replaced", "unchanged": "PR comment unchanged",
            "skipped": "no PR comment", "stale": "PR comment left alone"}.get(o.action, o.action)
    return f"{text}{where}" + (f": {o.detail}" if o.detail else "")


def _fallback(report: Mapping[str, Any], env: Mapping[str, str]) -> None:
    """Where the comment could not go: the Markdown to stdout and the step summary."""
    from mcx_review.render.markdown import render_markdown

    text = render_markdown(report)
    out = inert_lines(text)  # stdout is the Actions log
    sys.stdout.write(out if out.endswith("\n") else out + "\n")
    sys.stdout.flush()
    github_env.append_step_summary(text, env)
