"""The app with uploaded data (AppTest): the upload box, the quality report, bad files,
hostile titles, share links naming an upload, and the id-field override.

Uploads go through the sidebar's real ``st.file_uploader`` and land in the store under
``RERANK_CACHE_DIR`` (tests/conftest.py points it at .test-cache), which every AppTest
in this process shares: a second AppTest opened with an upload's link plays the part of
someone the link was sent to. Elements are always fetched again from ``at`` after a
run, never reused. Tests that run a query load the real packaged models and are marked
slow; the others stop before any model is loaded.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.data.upload_store import UploadStore, is_upload_id, upload_id
from core.present.views import ROW_IDS, escape_markdown

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"
SMALL_JSONL = DATA / "upload_small.jsonl"
SMALL_RECORDS = [json.loads(line) for line in SMALL_JSONL.read_text("utf-8").splitlines()]

BIKE_QUERY = "my bike chain keeps skipping gears"
BIKE_TOP = "Replacing a Bicycle Chain"
FISH_QUERY = "how often should I feed my goldfish"
FISH_TOP = "Feeding a Pet Goldfish"

# The sample's own example queries, each with the note that obviously answers it.
SAMPLE_QUERIES = [
    ("how do I get bats out of my roof without hurting them", "Bats in the Attic: Safe Eviction"),
    (
        "is the silver liquid from a broken thermometer dangerous to breathe",
        "Cleaning Up a Broken Mercury Thermometer",
    ),
    (
        "how long should I let wood dry before burning it in the stove",
        "Seasoning Firewood for a Clean Burn",
    ),
    ("my python gets scared and curls up when I pick it up", "Ball Pythons in the Wild"),
]

SCRIPT = "<script>alert(1)</script>"
MARKDOWNISH = "**Tides** _explained_ [click](https://example.com) `code` # not a heading"
HOSTILE_RECORDS = [
    {
        "id": "h1",
        "title": SCRIPT,
        "body": "Volcanoes erupt when molten magma rises through cracks in the crust and "
        "the trapped gas pressure blasts lava and ash out of the crater.",
    },
    {
        "id": "h2",
        "title": MARKDOWNISH,
        "body": "Ocean tides rise and fall twice a day because the moon's gravity pulls "
        "the water of the seas toward it.",
    },
    {
        "id": "h3",
        "title": "Brewing Green Tea",
        "body": "Steep green tea leaves in water just below boiling for two minutes so "
        "the cup does not turn bitter.",
    },
]


# --- helpers --------------------------------------------------------------------------


def make_app(**params: str) -> AppTest:
    """An AppTest of the entry point, with ``params`` in its URL."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    for key, value in params.items():
        at.query_params[key] = value
    return at


def assert_no_exception(at: AppTest) -> None:
    assert not at.exception, [e.message for e in at.exception]


def texts(elements) -> str:
    """The elements' text as a reader sees it: the app's markdown escapes resolved."""
    return re.sub(r"\\(.)", r"\1", "\n".join(str(e.value) for e in elements))


def upload(at: AppTest, name: str, data: bytes, mime: str = "application/json") -> AppTest:
    """Put a file in the sidebar's dataset uploader and rerun, as dropping it in would.

    Found by key: the page may hold other uploaders (judgments import).
    """
    at.file_uploader(key="upload_file").set_value((name, data, mime)).run()
    assert_no_exception(at)
    return at


def query(at: AppTest, text: str) -> AppTest:
    at.text_input(key="query").input(text).run()
    assert_no_exception(at)
    return at


def rerank_titles(at: AppTest) -> list[str]:
    """Titles of the reranked (final) table, best first."""
    (frame,) = [df.value for df in at.dataframe if "move" in df.value.columns]
    return list(frame["title"])


def retrieval_titles(at: AppTest) -> list[str]:
    (frame,) = [df.value for df in at.dataframe if "cosine" in df.value.columns]
    return list(frame["title"])


def quality_expander(at: AppTest, filename: str):
    # labels are markdown: the app escapes file names (upload_small -> upload\_small)
    found = [e for e in at.expander if e.label == f"Data quality: {escape_markdown(filename)}"]
    assert len(found) == 1, [e.label for e in at.expander]
    return found[0]


def report_metrics(at: AppTest, filename: str) -> dict[str, str]:
    return {m.label: m.value for m in quality_expander(at, filename).metric}


def dataset_options(at: AppTest) -> list[str]:
    """The dataset picker's options as shown (labels)."""
    return list(at.selectbox(key="dataset").options)


def as_json(records: list[dict]) -> bytes:
    return json.dumps(records, indent=1, ensure_ascii=False).encode()


def as_jsonl(records: list[dict]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()


def as_csv(records: list[dict]) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(records[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return buffer.getvalue().encode()


# The same eight records in each format (different bytes, so different upload ids).
GOOD_FILES = {
    "json": ("upload_small.json", as_json(SMALL_RECORDS), "application/json"),
    "jsonl": ("upload_small.jsonl", SMALL_JSONL.read_bytes(), "application/jsonl"),
    "csv": ("upload_small.csv", as_csv(SMALL_RECORDS), "text/csv"),
}


def unknown_upload_id() -> str:
    """A well-formed upload id this server has never stored."""
    dataset_id = upload_id(b"never uploaded by any test of this suite")
    assert is_upload_id(dataset_id)
    assert not UploadStore().exists(dataset_id)
    return dataset_id


# --- a good upload --------------------------------------------------------------------


@pytest.mark.parametrize("fmt", list(GOOD_FILES))
def test_good_upload_is_selected_reported_and_in_the_url(fmt: str) -> None:
    name, data, mime = GOOD_FILES[fmt]
    at = make_app(dataset="sample").run()
    assert_no_exception(at)
    assert at.selectbox(key="dataset").value == "sample"

    upload(at, name, data, mime)
    expected_id = upload_id(data)
    assert re.fullmatch(r"upload-[0-9a-f]{16}", expected_id)
    assert at.selectbox(key="dataset").value == expected_id
    assert f"{name} (8 records)" in dataset_options(at)
    assert at.query_params["dataset"] == expected_id
    assert not at.error and not at.warning
    assert UploadStore().get(expected_id) == (data, name)

    report = quality_expander(at, name)
    assert report.proto.expanded  # opened right after the upload
    shown = report_metrics(at, name)
    assert shown["Records"] == "8"
    assert shown["Searchable"] == "8"
    assert shown["Dropped (no text)"] == "0"
    fields = list(report.dataframe[0].value["field"])
    assert fields == ["id", "title", "body", "category"]

    # Suggested fields: "id" as the id, "title" as the title; the upload's own text fields.
    assert at.selectbox(key="id_choice").value == ""
    assert "Now: id." in at.selectbox(key="id_choice").help
    assert "Now: title." in at.selectbox(key="title_choice").help
    assert at.multiselect(key="embed_fields").value == ["title", "body", "category"]
    assert at.query_params["efields"] == "title,body,category"
    assert "Type a query or pick an example" in texts(at.info)


def test_switching_away_from_an_upload_and_back() -> None:
    name, data, mime = GOOD_FILES["jsonl"]
    at = upload(make_app(dataset="sample").run(), name, data, mime)
    dataset_id = upload_id(data)

    at.selectbox(key="dataset").set_value("sample").run()
    assert_no_exception(at)
    assert at.selectbox(key="dataset").value == "sample"
    assert at.query_params["dataset"] == "sample"
    assert not [e for e in at.expander if e.label.startswith("Data quality")]
    assert f"{name} (8 records)" in dataset_options(at)  # still offered

    at.selectbox(key="dataset").set_value(dataset_id).run()
    assert_no_exception(at)
    assert at.selectbox(key="dataset").value == dataset_id
    assert at.query_params["dataset"] == dataset_id
    assert report_metrics(at, name)["Records"] == "8"


@pytest.mark.slow
@pytest.mark.parametrize("fmt", list(GOOD_FILES))
def test_good_upload_is_searchable(fmt: str) -> None:
    name, data, mime = GOOD_FILES[fmt]
    at = upload(make_app(dataset="sample").run(), name, data, mime)
    query(at, BIKE_QUERY)
    assert not at.error
    shown = rerank_titles(at)
    assert shown[0] == BIKE_TOP
    assert sorted(shown) == sorted(r["title"] for r in SMALL_RECORDS)  # only its records
    assert retrieval_titles(at)[0] == BIKE_TOP
    assert at.query_params["q"] == BIKE_QUERY
    assert at.query_params["dataset"] == upload_id(data)

    query(at, FISH_QUERY)
    assert rerank_titles(at)[0] == FISH_TOP


# --- bad files ------------------------------------------------------------------------

LATIN1 = '[{"title": "Café crème", "body": "Un café au lait à la française."}]'.encode("latin-1")
# Valid, but bigger than the tiny limit the oversized case sets (and unique to it).
OVERSIZED = as_json([{"title": f"Oversized note {i}", "body": "x " * 40} for i in range(5)])
TINY_LIMIT_MB = "0.0001"  # 100 bytes (MB of 10^6 bytes, as Streamlit counts)

# (file name, bytes, environment, pattern the one-line error must match)
BAD_FILES = {
    "truncated-json": (
        "truncated.json",
        b'[\n  {"title": "Heat", "body": "Bank robbers"},\n  {"title": "Alien", "bo',
        {},
        r"truncated\.json is not valid JSON: .* at line 3, column \d+",
    ),
    "top-level-number": (
        "number.json",
        b"42\n",
        {},
        r"number\.json holds a JSON number; expected an array of records",
    ),
    "records-are-lists": (
        "lists.json",
        b'[["Heat", "Bank robbers"], ["Alien", "A signal in space"]]',
        {},
        r"lists\.json: record 0 is a JSON array, not an object",
    ),
    "empty-file": ("empty.json", b"", {}, r"empty\.json is empty"),
    "latin-1": (
        "latin1.json",
        LATIN1,
        {},
        r"latin1\.json is not UTF-8 text: line 1, column \d+ \(byte offset \d+\) "
        r"holds 0xe9.*Latin-1",
    ),
    "oversized": (
        "oversized.json",
        OVERSIZED,
        {"RERANK_MAX_UPLOAD_MB": TINY_LIMIT_MB},
        r"oversized\.json is .*; uploads are limited to 100 bytes \(RERANK_MAX_UPLOAD_MB\)",
    ),
    "no-text-fields": (
        "numbers.json",
        b'[{"id": 1, "year": 1999, "score": 4.5}, {"id": 2, "year": 2004, "score": 3.0}]',
        {},
        r"numbers\.json has no text fields",
    ),
}


def assert_one_line_error(at: AppTest, pattern: str) -> None:
    # error bodies are markdown in which the app escapes what the user supplied
    errors = [re.sub(r"\\(.)", r"\1", e.value) for e in at.error]
    assert len(errors) == 1, errors
    assert "\n" not in errors[0].strip(), errors[0]
    assert re.search(pattern, errors[0]), errors[0]


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_file_is_one_error_and_changes_nothing(case: str, monkeypatch) -> None:
    name, data, env, pattern = BAD_FILES[case]
    at = make_app(dataset="sample").run()
    assert_no_exception(at)
    options = dataset_options(at)
    params = dict(at.query_params)

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    upload(at, name, data)
    assert_one_line_error(at, pattern)
    assert at.selectbox(key="dataset").value == "sample"
    assert dataset_options(at) == options
    assert dict(at.query_params) == params
    assert not [e for e in at.expander if e.label.startswith("Data quality")]
    assert not UploadStore().exists(upload_id(data)), "a rejected file must not be stored"

    # Reruns (another widget) keep the explanation and the dataset; nothing is re-parsed.
    at.slider(key="results").set_value(3).run()
    assert_no_exception(at)
    assert_one_line_error(at, pattern)
    assert at.selectbox(key="dataset").value == "sample"
    assert at.query_params["n"] == "3"


@pytest.mark.slow
def test_previous_dataset_stays_searchable_through_every_bad_file(monkeypatch) -> None:
    """One session, every bad file in turn, with a query before and after each."""
    (first_query, first_top), *others = SAMPLE_QUERIES
    at = make_app(dataset="sample", q=first_query, k="10", n="5").run()
    assert_no_exception(at)
    assert rerank_titles(at)[0] == first_top

    for number, (case, (name, data, env, pattern)) in enumerate(BAD_FILES.items()):
        with monkeypatch.context() as patch:
            for key, value in env.items():
                patch.setenv(key, value)
            upload(at, name, data)
        assert_one_line_error(at, pattern)
        assert at.selectbox(key="dataset").value == "sample", case
        assert at.query_params["dataset"] == "sample", case
        # The last search is still on screen...
        assert len(rerank_titles(at)) == 5, case
        # ...and a new query runs against the same dataset.
        text, top = others[number % len(others)]
        query(at, text)
        assert rerank_titles(at)[0] == top, case
        assert at.query_params["q"] == text
        assert_one_line_error(at, pattern)  # the bad file is still in the box


# --- hostile text ---------------------------------------------------------------------


@pytest.mark.slow
def test_html_and_markdown_in_titles_show_verbatim() -> None:
    name = "hostile-titles.json"
    at = upload(make_app(dataset="sample").run(), name, as_json(HOSTILE_RECORDS))
    assert report_metrics(at, name)["Records"] == "3"
    query(at, "why do volcanoes erupt")
    assert not at.error

    shown = rerank_titles(at)
    assert shown[0] == SCRIPT
    assert MARKDOWNISH in shown
    assert SCRIPT in retrieval_titles(at)
    pick = at.selectbox(key="detail_pick")
    assert pick.value == f"1. {SCRIPT}"
    assert any(option.endswith(MARKDOWNISH) for option in pick.options)
    assert SCRIPT in texts(at.json)  # the record, as JSON text

    # Only the passage view renders HTML (its own highlight tags around escaped record
    # text); no HTML or markdown body carries the titles unescaped.
    for element in at.get("html"):
        assert "<script" not in element.proto.body, element.proto.body
    for element in [*at.markdown, *at.caption]:
        assert not element.proto.allow_html, element.value
        assert "<script" not in element.value, element.value
        assert "[click](https://example.com)" not in element.value, element.value

    # The hostile record can be picked and read in the details.
    (markdown_option,) = [o for o in pick.options if o.endswith(MARKDOWNISH)]
    at.selectbox(key="detail_pick").set_value(markdown_option).run()
    assert_no_exception(at)
    assert at.selectbox(key="detail_pick").value == markdown_option
    assert MARKDOWNISH in texts(at.json)


# --- share links ----------------------------------------------------------------------


@pytest.mark.slow
def test_share_link_to_an_upload_reproduces_the_results() -> None:
    name, data, mime = GOOD_FILES["jsonl"]
    at = upload(make_app(dataset="sample").run(), name, data, mime)
    query(at, BIKE_QUERY)
    original = rerank_titles(at)
    link = dict(at.query_params)
    assert link["dataset"] == upload_id(data)
    assert link["q"] == BIKE_QUERY

    shared = make_app(**link).run()  # a new session: only the link and the server's store
    assert_no_exception(shared)
    assert not shared.error and not shared.warning
    assert shared.selectbox(key="dataset").value == link["dataset"]
    assert f"{name} (8 records)" in dataset_options(shared)
    assert shared.text_input(key="query").value == BIKE_QUERY
    assert rerank_titles(shared) == original
    assert rerank_titles(shared)[0] == BIKE_TOP
    assert dict(shared.query_params) == link
    # Opened from a link, the report is there but not thrown open.
    assert not quality_expander(shared, name).proto.expanded


def test_share_link_to_an_unknown_upload_says_so_and_suggests_the_sample() -> None:
    dataset_id = unknown_upload_id()
    at = make_app(dataset=dataset_id, q="anything").run()
    assert_no_exception(at)
    error = texts(at.error)
    assert dataset_id in error
    assert "no longer on this server" in error
    assert "upload the file again" in error
    assert "Sample" in texts(at.info)
    assert not at.dataframe

    at.selectbox(key="dataset").set_value("sample").run()  # the suggestion works
    assert_no_exception(at)
    assert not at.error
    assert at.query_params["dataset"] == "sample"


@pytest.mark.parametrize(
    "bad",
    [
        "../../etc/passwd",
        "upload-../../etc/passwd",
        "upload-0123456789ABCDEF",  # upper case: not an id this app ever makes
        "upload-0123456789abcdef0",  # one digit too many
        "/etc/passwd",
    ],
)
def test_share_link_with_a_malformed_dataset_falls_back_to_movies(bad: str) -> None:
    at = make_app(dataset=bad).run()
    assert_no_exception(at)
    warned = texts(at.warning)
    assert f"unknown dataset {bad!r}" in warned
    assert "using movies" in warned
    assert not at.error
    assert at.selectbox(key="dataset").value == "movies"
    assert at.query_params["dataset"] == "movies"


# --- id field override ----------------------------------------------------------------


def test_id_field_with_duplicates_is_refused_and_row_position_is_kept_in_the_url() -> None:
    name, data, mime = GOOD_FILES["json"]
    at = upload(make_app(dataset="sample").run(), name, data, mime)
    dataset_id = upload_id(data)
    assert at.selectbox(key="id_choice").value == ""

    at.selectbox(key="id_choice").set_value("category").run()  # bikes, bikes, pets, ...
    assert_no_exception(at)
    errors = texts(at.error).splitlines()
    assert len(errors) == 1, errors
    assert "Cannot use that id or title field" in errors[0]
    assert "'category'" in errors[0] and "repeats the value 'bikes'" in errors[0]
    # Back on the suggestion: still the upload, with its own id field.
    assert at.selectbox(key="id_choice").value == ""
    assert "Now: id." in at.selectbox(key="id_choice").help
    assert at.selectbox(key="dataset").value == dataset_id
    assert "idf" not in at.query_params
    assert report_metrics(at, name)["Records"] == "8"

    at.selectbox(key="id_choice").set_value(ROW_IDS).run()
    assert_no_exception(at)
    assert not at.error
    assert at.selectbox(key="id_choice").value == ROW_IDS
    assert "Now: row position." in at.selectbox(key="id_choice").help
    assert at.query_params["idf"] == ROW_IDS
    assert at.query_params["dataset"] == dataset_id


@pytest.mark.slow
def test_row_position_ids_survive_a_share_link() -> None:
    name, data, mime = GOOD_FILES["json"]
    at = upload(make_app(dataset="sample").run(), name, data, mime)
    at.selectbox(key="id_choice").set_value(ROW_IDS).run()
    query(at, FISH_QUERY)
    assert rerank_titles(at)[0] == FISH_TOP
    result = at.session_state["last_result"]
    assert result.top_final[0].id == "2"  # row position of the goldfish record

    link = dict(at.query_params)
    assert link["idf"] == ROW_IDS
    shared = make_app(**link).run()
    assert_no_exception(shared)
    assert not shared.error
    assert shared.selectbox(key="id_choice").value == ROW_IDS
    assert rerank_titles(shared) == rerank_titles(at)


# --- a bigger file ----------------------------------------------------------------------

BIG_COUNT = 5_000
NEEDLE = "The Lighthouse Keeper's Ginger Cat"


def big_records() -> list[dict]:
    """5,000 dull inventory notes (deterministic) and one that is about something else."""
    colours = ["red", "blue", "green", "grey", "black", "white", "amber", "teal"]
    things = ["bolt", "washer", "hinge", "bracket", "spring", "gasket", "clamp", "rivet"]
    places = ["aisle", "shelf", "bin", "crate", "drawer", "rack", "cabinet", "pallet"]
    records = []
    for i in range(BIG_COUNT):
        colour, thing, place = colours[i % 8], things[(i // 8) % 8], places[(i // 64) % 8]
        records.append(
            {
                "id": f"item-{i:05d}",
                "title": f"{colour.title()} {thing} lot {i}",
                "body": f"Stock note {i}: {colour} {thing}s kept in {place} {i % 97}, "
                f"reorder when fewer than {10 + i % 40} remain.",
            }
        )
    records[3_721] = {
        "id": "item-03721",
        "title": NEEDLE,
        "body": "An orange cat lives with the keeper at the lighthouse and sleeps by the "
        "lamp while ships pass the rocks at night.",
    }
    return records


@pytest.mark.slow
def test_five_thousand_record_upload_builds_and_is_searchable() -> None:
    name = "inventory-5000.json"
    data = as_json(big_records())
    at = upload(make_app(dataset="sample").run(), name, data)
    assert at.selectbox(key="dataset").value == upload_id(data)
    shown = report_metrics(at, name)
    assert shown["Records"] == "5,000"
    assert shown["Searchable"] == "5,000"
    assert shown["Dropped (no text)"] == "0"
    assert f"{name} (5,000 records)" in dataset_options(at)

    query(at, "a cat that lives in a lighthouse")
    assert not at.error
    assert rerank_titles(at)[0] == NEEDLE  # BM25 stands in while the index is built
    # the dense index is built in the background (core.search.background) unless an
    # earlier run left it in the cache; then the next run is dense
    from core.search.background import default_embedder

    for job in [j for j in default_embedder().jobs() if j.dataset.name == upload_id(data)]:
        assert job.wait(1800) and job.status().state == "done"
    at.run()
    assert rerank_titles(at)[0] == NEEDLE
    assert retrieval_titles(at)[0] == NEEDLE
    assert at.session_state["last_result"].top_final[0].id == "item-03721"
