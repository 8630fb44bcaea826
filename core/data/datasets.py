"""Built-in datasets: the Together cookbook movies, our own sample, and JSON files.

The movies file is resolved in this order:

1. an explicit path (argument, or the ``RERANK_MOVIES_PATH`` environment variable);
2. the local cache, ``<cache dir>/datasets/movies.json``, if its sha256 matches;
3. a download from the public URL (``RERANK_MOVIES_URL`` overrides it), checked against
   the known sha256 and stored in the cache.

When none works, :class:`DatasetUnavailableError` says what to do.
"""

from __future__ import annotations

import hashlib
import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from core.data.collection import Collection, is_collection_id, open_collection
from core.data.documents import Dataset, make_dataset
from core.data.encoding import not_utf8_message
from core.models.errors import DatasetError, DatasetUnavailableError
from core.models.paths import PROJECT_ROOT, atomic_write, cache_dir

MOVIES_URL = (
    "https://raw.githubusercontent.com/togethercomputer/together-cookbook/"
    "refs/heads/main/datasets/movies.json"
)
MOVIES_SHA256 = "429fb1503df956d0ea02acb125d8891bcf4fa6773445b2b0b0e52c13dfa0c89c"
MOVIES_EMBED_FIELDS = ("title", "overview", "tagline", "genres", "director")
MOVIES_RERANK_FIELDS = ("title", "overview")
SAMPLE_PATH = PROJECT_ROOT / "data" / "sample.json"
BUILTIN = ("movies", "sample")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def movies_cache_path() -> Path:
    """Where a downloaded movies.json is kept."""
    return cache_dir() / "datasets" / "movies.json"


def resolve_movies_path(
    path: str | os.PathLike[str] | None = None, *, timeout: float = 15.0
) -> Path:
    """Find or fetch movies.json as described in the module docstring."""
    explicit = path or os.environ.get("RERANK_MOVIES_PATH")
    if explicit:
        candidate = Path(explicit).expanduser()
        if not candidate.is_file():
            raise DatasetUnavailableError(f"movies dataset not found at {candidate}")
        return candidate
    cached = movies_cache_path()
    if cached.is_file() and _sha256(cached.read_bytes()) == MOVIES_SHA256:
        return cached
    url = os.environ.get("RERANK_MOVIES_URL", MOVIES_URL)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            data = response.read()
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DatasetUnavailableError(
            f"the movies dataset could not be downloaded from {url} ({reason}); "
            f"set RERANK_MOVIES_PATH to a local copy of movies.json, or put it at {cached}"
        ) from exc
    if _sha256(data) != MOVIES_SHA256:
        raise DatasetUnavailableError(
            f"the movies dataset downloaded from {url} has an unexpected sha256 "
            f"({_sha256(data)[:12]}…, expected {MOVIES_SHA256[:12]}…); it was not used"
        )
    atomic_write(cached, data)
    return cached


def parse_json_records(data: bytes, source: str) -> list[dict[str, Any]]:
    """Records from JSON bytes: an array of objects, or an object holding one array."""
    try:
        payload = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{not_utf8_message(source, data)}.") from exc
    except RecursionError:
        raise DatasetError(f"{source} nests arrays or objects too deeply to read") from None
    except json.JSONDecodeError as exc:
        raise DatasetError(
            f"{source} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from exc
    if isinstance(payload, dict):
        arrays = [v for v in payload.values() if isinstance(v, list)]
        if len(arrays) != 1:
            raise DatasetError(
                f"{source} holds a JSON object; expected an array of records "
                "or an object with exactly one array of records"
            )
        payload = arrays[0]
    if not isinstance(payload, list):
        raise DatasetError(
            f"{source} holds a JSON {type(payload).__name__}; expected an array of records"
        )
    return payload


def load_json_dataset(path: str | os.PathLike[str], **options: Any) -> Dataset:
    """Load a dataset from a JSON file (see :func:`parse_json_records`)."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise DatasetUnavailableError(f"dataset file not found: {file}")
    records = parse_json_records(file.read_bytes(), file.name)
    return make_dataset(file.stem, records, source=str(file), **options)


def load_movies(path: str | os.PathLike[str] | None = None) -> Dataset:
    """The 1000-movie dataset of the Together cookbook, with its default fields."""
    file = resolve_movies_path(path)
    return _movies_from_bytes(file.read_bytes(), file)


def _movies_from_bytes(data: bytes, file: Path) -> Dataset:
    records = parse_json_records(data, file.name)
    return make_dataset(
        "movies",
        records,
        title_field="title",
        embed_fields=MOVIES_EMBED_FIELDS,
        rerank_fields=MOVIES_RERANK_FIELDS,
        source=str(file),
    )


def load_sample() -> Dataset:
    """Our own 40-record sample (original text), always available offline."""
    records = parse_json_records(SAMPLE_PATH.read_bytes(), SAMPLE_PATH.name)
    return make_dataset(
        "sample",
        records,
        id_field="id",
        title_field="title",
        embed_fields=("title", "summary", "category", "tags"),
        rerank_fields=("title", "summary"),
        source=str(SAMPLE_PATH),
    )


def load_dataset(name_or_path: str) -> Dataset | Collection:
    """``"movies"``, ``"sample"``, ``"collection:NAME"`` (a built collection, opened
    lazily) or a path to a JSON file."""
    if is_collection_id(name_or_path):
        return open_collection(name_or_path)
    if name_or_path == "movies":
        return load_movies()
    if name_or_path == "sample":
        return load_sample()
    file = Path(name_or_path).expanduser()
    if file.is_file():
        data = file.read_bytes()
        if _sha256(data) == MOVIES_SHA256:  # a copy of movies.json keeps its defaults
            return _movies_from_bytes(data, file)
    return load_json_dataset(file)


def scifact_path() -> Path | None:
    """The BEIR SciFact folder when present: ``RERANK_SCIFACT_PATH``, else ``../shared``."""
    configured = os.environ.get("RERANK_SCIFACT_PATH")
    candidates = [Path(configured).expanduser()] if configured else []
    candidates.append(SAMPLE_PATH.parents[2] / "shared" / "datasets" / "scifact")
    for folder in candidates:
        if (folder / "corpus.jsonl").is_file() and (folder / "queries.jsonl").is_file():
            return folder
    return None
