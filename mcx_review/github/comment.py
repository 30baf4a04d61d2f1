"""The sticky PR comment, posted with PyGithub.

One comment per PR and tag: the body starts with a hidden marker, and the comment is ours when it
carries the marker and was written by us: the login given (``--bot-login``), else the token's user
(``GET /user``), else ``github-actions[bot]`` when the token is the workflow's own (the actions
say so); any other token that may not read ``GET /user`` (a GitHub App installation token) needs
``--bot-login``. A comment by any other author is never edited or deleted, whatever its text. After writing, the comments are listed again: when
overlapping runs left more than one for the tag, the oldest is kept, brought up to date (the
body for the PR's current head) and the rest deleted, so concurrent runs converge on one comment.

The whole find-and-write is idempotent (an identical body is never written again), so it is retried
as a unit on 5xx, rate limits and timeouts: a write that succeeded just before a timeout is found
on the next attempt instead of being repeated. Rate limits are waited out as GitHub asks
(``Retry-After``; ``x-ratelimit-reset`` when ``x-ratelimit-remaining`` is 0; at least 60 s for a
secondary limit), up to ``max_wait`` per wait, beyond which it gives up with one line.

Reads only report JSON; never imports torch, mmengine or config code.
"""
from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, TypeVar

from mcx_review.log import Log
from mcx_review.report.outcome import has_changes

MAX_BODY = 65536  # GitHub's limit on a comment body, in characters
BOT_LOGIN = "github-actions[bot]"  # who GITHUB_TOKEN writes as; its `GET /user` is refused
SECONDARY_WAIT = 60.0  # GitHub: after a secondary rate limit without headers, wait at least a minute
LOGIN_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,38}(\[bot\])?$")
BEHAVIORS = ("update", "new", "delete-and-new")
MARKER_RE = re.compile(r"<!-- mcx-review:v1 tag=([A-Za-z0-9._-]+) head=([0-9a-f]*|unknown) -->")
TAG_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# '@' followed by a name char and not already broken by an invisible joiner: a would-be mention.
_MENTION_RE = re.compile(r"@(?=[A-Za-z0-9_-])")
_JOINERS = "\u200b\u200c\u200d\u2060"

T = TypeVar("T")


class CommentError(Exception):
    """Posting failed for a reason worth one line (no traceback)."""


class PrMismatch(CommentError):
    """The PR number given (``--pr`` with ``--pr-from-sha``: read from an untrusted artifact) is
    not the run's PR; nothing is posted and the command fails whatever --fail-on-comment-error."""


@dataclass(frozen=True)
class PostSettings:
    """How hard to try. Environment overrides keep tests fast and let CI tune it."""

    retries: int = 4  # attempts after the first
    backoff: float = 2.0  # seconds before the first retry, doubled each time
    max_wait: float = 300.0  # longest single wait; a rate limit asking for more is given up on
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
    # (each may add ", duplicates removed" in ``detail`` after healing a race)
    comment_id: Optional[int] = None
    url: Optional[str] = None
    detail: str = ""


@dataclass(frozen=True)
class Identity:
    """Whose comments are ours: exactly one login (never "any bot": another app's comment that
    starts with our marker is not ours)."""

    login: str

    def owns(self, user: Any) -> bool:
        return user is not None and str(getattr(user, "login", "")).lower() == self.login.lower()

    def __str__(self) -> str:
        return self.login


@dataclass(frozen=True)
class PrQuery:
    """How to find the PR of a ``workflow_run`` (or ``--pr-from-sha``) run from trusted data:
    the run's head SHA, and when known its head repository and branch, and the PR numbers GitHub
    put in ``workflow_run.pull_requests`` (empty for fork PRs)."""

    head_sha: str
    head_repo: Optional[str] = None
    head_branch: Optional[str] = None
    numbers: Tuple[int, ...] = ()
    claimed: Optional[int] = None  # --pr N given with --pr-from-sha: N is checked, never trusted


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


def _cut(text: str, limit: int) -> str:
    """Last-resort cut that says so, never inside an entity or an open tag (the renderer should
    have made it fit)."""
    from mcx_review.render.markdown import cut_markup

    note = "\n\n_(comment cut to GitHub's size limit; the full report is in the job's summary)_\n"
    return cut_markup(text, limit, note)


FROM_PR_RUN = ("<sub>Fork-safe flow: every number and verdict above was computed by the PR's own workflow run "
               "(code the PR can change) and posted from its artifact, which was only checked for form; they "
               "are as trustworthy as that run.</sub>\n")


def compose_body(report: Mapping[str, Any], tag: str, head_sha: Optional[str],
                 max_chars: int = MAX_BODY, markdown: Optional[str] = None, from_pr_run: bool = False) -> str:
    """Marker line + the rendered report, mentions neutralised, within ``max_chars``.

    The renderer is given the room left after the marker and cuts per-module details first; if
    neutralising mentions pushed it over, it is asked again with less room; a hard cut guards last.
    ``markdown`` replaces rendering (a report already rendered elsewhere). ``from_pr_run``: the
    report is an artifact of the PR's own run (the fork-safe flow), and the body ends saying so.
    """
    head = marker(tag, head_sha) + "\n"
    tail = "\n" + FROM_PR_RUN if from_pr_run else ""
    room = max_chars - len(head) - len(tail)
    if markdown is not None:
        return head + _cut(neutralise_mentions(markdown), room) + tail
    from mcx_review.render.markdown import render_markdown

    text = ""
    for _ in range(3):
        text = neutralise_mentions(render_markdown(report, max_chars=room))
        if len(head) + len(text) + len(tail) <= max_chars:
            break
        room -= len(head) + len(text) + len(tail) - max_chars
    return head + _cut(text, max_chars - len(head) - len(tail)) + tail


def _same_body(a: Optional[str], b: str) -> bool:
    return (a or "").replace("\r\n", "\n").rstrip() == b.replace("\r\n", "\n").rstrip()


# -- errors and retries --------------------------------------------------------------------------

def _headers(exc: Any) -> Dict[str, str]:
    return {str(k).lower(): str(v) for k, v in dict(getattr(exc, "headers", None) or {}).items()}


def _retry_after(exc: Any) -> Optional[float]:
    value = _headers(exc).get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _message(exc: Any) -> str:
    data = getattr(exc, "data", None)
    if isinstance(data, dict) and data.get("message"):
        return str(data["message"])
    return str(data or exc).strip().splitlines()[0] if str(data or exc).strip() else type(exc).__name__


def rate_limited(exc: BaseException) -> bool:
    """A 429, or a 403 that is a rate limit (says so, has Retry-After, or no requests remain)."""
    from github import GithubException

    if not isinstance(exc, GithubException):
        return False
    if exc.status == 429:
        return True
    if exc.status != 403:
        return False
    h = _headers(exc)
    return "retry-after" in h or h.get("x-ratelimit-remaining") == "0" or "rate limit" in _message(exc).lower()


def retryable(exc: BaseException) -> bool:
    """5xx, rate limits, timeouts, dropped connections."""
    import requests
    from github import GithubException

    if isinstance(exc, (requests.exceptions.Timeout, requests.exceptions.ConnectionError)):
        return True
    if isinstance(exc, GithubException):
        return (exc.status or 0) >= 500 or rate_limited(exc)
    return False


def wait_for(exc: BaseException, attempt: int, settings: PostSettings,
             now: Callable[[], float] = time.time) -> Tuple[float, bool]:
    """(seconds to wait before retry ``attempt`` (0-based), whether GitHub asked for it). A rate
    limit waits as GitHub's docs say: ``Retry-After``; else ``x-ratelimit-reset`` when no requests
    remain; else at least a minute. Other failures back off exponentially."""
    backoff = settings.backoff * (2 ** attempt)
    if not rate_limited(exc):
        return backoff, False
    after = _retry_after(exc)
    if after is not None:
        return after, True
    h = _headers(exc)
    if h.get("x-ratelimit-remaining") == "0" and h.get("x-ratelimit-reset"):
        try:
            return max(0.0, float(h["x-ratelimit-reset"]) - now()) + 1.0, True
        except ValueError:
            pass
    return max(SECONDARY_WAIT, backoff), True


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
                 sleep: Callable[[float], None] = time.sleep, now: Callable[[], float] = time.time) -> T:
    attempt = 0
    while True:
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - classified just below
            if not retryable(exc) or attempt >= settings.retries:
                raise
            wait, asked = wait_for(exc, attempt, settings, now)
            if asked and wait > settings.max_wait:
                raise CommentError(f"{describe(exc)}; GitHub asks to wait {wait:.0f}s, more than the "
                                   f"{settings.max_wait:g}s allowed (--max-wait, MCX_REVIEW_GITHUB_MAX_WAIT): "
                                   f"giving up") from None
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


def identity(gh: Any, login: Optional[str] = None, workflow_token: bool = False) -> Identity:
    """Who we are: the login given, else the token's user. A token refused `GET /user` is the
    workflow's own (``github-actions[bot]``) when ``workflow_token`` says so; any other (a GitHub
    App installation token) cannot tell, so ``--bot-login`` is required."""
    from github import GithubException

    if login:
        return Identity(login)
    try:
        return Identity(str(gh.get_user().login))
    except GithubException as exc:
        if retryable(exc) or exc.status == 401:
            raise
    if workflow_token:
        return Identity(BOT_LOGIN)
    raise CommentError("this token cannot read its own user (GET /user refused), so which comments are ours "
                       "is unknown: pass the login it posts as with --bot-login (the bot-login input), e.g. "
                       f"my-app[bot] for a GitHub App token, {BOT_LOGIN} for the workflow's GITHUB_TOKEN")


def find_pr(gh: Any, repo_name: str, query: PrQuery) -> int:
    """The open PR a workflow_run belongs to, from trusted data only (a PR number written by PR
    code is never used): one of ``workflow_run.pull_requests`` when GitHub gave any, else through
    the API the open PR whose head commit, head repository and head branch all match the run's.
    Another fork's PR with the same head commit matches neither, so it cannot block or receive
    the comment."""
    sha = query.head_sha.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{40}", sha):
        raise CommentError(f"--pr-from-sha needs a full 40-hex commit SHA, got {sha[:50]!r}")
    if query.claimed is not None:
        return check_pr(gh, repo_name, query, sha)
    if len(set(query.numbers)) == 1:
        return int(query.numbers[0])
    repo = gh.get_repo(repo_name)
    found = []
    for pr in repo.get_pulls(state="open", sort="updated", direction="desc"):
        if pr.head.sha != sha:
            continue
        if query.numbers and pr.number not in query.numbers:
            continue
        head_repo = pr.head.repo.full_name if pr.head.repo is not None else None
        if query.head_repo and (head_repo or "").lower() != query.head_repo.lower():
            continue
        if query.head_branch and pr.head.ref != query.head_branch:
            continue
        found.append(pr.number)
    what = f"head {sha[:12]}" + (f" from {query.head_repo}" if query.head_repo else "") + \
        (f" branch {query.head_branch!r}" if query.head_branch else "")
    if not found:
        raise CommentError(f"no open PR in {repo_name} has {what} (closed, or pushed to since)")
    if len(found) > 1:
        raise CommentError(f"{len(found)} open PRs in {repo_name} have {what} "
                           f"(#{', #'.join(map(str, found))}); pass the run's PR as --pr N with --pr-from-sha "
                           f"(the fork-safe example reads N from the artifact and checks it)")
    return int(found[0])


def check_pr(gh: Any, repo_name: str, query: PrQuery, sha: str) -> int:
    """``query.claimed`` when that PR is open and its head commit, head repository and head
    branch are the run's (those known); else PrMismatch. The number comes from an artifact the
    PR's own run wrote, so it only picks among the PRs that match (one fork branch opened into
    two base branches), it can never point the comment elsewhere."""
    from github import GithubException

    number = int(query.claimed or 0)
    if number <= 0:
        raise PrMismatch(f"--pr must be a PR number, got {number}")
    try:
        pr = gh.get_repo(repo_name).get_pull(number)
        state, head_sha, ref = pr.state, pr.head.sha, pr.head.ref
        head_repo = pr.head.repo.full_name if pr.head.repo is not None else None
    except GithubException as exc:
        if exc.status == 404:
            raise PrMismatch(f"PR #{number} does not exist in {repo_name}: not commenting") from None
        raise
    problems = []
    if state != "open":
        problems.append(f"it is {state}")
    if str(head_sha).lower() != sha:
        problems.append(f"its head is {str(head_sha)[:12]}, not {sha[:12]}")
    if query.head_repo and (head_repo or "").lower() != query.head_repo.lower():
        problems.append(f"its head repository is {head_repo}, not {query.head_repo}")
    if query.head_branch and ref != query.head_branch:
        problems.append(f"its head branch is {ref!r}, not {query.head_branch!r}")
    if query.numbers and number not in query.numbers:
        problems.append(f"the run names PR #{', #'.join(map(str, query.numbers))}")
    if problems:
        raise PrMismatch(f"PR #{number} is not this run's PR ({'; '.join(problems)}): not commenting")
    return number


def find_pr_by_sha(gh: Any, repo_name: str, sha: str) -> int:
    """The open PR whose head is ``sha`` (no repository or branch to narrow it down)."""
    return find_pr(gh, repo_name, PrQuery(sha))


def _ours(pr: Any, who: Identity, tag: str) -> List[Any]:
    return [c for c in pr.get_issue_comments()
            if (parse_marker(c.body) or ("", ""))[0] == tag and who.owns(c.user)]


def sync_comment(gh: Any, repo_name: str, pr_number: int, body: str, *, tag: str, head_sha: Optional[str],
                 behavior: str = "update", changes: bool = True, login: Optional[str] = None,
                 workflow_token: bool = False) -> Outcome:
    """Bring the PR's sticky comment for ``tag`` to ``body``, then heal a race; see the module
    doc. Raises PyGithub or requests exceptions (retry decides), or CommentError."""
    repo = gh.get_repo(repo_name)
    pr = repo.get_pull(pr_number)
    current = pr.head.sha
    if head_sha and current and current != head_sha:
        return Outcome("stale", detail=f"PR #{pr_number} head is now {current[:12]}, this report is for "
                                       f"{head_sha[:12]}; a newer run owns the comment")
    who = identity(gh, login, workflow_token)
    mine = _ours(pr, who, tag)
    if not mine and not changes:
        return Outcome("skipped", detail="no model changes and no earlier comment: nothing to say")
    latest = mine[-1] if mine else None
    if latest is not None and _same_body(latest.body, body) and (behavior != "delete-and-new" or len(mine) == 1):
        outcome = Outcome("unchanged", latest.id, latest.html_url, "the comment already says this")
    elif behavior == "update" and latest is not None:
        latest.edit(body)
        outcome = Outcome("updated", latest.id, latest.html_url)
    else:
        if behavior == "delete-and-new":
            for c in mine:
                _delete(c)
        c = pr.create_issue_comment(body)
        _check_author(c, who)
        outcome = Outcome("recreated" if behavior == "delete-and-new" and mine else "created", c.id, c.html_url)
    if behavior == "new" or (outcome.action == "unchanged" and len(mine) == 1):
        return outcome  # nothing written and nothing to fold: no need to look again
    return _heal(gh, repo, pr_number, body, tag=tag, head_sha=head_sha, who=who,
                 keep_newest=behavior == "delete-and-new", outcome=outcome)


def _heal(gh: Any, repo: Any, pr_number: int, body: str, *, tag: str, head_sha: Optional[str], who: Identity,
          keep_newest: bool, outcome: Outcome) -> Outcome:
    """List again; with more than one comment of ours for ``tag`` (overlapping runs), keep the
    oldest (the newest for delete-and-new), give it the body for the PR's current head, delete the
    rest. Every run that sees the race does the same, so they converge whatever the interleaving."""
    pr = repo.get_pull(pr_number)
    mine = _ours(pr, who, tag)
    if len(mine) <= 1:
        return outcome
    keep = mine[-1] if keep_newest else mine[0]
    current = pr.head.sha
    wanted = body
    if head_sha and current and head_sha != current:  # we are stale: the current head's run has the body
        newest = [c for c in mine if (parse_marker(c.body) or ("", ""))[1] == current]
        wanted = newest[-1].body if newest else keep.body
    if not _same_body(keep.body, wanted):
        keep.edit(wanted)
    for c in mine:
        if c.id != keep.id:
            _delete(c)
    return Outcome(outcome.action, keep.id, keep.html_url,
                   (outcome.detail + "; " if outcome.detail else "") +
                   f"{len(mine) - 1} duplicate comment(s) from overlapping runs removed")


def _check_author(comment: Any, who: Identity) -> None:
    """The comment just created is ours by the identity used to find ours, else that identity is
    wrong (a ``--bot-login`` that is not the token's): take it back and say so, rather than leave a
    comment no later run would recognise (or worse, recognise another author's)."""
    if who.owns(comment.user):
        return
    author = str(getattr(comment.user, "login", "?"))
    _delete(comment)
    raise CommentError(f"the comment was posted as {author}, not {who.login}: pass --bot-login {author} "
                       f"(the bot-login input); the comment was taken back")


def _delete(comment: Any) -> None:
    """Delete a comment; one already deleted (by a concurrent run) is fine."""
    from github import GithubException

    try:
        comment.delete()
    except GithubException as exc:
        if exc.status != 404:
            raise


def post(report: Mapping[str, Any], *, repo_name: str, pr_number: Optional[int], token: str, api_url: str,
         tag: str = "default", behavior: str = "update", head_sha: Optional[str] = None,
         pr_from_sha: Optional[str] = None, pr_query: Optional[PrQuery] = None, login: Optional[str] = None,
         workflow_token: bool = False, from_pr_run: bool = False, settings: Optional[PostSettings] = None, log: Log = lambda m: None, markdown: Optional[str] = None,
         sleep: Callable[[float], None] = time.sleep) -> Outcome:
    """Find the PR (number, or ``pr_query`` / ``pr_from_sha`` for a workflow_run), compose the body
    and sync it, with retries. Raises CommentError (one line) when it cannot."""
    if behavior not in BEHAVIORS:
        raise CommentError(f"--behavior must be one of {', '.join(BEHAVIORS)}, got {behavior!r}")
    if not TAG_RE.match(tag):
        raise CommentError(f"--tag may hold letters, digits, '.', '_' and '-' (up to 64), got {tag[:80]!r}")
    if login is not None and not LOGIN_RE.match(login):
        raise CommentError(f"--bot-login must be a GitHub login such as 'my-app[bot]', got {login[:80]!r}")
    if not token:
        raise CommentError("no GitHub token: set GITHUB_TOKEN or pass --token")
    if not repo_name or not re.fullmatch(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", repo_name):
        raise CommentError(f"no repository as OWNER/NAME: set GITHUB_REPOSITORY or pass --repo-name "
                           f"(got {repo_name!r})")
    settings = settings or PostSettings.from_env()
    if pr_query is None and pr_from_sha:
        pr_query = PrQuery(pr_from_sha)
    gh = client(token, api_url, settings)
    try:
        if pr_number is None and pr_query is not None:
            query = pr_query
            pr_number = with_retries(lambda: find_pr(gh, repo_name, query), settings, log, sleep)
            head_sha = head_sha or query.head_sha.strip().lower()
        if pr_number is None:
            raise CommentError("no PR to comment on: pass --pr or --pr-from-sha, or run on a pull_request event")
        body = compose_body(report, tag, head_sha, markdown=markdown, from_pr_run=from_pr_run)
        changes = has_changes(report)
        number = pr_number
        return with_retries(lambda: sync_comment(gh, repo_name, number, body, tag=tag, head_sha=head_sha,
                                                 behavior=behavior, changes=changes, login=login,
                                                 workflow_token=workflow_token),
                            settings, log, sleep)
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
