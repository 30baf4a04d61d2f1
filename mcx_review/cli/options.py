"""Options shared by the subcommands, and their parsing: shapes, sizes, shards, depths."""
from __future__ import annotations

import argparse
import os
import re
from pathlib import Path
from typing import List, NoReturn, Optional, Tuple

from mcx_review.errors import EXIT_USAGE
from mcx_review.select.revisions import HeadKind

MAX_SIDE = 4096  # pixels: beyond this a trace takes more memory than a CI runner has


class Parser(argparse.ArgumentParser):
    """Usage errors as one line on stderr (and exit 2), not usage text plus an error."""

    def error(self, message: str) -> "NoReturn":
        prog = "mcx-review" if self.prog == "mcx-review review" else self.prog
        self.exit(EXIT_USAGE, f"mcx-review: error: {message} (see: {prog} --help)\n")


def parse_shape(text: str) -> Tuple[int, int]:
    """``H``, ``H W`` or ``HxW`` (positive integers up to MAX_SIDE) -> (H, W)."""
    parts = re.split(r"\s+|(?<=\d)[x\u00d7X](?=\d)", text.strip())
    if not 1 <= len(parts) <= 2 or not all(p.isdigit() for p in parts):
        raise argparse.ArgumentTypeError(f"expected H, H W or HxW (integers), got {text!r}")
    values = [int(p) for p in parts]
    if not all(1 <= v <= MAX_SIDE for v in values):
        raise argparse.ArgumentTypeError(f"sizes must be between 1 and {MAX_SIDE} pixels, got {text!r}")
    return (values[0], values[0]) if len(values) == 1 else (values[0], values[1])


def join_shape(args: List[str]) -> List[str]:
    """``--shape H [W]`` -> ``--shape=H W``: every integer right after ``--shape`` belongs to it
    (so ``--shape 224 224 3`` is an error, not a FILE named 3), and the rest stays FILEs."""
    out: List[str] = []
    i = 0
    while i < len(args):
        if args[i] == "--shape" and i + 1 < len(args):
            j = i + 1
            while j < len(args) and (j == i + 1 or re.fullmatch(r"\d+", args[j])):
                j += 1
            out.append("--shape=" + " ".join(args[i + 1:j]))
            i = j
            continue
        out.append(args[i])
        i += 1
    return out


def parse_rss(text: str) -> int:
    from mcx_review.measure.memory import parse_size

    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--max-worker-rss: {exc}") from None


def _shard(text: str) -> Tuple[int, int]:
    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard expects K/N such as 1/4, got {text!r}") from None
    if not 1 <= k <= n:
        raise argparse.ArgumentTypeError(f"--shard {text}: K must be between 1 and N")
    return k, n


def positive_int(text: str) -> int:
    """An integer >= 1 (``--jobs 0`` and ``--jobs -2`` are usage errors, not a hang or a crash)."""
    if not re.fullmatch(r"\s*\d+\s*", text) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return int(text)


def positive_seconds(text: str) -> float:
    """Seconds > 0 (``--timeout -5`` is a usage error)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, a number above 0, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected seconds, a number above 0, got {text!r}")
    return value


def _depth(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 50:
        raise argparse.ArgumentTypeError(f"--depth takes a module depth from 1 to 50, got {text!r}")
    return int(text)


def add_review_arguments(p: argparse.ArgumentParser) -> None:
    add_core_review_arguments(p)
    run = p.add_argument_group("performance and cache")
    run.add_argument("--timeout", type=positive_seconds, default=600.0, metavar="SECONDS",
                     help="seconds one analysis may take (default 600)")
    run.add_argument("--jobs", "-j", type=positive_int, default=None, metavar="N",
                     help="worker processes, at least 1 (default: by cores and memory)")
    run.add_argument("--max-worker-rss", type=parse_rss, default=None, metavar="SIZE",
                     help="memory one worker may hold, e.g. 3G or 2500M (default: 80%% of the machine's "
                          "memory shared by the workers, at most 3G); a worker past it is replaced after "
                          "its job, and a model that needs more runs alone")
    run.add_argument("--cache-dir", type=Path, metavar="DIR", help="result cache (default ~/.cache/mcx-review)")
    run.add_argument("--no-cache", action="store_true", help="neither read nor write the result cache")
    run.add_argument("--shard", type=_shard, metavar="K/N", help="analyse shard K of N (join the reports with `merge`)")
    run.add_argument("--impact", choices=("definitions", "files"), default=None,
                     help="how a code change selects configs: definitions (default: models that reach a "
                          "changed top-level definition) or files (every model that imports a changed file)")


def add_revision_arguments(p: "argparse.ArgumentParser | argparse._ArgumentGroup") -> None:
    """Which change: --base, --head | --staged | --worktree, --repo (review and metafile alike)."""
    p.add_argument("--base", default=None, metavar="REV", help="base revision; the review starts at its merge-base "
                   "with head (default: HEAD for --staged/--worktree, else main)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--head", default=None, metavar="REV", help="head revision (default HEAD)")
    g.add_argument("--staged", action="store_true", help="head is the index (what pre-commit checks)")
    g.add_argument("--worktree", action="store_true", help="head is the working tree")
    p.add_argument("--repo", type=Path, default=Path("."), metavar="DIR", help="repository (default: current directory)")


def revision_of(args: argparse.Namespace) -> Tuple[str, Optional[str], HeadKind]:
    """(base, head, head kind) of :func:`add_revision_arguments`: base defaults to HEAD for the
    index or the working tree, else to main."""
    kind: HeadKind = "index" if args.staged else "worktree" if args.worktree else "commit"
    return args.base or ("HEAD" if kind != "commit" else "main"), args.head, kind


def add_core_review_arguments(p: "argparse.ArgumentParser | argparse._ArgumentGroup") -> None:
    """What a review is of and where its report goes: the options the top-level help shows first."""
    p.add_argument("files", nargs="*", metavar="FILE",
                   help="review only what these changed files or directories affect (as pre-commit "
                   "passes them); paths relative to the current directory, like git pathspecs; "
                   "default: the whole diff")
    add_revision_arguments(p)
    p.add_argument("--shape", type=parse_shape, metavar="H [W]",
                   help=f"force the input size in pixels: H, H W or HxW, each 1..{MAX_SIDE}; default: the "
                   "size each config declares (test pipeline, backbone img_size, ...; channels always "
                   "come from the config)")
    p.add_argument("--format", choices=("text", "md", "json"), default=None, help="output format (default text)")
    p.add_argument("--output", "-o", type=Path, metavar="PATH", help="write the report here instead of stdout")
    p.add_argument("--json", dest="json_path", type=Path, metavar="PATH", help="also write the JSON report here")
    p.add_argument("--markdown", dest="md_path", type=Path, metavar="PATH", help="also write the Markdown here")
    p.add_argument("--config", dest="settings", type=Path, metavar="FILE", help="settings file, applied as given "
                   "(default: the base revision's .mcx-review.yaml with what the head's adds or tightens: a "
                   "change cannot relax its own gates)")
    p.add_argument("--configs", dest="config_globs", action="append", metavar="GLOB",
                   help="which files are configs, instead of the settings' configs (repeat for more globs)")
    p.add_argument("--engine", choices=("fvcore", "dispatch"), default="fvcore",
                   help="counting engine: fvcore's jit trace (default) or the dispatch engine (no torch.jit, "
                        "no computed values; same numbers; falls back to fvcore, and says so, where it cannot run)")
    p.add_argument("--list", action="store_true", help="print which configs would be reviewed and why, build nothing")
    p.add_argument("--depth", type=_depth, metavar="N", help="per-module tables to depth N (1: top-level modules), base -> head")
    p.add_argument("--comment", action="store_true", help="post the report as a sticky PR comment (options: "
                   "mcx-review review --help)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress, hints or other log lines "
                   "on stderr (errors still show)")


def default_jobs() -> int:
    cores = os.cpu_count() or 1
    try:
        avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        avail = 8 << 30
    by_memory = max(1, int(avail // (3 << 30)))  # a large model's worker peaks near 3 GiB
    return max(2, min(cores, by_memory))
