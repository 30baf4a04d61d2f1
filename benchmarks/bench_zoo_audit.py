"""Benchmark: the zoo audit (``metafile --check --json``) over every config mmpretrain 1.2.0 ships.

    nice -n 10 .venv/bin/python benchmarks/bench_zoo_audit.py              # all configs (~20+ min on 2 cores)
    nice -n 10 .venv/bin/python benchmarks/bench_zoo_audit.py --limit 40   # the first 40 configs
    nice -n 10 .venv/bin/python benchmarks/bench_zoo_audit.py --only 'repvgg/*' --only 'sam/*'   # some families

Builds a git repository made of the installed package's source (``mmpretrain/``) and its shipped
``configs/`` (what an mmpretrain checkout is), runs one cold ``mcx-review metafile --check --json``
over every config that is not a ``_base_`` file, and prints from the JSON: configs counted, entries
by verdict (agrees / stale / legacy / not counted ...), exact-integer FLOPs entries and how many
agree, the entries that agree only thanks to the declared input size (``backbone img_size`` other
than 224) or the deploy form (what the count was before those two rules), the not-counted causes
grouped by their first words, and the wall time. Nothing is asserted.
"""
from __future__ import annotations

import argparse
import fnmatch
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any, Dict, List


def build_repo(root: Path) -> List[str]:
    """root/mmpretrain (package source) + root/configs, committed; the configs to audit."""
    spec = importlib.util.find_spec("mmpretrain")
    assert spec and spec.origin, "mmpretrain is not installed"
    pkg = Path(spec.origin).parent
    ignore = shutil.ignore_patterns("__pycache__", ".mim")
    shutil.copytree(pkg, root / "mmpretrain", ignore=ignore)
    shutil.copytree(pkg / ".mim" / "configs", root / "configs", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=root, check=True)
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(["git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid", "commit", "-q",
                    "-m", "mmpretrain 1.2.0"], cwd=root, check=True)
    return sorted(p.relative_to(root).as_posix() for p in (root / "configs").rglob("*.py")
                  if "_base_" not in p.parts and "__pycache__" not in p.parts)


def cause(message: str) -> str:
    """A not-counted message grouped by its kind (the text after the first colon, shortened)."""
    text = re.sub(r"configs/\S+", "<config>", message)
    text = re.sub(r"\d+", "N", text)
    return text[:90]


def summarise(audit: Dict[str, Any], wall: float) -> str:
    s = audit["summary"]
    entries = audit["entries"]
    exact = [e for e in entries if (e["published"].get("flops") or {}).get("unit") == 1]
    agree_exact = [e for e in exact if e["published"]["flops"].get("agrees")]
    by_rule = [e for e in agree_exact if e.get("input_rule") == "backbone img_size" and e["input_shape"][-2:] != [224, 224]]
    by_deploy = [e for e in agree_exact if e.get("deploy_form")]
    agree_all = [e for e in entries if e["verdict"] == "agrees"]
    rule_all = [e for e in agree_all if e.get("input_rule") == "backbone img_size" and e["input_shape"][-2:] != [224, 224]]
    lines = [f"configs: {s['configs']}, counted: {s['configs_counted']}, metafile entries: {s['entries']}",
             "verdicts: " + ", ".join(f"{k} {v}" for k, v in s["verdicts"].items()),
             f"exact-integer FLOPs entries: {len(exact)} ({s['exact_flops_counted']} counted), agree: {len(agree_exact)}",
             f"  of which agree only through the declared input size (img_size != 224): {len(by_rule)}",
             f"  of which agree only through the deploy form: {len(by_deploy)}",
             f"  so before these two rules: {len(agree_exact) - len(by_rule) - len(by_deploy)}",
             f"all agreeing entries: {len(agree_all)}; through the declared input size (img_size != 224): "
             f"{len(rule_all)}; through the deploy form: {sum(1 for e in agree_all if e.get('deploy_form'))}",
             "input rules (entries): " + ", ".join(f"{k} {v}" for k, v in
                                                  Counter(e.get("input_rule") for e in entries).most_common()),
             f"wall: {wall / 60:.1f} min"]
    causes = Counter(cause(e.get("error", "")) for e in entries if e["verdict"] == "not counted")
    causes.update(cause(c["error"]) for c in audit["configs_without_entry"] if c.get("error"))
    if causes:
        lines.append("not counted, by cause (entries and unnamed configs):")
        lines += [f"  {n:4d}  {c}" for c, n in causes.most_common(20)]
    stale = [e for e in entries if e["verdict"] == "stale"]
    if stale:
        lines.append("stale entries (published -> measured FLOPs, rule):")
        for e in stale[:60]:
            pub = (e["published"].get("flops") or {}).get("value")
            lines.append(f"  {e['name']}: {pub} -> {e['measured']['flops']} ({e.get('input_rule')})")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=0, help="only the first N configs (0: all)")
    ap.add_argument("--only", action="append", default=[], metavar="GLOB",
                    help="only configs whose path under configs/ matches GLOB (repeatable)")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes (2)")
    ap.add_argument("--workdir", type=Path, help="build the repository here and keep it (default: a temp dir)")
    ap.add_argument("--out", type=Path, default=Path("zoo-audit.json"), help="the audit JSON (zoo-audit.json)")
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="mcx-zoo-"))
    try:
        root = work / "mmpretrain-1.2.0"
        configs = build_repo(root)
        if args.only:
            configs = [c for c in configs if any(fnmatch.fnmatch(c[len("configs/"):], g) for g in args.only)]
        if args.limit:
            configs = configs[: args.limit]
        cache = work / "cache"
        start = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "mcx_review", "metafile", "--check", "--json",
                               str(args.out.resolve()), "--jobs", str(args.jobs), "--cache-dir", str(cache), *configs],
                              cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        wall = time.monotonic() - start
        if not args.out.exists():
            print(proc.stderr[-3000:], file=sys.stderr)
            return 1
        print(f"exit {proc.returncode} (1: a stale entry)")
        print(summarise(json.loads(args.out.read_text()), wall))
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
