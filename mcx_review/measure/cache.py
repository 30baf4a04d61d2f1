"""Results cached by content: everything that decides a model's numbers, computed without torch.

The key covers the resolved model dict, what decides the input shape (forced shape or the test
pipeline), the scope, the repository code the model uses (file contents), the versions of the
installed packages that count or define models, and our own schema/version. A warm re-run
therefore resolves configs (cheap, no torch) and reads JSON files.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any, Dict, Iterable, Optional, cast

from mcx_review import __version__
from mcx_review.report.types import SCHEMA

VERSIONED = ("torch", "fvcore", "mmengine", "mmcv", "mmcv-lite", "mmcls", "mmpretrain", "timm")


@lru_cache(maxsize=None)
def package_versions() -> Dict[str, str]:
    """Installed versions, read from metadata (importing torch to ask would cost seconds)."""
    found = {}
    for name in VERSIONED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


def default_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "mcx-review"


def code_digest(root: Path, files: Iterable[str]) -> str:
    h = hashlib.sha256()
    for rel in sorted(set(files)):
        h.update(rel.encode() + b"\0")
        try:
            h.update(hashlib.sha256((root / rel).read_bytes()).digest())
        except OSError:
            h.update(b"<missing>")
    return h.hexdigest()


def cache_key(resolved: Dict[str, Any], code: str, versions: Optional[Dict[str, str]] = None,
              engine: str = "fvcore") -> str:
    payload = {
        "schema": SCHEMA,
        "mcx-review": __version__,
        "stats": 3,  # 2: stats hold the per-module tree (module_tree.py); 3: the input rule, the deploy form
        "versions": package_versions() if versions is None else versions,
        "scope": resolved.get("scope"),
        "model": resolved.get("model"),
        "shape": resolved.get("shape_spec"),
        "code": code,
    }
    if engine != "fvcore":  # fvcore's keys stay what they were: existing caches keep their hits
        payload["engine"] = engine
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


class ResultCache:
    def __init__(self, directory: Optional[Path], enabled: bool = True) -> None:
        self.dir = directory or default_dir()
        self.enabled = enabled
        self.hits = 0
        self.stores = 0

    def _path(self, key: str) -> Path:
        return self.dir / key[:2] / f"{key}.json"

    def get(self, key: str) -> Optional[Dict[str, Any]]:
        if not self.enabled:
            return None
        try:
            value = cast(Dict[str, Any], json.loads(self._path(key).read_text(encoding="utf-8")))
        except (OSError, ValueError):
            return None
        self.hits += 1
        return value

    def put(self, key: str, value: Dict[str, Any]) -> None:
        if not self.enabled:
            return
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(value, f)
            os.replace(tmp, path)  # atomic: a concurrent reader sees all or nothing
            self.stores += 1
        except OSError:
            pass  # a read-only or full cache must not fail the review
