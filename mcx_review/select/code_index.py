"""Which source files of a repository a model uses, read statically (ast, nothing imported).

A model is known by the registered types its config names. The index maps each registered name
to the files that register it, and follows imports from there, the way Python would execute them:

* a plain module that is imported runs whole, so all its imports are followed ("deep");
* a package ``__init__.py`` on the way to a module runs too, but following *its* imports would
  pull in the whole package (``mmpretrain/__init__.py`` imports everything), so an ``__init__``
  is included as a file and only the names taken from it are traced to where they are bound
  (``from ..utils import ShiftWindowMSA`` -> ``models/utils/attention.py``);
* ``custom_imports`` modules are imported for their side effects: followed deep, ``__init__``
  included.

Where a name cannot be pinned down statically the index errs on including files, never on
dropping them.
"""
from __future__ import annotations

import ast
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, FrozenSet, Iterable, List, Optional, Set, Tuple, TypeGuard, Union


# A name bound in a module: ("def",) defined here; ("from", level, module, name); ("import", module).
Binding = Tuple[Any, ...]
Import = Union[ast.Import, ast.ImportFrom]
State = Tuple[str, str]  # ("deep" | "shallow", file)


@dataclass
class ModuleInfo:
    """What a module's ast says about imports and top-level names."""

    imports: List[Import] = field(default_factory=list)  # every Import / ImportFrom, anywhere
    bindings: Dict[str, List[Binding]] = field(default_factory=dict)
    stars: List[Tuple[int, str]] = field(default_factory=list)  # `from X import *`, top level
    types: Set[str] = field(default_factory=set)  # literal `dict(type='X')` / `{'type': 'X'}`
    # per top-level name (through if / try / with blocks): the dotted names its defining
    # statements use (``('nn', 'Conv2d')``, ``('ResNet',)``) and the registered types they build
    uses: Dict[str, Set[Tuple[str, ...]]] = field(default_factory=dict)
    builds: Dict[str, Set[str]] = field(default_factory=dict)
    local_imports: Dict[str, List[Binding]] = field(default_factory=dict)  # imports inside a def
    registered: Dict[str, Set[str]] = field(default_factory=dict)  # registered name -> local names


def _target_names(node: ast.AST) -> Iterable[str]:
    for n in ast.walk(node):
        if isinstance(n, ast.Name):
            yield n.id


@dataclass
class _Scan:
    uses: Set[Tuple[str, ...]] = field(default_factory=set)
    built: Set[str] = field(default_factory=set)
    imports: List[Import] = field(default_factory=list)


def _scan(node: ast.AST) -> _Scan:
    """One pass over a statement: the dotted names it uses (every ``Name`` with the attributes
    taken from it, ``nn.Conv2d`` -> ``('nn', 'Conv2d')``, ``a.b.c`` only as a whole), the
    registered types it builds literally, and the import statements in it."""
    out = _Scan()
    todo = [node]
    attribute, name, call, dict_ = ast.Attribute, ast.Name, ast.Call, ast.Dict
    imp, imp_from = ast.Import, ast.ImportFrom
    AST = ast.AST
    while todo:
        n = todo.pop()
        kind = type(n)
        if kind is attribute:
            parts = []
            cur: ast.AST = n
            while type(cur) is attribute:
                parts.append(cur.attr)
                cur = cur.value
            if type(cur) is name:
                out.uses.add((cur.id,) + tuple(reversed(parts)))
            else:
                todo.append(cur)
            continue
        if type(n) is name:  # type(n), not kind: mypy narrows n on this form only
            out.uses.add((n.id,))
            continue
        if kind is call or kind is dict_:
            out.built.update(_literal_types(n))
        elif type(n) is imp or type(n) is imp_from:
            out.imports.append(n)
        for f in n._fields:
            v = getattr(n, f, None)
            if type(v) is list:
                todo.extend(x for x in v if isinstance(x, AST))
            elif isinstance(v, AST):
                todo.append(v)
    return out


def uses(node: ast.AST) -> Set[Tuple[str, ...]]:
    """The dotted names a statement uses (see :func:`_scan`)."""
    return _scan(node).uses


Scanner = Callable[[ast.AST], _Scan]


def _record(info: ModuleInfo, names: Iterable[str], node: ast.stmt, scan: Scanner) -> None:
    found = scan(node)
    imported: List[Binding] = []
    for n in found.imports:
        if isinstance(n, ast.Import):
            imported.extend(("import", a.name) for a in n.names)
        elif isinstance(n, ast.ImportFrom):
            imported.extend(("from", n.level, n.module or "", a.name) for a in n.names)
    for name in names:
        info.uses.setdefault(name, set()).update(found.uses)
        info.builds.setdefault(name, set()).update(found.built)
        if imported:
            info.local_imports.setdefault(name, []).extend(imported)


def _bind(info: ModuleInfo, body: List[ast.stmt], scan: Scanner) -> None:
    """Top-level bindings (through if / try / with blocks, not into functions or classes)."""
    for node in body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            info.bindings.setdefault(node.name, []).append(("def",))
            _record(info, [node.name], node, scan)
        elif isinstance(node, ast.Import):
            for a in node.names:
                name = a.asname or a.name.split(".")[0]
                info.bindings.setdefault(name, []).append(("import", a.name))
        elif isinstance(node, ast.ImportFrom):
            for a in node.names:
                if a.name == "*":
                    info.stars.append((node.level, node.module or ""))
                else:
                    info.bindings.setdefault(a.asname or a.name, []).append(
                        ("from", node.level, node.module or "", a.name))
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            bound = [name for t in targets for name in _target_names(t)]
            for name in bound:
                info.bindings.setdefault(name, []).append(("def",))
            _record(info, bound, node, scan)
        elif isinstance(node, (ast.If, ast.Try, ast.With, ast.For, ast.While)):
            if isinstance(node, ast.For):
                bound = list(_target_names(node.target))
                for name in bound:
                    info.bindings.setdefault(name, []).append(("def",))
                _record(info, bound, node, scan)
            for attr in ("body", "orelse", "finalbody"):
                _bind(info, getattr(node, attr, []) or [], scan)
            for handler in getattr(node, "handlers", []) or []:
                _bind(info, handler.body, scan)


def _literal_types(node: ast.AST) -> Iterable[str]:
    """``dict(type='X', ...)`` and ``{'type': 'X'}``: registered types a module builds itself
    (defaults such as ``layer_cfg=dict(type='ShiftWindowMSA')`` that no config names)."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict":
        for k in node.keywords:
            if k.arg == "type" and isinstance(k.value, ast.Constant) and isinstance(k.value.value, str):
                yield k.value.value
    elif isinstance(node, ast.Dict):
        for key, v in zip(node.keys, node.values):
            if isinstance(key, ast.Constant) and key.value == "type" and isinstance(v, ast.Constant) \
                    and isinstance(v.value, str):
                yield v.value


def module_info(tree: ast.Module) -> ModuleInfo:
    info = ModuleInfo()
    scans: Dict[int, _Scan] = {}

    def scan(node: ast.AST) -> _Scan:  # each statement is scanned once
        if id(node) not in scans:
            scans[id(node)] = _scan(node)
        return scans[id(node)]

    _bind(info, tree.body, scan)
    for stmt in tree.body:
        found = scan(stmt)
        info.imports.extend(found.imports)
        info.types.update(found.built)
    return info


def _names(node: Optional[ast.AST]) -> List[str]:
    """Literal registry names: 'A', ['A', 'B'], ('A', 'B')."""
    if node is None:
        return []
    try:
        value = ast.literal_eval(node)
    except ValueError:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)):
        return [v for v in value if isinstance(v, str)]
    return []


def _class_name(node: Optional[ast.AST]) -> List[str]:
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, ast.Attribute):
        return [node.attr]
    return []


def _is_register(call: ast.AST) -> TypeGuard[ast.Call]:
    return (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
            and call.func.attr in ("register_module", "_register_module"))


def _kw(call: ast.Call, *names: str) -> Optional[ast.AST]:
    return next((k.value for k in call.keywords if k.arg in names), None)


def _registry_name(call: ast.Call) -> str:
    """The registry a register call is made on, by name (``TASK_UTILS.register_module`` ->
    ``TASK_UTILS``); ``""`` when it is not a plain name or attribute."""
    return (_class_name(call.func.value) or [""])[0]  # type: ignore[attr-defined]


def _registrations(tree: ast.Module) -> Tuple[Dict[str, Set[str]], Dict[str, Set[str]]]:
    """One walk: (registered name -> local names registered under it, registered name -> the
    registries it is registered in)."""
    out: Dict[str, Set[str]] = {}
    where: Dict[str, Set[str]] = {}
    decorator_calls = set()
    calls: List[ast.Call] = []
    for node in ast.walk(tree):
        if _is_register(node):
            calls.append(node)
        elif isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            for dec in node.decorator_list:
                if _is_register(dec):
                    decorator_calls.add(id(dec))
                    given = _names(_kw(dec, "name")) or (_names(dec.args[0]) if dec.args else [])
                    for name in given or [node.name]:
                        out.setdefault(name, set()).add(node.name)
                        where.setdefault(name, set()).add(_registry_name(dec))
                elif isinstance(dec, ast.Attribute) and dec.attr == "register_module":
                    out.setdefault(node.name, set()).add(node.name)
                    where.setdefault(node.name, set()).update(_class_name(dec.value) or [""])
    for node in calls:
        if id(node) not in decorator_calls:
            # (module, module_name=None, force)
            private = isinstance(node.func, ast.Attribute) and node.func.attr == "_register_module"
            args = list(node.args)
            name_arg = args[1] if private and len(args) > 1 else args[0] if args and not private else None
            module = _kw(node, "module") or (args[0] if private and args else None)
            given = _names(_kw(node, "name", "module_name")) or _names(name_arg)
            local = sorted(r[0] for r in uses(module)) if module is not None else []
            for name in given or _class_name(module):
                out.setdefault(name, set()).update(local)
                where.setdefault(name, set()).add(_registry_name(node))
    return out, where


def registration_targets(tree: ast.Module) -> Dict[str, Set[str]]:
    """Names a module registers, each with the module-level names it registers under it:
    ``@X.register_module()`` (with ``name=`` / positional names), ``X.register_module(module=Cls)``,
    ``X.register_module(name=..., module=...)`` and mmengine's
    ``X._register_module(module=..., module_name=...)``. A registered object that is not a plain
    name (``module=nn.Conv2d``) is given by the root of its expression."""
    return _registrations(tree)[0]


# Registries whose objects no model builds: mmengine's root registries for data, evaluation,
# visualisation and the training loop, under the names the codebases re-export them as. A type
# registered only there (``CocoDataset``, ``CocoMetric``) cannot be a part of a model.
NON_MODEL_REGISTRIES = frozenset({
    "DATASETS", "DATA_SAMPLERS", "TRANSFORMS", "METRICS", "EVALUATOR", "VISUALIZERS", "VISBACKENDS",
    "HOOKS", "LOOPS", "RUNNERS", "RUNNER_CONSTRUCTORS", "LOG_PROCESSORS", "OPTIMIZERS", "OPTIM_WRAPPERS",
    "OPTIM_WRAPPER_CONSTRUCTORS", "PARAM_SCHEDULERS", "INFERENCERS"})


def registries_of(tree: ast.Module) -> Dict[str, Set[str]]:
    """Registered name -> the registries it is registered in, by the name of the object the
    register call is made on (``@TASK_UTILS.register_module()`` -> ``TASK_UTILS``); ``""`` where
    that object is not a plain name or attribute (unknown)."""
    return _registrations(tree)[1]


def registrations(tree: ast.Module) -> Set[str]:
    """Names a module registers (see :func:`registration_targets`)."""
    return set(registration_targets(tree))


_CLASS_RE = re.compile(r"^\s*class\s+(\w+)", re.M)

# Directories no glob or scan descends into unless a pattern names them literally: VCS data,
# virtual environments, build output, caches.
IGNORED_DIRS = frozenset({"build", "dist", "node_modules", "__pycache__", "site-packages", "venv"})


def _ignored_dir(parent: str, name: str) -> bool:
    return (name.startswith(".") or name in IGNORED_DIRS or name.endswith(".egg-info")
            or os.path.isfile(os.path.join(parent, name, "pyvenv.cfg")))


def walk_files(root: Path, start: str = "", suffixes: Optional[Tuple[str, ...]] = None) -> List[str]:
    """Repo-relative posix paths of the files under ``root/start`` (sorted), skipping hidden
    directories (``.git``, ``.venv``), virtual environments, ``build``, ``dist`` and caches."""
    top = os.path.join(str(root), *start.split("/")) if start else str(root)
    out: List[str] = []
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = sorted(d for d in dirnames if not _ignored_dir(dirpath, d))
        rel_dir = os.path.relpath(dirpath, str(root)).replace(os.sep, "/")
        prefix = "" if rel_dir == "." else rel_dir + "/"
        for f in sorted(filenames):
            if suffixes is None or f.endswith(suffixes):
                out.append(prefix + f)
    return out


class CodeIndex:
    """Registered names and imports of one tree's Python files; built once per revision."""

    def __init__(self, root: Path, files: Set[str], registry: Dict[str, Set[str]],
                 problems: Dict[str, str]) -> None:
        self.root = Path(root)
        self.files = files
        self.registry = registry  # registered name -> files that register it
        self.registries: Dict[str, Set[str]] = {}  # registered name -> registries ("" unknown)
        self.problems = problems  # file -> why it could not be parsed
        self._info: Dict[str, ModuleInfo] = {}
        self._locate: Dict[Tuple[str, str, bool], Optional[Tuple[State, ...]]] = {}
        self._type_files: Dict[str, FrozenSet[str]] = {}

    # ------------------------------------------------------------------ building

    @classmethod
    def build(cls, root: Path) -> "CodeIndex":
        """Scan the tree's .py files once: a text check, then ast only for files that register."""
        root = Path(root)
        files = set(walk_files(root, suffixes=(".py",)))
        registry: Dict[str, Set[str]] = {}
        problems: Dict[str, str] = {}
        index = cls(root, files, registry, problems)
        for rel in sorted(files):
            text = index._text(rel)
            if text is None or "register_module" not in text:
                continue
            tree = index._parse(rel, text)
            if tree is not None:
                index._info[rel].registered, where = _registrations(tree)
            else:
                where = {name: {""} for name in _CLASS_RE.findall(text)}
            for name, registries in where.items():
                registry.setdefault(name, set()).add(rel)
                index.registries.setdefault(name, set()).update(registries)
        return index

    def _text(self, rel: str) -> Optional[str]:
        try:
            return (self.root / rel).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            self.problems[rel] = f"{rel}: cannot be read ({exc})"
            return None

    def _parse(self, rel: str, text: Optional[str] = None) -> Optional[ast.Module]:
        text = self._text(rel) if text is None else text
        if text is None:
            self._info[rel] = ModuleInfo()
            return None
        try:
            with warnings.catch_warnings():  # invalid escapes etc. are the file's business
                warnings.simplefilter("ignore")
                tree = ast.parse(text, filename=rel)
        except (SyntaxError, ValueError) as exc:
            line = getattr(exc, "lineno", None)
            self.problems[rel] = f"{rel}: syntax error{f' at line {line}' if line else ''}: " \
                                 f"{getattr(exc, 'msg', exc)}"
            self._info[rel] = ModuleInfo()
            return None
        self._info[rel] = module_info(tree)
        return tree

    def info(self, rel: str) -> ModuleInfo:
        if rel not in self._info:
            self._parse(rel)
        return self._info[rel]

    # ------------------------------------------------------------------ modules <-> files

    def module_file(self, module: str) -> Optional[str]:
        """The tree's file for a dotted module name (``a/b.py`` or ``a/b/__init__.py``), or None
        when the module is not in this tree (an installed package, the standard library)."""
        if not module or module.startswith(".") or ".." in module:
            return None
        rel = module.replace(".", "/")
        for candidate in (rel + ".py", rel + "/__init__.py"):
            if candidate in self.files:
                return candidate
        return None

    @staticmethod
    def package_of(rel: str) -> List[str]:
        parts = rel[:-3].split("/")
        return parts[:-1]  # a/b/c.py -> [a, b]; a/b/__init__.py -> [a, b]

    def absolute(self, rel: str, level: int, module: str) -> Optional[str]:
        """The absolute module name of an import statement in file ``rel``."""
        if level == 0:
            return module or None
        pkg = self.package_of(rel)
        if level - 1 > len(pkg):
            return None
        parts = pkg[:len(pkg) - (level - 1)] + ([module] if module else [])
        return ".".join(parts) or None

    def ancestors(self, rel: str) -> List[str]:
        """Package ``__init__.py`` files Python runs before ``rel``."""
        parts = rel.split("/")[:-1]
        if rel.endswith("/__init__.py"):
            parts = parts[:-1]
        out = []
        for i in range(1, len(parts) + 1):
            init = "/".join(parts[:i]) + "/__init__.py"
            if init in self.files:
                out.append(init)
        return out

    @staticmethod
    def _is_init(rel: str) -> bool:
        return rel == "__init__.py" or rel.endswith("/__init__.py")

    # ------------------------------------------------------------------ name resolution

    def locate(self, module: Optional[str], name: str, strict: bool = False,
               _seen: Optional[Set[Tuple[str, str]]] = None) -> Optional[Tuple[State, ...]]:
        """Where ``from module import name`` leads: the states to visit, or None when the name
        is not bound there (``strict``: a plain module must bind it too, as in a star search)."""
        if not module:
            return None
        key = (module, name, strict)
        if key in self._locate:
            return self._locate[key]
        seen = _seen if _seen is not None else set()
        if (module, name) in seen:
            return None
        seen.add((module, name))
        result = self._locate_uncached(module, name, strict, seen)
        if _seen is None or result is not None:
            self._locate[key] = result
        return result

    def _locate_uncached(self, module: str, name: str, strict: bool,
                         seen: Set[Tuple[str, str]]) -> Optional[Tuple[State, ...]]:
        sub = self.module_file(f"{module}.{name}")
        if sub is not None:
            return (("deep", sub),)
        target = self.module_file(module)
        if target is None:
            return None
        info = self.info(target)
        if not self._is_init(target) and not strict:
            return (("deep", target),)
        bindings = info.bindings.get(name)
        if bindings:
            if not self._is_init(target) or any(b[0] == "def" for b in bindings):
                return (("deep", target),)
            states: List[State] = [("shallow", target)]
            for b in bindings:
                if b[0] == "from":
                    src = self.absolute(target, b[1], b[2])
                    found = self.locate(src, b[3], False, seen)
                    if found:
                        states.extend(found)
                    elif src and (src_file := self.module_file(src)):
                        states.append(("shallow", src_file))
                elif b[0] == "import":
                    f = self.module_file(b[1])
                    if f:
                        states.append(("deep", f))
            return tuple(states)
        found_any: List[State] = []
        for level, star_module in info.stars:
            found = self.locate(self.absolute(target, level, star_module), name, True, seen)
            if found:
                found_any.extend(found)
        if found_any:
            return (("deep" if not self._is_init(target) else "shallow", target),) + tuple(found_any)
        return None

    # ------------------------------------------------------------------ closures

    def _closure(self, states: Iterable[State]) -> Set[str]:
        """Files reached from ``states``: deep ones with all their imports, shallow ones alone;
        package ``__init__`` files along the way, shallow."""
        out: Set[str] = set()
        done: Set[State] = set()
        todo = list(states)
        while todo:
            state = todo.pop()
            if state in done:
                continue
            done.add(state)
            kind, rel = state
            out.add(rel)
            todo.extend(("shallow", a) for a in self.ancestors(rel))
            if kind == "deep":
                todo.extend(self._import_states(rel))
                for t in sorted(self.info(rel).types):
                    todo.extend(("deep", f) for f in self.registered_in(t))
        return out

    def _import_states(self, rel: str) -> List[State]:
        states: List[State] = []
        for node in self.info(rel).imports:
            if isinstance(node, ast.Import):
                for a in node.names:
                    parts = a.name.split(".")
                    for i in range(len(parts), 0, -1):  # the longest prefix in this tree
                        f = self.module_file(".".join(parts[:i]))
                        if f:
                            states.append(("deep" if i == len(parts) else "shallow", f))
                            break
                continue
            module = self.absolute(rel, node.level, node.module or "")
            if module is None:
                continue
            for a in node.names:
                if a.name == "*":
                    f = self.module_file(module)
                    if f:
                        states.append(("deep", f))
                    continue
                found = self.locate(module, a.name)
                if found:
                    states.extend(found)
                else:  # not bound statically (dynamic __getattr__, a typo): keep the module
                    f = self.module_file(module)
                    if f:
                        states.append(("shallow", f))
        return states

    def _type_states(self, type_name: str) -> List[State]:
        """Where a registered type's code starts. Plain names and scoped names
        (``mmpretrain.ResNet``) by registry; dotted class paths of new-style configs
        (``mmpretrain.models.backbones.ResNet``) through the module when it is in this tree,
        else by the class name."""
        module, _, name = type_name.rpartition(".")
        states: List[State] = []
        if module:
            found = self.locate(module, name)
            if found:
                states.extend(found)
            if found and "." in module:
                return states
        states.extend(("deep", f) for f in self.registered_in(type_name))
        return states

    def registered_in(self, type_name: str) -> List[str]:
        """The files that register a type's name, sorted. A scoped name (``mmdet.CrossEntropyLoss``
        in an mmseg config) is built from that scope's registry: files of another codebase package
        of this tree (a top-level package with its own ``registry`` module, here ``mmseg/``) are
        not where it comes from; other files (a project registering into ``mmdet``) may be."""
        scope, _, name = type_name.rpartition(".")
        files = sorted(self.registry.get(name, ()))
        if not scope or "." in scope:
            return files

        def other_codebase(rel: str) -> bool:
            top = rel.split("/", 1)[0]
            return top != scope and "/" in rel and (f"{top}/registry.py" in self.files
                                                    or f"{top}/registry/__init__.py" in self.files)

        return [f for f in files if not other_codebase(f)]

    def files_for_types(self, types: Iterable[str], custom_imports: Iterable[str] = ()) -> Set[str]:
        """Repo-relative source files a model with these registered types (and these
        ``custom_imports`` modules) uses."""
        out: Set[str] = set()
        for t in types:
            if not isinstance(t, str) or not t:
                continue
            if t not in self._type_files:
                self._type_files[t] = frozenset(self._closure(self._type_states(t)))
            out |= self._type_files[t]
        for module in custom_imports:
            f = self.module_file(module) if isinstance(module, str) else None
            if f:
                out |= self._closure([("deep", f)])
        return out

    def model_types(self, names: Iterable[str]) -> Set[str]:
        """The names a model can be built from: all but those registered only in registries no
        model builds from (:data:`NON_MODEL_REGISTRIES`)."""
        return {n for n in names if not self.registries.get(n) or not self.registries[n] <= NON_MODEL_REGISTRIES}

    def affected_by(self, used_files: Set[str], changed: Set[str]) -> Optional[str]:
        """The first (sorted) changed file among ``used_files``, or None."""
        hits = sorted(set(used_files) & set(changed))
        return hits[0] if hits else None


__all__ = ["CodeIndex", "ModuleInfo", "module_info", "registration_targets", "registrations", "uses",
           "walk_files"]
