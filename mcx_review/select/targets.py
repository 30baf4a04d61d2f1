"""Which configs a change puts under review, and why: the changed configs, those inheriting a
changed `_base_` file, and those whose model reaches changed code (definition by definition, or
by whole files with ``--impact files``). Static apart from config resolution, which is asked of
the injected :class:`~mcx_review.select.code_impact.Resolves` (the measure stage's resolver)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Set

from mcx_review.globs import literal_dirs, under
from mcx_review.report.types import SIDES
from mcx_review.select import config_files
from mcx_review.select.code_impact import Resolves, definition_impact
from mcx_review.select.revisions import Change
from mcx_review.settings import Settings


@dataclass
class Target:
    """A config under review: its path on each side (None where absent) and why."""

    path: str
    base_path: Optional[str]
    head_path: Optional[str]
    reasons: List[str] = field(default_factory=list)


def is_code_change(path: str, config_dirs: Sequence[str]) -> bool:
    """A changed Python file outside the config directories is model code (or might be)."""
    return path.endswith(".py") and not any(under(path, d) for d in config_dirs)


def find_targets(trees: Dict[str, Path], changes: Sequence[Change], settings: Settings,
                 resolved: Resolves, mode: str = "definitions") -> List[Target]:
    configs: Dict[str, List[str]] = {s: config_files.discover_configs(trees[s], settings.configs, settings.exclude)
                                     for s in SIDES}
    on = {s: set(configs[s]) for s in SIDES}
    renamed_from = {c.path: c.old_path for c in changes if c.status == "R" and c.old_path}
    renamed_to = {v: k for k, v in renamed_from.items()}
    changed_paths: Set[str] = {c.path for c in changes} | {c.old_path for c in changes if c.old_path}
    reasons: Dict[str, List[str]] = {}

    def add(side: str, path: str, reason: str) -> None:
        """Under the head path: a base-side finding about a renamed config names its new path."""
        lst = reasons.setdefault(renamed_to.get(path, path) if side == "base" else path, [])
        if reason not in lst:
            lst.append(reason)

    for c in changes:
        if c.path in on["head"] or (c.status == "D" and c.path in on["base"]):
            add("head", c.path, config_files.reason_changed())
    for side in SIDES:
        for cfg, base_file in sorted(config_files.configs_inheriting(trees[side], configs[side], changed_paths).items()):
            add(side, cfg, config_files.reason_inherits(base_file))

    config_dirs = literal_dirs(settings.configs)
    code = sorted(p for p in changed_paths if is_code_change(p, config_dirs))
    if code and mode == "files":
        for side in SIDES:
            results = resolved.resolve_many(side, configs[side])
            for cfg in configs[side]:
                if not results[cfg].get("ok"):
                    continue
                hit = resolved.index(side).affected_by(resolved.used(side, cfg), set(code))
                if hit:
                    add(side, cfg, config_files.reason_uses_code(hit))
    elif code:
        for impact_side, cfg, reason in definition_impact(trees, configs, code, resolved):
            add(impact_side, cfg, reason)

    targets = []
    for path in sorted(reasons):
        head_path = path if path in on["head"] else None
        old_path = renamed_from.get(path, path)
        base_path = old_path if old_path in on["base"] else None
        if head_path is None and base_path is None:
            continue
        targets.append(Target(path, base_path, head_path, reasons[path]))
    return targets
