"""The BM25 stage of a collection build: tokens per chunk of :data:`BM25_CHUNK`
documents (checkpointed), then the BM25 score matrix written straight into bm25s'
memory-mappable format."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from core.data.collection import (
    BM25_DIR,
)
from core.models.paths import atomic_write
from core.search.bm25_build import (
    BM25_B,
    BM25_K1,
    BM25_METHOD,
    CorpusTokenizer,
    entry_scores,
    lucene_idf,
    term_counts,
)
from core.search.collection_state import BuildState, embed_texts

BM25_CHUNK = 20_000


def build_bm25(folder: Path, db, count: int, fields, state: BuildState, say) -> None:
    """Tokenize per chunk (checkpointed), then write bm25s' CSC score matrix directly.

    Scores are bm25s' ``lucene`` ones: ``idf = ln(1 + (N - df + 0.5) / (df + 0.5))`` and
    ``tf / (tf + k1 (1 - b + b dl / avgdl))``, computed with the same float steps as the
    in-memory build (:mod:`core.search.bm25_build`), so the saved index answers exactly
    as ``bm25s.BM25(method="lucene").index(...)`` would over the same tokens.
    """
    from core.search.retrievers import _stemmer

    work = folder / "build" / "bm25"
    work.mkdir(parents=True, exist_ok=True)
    vocab_path = work / "vocab.json"
    vocab: dict[str, int] = json.loads(vocab_path.read_text()) if vocab_path.is_file() else {}
    start = int(state.data.get("bm25_chunks_done", 0)) * BM25_CHUNK
    if start:
        state.data.setdefault("resumed", {})["bm25"] = start
    tokenizer = _Tokenizer(_stemmer(), vocab)
    for chunk_no, begin in enumerate(range(start, count, BM25_CHUNK), start=start // BM25_CHUNK):
        stop = min(begin + BM25_CHUNK, count)
        docs, terms, tfs, lengths = tokenizer.counts(embed_texts(db, begin, stop, fields), begin)
        np.savez(work / f"chunk-{chunk_no:05d}.npz", doc=docs, term=terms, tf=tfs, length=lengths)
        atomic_write(vocab_path, json.dumps(vocab, ensure_ascii=False).encode())
        state.data["bm25_chunks_done"] = chunk_no + 1
        state.save()
        say("bm25: tokenize", stop, count)
    _write_bm25(folder / BM25_DIR, work, count, vocab, say)
    state.data["bm25_vocab"] = len(vocab)


class _Tokenizer:
    """bm25s' tokens (:class:`core.search.bm25_build.CorpusTokenizer`) as per-document
    term counts, term ids from the build's saved vocabulary."""

    def __init__(self, stemmer, vocab: dict[str, int]) -> None:
        self.tokenizer = CorpusTokenizer(vocab, stemmer)
        self.vocab = vocab

    def counts(self, texts: Sequence[str], first_row: int):
        """``(doc, term, tf, length)`` arrays for ``texts`` (rows from ``first_row``),
        term-major, rows ascending within a term."""
        terms, lengths = self.tokenizer.term_ids(list(texts))
        counts = term_counts(terms, lengths, len(self.vocab))
        term = np.repeat(
            np.arange(counts.num_terms, dtype=np.int32), np.diff(counts.indptr)
        ).astype(np.int32)
        doc = (counts.docs.astype(np.int64) + first_row).astype(np.int32)
        return doc, term, counts.tf.astype(np.float32), lengths.astype(np.int32)


def _write_bm25(out: Path, work: Path, count: int, vocab: dict[str, int], say) -> None:
    import bm25s

    chunks = sorted(work.glob("chunk-*.npz"))
    if not vocab:
        vocab = {"": 0}  # bm25s needs a vocabulary; no document has any token
    n_vocab = len(vocab)
    lengths = np.concatenate([np.load(c)["length"] for c in chunks]).astype(np.float64)
    avgdl = float(lengths.mean()) if len(lengths) else 1.0
    df = np.zeros(n_vocab, dtype=np.int64)
    for c in chunks:
        df += np.bincount(np.load(c)["term"], minlength=n_vocab)
    idf = lucene_idf(df, count)
    nnz = int(df.sum())
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    indptr = np.zeros(n_vocab + 1, dtype=np.int64)
    np.cumsum(df, out=indptr[1:])
    data = np.lib.format.open_memmap(
        tmp / "data.csc.index.npy", "w+", dtype=np.float32, shape=(nnz,)
    )
    indices = np.lib.format.open_memmap(
        tmp / "indices.csc.index.npy", "w+", dtype=np.int32, shape=(nnz,)
    )
    cursor = indptr[:-1].copy()
    for i, c in enumerate(chunks):
        part = np.load(c)
        term, doc, tf = part["term"], part["doc"], part["tf"]
        score = entry_scores(idf[term], tf, lengths[doc], avgdl, BM25_K1, BM25_B)
        order = np.argsort(term, kind="stable")  # docs stay ascending within a term
        term, doc, score = term[order], doc[order], score[order]
        counts = np.bincount(term, minlength=n_vocab)
        group_start = np.concatenate([[0], np.cumsum(counts)])[term]
        dest = cursor[term] + (np.arange(len(term)) - group_start)
        data[dest] = score
        indices[dest] = doc
        cursor += counts
        say("bm25: write", i + 1, len(chunks))
    data.flush()
    indices.flush()
    del data, indices
    np.save(tmp / "indptr.csc.index.npy", indptr)
    (tmp / "vocab.index.json").write_text(json.dumps(vocab, ensure_ascii=False), "utf-8")
    params = {
        "k1": BM25_K1,
        "b": BM25_B,
        "delta": 0.5,
        "method": BM25_METHOD,
        "idf_method": BM25_METHOD,
        "dtype": "float32",
        "int_dtype": "int32",
        "num_docs": int(count),
        "version": bm25s.__version__,
        "backend": "numpy",
    }
    (tmp / "params.index.json").write_text(json.dumps(params, indent=1))
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
