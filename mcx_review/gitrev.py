"""Git side of a review: which revisions, which files changed, and each revision as a tree on disk.

Base is the merge-base of ``--base`` and head (GitHub's ``base...head``), so commits that landed on
the base branch after the branch point are not blamed on the change.
"""
from __future__ import annotations

import contextlib
import io
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Literal, Optional, Sequence

import git

HeadKind = Literal["commit", "index", "worktree"]


class GitError(Exception):
    """A git problem the user must fix (bad ref, missing history, not a repository)."""


@dataclass(frozen=True)
class Change:
    status: Literal["A", "M", "D", "R"]
    path: str  # head path (base path for deletions)
    old_path: Optional[str] = None  # base path of a rename


@dataclass(frozen=True)
class Revisions:
    base_rev: str
    base_sha: str
    head_rev: str
    head_sha: str  # the commit itself, or HEAD's commit for index/worktree
    head_kind: HeadKind


def open_repo(path: "str | Path") -> git.Repo:
    try:
        return git.Repo(path, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise GitError(f"{path}: not inside a git repository") from None


def _commit_sha(repo: git.Repo, rev: str, role: str) -> str:
    try:
        return repo.commit(rev).hexsha
    except (git.BadName, ValueError, git.GitCommandError):
        hint = ""
        if repo.git.rev_parse("--is-shallow-repository").strip() == "true":
            hint = (" This is a shallow clone: fetch the history it needs "
                    "(actions/checkout with `fetch-depth: 0`, or `git fetch --unshallow`).")
        raise GitError(f"{role} revision {rev!r} is not in this repository.{hint}") from None


def resolve_revisions(repo: git.Repo, base: str, head: Optional[str], kind: HeadKind) -> Revisions:
    head_rev = head or "HEAD"
    head_sha = _commit_sha(repo, head_rev, "head")
    base_tip = _commit_sha(repo, base, "base")
    bases = repo.merge_base(base_tip, head_sha)
    if not bases:
        hint = ""
        if repo.git.rev_parse("--is-shallow-repository").strip() == "true":
            hint = " This is a shallow clone: fetch full history (`fetch-depth: 0`)."
        raise GitError(f"no merge-base between {base!r} and {head_rev!r}.{hint}")
    return Revisions(base, bases[0].hexsha, head_rev, head_sha, kind)


def _parse_name_status(out: str) -> List[Change]:
    fields = out.split("\0")
    changes: List[Change] = []
    i = 0
    while i < len(fields) and fields[i]:
        code = fields[i]
        if code[0] in "RC":
            old, new = fields[i + 1], fields[i + 2]
            changes.append(Change("R", new, old) if code[0] == "R" else Change("A", new))
            i += 3
            continue
        path = fields[i + 1]
        status = {"A": "A", "D": "D"}.get(code[0], "M")
        changes.append(Change(status, path))  # type: ignore[arg-type]
        i += 2
    return changes


def changed_files(repo: git.Repo, revs: Revisions) -> List[Change]:
    """Files that differ between base and head, renames detected (git's default similarity)."""
    args = ["--name-status", "-z", "-M", "--no-ext-diff"]
    if revs.head_kind == "commit":
        out = repo.git.diff(*args, revs.base_sha, revs.head_sha)
    elif revs.head_kind == "index":
        out = repo.git.diff(*args, "--cached", revs.base_sha)
    else:
        out = repo.git.diff(*args, revs.base_sha)
    changes = _parse_name_status(out)
    if revs.head_kind == "worktree":
        untracked = repo.git.ls_files("--others", "--exclude-standard", "-z").split("\0")
        changes += [Change("A", p) for p in untracked if p]
    return changes


def select_files(changes: Sequence[Change], files: Sequence[str], root: Path) -> List[Change]:
    """Keep the changes named on the command line (pre-commit style); a named file the diff
    does not know counts as modified, so the review still covers what it affects."""
    wanted = {_relpath(f, root) for f in files}
    kept = [c for c in changes if c.path in wanted or c.old_path in wanted]
    known = {c.path for c in kept} | {c.old_path for c in kept if c.old_path}
    kept += [Change("M", p) for p in sorted(wanted - known)]
    return kept


def _relpath(path: str, root: Path) -> str:
    p = Path(path)
    if p.is_absolute():
        try:
            return p.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            return p.as_posix()
    return Path(p.as_posix()).as_posix()


@contextlib.contextmanager
def materialise(repo: git.Repo, revs: Revisions, side: Literal["base", "head"]) -> Iterator[Path]:
    """Yield a directory holding the revision's files; temporary copies are removed on exit,
    Ctrl-C included. The working tree is used in place."""
    if side == "head" and revs.head_kind == "worktree":
        yield Path(repo.working_tree_dir)  # type: ignore[arg-type]
        return
    tmp = Path(tempfile.mkdtemp(prefix=f"mcx-review-{side}-"))
    try:
        if side == "head" and revs.head_kind == "index":
            repo.git.checkout_index("--all", f"--prefix={tmp.as_posix()}/")
        else:
            sha = revs.base_sha if side == "base" else revs.head_sha
            data = repo.git.archive(sha, format="tar", stdout_as_string=False)
            with tarfile.open(fileobj=io.BytesIO(data)) as tar:
                tar.extractall(tmp, filter="data")
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def read_file(repo: git.Repo, revs: Revisions, side: Literal["base", "head"], path: str) -> Optional[str]:
    """One file's text at a revision without materialising the tree (None if absent)."""
    try:
        if side == "base" or revs.head_kind == "commit":
            sha = revs.base_sha if side == "base" else revs.head_sha
            return repo.git.show(f"{sha}:{path}")
        if revs.head_kind == "index":
            return repo.git.show(f":{path}")
        full = Path(repo.working_tree_dir) / path  # type: ignore[arg-type]
        return full.read_text(encoding="utf-8") if full.is_file() else None
    except git.GitCommandError:
        return None
