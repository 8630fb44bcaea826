"""Dense passages: long documents embedded as several vectors and retrieved by their
best (core.search.passage_index), with the real packaged bi-encoder where a vector
matters; the cache keys, the pipeline and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.data.documents import make_dataset
from core.models.errors import SettingsError
from core.search.embedding_cache import embedding_cache_key
from core.search.hits import PassageMatch
from core.search.index import build_index
from core.search.passage_index import (
    PassageVectorIndex,
    dense_budget,
    encoder_tokenizer,
    passage_spec,
)
from core.search.passages import PassageSettings

QUERY = "which lighthouse keeper rescued the fishermen in the storm"
FILLER = " ".join(
    f"Section {i} lists the opening hours of the harbour office and the fees for mooring."
    for i in range(30)
)
ANSWER = (
    "In the great storm of 1881 the lighthouse keeper Ida Lewis rowed out and rescued "
    "the four fishermen whose boat had capsized near the rocks."
)
RECORDS = [
    {"id": "buried", "title": "Harbour notes", "body": f"{FILLER} {ANSWER}"},
    {
        "id": "museum",
        "title": "Lighthouse museum",
        "body": "The lighthouse museum shows old lamps and a model of the keeper's cottage.",
    },
    {
        "id": "storms",
        "title": "Storm warnings",
        "body": "Fishermen listen to the storm warnings on the radio before they sail.",
    },
    {
        "id": "boats",
        "title": "Boat hire",
        "body": "Rowing boats can be hired at the harbour for an hour or a day.",
    },
    {"id": "fees", "title": "Fees", "body": FILLER[:600]},
]
FIELDS = ("title", "body")


@pytest.fixture(autouse=True)
def _cache(monkeypatch, tmp_path):
    monkeypatch.setenv("RERANK_CACHE_DIR", str(tmp_path / "cache"))


def long_dataset():
    return make_dataset("harbour", RECORDS, id_field="id", title_field="title")


def test_index_scores_a_document_by_its_best_passage_and_lists_it_once() -> None:
    # Three documents: 2, 1 and 3 passages; unit vectors along axes make scores exact.
    eye = np.eye(4, dtype=np.float32)
    vectors = np.stack([eye[0], eye[1], eye[2], eye[3], eye[1], eye[2]])
    spans = np.array([[0, 5], [3, 9], [0, 4], [0, 6], [4, 12], [10, 20]])
    index = PassageVectorIndex(
        ["a", "b", "c"], vectors, [2, 1, 3], spans, [2, 1, 4], PassageSettings()
    )
    assert len(index) == 3 and index.num_passages == 6
    assert index.documents_cut == 2 and index.documents_in_part == 1
    hits = index.search(eye[1], 3)
    assert [h.id for h in hits] == ["a", "c", "b"]  # b ties at 1.0: corpus order
    assert [h.rank for h in hits] == [1, 2, 3] and [h.score for h in hits] == [1.0, 1.0, 0.0]
    a, c = hits[0].passage, hits[1].passage
    assert a == PassageMatch(index=1, count=2, start=3, end=9, complete=True)
    assert (c.index, c.count, c.start, c.end, c.complete) == (1, 3, 4, 12, False)
    assert [h.id for h in index.search(eye[3], 2)] == ["c", "a"]  # never a doc twice
    assert index.search(eye[0], 0) == []
    with pytest.raises(ValueError, match="at least one passage"):
        PassageVectorIndex(["a"], vectors[:2], [3], spans[:2], [3], PassageSettings())


@pytest.mark.slow
def test_matching_text_past_token_256_is_found_only_with_dense_passages(minilm) -> None:
    dataset = long_dataset()
    tokenizer, length, own = encoder_tokenizer(minilm)
    assert own and length == 256 and dense_budget(length) == 254
    answer_at = len(tokenizer.encode(FILLER, add_special_tokens=False).ids)
    assert answer_at > 256  # the answer starts past what one vector reads
    query = minilm.encode([QUERY], kind="query")[0]

    plain = build_index(dataset, minilm, FIELDS).index
    passages = build_index(dataset, minilm, FIELDS, passages=PassageSettings()).index
    assert [h.id for h in plain.search(query, 2)].count("buried") == 0
    hits = passages.search(query, 2)
    assert "buried" in [h.id for h in hits]
    match = next(h.passage for h in hits if h.id == "buried")
    assert match.count >= 2 and match.index == match.count - 1 and match.complete
    text = dataset.texts(FIELDS, "embed")[0]
    assert ANSWER in text[match.start : match.end]
    for start, end in passages.spans[: passages.counts[0]]:  # every passage fits
        assert len(tokenizer.encode(text[start:end], add_special_tokens=False).ids) <= 254
    # a text that fits is one passage, the text itself: the vector plain indexing gives
    row = int(passages.starts[1])
    assert passages.counts[1] == 1
    np.testing.assert_allclose(passages.vectors[row], plain.vectors[1], atol=1e-6)
    # the per-document cap: the first passages only, flagged as embedded in part
    capped = build_index(dataset, minilm, FIELDS, passages=PassageSettings(max_per_doc=1))
    first = capped.index.search(query, 5)
    assert not next(h.passage for h in first if h.id == "buried").complete


@pytest.mark.slow
def test_cache_keys_carry_the_passage_settings(minilm) -> None:
    dataset = long_dataset()
    once = build_index(dataset, minilm, FIELDS, passages=PassageSettings())
    again = build_index(dataset, minilm, FIELDS, passages=PassageSettings())
    assert not once.from_cache and again.from_cache
    np.testing.assert_array_equal(once.index.vectors, again.index.vectors)
    assert again.index.counts.tolist() == once.index.counts.tolist()
    spec = passage_spec(PassageSettings(), 256, True)
    assert once.cache_path.stem == embedding_cache_key(
        minilm.cache_key, dataset, FIELDS, passages=spec
    )
    smaller = build_index(dataset, minilm, FIELDS, passages=PassageSettings(window=64, stride=32))
    plain = build_index(dataset, minilm, FIELDS)
    paths = {once.cache_path, smaller.cache_path, plain.cache_path}
    assert len(paths) == 3 and not smaller.from_cache
    assert smaller.index.counts[0] > once.index.counts[0]
    # the aggregate is the reranker's business: it does not split the dense cache
    top2 = build_index(dataset, minilm, FIELDS, passages=PassageSettings("top2"))
    assert top2.from_cache and top2.cache_path == once.cache_path


def test_collections_and_bm25_refuse_dense_passages(tmp_path) -> None:
    from core.cli import main

    path = tmp_path / "long.json"
    path.write_text(json.dumps(RECORDS))
    args = ["search", QUERY, "--dataset", str(path), "--id-field", "id", "--dense-passages"]
    assert main([*args, "--retriever", "bm25"]) == 2
    assert main([*args, "--window", "8"]) == 2
    assert main(["search", QUERY, "--dataset", "milvus:x", "--dense-passages"]) == 2


def test_collection_refuses_dense_passages(tmp_path, fake_encoder) -> None:
    from core.data.collection import Collection
    from core.search.passage_index import build_passage_index

    class Built(Collection):
        def __init__(self) -> None:  # only what the refusal reads
            self.collection_name = "big"

        def check_fields(self, fields, role):
            return tuple(fields)

    with pytest.raises(SettingsError, match="collection 'big' keeps one vector"):
        build_passage_index(Built(), fake_encoder, FIELDS, PassageSettings())


@pytest.mark.slow
def test_pipeline_and_cli_keep_the_passage_that_matched(minilm, tmp_path, capsys) -> None:
    from core.cli import main
    from core.search.pipeline import search_with_rerank

    result = search_with_rerank(
        long_dataset(),
        QUERY,
        encoder=minilm,
        embed_fields=FIELDS,
        num_candidates=5,
        num_results=2,
        dense_passages=PassageSettings(),
    )
    buried = next(c for c in result.candidates if c.id == "buried")
    assert buried.retrieval_rank <= 2 and buried.retrieval_passage.count >= 2
    data = json.loads(json.dumps(result.to_dict()))
    assert data["dense_passages"]["window"] is None
    row = next(r for r in data["results"] if r["id"] == "buried")
    assert row["retrieval_passage"]["index"] == buried.retrieval_passage.index

    path = tmp_path / "long.json"
    path.write_text(json.dumps(RECORDS))
    args = ["search", QUERY, "--dataset", str(path), "--id-field", "id", "--candidates", "2"]
    args += ["--top", "2"]
    assert main([*args, "--no-rerank", "--json", "--dense-passages"]) == 0
    ids = [r["id"] for r in json.loads(capsys.readouterr().out)["results"]]
    assert "buried" in ids
    assert main([*args, "--no-rerank", "--json"]) == 0
    assert "buried" not in [r["id"] for r in json.loads(capsys.readouterr().out)["results"]]
    assert main([*args, "--no-rerank", "--dense-passages"]) == 0
    out = capsys.readouterr().out
    assert "dense passages: window fit, stride half" in out
    assert "Harbour notes [dense: passage" in out
