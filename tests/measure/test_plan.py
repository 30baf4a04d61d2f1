"""The plan is pure: which models to trace, decided from resolutions, keys and the cache, no worker."""
from mcx_review.measure.plan import in_shard, plan
from mcx_review.select.targets import Target


def _res(model, ok=True):
    return {"ok": ok, "scope": "mmpretrain", "model": model, "shape_spec": [3, 224, 224]}


def _keys(mapping):
    return lambda side, path: mapping[(side, path)]


def test_unchanged_configs_cost_no_trace_and_shared_models_one():
    targets = [Target("a.py", "a.py", "a.py", ["changed"]), Target("b.py", "b.py", "b.py", ["inherits x.py"]),
               Target("c.py", "c.py", "c.py", ["inherits x.py"])]
    results = {"base": {"a.py": _res(1), "b.py": _res(1), "c.py": _res(5)},
               "head": {"a.py": _res(2), "b.py": _res(2), "c.py": _res(5)}}
    keys = {("base", "a.py"): "k1", ("base", "b.py"): "k1", ("base", "c.py"): "k5",
            ("head", "a.py"): "k2", ("head", "b.py"): "k2", ("head", "c.py"): "k5"}
    p = plan(targets, results, _keys(keys), lambda k: None)
    assert p.skipped == {"c.py"}
    assert p.work == {"base": {"k1": ["a.py", "b.py"]}, "head": {"k2": ["a.py", "b.py"]}}  # edited file first
    assert p.distinct == 2


def test_cached_results_are_not_traced_and_errors_are_not_planned():
    targets = [Target("a.py", "a.py", "a.py", ["changed"]), Target("n.py", None, "n.py", ["changed"]),
               Target("e.py", "e.py", "e.py", ["changed"])]
    results = {"base": {"a.py": _res(1), "e.py": _res(0, ok=False)},
               "head": {"a.py": _res(2), "n.py": _res(3), "e.py": _res(4)}}
    keys = {("base", "a.py"): "k1", ("head", "a.py"): "k2", ("head", "n.py"): "k3", ("head", "e.py"): "k4"}
    stored = {"k1": {"stats": {"flops": 1}}}
    p = plan(targets, results, _keys(keys), stored.get)
    assert p.cached == {"k1": {"stats": {"flops": 1}}}
    assert p.work == {"base": {}, "head": {"k2": ["a.py"], "k3": ["n.py"], "k4": ["e.py"]}}
    assert ("base", "e.py") not in p.keys


def test_shards_split_the_keys_deterministically():
    keys = [f"key{i}" for i in range(200)]
    shares = [[k for k in keys if in_shard(k, (s, 3))] for s in (1, 2, 3)]
    assert sorted(sum(shares, [])) == sorted(keys) and all(shares)
    targets = [Target(f"{i}.py", None, f"{i}.py", ["changed"]) for i in range(20)]
    results = {"base": {}, "head": {t.path: _res(i) for i, t in enumerate(targets)}}
    key_of = lambda side, path: f"key-{path}"  # noqa: E731
    planned = [set(plan(targets, results, key_of, lambda k: None, (s, 4)).work["head"]) for s in (1, 2, 3, 4)]
    assert set().union(*planned) == {f"key-{t.path}" for t in targets}
    assert sum(len(p) for p in planned) == 20  # each model in exactly one shard
