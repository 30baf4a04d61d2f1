"""Benchmark: fvcore's jit trace vs the dispatch engine (measure/worker/dispatch_count.py).

    nice -n 10 .venv/bin/python benchmarks/bench_engine.py                     # all three parts
    .venv/bin/python benchmarks/bench_engine.py --skip slowest,l2 --sweep 40    # equality only
    .venv/bin/python benchmarks/bench_engine.py --sweep all                     # the whole zoo
    .venv/bin/python benchmarks/bench_engine.py --skip slowest,l2 --only a.py,b.py  # these configs
    --slowest N   how many of the heaviest configs to time (default 20)
    --json PATH   also write every figure and every difference as JSON

1. **Equality sweep** over N configs the installed mmpretrain ships (every k-th of the sorted list
   of leaf configs, so every family has a chance; ``--sweep all``: every one). One subprocess per
   config builds the model once (no weight init, forward bound as a worker does) and counts it
   with both engines; every total, every top-level module, every per-module tree row, the
   uncounted ops and the uncalled modules are compared. Printed: equal / different per config
   with each difference, the engine that counted (``dispatch`` on fake tensors, ``dispatch-real``,
   or ``fvcore`` when the dispatch engine had to hand over), configs neither engine could count.
2. **The heaviest configs**: the N configs with the largest FLOPs the mmpretrain metafiles
   publish (trace time grows with the work the trace does, so these are the slowest to trace),
   each engine in its own subprocess (import, build, count): count seconds and wall, and the
   totals; target dispatch >= 5x faster than fvcore in total (count seconds).
3. **EfficientNet-L2 at 800 px**: one subprocess per engine, peak RSS (``ru_maxrss`` of wait4) and
   count seconds; target dispatch peak RSS <= 1 GB.

Nothing is asserted; targets are printed as PASS/MISS. The machine is shared: the CPU seconds the
rest of the machine used during each part are printed (from /proc/stat), a large figure means the
timings are noisy.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import yaml

HERE = Path(__file__).resolve().parent
PY = sys.executable
GB = 10**9
L2 = "efficientnet/efficientnet-l2_8xb8_in1k-800px.py"


def configs_root() -> Path:
    spec = importlib.util.find_spec("mmpretrain")
    assert spec and spec.origin
    return Path(spec.origin).parent / ".mim" / "configs"


def leaf_configs(root: Path) -> List[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.py")
                  if "_base_" not in p.parts and "__pycache__" not in p.parts)


def heaviest(root: Path, n: int) -> List[Tuple[str, int]]:
    """(config, published FLOPs) of the n configs with the largest FLOPs in the metafiles."""
    seen: Dict[str, int] = {}
    for meta in root.parent.rglob("metafile.yml"):
        try:
            data = yaml.safe_load(meta.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError:
            continue
        for model in data.get("Models") or []:
            cfg = str(model.get("Config") or "")
            flops = (model.get("Metadata") or {}).get("FLOPs")
            if cfg.startswith("configs/") and isinstance(flops, (int, float)):
                rel = cfg[len("configs/"):]
                if (root / rel).is_file():
                    seen[rel] = max(seen.get(rel, 0), int(flops))
    return sorted(seen.items(), key=lambda kv: -kv[1])[:n]


def others_cpu() -> float:
    """CPU seconds used on the whole machine so far (user+nice+system), from /proc/stat."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    return sum(int(v) for v in fields[:3]) / os.sysconf("SC_CLK_TCK")


def _run_child(args: List[str], timeout: float, all_lines: bool = False) -> Tuple[Any, float, float, str]:
    """(JSON the child printed last, wall seconds, peak RSS bytes from wait4, stderr tail)."""
    start = time.perf_counter()
    p = subprocess.Popen([PY, __file__, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         cwd=str(HERE.parent))
    chunks: Dict[str, bytes] = {}

    def drain(name: str, stream: Any) -> None:
        chunks[name] = stream.read()

    threads = [threading.Thread(target=drain, args=(n, s)) for n, s in (("out", p.stdout), ("err", p.stderr))]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(p.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            p.kill()
        time.sleep(0.05)
    for t in threads:
        t.join()
    p.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    lines = chunks.get("out", b"").decode(errors="replace").strip().splitlines()
    tail = " | ".join(chunks.get("err", b"").decode(errors="replace").strip().splitlines()[-2:])[-400:]
    rss = usage.ru_maxrss * 1024.0
    if all_lines:  # every JSON line the child printed (one per config)
        found = []
        for line in lines:
            try:
                found.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return [f for f in found if isinstance(f, dict) and "config" in f], wall, rss, tail
    try:
        return json.loads(lines[-1]), wall, rss, tail
    except (IndexError, json.JSONDecodeError):
        return None, wall, rss, tail


# ---- children ---------------------------------------------------------------------------------------

def _child_setup() -> None:
    import warnings

    warnings.filterwarnings("ignore")
    sys.path.insert(0, str(HERE))


def child_pair(rel: str) -> Dict[str, Any]:
    """Both engines on one built model."""
    _child_setup()
    import engine_compare as ec
    from mmengine import Config

    try:
        model, shape, forward = ec.build(Config.fromfile(str(configs_root() / rel)))
    except Exception as exc:  # noqa: BLE001
        return {"config": rel, "build_error": f"{type(exc).__name__}: {exc}"[:300]}
    out: Dict[str, Any] = {"config": rel, "input_shape": list(shape)}
    stats = {}
    for engine in ("fvcore", "dispatch"):
        try:
            stats[engine], out[f"{engine}_seconds"] = ec.timed_count(model, shape, forward, engine)
        except Exception as exc:  # noqa: BLE001
            out[f"{engine}_error"] = f"{type(exc).__name__}: {exc}"[:300]
    if len(stats) == 2:
        out["engine"] = stats["dispatch"].get("engine")
        out["engine_note"] = stats["dispatch"].get("engine_note")
        out["differences"] = ec.differences(stats["fvcore"], stats["dispatch"], ops=False)
        out["op_differences"] = ec.differences(stats["fvcore"], stats["dispatch"], ops=True)[len(out["differences"]):]
        out["flops"] = stats["fvcore"]["flops"]
        a, d = stats["fvcore"]["unsupported_ops"], stats["dispatch"]["unsupported_ops"]
        if a != d:  # explained if fvcore's extra ops are exactly its size arithmetic
            try:
                sizes = ec.size_arithmetic(model, shape)
            except Exception as exc:  # noqa: BLE001
                sizes = {"<trace failed>": str(exc)[:100]}
            out["size_arithmetic"] = sizes
            rest = {k: a.get(k, 0) - sizes.get(k, 0) for k in set(a) | set(sizes)}
            out["ops_equal_but_size_arithmetic"] = {k: v for k, v in rest.items() if v} == \
                {k: v for k, v in d.items() if v}
    return out


def child_one(engine: str, rel: str) -> Dict[str, Any]:
    """One engine: import, build and count as a worker does."""
    _child_setup()
    import engine_compare as ec
    from mmengine import Config

    start = time.perf_counter()
    cfg = Config.fromfile(str(configs_root() / rel))
    model, shape, forward = ec.build(cfg)
    built = time.perf_counter() - start
    stats, seconds = ec.timed_count(model, shape, forward, engine)
    return {"config": rel, "engine": stats.get("engine", "fvcore"), "build_seconds": built,
            "count_seconds": seconds, "flops": stats["flops"], "params": stats["params"],
            "activations": stats["activations"], "input_shape": list(shape)}


# ---- parts ------------------------------------------------------------------------------------------

def _pairs(configs: List[str], chunk: int, timeout: float) -> Any:
    """Both engines on each config, ``chunk`` configs per subprocess (one import of torch and
    mmpretrain serves them: every config here is mmpretrain's scope); configs a crashed child left
    unanswered are run again one per process."""
    for i in range(0, len(configs), chunk):
        part = configs[i:i + chunk]
        answers, _, _, tail = _run_child(["--pair", *part], timeout * len(part), all_lines=True)
        by_config = {a["config"]: a for a in answers or []}
        for rel in part:
            if rel in by_config:
                yield by_config[rel]
                continue
            alone, _, _, tail = _run_child(["--pair", rel], timeout, all_lines=True)
            yield (alone or [{}])[-1] if alone else {"config": rel, "crashed": tail or f"no answer in {timeout:g} s"}


def sweep(root: Path, n: Optional[int], timeout: float, chunk: int = 8,
          only: Optional[List[str]] = None) -> Dict[str, Any]:
    configs = only or leaf_configs(root)
    if n is not None and n < len(configs):
        step = len(configs) / n
        configs = [configs[int(i * step)] for i in range(n)]
    print(f"\n== equality sweep: {len(configs)} mmpretrain configs ==", flush=True)
    rows = []
    cpu0, t0 = others_cpu(), time.perf_counter()
    for res in _pairs(configs, chunk, timeout):
        rows.append(res)
        rel = res["config"]
        if "differences" in res:
            verdict = "equal" if not res["differences"] else "DIFFERENT"
            ops = ""
            if res["op_differences"]:
                ops = (" (uncounted ops differ: fvcore's extra ones are exactly its size arithmetic)"
                       if res.get("ops_equal_but_size_arithmetic") else
                       f" (uncounted ops differ; fvcore's size arithmetic: {res.get('size_arithmetic')})")
            print(f"  {verdict:9} {rel}  engine={res['engine']}  fvcore {res['fvcore_seconds']:.2f}s "
                  f"dispatch {res['dispatch_seconds']:.2f}s{ops}", flush=True)
            for line in res["differences"] + res["op_differences"]:
                print(f"      {line}", flush=True)
            if res.get("engine_note"):
                print(f"      note: {res['engine_note']}", flush=True)
        else:
            why = res.get("build_error") or res.get("fvcore_error") or res.get("dispatch_error") or res.get("crashed")
            print(f"  {'not built' if 'build_error' in res else 'error':9} {rel}: {why}", flush=True)
            for k in ("fvcore_error", "dispatch_error"):
                if k in res and "build_error" not in res:
                    print(f"      {k}: {res[k]}", flush=True)
    compared = [r for r in rows if "differences" in r]
    equal = [r for r in compared if not r["differences"]]
    ops_equal = [r for r in compared if not r["differences"] and not r["op_differences"]]
    ops_explained = [r for r in compared if not r["differences"] and r["op_differences"]
                     and r.get("ops_equal_but_size_arithmetic")]
    engines: Dict[str, int] = {}
    for r in compared:
        engines[r["engine"]] = engines.get(r["engine"], 0) + 1
    fv = sum(r["fvcore_seconds"] for r in compared)
    dp = sum(r["dispatch_seconds"] for r in compared)
    summary = {"configs": len(rows), "compared": len(compared), "numbers_equal": len(equal),
               "all_equal": len(ops_equal), "ops_differ_by_size_arithmetic_only": len(ops_explained), "engines": engines, "fvcore_seconds": fv, "dispatch_seconds": dp,
               "not_compared": len(rows) - len(compared), "wall": time.perf_counter() - t0,
               "others_cpu": others_cpu() - cpu0}
    print(f"  compared {len(compared)} of {len(rows)} (the rest could not be built or counted by either): "
          f"numbers equal (totals, modules, tree) {len(equal)}/{len(compared)}; also uncounted ops and "
          f"uncalled modules equal {len(ops_equal)}/{len(compared)}, {len(ops_explained)} more differ only by "
          f"fvcore's size arithmetic; counted by {engines}; "
          f"count seconds fvcore {fv:.1f} vs dispatch {dp:.1f}", flush=True)
    return {"summary": summary, "rows": rows}


def slowest(root: Path, n: int, timeout: float) -> Dict[str, Any]:
    picked = heaviest(root, n)
    print(f"\n== the {len(picked)} heaviest configs (published FLOPs), one subprocess per engine ==", flush=True)
    rows = []
    cpu0 = others_cpu()
    for rel, published in picked:
        row: Dict[str, Any] = {"config": rel, "published_flops": published}
        for engine in ("fvcore", "dispatch"):
            res, wall, rss, tail = _run_child(["--one", engine, rel], timeout)
            row[engine] = dict(res or {"error": tail or "no answer"}, wall=wall, peak_rss=rss)
        f, d = row["fvcore"], row["dispatch"]
        if "count_seconds" in f and "count_seconds" in d:
            same = all(f[m] == d[m] for m in ("flops", "params", "activations"))
            print(f"  {rel}: fvcore {f['count_seconds']:.1f}s ({f['peak_rss'] / GB:.2f} GB)  dispatch "
                  f"{d['count_seconds']:.2f}s ({d['peak_rss'] / GB:.2f} GB, {d['engine']})  "
                  f"{'equal' if same else 'DIFFERENT'} flops {f['flops']}", flush=True)
        else:
            print(f"  {rel}: fvcore {f.get('error', 'ok')} / dispatch {d.get('error', 'ok')}", flush=True)
        rows.append(row)
    ok = [r for r in rows if "count_seconds" in r["fvcore"] and "count_seconds" in r["dispatch"]]
    fv = sum(r["fvcore"]["count_seconds"] for r in ok)
    dp = sum(r["dispatch"]["count_seconds"] for r in ok)
    fw = sum(r["fvcore"]["wall"] for r in ok)
    dw = sum(r["dispatch"]["wall"] for r in ok)
    speed = fv / dp if dp else float("inf")
    print(f"  total count seconds fvcore {fv:.1f} vs dispatch {dp:.1f}: {speed:.1f}x "
          f"[{'PASS' if speed >= 5 else 'MISS'} >= 5x]; wall with import and build {fw:.1f} vs {dw:.1f} s "
          f"({fw / dw if dw else 0:.1f}x); others' CPU during the part {others_cpu() - cpu0:.0f} s", flush=True)
    return {"rows": rows, "fvcore_seconds": fv, "dispatch_seconds": dp, "speedup": speed,
            "fvcore_wall": fw, "dispatch_wall": dw}


def efficientnet_l2(timeout: float) -> Dict[str, Any]:
    print(f"\n== {L2} (800 px), one subprocess per engine ==", flush=True)
    out = {}
    for engine in ("dispatch", "fvcore"):
        res, wall, rss, tail = _run_child(["--one", engine, L2], timeout)
        out[engine] = dict(res or {"error": tail or "no answer"}, wall=wall, peak_rss=rss)
        r = out[engine]
        if "count_seconds" in r:
            print(f"  {engine}: count {r['count_seconds']:.2f}s, build {r['build_seconds']:.2f}s, wall {wall:.1f}s, "
                  f"peak RSS {rss / GB:.2f} GB, flops {r['flops']}, counted by {r['engine']}", flush=True)
        else:
            print(f"  {engine}: failed: {r['error']}", flush=True)
    d = out["dispatch"]
    if "count_seconds" in d:
        print(f"  dispatch peak RSS {d['peak_rss'] / GB:.2f} GB [{'PASS' if d['peak_rss'] <= GB else 'MISS'} <= 1 GB]",
              flush=True)
    return out


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sweep", default="40", help="configs in the equality sweep, or 'all' (default 40)")
    ap.add_argument("--slowest", type=int, default=20, help="heaviest configs to time (default 20)")
    ap.add_argument("--skip", default="", help="parts to leave out: sweep,slowest,l2")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per subprocess (900)")
    ap.add_argument("--json", type=Path, help="write every figure as JSON here")
    ap.add_argument("--only", help="the sweep over these configs (comma-separated, relative to configs/)")
    ap.add_argument("--chunk", type=int, default=8, help="configs per subprocess in the sweep (default 8)")
    ap.add_argument("--pair", nargs="+", help=argparse.SUPPRESS)
    ap.add_argument("--one", nargs=2, metavar=("ENGINE", "CONFIG"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.pair:
        import gc

        for rel in args.pair:
            print(json.dumps(child_pair(rel)), flush=True)
            gc.collect()
        return 0
    if args.one:
        print(json.dumps(child_one(*args.one)))
        return 0
    skip = set(filter(None, args.skip.split(",")))
    root = configs_root()
    results: Dict[str, Any] = {}
    if "sweep" not in skip:
        only = [c.strip() for c in args.only.split(",") if c.strip()] if args.only else None
        results["sweep"] = sweep(root, None if args.sweep == "all" or only else int(args.sweep), args.timeout,
                                 args.chunk, only)
    if "l2" not in skip:
        results["efficientnet_l2"] = efficientnet_l2(args.timeout)
    if "slowest" not in skip:
        results["slowest"] = slowest(root, args.slowest, args.timeout)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
