"""The room's rules in the app (AppTest) and in core: only the presenter moves the room
and reveals, viewers vote into the store with the room's sides, notes stay hidden while
blind, Save and share gives absolute links; the blind test's CSV ends lines with CRLF
and each vote keeps its own step's A and B; verdict lines and wording.

Runs on the 40-record sample with BM25 and no reranker (no model to load); the state
store is a SQLite file of the test's own (RERANK_DATABASE_URL).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.data.state_store import StateStore, open_store
from core.present.room import public_base, share_links
from core.present.views import SearchSettings
from core.present.walkthrough import Walkthrough, WalkthroughStore, step_from_view
from core.quality.blind import make_vote, overall_tally, pairwise_csv, step_tallies, votes_csv

ROOT = Path(__file__).resolve().parents[1]
QUERIES = ("how do I get bats out of my roof", "my python gets scared when I pick it up")
NOTE = "Now B blends the reranker with the first stage"


@pytest.fixture
def room(tmp_path, monkeypatch):
    """A two-step walkthrough on the sample and a room on it, in a store of its own."""
    url = f"sqlite:///{tmp_path / 'state.sqlite3'}"
    monkeypatch.setenv("RERANK_DATABASE_URL", url)
    store = open_store()
    wt = Walkthrough("Room")
    for q in QUERIES:
        view = SearchSettings(
            dataset="sample", query=q, retriever="bm25", candidates=10, results=5, reranker="none"
        )
        wt = wt.add(step_from_view(view, "none", note=NOTE))
    wid = WalkthroughStore(state=store).put(wt)
    room_id, token = store.create_room(wid)
    return store, wid, room_id, token


def seat(wid: str, room_id: str, token: str | None = None, voter: str = "") -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.query_params.update({"walkthrough": wid, "room": room_id})
    if token:
        at.query_params["presenter"] = token
    if voter:
        at.query_params["voter"] = voter
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def labels(at: AppTest) -> list[str]:
    return [b.label for b in at.button]


def click(at: AppTest, label: str) -> None:
    (found,) = [b for b in at.button if b.label == label]
    found.click().run()
    assert not at.exception, [e.message for e in at.exception]


def test_only_the_presenter_moves_the_room_and_reveals(room) -> None:
    store, wid, room_id, token = room
    viewer = seat(wid, room_id, voter="viewer1")
    assert "Reveal" not in labels(viewer) and "Start the blind test" not in labels(viewer)
    with pytest.raises(Exception, match="only the presenter"):
        store.update_room(room_id, None, revealed=True)
    wrong = seat(wid, room_id, token="not-the-token")
    assert any("you are a viewer" in w.value for w in wrong.warning)
    assert "Start the blind test" not in labels(wrong)

    presenter = seat(wid, room_id, token)
    click(presenter, "Next ▶")
    assert store.get_room(room_id).step == 1
    click(presenter, "Start the blind test")
    assert store.get_room(room_id).blind
    assert not any(NOTE in i.value for i in presenter.info)  # the note would give it away

    # a viewer (new page) follows the room: step 2, blind, no note, vote buttons
    viewer = seat(wid, room_id, voter="viewer1")
    assert any(QUERIES[1] in m.value for m in viewer.markdown)
    assert any(m.value == "### Left list" for m in viewer.markdown)
    assert not any(NOTE in i.value for i in viewer.info)
    click(viewer, "Left is better")
    click(viewer, "Right is better")  # changed, still one vote
    (vote,) = store.votes(room_id)
    assert (vote.step, vote.voter, vote.choice) == (1, "viewer1", "right")
    assert vote.a_left == store.a_is_left(wid, 1)
    seat(wid, room_id, voter="viewer2")  # another viewer...
    other = seat(wid, room_id, voter="viewer2")
    click(other, "Tie")
    assert store.counts(room_id) == {1: 2}

    presenter = seat(wid, room_id, token)
    assert {m.label: m.value for m in presenter.metric}["Votes on this step"] == "2"
    click(presenter, "Reveal")
    room_now = store.get_room(room_id)
    assert room_now.revealed and not room_now.voting_open
    text = [re.sub(r"\\(.)", r"\1", b.value) for b in [*presenter.success, *presenter.info]]
    assert any(t.startswith("Across steps:") and "sign test p = " in t for t in text), text
    assert any(NOTE in t for t in text)  # revealed: the note is back
    viewer = seat(wid, room_id, voter="viewer1")
    assert any(m.value.startswith("### Left list — ") for m in viewer.markdown)
    assert "Left is better" not in labels(viewer)


def test_save_and_share_gives_absolute_viewer_and_presenter_links(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("RERANK_DATABASE_URL", f"sqlite:///{tmp_path / 'state.sqlite3'}")
    monkeypatch.setenv("RERANK_PUBLIC_URL", "https://rerank.example.org/app/")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    for key, value in {
        "dataset": "sample",
        "q": QUERIES[0],
        "ret": "bm25",
        "k": "10",
        "n": "5",
        "reranker": "none",
        "b": "none",
    }.items():
        at.query_params[key] = value
    at.switch_page("pages/compare.py").run()
    at.text_area(key="wt_note").input("first note")
    click(at, "Add this view as a step")
    assert at.text_area(key="wt_note").value == ""  # cleared after Add
    click(at, "Save and share")
    codes = [c.value for c in at.sidebar.code]  # the links (the page has code blocks too)
    wid = at.session_state["wt_saved"]
    viewer, presenter = codes[:2]
    assert re.fullmatch(
        rf"https://rerank\.example\.org/app/\?walkthrough={wid}&room=[0-9a-f]{{12}}", viewer
    ), viewer
    token = re.search(r"presenter=([^&]+)", presenter).group(1)
    room_id = re.search(r"room=([0-9a-f]{12})", viewer).group(1)
    store = StateStore()
    assert store.is_presenter(room_id, token)
    with store.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT token_sha256 FROM rooms").all()
    assert token not in str(rows)  # stored hashed


def test_public_base_and_links(monkeypatch) -> None:
    monkeypatch.delenv("RERANK_PUBLIC_URL", raising=False)
    assert public_base("10.0.0.5:8501") == "http://10.0.0.5:8501"
    assert public_base("evil.example/<script>") == "http://localhost:8501"
    assert public_base("h.example", secure=True) == "https://h.example"
    viewer, presenter = share_links("https://h.example/x", "a" * 16, "b" * 12, "tok")
    assert viewer == f"https://h.example/x/?walkthrough={'a' * 16}&room={'b' * 12}"
    assert presenter == viewer + "&presenter=tok"


def test_blind_exports_end_lines_with_crlf_and_votes_keep_their_steps_systems() -> None:
    votes = [
        make_vote("q1", "left", seed="s", a="CE", b="first stage only", step=0, a_left=True),
        make_vote("q3", "right", seed="s", a="CE", b="fused 0.5", step=2, a_left=True),
        make_vote("q3", "right", seed="s", a="CE", b="fused 0.5", step=2, a_left=False),
    ]
    for text in (votes_csv(votes), pairwise_csv(votes)):
        assert text.count("\r\n") == 4 and "\n" not in text.replace("\r\n", "")
    per_step = dict(step_tallies(votes))
    assert (per_step[0].b, per_step[2].b) == ("first stage only", "fused 0.5")
    assert (per_step[2].a_votes, per_step[2].b_votes) == (1, 1)
    whole = overall_tally(votes)
    assert whole.b == "each step's B" and whole.total == 3
    assert "step,query" in votes_csv(votes).splitlines()[0]
