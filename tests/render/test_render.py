"""Renderers over hand-built reports with real figures (counted the get_flops way by mcx-review's
demo on the shipped mmcls configs: ResNet-50 given depth=101, ConvNeXt-T at 288px, the ViT-B head's
hidden_dim 3072 -> 1536). Markdown is checked through a real CommonMark+table parser."""
import html
import random
import re
import subprocess
import sys

import pytest
from markdown_it import MarkdownIt

from mcx_review.render.markdown import code, esc, render_markdown
from mcx_review.render.text import render_text, wrap_path
from mcx_review.units import format_change, format_count, format_delta, format_shape, format_shapes

RESNET = "configs/resnet/resnet50_8xb32_in1k.py"
CONVNEXT = "configs/convnext/convnext-tiny_32xb128_in1k.py"
VIT = "configs/vision_transformer/vit-base-p16_pt-64xb64_in1k-224.py"
FP16 = "configs/resnet/resnet50_8xb32-fp16_in1k.py"
HOSTILE = "configs/a|b/<img src=x onerror=alert(1)>*x* _y_ `tick` ``` @octocat [l](http://e.x) &amp; ~~s~~ $m$ #12\nline2.py"


def stats(hw, flops, params, acts, modules, ops=None, forward="extract_feat", uncalled=None):
    return {"input_shape": [3, *hw], "forward": forward, "flops": flops, "params": params, "activations": acts,
            "modules": {n: {"flops": f, "params": p, "activations": a, "called": c}
                        for n, (f, p, a, c) in modules.items()},
            "unsupported_ops": ops or {}, "uncalled_modules": uncalled or []}


R50 = stats((224, 224), 4109464576, 25557032, 11113984,
            {"backbone": (4109364224, 23508032, 11113984, True), "neck": (100352, 0, 0, True),
             "head": (0, 2049000, 0, False)}, {"aten::add_": 16, "aten::max_pool2d": 1})
R101 = stats((224, 224), 7831921664, 44549160, 16231936,
             {"backbone": (7831821312, 42500160, 16231936, True), "neck": (100352, 0, 0, True),
              "head": (0, 2049000, 0, False)}, {"aten::add_": 33, "aten::max_pool2d": 1})
CNX224 = stats((224, 224), 4469631744, 28589128, 13434624,
               {"backbone": (4469631744, 27820128, 13434624, True), "head": (0, 769000, 0, False)},
               {"aten::add": 18, "aten::gelu": 18, "aten::mean": 1, "aten::mul": 18})
CNX288 = stats((288, 288), 7388572416, 28589128, 22208256,
               {"backbone": (7388572416, 27820128, 22208256, True), "head": (0, 769000, 0, False)},
               {"aten::add": 18, "aten::gelu": 18, "aten::mean": 1, "aten::mul": 18})
VIT_B = stats((224, 224), 17581972224, 91234024, 23894544,
              {"backbone": (17581972224, 85798656, 23894544, True), "head": (0, 5435368, 0, False)})
VIT_H = stats((224, 224), 17581972224, 88516840, 23894544,
              {"backbone": (17581972224, 85798656, 23894544, True), "head": (0, 2718184, 0, False)})


def entry(path, status, base, head, reasons=("changed",), errors=(), warnings=(), budgets=(), old_path=None):
    delta = {m: head[m] - base[m] for m in ("flops", "params", "activations")} if base and head else None
    return {"path": path, "old_path": old_path, "status": status, "reasons": list(reasons), "base": base,
            "head": head, "delta": delta, "errors": list(errors), "warnings": list(warnings),
            "budgets": list(budgets)}


def report(*configs, head_kind="commit", shape=None):
    return {"schema": "mcx-review/1",
            "tool": {"fvcore": "0.1.5.post20221221", "mcx-review": "0.1.0", "torch": "2.14.1"},
            "base": {"rev": "main", "sha": "3a4af77862f1a6562726f72852509167185f2754"},
            "head": {"rev": "change", "sha": "d02fa10cb82f6c1ae586f16b4ea26a0e653d27b3", "kind": head_kind},
            "shape": shape, "shard": None, "configs": list(configs)}


DEMO = report(entry(VIT, "changed", VIT_B, VIT_H), entry(CONVNEXT, "changed", CNX224, CNX288),
              entry(FP16, "changed", R50, R101, reasons=[f"inherits {RESNET}"]),
              entry(RESNET, "changed", R50, R101))

MD = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
ALLOWED_TAGS = {"code", "details", "summary", "sub", "br"}


def table_rows(md):
    """Rows of every Markdown table: lists of cell strings, split the way GFM splits them."""
    return [[c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
            for line in md.splitlines() if line.startswith("| ") and not line.startswith("|---")]


def row_for(md, name):
    rows = [r for r in table_rows(md) if re.match(rf"(\u274c |\u26a0\ufe0f )?<code>{re.escape(name)}</code>", r[0])]
    assert len(rows) == 1, (name, rows)
    return rows[0]


# ---------------------------------------------------------------- units

def test_format_count_equals_fvcore():
    from fvcore.nn.print_model_statistics import _format_size

    rng = random.Random(7)
    values = {0, 1, -1, 99, 100, 101, 999, 1000, 1001, 99999, 100000, 100001, 100352, 999499, 999500,
              10 ** 8, 10 ** 8 + 1, 10 ** 11, 10 ** 11 + 1, 10 ** 14, 10 ** 14 + 1, 10 ** 15, 10 ** 18,
              4109464576, 17581972224, 91234024, 2718184, 1234500, 1234499, 1_000_500_000, 999_999_999}
    values |= {-v for v in list(values)}
    values |= {int(10 ** rng.uniform(0, 17)) for _ in range(5000)}
    values |= {b + d for b in (10 ** 2, 10 ** 5, 10 ** 8, 10 ** 11, 10 ** 14) for d in range(-3, 4)}
    assert [format_count(v) for v in sorted(values)] == [_format_size(v) for v in sorted(values)]
    assert format_count(17581972224) == "17.582G" and format_count(100352) == "0.1M"


def test_deltas_and_shapes():
    assert format_delta(4109464576, 7831921664) == "+3.722G, +90.6%"
    assert format_delta(91234024, 88516840) == "\u22122.717M, \u22123.0%"
    assert format_delta(0, 100352) == "+0.1M"
    assert format_delta(5, 5) == "0"
    assert format_delta(17581972224, 17581972224 + 5000) == "+5K, +<0.1%"
    assert format_change(28589128, 28589128) == "28.589M"
    assert format_change(None, 2049000) == "2.049M"
    assert format_change(13434624, 22208256) == "13.435M \u2192 22.208M (+8.774M, +65.3%)"
    assert format_shape([3, 224, 224]) == "224\u00b2" and format_shape([3, 224, 320]) == "224\u00d7320"
    assert format_shapes([3, 224, 224], [3, 288, 288]) == "224\u00b2 \u2192 288\u00b2"
    assert format_shapes([3, 224, 224], [3, 224, 224]) == "224\u00b2"


def test_renderers_import_neither_torch_nor_fvcore():
    code_ = ("import sys, mcx_review.render.markdown, mcx_review.render.text, mcx_review.units;"
             "bad = {'torch', 'fvcore'} & set(sys.modules); assert not bad, bad")
    subprocess.run([sys.executable, "-c", code_], check=True)


# ---------------------------------------------------------------- Markdown

def test_markdown_totals_match_the_comment_example():
    md = render_markdown(DEMO)
    assert md.startswith("### Model complexity: 4 configs changed \u00b7 largest FLOPs change +90.6% "
                         "(<code>resnet50_8xb32_in1k.py</code>)")
    assert row_for(md, "resnet/resnet50_8xb32_in1k.py")[1:] == [
        "224\u00b2", "4.109G \u2192 7.832G (+3.722G, +90.6%)", "25.557M \u2192 44.549M (+18.992M, +74.3%)",
        "11.114M \u2192 16.232M (+5.118M, +46.0%)"]
    assert row_for(md, "convnext/convnext-tiny_32xb128_in1k.py")[1:] == [
        "224\u00b2 \u2192 288\u00b2", "4.47G \u2192 7.389G (+2.919G, +65.3%)", "28.589M",
        "13.435M \u2192 22.208M (+8.774M, +65.3%)"]
    assert row_for(md, "vision_transformer/vit-base-p16_pt-64xb64_in1k-224.py")[1:] == [
        "224\u00b2", "17.582G", "91.234M \u2192 88.517M (\u22122.717M, \u22123.0%)", "23.895M"]
    # the edited config leads the ones inheriting the same change; biggest change first, ViT last
    order = [r[0] for r in table_rows(md) if "<br>" in r[0] or r[0].startswith("<code>")]
    assert "resnet50_8xb32_in1k" in order[0] and "fp16" in order[1] and "vit" in order[3]
    assert "inherits <code>resnet/resnet50_8xb32_in1k.py</code>" in row_for(md, "resnet/resnet50_8xb32-fp16_in1k.py")[0]
    assert "base <code>3a4af77</code> (merge-base with <code>main</code>) \u2192 head <code>d02fa10</code>" in md
    assert "mcx-review 0.1.0 \u00b7 torch 2.14.1 \u00b7 fvcore 0.1.5.post20221221" in md


def test_markdown_module_tables():
    md = render_markdown(DEMO)
    # identical per-module figures (the inheritor) share one folded table
    assert md.count("<details><summary>") == 4  # resnet pair, convnext, vit, could-not-count fold
    assert "<code>resnet/resnet50_8xb32_in1k.py</code> by module \u00b7 same for " \
           "<code>resnet/resnet50_8xb32-fp16_in1k.py</code>" in md
    resnet = md[md.index("<code>resnet/resnet50_8xb32_in1k.py</code> by module"):]
    rows = {r[0]: r[1:] for r in table_rows(resnet[:resnet.index("</details>")])}
    assert rows["backbone"] == ["4.109G \u2192 7.832G (+3.722G, +90.6%)", "23.508M \u2192 42.5M (+18.992M, +80.8%)",
                                "11.114M \u2192 16.232M (+5.118M, +46.0%)"]
    assert rows["neck"] == ["0.1M", "0", "0"]
    vit_head = [r[1:] for r in table_rows(md) if r[0] == "head" and "\u22122.717M" in r[2]]
    assert vit_head == [["\u2013", "5.435M \u2192 2.718M (\u22122.717M, \u221250.0%)", "\u2013"]]
    # model order, though the report's JSON had sorted keys
    section = md[md.index("resnet50_8xb32_in1k.py</code> by module"):]
    assert section.index("| backbone") < section.index("| neck") < section.index("| head")


def test_markdown_every_status_and_problem():
    only_head = stats((224, 224), 100, 10, 5, {"backbone": (100, 10, 5, True), "extra": (7, 3, 1, True)},
                      forward="tensor", uncalled=["backbone.aux"])
    r = report(
        entry("configs/new/added.py", "added", None, R50),
        entry("configs/old/removed.py", "removed", CNX224, None),
        entry("configs/resnet/renamed.py", "renamed", R50, R50, old_path="configs/resnet/before.py"),
        entry("configs/x/broken_head.py", "error", R50, None,
              errors=[{"side": "head", "message": "KeyError: 'ResNeXt50' is not in the mmcls::model registry"}]),
        entry("configs/x/fixed.py", "error", None, R101, errors=[{"side": "base", "message": "SyntaxError: bad"}]),
        entry("configs/x/mods.py", "changed", R50, only_head,
              warnings=[{"side": "base", "message": "fvcore could not count: aten::add_ \u00d716"},
                        {"side": "base", "message": "slow"}, {"side": "head", "message": "slow"}]),
        entry("configs/x/same.py", "unchanged", R50, R50, reasons=["uses code in mmcls/models/backbones/resnet.py"]),
        head_kind="index", shape=[256, 320])
    md = render_markdown(r)
    assert md.startswith("### Model complexity: 1 config changed, 1 renamed, 1 added, 1 removed, 1 fixed, "
                         "1 could not be counted \u00b7 largest FLOPs change ")
    assert "\u274c 1 failing" in md
    assert row_for(md, "new/added.py")[1:] == ["224\u00b2", "4.109G", "25.557M", "11.114M"]
    assert "added" in row_for(md, "new/added.py")[0]
    assert row_for(md, "old/removed.py")[2] == "4.47G"
    assert "renamed from <code>resnet/before.py</code>" in row_for(md, "resnet/renamed.py")[0]
    broken = row_for(md, "x/broken_head.py")
    assert broken[0].startswith("\u274c ") and broken[2] == "4.109G \u2192 \u2717" and "fails at head" in broken[0]
    assert row_for(md, "x/fixed.py")[2] == "\u2717 \u2192 7.832G"
    assert table_rows(md)[1][0].startswith("\u274c ")  # failures lead the table
    assert "forward(mode='tensor')" in row_for(md, "x/mods.py")[0] and "measured on <code>forward(mode=" in md
    mods = {r[0]: r[1:] for r in table_rows(md) if len(r) == 4}
    assert mods["extra <sub>(head only)</sub>"] == ["7", "3", "1"]
    assert mods["neck <sub>(base only)</sub>"] == ["0.1M", "0", "0"]
    assert mods["head <sub>(base only)</sub>"] == ["\u2013", "2.049M", "\u2013"]
    assert ("\u274c <code>x/broken_head.py</code> **fails at head**: <code>KeyError: &#39;" not in md)  # no quote escaping
    assert "**fails at head**: <code>KeyError: 'ResNeXt50' is not in the mmcls::model registry</code>" in md
    assert "<code>x/fixed.py</code> failed at base (the change fixes it): <code>SyntaxError: bad</code>" in md
    assert "<code>aten::add_</code> \u00d716 \u2192 \u00d733" not in md  # mods.py's head has no such op
    assert "<code>x/mods.py</code> ops not counted: <code>aten::add&#95;</code> \u00d716 (base only), " \
           "<code>aten::max_pool2d</code> \u00d71 (base only)" in md
    assert "<code>x/same.py</code> ops" not in md  # an unchanged config's old story is not this change's
    assert "<code>x/mods.py</code> modules never called (head): <code>backbone.aux</code>" in md
    assert "<code>x/mods.py</code> warning (base and head): <code>slow</code>" in md
    assert "fvcore could not count" not in md  # the derived warning repeats the ops line
    assert "<details><summary>1 unchanged config</summary>" in md
    assert "- <code>x/same.py</code> \u00b7 224\u00b2 \u00b7 4.109G FLOPs \u00b7 25.557M params \u00b7 uses code in " \
           "<code>mmcls/models/backbones/resnet.py</code>" in md
    assert "head the index (staged changes) on <code>d02fa10</code>" in md
    assert "Input forced to 256\u00d7320." in md


def test_markdown_budgets():
    fail = {"rule": "flops growth", "metric": "flops", "module": None, "level": "fail", "limit": "+5%",
            "value": 7831921664, "base": 4109464576, "message": "ask @perf-team first"}
    warn = {"rule": "backbone params", "metric": "params", "module": "backbone", "level": "warn", "limit": "40M",
            "value": 42500160, "base": None, "message": None}
    md = render_markdown(report(entry(CONVNEXT, "changed", CNX224, CNX288, budgets=[warn]),
                                entry(RESNET, "changed", R50, R101, budgets=[fail])))
    assert row_for(md, "resnet/resnet50_8xb32_in1k.py")[0].startswith("\u274c ")
    assert row_for(md, "convnext/convnext-tiny_32xb128_in1k.py")[0].startswith("\u26a0\ufe0f ")
    section = md[md.index("#### Budgets"):].split("\n\n")[1].splitlines()
    assert section == [
        "- \u274c **fail** <code>resnet/resnet50_8xb32_in1k.py</code>: FLOPs 4.109G \u2192 7.832G (+3.722G, +90.6%), "
        "limit <code>+5%</code> (rule <code>flops growth</code>): ask @\u2060perf-team first",
        "- \u26a0\ufe0f warn <code>convnext/convnext-tiny_32xb128_in1k.py</code>: params of <code>backbone</code> 42.5M, "
        "limit <code>40M</code> (rule <code>backbone params</code>)"]


def _parsed(md):
    return MD.render(md)


def test_markdown_escapes_hostile_text():
    hostile_stats = stats((224, 224), 5, 5, 5, {"back|bone <b>*x*</b> @user `": (5, 5, 5, True)},
                          ops={"aten::evil|op<script>": 2})
    message = "Traceback:\n  File \"x\", line 1\n| boom | <img src=x> @octocat ```code``` [click](http://e.x)"
    r = report(entry(HOSTILE, "error", hostile_stats, None, errors=[{"side": "head", "message": message}],
                     reasons=[f"inherits {HOSTILE}", "weird <b>reason</b> @someone"],
                     warnings=[{"side": "base", "message": "@team look\n| x |"}]),
               entry(RESNET, "changed", R50, R101))
    md = render_markdown(r)
    # every table row keeps its column count: nothing in the text split a cell
    for row in table_rows(md):
        assert len(row) in (4, 5), row
    assert len([row for row in table_rows(md) if len(row) == 5]) == 3  # header + 2 configs
    out = _parsed(md)
    tags = set(re.findall(r"</?([a-zA-Z0-9]+)", out))
    assert tags <= ALLOWED_TAGS | {"h3", "h4", "p", "table", "thead", "tbody", "tr", "th", "td", "ul", "li",
                                   "strong"}, tags
    assert set(re.findall("<strong>(.*?)</strong>", out)) == {"model", "fails at head"}  # none from the text
    assert "`" not in md  # no code span can be opened or closed by the text
    # every @ either sits in a code element (GitHub does not mention there) or is broken by a word joiner
    outside_code = re.sub(r"<code>.*?</code>", "", out, flags=re.S)
    assert not re.search(r"@(?!\u2060)", outside_code)
    # the code spans give back the text exactly, newlines shown as a mark
    spans = [html.unescape(s) for s in re.findall(r"<code>(.*?)</code>", out, flags=re.S)]
    assert "a|b/<img src=x onerror=alert(1)>*x* _y_ `tick` ``` @octocat [l](http://e.x) &amp; ~~s~~ $m$ #12 \u21b5 " \
           "line2.py" in spans
    assert "aten::evil|op<script>" in spans
    assert any(s.startswith("Traceback: \u21b5   File \"x\"") and "<img src=x> @octocat ```code```" in s for s in spans)


def test_escape_helpers():
    assert esc("a_b *c* @d #1 <e>") == "a_b &#42;c&#42; @\u2060d #\u20601 &#60;e&#62;"
    assert code("x`y|z") == "<code>x&#96;y&#124;z</code>"
    assert code("_private") == "<code>&#95;private</code>" and code("snake_case") == "<code>snake_case</code>"


def test_markdown_empty_and_all_unchanged():
    empty = render_markdown(report())
    assert empty.startswith("### Model complexity: no config changes")
    assert len(empty) < 600 and "<table" not in _parsed(empty)
    same = render_markdown(report(entry(RESNET, "unchanged", R50, R50)))
    assert same.startswith("### Model complexity: no change (1 config reviewed, all unchanged)")
    assert "| config |" not in same


def _big_report(n_changed, n_unchanged):
    configs = []
    for i in range(n_changed):
        head = dict(R101, flops=R101["flops"] + i * 10 ** 7)
        configs.append(entry(f"configs/group{i % 7}/model_{i:05d}.py", "changed", R50, head,
                             reasons=[f"inherits configs/_base_/models/base_{i % 3}.py"],
                             warnings=[{"side": "head", "message": f"warning number {i}"}]))
    configs += [entry(f"configs/same/cfg_{i:05d}.py", "unchanged", R50, R50) for i in range(n_unchanged)]
    return report(*configs)


STAGES = ("Per-module tables left out", "the list is left out to fit GitHub", "with ops fvcore did not count",
          "more changed config(s) left out of the table")


def test_markdown_truncation_order_keeps_totals():
    r = _big_report(40, 3000)
    full = render_markdown(r, max_chars=10 ** 8)
    assert len(full) > 65536 and not any(s in full for s in STAGES)
    seen = set()
    for limit in range(len(full) - 1, 3000, -len(full) // 60):
        md = render_markdown(r, max_chars=limit)
        assert len(md) <= limit
        cut = [s in md for s in STAGES]
        stage = max((i for i, c in enumerate(cut) if c), default=-1)
        seen.add(stage)
        if stage >= 1:  # the unchanged list goes only after every per-module table
            assert "by module" not in md
        if stage >= 2:  # could-not-count details go only after the unchanged list
            assert "cfg_00000.py" not in md
        if stage < 3:  # the totals table stays whole until everything else is gone
            assert sum(1 for row in table_rows(md) if len(row) == 5) == 41
        if 0 <= stage < 1:
            assert "cfg_02999.py" in md and "warning number 39" in md
        assert md.startswith("### Model complexity: 40 configs changed")
        assert md.rstrip().endswith("</sub>")  # the footer survives
    assert {0, 1, 2, 3} <= seen
    # the unchanged list stays as long as the body fits without the per-module tables
    for c in r["configs"]:
        for side in ("base", "head"):
            c[side] = dict(c[side], modules={})
    room = len(render_markdown(r, max_chars=10 ** 8)) + 300
    assert "cfg_02999.py" in render_markdown(_big_report(40, 3000), max_chars=room)


def test_markdown_thousands_of_changed_configs_fit():
    r = _big_report(3000, 2000)
    md = render_markdown(r)
    assert len(md) <= 65536
    assert md.startswith("### Model complexity: 3000 configs changed")
    rows = [row for row in table_rows(md) if len(row) == 5]
    assert 100 < len(rows) < 3001
    assert f"\u2026 and {3001 - len(rows)} more changed config(s) left out of the table" in md
    # the largest changes stay: the table keeps its order
    assert "model_02999.py" in rows[1][0]


# ---------------------------------------------------------------- text

def test_text_plain_and_colour():
    r = report(*DEMO["configs"], entry("configs/x/broken.py", "error", R50, None,
                                       errors=[{"side": "head", "message": "KeyError: 'X'"}]),
               entry("configs/x/same.py", "unchanged", R50, R50))
    plain = render_text(r, color=False)
    assert "\x1b" not in plain
    lines = plain.splitlines()
    assert lines[0] == "mcx-review \u00b7 base 3a4af77 (main) \u2192 head d02fa10 (change)"
    assert lines[1].startswith("4 configs changed, 1 could not be counted \u00b7 largest FLOPs change +90.6% "
                               "(resnet50_8xb32_in1k.py) \u00b7 1")
    assert all(len(line) <= 100 for line in lines)
    row = next(i for i, line in enumerate(lines) if line.startswith("convnext/"))
    assert re.search(r"224\u00b2 \u2192 288\u00b2 +4\.47G \u2192 7\.389G +28\.589M +13\.435M \u2192 22\.208M$", lines[row])
    assert re.search(r"\+2\.919G, \+65\.3% +\+8\.774M, \+65\.3%$", lines[row + 1])
    assert re.search(r"4\.109G \u2192 \u2717", plain)
    assert "1 unchanged: x/same.py" in plain
    assert "errors\n  x/broken.py: fails at head: KeyError: 'X'" in plain
    assert ("\n  resnet/resnet50_8xb32_in1k.py: aten::add_ \u00d716 \u2192 \u00d733, aten::max_pool2d \u00d71\n"
            "    same for 1 more config: resnet/resnet50_8xb32-fp16_in1k.py\n") in plain
    assert "x/same.py:" not in plain
    coloured = render_text(r, color=True)
    assert "\x1b[" in coloured
    assert re.sub(r"\x1b\[[0-9;]*m", "", coloured) == plain


def test_text_hostile_and_empty():
    path = "configs/x/\x1b[31mred[bold]markup[/bold]\nnext.py"
    r = report(entry(path, "changed", R50, R101, warnings=[{"side": "head", "message": "\x1b]0;title\x07 hi"}]))
    for color in (False, True):
        out = render_text(r, color=color)
        assert "\x1b]" not in out and "\x07" not in out and "\x1b[31mred" not in out
    plain = render_text(r, color=False)
    assert "[bold]markup[/bold]" in plain.replace("\n", "")  # shown, not read as markup
    assert "red[bold]" in plain
    empty = render_text(report(), color=False)
    assert "no config changes" in empty and "\x1b" not in empty


def test_text_narrow_terminal_keeps_config_names():
    narrow = render_text(DEMO, color=False, width=60)
    assert all(len(line) <= 60 for line in narrow.splitlines())
    assert "convnext/convnext-tiny_32xb128_in1k.py\n  input       224\u00b2 \u2192 288\u00b2\n" \
           "  FLOPs       4.47G \u2192 7.389G (+2.919G, +65.3%)\n  params      28.589M\n" in narrow
    assert "\x1b[31m(+2.919G, +65.3%)" in render_text(DEMO, color=True, width=60)


def test_wrap_path_breaks_at_separators():
    assert wrap_path("vision_transformer/vit-base-p16_pt-64xb64_in1k-224.py", 28).split("\n") == [
        "vision_transformer/vit-base-", "p16_pt-64xb64_in1k-224.py"]
    assert all(len(x) <= 10 for x in wrap_path("a" * 25 + "/b.py", 10).split("\n"))
    assert wrap_path("short.py", 28) == "short.py"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))


def test_definition_reasons_name_the_definition_and_its_file():
    reason = "uses ResNetV1d (mmpretrain/models/backbones/resnet.py)"
    r = report(entry("configs/resnest/resnest50_32xb64_in1k.py", "changed", R50, R101, reasons=[reason]),
               entry("configs/resnet/resnetv1d50_8xb32_in1k.py", "unchanged", R50, R50,
                     reasons=[reason, "uses code in mmpretrain/models/backbones/resnest.py"]))
    md = render_markdown(r)
    cell = row_for(md, "resnest/resnest50_32xb64_in1k.py")[0]
    named = "uses <code>ResNetV1d</code> (<code>mmpretrain/models/backbones/resnet.py</code>)"
    assert named in cell
    assert named in md.split("unchanged config")[1]
    text = render_text(report(entry("configs/resnest/resnest50_32xb64_in1k.py", "changed", R50, R101,
                                    reasons=[reason, "uses code in mmpretrain/models/backbones/resnest.py"])),
                       color=False, width=100)
    assert "uses ResNetV1d" in text and "(mmpretrain/models/backbones/" in text and "resnet.py) +1 more" in text


def test_the_input_size_rule_is_named_when_it_is_not_the_test_pipeline():
    """A headless config measured at its backbone's img_size says so, in both renderers; a
    review where every size came from a test pipeline adds nothing."""
    sam = "configs/sam/vit-base-p16_sam_headless.py"
    big = {**VIT_B, "input_shape": [3, 1024, 1024], "input_rule": "backbone img_size"}
    small = {**VIT_H, "input_shape": [3, 1024, 1024], "input_rule": "backbone img_size"}
    both = report(entry(sam, "changed", big, small), entry(RESNET, "changed", R50, R101))
    md = render_markdown(both)
    assert "Input size from the backbone's img_size: <code>sam/vit-base-p16_sam_headless.py</code>." in md
    text = render_text(both, color=False, width=200)
    assert "input size from the backbone's img_size: sam/vit-base-p16_sam_headless.py" in text
    plain = report(entry(RESNET, "changed", {**R50, "input_rule": "test pipeline"}, R101))
    assert "Input size from" not in render_markdown(plain)
    assert "input size from" not in render_text(plain, color=False, width=200)


def test_text_groups_identical_changes_and_notes_like_the_markdown():
    """13 configs with the same change (a base file's inheritors): the "where it changed" rows and
    the ops note once, "same for 12 more configs"; a budget typo's warning on all of them once."""
    layer3 = {"module": "backbone.layer3", "base": {"flops": 1469000000, "params": 7098000, "activations": 2158000},
              "head": {"flops": 5191000000, "params": 26090000, "activations": 7276000}}
    typo = "budget rule 'backbone.layr3': no module of that name"
    names = [f"configs/resnet/resnet50_v{i:02d}.py" for i in range(13)]
    configs = [{**entry(n, "changed", R50, R101, warnings=[{"side": "head", "message": typo}]),
                "where": {"rows": [layer3], "more": 0}} for n in names]
    configs += [entry(f"configs/x/broken{i}.py", "error", R50, None, errors=[{"side": "head", "message": "KeyError: 'X'"}])
                for i in range(3)]
    configs.append({**entry(CONVNEXT, "changed", CNX224, CNX288), "where": {"rows": [{**layer3, "module": "x"}],
                                                                          "more": 0}})
    plain = render_text(report(*configs), color=False, width=200)
    where = plain[plain.index("where it changed\n"):plain.index("not counted\n")]
    assert where.count("backbone.layer3") == 1
    assert ("resnet/resnet50_v00.py \u00b7 same for 12 more configs: resnet/resnet50_v01.py, "
            "resnet/resnet50_v02.py, resnet/resnet50_v03.py +9 more\n") in where
    assert "convnext/convnext-tiny_32xb128_in1k.py\n" in where  # different rows: its own group
    assert plain.count(typo) == 1
    assert plain.count("aten::add_ \u00d716 \u2192 \u00d733") == 1
    assert "  same for 12 more configs: resnet/resnet50_v01.py" in plain[plain.index("warnings\n"):]
    assert "errors\n  x/broken0.py: fails at head: KeyError: 'X'\n    same for 2 more configs: x/broken1.py, " \
        "x/broken2.py\n" in plain
    assert len(plain.splitlines()) <= 56  # the table (2 lines a config, 3 for a failure) + one of each note
