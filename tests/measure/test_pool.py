"""The worker pool keeps a review alive: a config that hangs or kills its process is one error
record; the other configs are still answered, by a fresh worker."""
from helpers import ConfigRepo

from mcx_review.measure.pool import WorkerPool

RESNET = "configs/resnet/resnet50_8xb32_in1k.py"


def test_hang_and_crash_are_errors_and_the_rest_is_still_answered(tmp_path):
    repo = ConfigRepo(tmp_path / "r")
    repo.write("configs/bad/hangs.py", "import time\ntime.sleep(60)\nmodel = dict(type='X')\n")
    repo.write("configs/bad/dies.py", "__import__('os')._exit(3)\n")
    repo.write("configs/bad/prints.py", "print('noise on stdout')\n_base_ = ['../resnet/resnet50_8xb32_in1k.py']\n")
    jobs = [{"op": "resolve", "config": c, "shape": None}
            for c in ("configs/bad/hangs.py", RESNET, "configs/bad/dies.py", "configs/bad/prints.py")]
    with WorkerPool(repo.root, size=1) as pool:
        results = pool.run(jobs, timeout=5)
    hang, ok, dies, prints = results
    assert not hang["ok"] and "longer than 5 s" in hang["error"]
    assert ok["ok"] and ok["model"]["backbone"]["depth"] == 50
    assert not dies["ok"] and "exit code 3" in dies["error"]
    assert prints["ok"], "a config printing to stdout must not corrupt the protocol"
    assert not pool.torch_imported, "resolving configs never imports torch"


def test_results_keep_job_order_with_several_workers(tmp_path):
    repo = ConfigRepo(tmp_path / "r")
    configs = ["configs/resnet/resnet18_8xb32_in1k.py", "configs/resnet/resnet34_8xb32_in1k.py",
               RESNET, "configs/resnet/resnet101_8xb32_in1k.py"]
    with WorkerPool(repo.root, size=2) as pool:
        results = pool.run([{"op": "resolve", "config": c, "shape": None} for c in configs])
    assert [r["model"]["backbone"]["depth"] for r in results] == [18, 34, 50, 101]


def test_config_errors_name_the_cause(tmp_path):
    repo = ConfigRepo(tmp_path / "r")
    repo.write("configs/bad/syntax.py", "model = dict(type='ImageClassifier'\n")
    repo.write("configs/bad/nobase.py", "_base_ = ['../_base_/models/missing.py']\n")
    jobs = [{"op": "resolve", "config": c, "shape": None} for c in ("configs/bad/syntax.py", "configs/bad/nobase.py")]
    with WorkerPool(repo.root) as pool:
        syntax, nobase = pool.run(jobs)
    assert "config could not be loaded" in syntax["error"] and "SyntaxError" in syntax["error"]
    assert "missing.py" in nobase["error"]


def test_config_errors_name_the_file_and_line_base_files_included(tmp_path):
    """A syntax error in a ``_base_`` file names that file and its line (Python's parser says
    ``<unknown>``); in the config itself, the line; a name error in a base file, file and line."""
    repo = ConfigRepo(tmp_path / "r")
    repo.edit("configs/_base_/models/resnet50.py", lambda t: t + "oops = (\n")
    repo.write("configs/bad/own.py", "_base_ = ['../resnet/resnet18_8xb32_in1k.py']\n\nmodel = dict(\n")
    repo.write("configs/_base_/models/typo.py", "model = dict(type='ImageClassifier')\nx = undefined_name\n")
    repo.write("configs/bad/uses_typo.py", "_base_ = ['../_base_/models/typo.py']\n")
    configs = ("configs/resnet/resnet50_8xb32_in1k.py", "configs/bad/own.py", "configs/bad/uses_typo.py")
    with WorkerPool(repo.root) as pool:
        base, own, typo = pool.run([{"op": "resolve", "config": c, "shape": None} for c in configs])
    line = len(repo.read("configs/_base_/models/resnet50.py").splitlines())
    assert base["error"] == ("config could not be loaded: SyntaxError: '(' was never closed "
                             f"(at configs/_base_/models/resnet50.py:{line})")
    assert own["error"] == "config could not be loaded: SyntaxError: '(' was never closed (at configs/bad/own.py:3)"
    assert typo["error"] == ("config could not be loaded: NameError: name 'undefined_name' is not defined "
                             "(at configs/_base_/models/typo.py:2)")


def test_an_exception_without_message_still_says_where(tmp_path):
    repo = ConfigRepo(tmp_path / "r", pkg=None)
    repo.write("configs/lazy.py", "import os\nos.getcwd()\n")  # mmengine raises a bare RuntimeError
    with WorkerPool(repo.root) as pool:
        (res,) = pool.run([{"op": "resolve", "config": "configs/lazy.py", "shape": None}])
    assert "configs/lazy.py:2" in res["error"]


def test_a_worker_dying_of_a_signal_without_a_message_is_a_limit_row_and_not_run_again(tmp_path):
    """A native crash (a real SIGSEGV here, reading address 0, as torch or a compiled op dies) leaves no message: the
    result is a limit naming the signal, the job is not retried, and the next job is answered."""
    repo = ConfigRepo(tmp_path / "r")
    repo.write("configs/bad/segfaults.py", "__import__('ctypes').string_at(0)\n")
    jobs = [{"op": "resolve", "config": c, "shape": None} for c in ("configs/bad/segfaults.py", RESNET)]
    with WorkerPool(repo.root, size=1) as pool:
        crashed, ok = pool.run(jobs, timeout=60)
        attempts = [j for j in pool.jobs if j["config"] == "configs/bad/segfaults.py"]
    assert not crashed["ok"], crashed
    assert "limit" in crashed, crashed
    assert crashed["limit"] == {"kind": "killed", "limit": "worker killed (signal 11, SIGSEGV, crashed without a message)"}
    assert "signal 11" in crashed["error"]
    assert len(attempts) == 1, "a crash is not the OOM killer: running it again alone would only crash again"
    assert ok["ok"]
