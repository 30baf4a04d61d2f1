"""What a report means for the exit code, pure: failed, nothing counted, or fine."""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any, List, Mapping, Optional, Tuple

from mcx_review.errors import EXIT_FAILED, EXIT_NOTHING_COUNTED, EXIT_OK
from mcx_review.metafile import verdicts as metafile
from mcx_review.report.budgets import budget_level
from mcx_review.report.compare import head_failed
from mcx_review.report.types import Report

# pip names of modules whose distribution is called otherwise
PIP_NAMES = {"mmcv": "mmcv-lite", "cv2": "opencv-python", "PIL": "Pillow", "yaml": "PyYAML",
             "sklearn": "scikit-learn", "skimage": "scikit-image", "git": "GitPython"}
_NO_MODULE = re.compile(r"No module named '([\w.]+)'")
_CANNOT_IMPORT = re.compile(r"default_scope '([\w.]+)' cannot be imported \((.*)\)$")


def has_changes(report: Mapping[str, Any]) -> bool:
    """Does any config read other than unchanged (the comment is worth posting)?"""
    return any(c.get("status") != "unchanged" for c in report.get("configs", []))


def _errors(report: Report) -> List[Tuple[str, str, str]]:
    return [(c["path"], e["side"], e["message"]) for c in report.get("configs", []) for e in c.get("errors", [])]


def _own_module(name: str, root: Optional[Path]) -> bool:
    top = name.split(".")[0]
    return root is not None and ((root / top).is_dir() or (root / f"{top}.py").is_file())


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None  # locates, does not import
    except (ImportError, ValueError):
        return False


def counted_nothing(report: Report, root: Optional[Path] = None) -> Optional[str]:
    """Why the review cannot pass although no config failed *because of the change*, as one line
    naming the cause and the fix; None when it can. Either the analysis environment lacks a
    dependency (an import of an installed package failed: ``root``'s own modules do not count), or
    every config under review fails at base and head alike, so not one number was counted."""
    for path, side, message in _errors(report):
        missing = _NO_MODULE.search(message)
        if missing and not _own_module(missing.group(1), root):
            name = missing.group(1)
            module = name.split(".")[0]
            where = f"No module named '{name}' while analysing {path} at {side}"
            if name != module and _installed(module):  # e.g. mmcv-lite has no compiled mmcv._ext
                return (f"the installed {module} has no {name} ({where}); install a {module} build "
                        f"that provides it" + (" (the full mmcv instead of mmcv-lite)" if module == "mmcv" else ""))
            return (f"the analysis environment cannot import {module} ({where}); install it where "
                    f"mcx-review runs, e.g. pip install {PIP_NAMES.get(module, module)}")
        scope = _CANNOT_IMPORT.search(message)
        if scope:
            return (f"the analysis environment cannot import {scope.group(1)} ({scope.group(2)}, "
                    f"{path} at {side}); install a {scope.group(1)} that imports with the installed "
                    f"packages (see requirements/dev.txt for versions tested together)")
    configs = report.get("configs", [])
    if configs and all(_failed_everywhere(c) for c in configs):  # one of several stays a note
        path, _, message = _errors(report)[0]
        return (f"nothing was counted: every config under review ({len(configs)}) fails at base and "
                f"head alike, e.g. {path}: {message}")
    return None


def _failed_everywhere(entry: Mapping[str, Any]) -> bool:
    """Failed at base and at head: nothing of this config was measured. A resource limit is not a
    failure (a warning of its own), so a config stopped by one does not count here."""
    return {e["side"] for e in entry.get("errors", []) if not e.get("limit")} == {"base", "head"}


def exit_code(report: Report, root: Optional[Path] = None) -> int:
    if counted_nothing(report, root):
        return EXIT_NOTHING_COUNTED
    configs = report.get("configs", [])
    if any(head_failed(c) or metafile.fails(c) for c in configs) or budget_level(report) == "fail":
        return EXIT_FAILED
    return EXIT_OK
