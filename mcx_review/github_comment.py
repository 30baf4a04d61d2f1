"""The sticky PR comment, posted with PyGithub.

One comment per PR and tag, found by a hidden marker among the comments its author wrote. The
whole find-and-write is idempotent (an identical body is never written again), so it is retried as
a unit on 5xx, secondary rate limits and timeouts: a write that succeeded just before a timeout is
found on the next attempt instead of being repeated.

Reads only report JSON; never imports torch, mmengine or config code.
"""
from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Sequence, Tuple, TypeVar

MAX_BODY = 65536  # GitHub's limit on a comment body, in characters
BOT_LOGIN = "github-actions[bot]"  # who GITHUB_TOKEN writes as; its `GET /user` is refused
BEHAVIORS = ("update", "new", "delete-and-new")
MARKER_RE = re.compile(r"<!-- mcx-review:v1 tag=([A-Za-z0-9._-]+) head=([0-9a-f]*|unknown) -->")
TAG_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# '@' followed by a name char and not already broken by an invisible joiner: a would-be mention.
_MENTION_RE = re.compile(r"@(?=[A-Za-z0-9_-])")
_JOINERS = "\u200b\u200c\u200d\u2060"

Log = Callable[[str], None]
T = TypeVar("T")


class CommentError(Exception):
    """Posting failed for a reason worth one line (no traceback)."""


@dataclass(frozen=True)
class PostSettings:
    """How hard to try. Environment overrides keep tests fast and let CI tune it."""

    retries: int = 4  # attempts after the first
    backoff: float = 2.0  # seconds before the first retry, doubled each time
    max_wait: float = 60.0  # longest single wait, Retry-After included
    timeout: int = 15  # seconds per HTTP request (PyGithub takes whole seconds)
    write_pause: float = 1.0  # PyGithub's pause between writes (GitHub asks for >= 1 s)

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> "PostSettings":
        def num(name: str, default: float) -> float:
            try:
                value = float(env.get(f"MCX_REVIEW_GITHUB_{name}", default))
            except ValueError:
                return default
            return value if value >= 0 else default

        d = cls()
        return cls(retries=int(num("RETRIES", d.retries)), backoff=num("BACKOFF", d.backoff),
                   max_wait=num("MAX_WAIT", d.max_wait), timeout=max(1, round(num("TIMEOUT", d.timeout))),
                   write_pause=num("WRITE_PAUSE", d.write_pause))


@dataclass(frozen=True)
class Outcome:
    action: str  # created | updated | unchanged | skipped | stale | recreated
    comment_id: Optional[int] = None
    url: Optional[str] = None
    detail: str = ""


# -- pure parts --------------------------------------------------------------------------------

def marker(tag: str, head_sha: Optional[str]) -> str:
    return f"<!-- mcx-review:v1 tag={tag} head={head_sha or 'unknown'} -->"


def parse_marker(body: Optional[str]) -> Optional[Tuple[str, str]]:
    """(tag, head sha) of the marker a comment starts with, or None."""
    m = MARKER_RE.match((body or "").lstrip())
    return (m.group(1), m.group(2)) if m else None


def neutralise_mentions(text: str) -> str:
    """Put a zero-width joiner after every ``@`` that would mention someone. Idempotent, and leaves
    an ``@`` already followed by any invisible joiner alone (the renderer may have done it)."""
    return _MENTION_RE.sub("@\u200d", text)


def has_changes(report: Mapping[str, Any]) -> bool:
    return any(c.get("status") != "unchanged" for c in report.get("configs", []))


def _cut(text: str, limit: int) -> str:
    """Last-resort cut at a line boundary, saying so (the renderer should have made it fit)."""
    note = "\n\n_(comment cut to GitHub's size limit; the full report is in the job's summary)_\n"
    if len(text) <= limit:
        return text
    head = text[: max(0, limit - len(note))]
    if "\n" in head:
        head = head[: head.rindex("\n")]
    return head + note


def compose_body(report: Mapping[str, Any], tag: str, head_sha: Optional[str],
                 max_chars: int = MAX_BODY, markdown: Optional[str] = None) -> str:
    """Marker line + the rendered report, mentions neutralised, within ``max_chars``.

    The renderer is given the room left after the marker and cuts per-module details first; if
    neutralising mentions pushed it over, it is asked again with less room; a hard cut guards last.
    ``markdown`` replaces rendering (a report already rendered elsewhere).
    """
    head = marker(tag, head_sha) + "\n"
    room = max_chars - len(head)
    if markdown is not None:
        return head + _cut(neutralise_mentions(markdown), room)
    from mcx_review.render_markdown import render_markdown

    text = ""
    for _ in range(3):
        text = neutralise_mentions(render_markdown(report, max_chars=room))  # type: ignore[arg-type]
        if len(head) + len(text) <= max_chars:
            break
        room -= len(head) + len(text) - max_chars
    return head + _cut(text, max_chars - len(head))


def _same_body(a: Optional[str], b: str) -> bool:
    return (a or "").replace("\r\n", "\n").rstrip() == b.replace("\r\n", "\n").rstrip()


# -- errors and retries --------------------------------------------------------------------------

def _retry_after(exc: Any) -> Optional[float]:
    headers = getattr(exc, "headers", None) or {}
    for key, value in dict(headers).items():
        if key.lower() == "retry-after":
            try:
                return max(0.0, float(value))
            except (TypeError, ValueError):
                return None
    return None


def _message(exc: Any) -> str:
    data = getattr(exc, "data", None)
    if isinstance(data, dict) and data.get("message"):
        return str(data["message"])
    return str(data or exc).strip().splitlines()[0] if str(data or exc).strip() else type(exc).__name__


def retryable(exc: BaseException) -> bool:
    """5xx, 429, a 403 that is a rate limit (Retry-After, or says so), timeouts, dropped connections."""
    import requests
    from github import GithubException

    if isinstance(exc, (requests.exceptions.Timeout, requests.exceptions.ConnectionError)):
        return True
    if isinstance(exc, GithubException):
        status = exc.status or 0
        if status >= 500 or status == 429:
            return True
        if status == 403:
            return _retry_after(exc) is not None or "rate limit" in _message(exc).lower()
    return False


def describe(exc: BaseException) -> str:
    """One line for a log: what failed and why."""
    import requests
    from github import GithubException

    if isinstance(exc, CommentError):
        return str(exc)
    if isinstance(exc, requests.exceptions.Timeout):
        return "GitHub did not answer in time"
    if isinstance(exc, requests.exceptions.ConnectionError):
        return f"cannot reach the GitHub API ({type(exc).__name__})"
    if isinstance(exc, GithubException):
        hint = ""
        if exc.status == 403 and not retryable(exc):
            hint = (" (the token may not allow writing PR comments: fork PRs get a read-only token; "
                    "use the workflow_run comment job)")
        elif exc.status == 401:
            hint = " (bad or expired token)"
        elif exc.status == 404:
            hint = " (no such repository or PR, or the token cannot see it)"
        return f"GitHub API answered {exc.status}: {_message(exc)}{hint}"
    return f"{type(exc).__name__}: {exc}"


def with_retries(fn: Callable[[], T], settings: PostSettings, log: Log,
                 sleep: Callable[[float], None] = time.sleep) -> T:
    attempt = 0
    while True:
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - classified just below
            if not retryable(exc) or attempt >= settings.retries:
                raise
            wait = settings.backoff * (2 ** attempt)
            after = _retry_after(exc)
            if after is not None:
                wait = max(wait, after)
            wait = min(wait, settings.max_wait)
            attempt += 1
            log(f"{describe(exc)}; retry {attempt}/{settings.retries} in {wait:g}s")
            sleep(wait)


# -- talking to GitHub ---------------------------------------------------------------------------

def client(token: str, api_url: str, settings: PostSettings) -> Any:
    """A PyGithub client with its own retries off (ours wrap the whole idempotent sync)."""
    from github import Auth, Github

    return Github(auth=Auth.Token(token), base_url=api_url.rstrip("/"), timeout=settings.timeout,
                  retry=None, per_page=100, seconds_between_requests=None,
                  seconds_between_writes=settings.write_pause or None, lazy=True)


def author_login(gh: Any) -> str:
    """The token's user; the Actions token may not call `GET /user`, and then it is the bot."""
    from github import GithubException

    try:
        return str(gh.get_user().login)
    except GithubException as exc:
        if retryable(exc):
            raise
        return BOT_LOGIN


def find_pr_by_sha(gh: Any, repo_name: str, sha: str) -> int:
    """The open PR whose head is ``sha``, looked up through the API (trusted data: a fork PR's
    ``workflow_run.pull_requests`` is empty, and a number written by PR code must not be trusted)."""
    sha = sha.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{40}", sha):
        raise CommentError(f"--pr-from-sha needs a full 40-hex commit SHA, got {sha[:50]!r}")
    repo = gh.get_repo(repo_name)
    found = [pr.number for pr in repo.get_pulls(state="open", sort="updated", direction="desc")
             if pr.head.sha == sha]
    if not found:
        raise CommentError(f"no open PR in {repo_name} has head {sha[:12]} (closed, or pushed to since)")
    if len(found) > 1:
        raise CommentError(f"{len(found)} open PRs in {repo_name} have head {sha[:12]} "
                           f"(#{', #'.join(map(str, found))}); pass --pr")
    return int(found[0])


def sync_comment(gh: Any, repo_name: str, pr_number: int, body: str, *, tag: str, head_sha: Optional[str],
                 behavior: str = "update", changes: bool = True) -> Outcome:
    """Bring the PR's sticky comment for ``tag`` to ``body``; see the module doc. Raises PyGithub or
    requests exceptions (retry decides), or CommentError."""
    repo = gh.get_repo(repo_name)
    pr = repo.get_pull(pr_number)
    current = pr.head.sha
    if head_sha and current and current != head_sha:
        return Outcome("stale", detail=f"PR #{pr_number} head is now {current[:12]}, this report is for "
                                       f"{head_sha[:12]}; a newer run owns the comment")
    me = author_login(gh).lower()
    mine = [c for c in pr.get_issue_comments()
            if c.user is not None and str(c.user.login).lower() == me
            and (parse_marker(c.body) or ("", ""))[0] == tag]
    if not mine and not changes:
        return Outcome("skipped", detail="no model changes and no earlier comment: nothing to say")
    latest = mine[-1] if mine else None
    if latest is not None and _same_body(latest.body, body) and (behavior != "delete-and-new" or len(mine) == 1):
        return Outcome("unchanged", latest.id, latest.html_url, "the comment already says this")
    if behavior == "update" and latest is not None:
        latest.edit(body)
        return Outcome("updated", latest.id, latest.html_url)
    if behavior == "delete-and-new":
        for c in mine:
            c.delete()
    c = pr.create_issue_comment(body)
    return Outcome("recreated" if behavior == "delete-and-new" and mine else "created", c.id, c.html_url)


def post(report: Mapping[str, Any], *, repo_name: str, pr_number: Optional[int], token: str, api_url: str,
         tag: str = "default", behavior: str = "update", head_sha: Optional[str] = None,
         pr_from_sha: Optional[str] = None, settings: Optional[PostSettings] = None,
         log: Log = lambda m: None, markdown: Optional[str] = None) -> Outcome:
    """Find the PR (number, or by head SHA), compose the body and sync it, with retries.
    Raises CommentError (one line) when it cannot."""
    if behavior not in BEHAVIORS:
        raise CommentError(f"--behavior must be one of {', '.join(BEHAVIORS)}, got {behavior!r}")
    if not TAG_RE.match(tag):
        raise CommentError(f"--tag may hold letters, digits, '.', '_' and '-' (up to 64), got {tag[:80]!r}")
    if not token:
        raise CommentError("no GitHub token: set GITHUB_TOKEN or pass --token")
    if not repo_name or not re.fullmatch(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", repo_name):
        raise CommentError(f"no repository as OWNER/NAME: set GITHUB_REPOSITORY or pass --repo-name "
                           f"(got {repo_name!r})")
    settings = settings or PostSettings.from_env()
    gh = client(token, api_url, settings)
    try:
        if pr_number is None and pr_from_sha:
            pr_number = with_retries(lambda: find_pr_by_sha(gh, repo_name, pr_from_sha), settings, log)
            head_sha = head_sha or pr_from_sha.strip().lower()
        if pr_number is None:
            raise CommentError("no PR to comment on: pass --pr or --pr-from-sha, or run on a pull_request event")
        body = compose_body(report, tag, head_sha, markdown=markdown)
        changes = has_changes(report)
        number = pr_number
        return with_retries(lambda: sync_comment(gh, repo_name, number, body, tag=tag, head_sha=head_sha,
                                                 behavior=behavior, changes=changes), settings, log)
    except CommentError:
        raise
    except Exception as exc:  # noqa: BLE001 - every failure becomes one clear line
        raise CommentError(describe(exc)) from None
    finally:
        gh.close()


def sha_or_none(values: Sequence[Optional[str]]) -> Optional[str]:
    """The first full lowercase hex SHA among ``values``."""
    for v in values:
        if isinstance(v, str) and re.fullmatch(r"[0-9a-fA-F]{40}", v.strip()):
            return v.strip().lower()
    return None
