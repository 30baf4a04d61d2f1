"""Real history of mmdet / mmsegmentation from their released wheels, as one git repository.

Each release is one commit (tagged ``v<version>``): the package source (``<pkg>/**``, without the
``.mim`` folder) plus the configs and tools it ships (``<pkg>/.mim/configs`` -> ``configs/``,
``<pkg>/.mim/tools`` -> ``tools/``) -- the layout of the codebase's own repository, so each revision
is reviewed with its own code. The wheels are real successive states of the code; the repositories
themselves (1.4 GB and 0.7 GB) are too large to fetch.

PR-shaped changes are cut from a release diff with :func:`cut_change` (the files of one model, or
one head's fix, moved onto the earlier release).
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence

RELEASES: Dict[str, List[str]] = {
    "mmdet": ["3.0.0", "3.1.0", "3.2.0", "3.3.0"],
    "mmseg": ["1.0.0", "1.1.0", "1.1.1", "1.1.2", "1.2.0", "1.2.1", "1.2.2"],
}
DIST = {"mmdet": "mmdet", "mmseg": "mmsegmentation"}


def wheel_path(wheels: Path, codebase: str, version: str) -> Path:
    return wheels / f"{DIST[codebase]}-{version}-py3-none-any.whl"


def download_wheels(wheels: Path, codebase: str, versions: Sequence[str]) -> None:
    """``pip download --no-deps`` each release's wheel into ``wheels`` (skipped when present)."""
    wheels.mkdir(parents=True, exist_ok=True)
    for v in versions:
        if not wheel_path(wheels, codebase, v).is_file():
            subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary", ":all:",
                            f"{DIST[codebase]}=={v}", "-d", str(wheels)], check=True)


def _git(root: Path, *args: str) -> str:
    env_args = ["-c", "user.name=mcx-bench", "-c", "user.email=bench@mcx.invalid", "-c", "commit.gpgsign=false"]
    return subprocess.run(["git", *env_args, *args], cwd=root, check=True, capture_output=True,
                          text=True).stdout


def unpack_release(wheel: Path, codebase: str, dest: Path) -> None:
    """Replace everything in ``dest`` but ``.git`` with the wheel's package, configs and tools."""
    for child in list(dest.iterdir()):
        if child.name != ".git":
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    with tempfile.TemporaryDirectory(prefix="mcx-wheel-") as tmp:
        with zipfile.ZipFile(wheel) as zf:
            zf.extractall(tmp)
        pkg = Path(tmp) / codebase
        mim = pkg / ".mim"
        for sub, to in (("configs", "configs"), ("tools", "tools")):
            if (mim / sub).is_dir():
                shutil.copytree(mim / sub, dest / to)
        shutil.copytree(pkg, dest / codebase, ignore=shutil.ignore_patterns(".mim", "__pycache__"))


def build_history(root: Path, codebase: str, wheels: Path, versions: Optional[Sequence[str]] = None) -> List[str]:
    """A git repository at ``root`` whose commits on ``main`` are the releases in order, each tagged
    ``v<version>``. Returns the tags."""
    versions = list(versions or RELEASES[codebase])
    root.mkdir(parents=True, exist_ok=True)
    _git(root, "init", "-q", "-b", "main")
    tags = []
    for v in versions:
        unpack_release(wheel_path(wheels, codebase, v), codebase, root)
        _git(root, "add", "-A")
        _git(root, "commit", "-q", "-m", f"{DIST[codebase]} {v} (released wheel)")
        _git(root, "tag", f"v{v}")
        tags.append(f"v{v}")
    return tags


def changed_files(root: Path, base: str, head: str) -> List[str]:
    """``git diff --name-only base head``."""
    return [p for p in _git(root, "diff", "--name-only", base, head).splitlines() if p]


def cut_change(root: Path, base: str, head: str, branch: str, paths: Iterable[str],
               edits: Optional[Dict[str, str]] = None, message: str = "") -> str:
    """A branch ``branch`` off ``base`` that takes ``paths`` (files or directories) as they are at
    ``head`` and writes ``edits`` (path -> text: the hand-cut part of a shared file such as an
    ``__init__`` with only this model's lines added). Returns the branch's commit."""
    _git(root, "checkout", "-q", "-B", branch, base)
    for p in paths:
        _git(root, "checkout", head, "--", p)
    for rel, text in (edits or {}).items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", message or f"cut from {base}..{head}")
    sha = _git(root, "rev-parse", "HEAD").strip()
    _git(root, "checkout", "-q", "main")
    return sha


def show(root: Path, rev: str, path: str) -> str:
    return _git(root, "show", f"{rev}:{path}")
