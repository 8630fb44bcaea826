"""A sentence-transformers bi-encoder exported to ONNX and run with onnxruntime.

:func:`export_sentence_transformer` exports a loaded ``SentenceTransformer`` once (the whole
module chain: transformer, pooling, normalisation) with ``torch.onnx`` and keeps it
under ``<cache dir>/models/``, next to the tokenizer it needs and a small JSON of
facts. Later processes load only onnxruntime and ``tokenizers``: no PyTorch import,
which saves seconds at start-up. An export is used only after its vectors matched
sentence-transformers' own on probe texts (padded, unpadded, truncated), so a model
whose modules do not trace faithfully falls back to PyTorch.

Two precisions:

* ``"fp32"``: the same vectors as PyTorch to ~1e-6; on this 2-core CPU about 1.6x
  as fast (movies: ~104 against ~63 docs/s), since onnxruntime fuses the layers and
  runs one document per call with no padding, on two threads at once. BERT models are
  traced with eager attention and rewritten by onnxruntime's transformer optimizer
  (one ``Attention`` node per layer, skip-layer-norm, bias-GELU: ~60 nodes instead of
  ~400), which cuts a short query's call from ~4-7 to ~3.5 ms; vectors move by <3e-7.
  For corpus encoding it hardly matters: the work is compute-bound (MiniLM-L6 costs
  ~1.9 GFLOP per 86-token movie; one core does ~45 docs per CPU-second, ~86 GFLOP/s
  against ~145 for a large single-thread SGEMM), and length-sorted padded batches of
  8-64 docs measured no faster than one document per call, so documents still go one
  per call and stay independent of their neighbours. ~300 docs/s in fp32 would need
  ~570 GFLOP/s, about twice what both cores peak at.
* ``"int8"``: weights quantised per output channel, activations per call (dynamic);
  ~1.8x faster again (~185 docs/s), but vectors move (cosine 0.993 to fp32 on
  average, 0.98 at worst), enough to change which documents make the top 50 near the
  cut: on the 20 benchmark movie queries the reranked top 10 changed on 8. Opt-in
  only, with its own embedding cache.

:class:`OnnxSentenceEncoder` runs documents one per call on ``workers`` threads (the
GIL is released inside onnxruntime), so a document's vector never depends on which
other documents it was encoded with.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from core.models.parallel import WorkerPool, default_workers
from core.models.paths import cache_dir

# Bump a precision's version when its export changes, so old folders are not reused.
# fp32 v2: traced with eager attention and fused (onnxruntime transformer optimizer).
EXPORT_VERSIONS = {"fp32": 2, "int8": 1}
PRECISIONS = ("fp32", "int8")
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
PROBE_TEXTS = (
    "A heist in a big city.",
    "  Whitespace  around\tthe text  ",
    "Émilie's café — naïve résumé (UTF-8) 123",
    "",
    "word " * 600,  # longer than any max_seq_length: checks truncation
    "Minions Stuart, Kevin and Bob are recruited by Scarlet Overkill, a super-villain.",
)

_EXPORT_LOCK = threading.Lock()


class ExportError(RuntimeError):
    """The model could not be exported faithfully; use PyTorch instead."""


def onnx_encoder_dir(model_id: str, precision: str) -> Path:
    """Where the export of ``model_id`` at ``precision`` is cached."""
    slug = "".join(c if c.isalnum() or c in "-_." else "-" for c in model_id)[-60:]
    digest = hashlib.sha256(model_id.encode()).hexdigest()[:10]
    version = EXPORT_VERSIONS[precision]
    return cache_dir() / "models" / f"{slug}-{digest}-onnx-{precision}-v{version}"


def cached_export(model_id: str, precision: str) -> Path | None:
    """The cached export's folder if it is complete, else None."""
    folder = onnx_encoder_dir(model_id, precision)
    if (folder / "encoder.json").is_file() and (folder / "model.onnx").is_file():
        return folder
    return None


def export_sentence_transformer(model, model_id: str, precision: str = "fp32") -> Path:
    """Export ``model`` (a loaded ``SentenceTransformer``) once; return its folder.

    Raises :class:`ExportError` when the export does not reproduce the model's vectors.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, not {precision!r}")
    with _EXPORT_LOCK:
        found = cached_export(model_id, precision)
        if found is not None:
            return found
        target = onnx_encoder_dir(model_id, precision)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
        try:
            tmp.chmod(0o755)
            _export(model, tmp, precision)
            facts = {
                "model_id": model_id,
                "precision": precision,
                "dimension": int(model.get_embedding_dimension()),
                "max_seq_length": int(model.max_seq_length),
                "version": EXPORT_VERSIONS[precision],
            }
            _verify(model, tmp, facts)
            (tmp / "encoder.json").write_text(json.dumps(facts, indent=2))
            _move_into_place(tmp, target)
        except ExportError:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        except Exception as exc:  # any tracing failure means: not exportable
            shutil.rmtree(tmp, ignore_errors=True)
            raise ExportError(f"cannot export {model_id!r} to ONNX: {exc}") from exc
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return target


def _move_into_place(tmp: Path, target: Path) -> None:
    """Rename ``tmp`` to ``target``; if another process got there first, keep theirs."""
    if target.exists() and not (target / "encoder.json").is_file():
        shutil.rmtree(target, ignore_errors=True)  # a broken leftover
    try:
        os.replace(tmp, target)
    except OSError:
        if not (target / "encoder.json").is_file():
            raise
        shutil.rmtree(tmp, ignore_errors=True)


def _export(model, folder: Path, precision: str) -> None:
    import torch

    tokenizer = model.tokenizer.backend_tokenizer  # a tokenizers.Tokenizer
    tokenizer = type(tokenizer).from_str(tokenizer.to_str())  # a copy we may configure
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=int(model.max_seq_length), strategy="longest_first")
    tokenizer.save(str(folder / "tokenizer.json"))

    class Wrapped(torch.nn.Module):
        def __init__(self, inner) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            features = {
                "input_ids": input_ids,
                "attention_mask": attention_mask,
                "token_type_ids": token_type_ids,
                "modality": "text",
            }
            return self.inner(features)["sentence_embedding"]

    # Trace with two rows of different lengths, so the attention mask is really used.
    ids = torch.tensor([[101, 7592, 2088, 2003, 102], [101, 7592, 102, 0, 0]])
    mask = (ids != 0).long()
    fp32_path = folder / ("model.onnx" if precision == "fp32" else "model-fp32.onnx")
    import warnings

    with warnings.catch_warnings(), torch.no_grad(), _eager_attention(model, precision):
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Wrapped(model).eval(),
            (ids, mask, torch.zeros_like(ids)),
            str(fp32_path),
            input_names=list(INPUT_NAMES),
            output_names=["sentence_embedding"],
            dynamic_axes={name: {0: "batch", 1: "sequence"} for name in INPUT_NAMES}
            | {"sentence_embedding": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    if precision == "fp32":
        _fuse_transformer(fp32_path, model)
    if precision == "int8":
        import logging

        from onnxruntime.quantization import QuantType, quantize_dynamic

        root = logging.getLogger()
        level = root.level
        root.setLevel(max(level, logging.ERROR))  # "consider pre-processing" advice
        try:
            quantize_dynamic(
                str(fp32_path),
                str(folder / "model.onnx"),
                weight_type=QuantType.QInt8,
                per_channel=True,
                op_types_to_quantize=["MatMul"],
            )
        finally:
            root.setLevel(level)
        fp32_path.unlink()


def _bert_config(model):
    """The Hugging Face config of a sentence-transformers model's BERT, else None."""
    try:
        config = model[0].auto_model.config
    except (AttributeError, IndexError, KeyError, TypeError):
        return None
    return config if getattr(config, "model_type", None) == "bert" else None


@contextlib.contextmanager
def _eager_attention(model, precision: str):
    """Trace BERT's eager attention (fp32 only): its ONNX pattern is the one
    onnxruntime's transformer optimizer fuses into one ``Attention`` node; the SDPA
    trace is not recognised. Same maths; the int8 export keeps the SDPA trace."""
    auto = getattr(model[0], "auto_model", None) if _bert_config(model) else None
    previous = getattr(getattr(auto, "config", None), "_attn_implementation", None)
    if auto is None or precision != "fp32" or not hasattr(auto, "set_attn_implementation"):
        yield
        return
    try:
        auto.set_attn_implementation("eager")
    except Exception:  # an older transformers: trace what there is
        yield
        return
    try:
        yield
    finally:
        if previous is not None:
            auto.set_attn_implementation(previous)


def _fuse_transformer(path: Path, model) -> None:
    """Rewrite the fp32 graph at ``path`` with onnxruntime's BERT fusions (embedding,
    attention, skip-layer-norm, bias-GELU nodes): the same vectors to ~1e-6, far
    fewer nodes per call. Left as is when the model is no BERT or fusion fails;
    :func:`_verify` then checks whatever graph is there."""
    config = _bert_config(model)
    if config is None:
        return
    import logging

    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.ERROR))
    try:
        from onnxruntime.transformers.optimizer import optimize_model

        fused = optimize_model(
            str(path),
            model_type="bert",
            num_heads=int(config.num_attention_heads),
            hidden_size=int(config.hidden_size),
            opt_level=1,
        )
        if not fused.get_fused_operator_statistics().get("Attention"):
            return  # nothing worth keeping: leave the plain export
        fused.save_model_to_file(str(path))
    except Exception:  # optional speed-up; the plain export is correct
        return
    finally:
        root.setLevel(level)


def _verify(model, folder: Path, facts: dict) -> None:
    expected = np.asarray(
        model.encode(list(PROBE_TEXTS), normalize_embeddings=False, convert_to_numpy=True),
        dtype=np.float32,
    )
    runner = OnnxSentenceEncoder(folder, facts=facts, workers=1)
    alone = runner.encode(list(PROBE_TEXTS), kind="document")
    batched = runner.run_batch(list(PROBE_TEXTS))  # padded: checks the mask is honoured
    exp = _normalize(expected)
    tolerance = 1e-4 if facts["precision"] == "fp32" else None
    if tolerance is not None and np.abs(alone - exp).max() > tolerance:
        raise ExportError(f"ONNX vectors differ from PyTorch's by {np.abs(alone - exp).max():.2e}")
    if tolerance is None and float((alone * exp).sum(axis=1).min()) < 0.95:
        raise ExportError("the int8 export moved vectors too far (cosine < 0.95)")
    if facts["precision"] == "fp32" and np.abs(batched - alone).max() > 1e-4:
        raise ExportError("the ONNX export ignores the attention mask")


def _normalize(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (vectors / norms).astype(np.float32)


class OnnxSentenceEncoder:
    """Run an exported bi-encoder: one document per call, on ``workers`` threads.

    Returns unit-length float32 rows. Thread-safe (``InferenceSession.run`` is, and the
    tokenizer is configured once).
    """

    def __init__(
        self,
        folder: Path,
        *,
        facts: dict | None = None,
        workers: int | None = None,
        threads: int | None = None,
    ) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.folder = folder
        self.facts = facts or json.loads((folder / "encoder.json").read_text())
        self.dimension = int(self.facts["dimension"])
        self.max_seq_length = int(self.facts["max_seq_length"])
        self.precision = self.facts["precision"]
        self.workers = default_workers() if workers is None else max(1, int(workers))
        self._tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or (1 if self.workers > 1 else 0)
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            str(folder / "model.onnx"), options, providers=["CPUExecutionProvider"]
        )
        self._inputs = {i.name for i in self._session.get_inputs()}
        self._pool = WorkerPool(self.workers)

    def encode(
        self,
        texts: Sequence[str],
        *,
        kind: str = "document",
        progress: Callable[[int, int], None] | None = None,
        chunk: int = 256,
    ) -> np.ndarray:
        """Unit-length vectors of ``texts``; ``progress(done, total)`` after each chunk."""
        total = len(texts)
        out = np.zeros((total, self.dimension), dtype=np.float32)
        for start in range(0, total, chunk):
            part = list(texts[start : start + chunk])
            encodings = self._tokenizer.encode_batch(part)
            order = sorted(range(len(part)), key=lambda i: -len(encodings[i].ids))

            def run(i: int, encodings=encodings, start=start) -> None:
                enc = encodings[i]
                feed = {
                    "input_ids": np.asarray([enc.ids], dtype=np.int64),
                    "attention_mask": np.asarray([enc.attention_mask], dtype=np.int64),
                    "token_type_ids": np.asarray([enc.type_ids], dtype=np.int64),
                }
                feed = {k: v for k, v in feed.items() if k in self._inputs}
                out[start + i] = self._session.run(None, feed)[0][0]

            self._pool.map(run, order)
            if progress is not None:
                progress(min(start + chunk, total), total)
        return _normalize(out)

    def run_batch(self, texts: Sequence[str]) -> np.ndarray:
        """All ``texts`` in one padded call (used to check the export honours the mask)."""
        encodings = self._tokenizer.encode_batch(list(texts))
        width = max(len(e.ids) for e in encodings)
        feed = {name: np.zeros((len(texts), width), dtype=np.int64) for name in INPUT_NAMES}
        for row, enc in enumerate(encodings):
            n = len(enc.ids)
            feed["input_ids"][row, :n] = enc.ids
            feed["attention_mask"][row, :n] = 1
            feed["token_type_ids"][row, :n] = enc.type_ids
        feed = {k: v for k, v in feed.items() if k in self._inputs}
        return _normalize(self._session.run(None, feed)[0])
