"""Collections: streaming readers, the staged resumable build, the on-disk format, and
search on a collection through the same pipeline, views and evaluation as a Dataset.

Plumbing tests use the deterministic FakeEncoder on the movies records (1,000 docs);
the one test about real vectors builds the 40-record sample with the packaged MiniLM.
"""

from __future__ import annotations

import io
import json
import re

import numpy as np
import pytest

from core.data import streams
from core.data.collection import (
    Collection,
    collection_path,
    is_collection_id,
    list_collections,
    open_collection,
)
from core.data.documents import Corpus, embed_text, make_dataset
from core.models.errors import DatasetError, DatasetUnavailableError, FieldError, SettingsError
from core.search import collection_ann, collection_bm25, collection_build
from core.search.collection_build import build_collection
from core.search.index import VectorIndex, build_index
from core.search.retrievers import BM25Index, make_retriever

QUERIES = ("a heist that goes wrong", "astronauts stranded far from earth", "a toy comes to life")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RERANK_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path


@pytest.fixture
def movies_jsonl(tmp_path, movies):
    path = tmp_path / "movies.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in movies.records) + "\n", encoding="utf-8")
    return path


def _build(path, name, encoder, **options):
    return build_collection(path, name, encoder=encoder, **options)


# --- streaming readers -------------------------------------------------------------------


@pytest.mark.parametrize("block", [1, 2, 3, 5, 1 << 20])
def test_a_file_that_is_not_utf8_is_refused_with_its_line_and_column(
    tmp_path, monkeypatch, block
) -> None:
    # The streamed readers only know a position in their buffer: the message comes from
    # a scan of the file in blocks, so characters cut by a block's end must not count.
    from core.data import encoding

    monkeypatch.setattr(encoding, "_BLOCK", block)
    good = '{"id": 1, "title": "Amélie — ok"}\n'.encode()
    jsonl = tmp_path / "films.jsonl"
    jsonl.write_bytes(encoding._BOM + good + '{"id": 2, "title": "café"}\n'.encode("latin-1"))
    with pytest.raises(DatasetError) as caught:
        list(streams.iter_records(jsonl))
    offset = len(encoding._BOM + good) + len('{"id": 2, "title": "caf')
    assert str(caught.value) == (
        f"films.jsonl is not UTF-8 text: line 2, column 24 (byte offset {offset}) holds "
        "0xe9, which is not valid UTF-8 (it may be Latin-1 or Windows-1252); save the file "
        "as UTF-8."
    )
    csv_file = tmp_path / "films.csv"
    csv_file.write_bytes(encoding._BOM + "title\ncafé\n".encode("latin-1"))
    with pytest.raises(DatasetError, match=r"line 2, column 4 \(byte offset 12\) holds 0xe9"):
        list(streams.iter_records(csv_file))
    first = tmp_path / "first.csv"
    first.write_bytes(encoding._BOM + "tïtle\n".encode("latin-1"))
    with pytest.raises(DatasetError, match=r"line 1, column 2 \(byte offset 4\)"):
        list(streams.iter_records(first))
    wide = tmp_path / "wide.json"
    wide.write_bytes('[{"title": "x"}]'.encode("utf-16"))
    with pytest.raises(DatasetError, match=r"line 1, column 1 .*\(it looks like UTF-16\)"):
        list(streams.iter_records(wide))


def test_collection_build_of_a_latin1_file_is_one_line_and_exit_2(
    cache, tmp_path, fake_encoder, monkeypatch, capsys
) -> None:
    from core.cli import main
    from core.models import registry

    monkeypatch.setattr(registry, "load_encoder", lambda name: fake_encoder)
    bad = tmp_path / "bad.csv"
    bad.write_bytes("id,title\n1,ok\n2,café\n".encode("latin-1"))
    assert main(["collection", "build", str(bad), "--name", "bad"]) == 2
    err = capsys.readouterr().err
    assert "bad.csv is not UTF-8 text: line 3, column 6 (byte offset 19)" in err
    assert "Traceback" not in err


def test_json_array_is_read_incrementally_across_tiny_buffers(monkeypatch) -> None:
    monkeypatch.setattr(streams, "_CHUNK", 3)
    rows = [{"id": i, "text": "é" * i, "x": 1.5e10, "flag": None} for i in range(30)]
    assert list(streams.iter_json_array(io.StringIO(json.dumps(rows)))) == rows
    wrapped = json.dumps({"meta": {"n": 30}, "count": 3, "rows": rows})
    assert list(streams.iter_json_array(io.StringIO(wrapped))) == rows
    assert list(streams.iter_json_array(io.StringIO(" [ ] "))) == []


def test_bad_inputs_name_where(tmp_path) -> None:
    with pytest.raises(DatasetError, match="not valid JSON"):
        list(streams.iter_json_array(io.StringIO('[{"a": 1}, {"b": }]')))
    with pytest.raises(DatasetError, match="expected a JSON array"):
        list(streams.iter_json_array(io.StringIO('"text"')))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"a": 1}\n\n{"a": \n')
    with pytest.raises(DatasetError, match="line 3"):
        list(streams.iter_records(bad))
    with pytest.raises(DatasetError, match="unknown file type"):
        streams.source_format(tmp_path / "x.xlsx")
    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]")
    with pytest.raises(DatasetError, match="record 0 is a JSON number, not an object"):
        list(streams.iter_records(listed))


def test_csv_and_parquet_stream_records(tmp_path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    csv_path = tmp_path / "a.csv"
    csv_path.write_text("id,title,text\n1,One,first\n2,Two,\n", encoding="utf-8")
    assert list(streams.iter_records(csv_path)) == [
        {"id": "1", "title": "One", "text": "first"},
        {"id": "2", "title": "Two"},
    ]
    # Separators as uploads read them: a header of semicolons, Excel's "sep=" line.
    euro = tmp_path / "euro.csv"
    euro.write_text('id;title;text\n1;One;"first, then"\n', encoding="utf-8")
    assert list(streams.iter_records(euro)) == [{"id": "1", "title": "One", "text": "first, then"}]
    named = tmp_path / "named.csv"
    named.write_text("\ufeffsep=|\nid|text\n1|a;b,c\n", encoding="utf-8")
    assert list(streams.iter_records(named)) == [{"id": "1", "text": "a;b,c"}]
    table = pa.table({"id": [1, 2], "text": ["a", None], "tags": [["x"], []]})
    pq.write_table(table, tmp_path / "a.parquet")
    assert list(streams.iter_records(tmp_path / "a.parquet")) == [
        {"id": 1, "text": "a", "tags": ["x"]},
        {"id": 2, "tags": []},
    ]


# --- build, format, reader API -------------------------------------------------------------


def test_build_writes_the_documented_format_and_reads_by_id(
    cache, movies_jsonl, movies, fake_encoder
) -> None:
    report = _build(movies_jsonl, "films", fake_encoder, exact_threshold=10_000)
    assert report.count == 1000 and report.index_kind == "exact"
    folder = collection_path("films")
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["format"] == "rerank-collection" and manifest["format_version"] == 1
    assert manifest["count"] == 1000 and manifest["dimension"] == fake_encoder.dimension
    assert manifest["model_key"] == fake_encoder.name
    assert set(manifest["versions"]) >= {"faiss", "bm25s", "numpy"}
    assert not (folder / "build").exists()  # the working folder is gone
    # Same records, same ids (row positions) -> the same content hash as a Dataset.
    assert manifest["content_hash"] == movies.content_hash

    films = open_collection("collection:films")
    assert isinstance(films, Collection) and isinstance(films, Corpus)
    assert films.name == "collection:films" and len(films) == 1000
    assert films.record("42") == movies.record("42")
    assert films.records_for(["7", "3"]) == [movies.record("7"), movies.record("3")]
    assert films.ids[999] == "999" and films.ids[-1] == "999" and films.ids[:2] == ["0", "1"]
    assert films.records[5] == movies.records[5]
    assert films.position("10") == 10 and films.has_id("10") and not films.has_id("nope")
    assert films.title("0") == movies.title("0")
    vectors = np.load(folder / "vectors.npy", mmap_mode="r")
    assert vectors.dtype == np.float32 and vectors.shape == (1000, fake_encoder.dimension)
    batches = list(films.iter_batches(400))
    assert [len(b[1]) for b in batches] == [400, 400, 200]
    assert batches[1][1][0] == "400" and np.array_equal(batches[2][3], vectors[800:])
    assert [c.dataset_id for c in list_collections()] == ["collection:films"]
    with pytest.raises(KeyError):
        films.record("nope")


def test_exact_collection_search_equals_the_in_memory_index(
    cache, movies_jsonl, movies, fake_encoder
) -> None:
    _build(movies_jsonl, "films", fake_encoder, exact_threshold=10_000)
    films = open_collection("films")
    fields = films.default_embed_fields
    disk = build_index(films, fake_encoder, fields).index
    memory = VectorIndex(movies.ids, fake_encoder.encode(movies.texts(fields)))
    for query in QUERIES:
        q = fake_encoder.encode([query], kind="query")[0]
        a, b = disk.search(q, 50), memory.search(q, 50)
        assert [h.id for h in a] == [h.id for h in b]
        assert np.allclose([h.score for h in a], [h.score for h in b], atol=1e-6)


def test_ivf_index_finds_the_exact_neighbours_and_keeps_exact_scores(
    cache, movies_jsonl, fake_encoder
) -> None:
    report = _build(movies_jsonl, "films", fake_encoder, exact_threshold=500)
    assert report.index_kind == "ivf-sq8" and report.recall_at_100 >= 0.97
    films = open_collection("films")
    assert films.approximate and films.manifest["index"]["nprobe"] in collection_ann.NPROBES
    index = build_index(films, fake_encoder, films.default_embed_fields).index
    assert index.approximate
    found, expected = 0, 0
    for query in QUERIES:
        q = fake_encoder.encode([query], kind="query")[0]
        hits = index.search(q, 10)
        exact = np.argsort(-(films.vectors @ q), kind="stable")[:10]
        found += len({h.position for h in hits} & set(exact.tolist()))
        expected += 10
        # Scores are the true cosines, never the 8-bit approximations.
        assert np.allclose([h.score for h in hits], films.vectors[[h.position for h in hits]] @ q)
    assert found / expected >= 0.9


def test_nprobe_is_chosen_on_runs_of_words_not_on_titles(
    cache, movies_jsonl, fake_encoder, monkeypatch
) -> None:
    # A record's title (or its own vector) sits so close to it that every nprobe looks
    # enough: on a real 200k collection titles said recall 0.997 at nprobe 8 where
    # real queries got 0.875. Runs of words from inside the records are as hard as
    # real queries.
    asked: list[str] = []
    encode = fake_encoder.encode

    def recording(texts, *, kind="document", progress=None):
        if kind == "query":
            asked.extend(texts)
        return encode(texts, kind=kind, progress=progress)

    monkeypatch.setattr(fake_encoder, "encode", recording)
    _build(movies_jsonl, "films", fake_encoder, exact_threshold=500)
    films = open_collection("films")
    assert films.manifest["index"]["recall_queries"] == (
        "200 runs of 6-12 words from sample records, encoded as queries"
    )
    texts = [embed_text(r, films.manifest["embed_fields"]) for r in films.records_at(range(1000))]
    titles = {r["title"] for r in films.records_at(range(1000))}
    assert len(asked) == 200 and len(set(asked)) > 190
    for run in asked:
        assert run not in titles
        assert any(run in " ".join(text.split()) for text in texts), run
        assert 1 <= len(run.split()) <= 12
    assert sum(len(run.split()) >= 6 for run in asked) >= 190

    # A collection built before says its recall is overstated and how to measure it again.
    from core.present.views import approximate_note

    assert "overstate" not in approximate_note(films)
    old = "200 sample records' titles or first 12 words, encoded as queries"
    monkeypatch.setitem(films.manifest["index"], "recall_queries", old)
    note = approximate_note(films)
    assert "titles as queries overstate recall" in note
    assert "python -m core collection retune films" in note


def test_retune_chooses_nprobe_again_without_touching_the_data(
    cache, movies_jsonl, fake_encoder, monkeypatch, capsys
) -> None:
    from core.cli import main
    from core.models import registry
    from core.present.views import approximate_note
    from core.search.collection_ann import retune_collection

    _build(movies_jsonl, "films", fake_encoder, exact_threshold=500)
    folder = collection_path("films")
    built = json.loads((folder / "manifest.json").read_text())["index"]
    assert built["nprobe"] > 1 and built["recall_at_100"] >= collection_ann.TARGET_RECALL
    # As a collection built before the fix: chosen on titles, too few lists probed.
    old = {**built, "nprobe": 1, "recall_at_100": 0.997}
    old["recall_queries"] = "200 sample records' titles or first 12 words, encoded as queries"
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({**manifest, "index": old}))
    assert "overstate" in approximate_note(open_collection("films"))
    data = {f.name: f.stat().st_mtime_ns for f in folder.iterdir() if f.name != "manifest.json"}

    report = retune_collection("films", encoder=fake_encoder)
    assert report.before["nprobe"] == 1 and report.before["recall_at_100"] == 0.997
    # The same runs of words as a fresh build, so the same choice.
    assert report.after["nprobe"] == built["nprobe"]
    assert report.after["recall_at_100"] == built["recall_at_100"]
    assert "before: nprobe 1, recall@100 vs exact 0.997 (200 sample records' titles" in (
        report.summary()
    )
    films = open_collection("films")  # reopened: its manifest changed
    assert films.manifest["index"]["nprobe"] == built["nprobe"]
    assert films.manifest["index"]["recall_queries"] == built["recall_queries"]
    assert films.manifest["index"]["retuned"] and "retune" in films.manifest["timings"]
    assert "overstate" not in approximate_note(films)
    assert "measured when re-tuned (20" in approximate_note(films)
    assert data == {
        f.name: f.stat().st_mtime_ns for f in folder.iterdir() if f.name != "manifest.json"
    }
    index = build_index(films, fake_encoder, films.default_embed_fields).index
    import faiss

    assert faiss.extract_index_ivf(index.ann).nprobe == built["nprobe"]

    # From the command line, with the encoder the collection was built with.
    monkeypatch.setattr(registry, "load_encoder", lambda name: fake_encoder)
    assert main(["collection", "retune", "films"]) == 0
    out = capsys.readouterr().out
    assert f"after:  nprobe {built['nprobe']}" in out and "nothing" not in out

    # Queries from another model would not share the vectors' space; exact has no nprobe.
    with pytest.raises(DatasetError, match="recall queries must be encoded with it too"):
        retune_collection("films", encoder=type(fake_encoder)("another-encoder"))
    _build(movies_jsonl, "small", fake_encoder, exact_threshold=10_000)
    with pytest.raises(DatasetError, match="exact index"):
        retune_collection("small", encoder=fake_encoder)
    assert main(["collection", "retune", "small"]) == 2
    assert "exact index" in capsys.readouterr().err


def test_saved_bm25_scores_equal_the_in_memory_bm25(cache, movies_jsonl, movies, fake_encoder):
    _build(movies_jsonl, "films", fake_encoder, exact_threshold=10_000)
    films = open_collection("films")
    fields = films.default_embed_fields
    disk = make_retriever("bm25", films, fields)
    memory = BM25Index(movies, fields)
    assert isinstance(disk, BM25Index)
    for query in (*QUERIES, "Batman", "zzzz unknown words"):
        # the same tokens and the same float steps: equal, not just close
        assert np.array_equal(disk.scores(query), memory.scores(query))
        a, b = disk.retrieve(query, 20).hits, memory.retrieve(query, 20).hits
        assert [h.id for h in a] == [h.id for h in b]


def test_an_interrupted_build_resumes_and_ends_identical(
    cache, tmp_path, movies_jsonl, fake_encoder, monkeypatch
) -> None:
    monkeypatch.setattr(collection_build, "INGEST_CHUNK", 300)
    monkeypatch.setattr(collection_build, "ENCODE_CHUNK", 256)
    monkeypatch.setattr(collection_bm25, "BM25_CHUNK", 400)
    full = _build(movies_jsonl, "whole", fake_encoder, exact_threshold=500)

    # (stage, progress at which to interrupt, row the resumed build starts from): the
    # encoder reports 512 before that chunk is checkpointed, so it is encoded again.
    for *stop_at, restart_row in (
        ("ingest", 600, 600),
        ("encode", 512, 256),
        ("bm25: tokenize", 400, 400),
    ):

        def interrupt(stage, done, total, stop_at=stop_at):
            if [stage, done] == stop_at:
                raise KeyboardInterrupt

        name = f"cut-{stop_at[0].split(':')[0]}"
        with pytest.raises(KeyboardInterrupt):
            _build(movies_jsonl, name, fake_encoder, exact_threshold=500, progress=interrupt)
        assert not (collection_path(name) / "manifest.json").exists()
        with pytest.raises(DatasetUnavailableError, match="not built"):
            open_collection(name)
        resumed = _build(movies_jsonl, name, fake_encoder, exact_threshold=500)
        assert resumed.resumed[stop_at[0].split(":")[0]] == restart_row
        a, b = open_collection(name), open_collection("whole")
        assert a.content_hash == b.content_hash
        assert np.array_equal(np.asarray(a.vectors), np.asarray(b.vectors))
        assert a.manifest["index"]["recall_at_100"] == full.recall_at_100
        for q in QUERIES:
            assert np.allclose(
                make_retriever("bm25", a, a.default_embed_fields).scores(q),
                make_retriever("bm25", b, b.default_embed_fields).scores(q),
            )


def test_build_errors_are_one_clear_line(cache, tmp_path, movies_jsonl, fake_encoder) -> None:
    dupes = tmp_path / "dupes.jsonl"
    dupes.write_text('{"id": "a", "t": "x"}\n{"id": "b", "t": "y"}\n{"id": "a", "t": "z"}\n')
    with pytest.raises(DatasetError, match="duplicate values, e.g. 'a'"):
        _build(dupes, "d", fake_encoder, restart=True)
    with pytest.raises(FieldError, match="unknown field.*nope"):
        _build(movies_jsonl, "f", fake_encoder, embed_fields=["nope"])
    with pytest.raises(DatasetError, match="invalid collection name"):
        _build(movies_jsonl, "../x", fake_encoder)
    with pytest.raises(DatasetError, match="unknown file type"):
        _build(tmp_path / "x.txt", "x", fake_encoder)
    empty = tmp_path / "empty.json"
    empty.write_text("[]")
    with pytest.raises(DatasetError, match="^empty.json holds no records$"):
        _build(empty, "e", fake_encoder)
    _build(movies_jsonl, "films", fake_encoder, exact_threshold=10_000)
    with pytest.raises(DatasetError, match="already built"):
        _build(movies_jsonl, "films", fake_encoder)
    with pytest.raises(DatasetUnavailableError, match="no collection named 'other'"):
        open_collection("other")
    films = open_collection("films")
    from tests.conftest import FakeEncoder

    with pytest.raises(SettingsError, match="was embedded with fake-encoder"):
        build_index(films, FakeEncoder(name="another"), films.default_embed_fields)
    with pytest.raises(SettingsError, match="embedded from the fields"):
        build_index(films, fake_encoder, ("title",))


def test_ids_come_from_an_id_field_when_there_is_one(cache, tmp_path, fake_encoder) -> None:
    path = tmp_path / "notes.json"
    rows = [{"id": f"n{i}", "title": f"Note {i}", "body": f"about thing {i}"} for i in range(30)]
    path.write_text(json.dumps({"notes": rows}))
    _build(path, "notes", fake_encoder)
    notes = open_collection("notes")
    assert notes.id_field == "id" and notes.ids[:2] == ["n0", "n1"]
    assert notes.default_embed_fields == ("title", "body") and notes.title("n3") == "Note 3"
    assert notes.content_hash == make_dataset("x", rows, id_field="id").content_hash


# --- the pipeline, views and evaluation on a collection -----------------------------------


def test_pipeline_views_and_evaluation_work_on_a_collection(
    cache, movies_jsonl, fake_encoder
) -> None:
    from core.present.views import SearchSettings, approximate_note, export_csv, export_json
    from core.quality.evaluation import evaluate_judgments
    from core.search.pipeline import search_with_rerank
    from tests.conftest import FakeReranker

    _build(movies_jsonl, "films", fake_encoder, exact_threshold=500)
    films = open_collection("films")
    fields = films.default_embed_fields
    index = build_index(films, fake_encoder, fields).index
    reranker = FakeReranker({"3": 5.0, "10": 4.0})
    for kind in ("dense", "bm25", "hybrid"):
        retriever = make_retriever(kind, films, fields, encoder=fake_encoder, index=index)
        result = search_with_rerank(
            films, "a heist in a bank", retriever=retriever, reranker=reranker, num_results=5
        )
        assert result.dataset == "collection:films" and result.retriever == kind
        for c in result.candidates:
            assert c.record == films.record(c.id) and c.title == films.title(c.id)
        assert export_csv(result).count("\n") == len(result.candidates) + 1
        assert json.loads(export_json(result))["dataset"] == "collection:films"
    assert "approximate" in approximate_note(films) and "recall@100" in approximate_note(films)

    settings, warnings = SearchSettings.from_params({"dataset": "collection:films", "q": "x"})
    assert settings.dataset == "collection:films" and not warnings
    assert is_collection_id(settings.to_params()["dataset"])

    first = search_with_rerank(films, "a heist in a bank", encoder=fake_encoder, index=index)
    judged = {"a heist in a bank": {first.candidates[0].id: 3, "999999": 1}}
    report = evaluate_judgments(films, judged, encoder=fake_encoder, candidates=20)
    assert report.settings.num_queries == 1 and report.base["ndcg@10"] > 0
    assert report.settings.corpus_size == 1000
    with pytest.raises(DatasetError, match="None of the 1 judged"):
        evaluate_judgments(films, {"q": {"nope": 1}}, encoder=fake_encoder)


def test_cli_lists_and_searches_a_collection(cache, movies_jsonl, fake_encoder, capsys) -> None:
    from core.cli import main

    _build(movies_jsonl, "films", fake_encoder, exact_threshold=10_000)
    assert main(["collection", "list"]) == 0
    assert "collection:films" in capsys.readouterr().out
    args = ["search", "heist", "--dataset", "collection:films", "--retriever", "bm25"]
    assert main([*args, "--no-rerank", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["dataset"] == "collection:films" and out["results"]
    assert main(["search", "heist", "--dataset", "collection:nope", "--no-rerank"]) == 2
    assert "no collection named 'nope'" in capsys.readouterr().err

    # An unfinished build is listed with how to resume or drop it; remove frees both.
    (collection_path("half") / "build").mkdir(parents=True)
    (collection_path("half") / "build" / "state.json").write_text("{}")
    assert main(["collection", "list"]) == 0
    out = capsys.readouterr().out
    assert "collection:films" in out and "half" in out and "unfinished build" in out
    open_collection("films").record(open_collection("films").ids[0])  # opened, then removed
    assert main(["collection", "remove", "films"]) == 0
    assert re.search(r"removed collection 'films' \([\d.]+ MB freed\)", capsys.readouterr().out)
    assert main(["collection", "remove", "half"]) == 0
    assert not collection_path("films").exists() and not collection_path("half").exists()
    with pytest.raises(DatasetUnavailableError, match="no collection named 'films'"):
        open_collection("films")
    assert main(["collection", "list"]) == 0
    assert "no collections built yet" in capsys.readouterr().out
    assert main(["collection", "remove", "films"]) == 2
    assert "no collection named 'films' to remove (on disk: none)" in capsys.readouterr().err
    assert main(["collection", "remove", "../etc"]) == 2
    assert "invalid collection name" in capsys.readouterr().err


@pytest.mark.slow
def test_a_collection_built_with_minilm_answers_like_the_dataset(cache, minilm) -> None:
    from core.data.datasets import SAMPLE_PATH, load_sample
    from core.search.pipeline import search_with_rerank

    sample = load_sample()
    report = build_collection(
        SAMPLE_PATH,
        "notes",
        encoder=minilm,
        embed_fields=sample.default_embed_fields,
        rerank_fields=sample.default_rerank_fields,
    )
    assert report.count == len(sample)
    notes = open_collection("notes")
    assert notes.content_hash == sample.content_hash
    fields = sample.default_embed_fields
    memory_index = build_index(sample, minilm, fields, use_cache=False).index
    disk_index = build_index(notes, minilm, fields).index
    for query in ("bats in the attic", "python the snake"):
        a = search_with_rerank(notes, query, encoder=minilm, index=disk_index, num_results=5)
        b = search_with_rerank(sample, query, encoder=minilm, index=memory_index, num_results=5)
        assert [c.id for c in a.candidates] == [c.id for c in b.candidates]
        assert np.allclose(
            [c.retrieval_score for c in a.candidates],
            [c.retrieval_score for c in b.candidates],
            atol=1e-5,
        )


def test_the_ann_comparison_measures_both_libraries_against_exact_search() -> None:
    from core.ops.collection_bench import compare_ann

    rng = np.random.default_rng(0)
    centers = rng.normal(size=(40, 32))
    vectors = centers[rng.integers(0, 40, 4000)] + 0.3 * rng.normal(size=(4000, 32))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = vectors[rng.choice(4000, 20, replace=False)] + 0.05 * rng.normal(size=(20, 32))
    out = compare_ann(vectors.astype(np.float32), queries.astype(np.float32), 4000)
    assert out["vectors"] == 4000 and out["queries"] == 20
    faiss_rows = {k: v for k, v in out.items() if k.startswith("faiss_ivf")}
    usearch_rows = {k: v for k, v in out.items() if k.startswith("usearch_hnsw")}
    assert len(faiss_rows) == 3 and len(usearch_rows) == 3
    for row in [*faiss_rows.values(), *usearch_rows.values()]:
        assert 0.0 <= row["recall"] <= 1.0 and row["p50_ms"] > 0
    # More probes never find less; the widest search finds nearly everything exact finds.
    recalls = [row["recall"] for row in faiss_rows.values()]
    assert recalls == sorted(recalls) and recalls[-1] >= 0.9
    assert max(row["recall"] for row in usearch_rows.values()) >= 0.9
