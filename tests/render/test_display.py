"""The view layer (view.py), the metafile verdicts (metafile.py) and the drill-down (module_tree.py):
pure, no torch. Figures are real: ResNet-50 on CIFAR-10 at depth 50 and 101 as mcx-review counts
them, published entries as mmpretrain 1.2.0's metafiles write them."""
import subprocess
import sys

import pytest

from mcx_review.metafile import verdicts as metafile
from mcx_review.report import module_tree
from mcx_review.render import display as view
from mcx_review.render.markdown import render_markdown
from mcx_review.render.text import Line, render_text

BASE_LAYER3 = {"flops": 479559680, "params": 7098368, "activations": 704512}
HEAD_LAYER3 = {"flops": 1695055872, "params": 26090496, "activations": 2375680}


def _tree(blocks3):
    """A ResNet-50-like tree: stem, layer1..4, layer3 with ``blocks3`` blocks."""
    rows = [["backbone", 0, 0, 0], ["backbone.conv1", 1769472, 864, 32768], ["backbone.norm1", 65536, 128, 0]]
    for layer, blocks in (("layer1", 3), ("layer2", 4), ("layer3", blocks3), ("layer4", 3)):
        per = 1000 * (1 + len(layer))
        rows.append([f"backbone.{layer}", per * blocks, 10 * blocks, 5 * blocks])
        for b in range(blocks):
            rows.append([f"backbone.{layer}.{b}", per, 10, 5])
            rows.append([f"backbone.{layer}.{b}.conv1", per, 10, 5])
    total = sum(r[1] for r in rows if r[0].count(".") == 1)
    rows[0] = ["backbone", total, sum(r[2] for r in rows if r[0].count(".") == 1),
               sum(r[3] for r in rows if r[0].count(".") == 1)]
    rows.append(["neck", 32768, 0, 0])
    rows.append(["head", 0, 20490, 0])
    return rows


def _totals(tree):
    top = [r for r in tree if "." not in r[0]]
    return {"flops": sum(r[1] for r in top), "params": sum(r[2] for r in top), "activations": sum(r[3] for r in top)}


# ---------------------------------------------------------------- no torch

def test_view_layer_renders_without_no_torch_import():
    code = ("import sys; from mcx_review.render import display, markdown, text;"
            "from mcx_review.metafile import verdicts; from mcx_review.report import module_tree;"
            "r = {'schema': 'mcx-review/1', 'base': {'sha': None}, 'head': {'sha': None}, 'configs': []};"
            "markdown.render_markdown(r); text.render_text(r, color=False);"
            "bad = {'torch', 'fvcore'} & set(sys.modules); assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_these_tests_run_with_no_torch():
    """Every other test of this module, in a fresh process that must never import torch."""
    code = (f"import sys, pytest; rc = pytest.main(['-q', '-p', 'no:cacheprovider', {__file__!r}, "
            f"'-k', 'not no_torch']); assert rc == 0, rc; assert 'torch' not in sys.modules, 'torch imported'")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]


# ---------------------------------------------------------------- metafile figures

@pytest.mark.parametrize("raw, value, unit, digits", [
    (560000000, 560000000, 10 ** 7, 2), (55538974464, 55538974464, 1, 11), (11170000, 11170000, 10 ** 4, 4),
    ("4.12G", 4120000000, 10 ** 7, 3), ("25.56M", 25560000, 10 ** 4, 4), ("0.5M", 500000, 10 ** 5, 1)])
def test_published_figure_precision(raw, value, unit, digits):
    pub = metafile.parse_figure(raw)
    assert (pub.value, pub.unit, pub.digits) == (value, unit, digits)


def test_agreement_at_the_entry_precision():
    assert metafile.parse_figure(560000000).agrees(556651520)  # ResNet-18 CIFAR-10, measured
    assert not metafile.parse_figure(560000000).agrees(554999999)
    assert metafile.parse_figure(11170000).agrees(11173962)
    assert not metafile.parse_figure("4.12G").agrees(4109464576) and metafile.parse_figure("4.11G").agrees(4109464576)
    assert metafile.parse_figure(55538974464).agrees(55538974464)
    assert not metafile.parse_figure(55538974464).agrees(55538974465)
    assert metafile.parse_figure(None) is None
    for bad in ("abc", True, [1], -5):
        with pytest.raises(metafile.NotACount):
            metafile.parse_figure(bad)


def test_format_like_keeps_the_entry_style():
    assert metafile.format_like(560000000, 1163827712) == 1160000000
    assert metafile.format_like(55538974464, 55538974465) == 55538974465
    assert metafile.format_like("4.12G", 4109464576) == "4.11G"
    assert metafile.format_like("25.56M", 42512970) == "42.51M"


def test_says_reads_like_the_issue():
    c = {"metric": "flops", "published": "4.12G", "value": 4120000000, "measured": 4109464576}
    assert metafile.says(c) == "FLOPs: metafile says 4.12G, measured 4.109G (\u22120.3%)"
    exact = {"metric": "flops", "published": "55538974464", "value": 55538974464, "measured": 55538974000}
    assert metafile.says(exact) == "FLOPs: metafile says 55,538,974,464, measured 55,538,974,000 (\u2212<0.1%)"


def _entry(flops, params, base=None):
    return {"file": "configs/resnet/metafile.yml", "name": "resnet50_8xb16_cifar10",
            "config": "configs/resnet/resnet50_8xb16_cifar10.py", "flops": flops, "params": params,
            "base": base}


R50 = {"flops": 1304988160, "params": 23520842}
R101 = {"flops": 2520203264, "params": 42512970}


@pytest.mark.parametrize("head, base, pub, status", [
    (R50, R50, _entry(1300000000, 23520000, {"flops": 1300000000, "params": 23520000}), "agrees"),
    (R101, R50, _entry(1300000000, 23520000, {"flops": 1300000000, "params": 23520000}), "stale"),
    (R101, R50, _entry(2520000000, 42510000, {"flops": 1300000000, "params": 23520000}), "agrees"),
    (R101, R50, _entry(999, 999, {"flops": 999, "params": 999}), "legacy"),
    (R50, R50, _entry(1300000000, 23520000, {"flops": 999, "params": 23520000}), "fixed"),
    (R101, None, _entry(1300000000, 23520000), "stale"),  # an added config's new entry
    (R101, R50, _entry(None, None, None), "not compared"),
])
def test_verdicts(head, base, pub, status):
    v = metafile.verdict(head, base, [pub], "fail")
    assert v["status"] == status
    assert metafile.fails({"metafile": v}) == (status == "stale")
    assert metafile.recompute({"head": head, "base": base, "metafile": v}) == v


def test_no_entry_and_forced_shape():
    assert metafile.verdict(R50, None, [], "warn")["status"] == "no entry"
    forced = metafile.verdict(R50, R50, [_entry(1, 1)], "fail", note="input forced to 64\u00d764", compare=False)
    assert forced["status"] == "not compared" and not metafile.fails({"metafile": forced})
    assert metafile.recompute({"head": R50, "base": R50, "metafile": forced}) == forced


# ---------------------------------------------------------------- where it changed

def test_where_names_the_stage_whose_blocks_changed():
    base, head = _tree(6), _tree(23)
    rows = module_tree.where(base, head, _totals(base), _totals(head))
    assert [r["module"] for r in rows] == ["backbone.layer3"]


def test_where_stops_where_everything_changed_and_orders_by_flops():
    base = _tree(6)
    bigger = [[n, f * 2 if n.startswith("backbone") else f, p, a] for n, f, p, a in base]
    bigger[0][1] = sum(r[1] for r in bigger if r[0].count(".") == 1)
    rows = module_tree.where(base, bigger, _totals(base), _totals(bigger))
    assert [r["module"] for r in rows] == ["backbone"]
    # two separate changes: the larger FLOPs change first; a head-only module shows as such
    head = [list(r) for r in base]
    for r in head:
        if r[0] in ("backbone.layer4.0.conv1", "backbone.layer4.0", "backbone.layer4", "backbone"):
            r[1] += 10 ** 6
        if r[0] == "head":
            r[2] += 5
    head.append(["head.extra", 0, 7, 0])
    rows = module_tree.where(base, head, _totals(base), _totals(head))
    assert [r["module"] for r in rows] == ["backbone.layer4.0.conv1", "head"]


def test_depth_rows_and_pruning():
    base, head = _tree(2), _tree(3)
    rows = module_tree.depth_rows(base, head, 2)
    names = [r["module"] for r in rows]
    assert names[:3] == ["backbone", "backbone.conv1", "backbone.norm1"] and "backbone.layer3.0" not in names
    assert all(n.count(".") <= 1 for n in names)
    assert module_tree.prune(head, 1) == [r for r in head if "." not in r[0]]


def _config(path, base, head, **extra):
    e = {"path": path, "old_path": None, "status": "changed", "reasons": ["changed"],
         "base": dict(_totals(base), input_shape=[3, 32, 32], forward="extract_feat", modules={}, tree=base,
                      unsupported_ops={}, uncalled_modules=[]),
         "head": dict(_totals(head), input_shape=[3, 32, 32], forward="extract_feat", modules={}, tree=head,
                      unsupported_ops={}, uncalled_modules=[]),
         "errors": [], "warnings": [], "budgets": []}
    e.update(extra)
    return e


def _report(*configs, depth=None):
    return {"schema": "mcx-review/1", "tool": {}, "base": {"rev": "main", "sha": "a" * 40},
            "head": {"rev": "pr", "sha": "b" * 40, "kind": "commit"}, "shape": None, "depth": depth,
            "configs": list(configs)}


def test_attach_keeps_rows_and_drops_trees():
    e = _config("configs/resnet/r.py", _tree(6), _tree(23))
    module_tree.attach(e, 5, None)
    assert e["where"]["rows"][0]["module"] == "backbone.layer3" and e["where"]["more"] == 0
    assert "tree" not in e["base"] and "tree" not in e["head"]
    pruned = module_tree.attach(_config("configs/resnet/r.py", _tree(6), _tree(23)), 5, 2)
    assert all(r[0].count(".") <= 1 for r in pruned["head"]["tree"])
    pending = module_tree.attach(_config("configs/resnet/r.py", _tree(6), _tree(23), pending=["base"]), 5, None)
    assert "tree" in pending["head"]


def test_renderers_show_where_and_depth():
    e = module_tree.attach(_config("configs/resnet/r.py", _tree(6), _tree(23)), 5, 2)
    md = render_markdown(_report(e, depth=2))
    assert "Where it changed" in md and "| backbone.layer3 | " in md
    assert "| backbone.layer1 | " in md and "backbone.layer3.7" not in md  # the depth-2 table
    rows = view.where_rows(e)
    assert rows[0][0] == "backbone.layer3" and rows[0][1] is None and "\u2192" in rows[0][2][0]
    head_only = dict(e, where={"rows": [{"module": "head.fc", "base": {"flops": 0, "params": 4, "activations": 0},
                                         "head": {"flops": 0, "params": 8, "activations": 0}}], "more": 2})
    for side in ("base", "head"):
        head_only[side] = dict(e[side], modules={"head": {"flops": 0, "params": 8, "activations": 0, "called": False}})
    assert view.where_rows(head_only) == [("head.fc", None, ["\u2013", "4 \u2192 8 (+4, +100.0%)", "\u2013"])]
    assert view.where_more(head_only) == 2
    text = render_text(_report(e, depth=2), color=False, wrap=False)
    assert "where it changed\n  resnet/r.py\n    backbone.layer3" in text
    assert "modules\n  resnet/r.py (to depth 2)" in text


# ---------------------------------------------------------------- reasons, metafile lines

def test_reason_forms():
    assert view.reason_view("inherits configs/_base_/models/resnet50.py") == \
        ("inherits", None, "configs/_base_/models/resnet50.py")
    assert view.reason_view("uses code in mmcls/models/backbones/resnet.py") == \
        ("uses code in", None, "mmcls/models/backbones/resnet.py")
    assert view.reason_view("uses ResNet (mmcls/models/backbones/resnet.py)") == \
        ("uses", "ResNet", "mmcls/models/backbones/resnet.py")
    assert view.reason_view("changed") == ("edited", None, None)
    e = _config("configs/resnet/r.py", _tree(6), _tree(23), reasons=["uses ResNet (mmcls/models/backbones/resnet.py)"])
    md = render_markdown(_report(e))
    assert "uses <code>ResNet</code> (<code>mmcls/models/backbones/resnet.py</code>)" in md
    assert "uses ResNet" in render_text(_report(e), color=False)


def test_metafile_lines_in_both_renderers():
    stale = metafile.verdict(R101, R50, [_entry(1300000000, 23520000, {"flops": 1300000000, "params": 23520000})],
                             "warn")
    e = _config("configs/resnet/resnet50_8xb16_cifar10.py", _tree(6), _tree(23), metafile=stale)
    lines = view.metafile_lines(e)
    assert [(m.status, m.name) for m in lines] == [("stale", "resnet50_8xb16_cifar10")]
    assert lines[0].details == ["FLOPs: metafile says 1.3G, measured 2.52G (+93.9%)",
                                "Parameters: metafile says 23.52M, measured 42.513M (+80.8%)"]
    md = render_markdown(_report(e))
    assert "\u26a0\ufe0f metafile stale for 1" in md.splitlines()[0]
    assert "#### Metafiles" in md and "metafile says 1.3G, measured 2.52G (+93.9%)" in md
    assert "<sub>metafile stale</sub>" in md
    text = render_text(_report(e), color=False, wrap=False)
    assert "metafiles\n  resnet/resnet50_8xb16_cifar10.py: metafile stale (resnet50_8xb16_cifar10 in " \
           "resnet/metafile.yml): FLOPs: metafile says 1.3G" in text
    twice = dict(stale, entries=stale["entries"] + [dict(stale["entries"][0], name="resnet50_ema")])
    assert [m.name for m in view.metafile_lines(dict(e, metafile=twice))] == ["resnet50_8xb16_cifar10, resnet50_ema"]
    failing = dict(e, metafile=dict(stale, level="fail"))
    assert view.fails(failing) and render_markdown(_report(failing)).count("\u274c") >= 2
    agree = metafile.verdict(R50, R50, [_entry(1300000000, 23520000, {"flops": 1300000000, "params": 23520000})],
                             "warn")
    r = _report(_config("configs/resnet/ok.py", _tree(6), _tree(6), metafile=agree))
    r["metafile_problems"] = ["configs/a/metafile.yml: invalid YAML at line 3: found unexpected end of stream"]
    md = render_markdown(r)
    assert "1 config agrees with its metafile entry at the entry's precision: <code>resnet/ok.py</code>" in md
    assert "could not read <code>configs/a/metafile.yml: invalid YAML at line 3: found unexpected end" in md
    assert "  could not read configs/a/metafile.yml: invalid YAML at line 3" in render_text(r, color=False)


# ---------------------------------------------------------------- plain text wraps between entries

def test_plain_text_breaks_lines_only_between_entries():
    ops = {f"aten::op_number_{i}": i + 1 for i in range(40)}
    ops["aten::mean"] = 1
    e = _config("configs/convnext/convnext-tiny_32xb128_in1k.py", _tree(2), _tree(3),
                warnings=[{"side": "head", "message": "a long warning " * 20}])
    e["head"]["unsupported_ops"] = e["base"]["unsupported_ops"] = ops
    text = render_text(_report(e), color=False, width=100, wrap=False)
    section = text[text.index("not counted\n"):text.index("warnings\n")].splitlines()[1:]
    assert len(section) > 3  # it wraps ...
    entries = [p.strip() for line in section for p in line.split(",") if p.strip()]
    assert entries[0].startswith("convnext/convnext-tiny_32xb128_in1k.py: aten::")
    entries[0] = entries[0].split(": ", 1)[1]
    assert all(" \u00d7" in p and p.startswith("aten::") for p in entries), entries  # ... never inside an entry
    assert "aten::mean \u00d71" in entries
    assert all(len(line) <= 100 for line in section)
    warning = [line for line in text.splitlines() if "a long warning" in line]
    assert len(warning) == 1  # free text is not wrapped when not on a terminal
    assert Line("x:", ["a \u00d71", "b \u00d72"]).lines(6) == ["x: a \u00d71,", "   b \u00d72"]


def test_detector_counting_is_said():
    """Issue 15: the second stage's fixed proposal count and the mmcv stand-ins reach the reader."""
    base = {"input_shape": [3, 800, 1344], "forward": "tensor", "flops": 10, "params": 1, "activations": 1,
            "modules": {}, "unsupported_ops": {}, "uncalled_modules": [], "proposals": 1000,
            "mmcv_stand_ins": ["nms", "roi_align_forward"]}
    head = dict(base, flops=5, proposals=500, mmcv_stand_ins=["nms"])
    entry = {"path": "configs/faster_rcnn/x.py", "status": "changed", "reasons": ["changed"],
             "base": base, "head": head, "errors": [], "warnings": []}
    assert view.counting_notes(entry) == ["second stage on 1000 \u2192 500 proposals",
                                          "mmcv ops on torchvision stand-ins: nms, roi_align_forward"]
    report = {"schema": "mcx-review/1", "base": {"sha": None}, "head": {"sha": None}, "configs": [entry]}
    assert "second stage on 1000 \u2192 500 proposals" in render_markdown(report)
    assert "torchvision stand-ins" in render_text(report, color=False)
    assert view.counting_notes(dict(entry, base=dict(base, proposals=None, mmcv_stand_ins=None),
                                    head=dict(head, proposals=None, mmcv_stand_ins=None))) == []
