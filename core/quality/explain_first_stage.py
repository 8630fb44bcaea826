"""Why the first stage retrieved a document: its score decomposed exactly.

* **BM25** (``bm25s``, Lucene variant): ``score = sum over query terms of
  idf(t) * tf(t, d) / (tf(t, d) + k1 * (1 - b + b * |d| / avgdl))`` with
  ``idf(t) = ln(1 + (N - df + 0.5) / (df + 0.5))``; a term repeated in the query counts
  once per occurrence. Recomputed here from the index's own statistics (``N``, ``df``
  from the stored matrix; ``|d|`` and ``avgdl`` from the corpus tokenised as the index
  was) and checked against the retriever's score.
* **Dense, mean pooling** (all-MiniLM-L6-v2): the document vector is ``d = mean_t h_t``
  over its token embeddings, normalised, so the cosine with the unit query vector ``q``
  is ``sum_t q . h_t / (n * |d|)``: each token's share is exact. The token embeddings
  come from the same ONNX graph the index was built with (the tensor that enters its
  pooling, exposed as an extra output). A model that pools differently (bge-small: the
  CLS token) does not decompose this way, and says so.
* **Hybrid (RRF)** and **fusion**: each side's part of the fused score.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.data.documents import embed_text
from core.models.paths import atomic_write, cache_dir
from core.quality.explain import ExplainError, Piece

_LOCK = threading.Lock()
_AVGDL: dict[tuple[int, str], float] = {}


@dataclass(frozen=True, slots=True)
class Part:
    """One term (or side) of a first-stage score: its label, value and details."""

    label: str
    value: float
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FirstStageExplanation:
    """A first-stage score split into parts that sum to it (``exact``), or a note why
    it cannot be (``exact`` False, no parts)."""

    kind: str
    score: float | None
    shown: float | None
    parts: tuple[Part, ...] = ()
    words: tuple[Piece, ...] = ()
    note: str = ""
    exact: bool = True

    @property
    def total(self) -> float:
        """The parts' sum (with the word shares, for dense: the same number)."""
        return float(sum(p.value for p in self.parts))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        data = asdict(self)
        data["total"] = self.total
        return data


# ---------------------------------------------------------------- BM25


def _corpus_avgdl(index: Any, dataset: Any) -> float:
    """Mean token count of the indexed documents (as ``bm25s`` computed it at index time)."""
    from core.search.retrievers import _tokenize

    if getattr(index, "avgdl", None) is not None:  # kept by an in-memory build
        return float(index.avgdl)
    key = (id(index), getattr(dataset, "content_hash", ""))
    with _LOCK:
        if key in _AVGDL:
            return _AVGDL[key]
    tokens = _tokenize(dataset.texts(index.fields, "embed"), return_ids=False)
    avgdl = float(np.array([len(t) for t in tokens]).mean())
    with _LOCK:
        _AVGDL[key] = avgdl
    return avgdl


def explain_bm25(index: Any, dataset: Any, doc_id: str, query: str) -> FirstStageExplanation:
    """Each query term's part of ``doc_id``'s BM25 score (idf part, term-frequency part).

    ``index`` is a :class:`core.search.retrievers.BM25Index` built from ``dataset``.
    """
    from core.search.retrievers import _tokenize

    bm = index._retriever  # the bm25s object: k1, b and the stored score matrix
    vocab = index._vocab
    if not dataset.has_id(doc_id):
        raise ExplainError(f"document id '{doc_id}' is not in the dataset")
    shown = float(index.scores(query)[dataset.position(doc_id)])
    terms = [t for t in _tokenize([query], return_ids=False)[0] if t in vocab]
    if not terms:
        return FirstStageExplanation("bm25", 0.0, shown, note="no query term is in the index")
    doc_tokens = _tokenize([embed_text(dataset.record(doc_id), index.fields)], return_ids=False)[0]
    dl = len(doc_tokens)
    avgdl = _corpus_avgdl(index, dataset)
    n_docs = int(bm.scores["num_docs"])
    indptr = bm.scores["indptr"]
    k1, b = float(bm.k1), float(bm.b)
    words = {}
    for word in query.split():
        for stem in _tokenize([word], return_ids=False)[0]:
            words.setdefault(stem, []).append(word)
    parts = []
    for term in dict.fromkeys(terms):
        tid = vocab[term]
        df = int(indptr[tid + 1] - indptr[tid])
        tf = doc_tokens.count(term)
        idf = float(np.log(1.0 + (n_docs - df + 0.5) / (df + 0.5)))
        tf_part = tf / (tf + k1 * (1.0 - b + b * dl / avgdl)) if tf else 0.0
        count = terms.count(term)
        detail = {
            "query_words": words.get(term, []),
            "tf": tf,
            "df": df,
            "idf": idf,
            "tf_part": tf_part,
            "times_in_query": count,
        }
        parts.append(Part(term, count * idf * tf_part, detail))
    parts.sort(key=lambda p: -p.value)
    score = float(sum(p.value for p in parts))
    note = (
        f"BM25 (Lucene variant, k1={k1:g}, b={b:g}): N={n_docs}, |d|={dl} terms, avgdl={avgdl:.2f}"
    )
    return FirstStageExplanation("bm25", score, shown, tuple(parts), note=note)


# ---------------------------------------------------------------- dense


@functools.lru_cache(maxsize=4)
def _token_session(model_path: str):
    """An onnxruntime session of the encoder graph that also outputs the token
    embeddings entering its mean pooling (``Mul(h, mask) -> ReduceSum -> Div``). The
    rewritten graph is kept beside the export's cache (``<cache dir>/models/``), named
    by the original's size and date, so later processes skip the rewrite."""
    import onnxruntime as ort

    source = Path(model_path)
    stat = source.stat()
    target = (
        cache_dir()
        / "models"
        / (f"{source.parent.name}-tokens-{stat.st_size}-{stat.st_mtime_ns}.onnx")
    )
    if not target.is_file() and not _write_token_graph(source, target):
        return None
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(target), options, providers=["CPUExecutionProvider"])


def _write_token_graph(source: Path, target: Path) -> bool:
    """Write ``source`` with the pooling's input tensor as an extra output; False when
    the graph has no mean pooling to split."""
    import onnx

    model = onnx.load(str(source))
    producers = {o: n for n in model.graph.node for o in n.output}
    tensor = None
    for node in model.graph.node:
        if node.op_type == "ReduceSum":
            mul = producers.get(node.input[0])
            if mul is not None and mul.op_type == "Mul":
                tensor = mul.input[0]
                break
    if tensor is None:
        return False
    output = onnx.helper.make_tensor_value_info(tensor, onnx.TensorProto.FLOAT, None)
    model.graph.output.append(output)
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(target, model.SerializeToString())
    return True


def explain_dense(
    encoder: Any, query: str, doc_text: str, shown: float | None = None
) -> FirstStageExplanation:
    """Each token's (and word's) share of the cosine of ``query`` and ``doc_text``.

    ``shown`` is the retriever's score, kept beside the recomputed one to compare.
    """
    name = str(getattr(encoder, "name", ""))
    if "bge" in name.lower():
        return FirstStageExplanation(
            "dense",
            None,
            shown,
            note=f"{name} pools differently (CLS): its cosine does not split over tokens",
            exact=False,
        )
    onnx_runner = getattr(encoder, "_onnx", None)  # the served ONNX export, if any
    if onnx_runner is None or getattr(onnx_runner, "precision", "") != "fp32":
        return FirstStageExplanation(
            "dense",
            None,
            shown,
            note=f"{name} runs without a token output here (only pooled vectors): no token shares",
            exact=False,
        )
    session = _token_session(str(onnx_runner.folder / "model.onnx"))
    if session is None:
        return FirstStageExplanation(
            "dense", None, shown, note=f"{name}'s graph has no mean pooling to split", exact=False
        )
    q = np.asarray(encoder.encode([query], kind="query")[0], dtype=np.float64)
    enc = onnx_runner._tokenizer.encode(doc_text)
    feed = {
        "input_ids": np.asarray([enc.ids], dtype=np.int64),
        "attention_mask": np.asarray([enc.attention_mask], dtype=np.int64),
        "token_type_ids": np.asarray([enc.type_ids], dtype=np.int64),
    }
    inputs = {i.name for i in session.get_inputs()}
    _pooled, hidden = session.run(None, {k: v for k, v in feed.items() if k in inputs})
    h = np.asarray(hidden[0], dtype=np.float64)
    n = h.shape[0]
    d = h.mean(axis=0)
    shares = h @ q / (n * np.linalg.norm(d))
    score = float(shares.sum())
    special = [i for i, m in enumerate(enc.special_tokens_mask) if m]
    read_end = max(
        (e for (s, e), m in zip(enc.offsets, enc.special_tokens_mask, strict=True) if not m),
        default=0,
    )
    per_word: dict[tuple[int, int], float] = {}
    from core.quality.explain import words_of

    spans = words_of(doc_text)
    starts = [s for s, _ in spans]
    import bisect

    for i, ((s, e), m) in enumerate(zip(enc.offsets, enc.special_tokens_mask, strict=True)):
        if m or e <= s:
            continue
        j = bisect.bisect_right(starts, s) - 1
        if j >= 0:
            per_word[spans[j]] = per_word.get(spans[j], 0.0) + float(shares[i])
    words = tuple(Piece(doc_text[s:e], s, e, per_word.get((s, e)), s < read_end) for s, e in spans)
    parts = [Part("[CLS]/[SEP]", float(shares[special].sum()), {"tokens": len(special)})]
    for w in sorted((w for w in words if w.effect is not None), key=lambda w: -w.effect):
        parts.append(Part(w.text, float(w.effect)))
    unread = sum(1 for w in words if not w.read)
    note = f"mean pooling over {n} tokens, |d|={np.linalg.norm(d):.4f}"
    if unread:
        note += (
            f"; {unread} words past the encoder's {onnx_runner.max_seq_length} tokens never read"
        )
    return FirstStageExplanation("dense", score, shown, tuple(parts), words, note=note)


# ---------------------------------------------------------------- hybrid and fusion


def explain_rrf(retriever: Any, query: str, doc_id: str) -> FirstStageExplanation:
    """The dense and BM25 parts ``1 / (k + rank)`` of a hybrid (RRF) retrieval score."""
    depth = retriever.pool
    dense = retriever.dense.retrieve(query, depth).hits
    lexical = retriever.bm25.retrieve(query, depth).hits
    k = retriever.rrf_k
    parts = []
    for label, hits in (("dense", dense), ("bm25", lexical)):
        rank = next((h.rank for h in hits if h.id == doc_id), None)
        value = 1.0 / (k + rank) if rank is not None else 0.0
        parts.append(Part(label, value, {"rank": rank, "depth": depth}))
    score = float(sum(p.value for p in parts))
    return FirstStageExplanation("rrf", score, None, tuple(parts), note=f"RRF k={k}")


def explain_fusion(result: Any, doc_id: str) -> FirstStageExplanation:
    """The first stage's and the cross-encoder's parts of a fused score
    (:mod:`core.search.fusion`), for a :class:`core.search.pipeline.SearchResult`."""
    from core.search.fusion import DEFAULT_FUSION_RRF_K, minmax

    scored = [c for c in result.candidates if c.rerank_score is not None]
    ids = [c.id for c in scored]
    if doc_id not in ids or not result.fused:
        raise ExplainError(f"'{doc_id}' has no fused score in this result")
    i = ids.index(doc_id)
    w = result.fusion_weight
    first = np.asarray([c.retrieval_score for c in scored], dtype=np.float64)
    ce = np.asarray([c.rerank_score for c in scored], dtype=np.float64)
    if result.fusion == "linear":
        parts = (
            Part("reranker", w * float(minmax(ce)[i]), {"weight": w, "raw": float(ce[i])}),
            Part(
                "first stage",
                (1 - w) * float(minmax(first)[i]),
                {"weight": 1 - w, "raw": float(first[i])},
            ),
        )
    else:
        ce_rank = int((-ce).argsort(kind="stable").tolist().index(i)) + 1
        first_rank = int((-first).argsort(kind="stable").tolist().index(i)) + 1
        k = DEFAULT_FUSION_RRF_K
        parts = (
            Part("reranker", w / (k + ce_rank), {"weight": w, "rank": ce_rank}),
            Part("first stage", (1 - w) / (k + first_rank), {"weight": 1 - w, "rank": first_rank}),
        )
    shown = scored[i].fused_score
    return FirstStageExplanation(
        "fusion",
        float(sum(p.value for p in parts)),
        shown,
        parts,
        note=f"{result.fusion} fusion, weight {w:g} on the reranker",
    )


def explain_retrieval(
    retriever: Any,
    dataset: Any,
    doc_id: str,
    query: str,
    shown: float | None = None,
    fields: Sequence[str] | None = None,
) -> FirstStageExplanation:
    """The first stage's reasons for ``doc_id``, whichever retriever ran; ``fields``
    are the embedded fields of a dense index (default: the dataset's)."""
    kind = getattr(retriever, "kind", "")
    if kind == "bm25":
        return explain_bm25(retriever, dataset, doc_id, query)
    if kind == "hybrid":
        return explain_rrf(retriever, query, doc_id)
    if kind == "dense":
        fields = fields or dataset.default_embed_fields
        text = embed_text(dataset.record(doc_id), fields)
        return explain_dense(retriever.encoder, query, text, shown)
    return FirstStageExplanation(kind or "unknown", None, shown, note="not explained", exact=False)


def top_terms(expl: FirstStageExplanation, k: int = 3) -> list[str]:
    """The parts that raised the score most (positive, best first; no specials)."""
    parts: Sequence[Part] = [p for p in expl.parts if p.value > 0 and not p.label.startswith("[")]
    return [p.label for p in sorted(parts, key=lambda p: -p.value)[:k]]
