"""One revision's static indexes, each built on first use from its tree on disk (nothing imported)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from mcx_review.select.bases import BaseGraph
from mcx_review.select.code_index import CodeIndex
from mcx_review.select.definitions import Reach


class RevisionIndex:
    """The `_base_` graph, the registry/import index of the code and what each registered type
    can reach, of the tree at ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._graph: Optional[BaseGraph] = None
        self._code: Optional[CodeIndex] = None
        self._reach: Optional[Reach] = None

    @property
    def graph(self) -> BaseGraph:
        if self._graph is None:
            self._graph = BaseGraph(self.root)
        return self._graph

    @property
    def code(self) -> CodeIndex:
        if self._code is None:
            self._code = CodeIndex.build(self.root)
        return self._code

    @property
    def reach(self) -> Reach:
        if self._reach is None:
            self._reach = Reach(self.code)
        return self._reach
