"""Settings: parsing, defaults, per-config shapes, and one-line errors naming file and key."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from mcx_review.select.config_files import discover_configs
from mcx_review.settings import EXAMPLE, CommentSettings, Settings, SettingsError, load_settings, parse_limit
from helpers import shipped


def test_defaults_without_a_file():
    s = load_settings(None)
    assert s == Settings()
    assert s.configs == ("configs/**/*.py",) and s.exclude == () and s.budgets == ()
    assert s.comment == CommentSettings("update", "default")
    assert s.shape_for("configs/resnet/resnet50_8xb32_in1k.py") is None
    assert load_settings(None, text="") == Settings()
    assert load_settings(None, text="# only a comment\n") == Settings()


def test_metafile_and_drill_down_keys():
    assert (Settings().metafile, Settings().drill_down) == ("warn", 5)
    for text, level in (("metafile: fail\n", "fail"), ("metafile: off\n", "off"), ("metafile: 'off'\n", "off")):
        assert load_settings(None, text=text).metafile == level
    assert load_settings(None, text="drill_down: 0\n").drill_down == 0


def test_example_in_the_docstring_parses_to_what_it_says():
    s = load_settings(None, text=EXAMPLE)
    assert (s.metafile, s.drill_down) == ("warn", 5)
    assert s.exclude == ("configs/_deprecated/**",)
    assert s.comment == CommentSettings("update", "default")
    assert s.impact == "definitions" == Settings().impact
    assert load_settings(None, text="impact: files\n").impact == "files"
    flops, params = s.budgets
    assert (flops.metric, flops.relative, flops.amount, flops.direction, flops.level) == \
        ("flops", True, Fraction(1, 20), 1, "fail")
    assert flops.rule == "flops growth ≤ 5%" and flops.configs == () and flops.module is None
    assert (params.metric, params.relative, params.amount, params.module, params.level) == \
        ("params", False, 25_000_000, "backbone", "warn")
    assert params.rule == "resnet-backbone-params" and params.index == 1
    assert params.applies_to("configs/resnet/resnet50_8xb32_in1k.py")
    assert not params.applies_to("configs/vgg/vgg16_8xb32_in1k.py")


def test_read_from_a_path_and_errors_name_that_path(tmp_path):
    p = tmp_path / "ci" / "mcx.yaml"
    p.parent.mkdir()
    p.write_text("comment:\n  behavior: delete-and-new\n  tag: nightly-gpu\n")
    assert load_settings(p).comment == CommentSettings("delete-and-new", "nightly-gpu")
    p.write_text("comment:\n  behaviour: new\n")
    with pytest.raises(SettingsError) as e:
        load_settings(p)
    assert str(e.value) == f"{p}: comment.behaviour: unknown key (expected one of: behavior, login, tag)"
    with pytest.raises(SettingsError, match=r"missing\.yaml: settings file not found$"):
        load_settings(tmp_path / "missing.yaml")


def test_text_wins_over_path_and_names_the_source():
    with pytest.raises(SettingsError) as e:
        load_settings(Path("/nonexistent"), text="shape: big\n", source="head:.mcx-review.yaml")
    assert str(e.value).startswith("head:.mcx-review.yaml: shape: ")


@pytest.mark.parametrize("value, expected", [
    (224, (224, 224)), ([224], (224, 224)), ([256, 192], (256, 192)), (None, None)])
def test_shape_forms(value, expected):
    text = f"shape: {'null' if value is None else value}\n"
    assert load_settings(None, text=text).shape == expected


def test_per_config_shapes_first_match_wins_and_null_means_pipeline():
    s = load_settings(None, text=(
        "shape: 256\n"
        "shapes:\n"
        "  'configs/vision_transformer/*-384.py': 384\n"
        "  'configs/vision_transformer/**': null\n"
        "  'configs/**/*cifar*': [32, 32]\n"))
    assert s.shape_for("configs/vision_transformer/vit-base-p16_ft-64xb64_in1k-384.py") == (384, 384)
    assert s.shape_for("configs/vision_transformer/vit-base-p16_pt-64xb64_in1k-224.py") is None
    assert s.shape_for("configs/resnet/resnet18_8xb16_cifar10.py") == (32, 32)
    assert s.shape_for("configs/resnet/resnet18_8xb32_in1k.py") == (256, 256)


def test_config_globs_select_shipped_configs(tmp_path):
    """The globs and excludes mean to discovery what they say, on the real shipped tree."""
    s = load_settings(None, text="configs: ['configs/resnet/*.py', 'configs/vgg/*.py']\n"
                                 "exclude: ['configs/**/*cifar*']\n")
    root = shipped("mmcls").parent  # holds configs/
    found = discover_configs(root, s.configs, s.exclude)
    assert "configs/resnet/resnet50_8xb32_in1k.py" in found and "configs/vgg/vgg16_8xb32_in1k.py" in found
    assert not [f for f in found if "cifar" in f]
    assert {f.split("/")[1] for f in found} == {"resnet", "vgg"}
    assert load_settings(None, text="configs: 'configs/**/*.py'\n").configs == ("configs/**/*.py",)


@pytest.mark.parametrize("limit, expected", [
    ("+5%", (True, Fraction(1, 20), 1)),
    ("-10%", (True, Fraction(1, 10), -1)),
    ("+2.5%", (True, Fraction(1, 40), 1)),
    ("+0%", (True, Fraction(0), 1)),
    ("25M", (False, Fraction(25_000_000), 1)),
    ("4.5G", (False, Fraction(4_500_000_000), 1)),
    ("1200K", (False, Fraction(1_200_000), 1)),
    ("1.2345K", (False, Fraction(24690, 20), 1)),
    ("0.5T", (False, Fraction(500_000_000_000), 1)),
    ("25m", (False, Fraction(25_000_000), 1)),
    (1200, (False, Fraction(1200), 1)),
    (4.5e9, (False, Fraction(4_500_000_000), 1)),
    ("17582000000", (False, Fraction(17_582_000_000), 1)),
])
def test_limits(limit, expected):
    assert parse_limit(limit) == expected


@pytest.mark.parametrize("text, message", [
    ("budgets:\n  - {metric: flops, limit: '+5%'}\n  - {metric: params, limit: 25M}\n"
     "  - {metric: flops, limit: 4G, level: error}\n",
     "budgets[2].level: expected 'warn' or 'fail', got 'error'"),
    ("budget: []\n", "budget: unknown key (expected one of: budgets, comment, configs, drill_down, exclude, impact, "
                     "limits, metafile, shape, shapes)"),
    ("metafile: error\n", "metafile: expected one of 'warn', 'fail', 'off', got 'error'"),
    ("drill_down: -1\n", "drill_down: expected a number of rows from 0 to 1000, got -1"),
    ("drill_down: yes\n", "drill_down: expected a number of rows from 0 to 1000, got True"),
    ("impact: file\n", "impact: expected 'definitions' or 'files', got 'file'"),
    ("budgets:\n  - {metric: flop, limit: 1G}\n",
     "budgets[0].metric: expected one of 'flops', 'params', 'activations', got 'flop'"),
    ("budgets:\n  - {limit: 1G}\n", "budgets[0]: missing key 'metric'"),
    ("budgets:\n  - {metric: flops}\n", "budgets[0]: missing key 'limit'"),
    ("budgets:\n  - {metric: flops, limit: 5%}\n",
     "budgets[0].limit: a relative limit needs a sign: '+5%' caps growth, '-5%' caps shrinkage; got '5%'"),
    ("budgets:\n  - {metric: flops, limit: '-100%'}\n",
     "budgets[0].limit: a shrinkage limit must be below 100%, got '-100%'"),
    ("budgets:\n  - {metric: params, limit: 25Q}\n",
     "budgets[0].limit: expected a relative limit ('+5%', '-10%') or a count ('25M', '4.5G', '1200K', 1200), "
     "got '25Q'"),
    ("budgets:\n  - {metric: params, limit: -3}\n", "budgets[0].limit: an absolute limit cannot be negative, got -3"),
    ("budgets:\n  - {metric: params, limit: true}\n",
     "budgets[0].limit: expected a limit such as '+5%' or '25M', got True"),
    ("budgets:\n  - {metric: params, limit: 1M, modul: backbone}\n",
     "budgets[0].modul: unknown key (expected one of: configs, level, limit, message, metric, module, name)"),
    ("budgets:\n  - {metric: params, limit: 1M, configs: []}\n", "budgets[0].configs: expected at least one glob"),
    ("budgets:\n  - {metric: params, limit: 1M, module: ''}\n", "budgets[0].module: expected a non-empty string"),
    ("budgets:\n  - {metric: params, limit: 1M, message: 7}\n", "budgets[0].message: expected a string, got 7"),
    ("budgets: {metric: params}\n", "budgets: expected a list of budget rules, got {'metric': 'params'}"),
    ("budgets:\n  - params\n", "budgets[0]: expected a mapping, got 'params'"),
    ("shape: [0, 3]\n", "shape[0]: expected a positive int size, got 0"),
    ("shape: 0\n", "shape: expected a positive int size, got 0"),
    ("shapes:\n  '  ': 224\n", "shapes: key '  ': empty glob"),
    ("comment:\n  login: 'not a login'\n",
     "comment.login: expected a GitHub login such as 'my-app[bot]', got 'not a login'"),
    ("budgets:\n  - {metric: flops, limit: [5]}\n", "budgets[0].limit: expected a limit such as '+5%' or '25M', got [5]"),
    ("exclude: [1]\n", "exclude[0]: expected a glob string, got 1"),
    ("shape: [1, 2, 3]\n", "shape: expected H, [H] or [H, W] (positive ints) or null, got [1, 2, 3]"),
    ("shape: true\n", "shape: expected H, [H] or [H, W] (positive ints) or null, got True"),
    ("shapes:\n  'configs/vit/**': '384'\n",
     "shapes['configs/vit/**']: expected H, [H] or [H, W] (positive ints) or null, got '384'"),
    ("configs: []\n", "configs: expected at least one glob"),
    ("configs: [1]\n", "configs[0]: expected a glob string, got 1"),
    ("exclude: {a: 1}\n", "exclude: expected a glob or a list of globs, got {'a': 1}"),
    ("comment:\n  behavior: replace\n",
     "comment.behavior: expected one of 'update', 'new', 'delete-and-new', got 'replace'"),
    ("comment:\n  tag: 'two words'\n", "comment.tag: use 1-64 letters, digits, '.', '_' or '-', got 'two words'"),
    ("comment: update\n", "comment: expected a mapping, got 'update'"),
    ("- configs\n", "expected a mapping of settings, got ['configs']"),
    ("configs: x\nconfigs: y\n", "invalid YAML at line 2, column 1: duplicate key 'configs'"),
    ("budgets: [\n", "invalid YAML at line 2, column 1: expected the node content, but found '<stream end>'"),
])
def test_errors_are_one_line_naming_file_and_key(text, message):
    with pytest.raises(SettingsError) as e:
        load_settings(None, text=text)
    assert str(e.value) == f".mcx-review.yaml: {message}"
    assert "\n" not in str(e.value)


def test_settings_are_frozen_and_hashable():
    s = load_settings(None, text=EXAMPLE)
    with pytest.raises(AttributeError):
        s.shape = (1, 1)  # type: ignore[misc]
    assert hash(s) == hash(load_settings(None, text=EXAMPLE))


def test_base_settings_shapes_drive_a_real_review(tmp_path):
    """Per-config shapes from the base's .mcx-review.yaml reach the analysis, on both sides; the
    head's own shapes do not (a smaller input would relax an absolute FLOPs budget)."""
    import shutil

    from mcx_review import review
    from helpers import ConfigRepo

    files = ["resnet/resnet18_8xb32_in1k.py", "_base_/models/resnet18.py", "_base_/datasets/imagenet_bs32.py",
             "_base_/schedules/imagenet_bs256.py", "_base_/default_runtime.py"]
    r = ConfigRepo(tmp_path / "repo", pkg=None)
    for rel in files:
        (r.root / "configs" / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(shipped("mmcls") / rel, r.root / "configs" / rel)
    r.write(".mcx-review.yaml", "shape: 224\nshapes:\n  'configs/resnet/**': [96, 128]\n")
    r.commit("ResNet-18, small inputs")
    r.branch("feature")
    r.replace("configs/_base_/models/resnet18.py", "num_classes=1000", "num_classes=10")
    r.write(".mcx-review.yaml", "shape: 224\nshapes:\n  'configs/resnet/**': [32, 32]\n")
    r.commit("10 classes, tiny inputs")
    report, _, _ = review.run_review(r.root, review.Options(base="main", head="feature", jobs=2, use_cache=False))
    (entry,) = report["configs"]
    assert entry["base"]["input_shape"] == entry["head"]["input_shape"] == [3, 96, 128]
    assert entry["delta"]["params"] == 10 * 513 - 1000 * 513  # the head's Linear(512, classes)


def test_the_shipped_schema_is_what_validates_and_what_editors_get():
    """settings-schema.json ships beside the module, is a valid JSON Schema, accepts the example
    and describes every key the parser reads."""
    import json

    import jsonschema

    from mcx_review.settings import SCHEMA_PATH

    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    import yaml

    jsonschema.validate(yaml.safe_load(EXAMPLE), schema)
    from mcx_review.settings import TOP_KEYS

    assert set(schema["properties"]) == TOP_KEYS
    assert all(spec.get("description") for spec in schema["properties"].values())
    assert load_settings(None, text="comment:\n  login: mcx-app[bot]\n").comment.login == "mcx-app[bot]"
