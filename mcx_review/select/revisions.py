"""Git side of a review: which revisions, which files changed, and each revision as a tree on disk.

Base is the merge-base of ``--base`` and head (GitHub's ``base...head``), so commits that landed on
the base branch after the branch point are not blamed on the change.
"""
from __future__ import annotations

import contextlib
import io
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Literal, Optional, Sequence, Tuple

import git

from mcx_review.errors import McxError

HeadKind = Literal["commit", "index", "worktree"]


class GitError(McxError):
    """A git problem the user must fix (bad ref, missing history, not a repository)."""

    prefix = "git: "


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


def work_tree(repo: git.Repo) -> Path:
    """The repository's working tree (a bare repository has none: a GitError)."""
    if repo.working_tree_dir is None:
        raise GitError(f"{repo.git_dir}: a bare repository has no working tree to review")
    return Path(repo.working_tree_dir)


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
        changes.append(Change("A" if code[0] == "A" else "D" if code[0] == "D" else "M", path))
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


class PathError(McxError):
    """A FILE argument outside the repository: a usage error."""

    prefix = "error: "


def select_files(changes: Sequence[Change], files: Sequence[str], root: Path
                 ) -> Tuple[List[Change], List[str]]:
    """Narrow the changes to the FILE arguments, as git pathspecs narrow ``git diff``: a file
    selects its own change, a directory every change under it. Returns the kept changes and the
    FILE arguments (repo-relative) that selected none -- not found, or not changed -- for the
    caller to warn about. A path outside the repository raises :class:`PathError`."""
    specs = [repo_relative(f, root) for f in files]

    def selects(spec: str, path: Optional[str]) -> bool:
        return path is not None and (spec == "" or path == spec or path.startswith(spec + "/"))

    kept = [c for c in changes if any(selects(s, c.path) or selects(s, c.old_path) for s in specs)]
    unmatched = [s for s in dict.fromkeys(specs)
                 if not any(selects(s, c.path) or selects(s, c.old_path) for c in changes)]
    return kept, unmatched


def repo_relative(path: str, root: Path) -> str:
    """A FILE argument as a repo-relative posix path ('' for the root itself). Relative paths are
    taken relative to ``root``; the CLI makes its arguments absolute first (relative to the current
    directory, as git does). Symlinked directories on the way are followed, the file itself is not."""
    p = Path(path)
    full = Path(os.path.normpath(p if p.is_absolute() else Path(root) / p))
    candidates = (full, Path(os.path.realpath(full.parent)) / full.name)
    for base in dict.fromkeys((Path(root), Path(os.path.realpath(root)))):
        for candidate in candidates:
            try:
                rel = candidate.relative_to(base).as_posix()
            except ValueError:
                continue
            return "" if rel == "." else rel
    raise PathError(f"{path}: outside the repository {root}")


@contextlib.contextmanager
def materialise(repo: git.Repo, revs: Revisions, side: Literal["base", "head"]) -> Iterator[Path]:
    """Yield a directory holding the revision's files; temporary copies are removed on exit,
    Ctrl-C included. The working tree is used in place."""
    if side == "head" and revs.head_kind == "worktree":
        yield work_tree(repo)
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
            text: str = repo.git.show(f"{sha}:{path}")  # GitPython's dynamic git commands are untyped
            return text
        if revs.head_kind == "index":
            staged: str = repo.git.show(f":{path}")
            return staged
        full = work_tree(repo) / path
        return full.read_text(encoding="utf-8") if full.is_file() else None
    except git.GitCommandError:
        return None


def path_exists(repo: git.Repo, revs: Revisions, side: Literal["base", "head"], path: str) -> bool:
    """Is there a file or directory ``path`` (repo-relative) at that side of the review?"""
    if not path:
        return True
    try:
        if side == "base" or revs.head_kind == "commit":
            sha = revs.base_sha if side == "base" else revs.head_sha
            return bool(repo.git.ls_tree(sha, "--", path).strip())
        if revs.head_kind == "index":
            return bool(repo.git.ls_files("--", path).strip())
    except git.GitCommandError:
        return False
    return (work_tree(repo) / path).exists()
