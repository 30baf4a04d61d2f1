"""Real git repositories made from the configs that the installed mmcls / mmpretrain ship."""
from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from typing import Callable, Optional, Union

import git


# A grayscale (1-channel) LeNet-5 classifier for MNIST; {n} = number of classes.
LENET = """default_scope = 'mmpretrain'
model = dict(type='ImageClassifier', backbone=dict(type='LeNet5', num_classes={n}), neck=None,
             head=dict(type='ClsHead'))
data_preprocessor = dict(mean=[33.46], std=[78.87], num_classes={n})
test_dataloader = dict(dataset=dict(type='MNIST', pipeline=[dict(type='Resize', scale=32),
                                                           dict(type='PackInputs')]))
"""


def shipped(pkg: str = "mmcls") -> Path:
    """The configs directory an installed package ships (``<pkg>/.mim/configs``)."""
    spec = importlib.util.find_spec(pkg)
    assert spec and spec.origin, f"{pkg} is not installed"
    return Path(spec.origin).parent / ".mim" / "configs"


class ConfigRepo:
    """A git repository in a temp dir, on branch ``main``, with a helper per edit."""

    def __init__(self, root: Path, pkg: Optional[str] = "mmcls") -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.repo = git.Repo.init(root, initial_branch="main")
        with self.repo.config_writer() as cw:
            cw.set_value("user", "name", "test")
            cw.set_value("user", "email", "test@example.invalid")
        if pkg:
            shutil.copytree(shipped(pkg), root / "configs", ignore=shutil.ignore_patterns("__pycache__"))
            self.commit("shipped configs")

    def path(self, rel: str) -> Path:
        return self.root / rel

    def read(self, rel: str) -> str:
        return self.path(rel).read_text(encoding="utf-8")

    def write(self, rel: str, text: str) -> None:
        p = self.path(rel)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")

    def edit(self, rel: str, change: Union[Callable[[str], str], str]) -> None:
        text = self.read(rel)
        new = change(text) if callable(change) else text.rstrip("\n") + "\n" + change + "\n"
        assert new != text, f"edit of {rel} changed nothing"
        self.write(rel, new)

    def replace(self, rel: str, old: str, new: str) -> None:
        text = self.read(rel)
        assert old in text, f"{old!r} not in {rel}"
        self.write(rel, text.replace(old, new))

    def commit(self, message: str = "change") -> str:
        self.repo.git.add("-A")
        self.repo.index.commit(message)
        return self.repo.head.commit.hexsha

    def branch(self, name: str) -> None:
        self.repo.git.checkout("-b", name)

    def checkout(self, name: str) -> None:
        self.repo.git.checkout(name)
