"""The state store (core.data.state_store) on SQLite, and the same rules on a real
PostgreSQL server started from Debian's binaries on loopback."""

from __future__ import annotations

import hashlib
import sqlite3
import threading

import pytest
import sqlalchemy as sa

from core.data.state_store import (
    SCHEMA_VERSION,
    StateStore,
    StateStoreError,
    database_url,
    schema_version,
    token_hash,
)
from tests.pg_server import pg_bin, postgres_server

BODY = '{"format": "rerank-walkthrough/1", "steps": [], "title": "t"}'
DIGEST = hashlib.sha256(BODY.encode()).hexdigest()
WID = DIGEST[:16]


def check_rules(store: StateStore) -> None:
    """Every rule the app relies on, against one store."""
    assert store.version() == SCHEMA_VERSION
    store.put_walkthrough(WID, DIGEST, BODY)
    store.put_walkthrough(WID, DIGEST, BODY)  # idempotent
    assert store.get_walkthrough(WID) == BODY
    assert store.get_walkthrough("0" * 16) is None
    with pytest.raises(StateStoreError):
        store.create_room("0" * 16)

    room_id, token = store.create_room(WID)
    room = store.get_room(room_id)
    assert (room.step, room.blind, room.voting_open, room.revealed) == (0, False, True, False)
    assert store.is_presenter(room_id, token)
    assert not store.is_presenter(room_id, "guess") and not store.is_presenter(room_id, None)
    for bad in ("nope", "0" * 12):
        with pytest.raises(StateStoreError):
            store.get_room(bad)
    # only the presenter moves the room
    with pytest.raises(StateStoreError, match="only the presenter"):
        store.update_room(room_id, "guess", step=2)
    with pytest.raises(StateStoreError, match="only the presenter"):
        store.update_room(room_id, None, revealed=True)
    moved = store.update_room(room_id, token, step=2, blind=True)
    assert (moved.step, moved.blind, moved.version) == (2, True, room.version + 1)

    # one side assignment per walkthrough and step, the same for every caller
    firsts = {store.a_is_left(WID, s) for s in range(40)}
    assert firsts == {True, False}  # drawn, not fixed
    assert [store.a_is_left(WID, s) for s in range(40)] == [
        store.a_is_left(WID, s) for s in range(40)
    ]

    # votes: one per voter per step, changeable, each with its own step's systems
    v = store.cast_vote(room_id, 0, "voter-1", "left", query="q0", a_label="CE", b_label="first")
    assert v.a_left == store.a_is_left(WID, 0)
    store.cast_vote(room_id, 0, "voter-1", "right", query="q0", a_label="CE", b_label="first")
    store.cast_vote(room_id, 0, "voter-2", "tie", query="q0", a_label="CE", b_label="first")
    store.cast_vote(
        room_id, 1, "voter-1", "left", query="q1", a_label="CE", b_label="fused 0.5", name=" Ann "
    )
    assert store.counts(room_id) == {0: 2, 1: 1}
    mine = store.vote_of(room_id, 0, "voter-1")
    assert mine is not None and mine.choice == "right"
    step1 = store.votes(room_id, 1)
    assert [(x.b_label, x.name) for x in step1] == [("fused 0.5", "Ann")]
    assert len(store.votes(room_id)) == 3
    with pytest.raises(StateStoreError):
        store.cast_vote(room_id, 0, "voter-3", "up", query="q", a_label="a", b_label="b")
    with pytest.raises(StateStoreError):
        store.cast_vote(room_id, 0, "", "left", query="q", a_label="a", b_label="b")
    # closed voting and the reveal refuse votes
    store.update_room(room_id, token, voting_open=False)
    with pytest.raises(StateStoreError, match="closed"):
        store.cast_vote(room_id, 0, "voter-3", "left", query="q", a_label="a", b_label="b")
    store.update_room(room_id, token, voting_open=True, revealed=True)
    with pytest.raises(StateStoreError, match="closed"):
        store.cast_vote(room_id, 0, "voter-3", "left", query="q", a_label="a", b_label="b")
    assert store.counts(room_id) == {0: 2, 1: 1}


def test_sqlite_store_rules_and_wal(tmp_path) -> None:
    path = tmp_path / "state.sqlite3"
    store = StateStore(f"sqlite:///{path}")
    check_rules(store)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        hashes = [r[0] for r in conn.execute("SELECT token_sha256 FROM rooms")]
    assert all(len(h) == 64 for h in hashes)  # only hashes are stored


def test_the_default_is_a_sqlite_file_in_the_cache_dir(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("RERANK_DATABASE_URL", raising=False)
    monkeypatch.setenv("RERANK_CACHE_DIR", str(tmp_path))
    assert database_url() == f"sqlite:///{tmp_path / 'state.sqlite3'}"
    monkeypatch.setenv("RERANK_DATABASE_URL", "postgresql://u@127.0.0.1:5/db")
    assert database_url() == "postgresql+psycopg://u@127.0.0.1:5/db"


def test_a_newer_schema_is_refused(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'state.sqlite3'}"
    store = StateStore(url)
    with store.engine.begin() as conn:
        conn.execute(sa.update(schema_version).values(version=SCHEMA_VERSION + 1))
    with pytest.raises(StateStoreError, match="schema version"):
        StateStore(url)


def test_votes_survive_a_reopen_and_concurrent_voters_are_all_counted(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'state.sqlite3'}"
    store = StateStore(url)
    store.put_walkthrough(WID, DIGEST, BODY)
    room_id, token = store.create_room(WID)

    def vote(n: int) -> None:
        for step in range(3):
            store.cast_vote(room_id, step, f"v{n}", "left", query="q", a_label="a", b_label="b")

    threads = [threading.Thread(target=vote, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    store.engine.dispose()
    again = StateStore(url)
    assert again.counts(room_id) == {0: 16, 1: 16, 2: 16}
    assert again.is_presenter(room_id, token)
    assert token_hash(token) != token


@pytest.mark.skipif(pg_bin() is None, reason="Debian's postgresql is not installed")
def test_postgresql_store_rules() -> None:
    with postgres_server() as url:
        store = StateStore(database_url_for(url))
        assert store.dialect == "postgresql"
        check_rules(store)
        # a second process-like store on the same database sees the same state
        store.engine.dispose()
        other = StateStore(database_url_for(url))
        with other.engine.connect() as conn:
            (room,) = conn.execute(sa.text("SELECT id FROM rooms")).all()
        assert other.counts(room[0]) == {0: 2, 1: 1}
        other.engine.dispose()


def database_url_for(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1)
