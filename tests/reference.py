"""The get_flops.py way, exactly: random-init build, two fvcore analyses, on ``extract_feat``.

Run in a subprocess inside a revision's tree (that tree first on sys.path), so it sees the
revision's own code, like mcx-review's workers, but shares none of their code.
"""
import json
import subprocess
import sys
from pathlib import Path

SCRIPT = r'''
import importlib, json, sys
sys.path.insert(0, '.')
import torch
from fvcore.nn import ActivationCountAnalysis, FlopCountAnalysis, parameter_count
from mmengine import Config
from mmengine.registry import init_default_scope
cfg = Config.fromfile(sys.argv[1])
scope = cfg.get('default_scope', 'mmpretrain')
init_default_scope(scope)
importlib.import_module(scope + '.models')
model = importlib.import_module(scope + '.registry').MODELS.build(cfg.model)
model.eval()
model.forward = model.extract_feat
x = (torch.randn(1, int(sys.argv[4]), int(sys.argv[2]), int(sys.argv[3])),)
f = FlopCountAnalysis(model, x).unsupported_ops_warnings(False).uncalled_modules_warnings(False)
a = ActivationCountAnalysis(model, x).unsupported_ops_warnings(False).uncalled_modules_warnings(False)
p = parameter_count(model)
fm, am = f.by_module(), a.by_module()
print(json.dumps({"flops": f.total(), "params": p[""], "activations": a.total(),
                  "modules": {n: {"flops": fm[n], "params": p[n], "activations": am[n]}
                              for n, _ in model.named_children() if n in p or fm[n]}}))
'''


def get_flops_way(tree: Path, config: str, h: int, w: int, channels: int = 3) -> dict:
    """get_flops.py's input is (1, 3, H, W); ``channels`` for models that take other than 3."""
    out = subprocess.run([sys.executable, "-c", SCRIPT, config, str(h), str(w), str(channels)], cwd=tree,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def assert_matches(stats: dict, ref: dict) -> None:
    """Every total and every per-module number equal."""
    for m in ("flops", "params", "activations"):
        assert stats[m] == ref[m], (m, stats[m], ref[m])
    for name, mod in ref["modules"].items():
        if mod["params"] == 0 and mod["flops"] == 0 and name not in stats["modules"]:
            continue  # e.g. data_preprocessor: no params, never run
        for m in ("flops", "params", "activations"):
            assert stats["modules"][name][m] == mod[m], (name, m, stats["modules"][name][m], mod[m])
