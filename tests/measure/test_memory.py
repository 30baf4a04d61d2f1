"""Worker memory and resource limits: RSS in every reply, workers past the limit replaced between
jobs, a job that passes the limit beside others (or whose worker is killed) run again alone, and
timeouts / killed workers reported as "not counted: limit reached" -- a warning, compared by
category, exit 1 only when the settings ask for it. Real workers, real shipped configs, real
signals."""
import json
import textwrap

import pytest
from helpers import ConfigRepo

from mcx_review.cli import main
from mcx_review.report.compare import SideResult, config_report, head_failed
from mcx_review.measure.memory import GiB, default_max_rss, parse_size, read_rss
from mcx_review.measure.pool import WorkerPool
from mcx_review.render.markdown import render_markdown
from mcx_review.render.text import render_text

CIFAR18 = "configs/resnet/resnet18_8xb16_cifar10.py"
CIFAR34 = "configs/resnet/resnet34_8xb16_cifar10.py"
RESNET50 = "configs/resnet/resnet50_8xb32_in1k.py"


# ---------------------------------------------------------------- sizes and defaults (pure)

@pytest.mark.parametrize("text,size", [("3G", 3 * GiB), ("2500M", 2500 << 20), ("3GiB", 3 * GiB),
                                       ("1.5g", 3 * GiB // 2), ("512K", 512 << 10), ("1000", 1000)])
def test_sizes_read_like_free_does(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "3 gigs", "-1G", "0", "G"])
def test_a_bad_size_is_named(text):
    with pytest.raises(ValueError, match="3G or 2500M"):
        parse_size(text)


def test_a_bad_size_on_the_command_line_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--max-worker-rss", "lots"])
    assert exc.value.code == 2 and "--max-worker-rss" in capsys.readouterr().err


def test_the_default_limit_fits_the_default_workers_on_a_7_gb_runner():
    """2 cores: jobs 2, one pool per revision side, one worker each: 2 workers at once."""
    runner = 7 * 10**9
    limit = default_max_rss(2, total=runner)
    assert 2 * limit <= 0.8 * runner and limit >= 2.5 * GiB
    big = default_max_rss(4, total=16 * 10**9)  # 4 cores, 16 GB: 4 workers
    assert 4 * big <= 0.8 * 16 * 10**9 and big >= 2.9 * GiB
    assert default_max_rss(2, total=256 * GiB) == 3 * GiB  # never more than 3 GiB by default


def test_rss_is_read_from_procfs():
    mine = read_rss()
    assert 10 << 20 < mine["rss"] <= mine["peak_rss"]


# ---------------------------------------------------------------- the pool, real workers

@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return ConfigRepo(tmp_path_factory.mktemp("mem") / "r")


def _analyse(*configs):
    return [{"op": "analyse", "config": c, "shape": None} for c in configs]


@pytest.fixture(scope="module")
def reference(repo):
    """The three jobs answered by one worker with no limit."""
    with WorkerPool(repo.root, size=1) as pool:
        results = pool.run(_analyse(CIFAR18, CIFAR34, CIFAR18), timeout=300)
        assert pool.recycled == 0 and len({j["worker"] for j in pool.jobs}) == 1
    return results


def test_every_reply_carries_the_workers_rss(reference):
    for r in reference:
        assert r["ok"] and 50 << 20 < r["rss"] <= r["peak_rss"]


def test_a_worker_past_the_limit_is_replaced_between_jobs_and_numbers_stay_right(repo, reference):
    with WorkerPool(repo.root, size=1, max_rss=64 << 20) as pool:  # any torch worker holds more
        results = pool.run(_analyse(CIFAR18, CIFAR34, CIFAR18), timeout=300)
        workers = [j["worker"] for j in pool.jobs]
        assert pool.recycled == 3 and all(j.get("recycled") for j in pool.jobs)
    assert len(set(workers)) == 3, f"each job must start in a fresh worker, got {workers}"
    assert not any(r.get("alone") for r in results), "alone, a worker is never stopped for its size"
    assert [r["stats"] for r in results] == [r["stats"] for r in reference]
    assert results[0]["stats"]["flops"] != results[1]["stats"]["flops"]


def test_a_job_past_the_limit_beside_others_runs_again_alone(repo, reference):
    with WorkerPool(repo.root, size=2, max_rss=64 << 20) as pool:
        results = pool.run(_analyse(CIFAR18, CIFAR34), timeout=300)
        jobs = list(pool.jobs)
        assert pool.alone >= 1
    assert [r["stats"] for r in results] == [r["stats"] for r in reference[:2]]
    stopped = [j for j in jobs if j["over_rss"]]
    alone = [j for j in jobs if j["alone"]]
    assert stopped and len(alone) == len(stopped) and all(j["ok"] for j in alone)
    for a in alone:  # nothing else ran while a job ran alone
        others = [j for j in jobs if j is not a]
        assert all(j["end"] <= a["start"] or j["start"] >= a["end"] for j in others), jobs


KILLER = '''
import os
import signal

import torch.nn as nn
from mmengine.model import BaseModule

from mmcls.registry import MODELS

SIGNAL = signal.{signal}


@MODELS.register_module()
class Greedy(BaseModule):
    """Killed from outside while it is built, as the OOM killer would."""

    def __init__(self):
        super().__init__()
        os.kill(os.getpid(), SIGNAL)
        self.conv = nn.Conv2d(3, 8, 3)

    def forward(self, x):
        return (self.conv(x),)
'''


def killer_config() -> str:
    return textwrap.dedent("""
        _base_ = ['../resnet/resnet18_8xb16_cifar10.py']
        custom_imports = dict(imports=['projects.greedy'], allow_failed_imports=False)
        model = dict(backbone=dict(_delete_=True, type='Greedy'), head=dict(in_channels=8))
    """)


def test_a_worker_killed_even_alone_is_a_limit_and_the_rest_is_answered(tmp_path):
    repo = ConfigRepo(tmp_path / "r")
    repo.write("projects/__init__.py", "")
    repo.write("projects/greedy.py", KILLER.format(signal="SIGKILL"))
    repo.write("configs/greedy/greedy.py", killer_config())
    with WorkerPool(repo.root, size=1, max_rss=8 * GiB) as pool:
        killed, ok = pool.run(_analyse("configs/greedy/greedy.py", CIFAR18), timeout=300)
        attempts = [j for j in pool.jobs if j["config"] == "configs/greedy/greedy.py"]
    assert [j["alone"] for j in attempts] == [False, True] and [j["exit_code"] for j in attempts] == [-9, -9]
    assert killed["alone"] and killed["limit"] == {"kind": "killed", "limit": "worker killed (signal 9, out of memory?)"}
    assert "killed (signal 9" in killed["error"]
    assert ok["ok"] and ok["stats"]["flops"] > 0


# ---------------------------------------------------------------- category, not text (pure)

def _entry(base: SideResult, head: SideResult):
    return config_report("configs/x.py", base, head)


def _killed(code: int, level: str = "warn") -> SideResult:
    return SideResult(error=f"the worker process was killed (signal {code}) ... log tail {code}",
                      limit={"kind": "killed", "limit": f"worker killed (signal {code})", "level": level})


def test_limits_compare_by_category_not_text():
    stats = {"input_shape": [3, 32, 32], "flops": 1, "params": 1, "activations": 1, "modules": {}}
    timeout = SideResult(error="analysis took longer than 600 s (--timeout)",
                         limit={"kind": "timeout", "limit": "--timeout 600 s", "level": "warn"})
    assert not head_failed(_entry(_killed(9), _killed(15)))  # "-9 vs -15" is not the change's doing
    assert not head_failed(_entry(_killed(9, "fail"), _killed(15, "fail")))  # same category at both
    assert not head_failed(_entry(timeout, _killed(9, "fail")))  # a timeout and a kill: one category
    assert not head_failed(_entry(SideResult(stats=stats), timeout))  # success at base, timeout at head
    assert head_failed(_entry(SideResult(stats=stats), _killed(9, "fail")))  # unless settings say fail
    assert head_failed(_entry(timeout, SideResult(error="model could not be built: KeyError")))  # real error
    assert not head_failed(_entry(SideResult(error="model could not be built: KeyError"), timeout))
    assert head_failed(_entry(SideResult(error="a"), SideResult(error="b")))  # other errors: by text still


# ---------------------------------------------------------------- end to end, real signals and timeouts

def _review(root, *args):
    out = root.parent / "report.json"
    code = main(["--repo", str(root), "--base", "main", "--head", "pr", "--format", "json", "-o", str(out),
                 "--no-cache", "--markdown", str(root.parent / "report.md"), *args])
    return code, json.loads(out.read_text()), (root.parent / "report.md").read_text()


@pytest.fixture(scope="module")
def killed_repo(tmp_path_factory):
    """base: configs/greedy/both.py kills its worker with SIGKILL; head: with SIGTERM (the code
    changes, so it is reviewed), and a new config head.py kills it too."""
    repo = ConfigRepo(tmp_path_factory.mktemp("killed") / "r")
    repo.write("projects/__init__.py", "")
    repo.write("projects/greedy.py", KILLER.format(signal="SIGKILL"))
    repo.write("configs/greedy/both.py", killer_config())
    repo.commit("greedy model")
    repo.branch("pr")
    repo.write("projects/greedy.py", KILLER.format(signal="SIGTERM"))
    repo.write("configs/greedy/head.py", killer_config())
    repo.write("settings-fail.yaml", "limits: fail\n")
    repo.commit("greedy model, terminated; one more config")
    return repo


@pytest.fixture(scope="module")
def killed_review(killed_repo):
    return _review(killed_repo.root)


def test_killed_workers_are_a_limit_warning_not_a_failure(killed_review):
    code, report, md = killed_review
    configs = {c["path"]: c for c in report["configs"]}
    assert set(configs) == {"configs/greedy/both.py", "configs/greedy/head.py"}
    (err,) = configs["configs/greedy/head.py"]["errors"]
    assert err["side"] == "head"
    assert err["limit"] == {"kind": "killed", "limit": "worker killed (signal 15, terminated)", "level": "warn"}
    both = configs["configs/greedy/both.py"]
    assert [(e["side"], e["limit"]["limit"]) for e in both["errors"]] == [
        ("base", "worker killed (signal 9, out of memory?)"), ("head", "worker killed (signal 15, terminated)")]
    assert code == 0
    assert "not counted at head: limit reached (worker killed (signal 15, terminated))" in md
    assert "not counted at base and head: limit reached" in md
    assert "\u26a0\ufe0f 2 not counted: limit reached" in md and "\u274c" not in md
    text = render_text(report, color=False)
    assert "not counted at head: limit reached" in text and "failing" not in text


def test_the_report_with_limits_is_valid_against_the_schema(killed_review):
    from mcx_review.report.validate import validate

    assert validate(killed_review[1]) == []


def test_limits_fail_in_settings_fails_a_head_only_limit(killed_repo, killed_review):
    code, report, md = _review(killed_repo.root, "--config", str(killed_repo.root / "settings-fail.yaml"))
    configs = {c["path"]: c for c in report["configs"]}
    assert configs["configs/greedy/head.py"]["errors"][0]["limit"]["level"] == "fail"
    assert code == 1
    assert "\u274c" in md and "**not counted at head: limit reached" in md
    # the same category at both sides is not the change's doing, even at level fail
    assert not head_failed(configs["configs/greedy/both.py"])


@pytest.fixture(scope="module")
def timeout_repo(tmp_path_factory):
    repo = ConfigRepo(tmp_path_factory.mktemp("timeout") / "r")
    repo.write("settings-fail.yaml", "limits: fail\n")
    repo.commit("settings")
    repo.branch("pr")
    repo.edit(RESNET50, "model = dict(backbone=dict(depth=101))")
    repo.commit("deeper")
    return repo


def test_a_real_timeout_is_a_limit_warning_at_both_sides(timeout_repo):
    code, report, md = _review(timeout_repo.root, str(timeout_repo.root / RESNET50), "--timeout", "0.2")
    (entry,) = [c for c in report["configs"] if c["path"] == RESNET50]
    assert [(e["side"], e["limit"]) for e in entry["errors"]] == [
        (side, {"kind": "timeout", "limit": "--timeout 0.2 s", "level": "warn"}) for side in ("base", "head")]
    assert code == 0
    assert "not counted at base and head: limit reached (--timeout 0.2 s)" in md
    code, report, _ = _review(timeout_repo.root, str(timeout_repo.root / RESNET50), "--timeout", "0.2",
                              "--config", str(timeout_repo.root / "settings-fail.yaml"))
    assert code == 0, "a limit at base and head is the same category: not the change's doing"


def test_limits_setting_is_warn_by_default_and_checked():
    from mcx_review.settings import SettingsError, load_settings

    assert load_settings(None, text="comment: {tag: x}\n").limits == "warn"
    assert load_settings(None, text="limits: fail\n").limits == "fail"
    with pytest.raises(SettingsError, match=r"^\.mcx-review\.yaml: limits: expected 'warn' or 'fail', got 'error'$"):
        load_settings(None, text="limits: error\n")


def test_renderers_name_each_sides_limit_and_never_call_a_limit_fixed():
    stats = {"input_shape": [3, 224, 224], "forward": "extract_feat", "flops": 4 * 10**9, "params": 25 * 10**6,
             "activations": 11 * 10**6, "modules": {}, "unsupported_ops": {}, "uncalled_modules": []}
    timeout = SideResult(error="analysis took longer than 600 s (--timeout); its worker was stopped",
                         limit={"kind": "timeout", "limit": "--timeout 600 s", "level": "warn"})
    report = {"schema": "mcx-review/1", "base": {"sha": "a" * 40}, "head": {"sha": "b" * 40}, "configs": [
        config_report("configs/a/mixed.py", _killed(9), timeout, reasons=["changed"]),
        config_report("configs/a/base-only.py", timeout, SideResult(stats=stats), reasons=["changed"]),
        config_report("configs/a/evil.py", SideResult(stats=stats),
                      SideResult(error="x", limit={"kind": "killed", "limit": "<img src=x>\x1b[31m", "level": "fail"}),
                      reasons=["changed"])]}
    md = render_markdown(report)
    assert "not counted at base and head: limit reached (base: worker killed (signal 9); head: --timeout 600 s)" in md
    assert "not counted at base: limit reached (--timeout 600 s)" in md
    assert "fixed" not in md, "a side a limit kept from being counted was not broken"
    assert "<img" not in md and "&#60;img" in md  # a report is untrusted in the comment job
    assert "\x1b" not in render_text(report, color=False)
