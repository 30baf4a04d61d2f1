"""One literal-prefix helper where three disagreed (issue 14): the edge cases, decided once."""
import pytest

from mcx_review.globs import excluded, glob_match, literal_dir, literal_dirs, under


@pytest.mark.parametrize("pattern, directory", [
    ("configs/**/*.py", "configs"),          # the default: all three agreed
    ("configs/resnet/*.py", "configs/resnet"),
    ("configs/resnet/r50.py", "configs/resnet"),  # a literal file: its directory (review kept the file)
    ("configs/resnet", "configs"),           # a literal last component names the match, not a dir (metafile kept it)
    ("*.py", ""),                            # top level: the whole repository
    ("**/*.py", ""),
    ("./configs//x/*.py", "configs/x"),      # './' and '//' are not components (review kept '.')
    ("/configs/*.py", "configs"),            # a leading '/' is repo-relative (review kept '/')
    ("con*/a/*.py", ""),
])
def test_literal_dir(pattern, directory):
    assert literal_dir(pattern) == directory


def test_every_match_lies_under_the_literal_dir():
    paths = ["configs/resnet/r50.py", "configs/x/a.py", "configs/resnet", "top.py", "a/b/c.py"]
    for pattern in ["configs/**/*.py", "configs/resnet/r50.py", "configs/resnet", "*.py", "./configs//x/*.py"]:
        for p in paths:
            if glob_match(p, pattern):
                assert under(p, literal_dir(pattern)), (p, pattern)


def test_literal_dirs_once_each_sorted():
    assert literal_dirs(["configs/**/*.py", "configs/**/*.yml", "b/*.py", "*.py"]) == ["", "b", "configs"]


def test_glob_and_exclude():
    assert glob_match("configs/a/b/c.py", "configs/**/*.py") and glob_match("configs/c.py", "configs/**/*.py")
    assert not glob_match("configsx/c.py", "configs/**/*.py")
    assert excluded("configs/_base_/models/r.py", ["**/_base_"]) and not excluded("configs/a.py", ["**/_base_"])
    assert under("configs/a.py", "configs") and not under("configsx/a.py", "configs") and under("x", "")
