"""``mcx-review demo``: realistic edits to the configs the installed mmcls (or mmpretrain) ships,
reviewed in a throw-away git repository. No network. Prints the text table and writes
``mcx-review-demo.md`` (the PR comment) and ``mcx-review-demo.json`` (the report) into the
current directory. ``--codebase mmdet|mmseg`` edits the configs mmdet / mmsegmentation ship instead."""
from __future__ import annotations

import importlib.util
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

from mcx_review.errors import EXIT_NOTHING_COUNTED, EXIT_USAGE

Edit = Tuple[str, Callable[[str], str], str]  # path, transform, what it does


# --codebase -> (package, what to install when it is missing)
CODEBASES = {"mmdet": ("mmdet", "pip install 'mmdet>=3,<4' mmcv-lite (or mcx-review[mmdet])"),
             "mmseg": ("mmseg", "pip install 'mmsegmentation>=1,<2' mmcv-lite ftfy regex (or mcx-review[mmseg])")}


def shipped_configs(codebase: Optional[str] = None) -> Optional[Tuple[str, Path]]:
    """(package, configs dir) of ``codebase``, or of the first installed classification codebase,
    that ships configs."""
    for pkg in ((CODEBASES[codebase][0],) if codebase else ("mmcls", "mmpretrain")):
        spec = importlib.util.find_spec(pkg)  # locates without importing (no torch import)
        if spec and spec.origin:
            configs = Path(spec.origin).parent / ".mim" / "configs"
            if configs.is_dir():
                return pkg, configs
    return None


def _append(text: str) -> Callable[[str], str]:
    return lambda src: src.rstrip("\n") + "\n\n" + text.strip("\n") + "\n"


def edits(pkg: str) -> List[Edit]:
    pack = "PackClsInputs" if pkg == "mmcls" else "PackInputs"
    vit = ("vision_transformer/vit-base-p16_pt-64xb64_in1k-224.py" if pkg == "mmcls"
           else "vision_transformer/vit-base-p16_64xb64_in1k.py")
    return [
        ("configs/resnet/resnet50_8xb32_in1k.py",
         _append("# deeper backbone\nmodel = dict(backbone=dict(depth=101))"),
         "ResNet-50 given depth=101"),
        ("configs/convnext/convnext-tiny_32xb128_in1k.py",
         _append(f"""
# evaluate at 288px
test_dataloader = dict(dataset=dict(pipeline=[
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=329, edge='short', backend='pillow', interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=288),
    dict(type='{pack}'),
]))"""),
         "ConvNeXt-T's test pipeline crops 288 instead of 224"),
        ("configs/" + vit,
         lambda src: src.replace("hidden_dim=3072", "hidden_dim=1536"),
         "ViT-B/16 head hidden_dim 3072 -> 1536"),
    ]


def _sub(old: str, new: str) -> Callable[[str], str]:
    """Replace ``old`` once (these configs set ``model`` themselves: a second ``model = dict(...)``
    appended would replace their own overrides, not merge into them)."""
    return lambda src: src.replace(old, new, 1)


# Detection and segmentation: edits to single configs no other config inherits, so each is one row.
DETSEG_EDITS: Dict[str, List[Edit]] = {
    "mmdet": [
        ("configs/rtmdet/rtmdet_tiny_8xb32-300e_coco.py",
         _sub("bbox_head=dict(in_channels=96, feat_channels=96,", "bbox_head=dict(in_channels=96, feat_channels=128,"),
         "RTMDet-tiny head feat_channels 96 -> 128"),
        ("configs/retinanet/retinanet_r18_fpn_1x_coco.py",
         _sub("    neck=dict(in_channels=[64, 128, 256, 512]))",
              "    neck=dict(in_channels=[64, 128, 256, 512]),\n    bbox_head=dict(num_classes=20))"),
         "RetinaNet-R18 head for 20 classes instead of 80"),
    ],
    "mmseg": [
        ("configs/pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py",
         _sub("        channels=128,\n", "        channels=256,\n"),
         "PSPNet-R18 decode head channels 128 -> 256"),
        ("configs/fcn/fcn_r18-d8_4xb2-80k_cityscapes-512x1024.py",
         _sub("        channels=128,\n", "        channels=128,\n        num_convs=1,\n"),
         "FCN-R18 decode head num_convs 2 -> 1"),
    ],
}


def edits_for(pkg: str) -> List[Edit]:
    return DETSEG_EDITS[pkg] if pkg in DETSEG_EDITS else edits(pkg)


def build_repo(root: Path, pkg: str, configs: Path) -> List[str]:
    """A git repo with the shipped configs as the base commit and the edits as the head commit."""
    import git

    shutil.copytree(configs, root / "configs", ignore=shutil.ignore_patterns("__pycache__"))
    repo = git.Repo.init(root, initial_branch="main")
    with repo.config_writer() as cw:
        cw.set_value("user", "name", "mcx-review demo")
        cw.set_value("user", "email", "demo@example.invalid")
    repo.git.add("-A")
    repo.index.commit(f"{pkg} configs as shipped")
    repo.git.checkout("-b", "change")
    done = []
    for rel, transform, what in edits_for(pkg):
        path = root / rel
        if not path.is_file():
            continue
        old = path.read_text(encoding="utf-8")
        new = transform(old)
        if new == old:  # a config shipped in another shape than the edit expects
            continue
        path.write_text(new, encoding="utf-8")
        done.append(what)
    repo.git.add("-A")
    repo.index.commit("Demo edits: " + "; ".join(done))
    return done


def run_demo(out_dir: Path = Path("."), codebase: Optional[str] = None) -> int:
    from mcx_review import deliver, review
    from mcx_review.cli.options import default_jobs
    from mcx_review.cli.progress import ProgressBar
    from mcx_review.log import log
    from mcx_review.report.outcome import counted_nothing, exit_code
    from mcx_review.report.types import dumps

    found = shipped_configs(codebase)
    if found is None and codebase:
        log(f"demo --codebase {codebase} needs {CODEBASES[codebase][0]} installed (it ships the configs the demo "
            f"edits): {CODEBASES[codebase][1]}")
        return EXIT_USAGE
    if found is None:
        log("demo needs mmcls or mmpretrain installed (they ship the configs it edits): "
            "pip install 'mmpretrain>=1.0,<2' mmcv-lite (or install mcx-review with its [mmpretrain] extra)")
        return EXIT_USAGE
    pkg, configs = found
    with tempfile.TemporaryDirectory(prefix="mcx-review-demo-") as tmp:
        root = Path(tmp)
        log(f"building a throw-away repository from {pkg}'s shipped configs in {root}")
        for what in build_repo(root, pkg, configs):
            log(f"  edit: {what}")
        opts = review.Options(base="main", head="change", jobs=default_jobs(), use_cache=False)
        report, stats, _ = review.run_review(root, opts, log=log, progress=ProgressBar(log))
    deliver.emit(report, "text", None)
    md, js = out_dir / "mcx-review-demo.md", out_dir / "mcx-review-demo.json"
    md.write_text(deliver.render(report, "md"), encoding="utf-8")
    js.write_text(dumps(report), encoding="utf-8")
    log(f"Markdown (the PR comment) written to {md.resolve()}")
    log(f"JSON report written to {js.resolve()}")
    code = exit_code(report)
    if code == EXIT_NOTHING_COUNTED:
        log(f"error: {counted_nothing(report)} (exit {code})")
    return code


if __name__ == "__main__":
    sys.exit(run_demo())
