"""Hints where the user's intent is clear but the command says otherwise: one line each, for the
log (stderr). They never change what is reviewed.

* :func:`uncommitted` -- the revisions hold no change but the working tree does (``--worktree``);
* :func:`unmatched_files` -- FILE arguments that are not found, or not changed;
* :func:`settings_differ` -- the ``.mcx-review.yaml`` that applies is not the one on disk;
* :func:`unmatched_globs` -- ``configs`` / ``exclude`` / ``shapes`` globs that match nothing.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence

import git

from mcx_review.select import revisions
from mcx_review.globs import glob_match
from mcx_review.select.config_files import discover_configs
from mcx_review.settings import DEFAULT_SOURCE, Settings

SHOWN = 3  # paths named in one line before "and N more"


def _some(paths: Sequence[str]) -> str:
    named = ", ".join(paths[:SHOWN])
    return named + (f" and {len(paths) - SHOWN} more" if len(paths) > SHOWN else "")


def _it(paths: Sequence[str]) -> str:
    return "it" if len(paths) == 1 else "them"


def uncommitted(repo: git.Repo, revs: revisions.Revisions, changes: Sequence[revisions.Change]) -> Optional[str]:
    """Base and head are one commit (on the base branch, say) and nothing changed between them,
    while the working tree or the index holds changes: the user most likely meant those."""
    if revs.head_kind != "commit" or changes or revs.base_sha != revs.head_sha \
            or revs.head_sha != repo.head.commit.hexsha:
        return None
    if not repo.is_dirty(index=True, working_tree=True, untracked_files=True):
        return None
    return (f"warning: {revs.base_rev} and {revs.head_rev} are the same commit, so there is no "
            f"committed change to review; to review your uncommitted changes add --worktree (the files "
            f"on disk) or --staged (the index), e.g. mcx-review --base {revs.base_rev} --worktree")


def unmatched_files(repo: git.Repo, revs: revisions.Revisions, unmatched: Sequence[str]) -> List[str]:
    """One warning for FILE arguments found on neither side, one for those not changed."""
    missing: List[str] = []
    unchanged: List[str] = []
    for path in unmatched:
        found = any(revisions.path_exists(repo, revs, side, path) for side in ("base", "head"))
        (unchanged if found else missing).append(path or ".")
    head = revs.head_rev if revs.head_kind == "commit" else f"the {revs.head_kind}"
    lines = []
    if missing:
        lines.append(f"warning: FILE not found at base ({revs.base_rev}) or head ({head}): "
                     f"{_some(missing)}; nothing reviewed for {_it(missing)}")
    if unchanged:
        lines.append(f"warning: FILE not changed between base ({revs.base_rev}) and head ({head}): "
                     f"{_some(unchanged)}; nothing reviewed for {_it(unchanged)}")
    return lines


def settings_differ(repo: git.Repo, revs: revisions.Revisions, applied: Optional[str]) -> Optional[str]:
    """The head revision's ``.mcx-review.yaml`` (``applied``, None when absent) applies, but the
    file on disk differs: edits that are not committed (or staged) are not in effect."""
    if revs.head_kind == "worktree" or revs.head_sha != repo.head.commit.hexsha:
        return None  # the files on disk apply, or head is another revision than the checkout
    disk_path = revisions.work_tree(repo) / DEFAULT_SOURCE
    on_disk = disk_path.read_text(encoding="utf-8") if disk_path.is_file() else None
    if on_disk == applied or (on_disk is not None and applied is not None
                              and on_disk.rstrip("\n") == applied.rstrip("\n")):
        return None
    where, fix = (("the index", "stage it with git add") if revs.head_kind == "index"
                  else (revs.head_rev, "commit it"))
    if on_disk is not None and applied is not None:
        state = f"differs from the one in {where}, which applies"
    elif on_disk is not None:
        state = f"is not in {where}, so the defaults apply"
    else:
        state = f"is deleted but still in {where}, which applies"
    return (f"note: the working tree's {DEFAULT_SOURCE} {state} "
            f"({fix}, or pass --worktree or --config {DEFAULT_SOURCE})")


def unmatched_globs(tree: Path, settings: Settings) -> List[str]:
    """Warnings for globs in the settings file that match nothing in the head revision
    (a ``configs`` left at its default is not the user's to fix)."""
    lines = []
    own_configs = settings.configs != Settings().configs
    for pattern in settings.configs if own_configs else ():
        if not discover_configs(tree, [pattern]):
            lines.append(f"warning: {settings.source}: configs: {pattern!r} matches no config")
    included = discover_configs(tree, settings.configs)
    for pattern in settings.exclude:
        if not any(_under(path, pattern) for path in included):
            lines.append(f"warning: {settings.source}: exclude: {pattern!r} matches no config")
    kept = discover_configs(tree, settings.configs, settings.exclude)
    for pattern, _ in settings.shapes:
        if not any(glob_match(path, pattern) for path in kept):
            lines.append(f"warning: {settings.source}: shapes: {pattern!r} matches no config")
    return lines


def _under(path: str, pattern: str) -> bool:
    """``pattern`` matches the path or a directory above it (how ``exclude`` applies)."""
    parts = path.split("/")
    return any(glob_match("/".join(parts[:i]), pattern) for i in range(1, len(parts) + 1))
