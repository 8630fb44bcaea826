"""Tests of core.data.datasets: where movies.json comes from, built-in datasets, JSON parsing.

Downloads go over real HTTP to a loopback server (stdlib ``http.server`` in a thread);
nothing leaves the machine.
"""

from __future__ import annotations

import http.server
import json
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.data import datasets
from core.data.datasets import (
    MOVIES_EMBED_FIELDS,
    MOVIES_RERANK_FIELDS,
    MOVIES_SHA256,
    load_dataset,
    load_json_dataset,
    load_movies,
    load_sample,
    movies_cache_path,
    parse_json_records,
    resolve_movies_path,
)
from core.models.errors import DatasetError, DatasetUnavailableError

# --- a loopback HTTP server ------------------------------------------------------------


class _Server:
    """Serves fixed bytes at any path and records the paths requested."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.requests: list[str] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(outer.body)))
                self.end_headers()
                self.wfile.write(outer.body)

            def log_message(self, *args) -> None:  # keep test output clean
                pass

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/datasets/movies.json"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self) -> _Server:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)


@pytest.fixture
def fresh_cache(monkeypatch, tmp_path) -> Path:
    """An empty cache dir, and no explicit movies path: resolution must use cache/URL."""
    monkeypatch.setenv("RERANK_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("RERANK_MOVIES_PATH", raising=False)
    return tmp_path


@pytest.fixture
def movies_server(movies_path, fresh_cache, monkeypatch) -> Iterator[_Server]:
    with _Server(movies_path.read_bytes()) as server:
        monkeypatch.setenv("RERANK_MOVIES_URL", server.url)
        yield server


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- resolution order -------------------------------------------------------------------


def test_download_lands_in_cache_then_cache_is_used(movies_server, fresh_cache) -> None:
    expected = fresh_cache / "datasets" / "movies.json"
    assert movies_cache_path() == expected
    assert not expected.exists()

    first = resolve_movies_path()
    assert first == expected
    assert movies_server.requests == ["/datasets/movies.json"]
    assert expected.read_bytes() == movies_server.body
    # no temporary files left next to it
    assert sorted(p.name for p in expected.parent.iterdir()) == ["movies.json"]

    second = resolve_movies_path()
    assert second == expected
    assert movies_server.requests == ["/datasets/movies.json"]  # no second request


def test_load_movies_downloads_over_http(movies_server) -> None:
    ds = load_movies()
    assert len(ds) == 1000
    assert ds.source == str(movies_cache_path())
    assert len(movies_server.requests) == 1


def test_corrupt_cache_is_replaced_by_a_download(movies_server) -> None:
    cached = movies_cache_path()
    cached.parent.mkdir(parents=True)
    cached.write_text("[]")  # wrong sha256: not trusted

    assert resolve_movies_path() == cached
    assert len(movies_server.requests) == 1
    assert cached.read_bytes() == movies_server.body


def test_valid_cache_is_used_without_any_request(movies_path, fresh_cache, monkeypatch) -> None:
    cached = movies_cache_path()
    cached.parent.mkdir(parents=True)
    shutil.copyfile(movies_path, cached)
    monkeypatch.setenv("RERANK_MOVIES_URL", f"http://127.0.0.1:{_closed_port()}/movies.json")

    assert resolve_movies_path() == cached


def test_env_path_wins_over_cache(movies_path, fresh_cache, monkeypatch, tmp_path) -> None:
    cached = movies_cache_path()
    cached.parent.mkdir(parents=True)
    shutil.copyfile(movies_path, cached)
    elsewhere = tmp_path / "mine.json"
    elsewhere.write_text("[]")
    monkeypatch.setenv("RERANK_MOVIES_PATH", str(elsewhere))

    assert resolve_movies_path() == elsewhere


def test_explicit_path_wins_over_env(fresh_cache, monkeypatch, tmp_path) -> None:
    explicit = tmp_path / "explicit.json"
    explicit.write_text("[]")
    env = tmp_path / "env.json"
    env.write_text("[]")
    monkeypatch.setenv("RERANK_MOVIES_PATH", str(env))

    assert resolve_movies_path(explicit) == explicit
    assert resolve_movies_path(str(explicit)) == explicit


def test_explicit_path_must_exist(fresh_cache, tmp_path) -> None:
    missing = tmp_path / "nope.json"
    with pytest.raises(DatasetUnavailableError, match=f"movies dataset not found at {missing}"):
        resolve_movies_path(missing)


def test_env_path_must_exist(fresh_cache, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("RERANK_MOVIES_PATH", str(tmp_path / "gone.json"))
    with pytest.raises(DatasetUnavailableError, match="movies dataset not found at"):
        resolve_movies_path()


def test_download_with_wrong_sha256_is_rejected_and_not_cached(fresh_cache, monkeypatch) -> None:
    with _Server(b'[{"title": "Not the movies"}]') as server:
        monkeypatch.setenv("RERANK_MOVIES_URL", server.url)
        with pytest.raises(DatasetUnavailableError) as info:
            resolve_movies_path()
    message = str(info.value)
    assert "sha256" in message
    assert server.url in message
    assert MOVIES_SHA256[:12] in message
    assert len(server.requests) == 1
    assert not movies_cache_path().exists()
    assert not (fresh_cache / "datasets").exists() or not any((fresh_cache / "datasets").iterdir())


def test_unreachable_url_says_to_set_the_env_var(fresh_cache, monkeypatch) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/movies.json"
    monkeypatch.setenv("RERANK_MOVIES_URL", url)
    started = time.monotonic()
    with pytest.raises(DatasetUnavailableError) as info:
        resolve_movies_path()
    assert time.monotonic() - started < 5  # connection refused: no long wait
    message = str(info.value)
    assert "set RERANK_MOVIES_PATH" in message
    assert url in message
    assert str(movies_cache_path()) in message
    assert "\n" not in message
    assert not movies_cache_path().exists()


# --- the movies dataset -------------------------------------------------------------------


def test_movies_shape(movies) -> None:
    assert len(movies) == 1000
    assert movies.name == "movies"
    assert movies.ids[:3] == ("0", "1", "2") and movies.ids[-1] == "999"
    assert movies.title_field == "title"
    assert set(movies.fields) >= {"title", "overview", "director", "genres", "tagline"}
    assert sum(r.get("tagline") is None for r in movies.records) == 27
    assert movies.default_embed_fields == MOVIES_EMBED_FIELDS
    assert movies.default_rerank_fields == MOVIES_RERANK_FIELDS
    assert MOVIES_EMBED_FIELDS == ("title", "overview", "tagline", "genres", "director")
    assert MOVIES_RERANK_FIELDS == ("title", "overview")


def test_movies_texts_never_say_none(movies) -> None:
    null_tagline = next(
        i for i, r in zip(movies.ids, movies.records, strict=True) if r.get("tagline") is None
    )
    position = movies.position(null_tagline)
    embed = movies.texts(movies.default_embed_fields)[position]
    rerank = movies.texts(movies.default_embed_fields, "rerank")[position]
    assert "None" not in embed
    assert "tagline:" not in rerank
    assert rerank.startswith(f"title: {movies.title(null_tagline)}\n")


def test_load_dataset_on_a_copy_of_movies_keeps_movie_defaults(
    movies, movies_path, tmp_path
) -> None:
    copy = tmp_path / "my_films.json"
    shutil.copyfile(movies_path, copy)
    ds = load_dataset(str(copy))
    assert ds.name == "movies"
    assert ds.source == str(copy)
    assert ds.default_embed_fields == MOVIES_EMBED_FIELDS
    assert ds.default_rerank_fields == MOVIES_RERANK_FIELDS
    assert ds.content_hash == movies.content_hash


def test_load_dataset_on_other_json_guesses_defaults(tmp_path) -> None:
    path = tmp_path / "notes.json"
    path.write_text(json.dumps([{"name": "a", "body": "text", "n": 1}]))
    ds = load_dataset(str(path))
    assert ds.name == "notes"
    assert ds.title_field == "name"
    assert ds.default_embed_fields == ("name", "body")


def test_load_dataset_movies_by_name_uses_env_path(movies_path) -> None:
    # conftest points RERANK_MOVIES_PATH at the shared copy
    assert load_dataset("movies").source == str(movies_path)


# --- the sample dataset -----------------------------------------------------------------


def test_sample_loads_offline(monkeypatch) -> None:
    def no_network(*args, **kwargs):
        raise AssertionError("the sample dataset must not touch the network")

    monkeypatch.setattr(datasets.urllib.request, "urlopen", no_network)
    ds = load_sample()
    assert len(ds) == 40
    assert ds.ids == tuple(f"s{i:02d}" for i in range(1, 41))
    assert ds.id_field == "id"
    assert ds.title("s01") == "Seasoning a Cast Iron Skillet"
    assert ds.default_embed_fields == ("title", "summary", "category", "tags")
    assert ds.default_rerank_fields == ("title", "summary")
    assert load_dataset("sample").content_hash == ds.content_hash


# --- parse_json_records / load_json_dataset --------------------------------------------------


def test_parse_array_of_records() -> None:
    assert parse_json_records(b'[{"a": 1}, {"a": 2}]', "x.json") == [{"a": 1}, {"a": 2}]


def test_parse_accepts_a_utf8_bom() -> None:
    assert parse_json_records('\ufeff[{"a": "é"}]'.encode(), "x.json") == [{"a": "é"}]


def test_invalid_json_names_line_and_column() -> None:
    data = b'[\n  {"a": 1},\n  {"a": }\n]'
    with pytest.raises(DatasetError) as info:
        parse_json_records(data, "broken.json")
    assert str(info.value) == "broken.json is not valid JSON: Expecting value at line 3, column 9"


def test_top_level_number_is_rejected() -> None:
    with pytest.raises(DatasetError, match=r"^n\.json holds a JSON int; expected an array"):
        parse_json_records(b"42", "n.json")


def test_object_with_one_array_is_accepted() -> None:
    data = b'{"version": 2, "name": "x", "items": [{"a": 1}, {"a": 2}]}'
    assert parse_json_records(data, "o.json") == [{"a": 1}, {"a": 2}]


@pytest.mark.parametrize("data", [b'{"a": [1], "b": [2]}', b'{"a": 1}'])
def test_object_without_exactly_one_array_is_rejected(data) -> None:
    with pytest.raises(DatasetError, match="exactly one array of records"):
        parse_json_records(data, "o.json")


def test_non_utf8_bytes_are_rejected() -> None:
    with pytest.raises(
        DatasetError,
        match=r"^latin\.json is not UTF-8 text: line 1, column 12 \(byte offset 11\) holds 0xe9",
    ):
        parse_json_records('[{"a": "caf\xe9"}]'.encode("latin-1"), "latin.json")


def test_load_json_dataset_missing_file(tmp_path) -> None:
    with pytest.raises(DatasetUnavailableError, match="dataset file not found"):
        load_json_dataset(tmp_path / "none.json")


def test_load_json_dataset_with_id_field(tmp_path) -> None:
    path = tmp_path / "docs.json"
    path.write_text(json.dumps({"docs": [{"key": "k1", "text": "a"}, {"key": "k2", "text": "b"}]}))
    ds = load_json_dataset(path, id_field="key")
    assert ds.ids == ("k1", "k2")
    assert ds.name == "docs"
    assert ds.source == str(path)
