"""A worker process: analyses configs of ONE revision, with that revision's tree first on sys.path.

Registries are process-global, so two revisions never share a worker. The parent speaks JSON lines:
one job in on stdin, one result out on a private pipe (the original stdout); anything the
codebase prints goes to stderr instead, so it cannot corrupt the protocol.

Jobs:
  {"id": 1, "op": "resolve", "config": "configs/x.py", "shape": [H, W] | null}
      -> {"id": 1, "ok": true, "scope": ..., "model": {...}, "shape_spec": {...}, "types": [...],
          "custom_imports": [...]}     (no torch import: a warm, cached review never needs it)
  {"id": 2, "op": "analyse", "config": "configs/x.py", "shape": [H, W] | null, "engine": "fvcore" | "dispatch"}
      -> {"id": 2, "ok": true, "stats": ModelStats, "warnings": [...]}
  any failure -> {"id": n, "ok": false, "error": "one clear line"}
Every reply also carries the CPU time the job took ("cpu_seconds", all threads) and the worker's
memory after the job: "rss" (VmRSS) and "peak_rss" (VmHWM, the most it ever held), in bytes, so the
pool can replace a worker that holds too much.
"""
from __future__ import annotations

import json
import os
import socket
import sys
import time
import traceback
from typing import Any, Dict, List, Optional

from mcx_review.measure.memory import read_rss

MAX_MESSAGE = 600


class _NetworkBlocked(OSError):
    pass


class NetworkGuard:
    """Refuses every outgoing connection: a model that downloads weights while it is built is an
    error the report names, not a hang or a silent fetch."""

    def __init__(self) -> None:
        self.attempts: List[str] = []

    def install(self) -> None:
        guard = self

        def refuse(address: Any) -> None:
            target = address if isinstance(address, str) else ":".join(map(str, address[:2]))
            guard.attempts.append(target)
            raise _NetworkBlocked(f"network access is off while models are built (tried {target})")

        def connect(self: socket.socket, address: Any) -> None:  # noqa: ARG001
            if self.family in (socket.AF_INET, socket.AF_INET6):
                refuse(address)
            return _connect(self, address)

        def create_connection(address: Any, *args: Any, **kwargs: Any) -> socket.socket:  # noqa: ARG001
            refuse(address)
            raise AssertionError("unreachable")

        def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
            if host not in (None, "localhost") and not str(host).startswith("127."):
                refuse((host, port))
            return _getaddrinfo(host, port, *args, **kwargs)

        _connect = socket.socket.connect
        _getaddrinfo = socket.getaddrinfo
        socket.socket.connect = connect  # type: ignore[method-assign,assignment]  # deliberate monkeypatch
        socket.create_connection = create_connection
        socket.getaddrinfo = getaddrinfo


def _where(exc: BaseException) -> str:
    """file:line of the innermost frame outside installed packages (the user's own file)."""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if "site-packages" not in frame.filename and "/lib/python" not in frame.filename:
            try:
                name = os.path.relpath(frame.filename)
            except ValueError:
                name = frame.filename
            return f" (at {name}:{frame.lineno})"
    return ""


def _relative(message: str) -> str:
    """Paths inside this revision's temporary tree as repo-relative ones: the message then reads
    the same on every run and on both sides (and an unchanged comment stays unchanged)."""
    for root in {os.getcwd(), os.path.realpath(os.getcwd())}:
        message = message.replace(root + os.sep, "")
    return message


def _short(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    if not str(exc).strip():
        text = type(exc).__name__ + _where(exc)
    return _clip(text)


def _clip(text: str) -> str:
    """One line, at most MAX_MESSAGE characters."""
    text = " ".join(text.split())
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"


def to_jsonable(value: Any) -> Any:
    """A resolved config value as plain JSON data; classes and lazy imports become dotted names,
    so two revisions' model dicts compare (and hash) by what they mean."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    kind = type(value).__name__
    if kind == "LazyObject":  # `from mmpretrain.models import ResNet` in a new-style config
        imported = value._imported
        module = value._module if isinstance(value._module, str) else ".".join(value._module)
        return f"{module}.{imported}" if imported else module
    if kind == "LazyAttr":
        return f"{value._module}.{value.name}"
    if isinstance(value, type) or callable(value):
        return f"{getattr(value, '__module__', '')}.{getattr(value, '__qualname__', repr(value))}"
    return repr(value)


def _types(value: Any, out: List[str]) -> List[str]:
    if isinstance(value, dict):
        t = value.get("type")
        if isinstance(t, str):
            out.append(t)
        for v in value.values():
            _types(v, out)
    elif isinstance(value, list):
        for v in value:
            _types(v, out)
    return out


def _load(path: str, import_custom_modules: bool) -> Any:
    from mmengine.config import Config

    try:
        return Config.fromfile(path, import_custom_modules=import_custom_modules)
    except Exception as exc:  # noqa: BLE001 - any config failure is the user's to see
        raise JobError(f"config could not be loaded: {config_error(exc)}") from exc


def config_error(exc: BaseException) -> str:
    """``SyntaxError: '(' was never closed (at configs/_base_/m.py:18)``: the error, then the file
    mmengine was reading when it failed and the line (a ``_base_`` file's syntax error otherwise
    names none: Python's parser says ``<unknown>``), as :func:`_where` writes it."""
    path: Optional[str] = None
    line: Optional[int] = None
    frames = list(traceback.walk_tb(exc.__traceback__))
    for frame, _ in frames:  # outermost first: the innermost file being read wins
        filename = frame.f_locals.get("filename")
        if frame.f_code.co_filename.endswith(os.path.join("mmengine", "config", "config.py")) \
                and isinstance(filename, str) and filename.endswith(".py") and os.path.isfile(filename):
            path = os.path.normpath(os.path.abspath(filename))  # a missing _base_ file: the one naming it
    if path is None:
        return _short(exc)
    for frame, lineno in frames:
        if os.path.normpath(os.path.abspath(frame.f_code.co_filename)) == path:
            line = lineno
    text = f"{type(exc).__name__}: {exc}" if str(exc).strip() else type(exc).__name__
    if isinstance(exc, SyntaxError):
        if exc.lineno and exc.filename in (None, "<unknown>", path):
            line = exc.lineno
        text = f"SyntaxError: {exc.msg}"
    return _clip(f"{text} (at {os.path.relpath(path)}" + (f":{line})" if line else ")"))


class JobError(Exception):
    pass


def shape_spec(cfg: Any, shape: Optional[List[int]]) -> Dict[str, Any]:
    """What decides the input shape, as data: the forced shape, or the test dataset's type and
    pipeline (equal specs give equal shapes, so no model needs building to compare them)."""
    from mcx_review.measure.worker.input_shape import declared_size, input_channels, test_pipeline  # config only

    channels = input_channels(cfg)  # the top-level data_preprocessor is not in the model dict
    if shape:
        return {"forced": list(shape), "channels": channels}
    declared = declared_size(cfg)  # backbone img_size, preprocessor size, a detector's Resize
    if declared is not None:
        return {"declared": list(declared), "channels": channels}
    dataset, pipeline = test_pipeline(cfg)
    return {"dataset": to_jsonable(dataset), "pipeline": to_jsonable(pipeline), "channels": channels}


def resolve(job: Dict[str, Any]) -> Dict[str, Any]:
    cfg = _load(job["config"], import_custom_modules=False)
    if "model" not in cfg:
        raise JobError("config has no `model`")
    model = to_jsonable(cfg.model.to_dict() if hasattr(cfg.model, "to_dict") else cfg.model)
    custom = cfg.get("custom_imports") or {}
    imports = custom.get("imports", []) if isinstance(custom, dict) else []
    return {
        "scope": cfg.get("default_scope"),
        "model": model,
        "shape_spec": shape_spec(cfg, job.get("shape")),
        "types": sorted(set(_types(model, []))),
        "custom_imports": [imports] if isinstance(imports, str) else list(imports),
    }


def analyse(job: Dict[str, Any], guard: NetworkGuard) -> Dict[str, Any]:
    from mcx_review.measure.worker import analysis, mmcv_ops, skip_init

    mmcv_ops.install()  # before custom_imports can import the codebase (mmcv-lite: no mmcv._ext)
    skip_init.skipped_checkpoints.clear()
    cfg = _load(job["config"], import_custom_modules=True)
    shape = tuple(job["shape"]) if job.get("shape") else None
    before = len(guard.attempts)
    try:
        stats = analysis.analyse(cfg, shape, engine=job.get("engine") or "fvcore")
    except analysis.AnalysisError as exc:
        raise JobError(_network_hint(guard, before) or str(exc)) from exc
    except Exception as exc:  # noqa: BLE001
        raise JobError(_network_hint(guard, before) or f"analysis failed: {_short(exc)}") from exc
    # unsupported ops and uncalled modules travel in the stats themselves
    # the engine that counted travels in the stats too; when the dispatch engine had to hand the
    # model to fvcore, the report says why
    if stats.get("engine_note"):
        stats["engine_note"] = _relative(stats["engine_note"])
    notes = [stats["engine_note"]] if stats.get("engine_note") else []
    if skip_init.skipped_checkpoints:  # LD's teacher: counted with its shapes, not its values
        notes.append("not loaded while the model was built (no count depends on weights): "
                     + ", ".join(dict.fromkeys(skip_init.skipped_checkpoints)))
    return {"stats": stats, "warnings": notes}


def _network_hint(guard: NetworkGuard, before: int) -> Optional[str]:
    if len(guard.attempts) > before:
        return (f"the model tried to download ({guard.attempts[-1]}) while it was built; "
                "network access is off during analysis")
    return None


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    root = argv[0] if argv else os.getcwd()
    os.chdir(root)
    sys.path.insert(0, os.getcwd())
    protocol = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)  # the codebase's prints go to stderr
    sys.stdout = sys.stderr
    guard = NetworkGuard()
    guard.install()
    for line in sys.stdin:
        if not line.strip():
            continue
        job = json.loads(line)
        cpu = time.process_time()
        try:
            body = resolve(job) if job["op"] == "resolve" else analyse(job, guard)
            reply = {"id": job["id"], "ok": True, **body}
        except JobError as exc:
            reply = {"id": job["id"], "ok": False, "error": str(exc)}
        except Exception as exc:  # noqa: BLE001 - never let one config take the worker down
            traceback.print_exc()
            reply = {"id": job["id"], "ok": False, "error": f"internal error: {_short(exc)}"}
        if "error" in reply:
            reply["error"] = _relative(reply["error"])
        reply["cpu_seconds"] = round(time.process_time() - cpu, 3)  # every thread's, this job's
        reply["torch_imported"] = "torch" in sys.modules
        reply.update(read_rss())
        protocol.write(json.dumps(reply) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
