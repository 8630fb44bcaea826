"""A BM25 index built in one vectorised pass: the same tokens and the same float32
scores as ``bm25s`` (``bm25s.tokenize`` with English stop words and a stemmer, then
``bm25s.BM25(method="lucene").index``), built about ten times faster.

``bm25s`` builds its score matrix with Python loops over every document (a ``Counter``
per document, a set intersection per document for the document frequencies), which
took most of the time from a 100,000-record upload to its first results. Here:

* :class:`CorpusTokenizer`: lower-case, ``(?u)\\b\\w\\w+\\b`` words, English stop words
  dropped, each distinct word stemmed once (PyStemmer), words mapped to term ids with
  one dictionary look-up each (``map``), in blocks of :data:`BLOCK_DOCS` documents so the
  word strings of a large corpus are never all alive at once;
* :func:`term_counts`: a CSR document-term matrix from the flat term ids
  (``scipy.sparse``: duplicates summed, then converted to CSC, both in C);
* :func:`lucene_scores`: ``bm25s``' Lucene scores over the CSC matrix, computed with
  the very same float32/float64 steps as ``bm25s`` so every stored score is bit-equal
  (the idf of each distinct document frequency with :func:`math.log`, as ``bm25s``).

The result is a ``bm25s.BM25`` object (:func:`bm25s_index`), so querying, saving and
the explanations work as before.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import chain

import bm25s
import numpy as np
import scipy.sparse as sp

# bm25s and scipy.sparse are imported with this module (~0.2 s), not on the first build:
# a first build runs in a page's thread while the background embedding thread works, and
# scipy's first import, racing another thread's lazy numpy imports, once failed there
# ("cannot import name '_center' from numpy.core._multiarray_umath", bench-background).

BM25_METHOD = "lucene"
BM25_K1, BM25_B = 1.5, 0.75  # bm25s' defaults, which the app has always used
TOKEN_PATTERN = r"(?u)\b\w\w+\b"  # bm25s.tokenize's default
BLOCK_DOCS = 8192
_SEPARATOR, _MARK = "\x00", -2
_JOIN = f" {_SEPARATOR} "
# bytes.translate table: ASCII word characters and the separator kept, all else a space
_ASCII_WORDS = bytes(
    c if chr(c).isascii() and (chr(c).isalnum() or chr(c) in "_\x00") else 32 for c in range(256)
)


def _english_stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


def _english_stopwords() -> frozenset[str]:
    from bm25s.tokenization import _infer_stopwords  # loaded with bm25s above

    return frozenset(_infer_stopwords("en"))


class CorpusTokenizer:
    """``bm25s.tokenize(texts, stopwords="en", stemmer=<English>)``'s tokens as term ids.

    ``vocab`` (stem -> term id) grows as new stems are met; pass a saved one to go on
    with it (a collection build resumes its chunks that way)."""

    def __init__(self, vocab: dict[str, int] | None = None, stemmer=None) -> None:
        self.vocab: dict[str, int] = {} if vocab is None else vocab
        self.stemmer = _english_stemmer() if stemmer is None else stemmer
        self.stop = _english_stopwords()
        self.split = re.compile(TOKEN_PATTERN).findall
        # \w\w+ finds the same words as \b\w\w+\b (maximal runs of 2+ word characters)
        self.split_joined = re.compile(r"\w\w+|\x00").findall
        # every distinct lower-cased word seen -> its term id (-1: a stop word)
        self.word_terms: dict[str, int] = {_SEPARATOR: _MARK}

    def term_ids(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """``(terms, lengths)``: every document's term ids, concatenated in text order
        (int32), and each document's token count (int64), stop words left out."""
        terms: list[np.ndarray] = []
        lengths: list[np.ndarray] = []
        for begin in range(0, len(texts), BLOCK_DOCS):
            block_terms, block_lengths = self._block(texts[begin : begin + BLOCK_DOCS])
            terms.append(block_terms)
            lengths.append(block_lengths)
        if not terms:
            return np.zeros(0, np.int32), np.zeros(0, np.int64)
        return np.concatenate(terms), np.concatenate(lengths)

    def _block(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """One block: its documents lower-cased and joined with `` \\x00 `` (not a word
        character, so no word spans two documents), split in one pass, the separators
        kept as tokens to count each document's words. ASCII text is split with
        ``bytes.translate`` + ``split`` (runs of ``[A-Za-z0-9_]``, which is what ``\\w``
        matches in ASCII; one-character runs are dropped by :meth:`_learn`), other text
        by one ``findall``."""
        lowered = [text.lower() for text in texts]
        joined = _JOIN.join(lowered)
        if joined.count(_SEPARATOR) != max(0, len(texts) - 1):  # a text holds \x00
            return self._block_per_document(lowered)
        if joined.isascii():
            flat = joined.encode("ascii").translate(_ASCII_WORDS).decode("ascii").split()
        else:
            flat = self.split_joined(joined)
        self._learn(flat)
        ids = np.fromiter(map(self.word_terms.__getitem__, flat), dtype=np.int32, count=len(flat))
        doc = np.cumsum(ids == _MARK)
        kept = ids >= 0
        lengths = np.bincount(doc[kept], minlength=len(texts)).astype(np.int64)
        return ids[kept], lengths

    def _block_per_document(self, lowered: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        words = [self.split(text) for text in lowered]
        flat = list(chain.from_iterable(words))
        self._learn(flat)
        ids = np.fromiter(map(self.word_terms.__getitem__, flat), dtype=np.int32, count=len(flat))
        counts = np.fromiter(map(len, words), dtype=np.int64, count=len(words))
        kept = ids >= 0
        doc = np.repeat(np.arange(len(words)), counts)
        lengths = np.bincount(doc[kept], minlength=len(words)).astype(np.int64)
        return ids[kept], lengths

    def _learn(self, words: Iterable[str]) -> None:
        """Give every new word its term id (stemming each distinct new word once, in
        sorted order, so term ids do not depend on the hash seed)."""
        known = self.word_terms
        new = sorted(set(words).difference(known))
        if not new:
            return
        stop = self.stop
        plain = [w for w in new if w not in stop and len(w) > 1]
        vocab = self.vocab
        for word, stem in zip(plain, self.stemmer.stemWords(plain), strict=True):
            term = vocab.get(stem)
            if term is None:
                term = vocab[stem] = len(vocab)
            known[word] = term
        for word in new:
            if word in stop or len(word) < 2:  # not a token (ASCII split keeps 1-char runs)
                known[word] = -1


@dataclass(frozen=True)
class TermCounts:
    """A corpus as term counts: CSC over (documents x terms), rows ascending per term."""

    tf: np.ndarray  # float32 term frequencies, term-major
    docs: np.ndarray  # int32 document row of each entry
    indptr: np.ndarray  # int64, one more than terms: entries of term t are [t, t + 1)
    lengths: np.ndarray  # int64 token count of each document

    @property
    def num_docs(self) -> int:
        """Documents counted."""
        return len(self.lengths)

    @property
    def num_terms(self) -> int:
        """Terms (columns)."""
        return len(self.indptr) - 1


def term_counts(terms: np.ndarray, lengths: np.ndarray, num_terms: int) -> TermCounts:
    """Count ``terms`` (flat term ids, documents one after another, ``lengths`` each)."""
    num_docs = len(lengths)
    indptr = np.zeros(num_docs + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])
    ones = np.ones(len(terms), dtype=np.float32)
    matrix = sp.csr_matrix(
        (ones, terms.astype(np.int32, copy=False), indptr), shape=(num_docs, max(1, num_terms))
    )
    matrix.sum_duplicates()  # one entry per (document, term), its count as value
    csc = matrix.tocsc()
    csc.sort_indices()
    return TermCounts(
        tf=csc.data.astype(np.float32, copy=False),
        docs=csc.indices.astype(np.int32, copy=False),
        indptr=csc.indptr.astype(np.int64, copy=False)[: num_terms + 1],
        lengths=np.asarray(lengths, dtype=np.int64),
    )


def lucene_idf(df: np.ndarray, num_docs: int) -> np.ndarray:
    """float32 ``ln(1 + (N - df + 0.5) / (df + 0.5))`` per term, as ``bm25s`` computes
    it (Python floats, :func:`math.log`), once per distinct ``df``; 0 where ``df`` is 0."""
    values, inverse = np.unique(df, return_inverse=True)
    table = np.array(
        [math.log(1 + (num_docs - int(d) + 0.5) / (int(d) + 0.5)) if d else 0.0 for d in values],
        dtype=np.float64,
    ).astype(np.float32)
    return table[inverse.reshape(-1)] if len(values) else np.zeros(0, np.float32)


def average_length(lengths: np.ndarray) -> float:
    """Mean token count, as ``bm25s`` takes it (``np.array(lengths).mean()``; int sums
    are exact, so any order gives the same float64)."""
    return float(np.asarray(lengths, dtype=np.int64).mean()) if len(lengths) else 0.0


def lucene_scores(
    counts: TermCounts, *, k1: float = BM25_K1, b: float = BM25_B, avgdl: float | None = None
) -> np.ndarray:
    """float32 BM25 (Lucene) score of every entry of ``counts``, bit-equal to ``bm25s``."""
    df = np.diff(counts.indptr)
    idf = lucene_idf(df, counts.num_docs)
    l_avg = average_length(counts.lengths) if avgdl is None else avgdl
    return entry_scores(np.repeat(idf, df), counts.tf, counts.lengths[counts.docs], l_avg, k1, b)


def entry_scores(
    idf: np.ndarray,
    tf: np.ndarray,
    dl: np.ndarray,
    avgdl: float,
    k1: float = BM25_K1,
    b: float = BM25_B,
) -> np.ndarray:
    """float32 scores of entries (float32 ``idf`` of the entry's term, its ``tf`` and its
    document's length ``dl``) with the very steps of ``bm25s``:
    ``float32(float64(idf) * tf / (k1 * ((1 - b) + b * dl / avgdl) + tf))``, where ``bm25s``
    takes ``b * dl`` with a Python int ``dl`` and a float64 ``avgdl``."""
    norm = k1 * ((1 - b) + (b * np.asarray(dl, dtype=np.float64)) / np.float64(avgdl))
    tf64 = np.asarray(tf, dtype=np.float64)
    tfc = tf64 / (norm + tf64)
    return (np.asarray(idf, dtype=np.float32).astype(np.float64) * tfc).astype(np.float32)


def bm25s_index(texts: Sequence[str]):
    """A ``bm25s.BM25`` (Lucene) over ``texts``, as ``BM25(method="lucene").index(
    bm25s.tokenize(texts, stopwords="en", stemmer=<English>))`` builds it (same scores),
    and the mean document length."""
    tokenizer = CorpusTokenizer()
    terms, lengths = tokenizer.term_ids(texts)
    vocab = tokenizer.vocab
    counts = term_counts(terms, lengths, len(vocab))
    avgdl = average_length(lengths)
    return from_counts(counts, vocab, avgdl), avgdl


def from_counts(counts: TermCounts, vocab: dict[str, int], avgdl: float):
    """The ``bm25s.BM25`` object over ``counts`` (its ``scores`` dict and vocabulary set
    as ``index`` sets them, the empty token ``""`` last)."""
    retriever = bm25s.BM25(method=BM25_METHOD, k1=BM25_K1, b=BM25_B)
    data = lucene_scores(counts, k1=retriever.k1, b=retriever.b, avgdl=avgdl)
    retriever.scores = {
        "data": data,
        "indices": counts.docs,
        "indptr": counts.indptr,
        "num_docs": counts.num_docs,
    }
    vocab = dict(vocab)
    if "" not in vocab:
        vocab[""] = max(vocab.values(), default=-1) + 1
    retriever.vocab_dict = vocab
    retriever.unique_token_ids_set = set(vocab.values())
    retriever.nonoccurrence_array = None
    return retriever
