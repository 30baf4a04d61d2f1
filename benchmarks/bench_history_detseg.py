"""Benchmark (issue 15, item 7): real mmdet / mmsegmentation history, reviewed.

    .venv/bin/python benchmarks/bench_history_detseg.py                  # PR-shaped changes, counted; releases --list
    .venv/bin/python benchmarks/bench_history_detseg.py --select-only    # every row --list (no model built)
    --codebase mmdet|mmseg   one codebase only         --wheels DIR   where the release wheels are / go
    --workdir DIR            keep the repositories     --count-release A..B   also count one release diff

One git repository per codebase whose successive commits are the released wheels (package source +
shipped configs and tools; ``detseg_history.py``): mmdet 3.0.0 -> 3.1.0 -> 3.2.0 -> 3.3.0 and
mmsegmentation 1.0.0 -> 1.1.0 -> 1.1.1 -> 1.1.2 -> 1.2.0 -> 1.2.1 -> 1.2.2. The wheels come from PyPI
(``pip download --no-deps``, ~25 MB in all) unless --wheels holds them.

Rows:
* every release-to-release diff: which configs it puts under review and why (``--list``: resolution
  only), and how long that takes cold;
* PR-shaped changes cut from those diffs onto the earlier release, reviewed cold and counted:
  - ``mmdet add-ddq``: DDQ-DETR as 3.2.0 added it, onto 3.1.0: its five new modules, its helpers
    ``padding_to`` and ``align_tensor`` appended to ``models/utils/misc.py``, its lines in seven ``__init__`` files, and
    ``configs/ddq/`` -> exactly its 3 configs, target <= 5 min cold;
  - ``mmdet fix-atss``: 3.2.0's one-line fix in ``ATSSHead.loss_by_feat`` onto 3.1.0 -> the configs
    of ATSSHead and its subclasses (the fix is in the loss: numbers do not change); listed only
    unless --count-all (~60 configs);
  - ``mmdet docs-yolof``: 3.2.0's docstring-only edit of ``yolof_head.py`` -> nothing;
  - ``mmseg add-ddrnet``: DDRNet as 1.1.0 added it, onto 1.0.0 -> exactly its 2 configs;
  - ``mmseg fix-ham``: 1.1.0's device fix in ``ham_head.py`` onto 1.0.0 -> the SegNeXt configs.

Each review is a cold ``mcx-review`` subprocess with an empty cache of its own; wall time and peak RSS
(``wait4``: the process and every worker it waited for). Targets are printed, never asserted.
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent))
import detseg_history as history  # noqa: E402
from bench_impact import Run  # noqa: E402

PY = sys.executable


def _replace(text: str, old: str, new: str) -> str:
    if old not in text:
        raise SystemExit(f"cut: {old!r} not found (the release differs from what this benchmark expects)")
    return text.replace(old, new, 1)


def _function_source(text: str, name: str) -> str:
    """The source of top-level function ``name`` in ``text`` (to move one helper onto a release)."""
    for node in ast.parse(text).body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return ast.get_source_segment(text, node) or ""
    raise SystemExit(f"cut: function {name} not found")


Edit = Callable[[str], str]


@dataclass
class Cut:
    codebase: str
    name: str
    base: str
    head: str
    paths: List[str]  # files / directories taken whole from head
    edits: Dict[str, Edit]  # path -> transform of its text at base (the hand-cut shared lines)
    expect: str  # what should be reviewed, in words
    exact: Optional[int] = None  # the number of configs that must be reviewed, when known
    count: bool = True  # counted by default (False: listed unless --count-all)


def _ddq_edits(root: Path) -> Dict[str, Edit]:
    misc_head = history.show(root, "v3.2.0", "mmdet/models/utils/misc.py")
    helpers = "\n\n\n".join(_function_source(misc_head, n) for n in ("padding_to", "align_tensor"))

    def init(before: str, line: str, all_old: str, all_new: str) -> Edit:
        return lambda s: _replace(_replace(s, before, before + line), all_old, all_new)

    return {
        "mmdet/models/utils/misc.py": lambda s: _replace(  # the helper and the typing name it needs
            s, "from typing import List, Sequence,", "from typing import List, Optional, Sequence,"
        ).rstrip("\n") + "\n\n\n" + helpers + "\n",
        "mmdet/models/utils/__init__.py": lambda s: _replace(_replace(
            s, "from .misc import (aligned_bilinear,", "from .misc import (align_tensor, aligned_bilinear,"),
            "'BertEncoderLayer'\n]", "'BertEncoderLayer', 'align_tensor'\n]"),
        "mmdet/models/dense_heads/__init__.py": init(
            "from .ddod_head import DDODHead\n", "from .ddq_detr_head import DDQDETRHead\n",
            "'ATSSVLFusionHead', 'DABDETRHead'\n]", "'ATSSVLFusionHead', 'DABDETRHead', 'DDQDETRHead'\n]"),
        "mmdet/models/detectors/__init__.py": init(
            "from .ddod import DDOD\n", "from .ddq_detr import DDQDETR\n", "'GLIP'\n]", "'GLIP',\n    'DDQDETR'\n]"),
        "mmdet/models/layers/transformer/__init__.py": init(
            "                              DABDetrTransformerEncoder)\n",
            "from .ddq_detr_layers import DDQTransformerDecoder\n",
            "    'ConditionalDetrTransformerDecoder',\n", "    'DDQTransformerDecoder', 'ConditionalDetrTransformerDecoder',\n"),
        "mmdet/models/layers/__init__.py": lambda s: _replace(_replace(
            s, "                          DABDetrTransformerEncoder,\n",
            "                          DABDetrTransformerEncoder, DDQTransformerDecoder,\n"),
            "'DABDetrTransformerEncoder', 'ConditionalDetrTransformerDecoder',",
            "'DABDetrTransformerEncoder', 'DDQTransformerDecoder',\n    'ConditionalDetrTransformerDecoder',"),
        "mmdet/models/losses/__init__.py": init(
            "from .balanced_l1_loss import BalancedL1Loss, balanced_l1_loss\n",
            "from .ddq_detr_aux_loss import DDQAuxLoss\n", "'TripletLoss'\n]", "'TripletLoss', 'DDQAuxLoss'\n]"),
        "mmdet/models/task_modules/assigners/__init__.py": init(
            "from .task_aligned_assigner import TaskAlignedAssigner\n",
            "from .topk_hungarian_assigner import TopkHungarianAssigner\n",
            "'MultiInstanceAssigner'\n]", "'MultiInstanceAssigner', 'TopkHungarianAssigner'\n]"),
    }


def cuts(codebase: str, root: Path) -> List[Cut]:
    if codebase == "mmdet":
        return [
            Cut("mmdet", "add-ddq", "v3.1.0", "v3.2.0",
                ["configs/ddq", "mmdet/models/dense_heads/ddq_detr_head.py", "mmdet/models/detectors/ddq_detr.py",
                 "mmdet/models/layers/transformer/ddq_detr_layers.py", "mmdet/models/losses/ddq_detr_aux_loss.py",
                 "mmdet/models/task_modules/assigners/topk_hungarian_assigner.py"],
                _ddq_edits(root), "exactly configs/ddq/*.py", exact=3),
            Cut("mmdet", "fix-atss", "v3.1.0", "v3.2.0", ["mmdet/models/dense_heads/atss_head.py"], {},
                "ATSSHead and subclasses", count=False),
            Cut("mmdet", "docs-yolof", "v3.1.0", "v3.2.0", ["mmdet/models/dense_heads/yolof_head.py"], {},
                "nothing", exact=0),
        ]
    return [
        Cut("mmseg", "add-ddrnet", "v1.0.0", "v1.1.0",
            ["configs/ddrnet", "mmseg/models/backbones/ddrnet.py", "mmseg/models/decode_heads/ddr_head.py"],
            {"mmseg/models/backbones/__init__.py": lambda s: _replace(_replace(
                s, "from .cgnet import CGNet\n", "from .cgnet import CGNet\nfrom .ddrnet import DDRNet\n"),
                "'PIDNet', 'MSCAN'\n]", "'PIDNet', 'MSCAN',\n    'DDRNet'\n]"),
             "mmseg/models/decode_heads/__init__.py": lambda s: _replace(_replace(
                 s, "from .da_head import DAHead\n", "from .da_head import DAHead\nfrom .ddr_head import DDRHead\n"),
                 "'LightHamHead', 'PIDHead'\n]", "'LightHamHead', 'PIDHead', 'DDRHead'\n]")},
            "exactly configs/ddrnet/*.py", exact=2),
        Cut("mmseg", "fix-ham", "v1.0.0", "v1.1.0", ["mmseg/models/decode_heads/ham_head.py"], {},
            "the SegNeXt configs (LightHamHead)", exact=4),
    ]


def make_cut(root: Path, cut: Cut) -> None:
    texts = {rel: edit(history.show(root, cut.base, rel)) for rel, edit in cut.edits.items()}
    history.cut_change(root, cut.base, cut.head, cut.name, cut.paths, texts,
                       f"{cut.name}: cut from {cut.base}..{cut.head}")


# ---------------------------------------------------------------- reviews

def run(argv: Sequence[str]) -> Tuple[Run, float]:
    """bench_impact's run plus the CPU seconds of the process and the workers it waited for (the
    machine is shared: wall time depends on the others' load, CPU time much less)."""
    import subprocess

    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        p = subprocess.Popen(list(argv), stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        _, status, usage = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        r = Run(wall, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status),
                out.read().decode(errors="replace"), err.read().decode(errors="replace"))
    return r, usage.ru_utime + usage.ru_stime

@dataclass
class Review:
    run: Run
    cpu: float  # CPU seconds, the review and its workers
    configs: Dict[str, Dict[str, Any]]  # path -> report entry (reasons only for --list)
    resolved: int
    traces: Optional[int]


def review(repo: Path, base: str, head: str, work: Path, list_only: bool, timeout: float = 600) -> Review:
    cache = Path(tempfile.mkdtemp(prefix="cache-", dir=work))  # cold: a cache of its own
    out = work / f"{base}..{head}{'-list' if list_only else ''}.json".replace("/", "_")
    argv = [PY, "-m", "mcx_review", "--repo", str(repo), "--base", base, "--head", head, "--cache-dir", str(cache),
            "--timeout", str(timeout)]
    argv += ["--list"] if list_only else ["--format", "json", "-o", str(out)]
    r, cpu = run(argv)
    shutil.rmtree(cache, ignore_errors=True)
    if r.rc not in (0, 1, 3):
        raise SystemExit(f"mcx-review failed ({r.rc}) on {base}..{head}:\n{r.err[-3000:]}")
    m = re.search(r"(\d+) resolved", r.err)
    resolved = int(m.group(1)) if m else 0
    if list_only:
        lines = [ln for ln in r.out.splitlines() if ln.strip() and ln != "no config is affected by this change"]
        return Review(r, cpu, {ln.split()[0]: {"reasons": ln.split(None, 1)[1:]} for ln in lines}, resolved, None)
    t = re.search(r"(\d+) analysed", r.err)
    configs = {c["path"]: c for c in json.loads(out.read_text())["configs"]}
    return Review(r, cpu, configs, resolved, int(t.group(1)) if t else None)


def statuses(rv: Review) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(Counter(c.get("status", "listed") for c in rv.configs.values()).items()))


def first_reasons(rv: Review) -> str:
    kinds: Counter = Counter()
    for c in rv.configs.values():
        rs = c.get("reasons") or [""]
        kinds[rs[0].split(" ")[0] if rs[0] else "?"] += 1
    return ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))


def error_lines(rv: Review, limit: int = 8) -> List[str]:
    out = [f"      {e.get('side', '?')} {path}: {str(e.get('message', ''))[:150]}"
           for path, c in sorted(rv.configs.items()) for e in c.get("errors") or []]
    return out[:limit] + ([f"      ... {len(out) - limit} more"] if len(out) > limit else [])


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--codebase", choices=("mmdet", "mmseg"), action="append")
    ap.add_argument("--wheels", type=Path, default=Path(tempfile.gettempdir()) / "mcx-bench-wheels")
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--select-only", action="store_true", help="--list every row: no model is built")
    ap.add_argument("--no-releases", action="store_true", help="skip the release-to-release rows")
    ap.add_argument("--count-all", action="store_true",
                    help="count fix-atss too (~60 configs at both revisions: an hour on 2 shared cores)")
    ap.add_argument("--count-release", action="append", default=[], metavar="A..B",
                    help="also count this release diff in full (e.g. v3.2.0..v3.3.0)")
    args = ap.parse_args(argv)
    codebases = args.codebase or ["mmdet", "mmseg"]
    work = args.workdir or Path(tempfile.mkdtemp(prefix="mcx-bench-history-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"mcx-review history benchmark · {os.cpu_count()} cores · load average {os.getloadavg()[0]:.1f} at start")
    verdicts: List[str] = []
    t_all = time.perf_counter()
    try:
        for cb in codebases:
            versions = history.RELEASES[cb]
            history.download_wheels(args.wheels, cb, versions)
            root = work / f"{cb}-history"
            if not (root / ".git").is_dir():
                t0 = time.perf_counter()
                history.build_history(root, cb, args.wheels, versions)
                print(f"\n{cb}: {len(versions)} releases committed in {time.perf_counter() - t0:.1f} s ({root})")
            for cut in cuts(cb, root):
                make_cut(root, cut)
            tags = [f"v{v}" for v in versions]
            if not args.no_releases:
                print(f"\n{cb} release diffs (--list: which configs, no model built)")
                for a, b in zip(tags, tags[1:]):
                    rv = review(root, a, b, work, list_only=True)
                    n_files = len(history.changed_files(root, a, b))
                    print(f"  {a}..{b}: {n_files} files changed -> {len(rv.configs)} configs ({first_reasons(rv)}); "
                          f"{rv.resolved} resolved; {rv.run.wall:.1f} s ({rv.cpu:.0f} CPU s), peak RSS {rv.run.maxrss_mb:.0f} MB")
            for spec in args.count_release:
                a, b = spec.split("..")
                if a not in tags or b not in tags:
                    continue
                rv = review(root, a, b, work, list_only=False)
                print(f"  {a}..{b} counted: {len(rv.configs)} configs ({statuses(rv)}); {rv.traces} traces; "
                      f"{rv.run.wall:.0f} s, peak RSS {rv.run.maxrss_mb:.0f} MB")
                print("\n".join(error_lines(rv)))
            print(f"\n{cb} PR-shaped changes (cold{', --list' if args.select_only else ', counted'})")
            for cut in cuts(cb, root):
                sel = review(root, cut.base, cut.name, work, list_only=True)
                line = (f"  {cut.name} ({cut.base} + from {cut.head}): {len(sel.configs)} configs, expected {cut.expect}; "
                        f"select {sel.run.wall:.1f} s ({sel.resolved} resolved)")
                if args.select_only or not (cut.count or args.count_all):
                    print(line + ("" if args.select_only else "; listed only (--count-all counts it)"))
                else:
                    rv = review(root, cut.base, cut.name, work, list_only=False)
                    print(line + f"; full review {rv.run.wall:.1f} s ({rv.cpu:.0f} CPU s), {rv.traces} traces, peak RSS "
                          f"{rv.run.maxrss_mb:.0f} MB; statuses: {statuses(rv) or '-'}")
                    print("\n".join(error_lines(rv)))
                for path in sorted(sel.configs):
                    print(f"      {path}: {'; '.join(sel.configs[path]['reasons'])[:160]}")
                if cut.exact is not None:
                    ok = len(sel.configs) == cut.exact
                    verdicts.append(f"{'PASS' if ok else 'MISS'}  {cb} {cut.name}: {len(sel.configs)} configs "
                                    f"(expected {cut.exact})")
                if cut.name.startswith("add-") and not args.select_only and cut.count:
                    ok = rv.run.wall <= 300
                    verdicts.append(f"{'PASS' if ok else 'MISS'}  {cb} {cut.name}: cold review {rv.run.wall:.0f} s wall, "
                                    f"{rv.cpu:.0f} CPU s (target <= 300 s on 2 cores)")
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    print()
    print("\n".join(verdicts))
    print(f"benchmark wall: {time.perf_counter() - t_all:.0f} s; load average {os.getloadavg()[0]:.1f} at end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
