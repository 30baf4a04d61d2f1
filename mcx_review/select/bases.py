"""The `_base_` closure of a config, read statically (ast / yaml / json; no config is executed).

Both inheritance styles mmengine knows:

* old style ``_base_ = '../x.py'`` or ``_base_ = [...]`` (py, yaml or json), after the text
  substitutions mmengine makes first (``{{fileDirname}}`` and friends, ``{{$ENV:default}}``,
  ``{{_base_.key}}``);
* new style ``with read_base(): from .._base_.models.resnet import *`` (relative imports become
  files the way mmengine's ``Config._parse_lazy_import`` maps them; absolute ones count when the
  module is a file of this tree).

``package::path`` bases point into an installed package, outside the repository, and so never
change in it: they are skipped. Paths are repo-relative posix strings throughout.
"""
from __future__ import annotations

import ast
import json
import os
import posixpath
import re
import warnings
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Set, Tuple

import yaml

BASE_KEY = "_base_"
CONFIG_SUFFIXES = (".py", ".yaml", ".yml", ".json")

# mmengine.config.Config._substitute_env_variables / _pre_substitute_base_vars, verbatim patterns.
_ENV_RE = re.compile(r"\{\{[\'\"]?\s*\$(\w+)\s*\:\s*(.*?)\s*[\'\"]?\}\}")
_BASE_VAR_RE = re.compile(r"\{\{\s*" + BASE_KEY + r"\.([\w\.]+)\s*\}\}")


def _literal(value: str) -> Callable[["re.Match[str]"], str]:
    """A ``re.sub`` replacement that inserts ``value`` as is (no backslash escapes)."""
    return lambda _m: value


def substitute(text: str, abs_path: str) -> str:
    """The text mmengine parses: predefined variables, env variables and base-variable
    placeholders substituted (``Config._file2dict`` does the same before reading ``_base_``)."""
    if "{{" not in text:
        return text
    dirname, basename = os.path.split(abs_path)
    values = {
        "fileDirname": dirname,
        "fileBasename": basename,
        "fileBasenameNoExtension": os.path.splitext(basename)[0],
        "fileExtname": os.path.splitext(basename)[1],
    }
    for key, value in values.items():
        text = re.sub(r"\{\{\s*" + key + r"\s*\}\}", _literal(value.replace("\\", "/")), text)
    text = _ENV_RE.sub(lambda m: os.environ.get(m.group(1), m.group(2)), text)
    # `{{_base_.x}}` is replaced by a quoted placeholder, so the file parses as Python.
    return _BASE_VAR_RE.sub(lambda m: repr(f"_mcx_base_var_{m.group(1)}"), text)


def _strings(node: ast.AST) -> List[str]:
    """Every string constant in an expression, in order: the bases of a `_base_` value that
    ast.literal_eval cannot read (``['a.py'] + ['b.py']``), read conservatively."""
    return [n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def _as_list(value: object) -> List[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)):
        return [v for v in value if isinstance(v, str)]
    return []


def _is_read_base(node: ast.With) -> bool:
    for item in node.items:
        expr = item.context_expr
        if isinstance(expr, ast.Call):
            func = expr.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            if name == "read_base":
                return True
    return False


def py_bases(text: str) -> Tuple[List[str], List[Tuple[int, str]]]:
    """Parse a Python config's text: (old-style base paths, new-style imports as (level, module)).

    Raises SyntaxError for text that is not Python.
    """
    if BASE_KEY not in text and "read_base" not in text:
        return [], []
    with warnings.catch_warnings():  # invalid escapes etc. are the file's business, not ours
        warnings.simplefilter("ignore")
        tree = ast.parse(text)
    paths: List[str] = []
    modules: List[Tuple[int, str]] = []
    for node in tree.body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and not paths:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == BASE_KEY for t in targets) and node.value is not None:
                try:
                    paths = _as_list(ast.literal_eval(node.value))
                except ValueError:
                    paths = _strings(node.value)
        elif isinstance(node, ast.With) and _is_read_base(node):
            for stmt in node.body:
                if isinstance(stmt, ast.ImportFrom):
                    if stmt.module:
                        modules.append((stmt.level, stmt.module))
                    else:  # `from . import x` (mmengine refuses it; still a file it points at)
                        modules.extend((stmt.level, a.name) for a in stmt.names)
    return paths, modules


def data_bases(text: str, suffix: str) -> List[str]:
    """`_base_` of a yaml / json config. Raises ValueError when the text does not parse."""
    try:
        data = json.loads(text) if suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ValueError(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from exc
    return _as_list(data.get(BASE_KEY)) if isinstance(data, dict) else []


class BaseGraph:
    """Direct bases of the configs in one tree, each file read and parsed once.

    ``problems`` maps a file to why its bases could not be read (it is then treated as having
    none): the analysis of such a config reports the real error; impact stays usable.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._abs_root = os.path.abspath(str(root))
        self._direct: Dict[str, List[str]] = {}
        self._closure: Dict[str, List[str]] = {}
        self.problems: Dict[str, str] = {}
        self.outside: Set[str] = set()  # files with a base outside this tree (`pkg::`, an installed module)

    def _in_repo(self, path: str) -> Optional[str]:
        """Repo-relative normal form of a path (relative to the root, or absolute), or None when
        it lies outside the tree."""
        if os.path.isabs(path):
            path = os.path.relpath(os.path.normpath(path), self._abs_root).replace(os.sep, "/")
        path = posixpath.normpath(path)
        if path == ".." or path.startswith("../") or path.startswith("/") or path == ".":
            return None
        return path

    def _module_file(self, config: str, level: int, module: str) -> Optional[str]:
        """The file a `read_base` import names (mmengine: level n is n-1 `..` from the config's
        directory, the module a `.py` file)."""
        parts = module.split(".")
        if level > 0:
            base_dir = posixpath.dirname(config)
            joined = posixpath.join(base_dir, *([".."] * (level - 1)), *parts)
        else:
            joined = "/".join(parts)
        rel = self._in_repo(joined)
        if rel is None:
            return None
        for candidate in (rel + ".py", rel + "/__init__.py"):
            if (self.root / candidate).is_file():
                return candidate
        # Absolute imports not in this tree live in an installed package: never changed here.
        # A relative one that is missing is still named (it may be a file the change deleted).
        return rel + ".py" if level > 0 else None

    def direct(self, config: str) -> List[str]:
        """The files ``config`` names as its bases, in declaration order."""
        if config in self._direct:
            return self._direct[config]
        out: List[str] = []
        self._direct[config] = out
        path = self.root / config
        suffix = posixpath.splitext(config)[1]
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            self.problems[config] = f"{config}: file not found"
            return out
        except (OSError, UnicodeDecodeError) as exc:
            self.problems[config] = f"{config}: cannot be read ({exc})"
            return out
        abs_path = os.path.join(self._abs_root, *config.split("/"))
        try:
            text = substitute(text, abs_path)
            if suffix == ".py":
                paths, modules = py_bases(text)
            elif suffix in CONFIG_SUFFIXES:
                paths, modules = data_bases(text, suffix), []
            else:
                paths, modules = [], []
        except SyntaxError as exc:
            self.problems[config] = f"{config}: syntax error at line {exc.lineno}: {exc.msg}"
            return out
        except ValueError as exc:
            self.problems[config] = f"{config}: cannot be parsed ({exc})"
            return out
        config_dir = posixpath.dirname(config)
        for p in paths:
            if "::" in p:  # `mmpretrain::resnet/...`: an installed package's file
                self.outside.add(config)
                continue
            rel = self._in_repo(p if os.path.isabs(p) else posixpath.join(config_dir, p))
            if rel is not None and rel not in out:
                out.append(rel)
        for level, module in modules:
            rel = self._module_file(config, level, module)
            if rel is None:
                self.outside.add(config)
            elif rel not in out:
                out.append(rel)
        return out

    def inherits_outside(self, config: str) -> bool:
        """Does ``config`` or a file it inherits name a base outside this tree (a ``pkg::`` path,
        a ``read_base()`` import of an installed module)? Its model may then use any type."""
        return any(f in self.outside for f in [config] + self.closure(config))

    def closure(self, config: str) -> List[str]:
        """Every file ``config`` inherits, transitively, nearest first (breadth first, each base
        in declaration order); not the config itself. Cycles are tolerated."""
        if config in self._closure:
            return self._closure[config]
        seen = {config}
        order: List[str] = []
        queue = [config]
        while queue:
            nxt: List[str] = []
            for cfg in queue:
                for base in self.direct(cfg):
                    if base not in seen:
                        seen.add(base)
                        order.append(base)
                        nxt.append(base)
            queue = nxt
        self._closure[config] = order
        return order

    def first_inherited(self, config: str, changed: Iterable[str]) -> Optional[str]:
        """The nearest base of ``config`` that is in ``changed``, or None."""
        changed = set(changed)
        return next((b for b in self.closure(config) if b in changed), None)


def base_closure(root: Path, config: str) -> Set[str]:
    """Repo-relative files ``config`` inherits, transitively (not itself)."""
    return set(BaseGraph(root).closure(config))
