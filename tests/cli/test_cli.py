"""The command line as a user meets it (issue 10), always through the real CLI in a subprocess:
FILE arguments as pathspecs, --shape, exit codes when nothing was counted, hints, help, the files
written, and input channels taken from the config."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from reference import get_flops_way
from helpers import LENET, ConfigRepo

R18 = "configs/resnet/resnet18_8xb32_in1k.py"
R34 = "configs/resnet/resnet34_8xb32_in1k.py"
LENET_SHIPPED = "configs/lenet/lenet5_mnist.py"

# A real import failure in the real workers: this directory goes first on PYTHONPATH, and its
# sitecustomize makes `import mmcv` fail as it does where mmcv is not installed.
NO_MMCV = '''import sys


class _NoMmcv:
    def find_spec(self, name, path=None, target=None):
        if name == "mmcv" or name.startswith("mmcv."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, _NoMmcv())
'''


def cli(*args, cwd, env=None):
    return subprocess.run([sys.executable, "-m", "mcx_review", *args], cwd=cwd, capture_output=True,
                          text=True, env=env)


def lines(text):
    return [line for line in text.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def pr_repo(tmp_path_factory):
    """mmcls's shipped configs on main; branch `pr` (checked out) deepens ResNet-18."""
    repo = ConfigRepo(tmp_path_factory.mktemp("pr") / "r")
    repo.branch("pr")
    repo.edit(R18, "model = dict(backbone=dict(depth=34))")
    repo.commit("deeper resnet18")
    return repo


@pytest.fixture
def lenet_repo(tmp_path):
    """A small repository: a grayscale LeNet-5 config whose classifier changes from main to HEAD."""
    repo = ConfigRepo(tmp_path / "r", pkg=None)
    repo.write("configs/lenet.py", LENET.format(n=10))
    repo.commit("lenet")
    repo.write("configs/lenet.py", LENET.format(n=12))
    repo.commit("12 classes")
    return repo


# ---------------------------------------------------------------- 1. FILE arguments

@pytest.mark.parametrize("where, arg", [
    ("configs/resnet", "resnet18_8xb32_in1k.py"),
    ("configs/resnet", "../../configs/resnet/resnet18_8xb32_in1k.py"),
    ("configs", "resnet"),  # a directory selects the changes under it
    (".", R18),
])
def test_file_arguments_are_relative_to_the_current_directory(pr_repo, where, arg):
    proc = cli("--base", "main", "--list", arg, cwd=pr_repo.root / where)
    assert proc.returncode == 0, proc.stderr
    assert lines(proc.stdout) == [f"{R18}  changed"]
    assert "warning" not in proc.stderr


def test_file_arguments_stay_relative_to_the_cwd_with_repo_and_may_be_absolute(pr_repo):
    outside = pr_repo.root.parent
    rel = cli("--repo", str(pr_repo.root), "--base", "main", "--list", f"r/{R18}", cwd=outside)
    assert rel.returncode == 0, rel.stderr
    assert lines(rel.stdout) == [f"{R18}  changed"]
    absolute = cli("--base", "main", "--list", str(pr_repo.root / R18), cwd="/")
    assert absolute.returncode == 2, "no --repo: the cwd / is not a repository"
    absolute = cli("--repo", str(pr_repo.root), "--base", "main", "--list", str(pr_repo.root / R18), cwd="/")
    assert absolute.returncode == 0 and lines(absolute.stdout) == [f"{R18}  changed"]


def test_a_file_outside_the_repository_is_a_usage_error(pr_repo):
    proc = cli("--base", "main", "--list", "../elsewhere.py", cwd=pr_repo.root)
    assert proc.returncode == 2
    assert lines(proc.stderr) == [f"mcx-review: error: FILE ../elsewhere.py: outside the repository {pr_repo.root}"]
    assert proc.stdout == ""


def test_files_not_found_or_not_changed_are_warned_and_not_listed_as_changed(pr_repo):
    proc = cli("--base", "main", "--list", "resnet34_8xb32_in1k.py", "nope.py", cwd=pr_repo.root / "configs/resnet")
    assert proc.returncode == 0, proc.stderr
    assert lines(proc.stdout) == ["no config is affected by this change"]
    assert f"mcx-review: warning: FILE not changed between base (main) and head (HEAD): {R34}; " \
           "nothing reviewed for it" in proc.stderr
    assert "mcx-review: warning: FILE not found at base (main) or head (HEAD): configs/resnet/nope.py; " \
           "nothing reviewed for it" in proc.stderr


# ---------------------------------------------------------------- 2. --shape

@pytest.mark.parametrize("args, message", [
    (["--shape", "224", "224", "3"], "expected H, H W or HxW (integers), got '224 224 3'"),
    (["--shape", "224x"], "expected H, H W or HxW (integers), got '224x'"),
    (["--shape", "224,224"], "expected H, H W or HxW (integers), got '224,224'"),
    (["--shape", "100000"], "sizes must be between 1 and 4096 pixels, got '100000'"),
    (["--shape", "0", "224"], "sizes must be between 1 and 4096 pixels, got '0 224'"),
    (["--shape=224x5000"], "sizes must be between 1 and 4096 pixels, got '224x5000'"),
])
def test_bad_shapes_are_one_line_usage_errors(pr_repo, args, message):
    proc = cli("--base", "main", *args, cwd=pr_repo.root)
    assert proc.returncode == 2
    assert lines(proc.stderr) == [f"mcx-review: error: argument --shape: {message} (see: mcx-review --help)"]
    assert proc.stdout == ""


def test_shape_h_w_keeps_a_following_file_and_hxw_is_the_same(lenet_repo):
    a = cli("--base", "HEAD~1", "--no-cache", "--format", "json", "--shape", "32", "35", "configs/lenet.py",
            cwd=lenet_repo.root)
    assert a.returncode == 0, a.stderr
    report = json.loads(a.stdout)
    assert report["shape"] == [32, 35] and [c["path"] for c in report["configs"]] == ["configs/lenet.py"]
    assert report["configs"][0]["head"]["input_shape"] == [1, 32, 35]
    b = cli("--base", "HEAD~1", "--no-cache", "--format", "json", "--shape", "32x35", cwd=lenet_repo.root)
    assert b.returncode == 0, b.stderr
    assert json.loads(b.stdout)["configs"] == report["configs"]
    (lenet_repo.root.parent / "a.json").write_text(a.stdout)
    merged = lenet_repo.root.parent / "merged.json"
    m = cli("merge", "a.json", "-o", str(merged), cwd=lenet_repo.root.parent)
    assert m.returncode == 0 and lines(m.stderr) == [f"mcx-review: report written to {merged}"]
    assert json.loads(merged.read_text())["configs"] == report["configs"]


# ---------------------------------------------------------------- 3. nothing counted

def test_an_environment_without_mmcv_exits_3_naming_the_package(lenet_repo, tmp_path):
    hide = tmp_path / "no-mmcv"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text(NO_MMCV)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(hide), os.environ.get("PYTHONPATH")])))
    proc = cli("--base", "HEAD~1", "--no-cache", "--json", str(tmp_path / "r.json"), cwd=lenet_repo.root, env=env)
    assert proc.returncode == 3, proc.stderr
    last = lines(proc.stderr)[-1]
    assert last.startswith("mcx-review: error: the analysis environment cannot import mmcv (No module named 'mmcv'")
    assert last.endswith("install it where mcx-review runs, e.g. pip install mmcv-lite (exit 3)")
    (entry,) = json.loads((tmp_path / "r.json").read_text())["configs"]
    assert {e["side"] for e in entry["errors"]} == {"base", "head"}
    assert all("No module named 'mmcv'" in e["message"] for e in entry["errors"]), "a real import failure"


def test_every_config_failing_at_both_sides_exits_3(tmp_path):
    repo = ConfigRepo(tmp_path / "r", pkg=None)
    repo.write("configs/broken.py", "_base_ = ['./missing.py']\n")
    repo.commit("broken")
    repo.write("configs/broken.py", "# still broken\n_base_ = ['./missing.py']\n")
    repo.commit("comment")
    proc = cli("--base", "HEAD~1", "--no-cache", cwd=repo.root)
    assert proc.returncode == 3, proc.stderr
    assert lines(proc.stderr)[-1].startswith(
        "mcx-review: error: nothing was counted: every config under review (1) fails at base and head "
        "alike, e.g. configs/broken.py: config could not be loaded: FileNotFoundError")
    assert "Traceback" not in proc.stderr


def test_a_missing_module_of_the_repository_itself_fails_at_head_with_exit_1(tmp_path):
    repo = ConfigRepo(tmp_path / "r", pkg=None)
    imports = "custom_imports = dict(imports=['mylib.gone'])\n"
    repo.write("mylib/__init__.py", "")
    repo.write("mylib/gone.py", "")
    repo.write("configs/lenet.py", LENET.format(n=10) + imports)
    repo.commit("lenet importing the repository's own mylib.gone")
    repo.path("mylib/gone.py").unlink()
    repo.write("configs/lenet.py", LENET.format(n=12) + imports)
    repo.commit("mylib.gone deleted, still imported")
    proc = cli("--base", "HEAD~1", "--no-cache", "--format", "json", cwd=repo.root)
    assert proc.returncode == 1, proc.stderr
    (entry,) = json.loads(proc.stdout)["configs"]
    assert [e["side"] for e in entry["errors"]] == ["head"] and "mylib.gone" in entry["errors"][0]["message"]
    assert "cannot import" not in proc.stderr


# ---------------------------------------------------------------- 4. hints

def test_on_the_base_branch_with_uncommitted_changes_suggests_worktree(tmp_path):
    repo = ConfigRepo(tmp_path / "r")
    repo.edit(R18, "model = dict(backbone=dict(depth=34))")
    proc = cli("--base", "main", "--list", cwd=repo.root)
    assert proc.returncode == 0, proc.stderr
    assert lines(proc.stdout) == ["no config is affected by this change"]
    assert "mcx-review: warning: main and HEAD are the same commit, so there is no committed change to " \
           "review; to review your uncommitted changes add --worktree (the files on disk) or --staged " \
           "(the index), e.g. mcx-review --base main --worktree" in proc.stderr
    worktree = cli("--base", "main", "--worktree", "--list", cwd=repo.root)
    assert lines(worktree.stdout) == [f"{R18}  changed"] and "warning" not in worktree.stderr


def test_settings_globs_matching_nothing_warn_and_an_uncommitted_settings_file_is_noted(tmp_path):
    repo = ConfigRepo(tmp_path / "r")
    repo.write(".mcx-review.yaml", 'configs: ["configz/**/*.py", "configs/**/*.py"]\n'
                                   'exclude: ["configs/_deprecated/**"]\n'
                                   'shapes:\n  "configs/nothing/*.py": 384\n')
    repo.commit("settings")
    repo.branch("pr")
    repo.edit(R18, "model = dict(backbone=dict(depth=34))")
    repo.commit("deeper")
    repo.edit(".mcx-review.yaml", "shape: 160")
    proc = cli("--base", "main", "--list", cwd=repo.root)
    assert proc.returncode == 0, proc.stderr
    assert lines(proc.stdout) == [f"{R18}  changed"]
    err = proc.stderr
    assert "mcx-review: note: the working tree's .mcx-review.yaml differs from the one in HEAD, which " \
           "applies (commit it, or pass --worktree or --config .mcx-review.yaml)" in err
    for key, glob in (("configs", "configz/**/*.py"), ("exclude", "configs/_deprecated/**"),
                      ("shapes", "configs/nothing/*.py")):
        assert f"mcx-review: warning: .mcx-review.yaml: {key}: '{glob}' matches no config" in err
    assert "'configs/**/*.py' matches" not in err


# ---------------------------------------------------------------- 5. help and files written

def test_top_level_help_shows_the_commands_then_the_core_review_options(tmp_path):
    top = cli("--help", cwd=tmp_path)
    review = cli("review", "--help", cwd=tmp_path)
    assert top.returncode == review.returncode == 0
    assert top.stdout != review.stdout
    for text in ("usage: mcx-review [COMMAND] [options] [FILE ...]", "--shape H [W]", "--worktree", "--staged",
                 "--json PATH", "relative to\n", "  demo ", "  comment ", "  merge ", "  metafile ", "exit codes:",
                 "  3  nothing was counted"):
        assert text in top.stdout, text
    # commands first, then the core review options; PR-comment and performance options not here
    assert top.stdout.index("  metafile ") < top.stdout.index("review options (the default command):") \
        < top.stdout.index("--base REV")
    for text in ("--pr-from-sha", "--bot-login", "--max-worker-rss", "--shard K/N", "--verbose"):
        assert text not in top.stdout, text
    # review --help has everything, grouped: PR-comment options in their own group, last
    for text in ("usage: mcx-review [review] [options] [FILE ...]", "--shape H [W]", "performance and cache:",
                 "--max-worker-rss SIZE", "--timeout SECONDS", "(default 600)", "PR comment:", "--pr-from-sha",
                 "exit codes:"):
        assert text in review.stdout, text
    assert review.stdout.index("--depth N") < review.stdout.index("performance and cache:") \
        < review.stdout.index("PR comment:")
    assert "--verbose" not in review.stdout  # -v did nothing: gone
    meta = cli("metafile", "--help", cwd=tmp_path).stdout
    for text in ("--timeout SECONDS", "(default 600)", "--jobs N", "--json FILE", "--include-legacy", "exit codes:",
                 "1  --check: an entry is stale", "one multiply-add = one FLOP"):
        assert text in meta, text
    assert "exit codes:" in cli("merge", "--help", cwd=tmp_path).stdout
    assert "exit codes:" in cli("comment", "--help", cwd=tmp_path).stdout


@pytest.mark.parametrize("args, message", [
    (["--jobs", "0"], "argument --jobs/-j: expected a whole number of at least 1, got '0'"),
    (["-j", "-2"], "argument --jobs/-j: expected a whole number of at least 1, got '-2'"),
    (["--timeout", "-5"], "argument --timeout: expected seconds, a number above 0, got '-5'"),
    (["--timeout", "nan"], "argument --timeout: expected seconds, a number above 0, got 'nan'"),
    (["metafile", "--check", "--jobs", "0"], "argument --jobs/-j: expected a whole number of at least 1, got '0'"),
    (["metafile", "--check", "--timeout", "0"], "argument --timeout: expected seconds, a number above 0, got '0'"),
    (["comment", "r.json", "--pr", "0"], "argument --pr: expected a whole number of at least 1, got '0'"),
])
def test_counts_and_seconds_must_be_positive(tmp_path, args, message):
    proc = cli(*args, cwd=tmp_path)
    assert proc.returncode == 2
    command = f" {args[0]}" if args[0] in ("metafile", "comment") else ""
    assert lines(proc.stderr) == [f"mcx-review: error: {message} (see: mcx-review{command} --help)"]


def test_help_subcommands_demo_comment_merge(tmp_path):
    demo = cli("demo", "--help", cwd=tmp_path).stdout
    assert "mcx-review-demo.md    the Markdown PR comment" in demo
    assert "mcx-review-demo.json  the JSON report" in demo and "ResNet-50 depth=101" in demo
    comment = " ".join(cli("comment", "--help", cwd=tmp_path).stdout.split())
    assert "validates REPORT.json against the report schema" in comment
    assert "join the JSON reports of --shard runs" in " ".join(cli("merge", "--help", cwd=tmp_path).stdout.split())


def test_lenet_counts_with_its_one_channel_and_every_file_written_is_named(tmp_path):
    """mmpretrain's grayscale LeNet-5 config as shipped: traced at 1x32x32, numbers equal to fvcore
    counted the get_flops.py way on a (1, 1, 32, 32) input (get_flops.py itself fixes 3 channels
    and fails on this model)."""
    repo = ConfigRepo(tmp_path / "r", pkg="mmpretrain")
    repo.branch("pr")
    repo.replace(LENET_SHIPPED, "type='LeNet5', num_classes=10", "type='LeNet5', num_classes=26")
    repo.commit("26 classes")
    out = {name: tmp_path / "out" / name for name in ("report.txt", "report.json", "report.md")}
    proc = cli("--base", "main", "--no-cache", "-o", str(out["report.txt"]), "--json", str(out["report.json"]),
               "--markdown", str(out["report.md"]), cwd=repo.root)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    for what, name in (("report", "report.txt"), ("JSON report", "report.json"), ("Markdown", "report.md")):
        assert f"mcx-review: {what} written to {out[name]}\n" in proc.stderr
    (entry,) = json.loads(out["report.json"].read_text())["configs"]
    assert entry["path"] == LENET_SHIPPED and entry["status"] == "changed"
    assert entry["base"]["input_shape"] == entry["head"]["input_shape"] == [1, 32, 32]
    assert entry["base"]["flops"] == 416_520 and entry["base"]["params"] == 61_706
    ref = get_flops_way(repo.root, LENET_SHIPPED, 32, 32, channels=1)
    assert (entry["head"]["flops"], entry["head"]["params"], entry["head"]["activations"]) == \
        (ref["flops"], ref["params"], ref["activations"])
    assert "32²×1" in out["report.txt"].read_text() and "| 32²×1 |" in out["report.md"].read_text()


def test_demo_writes_markdown_and_json_and_says_where(tmp_path):
    proc = cli("demo", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    md, js = tmp_path / "mcx-review-demo.md", tmp_path / "mcx-review-demo.json"
    assert f"mcx-review: Markdown (the PR comment) written to {md}\n" in proc.stderr
    assert f"mcx-review: JSON report written to {js}\n" in proc.stderr
    assert md.read_text().startswith("### Model complexity")
    assert len(json.loads(js.read_text())["configs"]) == 5


def test_the_readme_documents_exit_code_3():
    readme = " ".join((Path(__file__).resolve().parents[2] / "README.md").read_text().split())
    assert "3 nothing was counted" in readme


def test_the_nothing_counted_line_names_the_package_to_install(tmp_path):
    """The rule on its own (pure): reports as the workers write them."""
    from mcx_review.report.outcome import counted_nothing

    def report(*messages):
        return {"configs": [{"path": f"configs/c{i}.py", "errors": [{"side": "head", "message": m}]}
                            for i, m in enumerate(messages)] + [{"path": "configs/ok.py", "errors": []}]}

    assert counted_nothing(report("tracing extract_feat failed: RuntimeError: x")) is None
    line = counted_nothing(report("default_scope 'mmdet' cannot be imported (ModuleNotFoundError: "
                                  "No module named 'mmdet')"))
    assert line.endswith("e.g. pip install mmdet")
    line = counted_nothing(report("analysis failed: ModuleNotFoundError: No module named 'cv2'"))
    assert line.startswith("the analysis environment cannot import cv2") and line.endswith("pip install opencv-python")
    line = counted_nothing(report("model could not be built: ModuleNotFoundError: No module named 'mmcv._ext'"))
    assert line.startswith("the installed mmcv has no mmcv._ext") and "the full mmcv instead of mmcv-lite" in line
    (tmp_path / "mylib").mkdir()
    assert counted_nothing(report("config could not be loaded: No module named 'mylib.gone'"), tmp_path) is None
