"""fvcore's counts without ``torch.jit``: a counting engine at the dispatcher.

fvcore traces the model with ``torch.jit`` (deprecated in torch 2.14, and it runs the model for
real) and applies one handle per jit op. This engine runs the same forward under a
``TorchDispatchMode`` instead, without computing a value where the model allows it: on the meta
device (parameters swapped for meta tensors for the run), else on fake tensors
(``FakeTensorMode``), else, for a forward that needs values, on real ones (:func:`count_ops`). It
applies **fvcore's own handles** to every op: each op's
arguments are wrapped in :class:`_Value`, which answers the few questions fvcore's handles ask a
``torch._C.Value`` (is it a tensor, its sizes, its constant value). So the formulas cannot drift.

The jit graph records an op where Python enters the dispatcher (``aten::linear``,
``aten::matmul``, ``aten::einsum``, ``aten::adaptive_avg_pool2d``); the dispatcher below sees their
decompositions (``addmm``/``mm``/``bmm`` with views, ``mean`` for a 1x1 average pool). Two levels
make the two agree:

* a ``TorchFunctionMode`` catches the Python entry points of the ops whose decomposition would
  count differently (a broadcast matmul, ``mm`` under ``linear``, a 1x1 adaptive pool that becomes
  ``mean``, SDPA's kernels, the bias ``add_`` of a 4-D linear) and counts them with the jit op's
  handle on the jit op's arguments; the dispatcher ops inside are neither counted nor listed;
* every other op is seen at the dispatcher and mapped to the jit op it stands for
  (``convolution`` -> ``aten::_convolution``, ``native_layer_norm`` -> ``aten::layer_norm``,
  ``_softmax`` -> ``aten::softmax`` ...), so FLOPs of an fvcore op reached from code the function
  level does not see (a codebase calling ``torch.ops.aten`` or a C++ composite) still count, and
  the uncounted ops carry fvcore's names.

Attribution is fvcore's: forward pre/post hooks keep the stack of executing modules, an op counts
for the innermost module's canonical name (the first name a shared module is reachable by) and
every ancestor of that name.
"""
from __future__ import annotations

import contextlib
import inspect
from collections import Counter
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Set, Tuple

import torch
import torch.nn.functional as F
from fvcore.nn.jit_analysis import _IGNORED_OPS, _named_modules_with_dup
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from mcx_review.measure.worker import fvcore_handles

ENGINES = ("fvcore", "dispatch")
FAKE, REAL = "dispatch", "dispatch-real"  # what ModelStats["engine"] says for this engine's two runs

Counted = Callable[[str], Tuple[int, int]]


class DispatchError(Exception):
    """The dispatch engine could not count this model; str(e) is the one-line cause."""


class _Value:
    """What fvcore's handles ask of a ``torch._C.Value``, answered for a real, fake or None value."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def isCompleteTensor(self) -> bool:  # noqa: N802 - torch._C.Value's spelling
        return isinstance(self.value, torch.Tensor)

    def type(self) -> "_Value":
        return self

    def sizes(self) -> List[int]:
        return [int(d) for d in self.value.shape]

    def toIValue(self) -> Any:  # noqa: N802
        return self.value

    def node(self) -> "_Value":  # einsum's operand list: inputs[1].node().inputs()
        return self

    def inputs(self) -> List["_Value"]:
        return [_Value(v) for v in self.value]


def _values(*items: Any) -> List[_Value]:
    return [_Value(v) for v in items]


def _outputs(out: Any) -> List[_Value]:
    return _values(*out) if isinstance(out, (tuple, list)) else [_Value(out)]


# ---- the function level: Python entry points whose jit op is what fvcore counts -------------------

Builder = Callable[[Dict[str, Any]], List[_Value]]


def _conv(transposed: bool) -> Builder:
    def build(a: Dict[str, Any]) -> List[_Value]:  # aten::_convolution's 13 inputs
        return _values(a["input"], a["weight"], a.get("bias"), None, None, None, transposed,
                       None, None, False, False, True, True)
    return build


def _pick(*names: str) -> Builder:
    return lambda a: _values(*(a.get(n) for n in names))


def _einsum(a: Dict[str, Any]) -> List[_Value]:
    if "args" in a:  # torch.einsum(*args): the equation first
        a = {"equation": a["args"][0], "operands": tuple(a["args"][1:])}
    operands = a["operands"]
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = operands[0]
    return [_Value(a["equation"]), _Value(list(operands)), _Value(None)]


# ``x[i] = v``: on CPU a number goes to ``fill_`` (what the jit graph shows), on the meta device to
# ``copy_``; a tensor value or a tensor index is ``copy_`` / ``index_put_``, both ignored by fvcore
_SETITEM = "<setitem>"


def _setitem_name(args: Sequence[Any]) -> Optional[str]:
    index, value = (args[1], args[2]) if len(args) >= 3 else (None, None)
    parts = index if isinstance(index, tuple) else (index,)
    if isinstance(value, (int, float, bool)) and not any(isinstance(p, (torch.Tensor, list)) for p in parts):
        return "aten::fill_"
    return None


# func -> (jit op, parameter names in the func's own order, inputs of the jit op)
_FUNCTION_SPECS: List[Tuple[List[Any], str, Sequence[str], Builder]] = [
    ([F.linear], "aten::linear", ("input", "weight", "bias"), _pick("input", "weight", "bias")),
    ([torch.matmul, torch.Tensor.matmul, torch.Tensor.__matmul__], "aten::matmul", ("input", "other"),
     _pick("input", "other")),
    ([torch.mm, torch.Tensor.mm], "aten::mm", ("input", "mat2"), _pick("input", "mat2")),
    ([torch.bmm, torch.Tensor.bmm], "aten::bmm", ("input", "mat2"), _pick("input", "mat2")),
    ([torch.addmm, torch.Tensor.addmm], "aten::addmm", ("input", "mat1", "mat2"), _pick("input", "mat1", "mat2")),
    ([torch.einsum, torch.functional.einsum], "aten::einsum", ("equation", "*operands"), _einsum),
    ([F.conv1d, F.conv2d, F.conv3d], "aten::_convolution", ("input", "weight", "bias"), _conv(False)),
    ([F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d], "aten::_convolution",
     ("input", "weight", "bias"), _conv(True)),
    ([F.batch_norm], "aten::batch_norm", ("input", "running_mean", "running_var", "weight", "bias", "training"),
     _pick("input", "weight", "bias", "running_mean", "running_var", "training")),
    ([torch.batch_norm], "aten::batch_norm", ("input", "weight", "bias", "running_mean", "running_var", "training"),
     _pick("input", "weight", "bias", "running_mean", "running_var", "training")),
    ([F.layer_norm, torch.layer_norm], "aten::layer_norm", ("input", "normalized_shape", "weight", "bias"),
     _pick("input", "normalized_shape", "weight", "bias")),
    ([F.group_norm, torch.group_norm], "aten::group_norm", ("input", "num_groups", "weight", "bias"),
     _pick("input", "num_groups", "weight", "bias")),
    ([F.instance_norm], "aten::instance_norm", ("input", "running_mean", "running_var", "weight", "bias"),
     _pick("input", "weight", "bias", "running_mean", "running_var")),
    ([torch.instance_norm], "aten::instance_norm", ("input", "weight", "bias", "running_mean", "running_var"),
     _pick("input", "weight", "bias", "running_mean", "running_var")),
    ([F.adaptive_avg_pool2d, torch._C._nn.adaptive_avg_pool2d], "aten::adaptive_avg_pool2d",
     ("input", "output_size"), _pick("input")),
    ([F.scaled_dot_product_attention], "aten::scaled_dot_product_attention", ("query", "key", "value"),
     _pick("query", "key", "value")),
    ([F.softmax, torch.softmax, torch.Tensor.softmax], "aten::softmax", (), lambda a: []),
    ([F.pad], "aten::pad", (), lambda a: []),
    # uncounted composites: one jit node, several dispatcher ops (or none) below
    ([F.adaptive_avg_pool1d, torch.adaptive_avg_pool1d], "aten::adaptive_avg_pool1d", (), lambda a: []),
    ([torch.Tensor.__setitem__], _SETITEM, (), lambda a: []),
    *[([getattr(torch.Tensor, n)], f"aten::{n}", (), lambda a: [])
      for n in ("contiguous", "reshape", "reshape_as", "expand_as", "view_as", "flatten", "type_as", "to",
                "chunk", "split", "unflatten")],
    *[([getattr(torch, n)], f"aten::{n}", (), lambda a: []) for n in ("reshape", "flatten", "chunk", "split")],
    # Python's ``a & b``, ``a | b``: jit names the operator (fvcore ignores ``__and__``), the
    # dispatcher sees bitwise_and / bitwise_or
    *[([getattr(torch.Tensor, n)], f"aten::{n}", (), lambda a: []) for n in ("__and__", "__or__")],
]


# Python functions of torch whose body calls an op this mode cannot see (the mode is off inside a
# function it handles) and the jit graph lists: F.normalize's ``expand_as`` (its other ops reach
# the dispatcher under their own names)
_HIDDEN: Dict[Any, str] = {
    F.normalize: "aten::expand_as",
    # channel dropout in eval mode: the trace records the call, the dispatcher never sees one
    # (fvcore ignores plain aten::dropout, not these): mmseg's decode heads end in Dropout2d
    F.dropout1d: "aten::feature_dropout", F.dropout2d: "aten::feature_dropout",
    F.dropout3d: "aten::feature_dropout", F.alpha_dropout: "aten::alpha_dropout",
    F.feature_alpha_dropout: "aten::feature_alpha_dropout",
}


def _function_table() -> Dict[Any, Tuple[str, Sequence[str], Builder]]:
    table: Dict[Any, Tuple[str, Sequence[str], Builder]] = {}
    for funcs, jit, names, build in _FUNCTION_SPECS:
        for func in funcs:
            table[func] = (jit, names, build)
            base = getattr(torch._C.TensorBase, getattr(func, "__name__", ""), None)
            if getattr(func, "__objclass__", None) is not None or func is getattr(torch.Tensor, getattr(
                    func, "__name__", ""), None):
                if base is not None and base not in table:  # the C method under a Python override
                    table[base] = (jit, names, build)
    return table


_SIGNATURES: Dict[Any, Optional[inspect.Signature]] = {}


def _signature(func: Any) -> Optional[inspect.Signature]:
    if func not in _SIGNATURES:
        try:
            _SIGNATURES[func] = inspect.signature(func)
        except (TypeError, ValueError):  # a C builtin
            _SIGNATURES[func] = None
    return _SIGNATURES[func]


def _bind(func: Any, names: Sequence[str], args: Sequence[Any], kwargs: Dict[str, Any]) -> Dict[str, Any]:
    """The call's arguments by name: the func's own signature where Python has one, else ``names``
    (C builtins), ``*rest`` collecting the remaining positionals."""
    if names and names[0] == "input" and args and isinstance(args[0], (int, float)):
        # the deprecated scalar-first overloads, addmm(beta, input, alpha, mat1, mat2) (mmcv's
        # MaskedConv2d): the scalars scale values, not shapes; the tensors, in order, are the names
        args = [a for a in args if isinstance(a, torch.Tensor)]
    signature = _signature(func)
    if signature is not None:
        try:
            return dict(signature.bind(*args, **kwargs).arguments)
        except TypeError:
            pass
    out: Dict[str, Any] = dict(kwargs)
    for i, name in enumerate(names):
        if name.startswith("*"):
            out[name[1:]] = tuple(args[i:])
            break
        if i < len(args):
            out[name] = args[i]
    if "self" in out and "input" not in out:
        out["input"] = out.pop("self")
    return out


# ---- the dispatcher level: decomposed ops, as the jit op they stand for ---------------------------

def _arg(args: Sequence[Any], kwargs: Dict[str, Any], i: int, name: str, default: Any = None) -> Any:
    return args[i] if i < len(args) else kwargs.get(name, default)


def _d_conv(args: Sequence[Any], kwargs: Dict[str, Any]) -> List[_Value]:
    transposed = bool(_arg(args, kwargs, 6, "transposed", False))
    return _values(args[0], args[1], _arg(args, kwargs, 2, "bias"), None, None, None, transposed,
                   None, None, False, False, True, True)


def _d_batch_norm(training: Optional[bool]) -> Callable[[Sequence[Any], Dict[str, Any]], List[_Value]]:
    def build(args: Sequence[Any], kwargs: Dict[str, Any]) -> List[_Value]:
        flag = _arg(args, kwargs, 5, "training", False) if training is None else training
        return _values(args[0], _arg(args, kwargs, 1, "weight"), _arg(args, kwargs, 2, "bias"), None, None, flag)
    return build


def _d_bn_no_stats(args: Sequence[Any], kwargs: Dict[str, Any]) -> List[_Value]:
    # _native_batch_norm_legit.no_stats(input, weight, bias, training, momentum, eps)
    return _values(args[0], _arg(args, kwargs, 1, "weight"), _arg(args, kwargs, 2, "bias"), None, None,
                   bool(_arg(args, kwargs, 3, "training", True)))


DispatchBuilder = Callable[[Sequence[Any], Dict[str, Any]], List[_Value]]
_SDPA: DispatchBuilder = lambda a, k: _values(*a[:3])  # noqa: E731
# aten overload name (or packet name) -> (jit op, its inputs)
_DISPATCH: Dict[str, Tuple[str, DispatchBuilder]] = {
    "convolution": ("aten::_convolution", _d_conv),
    "_convolution": ("aten::_convolution", _d_conv),
    "addmm": ("aten::addmm", lambda a, k: _values(*a[:3])),
    "mm": ("aten::matmul", lambda a, k: _values(*a[:2])),  # below linear/matmul: activations count
    "bmm": ("aten::bmm", lambda a, k: _values(*a[:2])),
    "native_batch_norm": ("aten::batch_norm", _d_batch_norm(None)),
    "_native_batch_norm_legit_no_training": ("aten::batch_norm", _d_batch_norm(False)),
    "_native_batch_norm_legit.default": ("aten::batch_norm", _d_batch_norm(None)),
    "_native_batch_norm_legit.no_stats": ("aten::batch_norm", _d_bn_no_stats),
    "native_layer_norm": ("aten::layer_norm", lambda a, k: _values(a[0], a[1], _arg(a, k, 2, "weight"))),
    "native_group_norm": ("aten::group_norm", lambda a, k: _values(a[0], None, _arg(a, k, 1, "weight"))),
    "upsample_nearest2d": ("aten::upsample_nearest2d", lambda a, k: _values(a[0])),
    "upsample_bilinear2d": ("aten::upsample_bilinear2d", lambda a, k: _values(a[0])),
    "_adaptive_avg_pool2d": ("aten::adaptive_avg_pool2d", lambda a, k: _values(a[0])),
    "adaptive_avg_pool2d": ("aten::adaptive_avg_pool2d", lambda a, k: _values(a[0])),
    "grid_sampler_2d": ("aten::grid_sampler", lambda a, k: _values(a[0])),
    "_scaled_dot_product_flash_attention_for_cpu": ("aten::scaled_dot_product_attention", _SDPA),
    "_scaled_dot_product_flash_attention": ("aten::scaled_dot_product_attention", _SDPA),
    "_scaled_dot_product_efficient_attention": ("aten::scaled_dot_product_attention", _SDPA),
    "_scaled_dot_product_attention_math": ("aten::scaled_dot_product_attention", _SDPA),
    "_scaled_dot_product_fused_attention_overrideable": ("aten::scaled_dot_product_attention", _SDPA),
}
# dispatcher names of uncounted ops -> the name the jit graph gives them (None: the jit graph has
# no node for it, or fvcore ignores the node)
_RENAMED: Dict[str, Optional[str]] = {
    "_softmax": "aten::softmax", "_log_softmax": "aten::log_softmax",
    "max_pool1d_with_indices": "aten::max_pool1d", "max_pool2d_with_indices": "aten::max_pool2d",
    "max_pool3d_with_indices": "aten::max_pool3d", "constant_pad_nd": "aten::pad",
    "_unsafe_view": None, "_to_copy": None, "alias": None, "lift_fresh": None,
    "lift_fresh_copy": None, "_local_scalar_dense": None, "as_strided": None, "empty_strided": None,
    "scalar_tensor": None, "sym_size": None, "sym_stride": None, "sym_numel": None, "view_as_real": None,
    "_reshape_alias": None, "unsafe_view": None, "split_with_sizes_copy": None,
}


def _jit_name_of_uncounted(func: Any) -> Optional[str]:
    schema = func._schema.name  # "aten::add", "prim::device"
    if not schema.startswith("aten::"):
        return None
    packet = schema.split("::", 1)[1]
    name = _RENAMED.get(packet, schema) if packet in _RENAMED else schema
    return None if name is None or name in _IGNORED_OPS else name


# ---- the counting state and the two modes ------------------------------------------------------------

class _Counts:
    def __init__(self, model: Any) -> None:
        self.handles = fvcore_handles.combined_handles()
        self.aliases: Dict[Any, str] = {}
        for name, module in _named_modules_with_dup(model):  # fvcore's canonical names
            self.aliases.setdefault(module, name)
            self.aliases.setdefault(name, self.aliases[module])
        self.by_module: Dict[str, "Counter[str]"] = {}
        self.unsupported: "Counter[str]" = Counter()
        self.stack: List[str] = [""]
        self.inside = 0  # > 0 while a function-level op runs: its dispatcher ops are its own

    def canonical(self, name: str) -> str:
        return self.aliases[name]

    def _ancestors(self) -> List[str]:
        parts = self.stack[-1].split(".") if self.stack[-1] else []
        return [".".join(parts[:k]) for k in range(len(parts) + 1)]

    def add(self, jit: str, inputs: List[_Value], outputs: List[_Value]) -> None:
        handle = self.handles.get(jit)
        if handle is None:
            if jit not in _IGNORED_OPS:
                self.unsupported[jit] += 1
            return
        counted = handle(inputs, outputs)
        for name in self._ancestors():
            self.by_module.setdefault(name, Counter()).update(counted)

    def counted(self, name: str) -> Tuple[int, int]:
        return fvcore_handles.split(self.by_module.get(name, Counter()))

    @contextlib.contextmanager
    def hooks(self, model: Any) -> Iterator[None]:
        handles = []
        seen: Set[int] = set()
        for _, module in _named_modules_with_dup(model):
            if id(module) in seen:
                continue
            seen.add(id(module))
            name = self.aliases[module]
            handles.append(module.register_forward_pre_hook(self._push(name)))
            handles.append(module.register_forward_hook(self._pop, always_call=True))
        try:
            yield
        finally:
            for h in handles:
                h.remove()

    def _push(self, name: str) -> Callable[..., None]:
        def hook(module: Any, inputs: Any) -> None:
            self.stack.append(name)
        return hook

    def _pop(self, module: Any, inputs: Any, outputs: Any) -> None:
        if len(self.stack) > 1:
            self.stack.pop()


class _FunctionLevel(TorchFunctionMode):
    def __init__(self, counts: _Counts) -> None:
        super().__init__()
        self.counts = counts
        self.table = _function_table()

    def __torch_function__(self, func: Any, types: Any, args: Sequence[Any] = (),
                           kwargs: Optional[Dict[str, Any]] = None) -> Any:
        kwargs = kwargs or {}
        try:
            spec = self.table.get(func)
            hidden = _HIDDEN.get(func)
        except TypeError:  # unhashable callable
            spec = hidden = None
        if hidden is not None and not self.counts.inside:
            self.counts.add(hidden, [], [])
        if spec is None or self.counts.inside:
            return func(*args, **kwargs)
        jit, names, build = spec
        self.counts.inside += 1
        try:
            out = func(*args, **kwargs)
        finally:
            self.counts.inside -= 1
        if jit == _SETITEM:
            name = _setitem_name(args)
            if name is not None:
                self.counts.add(name, [], [])
            return out
        self.counts.add(jit, build(_bind(func, names, args, kwargs)), _outputs(out))
        return out


class _DispatchLevel(TorchDispatchMode):  # type: ignore[no-untyped-call]  # torch leaves it unannotated
    def __init__(self, counts: _Counts) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.counts = counts

    def __torch_dispatch__(self, func: Any, types: Any, args: Sequence[Any] = (),
                           kwargs: Optional[Dict[str, Any]] = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if not self.counts.inside:
            spec = _dispatch_spec(func)
            if spec is not None:
                jit, build = spec
                if build is None:
                    self.counts.add(jit, [], [])
                else:
                    self.counts.add(jit, build(args, kwargs), _outputs(out))
        return out


_SPECS: Dict[Any, Optional[Tuple[str, Optional[DispatchBuilder]]]] = {}


def _function_classes() -> List[Any]:
    """Every custom autograd Function class defined so far (mmcv's ops are imported by now)."""
    out, todo = [], list(torch.autograd.Function.__subclasses__())
    while todo:
        cls = todo.pop()
        out.append(cls)
        todo.extend(cls.__subclasses__())
    return out


@contextlib.contextmanager
def _opaque_functions(counts: _Counts) -> Iterator[None]:
    """Custom autograd Functions counted as fvcore counts them: torch.jit records one
    ``prim::PythonOp.<Name>`` per call (mmcv's ops: RoIAlign, DeformConv2d, MaskedConv2d,
    PSAMask...), uncounted and listed, and nothing of what runs inside. Here too, for the run:
    each Function's ``forward`` (which torch looks up on the class at every ``apply``, so
    ``f = Cls.apply`` bound at import still reaches it) lists its name, and its dispatcher ops
    are neither counted nor listed (the ``addmm`` inside MaskedConv2d counted 2 % over fvcore)."""
    patched = []

    def opaque(cls: Any, forward: Any) -> Any:
        def run(*args: Any, **kwargs: Any) -> Any:
            if not counts.inside:
                counts.add(f"prim::PythonOp.{cls.__name__}", [], [])
            counts.inside += 1
            try:
                return forward(*args, **kwargs)
            finally:
                counts.inside -= 1
        return staticmethod(run)

    for cls in _function_classes():
        own = cls.__dict__.get("forward")
        if isinstance(own, staticmethod):
            patched.append((cls, own))
            setattr(cls, "forward", opaque(cls, own.__func__))
    try:
        yield
    finally:
        for cls, own in patched:
            setattr(cls, "forward", own)


def _dispatch_spec(func: Any) -> Optional[Tuple[str, Optional[DispatchBuilder]]]:
    """(jit op, its inputs) of a counted op, (jit name, None) of an uncounted one fvcore lists,
    None for what fvcore ignores; per overload, looked up once."""
    if func not in _SPECS:
        packet = func._schema.name.split("::", 1)[-1]
        spec = _DISPATCH.get(f"{packet}.{func._overloadname}") or _DISPATCH.get(packet)
        if spec is None:
            name = _jit_name_of_uncounted(func)
            _SPECS[func] = None if name is None else (name, None)
        else:
            _SPECS[func] = spec
    return _SPECS[func]


# ---- running it -----------------------------------------------------------------------------------------

@contextlib.contextmanager
def on_meta(model: Any) -> Iterator[None]:
    """Every parameter, buffer and plain tensor attribute (LeViT's cached ``self.ab``) of ``model``
    on the meta device for the block (tied ones stay tied), the real ones put back after: no copy
    of any value is made, the model is unchanged."""
    saved: List[Tuple[Dict[str, Any], str, Any]] = []
    meta: Dict[int, Any] = {}
    try:
        for module in model.modules():
            for store in (module._parameters, module._buffers, vars(module)):
                for key, tensor in list(store.items()):
                    if not isinstance(tensor, torch.Tensor):  # None, or an attribute that is no tensor
                        continue
                    if id(tensor) not in meta:
                        moved = tensor.detach().to("meta")
                        meta[id(tensor)] = (torch.nn.Parameter(moved, requires_grad=tensor.requires_grad)
                                            if isinstance(tensor, torch.nn.Parameter) else moved)
                    saved.append((store, key, tensor))
                    store[key] = meta[id(tensor)]
        yield
    finally:
        for store, key, tensor in reversed(saved):
            store[key] = tensor


META, FAKE_TENSORS, REAL_TENSORS = "meta", "fake", "real"


def _run(model: Any, shape: Tuple[int, ...], how: str) -> _Counts:
    """One forward under the counting modes: on the meta device (parameters swapped for meta
    tensors, input on meta), on fake tensors, or on real random input."""
    counts = _Counts(model)
    with contextlib.ExitStack() as stack:
        if how == META:
            stack.enter_context(on_meta(model))
            x = torch.empty(shape, device="meta")
        elif how == FAKE_TENSORS:
            from torch._subclasses.fake_tensor import FakeTensorMode
            stack.enter_context(FakeTensorMode(allow_non_fake_inputs=True))
            x = torch.empty(shape)
        else:
            x = torch.randn(shape)
        stack.enter_context(counts.hooks(model))
        stack.enter_context(_opaque_functions(counts))
        stack.enter_context(_FunctionLevel(counts))
        stack.enter_context(_DispatchLevel(counts))
        model(x)
    return counts


def _cause(exc: BaseException) -> str:
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= 300 else text[:299] + "…"


def count_ops(model: Any, input_shape: Tuple[int, ...], before_each: Callable[[], None] = lambda: None
              ) -> Tuple[Counted, Dict[str, int], Callable[[str], str], str]:
    """``(counted, unsupported, canonical, engine)`` for ``model(x)``, ``x`` of shape
    ``(1, *input_shape)``, as :func:`mcx_review.analysis._one_trace` gives them.

    Shapes only first (``engine`` ``"dispatch"``): on the meta device, the fastest (no fake-tensor
    bookkeeping); a forward that mixes in CPU tensors of its own (a plain tensor attribute,
    ``torch.arange`` without a device) fails there and runs on fake tensors, which pass for CPU
    tensors. A forward that needs values (``.item()``, ``nonzero``, a value-dependent branch,
    numpy) runs again on real random input, still counted at the dispatcher
    (``"dispatch-real"``). ``before_each`` runs before every attempt (the caller resets what its
    own hooks recorded). Raises :class:`DispatchError` when no run succeeds.
    """
    shape = (1, *input_shape)
    causes = []
    for how in (META, FAKE_TENSORS, REAL_TENSORS):
        before_each()
        try:
            counts = _run(model, shape, how)
        except Exception as exc:  # noqa: BLE001 - any failure means: try the next way
            causes.append(f"{how} tensors: {_cause(exc)}")
            continue
        return (counts.counted, dict(counts.unsupported), counts.canonical, REAL if how == REAL_TENSORS else FAKE)
    raise DispatchError("; ".join(causes))
