"""The GitHub Actions environment: the event JSON, PR number and head SHA, `$GITHUB_OUTPUT` and
`$GITHUB_STEP_SUMMARY`.

Pure stdlib; reading the event never raises (a missing or malformed event just gives ``None``).
"""
from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, TypedDict

# GitHub refuses step summaries over 1 MiB per step; stay under it with room for other writers.
SUMMARY_LIMIT = 1000 * 1024


def in_actions(env: Mapping[str, str] = os.environ) -> bool:
    return env.get("GITHUB_ACTIONS") == "true"


def load_event(env: Mapping[str, str] = os.environ) -> Dict[str, Any]:
    """The webhook payload of the running workflow, or ``{}`` outside Actions or when unreadable."""
    path = env.get("GITHUB_EVENT_PATH")
    if not path:
        return {}
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _positive_int(value: Any) -> Optional[int]:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _sha(value: Any) -> Optional[str]:
    if isinstance(value, str) and len(value) == 40 and all(c in "0123456789abcdef" for c in value.lower()):
        return value.lower()
    return None


def pr_number(event: Mapping[str, Any]) -> Optional[int]:
    """The PR a run belongs to: ``pull_request``/``pull_request_target`` events, an ``issue_comment``
    on a PR, or a ``workflow_run`` whose ``pull_requests`` holds exactly one PR with the run's head
    (for fork PRs GitHub leaves it empty: see :func:`workflow_run_pr`)."""
    pr = event.get("pull_request")
    if isinstance(pr, dict):
        return _positive_int(pr.get("number")) or _positive_int(event.get("number"))
    issue = event.get("issue")
    if isinstance(issue, dict) and isinstance(issue.get("pull_request"), dict):
        return _positive_int(issue.get("number"))
    run = workflow_run_pr(event)
    if run is not None and len(run["numbers"]) == 1:
        return run["numbers"][0]
    return None


class WorkflowRun(TypedDict):
    """What :func:`workflow_run_pr` reads from a ``workflow_run`` event."""
    head_sha: str
    head_repo: Optional[str]
    head_branch: Optional[str]
    numbers: List[int]


def workflow_run_pr(event: Mapping[str, Any]) -> Optional[WorkflowRun]:
    """What a ``workflow_run`` event says about the PR that triggered the run -- all of it
    written by GitHub, none by PR code: ``head_sha``, ``head_repo`` (full name), ``head_branch``
    and ``numbers``, the ``pull_requests`` entries whose head is the run's head (empty for fork
    PRs). None for other events or without a head SHA."""
    run = event.get("workflow_run")
    if not isinstance(run, dict):
        return None
    sha = _sha(run.get("head_sha"))
    if sha is None:
        return None
    repo = run.get("head_repository")
    full_name = repo.get("full_name") if isinstance(repo, dict) else None
    branch = run.get("head_branch")
    numbers: List[int] = []
    for pr in run.get("pull_requests") or []:
        if not isinstance(pr, dict):
            continue
        head = pr.get("head")
        pr_sha = _sha(head.get("sha")) if isinstance(head, dict) else None
        number = _positive_int(pr.get("number"))
        if number and (pr_sha is None or pr_sha == sha) and number not in numbers:
            numbers.append(number)
    return {"head_sha": sha, "head_repo": full_name if isinstance(full_name, str) and full_name else None,
            "head_branch": branch if isinstance(branch, str) and branch else None, "numbers": numbers}


def head_sha(event: Mapping[str, Any]) -> Optional[str]:
    """The PR's head commit. Not ``$GITHUB_SHA``: on ``pull_request`` that is a merge commit."""
    pr = event.get("pull_request")
    if isinstance(pr, dict) and isinstance(pr.get("head"), dict):
        return _sha(pr["head"].get("sha"))
    run = event.get("workflow_run")
    if isinstance(run, dict):
        return _sha(run.get("head_sha"))
    return None


def repository(env: Mapping[str, str] = os.environ) -> Optional[str]:
    name = env.get("GITHUB_REPOSITORY", "").strip()
    return name or None


def api_url(env: Mapping[str, str] = os.environ) -> str:
    return (env.get("GITHUB_API_URL") or "https://api.github.com").rstrip("/")


def format_outputs(values: Mapping[str, str], delimiter: Optional[str] = None) -> str:
    """`$GITHUB_OUTPUT` text. Every value uses the heredoc form with a random delimiter, so a
    multi-line value (or one containing ``name=value`` lines) cannot forge other outputs."""
    lines = []
    for name, value in values.items():
        if not name or any(c in name for c in "\r\n=<"):
            raise ValueError(f"bad output name {name!r}")
        text = str(value)
        mark = delimiter or f"ghadelimiter_{secrets.token_hex(16)}"
        while mark in text:
            mark = f"ghadelimiter_{secrets.token_hex(16)}"
        lines.append(f"{name}<<{mark}\n{text}\n{mark}\n")
    return "".join(lines)


def set_outputs(values: Mapping[str, str], env: Mapping[str, str] = os.environ) -> bool:
    """Append step outputs to `$GITHUB_OUTPUT`; False when there is no such file (not in Actions)."""
    path = env.get("GITHUB_OUTPUT")
    if not path:
        return False
    with open(path, "a", encoding="utf-8") as f:
        f.write(format_outputs(values))
    return True


def append_step_summary(markdown: str, env: Mapping[str, str] = os.environ) -> bool:
    """Append Markdown to `$GITHUB_STEP_SUMMARY`, cut to what GitHub accepts; False outside Actions."""
    path = env.get("GITHUB_STEP_SUMMARY")
    if not path:
        return False
    try:
        used = os.path.getsize(path)
    except OSError:
        used = 0
    room = SUMMARY_LIMIT - used
    text = markdown if markdown.endswith("\n") else markdown + "\n"
    if len(text.encode("utf-8")) > room:
        note = "\n\n_(cut: the step summary is limited to 1 MiB)_\n"
        budget = max(0, room - len(note.encode("utf-8")))
        text = text.encode("utf-8")[:budget].decode("utf-8", "ignore") + note
        if room <= len(note.encode("utf-8")):
            return False
    with open(path, "a", encoding="utf-8") as f:
        f.write(text)
    return True
