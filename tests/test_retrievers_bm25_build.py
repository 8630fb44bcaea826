"""The vectorised BM25 build (core/search/bm25_build.py) gives bm25s' tokens and scores:
every stored score bit-equal, every query's scores within 1e-9 (in fact equal)."""

from __future__ import annotations

import collections
import random

import bm25s
import numpy as np
import pytest

from core.bench.background import synthetic_movies
from core.data.documents import make_dataset
from core.search import bm25_build
from core.search.retrievers import BM25Index, _tokenize

QUERIES = (
    "a heist in a big city",
    "robot falls in love",
    "ghosts haunt an old house",
    "soldiers stranded behind enemy lines",
    "detective hunts a serial killer at night",
    "family",
    "The Storm of Island 17",
    "war and love in space",
)


def _bm25s_reference(texts: list[str]) -> bm25s.BM25:
    """What BM25Index built before: bm25s' own tokenize + index."""
    reference = bm25s.BM25(method="lucene")
    reference.index(_tokenize(texts, return_ids=True), show_progress=False)
    return reference


def _max_query_diff(reference: bm25s.BM25, index: BM25Index, queries) -> float:
    worst, compared = 0.0, 0
    for query in queries:
        terms = [t for t in _tokenize([query], return_ids=False)[0] if t in reference.vocab_dict]
        old = (
            np.asarray(reference.get_scores(terms), dtype=np.float64)
            if terms
            else np.zeros(len(index))
        )
        new = index.scores(query).astype(np.float64)
        worst = max(worst, float(np.abs(old - new).max()))
        compared += 1
    assert compared == len(queries)
    return worst


def _assert_same_matrix(reference: bm25s.BM25, built) -> None:
    """Every term's column: the same documents, the same float32 scores (bit-equal)."""
    assert set(reference.vocab_dict) == set(built.vocab_dict)
    old, new = reference.scores, built.scores
    assert old["num_docs"] == new["num_docs"]
    for term, tid in reference.vocab_dict.items():
        if term == "":
            continue
        j = built.vocab_dict[term]
        a = slice(old["indptr"][tid], old["indptr"][tid + 1])
        b = slice(new["indptr"][j], new["indptr"][j + 1])
        assert np.array_equal(old["indices"][a], new["indices"][b]), term
        assert np.array_equal(old["data"][a], new["data"][b]), term


def test_movies_scores_equal_bm25s(movies) -> None:
    fields = movies.default_embed_fields
    texts = movies.texts(fields, "embed")
    reference = _bm25s_reference(texts)
    index = BM25Index(movies, fields)
    _assert_same_matrix(reference, index._retriever)
    titles = [movies.title(doc_id) for doc_id in movies.ids[:40]]
    diff = _max_query_diff(reference, index, [*QUERIES, *titles])
    assert diff <= 1e-9
    # the explanation's average length is the one the scores used
    lengths = [len(t) for t in _tokenize(texts, return_ids=False)]
    assert index.avgdl == float(np.array(lengths).mean())


def test_synthetic_corpus_scores_equal_bm25s(monkeypatch) -> None:
    records = synthetic_movies(6_000, seed=3)
    # a few hostile texts: non-ASCII, underscores, digits, a NUL, empty, stop words only
    records[5]["overview"] = "ΣΟΦΙΑΣ naïve café über İstanbul ﬁne straße x\u0301y ²"
    records[6]["overview"] = "__init__ a_b v2 2024 don't e.g. it's"
    records[7]["overview"] = "ab\x00cd heist\x00city"
    records[8]["overview"] = "the of and a"
    records[9]["overview"] = ""
    dataset = make_dataset("syn", records, id_field="id", title_field="title")
    fields = ("title", "overview", "genres", "director")
    monkeypatch.setattr(bm25_build, "BLOCK_DOCS", 1000)  # several blocks, vocab carried on
    reference = _bm25s_reference(dataset.texts(fields, "embed"))
    index = BM25Index(dataset, fields)
    _assert_same_matrix(reference, index._retriever)
    queries = [*QUERIES, "naïve café", "init a_b", "heist city", "cd", "straße"]
    assert _max_query_diff(reference, index, queries) <= 1e-9


def test_tokens_equal_bm25s_on_random_text() -> None:
    """Per document, the same multiset of stems as bm25s.tokenize (ASCII, Unicode, NUL)."""
    words = [
        "the",
        "Running",
        "runs",
        "I",
        "x",
        "_",
        "__init__",
        "ΣΟΦΙΑΣ",
        "naïve",
        "2024",
        "e.g.",
        "don't",
        "İstanbul",
        "x\u0301y",
        "\u0660\u0661",
        "AND",
        "\x00",
        "ab\x00cd",
        "ß",
    ]
    seps = [" ", ",", ".", "\n", "\t", "-", "'", "\x1f", ""]
    rng = random.Random(7)
    for trial in range(150):
        texts = [
            "".join(rng.choice(words) + rng.choice(seps) for _ in range(rng.randint(0, 12)))
            for _ in range(rng.randint(1, 30))
        ]
        if trial % 2:
            texts = [t.encode("ascii", "ignore").decode() for t in texts]
        tokenizer = bm25_build.CorpusTokenizer()
        terms, lengths = tokenizer.term_ids(texts)
        stems = {term: stem for stem, term in tokenizer.vocab.items()}
        expected = _tokenize(texts, return_ids=False)
        start = 0
        for doc, length in enumerate(lengths):
            got = [stems[t] for t in terms[start : start + length]]
            assert collections.Counter(got) == collections.Counter(expected[doc])
            start += length
        assert start == len(terms)


def test_a_corpus_without_any_token_answers_nothing() -> None:
    dataset = make_dataset("stop", [{"id": "1", "t": "the a of"}, {"id": "2", "t": "and"}])
    index = BM25Index(dataset, ["t"])
    assert index.retrieve("the", 5).hits == []
    assert index.retrieve("anything", 5).hits == []


@pytest.mark.parametrize("df", [[1, 2, 3, 1000, 5999, 6000], [0, 7]])
def test_idf_is_bm25s_formula(df) -> None:
    from bm25s.scoring import _score_idf_lucene

    got = bm25_build.lucene_idf(np.array(df), 6000)
    want = np.array([_score_idf_lucene(d, N=6000) if d else 0.0 for d in df], np.float32)
    assert np.array_equal(got, want)
