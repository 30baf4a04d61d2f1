"""Revisions and changed files on real repositories: base...head semantics, renames, the index,
the working tree, shallow clones."""
import subprocess
import sys

import pytest
from helpers import ConfigRepo

from mcx_review.select import revisions as gitrev

RESNET = "configs/resnet/resnet50_8xb32_in1k.py"
VIT = "configs/vision_transformer/vit-base-p16_pt-64xb64_in1k-224.py"


@pytest.fixture
def repo(tmp_path):
    return ConfigRepo(tmp_path / "r")


def changes(repo, base="main", head=None, kind="commit"):
    r = gitrev.open_repo(repo.root)
    revs = gitrev.resolve_revisions(r, base, head, kind)
    return revs, sorted(gitrev.changed_files(r, revs), key=lambda c: c.path)


def test_base_is_the_merge_base_so_later_main_commits_are_not_blamed(repo):
    fork_point = repo.repo.head.commit.hexsha
    repo.branch("pr")
    repo.edit(RESNET, "model = dict(backbone=dict(depth=101))")
    repo.commit("pr change")
    repo.checkout("main")
    repo.edit(VIT, "# landed on main after the branch point")
    repo.commit("main moves on")
    revs, found = changes(repo, "main", "pr")
    assert revs.base_sha == fork_point
    assert [(c.status, c.path) for c in found] == [("M", RESNET)]


def test_rename_add_delete_are_kept_as_such(repo):
    repo.branch("pr")
    old = "configs/resnet/resnet18_8xb32_in1k.py"
    (repo.path(old)).rename(repo.path("configs/resnet/resnet18_renamed.py"))
    repo.path("configs/resnet/resnet34_8xb32_in1k.py").unlink()
    repo.write("configs/resnet/resnet_new.py", "_base_ = ['./resnet50_8xb32_in1k.py']\n")
    repo.commit()
    _, found = changes(repo, "main", "pr")
    got = {(c.status, c.path, c.old_path) for c in found}
    assert got == {
        ("R", "configs/resnet/resnet18_renamed.py", old),
        ("D", "configs/resnet/resnet34_8xb32_in1k.py", None),
        ("A", "configs/resnet/resnet_new.py", None),
    }


def test_staged_head_is_the_index_and_worktree_includes_untracked(repo):
    repo.edit(RESNET, "model = dict(backbone=dict(depth=101))")
    repo.repo.git.add(RESNET)
    repo.edit(VIT, "# not staged")
    repo.write("configs/resnet/untracked.py", "_base_ = ['./resnet50_8xb32_in1k.py']\n")
    revs, staged = changes(repo, "HEAD", None, "index")
    assert revs.head_kind == "index" and revs.head_sha == repo.repo.head.commit.hexsha
    assert [c.path for c in staged] == [RESNET]
    _, worktree = changes(repo, "HEAD", None, "worktree")
    assert [c.path for c in worktree] == sorted(["configs/resnet/untracked.py", RESNET, VIT])
    r = gitrev.open_repo(repo.root)
    with gitrev.materialise(r, revs, "head") as tree:
        assert "depth=101" in (tree / RESNET).read_text()  # staged content
        assert "# not staged" not in (tree / VIT).read_text()
        kept = tree
    assert not kept.exists(), "the exported index is removed afterwards"


def test_materialised_trees_are_removed_even_on_error(repo):
    r = gitrev.open_repo(repo.root)
    revs = gitrev.resolve_revisions(r, "HEAD", None, "commit")
    with pytest.raises(RuntimeError):
        with gitrev.materialise(r, revs, "base") as tree:
            assert (tree / RESNET).is_file()
            raise RuntimeError("boom")
    assert not tree.exists()


def test_select_files_narrows_like_git_pathspecs(repo):
    """Issue 10 changed this: a named file that did not change is no longer reviewed as if
    modified; it comes back unmatched (the review warns about it). Directories select what is
    under them; a path outside the repository is a PathError."""
    repo.edit(RESNET, "model = dict(backbone=dict(depth=101))")
    repo.edit(VIT, "# edit")
    _, found = changes(repo, "HEAD", None, "worktree")
    kept, unmatched = gitrev.select_files(
        found, [str(repo.path(RESNET)), "configs/_base_/models/resnet50.py"], repo.root)
    assert [(c.status, c.path) for c in kept] == [("M", RESNET)]
    assert unmatched == ["configs/_base_/models/resnet50.py"]
    kept, unmatched = gitrev.select_files(found, ["configs/vision_transformer", "configs/resnet/x/.."], repo.root)
    assert {c.path for c in kept} == {RESNET, VIT} and unmatched == []
    with pytest.raises(gitrev.PathError, match="outside the repository"):
        gitrev.select_files(found, [str(repo.root.parent / "elsewhere.py")], repo.root)


def test_unknown_base_is_a_clear_git_error(repo):
    r = gitrev.open_repo(repo.root)
    with pytest.raises(gitrev.GitError, match="'nope' is not in this repository"):
        gitrev.resolve_revisions(r, "nope", None, "commit")


def test_shallow_clone_says_to_fetch_history_and_exits_2(repo, tmp_path):
    repo.branch("pr")
    repo.edit(RESNET, "model = dict(backbone=dict(depth=101))")
    repo.commit()
    base_sha = repo.repo.commit("main").hexsha
    repo.checkout("main")
    repo.edit(VIT, "# main moves on")
    repo.commit()
    clone = tmp_path / "shallow"
    subprocess.run(["git", "clone", "-q", "--depth", "1", "--branch", "pr", f"file://{repo.root}", str(clone)],
                   check=True)
    proc = subprocess.run([sys.executable, "-m", "mcx_review", "--base", base_sha, "--repo", str(clone)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "fetch-depth: 0" in proc.stderr and "shallow" in proc.stderr
    assert "Traceback" not in proc.stderr
