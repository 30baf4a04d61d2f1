"""Benchmark: mcx-review against the loop it replaces, on a fixture PR built from the shipped configs.

    .venv/bin/python benchmarks/bench_review.py            # full run (about 5-10 min on 2 cores)
    .venv/bin/python benchmarks/bench_review.py --quick    # 4 configs, 2-way shards only

Measures, in one run and side by side:
  (A) mmcls's own tools/analysis_tools/get_flops.py as a subprocess per changed config per revision
      (each revision a git worktree), with the input shape mcx-review used;
  (B) mcx-review cold (empty cache), (C) the same command warm (same cache), both as subprocesses;
  (D) the floor: per revision ONE process that imports torch/mmcls once and, per distinct model, builds
      it without weight init and runs one bare fvcore FlopCountAnalysis total (revisions in parallel);
  peak RSS (wait4 rusage of each subprocess; on Linux it includes the descendants it waited for);
  the --shard K/N + merge round trip against the unsharded JSON; a `_base_/default_runtime.py` change in
  the full config zoo (no model may be built); a `_base_/models/resnet50.py` change (each distinct
  model once per revision).
Targets are printed next to the figures as PASS/MISS; nothing is asserted.
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
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

PY = sys.executable
SIDES = ("base", "head")


# ---------------------------------------------------------------- fixture

@dataclass(frozen=True)
class Edit:
    path: str  # repo-relative
    change: Callable[[str], str]
    arch: str
    what: str


def append(text: str) -> Callable[[str], str]:
    return lambda src: src.rstrip("\n") + "\n\n" + text.strip("\n") + "\n"


def replace(old: str, new: str) -> Callable[[str], str]:
    def change(src: str) -> str:
        if old not in src:
            raise SystemExit(f"fixture edit: {old!r} not found (shipped configs differ from what this "
                             "benchmark expects)")
        return src.replace(old, new)
    return change


def _test_pipeline(resize: int, crop: int) -> str:
    return f"""test_dataloader = dict(dataset=dict(pipeline=[
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale={resize}, edge='short', backend='pillow', interpolation='bicubic'),
    dict(type='CenterCrop', crop_size={crop}),
    dict(type='PackClsInputs'),
]))"""


# Leaf configs (nothing inherits them), so "changed configs" and "configs reviewed" are the same set.
PR_EDITS = [
    Edit("configs/resnet/resnet18_8xb32_in1k.py", append("model = dict(backbone=dict(depth=34))"),
         "resnet", "ResNet-18 given depth=34"),
    Edit("configs/convnext/convnext-tiny_32xb128_in1k.py", append(_test_pipeline(329, 288)),
         "convnext", "ConvNeXt-T evaluated at 288 instead of 224"),
    Edit("configs/vision_transformer/vit-base-p16_pt-64xb64_in1k-224.py", replace("hidden_dim=3072", "hidden_dim=1536"),
         "vit", "ViT-B/16 head hidden_dim 3072 -> 1536"),
    Edit("configs/mobilenet_v2/mobilenet-v2_8xb32_in1k.py", append("model = dict(backbone=dict(widen_factor=0.75))"),
         "mobilenet_v2", "MobileNetV2 widen_factor 1.0 -> 0.75"),
    Edit("configs/swin_transformer/swin-tiny_16xb64_in1k.py",
         append("model = dict(backbone=dict(img_size=256))\n" + _test_pipeline(292, 256)),
         "swin", "Swin-T at 256 instead of 224"),
    Edit("configs/efficientnet/efficientnet-b0_8xb32_in1k.py", append("model = dict(backbone=dict(arch='b1'))"),
         "efficientnet", "EfficientNet-B0 scaled to arch b1"),
    Edit("configs/regnet/regnetx-800mf_8xb128_in1k.py",
         lambda s: replace("in_channels=672", "in_channels=912")(replace("regnetx_800mf", "regnetx_1.6gf")(s)),
         "regnet", "RegNetX-800MF -> 1.6GF (head in_channels 912)"),
    Edit("configs/shufflenet_v2/shufflenet-v2-1x_16xb64_in1k.py",
         append("model = dict(backbone=dict(widen_factor=0.5))"),
         "shufflenet_v2", "ShuffleNetV2 widen_factor 1.0 -> 0.5"),
    Edit("configs/seresnet/seresnet50_8xb32_in1k.py", append("model = dict(backbone=dict(depth=101))"),
         "seresnet", "SE-ResNet-50 given depth=101"),
    Edit("configs/densenet/densenet121_4xb256_in1k.py",
         append("model = dict(backbone=dict(arch='169'), head=dict(in_channels=1664))"),
         "densenet", "DenseNet-121 -> 169"),
]
QUICK = (0, 1, 2, 3)  # resnet, convnext, vit, mobilenet_v2

RUNTIME_EDIT = Edit("configs/_base_/default_runtime.py",
                    replace("dict(type='LoggerHook', interval=100)", "dict(type='LoggerHook', interval=50)"),
                    "runtime", "log every 50 iterations")
RESNET50_EDIT = Edit("configs/_base_/models/resnet50.py", replace("depth=50,", "depth=101,"),
                     "resnet", "the shared ResNet-50 model fragment given depth=101")


def shipped_configs(pkg: str = "mmcls") -> Path:
    spec = importlib.util.find_spec(pkg)
    if not spec or not spec.origin:
        raise SystemExit(f"{pkg} is not installed in {PY}")
    return Path(spec.origin).parent / ".mim" / "configs"


def get_flops_script() -> Path:
    spec = importlib.util.find_spec("mmcls")
    assert spec and spec.origin
    path = Path(spec.origin).parent / ".mim" / "tools" / "analysis_tools" / "get_flops.py"
    if not path.is_file():
        raise SystemExit(f"mmcls ships no get_flops.py at {path}")
    return path


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid", *args],
                          cwd=root, check=True, capture_output=True, text=True).stdout.strip()


def build_fixture(root: Path, branches: Dict[str, Sequence[Edit]]) -> None:
    """``main`` = the shipped mmcls configs; each branch = main + its edits, one commit."""
    shutil.copytree(shipped_configs(), root / "configs", ignore=shutil.ignore_patterns("__pycache__"))
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "mmcls configs as shipped")
    for name, edits in branches.items():
        git(root, "checkout", "-q", "-b", name, "main")
        for e in edits:
            p = root / e.path
            new = e.change(p.read_text(encoding="utf-8"))
            assert new != p.read_text(encoding="utf-8"), f"edit of {e.path} changed nothing"
            p.write_text(new, encoding="utf-8")
        git(root, "commit", "-q", "-am", "; ".join(e.what for e in edits))
    git(root, "checkout", "-q", "main")


# ---------------------------------------------------------------- measuring subprocesses

def _busy_seconds() -> float:
    """CPU seconds all cores have spent busy since boot (/proc/stat), 0 where there is no /proc."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except OSError:
        return 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU time other processes on the machine used during a phase (ours: this process and its
    reaped children), so a noisy neighbour shows up next to the figure it distorts."""

    def __enter__(self) -> "CpuMeter":
        self._busy, self._ours = _busy_seconds(), sum(os.times()[:4])
        self.foreign = 0.0
        return self

    def __exit__(self, *exc: Any) -> None:
        self.foreign = max(0.0, (_busy_seconds() - self._busy) - (sum(os.times()[:4]) - self._ours))


@dataclass
class Run:
    wall: float
    maxrss_mb: float  # the process and every descendant it waited for (Linux wait4 semantics)
    rc: int
    out: str
    err: str
    err_times: List[Tuple[float, str]] = field(default_factory=list)  # (seconds since start, stderr line)


def run(argv: Sequence[str], cwd: Optional[Path] = None, stdin: Optional[str] = None,
        env: Optional[Dict[str, str]] = None) -> Run:
    """Wall time and peak RSS of one subprocess; stdout to a file, stderr lines timestamped."""
    with tempfile.TemporaryFile() as out:
        t0 = time.perf_counter()
        p = subprocess.Popen(list(argv), cwd=cwd, stdout=out, stderr=subprocess.PIPE, env=env,
                             stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL)
        lines: List[Tuple[float, str]] = []

        def read_err() -> None:
            assert p.stderr is not None
            for raw in p.stderr:
                lines.append((time.perf_counter() - t0, raw.decode(errors="replace").rstrip("\n")))

        reader = threading.Thread(target=read_err, daemon=True)
        reader.start()
        if stdin is not None:
            assert p.stdin is not None
            p.stdin.write(stdin.encode())
            p.stdin.close()
        _, status, usage = os.wait4(p.pid, 0)  # not p.wait(): wait4 also returns the peak RSS
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        reader.join()
        p.stderr.close()  # type: ignore[union-attr]
        out.seek(0)
        return Run(wall, usage.ru_maxrss / 1024, p.returncode, out.read().decode(errors="replace"),
                   "\n".join(text for _, text in lines), lines)


def mcx_review_argv() -> List[str]:
    exe = Path(PY).parent / "mcx-review"
    return [str(exe)] if exe.exists() else [PY, "-m", "mcx_review"]


def checked(r: Run, what: str) -> Run:
    if r.rc != 0:
        tail = "\n".join((r.err or r.out).strip().splitlines()[-15:])
        raise SystemExit(f"{what} failed (exit {r.rc}):\n{tail}")
    return r


def one_thread_env() -> Dict[str, str]:
    """The environment with torch's intra-op pool capped at one thread per process."""
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def review(repo: Path, head: str, cache: Path, *extra: str, env: Optional[Dict[str, str]] = None) -> Run:
    return checked(run([*mcx_review_argv(), "--repo", str(repo), "--base", "main", "--head", head,
                        "--format", "json", "--cache-dir", str(cache), *extra], env=env),
                   f"mcx-review {' '.join(extra)}")


# ---------------------------------------------------------------- (A) the get_flops.py loop

_GF_LINE = re.compile(r"^(Flops|Params|Activation): (\S+)$", re.M)


def measured_sides(report: Dict[str, Any]) -> List[Tuple[str, str, str, List[int], Dict[str, Any]]]:
    """(side, config path on that side, report path, input_shape [C, H, W], stats) for every measured side."""
    out = []
    for entry in report["configs"]:
        for side in SIDES:
            stats = entry.get(side)
            if stats:
                path = (entry.get("old_path") or entry["path"]) if side == "base" else entry["path"]
                out.append((side, path, entry["path"], stats["input_shape"], stats))
    return out


@dataclass
class LoopResult:
    wall: float = 0.0
    setup: float = 0.0
    runs: Dict[Tuple[str, str], Run] = field(default_factory=dict)
    agree: int = 0
    disagree: List[str] = field(default_factory=list)


def get_flops_loop(trees: Dict[str, Path], work: Sequence[Tuple[str, str, str, List[int], Dict[str, Any]]],
                   setup: float) -> LoopResult:
    from mcx_review.units import format_count

    script = get_flops_script()
    res = LoopResult(setup=setup)
    t0 = time.perf_counter()
    for side, path, _, shape, stats in work:
        r = checked(run([PY, str(script), path, "--shape", str(shape[1]), str(shape[2])], cwd=trees[side]),
                    f"get_flops.py {path} ({side})")
        res.runs[(side, path)] = r
        got = dict(_GF_LINE.findall(r.out))
        want = {"Flops": format_count(stats["flops"]), "Params": format_count(stats["params"]),
                "Activation": format_count(stats["activations"])}
        if got == want:
            res.agree += 1
        else:
            res.disagree.append(f"{side} {path}: get_flops {got} vs mcx-review {want}")
    res.wall = time.perf_counter() - t0 + setup
    return res


# ---------------------------------------------------------------- (D) the floor

def floor_worker(tree: str) -> int:
    """One revision: import once, then per distinct (model, shape) build without init + one FLOPs total."""
    t0 = time.perf_counter()
    os.chdir(tree)
    sys.path.insert(0, tree)
    import torch
    from fvcore.nn import FlopCountAnalysis
    from mmengine.config import Config

    from mcx_review.measure.worker import analysis

    imported = time.perf_counter() - t0
    seen, models = set(), []
    for path, shape in json.loads(sys.stdin.read()):
        cfg = Config.fromfile(path)
        key = json.dumps([cfg.model.to_dict(), shape], sort_keys=True, default=repr)
        if key in seen:
            continue
        seen.add(key)
        t = time.perf_counter()
        model = analysis.build_model(cfg)
        analysis.bind_forward(model)
        fca = FlopCountAnalysis(model, (torch.randn(1, *shape),))
        fca.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        models.append({"config": path, "flops": int(fca.total()), "seconds": time.perf_counter() - t})
    print("FLOOR " + json.dumps({"import": imported, "models": models}), flush=True)
    return 0


@dataclass
class Floor:
    wall: float
    sides: Dict[str, Dict[str, Any]]  # side -> {"import", "models": [...], "wall", "maxrss_mb"}
    foreign: float = 0.0


def floor(trees: Dict[str, Path], work: Sequence[Tuple[str, str, str, List[int], Dict[str, Any]]],
          env: Optional[Dict[str, str]] = None) -> Floor:
    """Both revisions' floor processes at once (the cores mcx-review gets); wall of the pair."""
    runs: Dict[str, Run] = {}

    def one(side: str) -> None:
        spec = [[p, shape] for s, p, _, shape, _ in work if s == side]
        runs[side] = run([PY, os.path.abspath(__file__), "--floor-worker", str(trees[side])],
                         stdin=json.dumps(spec), env=env)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=one, args=(s,)) for s in SIDES]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    out = {}
    for side, r in runs.items():
        checked(r, f"floor worker ({side})")
        line = [ln for ln in r.out.splitlines() if ln.startswith("FLOOR ")][-1]
        out[side] = {**json.loads(line[6:]), "wall": r.wall, "maxrss_mb": r.maxrss_mb}
    return Floor(wall, out)


# ---------------------------------------------------------------- in-process scenarios (need Stats)

def review_in_process(repo: Path, head: str, cache: Path) -> Tuple[float, Dict[str, Any], Any, list, Counter]:
    from mcx_review.cli import options as cli
    from mcx_review.review import Options, run_review

    built: Counter = Counter()

    def progress(side: str, config: str, result: Dict[str, Any]) -> None:
        built[side] += 1

    t0 = time.perf_counter()
    report, stats, targets = run_review(repo, Options(base="main", head=head, jobs=cli.default_jobs(),
                                                      cache_dir=cache), progress=progress)
    return time.perf_counter() - t0, report, stats, targets, built


def distinct_models(trees: Dict[str, Path], report: Dict[str, Any]) -> Dict[str, int]:
    """Independent count: distinct (resolved model dict, measured input shape) per revision, loaded with
    mmengine in a subprocess per revision (no registry, no torch)."""
    out = {}
    for side in SIDES:
        spec = [[p, shape] for s, p, _, shape, _ in measured_sides(report) if s == side]
        code = ("import json,sys\nfrom mmengine.config import Config\nkeys=set()\n"
                "for p, shape in json.load(sys.stdin):\n"
                "    keys.add(json.dumps([Config.fromfile(p).model.to_dict(), shape], sort_keys=True, default=repr))\n"
                "print(len(keys))\n")
        r = checked(run([PY, "-c", code], cwd=trees[side], stdin=json.dumps(spec)), f"distinct count ({side})")
        out[side] = int(r.out.strip().splitlines()[-1])
    return out


class Worktrees:
    def __init__(self, repo: Path, shas: Dict[str, str], where: Path) -> None:
        self.repo = repo
        self.trees = {s: where / s for s in SIDES}
        for s in SIDES:
            git(repo, "worktree", "add", "-q", "--detach", str(self.trees[s]), shas[s])

    def close(self) -> None:
        for t in self.trees.values():
            git(self.repo, "worktree", "remove", "--force", str(t))


# ---------------------------------------------------------------- scenarios

Side = Tuple[str, str, str, List[int], Dict[str, Any]]


@dataclass
class PrResult:
    edits: List[Edit]
    report: Dict[str, Any]
    sides: List[Side]
    a: LoopResult
    b: Run
    c: Run
    b1: Run  # cold, OMP_NUM_THREADS=1
    floors: Dict[str, Floor]  # "1 thread" / "default threads"
    largest: Side
    worker: Run
    worker_ok: bool
    foreign: Dict[str, float]  # phase -> CPU seconds other processes used meanwhile


def measure_pr(repo: Path, work: Path, edits: List[Edit], say: Callable[[str], None]) -> PrResult:
    foreign: Dict[str, float] = {}
    cache = work / "cache"
    shutil.rmtree(cache, ignore_errors=True)
    say("(B) mcx-review cold")
    with CpuMeter() as m:
        b = review(repo, "pr", cache)
    foreign["B"] = m.foreign
    say("(C) mcx-review warm")
    with CpuMeter() as m:
        c = review(repo, "pr", cache)
    foreign["C"] = m.foreign
    say("(B1) mcx-review cold, OMP_NUM_THREADS=1")
    shutil.rmtree(cache, ignore_errors=True)
    with CpuMeter() as m:
        b1 = review(repo, "pr", cache, env=one_thread_env())
    foreign["B1"] = m.foreign
    report = json.loads(b.out)
    sides = measured_sides(report)
    shas = {"base": report["base"]["sha"], "head": report["head"]["sha"]}
    t0 = time.perf_counter()
    wt = Worktrees(repo, shas, work / "wt")
    setup = time.perf_counter() - t0
    try:
        say(f"(A) get_flops.py x {len(sides)}")
        with CpuMeter() as m:
            a = get_flops_loop(wt.trees, sides, setup)
        foreign["A"] = m.foreign
        floors = {}
        for label, env in (("1 thread/process", one_thread_env()), ("default threads", None)):
            say(f"(D) floor, {label}")
            with CpuMeter() as m:
                floors[label] = floor(wt.trees, sides, env)
            floors[label].foreign = m.foreign
        largest = max(sides, key=lambda s: (s[4]["flops"], s[0] == "head"))
        side, path = largest[0], largest[1]
        say(f"peak RSS: one mcx-review worker on {path} ({side})")
        job = json.dumps({"id": 0, "op": "analyse", "config": path, "shape": None}) + "\n"
        w = checked(run([PY, "-m", "mcx_review.worker", str(wt.trees[side])], cwd=wt.trees[side], stdin=job),
                    "mcx-review worker")
        w_ok = bool(json.loads(w.out.strip().splitlines()[-1]).get("ok"))
    finally:
        wt.close()
    return PrResult(edits, report, sides, a, b, c, b1, floors, largest, w, w_ok, foreign)


@dataclass
class ShardResult:
    n: int
    walls: List[float]
    identical: bool


def measure_shards(repo: Path, work: Path, unsharded: str, ns: Sequence[int], say: Callable[[str], None]
                   ) -> List[ShardResult]:
    """Each shard with its own empty cache (as separate CI machines would be), then ``merge``."""
    out = []
    for n in ns:
        say(f"--shard k/{n} + merge")
        parts, walls = [], []
        for k in range(1, n + 1):
            part, shard_cache = work / f"shard-{k}of{n}.json", work / f"cache-shard-{k}of{n}"
            shutil.rmtree(shard_cache, ignore_errors=True)
            walls.append(review(repo, "pr", shard_cache, "--shard", f"{k}/{n}", "--output", str(part)).wall)
            parts.append(str(part))
        merged = work / f"merged-{n}.json"
        checked(run([*mcx_review_argv(), "merge", *parts, "--format", "json", "--output", str(merged)]),
                "mcx-review merge")
        out.append(ShardResult(n, walls, merged.read_text(encoding="utf-8") == unsharded))
    return out


@dataclass
class InProcess:
    what: str
    wall: float
    stats: Any  # mcx_review.review.Stats
    reviewed: int
    statuses: Counter
    built: Counter  # side -> models analysed
    errors: List[str]  # "path: first error", for configs in error
    distinct: Optional[Dict[str, int]] = None
    foreign: float = 0.0


def measure_in_process(repo: Path, work: Path, head: str, what: str, count_distinct: bool) -> InProcess:
    cache = work / f"cache-{head}"
    shutil.rmtree(cache, ignore_errors=True)  # a kept --workdir must not turn this into a warm run
    with CpuMeter() as m:
        wall, report, stats, targets, built = review_in_process(repo, head, cache)
    errors = [f"{e['path']}: {(e.get('errors') or [{'message': '?'}])[0]['message'][:90]}…"
              for e in report["configs"] if e["status"] == "error"]
    res = InProcess(what, wall, stats, len(targets), Counter(e["status"] for e in report["configs"]), built,
                    errors, foreign=m.foreign)
    if count_distinct:
        wt = Worktrees(repo, {"base": report["base"]["sha"], "head": report["head"]["sha"]}, work / f"wt-{head}")
        try:
            res.distinct = distinct_models(wt.trees, report)
        finally:
            wt.close()
    return res


# ---------------------------------------------------------------- rendering

def target(label: str, measured: str, goal: str, ok: Optional[bool]) -> str:
    """One row of the targets table; ``ok`` None for the header."""
    return f"{label:<42}{measured:>11}{goal:>10}   {'verdict' if ok is None else 'PASS' if ok else 'MISS'}"


def mb(x: float) -> str:
    return f"{x:,.0f} MB"


def _spread(values: List[float]) -> str:
    v = sorted(values)
    return f"{v[0]:.1f}/{v[len(v) // 2]:.1f}/{v[-1]:.1f} s"


def _at(r: Run, needle: str) -> Optional[float]:
    return next((t for t, line in r.err_times if needle in line), None)


def _floor_agree(d: Dict[str, Dict[str, Any]], sides: Sequence[Side]) -> str:
    want = {(s, p): st["flops"] for s, p, _, _, st in sides}
    got = [(s, m["config"], m["flops"]) for s in SIDES for m in d[s]["models"]]
    same = sum(1 for s, p, f in got if want.get((s, p)) == f)
    return f"{same}/{len(got)}"


def render(pr: PrResult, shards: List[ShardResult], zoo: Optional[InProcess], r50: Optional[InProcess],
           n_zoo: int, import_wall: float) -> str:
    from mcx_review.cli import options as cli
    from mcx_review.measure.cache import package_versions

    v = package_versions()
    cores = os.cpu_count() or 1
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    a, b, c = pr.a, pr.b, pr.c
    floor_label = min(pr.floors, key=lambda k: pr.floors[k].wall)  # the floor is the faster arrangement
    d = pr.floors[floor_label]
    n_models = {s: sum(1 for x in pr.sides if x[0] == s) for s in SIDES}
    statuses = Counter(e["status"] for e in pr.report["configs"])
    ba, bd = b.wall / a.wall, b.wall / d.wall
    t_plan, t_done = _at(b, "analysing "), _at(b, "done:")
    gf = a.runs[(pr.largest[0], pr.largest[1])]
    f = pr.foreign
    row = "{:<5}{:<64}{:>9}{:>11}{:>13}"
    L = [
        f"mcx-review benchmark · {cores} cores (usable {usable}) · mcx-review default --jobs {cli.default_jobs()} · "
        f"torch {v.get('torch')} · fvcore {v.get('fvcore')} · mmcls {v.get('mmcls')} · mmengine {v.get('mmengine')}",
        f"fixture PR main -> pr in a copy of the {n_zoo} shipped mmcls configs: {len(pr.edits)} configs edited across "
        f"{len({e.arch for e in pr.edits})} architectures; {len(pr.report['configs'])} reviewed "
        f"({', '.join(f'{n} {k}' for k, n in sorted(statuses.items()))}); "
        f"{len(pr.sides)} measured sides ({n_models['base']} base + {n_models['head']} head)",
        f"import torch + fvcore + mmcls.models alone: {import_wall:.1f} s",
        "",
        row.format("", "measurement", "wall", "peak RSS", "others' CPU"),
        row.format("(A)", f"get_flops.py per config per revision, {len(a.runs)} runs in sequence", f"{a.wall:.1f} s",
                   mb(max(r.maxrss_mb for r in a.runs.values())), f"{f['A']:.1f} s"),
        f"{'':5}  2 git worktrees {a.setup:.1f} s; one run min/median/max {_spread([r.wall for r in a.runs.values()])}",
        row.format("(B)", "mcx-review --format json, empty --cache-dir (cold)", f"{b.wall:.1f} s", mb(b.maxrss_mb),
                   f"{f['B']:.1f} s"),
        f"{'':5}  plan (git, impact, resolve) {t_plan or 0:.1f} s; models {(t_done or 0) - (t_plan or 0):.1f} s; "
        f"exit {b.wall - (t_done or b.wall):.1f} s",
        row.format("(C)", "same command, same cache (warm)", f"{c.wall:.2f} s", mb(c.maxrss_mb), f"{f['C']:.1f} s"),
        row.format("(B1)", "B with OMP_NUM_THREADS=1 exported (1 torch thread per worker)",
                   f"{pr.b1.wall:.1f} s", mb(pr.b1.maxrss_mb), f"{f['B1']:.1f} s"),
        f"{'':5}  plan {_at(pr.b1, 'analysing ') or 0:.1f} s; models "
        f"{(_at(pr.b1, 'done:') or 0) - (_at(pr.b1, 'analysing ') or 0):.1f} s; "
        f"JSON byte-identical to B's: {'yes' if pr.b1.out == b.out else 'NO'}",
    ]
    for label, fl in pr.floors.items():
        L += [
            row.format("(D)" if label == floor_label else "",
                       f"floor, {label}: 1 import/rev + 1 FlopCountAnalysis/model", f"{fl.wall:.1f} s",
                       mb(max(fl.sides[s]['maxrss_mb'] for s in SIDES)), f"{fl.foreign:.1f} s"),
            f"{'':5}  {sum(len(fl.sides[s]['models']) for s in SIDES)} models, revisions in parallel: " + "; ".join(
                f"{s} import {fl.sides[s]['import']:.1f} s + models "
                f"{sum(m['seconds'] for m in fl.sides[s]['models']):.1f} s" for s in SIDES),
        ]
    L += [
        "  (peak RSS = ru_maxrss from wait4 of that subprocess: its own peak or a waited-for descendant's;",
        "   others' CPU = CPU seconds the rest of the machine used meanwhile, from /proc/stat: noise indicator)",
        "",
        target("target", "measured", "goal", None),
        target("B/A  cold review / get_flops loop", f"{ba:.3f}", "<= 0.2", ba <= 0.2),
        target("B/D  cold review / floor", f"{bd:.2f}", "<= 1.5", bd <= 1.5),
        target("B1/A (with a 1-thread cap)", f"{pr.b1.wall / a.wall:.3f}", "<= 0.2", pr.b1.wall / a.wall <= 0.2),
        target("B1/D (with a 1-thread cap)", f"{pr.b1.wall / d.wall:.2f}", "<= 1.5", pr.b1.wall / d.wall <= 1.5),
        target("C    warm review wall", f"{c.wall:.2f} s", "<= 2 s", c.wall <= 2),
    ]
    if zoo:
        torch_used = "yes" if zoo.stats.torch_imported else "no"
        L += [target("zoo: review wall", f"{zoo.wall:.1f} s", "<= 30 s", zoo.wall <= 30),
              target("zoo: models built (torch imported)", f"{zoo.stats.analysed} ({torch_used})", "0 (no)",
                     zoo.stats.analysed == 0 and not zoo.stats.torch_imported)]
    if r50 and r50.distinct:
        L.append(target("resnet50: built = distinct, per revision", f"{r50.built['base']}+{r50.built['head']}",
                        f"{r50.distinct['base']}+{r50.distinct['head']}",
                        all(r50.built[s] == r50.distinct[s] for s in SIDES)))
    L += [
        "",
        f"peak RSS on the PR's largest model ({pr.largest[1]}, {pr.largest[0]}, "
        f"{pr.largest[3][1]}x{pr.largest[3][2]}):",
        f"  one mcx-review worker, one analyse job (python -m mcx_review.worker)  {mb(pr.worker.maxrss_mb):>9}  "
        f"{pr.worker.wall:.1f} s{'' if pr.worker_ok else '  (job FAILED)'}",
        f"  mmcls get_flops.py                                                  {mb(gf.maxrss_mb):>9}  {gf.wall:.1f} s",
        f"  the whole cold review (B: max over mcx-review and its workers)      {mb(b.maxrss_mb):>9}",
        "",
        f"get_flops.py prints the same FLOPs/params/activations as mcx-review: {a.agree}/{len(a.runs)}",
        *[f"  differs: {x}" for x in a.disagree],
        f"floor (bare fvcore FlopCountAnalysis) total equals mcx-review's FLOPs: {_floor_agree(d.sides, pr.sides)}",
        f"warm JSON byte-identical to cold JSON: {'yes' if c.out == b.out else 'NO'}",
    ]
    for s in shards:
        L.append(f"--shard 1/{s.n}..{s.n}/{s.n} (each its own empty cache: {' + '.join(f'{x:.1f}' for x in s.walls)} s)"
                 f" -> merge vs unsharded JSON: {'byte-identical' if s.identical else 'DIFFERENT'}")
    for sc in (zoo, r50):
        if sc is None:
            continue
        L += ["", f"{sc.what}: {sc.reviewed} configs reviewed in {sc.wall:.1f} s (in-process run_review; others' CPU "
                  f"{sc.foreign:.1f} s); statuses {dict(sorted(sc.statuses.items()))}; Stats: resolved "
                  f"{sc.stats.resolved}, analysed {sc.stats.analysed}, cache hits {sc.stats.cache_hits}, "
                  f"skipped unchanged {sc.stats.skipped_unchanged}, torch imported "
                  f"{'yes' if sc.stats.torch_imported else 'no'}"]
        if sc is zoo:
            L.append(f"  every inheritor unchanged: {'yes' if set(sc.statuses) == {'unchanged'} else 'no'} "
                     f"({sc.statuses.get('unchanged', 0)} unchanged, {sc.statuses.get('error', 0)} in error)")
        if sc.distinct is not None:
            L.append(f"  models built per revision: base {sc.built['base']}, head {sc.built['head']}; distinct "
                     f"(resolved model, input shape) by an independent mmengine count: base {sc.distinct['base']}, "
                     f"head {sc.distinct['head']}")
        L += [f"  error: {e}" for e in sc.errors[:6]]
    return "\n".join(L)


# ---------------------------------------------------------------- main

def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="4 changed configs (4 architectures), 2-way shards only")
    ap.add_argument("--skip", default="", help="comma list of: shards, zoo, resnet50")
    ap.add_argument("--workdir", type=Path, help="build the fixture here and keep it (default: a temp dir, removed)")
    ap.add_argument("--floor-worker", metavar="TREE", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.floor_worker:
        return floor_worker(args.floor_worker)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    if skip - {"shards", "zoo", "resnet50"}:
        ap.error(f"--skip: unknown {', '.join(sorted(skip - {'shards', 'zoo', 'resnet50'}))}")

    started = time.perf_counter()
    edits = [PR_EDITS[i] for i in QUICK] if args.quick else PR_EDITS
    work = args.workdir or Path(tempfile.mkdtemp(prefix="mcx-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    repo = work / "repo"
    shutil.rmtree(repo, ignore_errors=True)

    def say(message: str) -> None:
        print(f"bench [{time.perf_counter() - started:5.0f} s] {message}", file=sys.stderr, flush=True)

    try:
        say("building the fixture repository")
        build_fixture(repo, {"pr": edits, "runtime": [RUNTIME_EDIT], "r50": [RESNET50_EDIT]})
        n_zoo = sum(1 for p in (repo / "configs").rglob("*.py") if "_base_" not in p.parts)
        warm = checked(run([PY, "-c", "import torch, fvcore.nn, mmcls.models"]), "import check")  # warms the page cache
        pr = measure_pr(repo, work, edits, say)
        shards = [] if "shards" in skip else measure_shards(repo, work, pr.b.out, (2,) if args.quick else (2, 4), say)
        zoo = r50 = None
        if "zoo" not in skip:
            say("zoo: _base_/default_runtime.py change")
            zoo = measure_in_process(repo, work, "runtime", f"zoo, {RUNTIME_EDIT.path} ({RUNTIME_EDIT.what})", False)
        if "resnet50" not in skip:
            say("_base_/models/resnet50.py change")
            r50 = measure_in_process(repo, work, "r50", f"{RESNET50_EDIT.path} ({RESNET50_EDIT.what})", True)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    print(render(pr, shards, zoo, r50, n_zoo, warm.wall))
    print(f"\nbenchmark wall: {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
