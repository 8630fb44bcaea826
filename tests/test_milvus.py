"""Milvus as the first stage, against real Milvus Lite: an embedded ``.db`` in a
temporary folder, and ``milvus-lite server`` started as a subprocess on 127.0.0.1 and
reached by URI through the same code."""

from __future__ import annotations

import math
import re
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from core.data.documents import embed_text, make_dataset
from core.models.errors import (
    MilvusAuthError,
    MilvusSchemaError,
    MilvusUnavailableError,
    SettingsError,
)
from core.search.index import VectorIndex
from core.search.milvus import open_collection
from core.search.milvus_client import connect, release
from core.search.milvus_export import bm25_analyzer, export_dataset
from core.search.milvus_reference import (
    MilvusReference,
    MilvusTarget,
    parse_reference,
    resolve_target,
)
from core.search.retrievers import rrf_fuse
from tests.conftest import FakeEncoder, FakeReranker

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
QUERIES = [
    "a heist in a casino",
    "space adventure with robots",
    "a love story in Paris",
    "superhero saves the city",
    "haunted house horror",
]
TOP = 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, seconds: float = 90.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port}")


def start_server(args: list[str], port: int, log: Path) -> subprocess.Popen:
    handle = log.open("wb")
    process = subprocess.Popen(args, stdout=handle, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, process)
    except Exception:
        process.kill()
        raise
    return process


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def lite(tmp_path_factory, movies, movies_index, minilm):
    """Movies exported (with the cached MiniLM vectors) into a Milvus Lite file."""
    path = tmp_path_factory.mktemp("milvus") / "movies.db"
    target = MilvusTarget(str(path))
    report = export_dataset(
        movies,
        target,
        "movies",
        encoder=minilm,
        model_id=MINILM,
        vectors=movies_index.vectors,
        vectors_from="test cache",
    )
    assert report.rows == len(movies) and report.truncated_texts == 0
    assert report.reference == f"milvus:movies@{path}"
    yield open_collection(report.reference)
    release(target)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``milvus-lite server`` in a subprocess on a free loopback port."""
    folder = tmp_path_factory.mktemp("milvus-server")
    port = free_port()
    exe = Path(sys.executable).with_name("milvus-lite")
    process = start_server(
        [
            str(exe),
            "server",
            "--data-dir",
            str(folder / "data"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        port,
        folder / "server.log",
    )
    yield f"http://127.0.0.1:{port}"
    stop(process)


# --- references and targets ----------------------------------------------------------------


def test_references_name_a_collection_where_it_lives_and_how_to_read_it() -> None:
    assert parse_reference("milvus:movies") == MilvusReference("movies")
    ref = parse_reference("milvus:movies@./movies.db")
    assert (ref.collection, ref.uri) == ("movies", "./movies.db")
    assert parse_reference("milvus://10.0.0.5:19530/films").uri == "http://10.0.0.5:19530"
    mapped = parse_reference(
        "milvus:films@http://h:19530?id=pk&vector=emb&encoder=sentence-transformers/x&text=a,b"
    )
    assert mapped.mapping_dict == {
        "id": "pk",
        "vector": "emb",
        "encoder": "sentence-transformers/x",
        "text": "a,b",
    }
    assert parse_reference(str(mapped)) == mapped
    with pytest.raises(SettingsError, match="collection name"):
        parse_reference("milvus:bad-name")
    with pytest.raises(SettingsError, match="mapping key"):
        parse_reference("milvus:films?password=x")


def test_the_token_goes_only_to_the_configured_uri(monkeypatch) -> None:
    monkeypatch.setenv("RERANK_MILVUS_URI", "https://cluster.example:19530")
    monkeypatch.setenv("RERANK_MILVUS_TOKEN", "root:secret")
    assert resolve_target().token == "root:secret"
    assert resolve_target("https://cluster.example:19530").token == "root:secret"
    linked = resolve_target("http://elsewhere:19530")
    assert linked.token == ""
    assert "secret" not in repr(resolve_target()) and "secret" not in resolve_target().label
    monkeypatch.delenv("RERANK_MILVUS_URI")
    assert resolve_target().is_lite and resolve_target().uri.endswith("milvus.db")


# --- search over a Lite file -----------------------------------------------------------------


@pytest.mark.slow
def test_dense_search_equals_exact_search(lite, movies_index, minilm) -> None:
    retriever = lite.retriever("dense", minilm, model_id=MINILM)
    got = retriever.retrieve_many(QUERIES, TOP)
    for query, vector, result in zip(
        QUERIES, minilm.encode(QUERIES, kind="query"), got, strict=True
    ):
        exact = movies_index.search(vector, TOP)
        assert [h.id for h in result.hits] == [h.id for h in exact], query
        assert [h.rank for h in result.hits] == list(range(1, TOP + 1))
        np.testing.assert_allclose(
            [h.score for h in result.hits], [h.score for h in exact], atol=1e-5
        )


def _lucene_bm25(texts: list[str], query: str, k1: float = 1.5, b: float = 0.75):
    """The documented Milvus BM25: \\w+ tokens, lower-cased, our stop words, no stemming."""
    stop = set(bm25_analyzer()["filter"][1]["stop_words"])

    def tokens(text: str) -> list[str]:
        return [w for w in re.findall(r"\w+", text.lower()) if w not in stop]

    docs = [Counter(tokens(t)) for t in texts]
    lengths = [sum(d.values()) for d in docs]
    avgdl = sum(lengths) / len(docs)
    df = Counter(w for d in docs for w in d)
    scores = {}
    for i, (doc, dl) in enumerate(zip(docs, lengths, strict=True)):
        s = 0.0
        for term, weight in Counter(tokens(query)).items():
            tf = doc.get(term, 0)
            if tf:
                idf = math.log(1 + (len(docs) - df[term] + 0.5) / (df[term] + 0.5))
                s += weight * idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avgdl))
        if s > 0:
            scores[i] = s
    return scores


@pytest.mark.slow
def test_bm25_is_lucene_bm25_over_milvus_tokens_without_stemming(lite, movies) -> None:
    data = lite.dataset()
    texts = [embed_text(r, lite.fields.embed_fields) for r in data.records]
    retriever = lite.retriever("bm25")
    assert retriever.score_kind == "bm25" and retriever.encoder is None
    for query in QUERIES:
        expected = _lucene_bm25(texts, query)
        hits = retriever.retrieve(query, 10).hits
        assert len(hits) == 10
        want = sorted(expected.values(), reverse=True)[:10]
        np.testing.assert_allclose([h.score for h in hits], want, rtol=1e-4)
        for h in hits:  # each hit's own score, matched by id
            assert h.score == pytest.approx(expected[data.position(h.id)], rel=1e-4)
    # Only documents matching a query term come back; no stemming: "heists" is not "heist".
    assert retriever.retrieve("zzqxv", 10).hits == []
    heist = {h.id for h in retriever.retrieve("heist", 50).hits}
    heists = {h.id for h in retriever.retrieve("heists", 50).hits}
    assert heist and heist.isdisjoint(heists)


@pytest.mark.slow
def test_hybrid_is_rrf_of_milvus_dense_and_bm25(lite, minilm) -> None:
    hybrid = lite.retriever("hybrid", minilm, rrf_k=60, pool=200, model_id=MINILM)
    dense = lite.retriever("dense", minilm, model_id=MINILM)
    bm25 = lite.retriever("bm25")
    for query in QUERIES[:3]:
        got = hybrid.retrieve(query, 10).hits
        want = rrf_fuse([dense.retrieve(query, 200).hits, bm25.retrieve(query, 200).hits], 200)
        scores = {h.id: h.score for h in want}
        np.testing.assert_allclose([h.score for h in got], [h.score for h in want[:10]], rtol=1e-5)
        for h in got:
            assert h.score == pytest.approx(scores[h.id], rel=1e-5)
    assert hybrid.score_kind == "rrf"


@pytest.mark.slow
def test_pipeline_and_views_over_a_milvus_first_stage(lite, minilm, movies) -> None:
    from core.present.views import summarize
    from core.search.pipeline import search_with_rerank

    data = lite.dataset()
    assert len(data) == len(movies) and data.name == str(lite.reference)
    for doc_id in ("0", "417", "999"):  # the record came back whole, by id
        assert data.record(doc_id) == movies.record(doc_id)
    assert data.title_field == "title" and data.default_rerank_fields == ("title", "overview")
    scores = {movies.ids[i]: float(i % 7) for i in range(len(movies))}
    result = search_with_rerank(
        data,
        "a heist in a casino",
        reranker=FakeReranker(scores),
        num_candidates=30,
        num_results=10,
        retriever=lite.retriever("hybrid", minilm, model_id=MINILM),
    )
    assert result.retriever == "hybrid" and result.retrieval_score_kind == "rrf"
    assert len(result.candidates) == 30
    for c in result.candidates:
        assert c.title == movies.title(c.id) and c.rerank_score == scores[c.id]
    assert [c.retrieval_rank for c in result.candidates] == list(range(1, 31))
    assert summarize(result) is not None
    assert result.to_dict()["results"][0]["final_rank"] == 1


def test_a_collection_we_did_not_export_opens_by_mapping_its_fields(tmp_path) -> None:
    from pymilvus import DataType, MilvusClient

    encoder = FakeEncoder(dimension=16)
    texts = ["red apple pie", "green apple tart", "blue whale song", "red wine stew"]
    vectors = encoder.encode(texts)
    path = tmp_path / "foreign.db"
    client = MilvusClient(str(path))
    schema = client.create_schema(auto_id=False)
    schema.add_field("pk", DataType.INT64, is_primary=True)
    schema.add_field("name", DataType.VARCHAR, max_length=200)
    schema.add_field("emb", DataType.FLOAT_VECTOR, dim=16)
    index = client.prepare_index_params()
    index.add_index("emb", index_type="FLAT", metric_type="COSINE")
    client.create_collection("dishes", schema=schema, index_params=index)
    client.insert(
        "dishes",
        [
            {"pk": 100 + i, "name": t, "emb": v.tolist()}
            for i, (t, v) in enumerate(zip(texts, vectors, strict=True))
        ],
    )
    try:
        with pytest.raises(MilvusSchemaError, match="which encoder"):
            open_collection(f"milvus:dishes@{path}")
        with pytest.raises(MilvusSchemaError, match="no field 'nope'"):
            open_collection(f"milvus:dishes@{path}?id=nope&encoder=fake-encoder")
        ref = f"milvus:dishes@{path}?encoder=fake-encoder&text=name&title=name"
        collection = open_collection(ref)
        data = collection.dataset()
        assert (
            set(data.ids) == {"100", "101", "102", "103"} and data.title("102") == "blue whale song"
        )
        assert not collection.has_bm25
        with pytest.raises(MilvusSchemaError, match="no BM25 field"):
            collection.retriever("bm25")
        hits = collection.retriever("dense", encoder).retrieve("apple pie", 4).hits
        exact = VectorIndex(data.ids, encoder.encode([data.record(i)["name"] for i in data.ids]))
        assert [h.id for h in hits] == [
            h.id for h in exact.search(encoder.encode(["apple pie"])[0], 4)
        ]
        assert hits[0].id == "100"
    finally:
        release(MilvusTarget(str(path)))


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_wrong_encoder_dimension_or_model_is_refused(lite) -> None:
    with pytest.raises(MilvusSchemaError, match="384-dimensional vectors but the encoder"):
        lite.retriever("dense", FakeEncoder(dimension=64))
    with pytest.raises(MilvusSchemaError, match="was embedded with sentence-transformers"):
        lite.retriever("hybrid", FakeEncoder(name="other-model", dimension=384))


@pytest.mark.slow
def test_wrong_metric_missing_collection_and_existing_collection(tmp_path, lite) -> None:
    from pymilvus import DataType, MilvusClient

    path = tmp_path / "l2.db"
    client = MilvusClient(str(path))
    schema = client.create_schema(auto_id=False)
    schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=10)
    schema.add_field("v", DataType.FLOAT_VECTOR, dim=4)
    index = client.prepare_index_params()
    index.add_index("v", index_type="FLAT", metric_type="L2")
    client.create_collection("l2", schema=schema, index_params=index)
    try:
        with pytest.raises(MilvusSchemaError, match="metric L2"):
            open_collection(f"milvus:l2@{path}?encoder=fake-encoder")
        with pytest.raises(MilvusSchemaError, match="no collection 'nothere'.*l2"):
            open_collection(f"milvus:nothere@{path}")
    finally:
        release(MilvusTarget(str(path)))
    small = make_dataset("tiny", [{"t": "one"}, {"t": "two"}])
    with pytest.raises(MilvusSchemaError, match="already exists"):
        export_dataset(
            small,
            lite.target,
            "movies",
            encoder=FakeEncoder(),
            model_id="fake-encoder",
        )


def test_unreachable_server_and_missing_lite_file(tmp_path) -> None:
    with pytest.raises(MilvusUnavailableError, match="cannot reach Milvus at http://127.0.0.1"):
        connect(MilvusTarget(f"http://127.0.0.1:{free_port()}"))
    with pytest.raises(MilvusUnavailableError, match="no Milvus Lite database"):
        open_collection(f"milvus:movies@{tmp_path / 'missing.db'}")
    with pytest.raises(MilvusUnavailableError, match="neither a server URI"):
        connect(MilvusTarget(str(tmp_path / "notes.txt")))


@pytest.mark.slow
def test_a_refused_token_is_an_auth_error(tmp_path) -> None:
    port = free_port()
    helper = Path(__file__).with_name("milvus_auth_server.py")
    process = start_server(
        [sys.executable, str(helper), str(tmp_path / "data"), str(port), "root:Milvus"],
        port,
        tmp_path / "auth.log",
    )
    uri = f"http://127.0.0.1:{port}"
    try:
        with pytest.raises(MilvusAuthError, match="the token was refused"):
            connect(MilvusTarget(uri, "root:wrong"))
        with pytest.raises(MilvusAuthError, match="no token was given"):
            connect(MilvusTarget(uri))
        assert connect(MilvusTarget(uri, "root:Milvus")).list_collections() == []
    finally:
        stop(process)
        release(MilvusTarget(uri, "root:Milvus"))


# --- a Milvus Lite server reached by URI -------------------------------------------------------


@pytest.mark.slow
def test_a_lite_server_by_uri_gives_the_same_results_as_the_file(
    server, lite, movies, movies_index, minilm
) -> None:
    target = MilvusTarget(server)
    report = export_dataset(
        movies,
        target,
        "movies",
        encoder=minilm,
        model_id=MINILM,
        vectors=movies_index.vectors,
    )
    assert report.reference == f"milvus:movies@{server}"
    remote = open_collection(report.reference)
    assert remote.count() == len(movies) and remote.dataset().ids == lite.dataset().ids
    for kind in ("dense", "bm25", "hybrid"):
        a = remote.retriever(kind, minilm, model_id=MINILM).retrieve_many(QUERIES[:3], TOP)
        b = lite.retriever(kind, minilm, model_id=MINILM).retrieve_many(QUERIES[:3], TOP)
        for x, y in zip(a, b, strict=True):
            assert [h.id for h in x.hits] == [h.id for h in y.hits], kind
            np.testing.assert_allclose(
                [h.score for h in x.hits], [h.score for h in y.hits], rtol=1e-5
            )
    release(target)


def test_the_cli_prints_one_line_for_a_milvus_error(tmp_path, capsys) -> None:
    from core.cli import main

    assert main(["milvus", "info", f"milvus:movies@{tmp_path / 'gone.db'}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: no Milvus Lite database at") and "\n" not in err
    url = f"milvus://127.0.0.1:{free_port()}/movies"
    assert main(["search", "heist", "--dataset", url, "--no-rerank"]) == 2
    assert capsys.readouterr().err.startswith("error: cannot reach Milvus at http://127.0.0.1")


def test_a_built_collection_exports_with_its_own_vectors(tmp_path, monkeypatch) -> None:
    """``milvus export --dataset collection:NAME``: the on-disk collection format
    (rerank-collection v1) streamed into Milvus, vectors and records by id."""
    build = pytest.importorskip("core.search.collection_build")
    open_built = pytest.importorskip("core.data.collection").open_collection
    from core.data.datasets import SAMPLE_PATH
    from core.search.milvus_export import export_built_collection

    monkeypatch.setenv("RERANK_CACHE_DIR", str(tmp_path / "cache"))
    encoder = FakeEncoder(dimension=32)
    build.build_collection(SAMPLE_PATH, "notes", encoder=encoder, id_field="id")
    built = open_built("collection:notes")
    target = MilvusTarget(str(tmp_path / "notes.db"))
    try:
        report = export_built_collection(built, target, "notes", encoder=encoder)
        assert report.rows == len(built) == 40
        collection = open_collection(report.reference)
        data = collection.dataset()
        first = next(built.iter_batches(40))
        for doc_id, record in zip(first[1], first[2], strict=True):
            assert data.record(doc_id) == record
        query = encoder.encode(["bats in the roof"], kind="query")[0]
        exact = VectorIndex(first[1], np.asarray(first[3])).search(query, 10)
        hits = collection.retriever("dense", encoder).retrieve("bats in the roof", 10).hits
        assert [h.id for h in hits] == [h.id for h in exact]
        with pytest.raises(MilvusSchemaError, match="was embedded with"):
            export_built_collection(
                built, target, "other", encoder=FakeEncoder(name="x", dimension=32)
            )
    finally:
        release(target)


def test_the_search_page_keeps_a_milvus_link_and_its_collection_encoder(monkeypatch) -> None:
    from core.present.search_state import settings_from_widgets, view_from_link, widget_values

    monkeypatch.setenv("RERANK_MILVUS_ALLOWED_URIS", "./m.db, http://milvus.internal:19530")
    view, warnings = view_from_link({"dataset": "milvus:movies@./m.db", "q": "heist"})
    assert view.dataset == "milvus:movies@./m.db" and warnings == []
    values = widget_values(view, (MINILM,))
    values["embed_fields"], values["rerank_fields"] = values.pop("pending_fields")
    settings = settings_from_widgets(values, upload=False, encoder="BAAI/bge-small-en-v1.5")
    assert settings.encoder == "BAAI/bge-small-en-v1.5"
    assert settings.to_params()["dataset"] == "milvus:movies@./m.db"


@pytest.mark.slow
def test_embed_reads_a_stored_upload_by_its_id(tmp_path, monkeypatch, capsys) -> None:
    from core.cli import main
    from core.data.upload_store import UploadStore

    monkeypatch.setenv("RERANK_CACHE_DIR", str(tmp_path))
    data = b'[{"id": "a", "text": "red apple"}, {"id": "b", "text": "blue whale"}]'
    upload = UploadStore().put(data, "fruit.json")
    out = tmp_path / "vec"
    argv = ["embed", "--dataset", upload, "--encoder", MINILM, "--out", str(out), "--no-cache"]
    assert main(argv) == 0, capsys.readouterr().err
    assert "embedded 2 records" in capsys.readouterr().out
    from core.search.vectors import read_vector_set

    assert read_vector_set(out).ids == ("a", "b")


def test_a_link_names_only_the_operators_milvus(monkeypatch) -> None:
    from core.present.search_state import view_from_link

    monkeypatch.delenv("RERANK_MILVUS_ALLOWED_URIS", raising=False)
    monkeypatch.setenv("RERANK_MILVUS_URI", "http://milvus.internal:19530")
    for ok in ("milvus:movies", "milvus://milvus.internal:19530/movies"):
        assert view_from_link({"dataset": ok})[0].dataset == ok
    for refused in ("milvus:movies@/etc/x.db", "milvus://evil.example:19530/movies"):
        view, warnings = view_from_link({"dataset": refused})
        assert view.dataset == "movies"
        assert any("a link may name only the operator's Milvus" in w for w in warnings)
