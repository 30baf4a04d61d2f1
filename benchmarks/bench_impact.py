"""Benchmark (issue 8): review cost follows the change -- definition-level impact against the
file-level rule, on a repository laid out like mmpretrain.

    .venv/bin/python benchmarks/bench_impact.py            # full run (brute force included; ~10-15 min on 2 cores)
    .venv/bin/python benchmarks/bench_impact.py --quick    # definition-level rows only (~1-2 min)
    --workdir DIR    build the fixture in DIR and keep it (default: a temp dir, removed)

The fixture: the installed mmpretrain wheel's package source (``mmpretrain/**.py``) plus the configs it
ships (``mmpretrain/.mim/configs`` -> ``configs/``), committed as one repo on ``main``, so each revision
is analysed with its own code. One branch per change, each shaped like a real commit:

  (a) newbb   a new backbone module + its import and ``__all__`` entry in ``models/backbones/__init__.py``
              + a new config that uses it              -> exactly the new config, <= 60 s
  (b) tools   a new script under ``tools/`` only        -> nothing, <= 10 s, no config resolved
  (c) docs    docstring and comment edits in ``models/backbones/resnet.py`` (used by ~100 configs)
                                                        -> 0 traces
  (d) resnext a behavioural change to one class of a multi-class file: ``ResNeXt`` (a ResNet subclass,
              in ``resnext.py`` beside the ``Bottleneck`` that RegNet and CSPResNeXt use) gets a
              constructor default ``deep_stem=True``    -> every config whose numbers change is reviewed,
              proven by brute force: ``--impact files`` analyses every config that uses ``resnext.py``
              at both revisions; the configs with changed numbers must be a subset of what definitions
              selected, and <= 10% of the configs definitions traced may come back with equal numbers.

Each review is a cold ``mcx-review`` subprocess (an empty ``--cache-dir`` of its own): wall time, peak
RSS (``wait4``: the process and every worker it waited for), configs reviewed, configs resolved and
traces (models analysed) from its stderr summary. Beside each, the file-level rule: ``--impact files
--list`` (how many configs it would review and what resolving every config costs; tracing them is left
out for (a)-(c): (a) alone is ~500 configs) and, for (d), the full brute-force review.
Targets are printed as PASS/MISS, never asserted.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

PY = sys.executable
RESNET = "mmpretrain/models/backbones/resnet.py"
RESNEXT = "mmpretrain/models/backbones/resnext.py"
BACKBONES_INIT = "mmpretrain/models/backbones/__init__.py"

NEW_BACKBONE = '''import torch.nn as nn

from mmpretrain.registry import MODELS
from .base_backbone import BaseBackbone


@MODELS.register_module()
class TinyNewNet(BaseBackbone):
    """A small new backbone: two strided conv stages."""

    def __init__(self, widths=(32, 64), init_cfg=None):
        super().__init__(init_cfg)
        layers, cin = [], 3
        for w in widths:
            layers += [nn.Conv2d(cin, w, 3, 2, 1), nn.BatchNorm2d(w), nn.ReLU()]
            cin = w
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        return (self.layers(x), )
'''
NEW_CONFIG = """_base_ = [
    '../_base_/models/resnet18.py', '../_base_/datasets/imagenet_bs32.py',
    '../_base_/schedules/imagenet_bs256.py', '../_base_/default_runtime.py'
]
model = dict(
    backbone=dict(_delete_=True, type='TinyNewNet', widths=(32, 64)),
    head=dict(in_channels=64))
"""
TOOL = '''"""Print the FLOPs table of a few configs."""
import argparse

from mmengine import Config

from mmpretrain.models import ResNet


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('configs', nargs='+')
    args = parser.parse_args()
    for path in args.configs:
        print(path, Config.fromfile(path).model, ResNet.arch_settings)


if __name__ == '__main__':
    main()
'''


def _replace(text: str, old: str, new: str, count: int = 1) -> str:
    if old not in text:
        raise SystemExit(f"fixture edit: {old!r} not found (the installed mmpretrain differs from what this "
                         "benchmark expects)")
    return text.replace(old, new, count)


def edit(root: Path, rel: str, change: Callable[[str], str]) -> None:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(change(p.read_text(encoding="utf-8") if p.exists() else ""), encoding="utf-8")


def change_newbb(root: Path) -> None:
    edit(root, "mmpretrain/models/backbones/tiny_new.py", lambda _: NEW_BACKBONE)
    def register(s: str) -> str:
        s = _replace(s, "from .twins import PCPVT, SVT\n",
                     "from .tiny_new import TinyNewNet\nfrom .twins import PCPVT, SVT\n")
        return _replace(s, "__all__ = [\n", "__all__ = [\n    'TinyNewNet',\n")
    edit(root, BACKBONES_INIT, register)
    edit(root, "configs/tinynew/tinynew_8xb32_in1k.py", lambda _: NEW_CONFIG)


def change_tools(root: Path) -> None:
    edit(root, "tools/analysis_tools/flops_table.py", lambda _: TOOL)


def change_docs(root: Path) -> None:
    def docs(s: str) -> str:
        s = _replace(s, '"""ResNetV1d backbone.', '"""ResNetV1d backbone (the "D" variant of ResNet).')
        s = _replace(s, 'class ResNet(BaseBackbone):\n    """ResNet backbone.',
                     'class ResNet(BaseBackbone):\n    """ResNet backbone (He et al., 2016).')
        s = _replace(s, "        super(ResNetV1c, self).__init__(",
                     "        # the deep stem replaces the 7x7 conv of the input stem\n"
                     "        super(ResNetV1c, self).__init__(")
        return _replace(s, "class ResLayer(nn.Sequential):",
                        "# Stages of residual blocks.\nclass ResLayer(nn.Sequential):")
    edit(root, RESNET, docs)


def change_resnext(root: Path) -> None:
    def default(s: str) -> str:
        s = _replace(s, "def __init__(self, depth, groups=32, width_per_group=4, **kwargs):",
                     "def __init__(self, depth, groups=32, width_per_group=4, deep_stem=True, **kwargs):")
        return _replace(s, "super(ResNeXt, self).__init__(depth, **kwargs)",
                        "super(ResNeXt, self).__init__(depth, deep_stem=deep_stem, **kwargs)")
    edit(root, RESNEXT, default)


@dataclass(frozen=True)
class Scenario:
    branch: str
    what: str
    apply: Callable[[Path], None]


SCENARIOS = [
    Scenario("newbb", "(a) new backbone module + backbones/__init__ import + new config", change_newbb),
    Scenario("tools", "(b) a new script under tools/ only", change_tools),
    Scenario("docs", "(c) docstring and comment edits in models/backbones/resnet.py", change_docs),
    Scenario("resnext", "(d) ResNeXt (resnext.py) constructor default deep_stem=True", change_resnext),
]


# ---------------------------------------------------------------- fixture

def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid", *args],
                          cwd=root, check=True, capture_output=True, text=True).stdout.strip()


def build_fixture(root: Path) -> None:
    spec = importlib.util.find_spec("mmpretrain")
    if not spec or not spec.origin:
        raise SystemExit(f"mmpretrain is not installed in {PY}")
    pkg = Path(spec.origin).parent
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q", "-b", "main")
    for src in sorted(pkg.rglob("*.py")):
        rel = src.relative_to(pkg)
        if rel.parts[0] == ".mim" or "__pycache__" in rel.parts:
            continue
        dst = root / "mmpretrain" / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
    shutil.copytree(pkg / ".mim" / "configs", root / "configs", ignore=shutil.ignore_patterns("__pycache__"))
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "mmpretrain package source and shipped configs")
    for sc in SCENARIOS:
        git(root, "checkout", "-q", "-b", sc.branch, "main")
        sc.apply(root)
        git(root, "add", "-A")
        git(root, "commit", "-q", "-m", sc.what)
    git(root, "checkout", "-q", "main")


# ---------------------------------------------------------------- runs

@dataclass
class Run:
    wall: float
    maxrss_mb: float  # the process and every descendant it waited for (Linux wait4 semantics)
    rc: int
    out: str
    err: str


def run(argv: Sequence[str], cwd: Optional[Path] = None) -> Run:
    with tempfile.TemporaryFile() as out:
        t0 = time.perf_counter()
        p = subprocess.Popen(list(argv), cwd=cwd, stdout=out, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        lines: List[str] = []

        def read_err() -> None:
            assert p.stderr is not None
            for raw in p.stderr:
                lines.append(raw.decode(errors="replace").rstrip("\n"))

        reader = threading.Thread(target=read_err, daemon=True)
        reader.start()
        _, status, usage = os.wait4(p.pid, 0)  # wait4 also returns the peak RSS
        wall = time.perf_counter() - t0
        reader.join()
        p.stderr.close()  # type: ignore[union-attr]
        out.seek(0)
        return Run(wall, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status),
                   out.read().decode(errors="replace"), "\n".join(lines))


@dataclass
class Review:
    run: Run
    configs: Dict[str, Dict[str, Any]]  # path -> report entry ({} for --list: reasons only)
    resolved: int
    traces: Optional[int]  # None for --list


def review(repo: Path, branch: str, work: Path, impact: str, list_only: bool) -> Review:
    cache = Path(tempfile.mkdtemp(prefix="cache-", dir=work))  # cold: a cache of its own
    out = work / f"{branch}-{impact}{'-list' if list_only else ''}.json"
    argv = [PY, "-m", "mcx_review", "--repo", str(repo), "--base", "main", "--head", branch,
            "--impact", impact, "--cache-dir", str(cache)]
    argv += ["--list"] if list_only else ["--format", "json", "-o", str(out)]
    r = run(argv)
    shutil.rmtree(cache, ignore_errors=True)
    if r.rc not in (0, 1):
        raise SystemExit(f"mcx-review failed ({r.rc}) on {branch} --impact {impact}:\n{r.err[-3000:]}")
    m = re.search(r"(\d+) resolved", r.err)
    resolved = int(m.group(1)) if m else 0
    if list_only:
        lines = [line for line in r.out.splitlines() if line.strip() and line != "no config is affected by this change"]
        configs = {line.split()[0]: {"reasons": line.split(None, 1)[1:]} for line in lines}
        return Review(r, configs, resolved, None)
    t = re.search(r"(\d+) analysed", r.err)
    configs = {c["path"]: c for c in json.loads(out.read_text())["configs"]}
    return Review(r, configs, resolved, int(t.group(1)) if t else None)


def numbers_changed(entry: Dict[str, Any]) -> bool:
    """FLOPs, params or activations differ between base and head (an added / removed / failing
    config counts as changed)."""
    if entry["status"] == "unchanged":
        return False
    b, h = entry.get("base"), entry.get("head")
    if not b or not h:
        return True
    return any(b[k] != h[k] for k in ("flops", "params", "activations"))


# ---------------------------------------------------------------- report

def fmt_row(cells: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()


def target(label: str, value: str, goal: str, ok: bool) -> str:
    return f"  {'PASS' if ok else 'MISS'}  {label}: {value} (target {goal})"


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="definition-level reviews only (no --impact files runs)")
    ap.add_argument("--workdir", type=Path, help="build the fixture here and keep it")
    args = ap.parse_args(argv)

    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-impact-"))
    work.mkdir(parents=True, exist_ok=True)
    repo = work / "repo"
    try:
        t0 = time.perf_counter()
        if not (repo / ".git").exists():
            build_fixture(repo)
        n_configs = sum(1 for p in (repo / "configs").rglob("*.py") if "_base_" not in p.parts)
        n_py = sum(1 for _ in (repo / "mmpretrain").rglob("*.py"))
        print(f"fixture: {repo} -- mmpretrain package ({n_py} .py files) + {n_configs} shipped configs "
              f"(excluding _base_), built in {time.perf_counter() - t0:.0f} s; cpus {os.cpu_count()}")
        print(f"python {sys.version.split()[0]}; mode {'quick' if args.quick else 'full'}\n")

        rows: List[List[str]] = []
        results: Dict[str, Dict[str, Review]] = {}
        for sc in SCENARIOS:
            res = {"definitions": review(repo, sc.branch, work, "definitions", list_only=False)}
            if not args.quick:
                brute = sc.branch == "resnext"
                res["files"] = review(repo, sc.branch, work, "files", list_only=not brute)
            results[sc.branch] = res
            for impact, rv in res.items():
                label = impact + (" --list" if rv.traces is None else "")
                rows.append([sc.what if impact == "definitions" else "", label, str(len(rv.configs)),
                             str(rv.resolved), "-" if rv.traces is None else str(rv.traces),
                             f"{rv.run.wall:.1f} s", f"{rv.run.maxrss_mb:.0f} MB"])
                print(f"  {sc.branch} {label}: {len(rv.configs)} configs, {rv.resolved} resolved, "
                      f"traces {rv.traces}, {rv.run.wall:.1f} s, peak RSS {rv.run.maxrss_mb:.0f} MB", flush=True)

        head = ["change", "impact", "configs", "resolved", "traces", "wall", "peak RSS"]
        widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
        print("\n" + fmt_row(head, widths))
        print(fmt_row(["-" * w for w in widths], widths))
        for r in rows:
            print(fmt_row(r, widths))

        a, b, c, d = (results[s.branch]["definitions"] for s in SCENARIOS)
        print("\ntargets (printed, never asserted):")
        print(target("(a) configs reviewed", ", ".join(sorted(a.configs)) or "none",
                     "exactly configs/tinynew/tinynew_8xb32_in1k.py",
                     set(a.configs) == {"configs/tinynew/tinynew_8xb32_in1k.py"}))
        print(target("(a) wall", f"{a.run.wall:.1f} s", "<= 60 s", a.run.wall <= 60))
        print(target("(b) configs reviewed / resolved", f"{len(b.configs)} / {b.resolved}", "0 / 0",
                     not b.configs and b.resolved == 0))
        print(target("(b) wall", f"{b.run.wall:.1f} s", "<= 10 s", b.run.wall <= 10))
        print(target("(c) traces", str(c.traces), "0", c.traces == 0))
        traced = {p for p, e in d.configs.items() if not e.get("skipped_unchanged")}
        equal = {p for p in traced if not numbers_changed(d.configs[p])}
        share = len(equal) / len(traced) if traced else 0.0
        print(target("(d) traced configs with equal numbers", f"{len(equal)} of {len(traced)} ({share:.0%})",
                     "<= 10%", share <= 0.10))
        if "files" in results["resnext"]:
            brute = results["resnext"]["files"]
            moved = {p for p, e in brute.configs.items() if numbers_changed(e)}
            missed = sorted(moved - set(d.configs))
            print(target("(d) recall: configs whose numbers change (brute force over the "
                         f"{len(brute.configs)} configs that use resnext.py, both revisions)",
                         f"{len(moved)}, all selected by definitions" if not missed else f"missed {missed}",
                         "a subset of the definitions selection", not missed))
            print(f"        definitions selected {len(d.configs)}: {', '.join(sorted(d.configs))}")
            print(f"        changed numbers (brute force) {len(moved)}: {', '.join(sorted(moved))}")
        for sc in SCENARIOS:
            files = results[sc.branch].get("files")
            if files is not None:
                de = results[sc.branch]["definitions"]
                print(f"  ({sc.branch}) file-level rule: {len(files.configs)} configs, {files.resolved} resolved, "
                      f"{files.run.wall:.0f} s; definitions: {len(de.configs)} configs, {de.resolved} resolved, "
                      f"{de.run.wall:.0f} s")
        print(f"\nreasons, (a): {a.configs and next(iter(a.configs.values())).get('reasons')}")
        if d.configs:
            print(f"reasons, (d): {next(iter(d.configs.values())).get('reasons')}")
        print(f"total {time.perf_counter() - t0:.0f} s")
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
