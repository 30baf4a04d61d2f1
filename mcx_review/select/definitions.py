"""Definition-level code impact: which top-level definitions a change alters, and which of them a
model can reach. Read statically (ast), nothing imported.

* :func:`compare_sources` -- base vs head of one ``.py`` file, per top-level name (class,
  function, module-level assignment, import binding) on the normalised AST: docstrings stripped,
  comments and formatting never count. Statements that are not definitions (registration loops,
  calls run at import, monkey-patching, ``if`` / ``try`` blocks) are compared as a whole: when
  they differ the file-level rule applies to every model that imports the file.
* :class:`Reach` -- from a registered type to the definitions its model can run: the registered
  class, its bases and decorators inside the repository, every name its body uses, followed
  through imports (module bindings, ``from x import y``, package ``__init__`` re-exports, star
  imports) transitively, on one revision's :class:`~mcx_review.select.code_index.CodeIndex`.

A name that cannot be pinned statically pulls in the whole module it may come from.
"""
from __future__ import annotations

import ast
import copy
import warnings
from dataclasses import dataclass, field
from typing import Dict, FrozenSet, Iterable, List, Optional, Set, Tuple

from mcx_review.select.code_index import CodeIndex

# A reach node: ("def", file, name) a top-level binding and what it uses; ("alias", file, name) an
# import binding used only to reach into the module it names; ("module", file) a module object
# whose attributes are not known statically (stands for every binding of the file).
Node = Tuple[str, ...]
Definition = Tuple[str, str]  # (file, name)

_DEF_TYPES = (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


# ---------------------------------------------------------------- comparison

def _strip_docstrings(node: ast.AST) -> ast.AST:
    """A copy of ``node`` without docstrings (of the module, classes and functions in it)."""
    node = copy.deepcopy(node)
    for n in ast.walk(node):
        if isinstance(n, (ast.Module,) + _DEF_TYPES):
            body = n.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                n.body = body[1:] or [ast.Pass()]
    return node


def _dump(node: ast.AST) -> str:
    return ast.dump(_strip_docstrings(node), include_attributes=False)


def _bound_names(target: ast.AST) -> Optional[List[str]]:
    """Names an assignment target binds, or None when it assigns into something else
    (``torch.nn.X = ...``, ``d['k'] = ...``): a side effect, not a definition."""
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, (ast.Tuple, ast.List)):
        out: List[str] = []
        for elt in target.elts:
            names = _bound_names(elt.value if isinstance(elt, ast.Starred) else elt)
            if names is None:
                return None
            out += names
        return out
    return None


def _is_main_guard(node: ast.stmt) -> bool:
    """``if __name__ == '__main__':`` -- never runs when the module is imported."""
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and test.left.id == "__name__"
            and len(test.comparators) == 1 and isinstance(test.comparators[0], ast.Constant)
            and test.comparators[0].value == "__main__")


@dataclass
class Definitions:
    """One file's top-level definitions (name -> normalised statements, in order), its other
    module-level statements (normalised), and its literal ``__all__`` (None when not literal)."""

    names: Dict[str, List[str]] = field(default_factory=dict)
    other: List[str] = field(default_factory=list)
    all_names: Optional[Set[str]] = None


def definitions(tree: ast.Module) -> Definitions:
    out = Definitions()

    def add(name: str, text: str) -> None:
        out.names.setdefault(name, []).append(text)

    for node in tree.body:
        if isinstance(node, _DEF_TYPES):
            add(node.name, _dump(node))
        elif isinstance(node, ast.Import):
            for a in node.names:
                add(a.asname or a.name.split(".")[0], f"import {a.name}" + (f" as {a.asname}" if a.asname else ""))
        elif isinstance(node, ast.ImportFrom) and not any(a.name == "*" for a in node.names):
            for a in node.names:
                add(a.asname or a.name, f"from {'.' * node.level}{node.module or ''} import {a.name}")
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            found = [_bound_names(t) for t in targets]
            bound = [b for b in found if b is not None]
            if len(bound) < len(found) or (isinstance(node, ast.AnnAssign) and node.value is None and not bound):
                out.other.append(_dump(node))
                continue
            names = [n for b in bound for n in b]
            if names == ["__all__"]:
                try:
                    value = ast.literal_eval(node.value) if node.value is not None else None
                except ValueError:
                    value = None
                if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
                    out.all_names = (out.all_names or set()) | set(value) \
                        if isinstance(node, ast.AugAssign) else set(value)
                    continue
            for name in names:
                add(name, _dump(node))
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # the module docstring or a bare string: no effect
        elif isinstance(node, ast.Pass) or _is_main_guard(node):
            continue
        else:
            out.other.append(_dump(node))
    return out


@dataclass(frozen=True)
class FileChange:
    """How one file's top-level definitions differ between base and head."""

    path: str
    added: FrozenSet[str] = frozenset()
    removed: FrozenSet[str] = frozenset()
    changed: FrozenSet[str] = frozenset()
    other: bool = False  # a non-definition module-level statement differs (or the file does not parse)
    problem: Optional[str] = None  # why the file could not be compared per definition

    def names_at(self, side: str) -> FrozenSet[str]:
        """Names whose binding differs, as seen from ``side``'s reach: removed or changed ones from
        base, added or changed ones from head."""
        return (self.removed if side == "base" else self.added) | self.changed

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed or self.other)


def _parse(text: str, path: str) -> ast.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ast.parse(text, filename=path)


def compare_sources(path: str, base: Optional[str], head: Optional[str]) -> FileChange:
    """Compare one file's text at base and head (None: absent on that side)."""
    try:
        b = definitions(_parse(base, path)) if base is not None else Definitions()
        h = definitions(_parse(head, path)) if head is not None else Definitions()
    except (SyntaxError, ValueError) as exc:
        line = getattr(exc, "lineno", None)
        return FileChange(path, other=True, problem=f"{path}: syntax error{f' at line {line}' if line else ''}: "
                                                      f"{getattr(exc, 'msg', exc)}")
    added = set(h.names) - set(b.names)
    removed = set(b.names) - set(h.names)
    changed = {n for n in set(b.names) & set(h.names) if b.names[n] != h.names[n]}
    # `__all__` only decides what `from x import *` takes: entries added change no existing
    # binding; an entry dropped changes that name for star importers.
    if b.all_names is not None and h.all_names is not None:
        changed |= b.all_names - h.all_names
    elif (b.all_names is None) != (h.all_names is None) and (base is not None and head is not None):
        changed |= (b.all_names or set()) | (h.all_names or set())
    return FileChange(path, frozenset(added), frozenset(removed), frozenset(changed), b.other != h.other)


# ---------------------------------------------------------------- reach

def module_name(rel: str) -> str:
    """``a/b/c.py`` -> ``a.b.c``; ``a/b/__init__.py`` -> ``a.b``."""
    parts = rel[:-3].split("/")
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


class Reach:
    """The definitions a registered type's model can run, on one revision's code index."""

    def __init__(self, index: CodeIndex) -> None:
        self.index = index
        self._deps: Dict[Node, Tuple[Node, ...]] = {}
        self._reach: Dict[str, FrozenSet[Node]] = {}
        self._where: Dict[Tuple[str, str, bool], Optional[Node]] = {}

    # -------------------------------------------------------------- names

    def where_bound(self, module: Optional[str], name: str, strict: bool = False,
                    _seen: Optional[Set[Tuple[str, str]]] = None) -> Optional[Node]:
        """The node ``from module import name`` leads to; None when the module is not in this
        tree (or, ``strict``, when it does not bind the name: a star search)."""
        if not module:
            return None
        key = (module, name, strict)
        if key in self._where:
            return self._where[key]
        seen = _seen if _seen is not None else set()
        if (module, name) in seen:
            return None
        seen.add((module, name))
        found = self._where_uncached(module, name, strict, seen)
        if _seen is None or found is not None:
            self._where[key] = found
        return found

    def _where_uncached(self, module: str, name: str, strict: bool, seen: Set[Tuple[str, str]]) -> Optional[Node]:
        target = self.index.module_file(module)
        if target is None:
            return None
        info = self.index.info(target)
        if name in info.bindings:
            return ("def", target, name)
        sub = self.index.module_file(f"{module}.{name}")
        if sub is not None:
            return ("module", sub)
        for level, star in info.stars:
            found = self.where_bound(self.index.absolute(target, level, star), name, True, seen)
            if found is not None:
                return found
        if strict:
            return None
        return ("module", target)  # bound dynamically (module __getattr__, a typo): the whole module

    def _name_in(self, rel: str, name: str) -> Optional[Node]:
        """What a bare ``name`` used in file ``rel``'s top-level code refers to."""
        info = self.index.info(rel)
        if name in info.bindings:
            return ("def", rel, name)
        for level, star in info.stars:
            found = self.where_bound(self.index.absolute(rel, level, star), name, True)
            if found is not None:
                return found
        return None  # a builtin, a local variable, or from an installed package

    def _follow(self, node: Optional[Node], attrs: Iterable[str]) -> Optional[Node]:
        """Attribute access on a module node goes on to the attribute's binding; an attribute
        not bound statically leaves the module as a whole."""
        for attr in attrs:
            if node is None or node[0] != "module":
                break
            nxt = self.where_bound(module_name(node[1]), attr, strict=True)
            if nxt is None:
                break
            node = nxt
        return node

    def _chain(self, rel: str, chain: Tuple[str, ...]) -> List[Node]:
        """What ``a.b.c`` used in file ``rel`` reaches. An import binding taken with attributes
        (``from . import helpers`` ... ``helpers.block``) is reached as an alias -- a re-binding
        still counts -- and the attributes are followed into the module it names, so the rest of
        that module is not reached."""
        node = self._name_in(rel, chain[0])
        attrs = chain[1:]
        if node is None or not attrs or node[0] != "def":
            return [node] if node is not None else []
        bindings = self.index.info(node[1]).bindings.get(node[2], [])
        if not bindings or any(b[0] == "def" for b in bindings):
            return [node]
        out: List[Node] = [("alias", node[1], node[2])]
        for b in bindings:
            if b[0] == "from":
                target = self.where_bound(self.index.absolute(node[1], b[1], b[2]), b[3])
                out.extend(self._chain_from(target, attrs))
            else:
                for target in self._import_node(b[1], node[2]):
                    out.extend(self._chain_from(target, attrs))
        return out

    def _chain_from(self, node: Optional[Node], attrs: Tuple[str, ...]) -> List[Node]:
        if node is None:
            return []
        if node[0] == "module":
            found = self._follow(node, attrs)
            return [found] if found is not None else []
        if node[0] == "def" and attrs:  # another import binding on the way (a package re-export)
            bindings = self.index.info(node[1]).bindings.get(node[2], [])
            if bindings and all(b[0] != "def" for b in bindings):
                out: List[Node] = [("alias", node[1], node[2])]
                for b in bindings:
                    if b[0] == "from":
                        out.extend(self._chain_from(
                            self.where_bound(self.index.absolute(node[1], b[1], b[2]), b[3]), attrs))
                    else:
                        for target in self._import_node(b[1], node[2]):
                            out.extend(self._chain_from(target, attrs))
                return out
        return [node]

    def deps(self, node: Node) -> Tuple[Node, ...]:
        if node not in self._deps:
            self._deps[node] = tuple(sorted(set(self._deps_uncached(node))))
        return self._deps[node]

    def _deps_uncached(self, node: Node) -> Iterable[Node]:
        if node[0] == "module":
            rel = node[1]
            for name in self.index.info(rel).bindings:
                yield ("def", rel, name)
            return
        if node[0] == "alias":
            return
        _, rel, name = node
        info = self.index.info(rel)
        for b in info.bindings.get(name, ()):
            if b[0] == "from":
                found = self.where_bound(self.index.absolute(rel, b[1], b[2]), b[3])
                if found is not None:
                    yield found
            elif b[0] == "import":
                yield from self._import_node(b[1], name)
        for chain in info.uses.get(name, ()):
            if chain[0] == name and len(chain) == 1:
                continue
            for target in self._chain(rel, chain):
                if target != node:
                    yield target
        for b in info.local_imports.get(name, ()):
            if b[0] == "from":
                module = self.index.absolute(rel, b[1], b[2])
                if b[3] != "*":
                    found = self.where_bound(module, b[3])
                else:
                    module_file = self.index.module_file(module) if module is not None else None
                    found = ("module", module_file) if module_file else None
                if found is not None:
                    yield found
            else:
                yield from self._import_node(b[1], b[1].split(".")[0])
        for t in info.builds.get(name, ()):
            yield from self.type_nodes(t)

    def _import_node(self, module: str, bound: str) -> Iterable[Node]:
        """``import a.b.c`` binds ``a`` (and runs ``a/b/c``); ``import a.b.c as x`` binds a.b.c."""
        parts = module.split(".")
        name = parts[0] if bound == parts[0] else module
        f = self.index.module_file(name)
        if f is not None:
            yield ("module", f)

    # -------------------------------------------------------------- types

    def type_nodes(self, type_name: str) -> List[Node]:
        """Where a registered type's code starts: the registered objects, by registry name, or by
        the dotted path of a new-style config when its module is in this tree."""
        module, _, name = type_name.rpartition(".")
        out: List[Node] = []
        if module and "." in module:
            found = self.where_bound(module, name, strict=True)
            if found is not None:
                return [found]
        for rel in self.index.registered_in(type_name):
            locals_ = self.index.info(rel).registered.get(name)
            if not locals_:
                out.append(("module", rel))  # registered in a way not read statically
                continue
            for local in sorted(locals_):
                found = self._name_in(rel, local)
                out.append(found if found is not None else ("module", rel))
        return out

    def of_type(self, type_name: str) -> FrozenSet[Node]:
        """Every node the type's model can reach, transitively."""
        if type_name not in self._reach:
            seen: Set[Node] = set()
            todo = list(self.type_nodes(type_name))
            while todo:
                n = todo.pop()
                if n in seen:
                    continue
                seen.add(n)
                todo.extend(self.deps(n))
            self._reach[type_name] = frozenset(seen)
        return self._reach[type_name]

    def of_types(self, types: Iterable[str]) -> Set[Node]:
        out: Set[Node] = set()
        for t in types:
            if isinstance(t, str) and t:
                out |= self.of_type(t)
        return out

    def files(self, nodes: Iterable[Node]) -> Set[str]:
        """Files the nodes live in, with the package ``__init__`` files Python runs before them."""
        out: Set[str] = set()
        for n in nodes:
            out.add(n[1])
            out.update(self.index.ancestors(n[1]))
        return out


def hits(nodes: Iterable[Node], changes: Dict[str, FileChange], side: str) -> List[Definition]:
    """The changed definitions (file, name) among ``nodes``, as seen from ``side``, sorted."""
    out: Set[Definition] = set()
    for n in nodes:
        change = changes.get(n[1])
        if change is None:
            continue
        names = change.names_at(side)
        if n[0] in ("def", "alias"):
            if n[2] in names:
                out.add((n[1], n[2]))
        else:
            out.update((n[1], name) for name in names)
    return sorted(out)


__all__ = ["Definitions", "FileChange", "Reach", "compare_sources", "definitions", "hits", "module_name"]
