"""Benchmark: worker memory over a long review, and what tracing under torch.no_grad() saves.

    .venv/bin/python benchmarks/bench_memory.py            # full run (the long review: 20-40 min on 2 cores)
    .venv/bin/python benchmarks/bench_memory.py --quick    # ResNet configs only, ViT-B instead of ViT-H

1. The long review. A git repository of the configs the installed mmpretrain ships (branch ``main``);
   branch ``pr`` changes the test-time ``CenterCrop`` of the three most inherited ImageNet dataset
   fragments (``imagenet_bs64_swin_224.py``, ``imagenet_bs32_pil_resize.py``, ``imagenet_bs32.py``)
   from 224 to 192, so every config inheriting them changes numbers: a real review of a couple of
   hundred configs, ``run_review`` in this process with the default number of workers and the RSS
   limit a 7 GB runner would get by default (``memory.default_max_rss`` of the worker count and
   7 GB). Printed: configs reviewed, statuses, distinct models traced, wall time, each worker's RSS
   job by job (after the job and its peak; distribution, the largest), workers recycled, jobs run
   alone, limits reached, and the target: peak RSS of any worker <= 3 GB (3e9 bytes).
2. ViT-H/14 at 448 px (``mae/benchmarks/vit-huge-p14_32xb8-coslr-50e_in1k-448px.py``): one
   process per mode, built and traced like a worker does, with and without ``torch.no_grad()``:
   peak RSS (VmHWM) and trace time of each, FLOPs of both (must be equal).
Targets are printed next to the figures as PASS/FAIL; nothing is asserted.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

PY = sys.executable
GB = 10**9
RUNNER = 7 * GB  # a GitHub-hosted 2-core Linux runner
FRAGMENTS = ("configs/_base_/datasets/imagenet_bs64_swin_224.py",
             "configs/_base_/datasets/imagenet_bs32_pil_resize.py",
             "configs/_base_/datasets/imagenet_bs32.py")
VIT_H = "configs/mae/benchmarks/vit-huge-p14_32xb8-coslr-50e_in1k-448px.py"
VIT_B = "configs/vision_transformer/vit-base-p16_32xb128-mae_in1k.py"


def shipped() -> Path:
    spec = importlib.util.find_spec("mmpretrain")
    assert spec and spec.origin, "mmpretrain is not installed"
    return Path(spec.origin).parent / ".mim" / "configs"


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout


def build_repo(root: Path, quick: bool) -> None:
    shutil.copytree(shipped(), root / "configs", ignore=shutil.ignore_patterns("__pycache__"))
    if quick:
        (root / ".mcx-review.yaml").write_text('configs: ["configs/resnet/*.py"]\n')
    git(root, "init", "-q", "-b", "main")
    git(root, "-c", "user.name=bench", "-c", "user.email=bench@example.invalid", "add", "-A")
    git(root, "-c", "user.name=bench", "-c", "user.email=bench@example.invalid", "commit", "-qm", "shipped configs")
    git(root, "checkout", "-qb", "pr")
    for rel in FRAGMENTS:
        p = root / rel
        text = p.read_text()
        if "crop_size=224" not in text:
            raise SystemExit(f"{rel}: no crop_size=224 (the shipped configs differ from what this benchmark expects)")
        p.write_text(text.replace("crop_size=224", "crop_size=192"))
    git(root, "-c", "user.name=bench", "-c", "user.email=bench@example.invalid", "commit", "-qam",
        "evaluate at 192 px")


def gib(n: float) -> str:
    return f"{n / GB:.2f} GB"


def target(label: str, measured: str, goal: str, ok: Optional[bool]) -> str:
    mark = "n/a " if ok is None else "PASS" if ok else "FAIL"
    return f"  [{mark}] {label}: {measured} (target {goal})"


def long_review(root: Path, jobs: Optional[int], say: Any) -> Dict[str, Any]:
    from mcx_review.cli import options as cli
    from mcx_review.measure.memory import default_max_rss
    from mcx_review.review import Options, run_review

    jobs = jobs or cli.default_jobs()
    workers = 2 * max(1, jobs // 2)
    limit = default_max_rss(workers, total=RUNNER)
    done = Counter()

    def progress(side: str, config: str, result: Dict[str, Any]) -> None:
        done["n"] += 1
        rss = result.get("peak_rss") or 0
        say(f"[{done['n']}] {side} {config}: {'ok' if result.get('ok') else 'error'} peak {gib(rss)}")

    start = time.monotonic()
    report, stats, targets = run_review(root, Options(base="main", head="pr", jobs=jobs, use_cache=False,
                                                      max_worker_rss=limit),
                                        log=say, progress=progress)
    wall = time.monotonic() - start
    return {"report": report, "stats": stats, "targets": targets, "wall": wall, "jobs": jobs,
            "workers": workers, "limit": limit}


VIT_CHILD = r"""
import json, sys, time
from mmengine import Config
from mcx_review.measure.worker import analysis
from mcx_review.measure.memory import read_rss
cfg = Config.fromfile(sys.argv[1])
model = analysis.build_model(cfg)
forward = analysis.bind_forward(model)
shape = analysis.resolve_shape(cfg, None)
before = read_rss()
t = time.monotonic()
stats = analysis.count(model, shape, forward, no_grad=sys.argv[2] == "1")
seconds = time.monotonic() - t
print(json.dumps({"flops": stats["flops"], "activations": stats["activations"], "params": stats["params"],
                  "shape": shape, "seconds": seconds, "rss_before": before.get("rss"), **read_rss()}))
"""


def vit_peak(config: Path, no_grad: bool) -> Dict[str, Any]:
    proc = subprocess.run([PY, "-c", VIT_CHILD, str(config), "1" if no_grad else "0"],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        return {"error": f"exit {proc.returncode}: {proc.stderr.strip().splitlines()[-1:]}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def percentile(values: Sequence[int], q: float) -> int:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * (len(s) - 1) + 0.5))] if s else 0


def render_review(r: Dict[str, Any], quick: bool = False) -> List[str]:
    stats, report = r["stats"], r["report"]
    statuses = Counter(c["status"] for c in report["configs"])
    limited = [c["path"] for c in report["configs"] if any(e.get("limit") for e in c.get("errors") or [])]
    analyses = [j for j in stats.jobs if j["op"] == "analyse"]
    peaks = [int(j["peak_rss"] or 0) for j in analyses]
    after = [int(j["rss"] or 0) for j in analyses if j.get("rss")]
    worst = max(peaks) if peaks else 0
    lines = ["", "== long review: mmpretrain's shipped configs, three ImageNet dataset fragments 224 -> 192 px ==",
             f"configs reviewed: {len(report['configs'])} ({', '.join(f'{n} {s}' for s, n in statuses.most_common())})",
             f"distinct models traced: {stats.analysed} ({sum(1 for j in analyses if j['side'] == 'base' and not j['alone'])}"
             f" base, {sum(1 for j in analyses if j['side'] == 'head' and not j['alone'])} head; analyse attempts "
             f"{len(analyses)}), resolved {stats.resolved}, unchanged without a trace {stats.skipped_unchanged}",
             f"wall: {r['wall']:.0f} s with {r['jobs']} jobs ({r['workers']} workers at once, one pool per revision)",
             f"RSS limit per worker: {gib(r['limit'])} (the default on a 7 GB runner with {r['workers']} workers)",
             f"workers recycled after a job: {stats.worker_recycles}; jobs run again alone: {stats.run_alone}; "
             f"configs with a limit reached: {len(limited)}" + (f" ({', '.join(limited[:5])})" if limited else ""),
             "worker RSS per analyse job (peak = the worker's VmHWM at the end of the job):",
             f"  after job: median {gib(percentile(after, .5))}, p90 {gib(percentile(after, .9))}, max {gib(max(after or [0]))}",
             f"  peak:      median {gib(percentile(peaks, .5))}, p90 {gib(percentile(peaks, .9))}, "
             f"p99 {gib(percentile(peaks, .99))}, max {gib(worst)}"]
    buckets = Counter(min(4, p // (GB // 2)) for p in peaks)
    names = ["< 0.5 GB", "0.5-1 GB", "1-1.5 GB", "1.5-2 GB", ">= 2 GB"]
    lines.append("  peak distribution: " + ", ".join(f"{names[b]}: {buckets[b]}" for b in range(5)))
    top = sorted(analyses, key=lambda j: -(j["peak_rss"] or 0))[:8]
    lines.append("  largest peaks:")
    for j in top:
        flags = " ".join(f for f, on in (("alone", j["alone"]), ("recycled", j.get("recycled")),
                                         ("stopped-over-limit", j["over_rss"])) if on)
        lines.append(f"    {gib(j['peak_rss'] or 0):>8}  {j['seconds']:6.1f} s  {j['side']:<4}  {j['config']}  {flags}")
    lines.append("  job by job (side, worker, seconds, RSS after, peak):")
    for j in analyses:
        lines.append(f"    {j['side']:<4} {j['worker']:<10} {j['seconds']:6.1f} s  {gib(j['rss'] or 0):>8}  "
                     f"{gib(j['peak_rss'] or 0):>8}  {j['config']}{'  alone' if j['alone'] else ''}"
                     f"{'  recycled' if j.get('recycled') else ''}")
    lines.append(target("peak RSS of any worker over a review of >= 100 configs", gib(worst), "<= 3 GB",
                        worst <= 3 * GB if len(report["configs"]) >= 100 else None))
    lines.append(target("configs reviewed", str(len(report["configs"])), ">= 100",
                        None if quick else len(report["configs"]) >= 100))
    return lines


def render_vit(name: str, with_grad: Dict[str, Any], no_grad: Dict[str, Any]) -> List[str]:
    lines = ["", f"== {name}: one trace with and without torch.no_grad() (own process each) =="]
    for label, r in (("autograd on", with_grad), ("no_grad", no_grad)):
        if "error" in r:
            lines.append(f"  {label:<12} {r['error']}")
            continue
        lines.append(f"  {label:<12} peak RSS {gib(r['peak_rss'])} (after build {gib(r['rss_before'])}), "
                     f"trace {r['seconds']:.1f} s, FLOPs {r['flops']:,}, input {r['shape']}")
    if "error" not in with_grad and "error" not in no_grad:
        same = all(with_grad[k] == no_grad[k] for k in ("flops", "params", "activations"))
        lines.append(f"  peak RSS no_grad / autograd: {no_grad['peak_rss'] / with_grad['peak_rss']:.2f}; "
                     f"trace time no_grad / autograd: {no_grad['seconds'] / with_grad['seconds']:.2f}; "
                     f"FLOPs, params, activations equal: {same}")
        lines.append(target("same numbers with no_grad", str(same), "True", same))
    return lines


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="ResNet configs only; ViT-B instead of ViT-H")
    ap.add_argument("--skip", default="", help="comma list of: review, vit")
    ap.add_argument("--jobs", type=int, help="workers as --jobs (default: mcx-review's default)")
    ap.add_argument("--workdir", type=Path, help="build the repository here and keep it")
    args = ap.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    started = time.monotonic()

    def say(m: str) -> None:
        print(f"[{time.monotonic() - started:7.1f}s] {m}", file=sys.stderr, flush=True)

    work = args.workdir or Path(tempfile.mkdtemp(prefix="mcx-bench-mem-"))
    out: List[str] = []
    try:
        if "review" not in skip:
            root = work / "repo"
            if not root.exists():
                build_repo(root, args.quick)
            out += render_review(long_review(root, args.jobs, say), args.quick)
        if "vit" not in skip:
            rel = VIT_B if args.quick else VIT_H
            config = shipped().parent / rel
            say(f"{rel}: autograd on")
            with_grad = vit_peak(config, no_grad=False)
            say(f"{rel}: no_grad")
            no_grad = vit_peak(config, no_grad=True)
            out += render_vit(rel, with_grad, no_grad)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
