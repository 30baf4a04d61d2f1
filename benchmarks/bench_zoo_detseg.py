"""Benchmark: the mmdet and mmseg zoos on mmcv-lite — counted or not (and why), time and worker RSS.

    .venv/bin/python benchmarks/bench_zoo_detseg.py                       # every shipped config once (hours)
    .venv/bin/python benchmarks/bench_zoo_detseg.py --sample 15 10 --seed 0   # a random sample: 15 mmdet, 10 mmseg

Every config the installed mmdet and mmsegmentation ship (``_base_`` fragments left out), or a
sample drawn with a fixed seed, is resolved, and each distinct model (the review's own cache key:
model dict, scope, input shape; configs that differ only in schedule or dataset paths share one) is
analysed once, in a seeded random order so that an interrupted run is a random sample (``--jsonl``
keeps every row as it ends; ``--shard K/N`` splits the distinct models between N processes, and
``--summarise`` merges their files). ``--engine dispatch`` counts with issue 18's engine. The
analysis runs in mcx-review's own worker pool (real worker
processes with the stand-in for mmcv's compiled ops, ``--timeout`` per config, a killed worker a
limit row), at an explicit shape per codebase (``--det-shape``, ``--seg-shape``; ``--auto-shape``
lets the worker read the shape from the config instead).

Printed: counted / not counted per codebase; the fraction counted of the configs whose model takes
images alone (text-prompted detectors and video trackers are told apart by their model types) and
of all; every cause of "not counted", grouped (compiled op missing, text or video input, weights
downloaded at build, resource limit, other) with its configs; seconds per config (build + trace,
a fresh worker having imported the codebase first) median and max; worker peak RSS per config (the worker's VmHWM is reset before
each job through /proc/PID/clear_refs, so it is that config's peak) median, and every config above
3 GB named with its figure. Targets from issue 15 next to the figures (PASS/MISS, never asserted):
>= 95 % of image-only configs counted, median detection config <= 15 s, median RSS <= 2 GB.
``--json FILE`` writes one row per config.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mcx_review.measure.cache import cache_key  # noqa: E402
from mcx_review.measure.memory import format_size  # noqa: E402
from mcx_review.measure.pool import WorkerPool  # noqa: E402

GB = 10**9
# analysed first by every fresh worker, so no config's seconds include importing the codebase
WARM_UP = {"mmdet": "retinanet/retinanet_r18_fpn_1x_coco.py",
           "mmseg": "unet/unet-s5-d16_fcn_4xb4-40k_chase-db1-128x128.py"}
CODEBASES = {"mmdet": "mmdet", "mmseg": "mmseg"}  # name -> import package
TEXT_TYPES = re.compile(r"^(GLIP|GroundingDINO|.*Grounding.*)$")
VIDEO_TYPES = re.compile(r"(Track|SORT|VIS|MOT|ReID|Video)")
CAUSES: Sequence[Tuple[str, "re.Pattern[str]"]] = (
    ("not a model config", re.compile(r"config has no `model`")),
    ("compiled mmcv op missing", re.compile(r"needs compiled mmcv op (\S+)")),
    ("weights downloaded at build", re.compile(r"tried to download")),
    ("needs another package", re.compile(r"No module named '([\w.]+)'|needs (\w+): pip install|"
                                         r"(requirements/optional\.txt)|install it by: pip install (\w+)|"
                                         r"please install (?!it |required )(\w+)", re.IGNORECASE)),
    ("upstream: config bug", re.compile(r"file \"(configs/[^\"]+)\" does not exist|"
                                        r"got an unexpected keyword argument '(\w+)'")),
    # the codebase's own tensor mode cannot run these models (its get_flops.py fails the same way):
    # Sparse R-CNN / QueryInst run their loss path (ground truth), SAN's and PointRend's heads are
    # called with the wrong arguments
    ("upstream: tensor mode broken", re.compile(r"tracing tensor failed: (?:AttributeError: 'DetDataSample' "
                                                r"object has no attribute '(_gt_instances)'|TypeError: (\w+)\.forward"
                                                r"\(\) missing|TypeError: (expected Tensor as element 0))")),
    ("resource limit", re.compile(r"longer than|killed|RSS limit")),
    ("unknown model type", re.compile(r"unknown model type '(\w+)'")),
)


def shipped(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    assert spec and spec.origin, f"{package} is not installed"
    return Path(spec.origin).parent / ".mim" / "configs"


def zoo(package: str) -> List[str]:
    root = shipped(package)
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.py")
                  if "_base_" not in p.parts and p.name != "__init__.py")


def cause(error: str) -> Tuple[str, str]:
    """(group, detail) of a one-line error."""
    for group, pattern in CAUSES:
        found = pattern.search(error)
        if found:
            return group, next((g for g in found.groups() if g), "")
    return "other", error[:160]


def classify(row: Dict[str, Any]) -> None:
    """A row not counted gets its cause group and detail (and input "none" when it is no model)."""
    row["cause"], row["detail"] = cause(row["error"])
    if row["cause"] == "not a model config":
        row["input"] = "none"  # e.g. mm_grounding_dino's odinw/override_category.py, a script
    elif row["input"] != "image":
        row["cause"] = f"needs {row['input']} input"


def input_kind(types: Sequence[str]) -> str:
    if any(TEXT_TYPES.match(t.rsplit(".", 1)[-1]) for t in types):
        return "text"
    if any(VIDEO_TYPES.search(t.rsplit(".", 1)[-1]) for t in types):
        return "video"
    return "image"


def _reset_peaks(pool: WorkerPool) -> None:
    """VmHWM back to the current RSS in every live worker: the next job's peak is its own."""
    for worker in pool._workers:  # noqa: SLF001 - a benchmark may look inside
        if worker is not None and worker.alive():
            try:
                Path(f"/proc/{worker.proc.pid}/clear_refs").write_text("5")
            except OSError:
                pass


def model_key(resolved: Dict[str, Any]) -> Optional[str]:
    """What the analysis of a config depends on (the product's cache key, installed code fixed):
    configs with equal keys (schedules, dataset paths, logging) are analysed once, as in a review."""
    if not resolved.get("ok", True) or resolved.get("model") is None:
        return None
    return cache_key(resolved, json.dumps(resolved.get("custom_imports") or []), versions={})


def run(codebase: str, configs: List[str], shape: Optional[List[int]], timeout: float,
        workdir: Path, log: Optional[Path] = None, shard: Tuple[int, int] = (0, 1),
        seed: int = 0, engine: str = "fvcore", limit: Optional[int] = None) -> List[Dict[str, Any]]:
    root = workdir / codebase
    shutil.copytree(shipped(CODEBASES[codebase]), root / "configs", ignore=shutil.ignore_patterns("__pycache__"))
    rows: List[Dict[str, Any]] = []
    # max_rss: a worker still holding more than 1.5 GB after a job is replaced, so the next
    # config's peak is not the previous one's leftovers (a job is never stopped: one worker)
    with WorkerPool(root, size=1, max_rss=2 * GB) as pool:
        resolved = pool.run([{"op": "resolve", "config": f"configs/{c}", "shape": shape} for c in configs],
                            timeout=timeout)
        # one analysis per distinct model, in a seeded random order (an interrupted run is a random
        # sample, not the first directories); the shard (K/N) takes every N-th distinct model
        keys = [model_key(r) or f"unresolved:{c}" for c, r in zip(configs, resolved)]
        distinct = sorted(set(keys), key=keys.index)
        random.Random(seed).shuffle(distinct)
        distinct = distinct[:limit]  # the first N of the seeded order: the same N on every engine
        mine = set(distinct[shard[0]::shard[1]])
        rank = {k: n for n, k in enumerate(distinct)}
        order = sorted((n for n in range(len(configs)) if keys[n] in rank), key=lambda n: (rank[keys[n]], n))
        print(f"{codebase}: {len(configs)} configs, {len(distinct)} distinct models, "
              f"{len(mine)} in shard {shard[0]}/{shard[1]}", file=sys.stderr, flush=True)
        first: Dict[str, Dict[str, Any]] = {}
        for i in order:
            config, res, key = configs[i], resolved[i], keys[i]
            if key not in mine:
                continue
            row: Dict[str, Any] = {"codebase": codebase, "config": config, "key": key,
                                   "input": input_kind(res.get("types") or [])}
            if key in first:  # the same model as an earlier config: its result, not a second trace
                row.update({k: v for k, v in first[key].items()
                            if k not in ("config", "seconds", "cpu_seconds", "peak_rss")},
                           same_as=first[key]["config"])
                rows.append(row)
                _log(log, row)
                continue
            if not any(w is not None and w.alive() for w in pool._workers):  # noqa: SLF001
                pool.run([{"op": "analyse", "config": f"configs/{WARM_UP[codebase]}", "shape": [64, 64]}],
                         timeout=timeout)  # a fresh worker imports torch and the codebase first
            _reset_peaks(pool)
            start = time.monotonic()
            (out,) = pool.run([{"op": "analyse", "config": f"configs/{config}", "shape": shape, "engine": engine}],
                              timeout=timeout)
            row["seconds"] = round(time.monotonic() - start, 2)
            row["cpu_seconds"] = out.get("cpu_seconds")  # the worker's, all threads: steadier on a busy machine
            attempt = pool.jobs[-1]
            row["peak_rss"] = attempt.get("peak_rss")
            if out.get("ok"):
                stats = out["stats"]
                row.update(counted=True, flops=stats["flops"], params=stats["params"],
                           input_shape=stats["input_shape"], proposals=stats.get("proposals"),
                           mmcv_stand_ins=stats.get("mmcv_stand_ins", []),
                           unsupported_ops=sum(stats.get("unsupported_ops", {}).values()),
                           activations=stats["activations"], engine=stats.get("engine", "fvcore"),
                           engine_note=stats.get("engine_note"),
                           modules={k: [m["flops"], m["params"], m["activations"]]
                                    for k, m in stats.get("modules", {}).items()})
            else:
                row.update(counted=False, error=out.get("error") or res.get("error") or "?",
                           limit=(out.get("limit") or {}).get("kind"))
                classify(row)
            rows.append(row)
            first[key] = row
            _log(log, row)
            status = "counted" if row["counted"] else f"NOT counted: {row['error'][:140]}"
            rss = format_size(row["peak_rss"]) if row["peak_rss"] else "?"
            print(f"[{i + 1}/{len(configs)}] {codebase} {config}: {status} ({row['seconds']} s, "
                  f"{row['cpu_seconds']} CPU s, {rss})",
                  file=sys.stderr, flush=True)
    return rows


def _log(log: Optional[Path], row: Dict[str, Any]) -> None:
    """One JSON line per config as it ends: an interrupted zoo run keeps what it measured."""
    if log is not None:
        with log.open("a") as f:
            f.write(json.dumps(row) + "\n")


def _rows(path: Path) -> List[Dict[str, Any]]:
    text = path.read_text()
    if text.lstrip().startswith("["):
        return list(json.loads(text))
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def compare(ref: List[Dict[str, Any]], got: List[Dict[str, Any]]) -> str:
    """Issue 18's equality on the configs both runs traced (duplicates left out): totals and
    every top-level module's FLOPs, params and activations."""
    a = {(r["codebase"], r["config"]): r for r in ref if "same_as" not in r}
    b = {(r["codebase"], r["config"]): r for r in got if "same_as" not in r}
    both = sorted(set(a) & set(b))
    lines, equal, counted, speed = [], 0, 0, []
    for key in both:
        x, y = a[key], b[key]
        if not (x["counted"] and y["counted"]):
            if x["counted"] != y["counted"]:
                lines.append(f"  {key[0]} {key[1]}: counted by {'fvcore' if x['counted'] else 'dispatch'} only: "
                             f"{(x.get('error') or y.get('error') or '')[:160]}")
            continue
        counted += 1
        diff = [m for m in ("flops", "params", "activations") if x.get(m) != y.get(m)]
        if x.get("modules") != y.get("modules"):
            diff.append("modules")
        if diff:
            lines.append(f"  {key[0]} {key[1]}: {', '.join(diff)} differ: fvcore "
                         f"{[x.get(m) for m in diff if m != 'modules']} dispatch {[y.get(m) for m in diff if m != 'modules']}")
        else:
            equal += 1
        if x.get("seconds") and y.get("seconds"):
            speed.append((key, x["seconds"], y["seconds"], y.get("engine")))
    head = [f"configs traced by both: {len(both)}; counted by both: {counted}; every number equal: {equal}"
            f" ({equal / max(counted, 1):.1%})"]
    for codebase in ("mmdet", "mmseg"):
        mine = [s for s in speed if s[0][0] == codebase]
        if mine:
            head.append(f"{codebase} seconds per config (build + count), median: fvcore "
                        f"{statistics.median(s[1] for s in mine):.1f}, dispatch {statistics.median(s[2] for s in mine):.1f}"
                        f" over {len(mine)}; engines {dict(Counter(s[3] for s in mine))}")
    return "\n".join(head + lines)


def _median(values: List[float]) -> Optional[float]:
    return statistics.median(values) if values else None


def summary(rows: List[Dict[str, Any]]) -> str:
    lines: List[str] = []
    for r in rows:
        if not r["counted"]:
            classify(r)
    total = len(rows)
    counted = [r for r in rows if r["counted"]]
    image = [r for r in rows if r["input"] == "image"]
    image_counted = [r for r in image if r["counted"]]
    for codebase in sorted({r["codebase"] for r in rows}):
        mine = [r for r in rows if r["codebase"] == codebase]
        ok = [r for r in mine if r["counted"]]
        secs = [r["seconds"] for r in ok if "seconds" in r]  # traced ones, not their duplicates
        cpu = [r["cpu_seconds"] for r in ok if r.get("cpu_seconds")]
        rss = [r["peak_rss"] for r in mine if r.get("peak_rss")]
        med_s, med_rss = _median(secs), _median(rss)
        models = len({r.get("key") or r["config"] for r in mine})
        lines.append(f"{codebase}: {len(ok)}/{len(mine)} counted ({models} distinct models, each traced once); "
                     f"seconds per traced model (build + trace, "
                     f"counted): median {med_s if med_s is None else round(med_s, 1)}, max "
                     f"{max(secs) if secs else None}; worker CPU seconds median "
                     f"{round(statistics.median(cpu), 1) if cpu else None}; peak RSS median "
                     f"{format_size(int(med_rss)) if med_rss else '?'}")
        if codebase == "mmdet" and med_s is not None:
            lines.append(f"  target median detection config <= 15 s: {'PASS' if med_s <= 15 else 'MISS'}")
    frac_image = len(image_counted) / len(image) if image else 0.0
    lines.append(f"image-only configs counted: {len(image_counted)}/{len(image)} = {frac_image:.1%} "
                 f"(target >= 95%: {'PASS' if frac_image >= 0.95 else 'MISS'})")
    lines.append(f"all configs counted: {len(counted)}/{total} = {len(counted) / max(total, 1):.1%}")
    rss_all = [r["peak_rss"] for r in rows if r.get("peak_rss")]
    if rss_all:
        med = statistics.median(rss_all)
        lines.append(f"worker peak RSS: median {format_size(int(med))} "
                     f"(target <= 2 GB: {'PASS' if med <= 2 * GB else 'MISS'}), max {format_size(max(rss_all))}")
    big = sorted((r for r in rows if (r.get("peak_rss") or 0) > 3 * GB), key=lambda r: -r["peak_rss"])
    lines.append(f"configs above 3 GB: {len(big)}")
    lines += [f"  {r['codebase']} {r['config']}: {format_size(r['peak_rss'])}" for r in big]
    groups: Dict[str, List[Dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if not r["counted"]:
            groups[r["cause"]].append(r)
    lines.append("not counted, by cause:")
    for group, members in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        details = Counter(m["detail"] for m in members if m.get("detail"))
        extra = f" ({', '.join(f'{d} x{n}' for d, n in details.most_common())})" if details else ""
        lines.append(f"  {group}: {len(members)}{extra}")
        lines += [f"    {m['codebase']} {m['config']}: {m['error'][:200]}" for m in members]
    stand_ins = Counter(op for r in counted for op in r.get("mmcv_stand_ins", []))
    lines.append(f"counted with stand-ins: {sum(1 for r in counted if r.get('mmcv_stand_ins'))} "
                 f"({', '.join(f'{op} x{n}' for op, n in stand_ins.most_common())})")
    fixed = [r for r in counted if r.get("proposals")]
    lines.append(f"two-stage, second stage on fixed proposals: {len(fixed)}")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sample", nargs=2, type=int, metavar=("N_MMDET", "N_MMSEG"),
                        help="a random sample of this many configs per codebase (default: every config)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--det-shape", nargs=2, type=int, default=[800, 1344], metavar=("H", "W"))
    parser.add_argument("--seg-shape", nargs=2, type=int, default=[512, 512], metavar=("H", "W"))
    parser.add_argument("--auto-shape", action="store_true", help="let the worker read the shape from each config")
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--codebases", default="mmdet,mmseg")
    parser.add_argument("--json", type=Path, help="write one row per config here")
    parser.add_argument("--resume", type=Path, nargs="+", metavar="JSONL",
                        help="leave out the configs these earlier rows measured (then --summarise them all)")
    parser.add_argument("--only", type=Path, metavar="FILE",
                        help="only the configs listed in FILE (one 'codebase config' per line), e.g. again after a fix")
    parser.add_argument("--limit", type=int, help="only the first N distinct models of the seeded order, per codebase")
    parser.add_argument("--compare", type=Path, nargs=2, metavar=("FVCORE", "DISPATCH"),
                        help="only compare two runs' rows (--json/--jsonl files, or globs' shards joined by ',')")
    parser.add_argument("--engine", choices=("fvcore", "dispatch"), default="fvcore",
                        help="the counting engine (dispatch: issue 18's, fvcore's trace when it fails)")
    parser.add_argument("--jsonl", type=Path, help="append one JSON line per config as it ends (kept if interrupted)")
    parser.add_argument("--shard", default="0/1", metavar="K/N",
                        help="analyse every N-th distinct model from the K-th (run N processes, then --summarise)")
    parser.add_argument("--summarise", type=Path, nargs="+", metavar="JSON",
                        help="only print the summary of earlier --json / --jsonl files (shards merged)")
    args = parser.parse_args(argv)
    if args.summarise:
        # a config measured again (--only, after a fix) counts by its last row
        last = {(r["codebase"], r["config"]): r for path in args.summarise for r in _rows(path)}
        print(summary(list(last.values())))
        return 0
    if args.compare:
        print(compare([r for p in str(args.compare[0]).split(",") for r in _rows(Path(p))],
                      [r for p in str(args.compare[1]).split(",") for r in _rows(Path(p))]))
        return 0
    k, n_shards = (int(x) for x in args.shard.split("/"))
    rng = random.Random(args.seed)
    rows: List[Dict[str, Any]] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mcx-zoo-") as tmp:
        for n, codebase in enumerate(args.codebases.split(",")):
            configs = zoo(CODEBASES[codebase])
            if args.resume:
                done = {(r["codebase"], r["config"]) for path in args.resume for r in _rows(path)}
                configs = [c for c in configs if (codebase, c) not in done]
            if args.only:
                wanted = {tuple(line.split()) for line in args.only.read_text().splitlines() if line.strip()}
                configs = [c for c in configs if (codebase, c) in wanted]
            if args.sample:
                configs = sorted(rng.sample(configs, min(args.sample[n], len(configs))))
            shape = None if args.auto_shape else (args.det_shape if codebase == "mmdet" else args.seg_shape)
            print(f"{codebase}: {len(configs)} configs at {shape or 'the configs own shapes'}", file=sys.stderr)
            rows += run(codebase, configs, shape, args.timeout, Path(tmp), log=args.jsonl, shard=(k, n_shards),
                        seed=args.seed, engine=args.engine, limit=args.limit)
    print(summary(rows))
    print(f"wall: {time.monotonic() - started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
