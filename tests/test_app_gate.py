"""Issue 29's cases in the app (AppTest): stored walkthroughs and Head to head links go
through the one gate. The SSRF case has a loopback listener that must see no connection.
Steps use BM25 and no reranker, so no model is loaded."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.data.upload_store import UploadStore
from core.present.walkthrough import FORMAT, WalkthroughStore, parse_walkthrough
from tests.listener import Listener, listening

ROOT = Path(__file__).resolve().parents[1]
FAST = {"ret": "bm25", "reranker": "none", "k": "10", "n": "3"}


@pytest.fixture
def listener() -> Iterator[Listener]:
    yield from listening()


def no_exception(at: AppTest) -> None:
    assert not at.exception, [e.message for e in at.exception]


def texts(at: AppTest) -> list[str]:
    return [str(e.value) for kind in ("warning", "error", "info", "markdown") for e in at.get(kind)]


def stored(steps: list[dict], title: str = "Hostile") -> str:
    data = json.dumps({"format": FORMAT, "title": title, "steps": steps})
    return WalkthroughStore().put(parse_walkthrough(data))


def open_walkthrough(wid: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=240)
    at.query_params["walkthrough"] = wid
    return at.run()


def test_a_stored_walkthrough_never_makes_the_server_connect_or_probe(listener) -> None:
    port = listener.port
    steps = [
        {"params": {**FAST, "q": "heist", "dataset": f"milvus://127.0.0.1:{port}/x"}},
        {"params": {**FAST, "q": "heist", "dataset": f"milvus:coll@http://127.0.0.1:{port}"}},
        {"params": {**FAST, "q": "heist", "dataset": "milvus:coll@/some/path.db"}},
    ]
    at = open_walkthrough(stored(steps))
    for _ in range(len(steps)):
        no_exception(at)
        warnings = [w.value for w in at.warning]
        assert any("Step setting ignored" in w for w in warnings), warnings
        nxt = next(b for b in at.button if b.label == "Next ▶")
        if nxt.disabled:
            break
        nxt.click().run()
    assert listener.connections == 0


@pytest.mark.parametrize("b", ["/etc", "/nonexistent/dir", "org/model"])
def test_a_stored_step_with_a_model_path_as_b_is_refused(b: str) -> None:
    at = open_walkthrough(stored([{"params": {**FAST, "q": "heist"}, "b": b}]))
    no_exception(at)
    assert not at.error
    assert any("Step setting ignored" in w.value for w in at.warning)


def compare_app(**params: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=240)
    for key, value in params.items():
        at.query_params[key] = value
    at.switch_page("pages/compare.py")
    return at


@pytest.mark.parametrize("side", ["a", "b"])
def test_head_to_head_links_cannot_name_a_folder_or_a_hub_model(side: str) -> None:
    shown = []
    for value in ("/etc", "/nonexistent/dir"):
        at = compare_app(dataset="sample", q="bats", **FAST, **{side: value}).run()
        no_exception(at)
        assert not at.error, [e.value for e in at.error]
        (warning,) = [w.value for w in at.warning if "Link setting ignored" in w.value]
        shown.append(warning.replace("\\", "").replace(value, "X"))
    assert shown[0] == shown[1]  # the answer never tells whether a folder exists
    at = compare_app(dataset="sample", q="bats", **FAST, **{side: "org/model"}).run()
    no_exception(at)
    assert any("does not fetch" in w.value for w in at.warning)


def test_markdown_in_head_to_head_warnings_and_walkthrough_errors_stays_text() -> None:
    hostile = "[click](http://evil.example) ![px](http://127.0.0.1:9/cmp.png)"
    at = compare_app(dataset="sample", q="bats", **{**FAST, "ret": hostile}).run()
    no_exception(at)
    body = " ".join(w.value for w in at.warning)
    assert "ignored" in body and "](" not in body and "http://" not in body
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.query_params["walkthrough"] = "![p](http://127.0.0.1:9/x.png)"
    at.run()
    no_exception(at)
    body = " ".join(e.value for e in at.error)
    assert "not a walkthrough id" in body and "](" not in body and "http://" not in body


def test_a_walkthrough_title_is_never_a_link() -> None:
    at = open_walkthrough(
        stored([{"params": {**FAST, "q": "heist"}}], title="[t](http://evil.example)")
    )
    no_exception(at)
    (title,) = [t.value for t in at.title]
    assert "](" not in title and "http://" not in title


def test_a_shared_head_to_head_link_opens_its_upload_and_says_what_it_dropped() -> None:
    records = [{"id": str(i), "title": f"heist film {i}", "text": "a bank job"} for i in range(8)]
    upload = UploadStore().put(json.dumps(records).encode(), "heists.json")
    at = compare_app(dataset=upload, q="heist", **FAST, a="/etc", b="none").run()
    no_exception(at)
    assert at.selectbox(key="h2h_dataset").value == upload
    warnings = [w.value.replace("\\", "") for w in at.warning]
    assert any("A: " in w and "file path" in w and "first stage only" in w for w in warnings)
    missing = "upload-" + "0" * 16
    at = compare_app(dataset=missing, q="heist", **FAST, b="none").run()
    no_exception(at)
    assert at.error or at.warning  # said, never shown silently as movies


def test_a_walkthrough_says_which_steps_were_made_on_other_data() -> None:
    here = {**FAST, "q": "heist", "dataset": "sample"}
    at = open_walkthrough(stored([{"params": here}, {"params": {**here, "fp": "0" * 12}}]))
    no_exception(at)
    lines = [w.value.replace("\\", "") for w in at.warning]
    assert any("Step 2 of this walkthrough was made on other data" in w for w in lines), lines
