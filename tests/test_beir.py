"""Tests of core.data.beir: BEIR folders and judgment CSVs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.data.beir import (
    BeirDataset,
    document_text,
    dump_judgments_csv,
    load_beir,
    load_judgments_csv,
    load_queries_file,
    map_doc_ids,
    read_judgments,
)
from core.models.errors import DatasetError, DatasetUnavailableError

SCIFACT = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "scifact"


def _jsonl(records: list[dict]) -> str:
    return "".join(json.dumps(record) + "\n" for record in records)


@pytest.fixture
def tiny_beir(tmp_path: Path) -> Path:
    """A four-doc BEIR folder; qrels in CRLF with a header, like the published files."""
    corpus = [
        {"_id": "d1", "title": "Aspirin", "text": " Aspirin thins blood. ", "metadata": {}},
        {"_id": "d2", "title": "", "text": "Untitled text."},
        {"_id": "d3", "text": "No title field at all."},
        {"_id": 4, "title": "Numeric id", "text": "BEIR ids are strings, JSON may not be."},
    ]
    queries = [
        {"_id": "q1", "text": "does aspirin thin blood", "metadata": {}},
        {"_id": "q2", "text": "untitled"},
        {"_id": "q3", "text": "a query judged in no split"},
    ]
    (tmp_path / "corpus.jsonl").write_text(_jsonl(corpus), encoding="utf-8")
    (tmp_path / "queries.jsonl").write_text(_jsonl(queries), encoding="utf-8")
    (tmp_path / "qrels").mkdir()
    test_tsv = "query-id\tcorpus-id\tscore\r\nq1\td1\t2\r\nq1\td3\t0\r\nq2\td2\t1\r\n"
    (tmp_path / "qrels" / "test.tsv").write_bytes(test_tsv.encode())
    (tmp_path / "qrels" / "dev.tsv").write_bytes(b"query-id\tcorpus-id\tscore\r\nq2\t4\t1\r\n")
    return tmp_path


def test_load_beir_tiny(tiny_beir: Path) -> None:
    data = load_beir(tiny_beir)
    assert isinstance(data, BeirDataset)
    assert data.split == "test"
    assert data.name == tiny_beir.name
    assert set(data.corpus) == {"d1", "d2", "d3", "4"}
    # q3 has no qrels in the test split and is dropped.
    assert data.queries == {"q1": "does aspirin thin blood", "q2": "untitled"}
    # No "\r" survives the CRLF line endings; scores are ints.
    assert data.qrels == {"q1": {"d1": 2, "d3": 0}, "q2": {"d2": 1}}
    assert data.num_judgments == 3


def test_load_beir_other_split(tiny_beir: Path) -> None:
    data = load_beir(tiny_beir, split="dev")
    assert data.queries == {"q2": "untitled"}
    assert data.qrels == {"q2": {"4": 1}}


def test_document_text_joins_title_and_text(tiny_beir: Path) -> None:
    data = load_beir(tiny_beir)
    assert data.doc_text("d1") == "Aspirin Aspirin thins blood."
    assert data.doc_text("d2") == "Untitled text."
    assert data.doc_text("d3") == "No title field at all."
    assert document_text({"title": "  Only title ", "text": ""}) == "Only title"


def test_missing_split_lists_available_ones(tiny_beir: Path) -> None:
    with pytest.raises(DatasetUnavailableError, match=r"available splits: dev, test"):
        load_beir(tiny_beir, split="train")


def test_missing_folder_or_file(tmp_path: Path, tiny_beir: Path) -> None:
    with pytest.raises(DatasetUnavailableError, match="not found"):
        load_beir(tmp_path / "nowhere")
    (tiny_beir / "corpus.jsonl").unlink()
    with pytest.raises(DatasetUnavailableError, match=r"corpus\.jsonl"):
        load_beir(tiny_beir)


def test_bad_json_names_file_and_line(tiny_beir: Path) -> None:
    with (tiny_beir / "corpus.jsonl").open("a", encoding="utf-8") as corpus:
        corpus.write('{"_id": "d5", "text": \n')
    with pytest.raises(DatasetError, match=r"corpus.jsonl line 5: invalid JSON"):
        load_beir(tiny_beir)


def test_record_without_id_is_rejected(tiny_beir: Path) -> None:
    (tiny_beir / "queries.jsonl").write_text('{"text": "no id"}\n', encoding="utf-8")
    with pytest.raises(DatasetError, match=r"queries.jsonl line 1: .*'_id'"):
        load_beir(tiny_beir)


def test_bad_qrels_score_names_line(tiny_beir: Path) -> None:
    (tiny_beir / "qrels" / "test.tsv").write_bytes(
        b"query-id\tcorpus-id\tscore\r\nq1\td1\t1\r\nq1\td2\thigh\r\n"
    )
    with pytest.raises(DatasetError, match=r"test.tsv line 3: score 'high'"):
        load_beir(tiny_beir)


def test_qrels_with_wrong_field_count(tiny_beir: Path) -> None:
    (tiny_beir / "qrels" / "test.tsv").write_bytes(b"q1 d1 1\r\n")
    with pytest.raises(DatasetError, match=r"test.tsv line 1: expected 3 tab-separated"):
        load_beir(tiny_beir)


def test_qrels_for_unknown_query(tiny_beir: Path) -> None:
    (tiny_beir / "qrels" / "test.tsv").write_bytes(b"query-id\tcorpus-id\tscore\r\nq9\td1\t1\r\n")
    with pytest.raises(DatasetError, match=r"absent from queries\.jsonl.*'q9'"):
        load_beir(tiny_beir)


@pytest.mark.slow
def test_load_real_scifact() -> None:
    if not SCIFACT.is_dir():
        pytest.skip(f"SciFact is not at {SCIFACT} (shared/datasets/scifact beside the repo)")
    data = load_beir(SCIFACT)
    assert len(data.corpus) == 5183
    assert len(data.queries) == 300
    assert set(data.queries) == set(data.qrels)
    assert data.num_judgments == 339
    assert all(rel > 0 for docs in data.qrels.values() for rel in docs.values())
    assert all(document_text(doc) for doc in data.corpus.values())


# --- judgments CSV ------------------------------------------------------------------


def test_judgments_round_trip_with_awkward_text(tmp_path: Path) -> None:
    judgments = {
        'aspirin, "low dose"': {"d1": 3, "d2": 0},
        "line\nbreak query": {"d3": 1},
        "ünïcode": {"d4": 2},
    }
    text = dump_judgments_csv(judgments)
    assert text.startswith("query,doc_id,rating\r\n")  # RFC 4180 line ends
    assert load_judgments_csv(text.encode()) == judgments
    path = tmp_path / "judgments.csv"
    path.write_text(text, encoding="utf-8")
    assert load_judgments_csv(path) == judgments
    assert load_judgments_csv(str(path)) == judgments


def test_judgments_accepts_bom_crlf_column_order_and_blank_lines() -> None:
    data = "\ufeffRating,Query,doc_id\r\n2,aspirin,d1\r\n\r\n0,aspirin,d2\r\n".encode()
    assert load_judgments_csv(data) == {"aspirin": {"d1": 2, "d2": 0}}


def test_judgments_later_row_wins() -> None:
    data = b"query,doc_id,rating\nq,d1,1\nq,d1,3\n"
    assert load_judgments_csv(data) == {"q": {"d1": 3}}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"query,doc,rating\nq,d1,1\n", "line 1: header lacks doc_id"),
        (b"query,doc_id,rating\nq,d1,1\nq,d2,-1\n", "line 3: rating '-1' is not a non-neg"),
        (b"query,doc_id,rating\nq,d1,2.5\n", "line 2: rating '2.5'"),
        (b"q1 0 d1 1\n", "TREC qrels, which name queries by id"),
        (b"query,doc_id,rating\nq,d1,good\n", "line 2: rating 'good'"),
        (b"query,doc_id,rating\nq,d1\n", "line 2: expected 3 fields"),
        (b"query,doc_id,rating\n,d1,1\n", "line 2: empty query"),
        (b"query,doc_id,rating\n\xff\xfe,d1,1\n", r"not UTF-8 text: line 2, column 1 \(byte"),
    ],
)
def test_bad_judgments_are_dataset_errors(data: bytes, message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        load_judgments_csv(data)


def test_missing_judgments_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetUnavailableError, match="not found"):
        load_judgments_csv(tmp_path / "none.csv")


# --- other judgment formats -----------------------------------------------------------


def test_any_non_negative_grade_and_binary() -> None:
    graded = read_judgments(b"query,doc_id,rating\nq,d1,4\nq,d2,0\nq,d3,10\nq,d4,3.0\n")
    assert graded.qrels == {"q": {"d1": 4, "d2": 0, "d3": 10, "d4": 3}}
    assert graded.scale == "graded 0-10" and graded.format == "csv"
    assert read_judgments(b"query,doc_id,rating\nq,d1,1\nq,d2,0\n").scale == "binary (0/1)"


def test_quepid_export_columns_and_unrated_rows() -> None:
    data = (
        b"Team Name,Judge Name,Query Text,Doc ID,Rating\r\n"
        b'Search,ann,"space, robots",862,4\r\n'
        b"Search,ann,space robots,157336,\r\n"
        b"Search,bob,heist,680,0\r\n"
    )
    judgments = read_judgments(data)
    assert judgments.format == "quepid"
    assert judgments.qrels == {"space, robots": {"862": 4}, "heist": {"680": 0}}
    assert judgments.skipped == 1
    assert load_judgments_csv(data) == judgments.qrels


def test_trec_qrels_with_a_queries_file(tmp_path: Path) -> None:
    queries = load_queries_file(b"id\ttext\nq1\tspace robots\nq2\theist film\n")
    assert queries == {"q1": "space robots", "q2": "heist film"}
    jsonl = b'{"_id": "q1", "text": "space robots"}\n'
    assert load_queries_file(jsonl) == {"q1": "space robots"}
    qrels = read_judgments(b"q1 0 d1 4\nq1 0 d2 0\n\nq2\tQ0\td7\t2\n", queries=queries)
    assert qrels.format == "trec"
    assert qrels.qrels == {"space robots": {"d1": 4, "d2": 0}, "heist film": {"d7": 2}}
    with pytest.raises(DatasetError, match="line 1: query id 'q9'"):
        read_judgments(b"q9 0 d1 1\n", queries=queries)
    with pytest.raises(DatasetError, match="expected 'id<TAB>text'"):
        load_queries_file(b"just words\n")


def test_map_doc_ids_through_a_field() -> None:
    from core.data.documents import make_dataset

    dataset = make_dataset(
        "films",
        [{"title": "Alien", "year": 1979}, {"title": "Heat", "year": 1995}],
        title_field="title",
    )
    qrels = {"q": {"Alien": 3, "Heat": 0, "Nope": 2}}
    mapped, unknown = map_doc_ids(qrels, dataset, "title")
    assert mapped == {"q": {dataset.ids[0]: 3, dataset.ids[1]: 0}}
    assert unknown == ["Nope"]
    same, unknown = map_doc_ids({"q": {dataset.ids[1]: 1, "zz": 1}}, dataset, None)
    assert same == {"q": {dataset.ids[1]: 1, "zz": 1}} and unknown == ["zz"]
    with pytest.raises(DatasetError, match="not a field"):
        map_doc_ids(qrels, dataset, "nope")
    twice = make_dataset("t", [{"title": "A", "y": 1}, {"title": "B", "y": 1}])
    with pytest.raises(DatasetError, match="not unique"):
        map_doc_ids(qrels, twice, "y")
