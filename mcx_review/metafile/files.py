"""Metafiles on disk: find them in a revision's tree, read their entries, rewrite figures in place.

Found through ``model-index.yml`` (its ``Import:`` list) and every ``metafile.yml`` (mmseg 1.x:
``metafile.yaml``) under the config directories; an entry belongs to the config its ``Config:``
path names. They are YAML,
never code: reading them executes nothing, so this runs in the main process.

Rewriting (``mcx-review metafile --write``) loads the file with ruamel.yaml's round-trip loader to
find where each ``FLOPs`` / ``Parameters`` scalar sits (line and column), then replaces exactly that
scalar's characters in the original text: comments, order, quoting, indentation and line breaks
stay byte-identical (re-dumping would re-indent half of mmpretrain's metafiles).
"""
from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Dict, List, Optional, Sequence, Tuple

import yaml

from mcx_review.errors import McxError
from mcx_review.globs import literal_dirs
from mcx_review.metafile.verdicts import METRICS
from mcx_review.report.types import ConfigReport

KEYS = dict(METRICS)  # "flops" -> "FLOPs"
MAX_BYTES = 8 * 1024 * 1024
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass
class Index:
    """A tree's metafile entries by the config path they name."""

    files: List[str] = field(default_factory=list)
    by_config: Dict[str, List[Dict[str, Any]]] = field(default_factory=dict)
    problems: List[str] = field(default_factory=list)

    def entries(self, config: Optional[str]) -> List[Dict[str, Any]]:
        return list(self.by_config.get(config, [])) if config else []


def _norm(path: str) -> str:
    p = str(PurePosixPath(path.strip().replace("\\", "/")))
    return p[2:] if p.startswith("./") else p


def find_metafiles(root: Path, config_globs: Sequence[str] = ("configs/**/*.py",)) -> Tuple[List[str], List[str]]:
    """(repo-relative metafile paths, problems): ``model-index.yml``'s imports first, then every
    other ``metafile.yml`` / ``metafile.yaml`` under the config directories."""
    found: List[str] = []
    problems: List[str] = []
    index = root / "model-index.yml"
    if index.is_file():
        data, problem = _read_yaml(root, "model-index.yml")
        if problem:
            problems.append(problem)
        elif isinstance(data, dict) and isinstance(data.get("Import"), list):
            for item in data["Import"]:
                if isinstance(item, str) and (root / _norm(item)).is_file():
                    found.append(_norm(item))
                elif isinstance(item, str):
                    problems.append(f"model-index.yml: imports {item}, which does not exist")
    for d in literal_dirs(config_globs):
        base = root / d if d else root
        if not base.is_dir():
            continue
        for p in sorted([*base.rglob("metafile.yml"), *base.rglob("metafile.yaml")]):
            rel = p.relative_to(root).as_posix()
            if rel not in found and ".git" not in p.parts:
                found.append(rel)
    return found, problems


def _read_yaml(root: Path, rel: str) -> Tuple[Any, Optional[str]]:
    try:
        raw = (root / rel).read_bytes()
        if len(raw) > MAX_BYTES:
            return None, f"{rel}: larger than {MAX_BYTES >> 20} MiB, not read"
        return yaml.load(raw.decode("utf-8"), Loader=_Loader), None  # noqa: S506 - a safe loader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}" if mark is not None else ""
        return None, f"{rel}: invalid YAML{where}: {exc.problem}"
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        return None, f"{rel}: not readable YAML ({type(exc).__name__})"
    except OSError as exc:
        return None, f"{rel}: cannot be read ({exc.strerror or exc})"


def read_entries(root: Path, rel: str) -> Tuple[List[Dict[str, Any]], List[str]]:
    """One metafile's model entries: ``{"file", "name", "config", "flops", "params"}`` with the
    figures as written (int, str or None)."""
    data, problem = _read_yaml(root, rel)
    if problem:
        return [], [problem]
    if data is None:
        return [], []
    models = data.get("Models") if isinstance(data, dict) else None
    if models is None:
        return [], []
    if not isinstance(models, list):
        return [], [f"{rel}: Models is not a list"]
    out, problems = [], []
    for i, m in enumerate(models):
        if not isinstance(m, dict):
            problems.append(f"{rel}: Models[{i}] is not a mapping")
            continue
        config = m.get("Config")
        if not isinstance(config, str) or not config.strip():
            continue  # an entry without a config (e.g. weights only) names nothing to check
        meta = m.get("Metadata")
        if not isinstance(meta, dict):
            meta = {}
        out.append({"file": rel, "name": str(m.get("Name", f"Models[{i}]")), "config": _norm(config),
                    **{metric: _plain(meta.get(key)) for metric, key in METRICS}})
    return out, problems


def _plain(value: Any) -> Any:
    return value if value is None or isinstance(value, (int, float, str)) else str(value)


def build_index(root: Path, config_globs: Sequence[str] = ("configs/**/*.py",)) -> Index:
    files, problems = find_metafiles(root, config_globs)
    index = Index(files=files, problems=problems)
    for rel in files:
        entries, more = read_entries(root, rel)
        index.problems += more
        for e in entries:
            index.by_config.setdefault(e["config"], []).append(e)
    return index


def publishes_figures(index: Index) -> bool:
    """Does any entry publish FLOPs or Parameters? (mmdet's and mmseg's metafiles carry neither:
    every config there would be "not compared", and an added one "no entry", which says nothing.)"""
    return any(e.get(metric) is not None for es in index.by_config.values() for e in es for metric, _ in METRICS)


# ---------------------------------------------------------------- the review's verdicts

def attach(entries: Sequence[ConfigReport], trees: Dict[str, Path], settings: Any,
           forced: Optional[Sequence[int]]) -> List[str]:
    """Set each config's ``metafile`` verdict (in place); returns problems reading metafiles.
    Nothing is attached when the head revision has no metafile."""
    from mcx_review.metafile.verdicts import FORCED, verdict

    head = build_index(trees["head"], settings.configs)
    if not head.files or not publishes_figures(head):
        return head.problems  # mmdet's and mmseg's metafiles publish no FLOPs: nothing to say
    base = build_index(trees["base"], settings.configs)
    for entry in entries:
        head_path = entry["path"] if entry.get("status") != "removed" else None
        if head_path is None:
            continue
        base_path = entry.get("old_path") or entry["path"]
        note = None
        published = head.entries(head_path)
        if not published and entry.get("old_path"):
            published = head.entries(entry["old_path"])
            if published:
                note = f"the entry still names the old path {entry['old_path']}"
        base_by_name = {(e["file"], e["name"]): e for e in base.entries(base_path)}
        base_by_name.update({("", e["name"]): e for e in base.entries(base_path)})
        items = []
        for e in published:
            b = base_by_name.get((e["file"], e["name"])) or base_by_name.get(("", e["name"]))
            items.append({**e, "base": {m: b.get(m) for m, _ in METRICS} if b else None})
        shape = forced or settings.shape_for(head_path)
        if shape:
            h, w = shape[0], shape[-1]
            entry["metafile"] = verdict(entry.get("head"), entry.get("base"), items, settings.metafile,
                                        note=f"{FORCED} {h}\u00d7{w}", compare=False)
        else:
            entry["metafile"] = verdict(entry.get("head"), entry.get("base"), items, settings.metafile, note=note)
    return head.problems


# ---------------------------------------------------------------- writing

class WriteError(McxError):
    """A metafile that cannot be rewritten; ``str()`` names the file and the cause."""


@dataclass
class FigureChange:
    file: str
    name: str
    key: str  # "FLOPs" / "Parameters"
    old: str
    new: str


def _positions(text: str, rel: str) -> Dict[Tuple[str, str], Tuple[int, int]]:
    """(entry name, key) -> (line, column) of the value scalar, from ruamel's round-trip loader."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:
        data = YAML(typ="rt").load(io.StringIO(text))
    except YAMLError as exc:
        raise WriteError(f"{rel}: invalid YAML ({' '.join(str(exc).split())[:200]})") from None
    out: Dict[Tuple[str, str], Tuple[int, int]] = {}
    for m in (data or {}).get("Models") or []:
        meta = m.get("Metadata") if hasattr(m, "get") else None
        if meta is None or not hasattr(meta, "lc"):
            continue
        for key in KEYS.values():
            if key in meta:
                out[(str(m.get("Name")), key)] = meta.lc.value(key)
    return out


_SCALAR = re.compile(r"""'(?:[^']|'')*'|"(?:[^"\\]|\\.)*"|[^\s#][^#\n]*?(?=\s+#|\s*$)""")


def update_text(text: str, rel: str, updates: Dict[Tuple[str, str], Any]) -> Tuple[str, List[FigureChange]]:
    """``updates[(entry name, 'FLOPs'|'Parameters')] = new value`` -> (new text, changes). Only the
    value's own characters change; a quoted value stays quoted the same way."""
    positions = _positions(text, rel)
    lines = text.splitlines(keepends=True)
    changes: List[FigureChange] = []
    for (name, key), value in sorted(updates.items(), key=lambda kv: positions.get(kv[0], (0, 0)), reverse=True):
        if (name, key) not in positions:
            raise WriteError(f"{rel}: entry {name} has no Metadata.{key} to update")
        line, col = positions[(name, key)]
        src = lines[line]
        m = _SCALAR.match(src, col)
        if not m:
            raise WriteError(f"{rel}:{line + 1}: cannot find the {key} value of {name}")
        old = m.group(0)
        new = str(value)
        if old[:1] in "'\"":
            new = old[0] + new + old[0]
        if new == old:
            continue
        lines[line] = src[:m.start()] + new + src[m.end():]
        changes.append(FigureChange(rel, name, key, old, new))
    return "".join(lines), sorted(changes, key=lambda c: (c.file, positions[(c.name, c.key)]))


def planned_updates(entry: Dict[str, Any], statuses: Sequence[str] = ("stale", "legacy")
                    ) -> Dict[str, Dict[Tuple[str, str], Any]]:
    """From one config's verdict: file -> {(name, key): new value} for every figure that disagrees
    at head in an entry whose status is in ``statuses``, written at the figure's own precision."""
    from mcx_review.metafile.verdicts import format_like

    out: Dict[str, Dict[Tuple[str, str], Any]] = {}
    for e in (entry.get("metafile") or {}).get("entries") or []:
        if e.get("status") not in statuses:
            continue
        for c in e.get("checks") or []:
            if c.get("agrees") is False:
                out.setdefault(e["file"], {})[(e["name"], KEYS[c["metric"]])] = \
                    format_like(e[c["metric"]], int(c["measured"]))
    return out


def write_updates(root: Path, plan: Dict[str, Dict[Tuple[str, str], Any]], dry_run: bool = False) -> List[FigureChange]:
    changes: List[FigureChange] = []
    for rel in sorted(plan):
        path = root / rel
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise WriteError(f"{rel}: cannot be read ({exc.strerror or exc})") from None
        text = raw.decode("utf-8")
        new, done = update_text(text, rel, plan[rel])
        if done and not dry_run:
            path.write_bytes(new.encode("utf-8"))
        changes += done
    return changes


__all__ = ["Index", "build_index", "find_metafiles", "read_entries", "attach", "update_text", "write_updates",
           "planned_updates", "FigureChange", "WriteError"]
