"""Metafile cross-check, ``mcx-review metafile`` and where-it-changed, on mmpretrain 1.2.0's shipped
configs and metafiles in real git repositories, through the real CLI."""
import json
import shutil
import subprocess
import sys

import pytest
from helpers import ConfigRepo, shipped

from mcx_review.metafile import files as metafile_files
from mcx_review.report.validate import validate
from mcx_review.units import format_count

R18 = "configs/resnet/resnet18_8xb16_cifar10.py"
R34 = "configs/resnet/resnet34_8xb16_cifar10.py"
R50 = "configs/resnet/resnet50_8xb16_cifar10.py"
R101 = "configs/resnet/resnet101_8xb16_cifar10.py"
R101_NEW = "configs/resnet/resnet101_cifar10_renamed.py"
ADDED = "configs/resnet/resnet18_wide_cifar10.py"
METAFILE = "configs/resnet/metafile.yml"
VIT384 = "configs/vision_transformer/vit-base-p16_64xb64_in1k-384px.py"
DEIT384 = "configs/deit/deit-base_16xb32_in1k-384px.py"


def run(repo, *args, cache=None):
    extra = ["--cache-dir", str(cache)] if cache else ["--no-cache"]
    return subprocess.run([sys.executable, "-m", "mcx_review", *args, *extra], cwd=repo.root,
                          capture_output=True, text=True)


@pytest.fixture(scope="module")
def pr(tmp_path_factory):
    """main: mmpretrain's configs, model-index.yml, and ResNet-34/CIFAR's entry already wrong.
    pr: ResNet-18/CIFAR made a ResNet-34 (its entry goes stale), ResNet-50/CIFAR made a ResNet-101
    (layer3 grows), ResNet-34/CIFAR made a ResNet-50 (legacy entry), ResNet-101/CIFAR renamed (its
    entry still names the old path), a config added (no entry)."""
    root = tmp_path_factory.mktemp("metafile") / "repo"
    repo = ConfigRepo(root, pkg="mmpretrain")
    shutil.copy(shipped("mmpretrain").parent / "model-index.yml", root / "model-index.yml")
    repo.replace(METAFILE, "      FLOPs: 1160000000\n      Parameters: 21280000",
                 "      FLOPs: 990000000  # hand-made\n      Parameters: 99990000")
    repo.commit("model index; a wrong entry")
    repo.branch("pr")
    repo.edit(R18, "model = dict(backbone=dict(depth=34))")
    repo.edit(R50, "model = dict(backbone=dict(depth=101))")
    repo.edit(R34, "model = dict(backbone=dict(depth=50))")
    repo.repo.git.mv(R101, R101_NEW)
    repo.write(ADDED, "_base_ = ['./resnet18_8xb16_cifar10.py']\nmodel = dict(head=dict(num_classes=20))\n")
    repo.commit("deeper cifar resnets, a rename, a new config")
    cache = tmp_path_factory.mktemp("cache")
    out = root.parent / "report.json"
    proc = run(repo, "--base", "main", "--head", "pr", "--format", "json", "-o", str(out), "--markdown",
               str(root.parent / "report.md"), cache=cache)
    assert proc.returncode == 0, proc.stderr  # stale entries warn by default
    report = json.loads(out.read_text())
    return repo, report, {c["path"]: c for c in report["configs"]}, cache


def test_report_verdicts(pr):
    _, report, by_path, _ = pr
    assert not validate(report)
    stale = by_path[R18]["metafile"]
    assert stale["status"] == "stale" and stale["level"] == "warn"
    checks = {c["metric"]: c for c in stale["entries"][0]["checks"]}
    # ResNet-18 on CIFAR-10 publishes 560000000 (2 significant digits): it agreed at base ...
    assert checks["flops"]["published"] == "560000000" and checks["flops"]["unit"] == 10 ** 7
    assert checks["flops"]["base_agrees"] is True and checks["params"]["base_agrees"] is True
    assert round(by_path[R18]["base"]["flops"], -7) == 560000000 != by_path[R18]["base"]["flops"]
    # ... and is stale now
    assert checks["flops"]["agrees"] is False and checks["flops"]["measured"] == by_path[R18]["head"]["flops"]
    assert by_path[R34]["metafile"]["status"] == "legacy"
    renamed = by_path[R101_NEW]
    assert renamed["status"] == "renamed"
    assert renamed["metafile"]["note"] == f"the entry still names the old path {R101}"
    assert renamed["metafile"]["entries"][0]["config"] == R101
    assert by_path[ADDED]["status"] == "added" and by_path[ADDED]["metafile"]["status"] == "no entry"


def test_markdown_shows_metafile_and_where(pr):
    repo, _, by_path, _ = pr
    md = (repo.root.parent / "report.md").read_text()
    measured = format_count(by_path[R18]["head"]["flops"])
    assert md.splitlines()[0].endswith("\u26a0\ufe0f metafile stale for 2")  # R18 and R50 (its params)
    assert "#### Metafiles" in md
    assert ("- \u26a0\ufe0f <code>resnet/resnet18_8xb16_cifar10.py</code>: metafile stale "
            "(<code>resnet18_8xb16_cifar10</code> in <code>resnet/metafile.yml</code>): FLOPs: metafile says 0.56G, "
            f"measured {measured}") in md
    assert "<code>resnet/resnet34_8xb16_cifar10.py</code>: metafile already off at base (not this change)" in md
    assert "- <code>resnet/resnet18_wide_cifar10.py</code>: no metafile entry" in md
    assert ("- <code>resnet/resnet101_cifar10_renamed.py</code>: metafile agrees (<code>resnet101_8xb16_cifar10</code> "
            "in <code>resnet/metafile.yml</code>): the entry still names the old path") in md


def test_drill_down_names_the_stage_that_grew(pr):
    _, _, by_path, _ = pr
    where = by_path[R50]["where"]
    assert [r["module"] for r in where["rows"]] == ["backbone.layer3"]
    layer3 = where["rows"][0]
    assert layer3["head"]["flops"] - layer3["base"]["flops"] == by_path[R50]["delta"]["flops"]
    for side in ("base", "head"):
        assert "tree" not in by_path[R50][side]  # the report keeps rows, not the whole tree
    # ResNet-18 -> 34 adds blocks to every stage: each stage is its own row, largest FLOPs change first
    rows = by_path[R18]["where"]["rows"]
    assert sorted(r["module"] for r in rows) == [f"backbone.layer{i}" for i in range(1, 5)]
    changes = [r["head"]["flops"] - r["base"]["flops"] for r in rows]
    assert changes == sorted(changes, reverse=True)


def test_depth_table_and_text_output(pr):
    repo, _, _, cache = pr
    proc = run(repo, "--base", "main", "--head", "pr", "--depth", "2", R50, cache=cache)
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout  # not a terminal: plain text, lines broken only between entries
    assert "where it changed\n  resnet/resnet50_8xb16_cifar10.py\n    backbone.layer3 FLOPs 0.48G \u2192 1.695G" in text
    assert "modules\n  resnet/resnet50_8xb16_cifar10.py (to depth 2)\n    backbone " in text
    assert "\n    backbone.layer4 " in text and "backbone.layer3.0" not in text
    assert "0 analysed" in proc.stderr  # one trace per side served everything, from the cache


def test_metafile_fail_level_fails_stale_not_legacy(pr, tmp_path):
    repo, _, _, cache = pr
    settings = tmp_path / "strict.yaml"
    settings.write_text("metafile: fail\n")
    out = tmp_path / "r.json"
    proc = run(repo, "--base", "main", "--head", "pr", "--config", str(settings), "--format", "json", "-o", str(out),
               cache=cache)
    assert proc.returncode == 1, proc.stderr
    by_path = {c["path"]: c for c in json.loads(out.read_text())["configs"]}
    assert by_path[R18]["metafile"]["level"] == "fail" and by_path[R34]["metafile"]["status"] == "legacy"
    off = tmp_path / "off.yaml"
    off.write_text("metafile: off\n")
    proc = run(repo, "--base", "main", "--head", "pr", "--config", str(off), "--format", "json", "-o", str(out),
               cache=cache)
    assert proc.returncode == 0 and all("metafile" not in c for c in json.loads(out.read_text())["configs"])


def test_check_and_write_round_trip_the_real_metafile(pr):
    repo, _, by_path, cache = pr
    before = (repo.root / METAFILE).read_bytes()
    try:
        check = run(repo, "metafile", "--check", "--base", "main", "--head", "pr", cache=cache)
        assert check.returncode == 1, check.stderr
        measured = format_count(by_path[R18]["head"]["flops"])
        assert (f"{METAFILE}: resnet18_8xb16_cifar10 ({R18}): STALE: FLOPs: metafile says 0.56G, measured {measured}"
                in check.stdout)
        assert f"{METAFILE}: resnet34_8xb16_cifar10 ({R34}): already off at base (not this change)" in check.stdout

        write = run(repo, "metafile", "--write", "--base", "main", "--head", "pr", cache=cache)
        assert write.returncode == 0, write.stderr
        head18 = by_path[R18]["head"]
        assert f"{METAFILE}: resnet18_8xb16_cifar10 FLOPs 560000000 -> {round(head18['flops'], -7)}" in write.stdout
        # ResNet-34's entry was already off at base: not this change's, so not in the user's PR
        assert "resnet34_8xb16_cifar10 FLOPs" not in write.stdout and b"990000000  # hand-made" in \
            (repo.root / METAFILE).read_bytes()
        assert (f"{METAFILE}: resnet34_8xb16_cifar10: left as it is: already off at base, not this change's "
                "(--include-legacy writes it)") in write.stdout
        assert write.stdout.strip().splitlines()[-1].startswith(
            "to verify: mcx-review metafile --check --base main --worktree")
        # the committed head still has the old figures: its check still fails, as the hint says
        assert run(repo, "metafile", "--check", "--base", "main", "--head", "pr", cache=cache).returncode == 1
        worktree = run(repo, "metafile", "--check", "--base", "main", "--worktree", cache=cache)
        assert worktree.returncode == 0, worktree.stdout + worktree.stderr
        legacy = run(repo, "metafile", "--write", "--include-legacy", "--base", "main", "--head", "pr", cache=cache)
        assert legacy.returncode == 0 and "resnet34_8xb16_cifar10 FLOPs 990000000 -> " in legacy.stdout
        after = (repo.root / METAFILE).read_bytes()
        old, new = before.decode().splitlines(keepends=True), after.decode().splitlines(keepends=True)
        assert len(old) == len(new)
        changed = [(a, b) for a, b in zip(old, new) if a != b]
        assert len(changed) == sum(" -> " in line for line in (write.stdout + legacy.stdout).splitlines()) >= 4
        for a, b in changed:  # only the number differs: key, indentation, comment, line end kept
            key = a.split(":")[0]
            assert key.strip() in ("FLOPs", "Parameters") and b.startswith(key + ": ")
            assert a.split("#")[1:] == b.split("#")[1:]
            rest_a, rest_b = a.split(": ", 1)[1], b.split(": ", 1)[1]
            assert rest_a.split()[0].isdigit() and rest_b.split()[0].isdigit()
            assert rest_a.split(None, 1)[1:] == rest_b.split(None, 1)[1:]
        assert b"990000000  # hand-made" not in after and b"  # hand-made\n" in after
        # FILE mode measures the working tree: every rewritten entry agrees now
        again = run(repo, "metafile", "--check", R18, R34, R50, cache=cache)
        assert again.returncode == 0, again.stdout + again.stderr
        assert again.stdout.count(": agrees: ") == 3
        nothing = run(repo, "metafile", "--write", R18, cache=cache)
        assert nothing.returncode == 0 and "nothing to write" in nothing.stdout
        assert (repo.root / METAFILE).read_bytes() == after
    finally:
        (repo.root / METAFILE).write_bytes(before)


def test_published_exact_and_rounded_entries_agree(tmp_path):
    """ViT-B/16 and DeiT-B at 384 px publish fvcore's exact 55538974464; ResNet-18 on CIFAR-10 a
    rounded 560000000 that agrees at its two significant digits."""
    repo = ConfigRepo(tmp_path / "r", pkg="mmpretrain")
    proc = run(repo, "metafile", "--check", VIT384, DEIT384, R18)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    vit = [line for line in lines if f"({VIT384})" in line]
    assert vit == [f"configs/vision_transformer/metafile.yml: vit-base-p16_in21k-pre_3rdparty_in1k-384px ({VIT384}): "
                   "agrees: FLOPs 55538974464 (measured 55538974464), Parameters 86859496 (measured 86859496)"]
    deit = [line for line in lines if f"({DEIT384})" in line]
    assert len(deit) == 1 and "agrees: FLOPs 55538974464 (measured 55538974464)" in deit[0]
    r18 = [line for line in lines if f"({R18})" in line]
    assert len(r18) == 1 and "agrees: FLOPs 560000000 (measured 5" in r18[0]
    measured = int(r18[0].split("(measured ")[1].split(")")[0])
    assert measured != 560000000 and round(measured, -7) == 560000000


def test_unreadable_metafile_is_one_line_and_the_rest_is_checked(tmp_path):
    root = tmp_path / "r"
    (root / "configs" / "a").mkdir(parents=True)
    (root / "configs" / "b").mkdir(parents=True)
    (root / "configs" / "a" / "metafile.yml").write_text("Models:\n  - Name: x\n    Config: [unclosed\n")
    (root / "configs" / "b" / "metafile.yml").write_text(
        "Models:\n  - Name: y\n    Metadata:\n      FLOPs: lots\n      Parameters: 25.56M\n    Config: configs/b/y.py\n")
    index = metafile_files.build_index(root)
    assert len(index.problems) == 1 and index.problems[0].startswith("configs/a/metafile.yml: invalid YAML at line")
    assert index.entries("configs/b/y.py")[0]["flops"] == "lots"
    from mcx_review.metafile.verdicts import verdict
    v = verdict({"flops": 1, "params": 25562345}, None, index.entries("configs/b/y.py"), "warn")
    checks = {c["metric"]: c for c in v["entries"][0]["checks"]}
    assert "is not a count" in checks["flops"]["problem"] and checks["params"]["agrees"] is True


def test_check_json_is_the_zoo_audit(tmp_path):
    """``--check --json FILE``: every entry of the named configs with its verdict, the published and
    measured integers and the input-size rule; a config that cannot be counted is in it with its
    cause; progress on stderr, the text on stdout as without --json."""
    repo = ConfigRepo(tmp_path / "r", pkg="mmpretrain")
    broken = "configs/resnet/resnet152_8xb16_cifar10.py"
    repo.write(broken, "_base_ = ['../_base_/models/resnet152_cifar.py', '../_base_/datasets/cifar10_bs16.py',\n"
                       "          '../_base_/schedules/cifar10_bs128.py', '../_base_/default_runtime.py']\n"
                       "model = dict(backbone=dict(depth=153))\n")
    out = tmp_path / "audit.json"
    proc = run(repo, "metafile", "--check", "--json", str(out), VIT384, R18, broken)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    audit = json.loads(out.read_text())
    assert audit["schema"] == "mcx-review-metafile/1" and audit["tool"]["mmpretrain"] == "1.2.0"
    by_name = {e["name"]: e for e in audit["entries"]}
    vit = by_name["vit-base-p16_in21k-pre_3rdparty_in1k-384px"]
    assert vit["verdict"] == "agrees" and vit["config"] == VIT384
    assert vit["published"]["flops"] == {"text": "55538974464", "value": 55538974464, "unit": 1, "agrees": True,
                                         "problem": None}
    assert vit["measured"] == {"flops": 55538974464, "params": 86859496}
    assert (vit["input_shape"], vit["input_rule"]) == ([3, 384, 384], "test pipeline")
    r18 = by_name["resnet18_8xb16_cifar10"]
    assert r18["published"]["flops"]["unit"] == 10 ** 7 and r18["measured"]["flops"] != 560000000
    assert r18["input_shape"] == [3, 32, 32]
    dead = by_name["resnet152_8xb16_cifar10"]
    assert dead["verdict"] == "not counted" and dead["measured"] == {"flops": None, "params": None}
    assert "153" in dead["error"]
    summary = audit["summary"]
    assert summary["configs"] == 3 and summary["configs_counted"] == 2
    assert summary["verdicts"] == {"agrees": 2, "not counted": 1}
    assert (summary["exact_flops_entries"], summary["exact_flops_agree"]) == (1, 1)
    assert "analysing 3 distinct model(s) (0 base, 3 head)" in proc.stderr
    assert all(f"[{k}/3] head configs/" in proc.stderr for k in (1, 2, 3))
    assert f"head {broken}: error" in proc.stderr
    assert f"({VIT384}): agrees: FLOPs 55538974464" in proc.stdout


REPVGG = "configs/repvgg/repvgg-A0_8xb32_in1k.py"
REPVGG_DEPLOY = "configs/repvgg/repvgg-A0_deploy_in1k.py"


def test_deploy_form_is_counted_and_agrees_with_its_entry(tmp_path):
    """RepVGG-A0 publishes its re-parameterised form: the deploy config's exact 1,360,233,728 FLOPs
    and 8,309,384 params. The training config counts that form too (one more trace, switched) and
    its entry agrees, marked; without the deploy form it read "stale" (1.11x)."""
    repo = ConfigRepo(tmp_path / "r", pkg="mmpretrain")
    out = tmp_path / "audit.json"
    proc = run(repo, "metafile", "--check", "--json", str(out), REPVGG, REPVGG_DEPLOY)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    audit = {e["config"]: e for e in json.loads(out.read_text())["entries"] if e["name"] == "repvgg-A0_8xb32_in1k"}
    train = audit[REPVGG]
    assert train["verdict"] == "agrees" and train["deploy_form"] is True
    assert train["measured_deploy"] == {"flops": 1360233728, "params": 8309384}
    assert train["measured"]["flops"] > 1360233728 * 1.1  # the training form: three branches per block
    assert ("configs/repvgg/metafile.yml: repvgg-A0_8xb32_in1k (configs/repvgg/repvgg-A0_8xb32_in1k.py): "
            "agrees (deploy form): FLOPs 1360233728 (measured 1360233728)") in proc.stdout
    # the deploy config is built deploy=True: one form, equal to the switched one (no entry names it)
    unnamed = {c["config"]: c for c in json.loads(out.read_text())["configs_without_entry"]}
    assert unnamed[REPVGG_DEPLOY]["measured"] == train["measured_deploy"]
    assert "measured_deploy" not in unnamed[REPVGG_DEPLOY]


def test_review_shows_the_deploy_form(tmp_path):
    """A change to RepVGG-A0's config: the row says "deploy form: base -> head" and the JSON carries
    both forms; the metafile entry, agreeing at base in deploy form, goes stale (not legacy)."""
    repo = ConfigRepo(tmp_path / "r", pkg="mmpretrain")
    repo.branch("pr")
    repo.edit(REPVGG, "model = dict(backbone=dict(arch='A1'))")
    repo.commit("A1")
    out = tmp_path / "report.json"
    md = tmp_path / "report.md"
    proc = run(repo, "--base", "main", "--head", "pr", "--format", "json", "-o", str(out), "--markdown", str(md),
               REPVGG)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert not validate(report)
    entry = {c["path"]: c for c in report["configs"]}[REPVGG]
    assert entry["base"]["deploy"]["flops"] == 1360233728
    assert entry["head"]["deploy"]["flops"] > entry["base"]["deploy"]["flops"]
    assert entry["metafile"]["status"] == "stale"
    text = md.read_text()
    assert f"deploy form: 1.36G \u2192 {format_count(entry['head']['deploy']['flops'])}" in text
