"""Your own data, step 3: the exact uploaded bytes kept on the server, addressed by
content, so a link naming ``upload-<16 hex>`` works for anyone using the same deployment.

The store's size cap is ``RERANK_UPLOAD_STORE_MB`` (default 500; MB means 1024 * 1024
bytes); the least recently used uploads are evicted first. The store in the cache folder
(the default) counts what the cache holds for each upload (its embeddings, partial
chunks: :mod:`core.data.upload_artefacts`) against the cap too, and evicts it with its
upload.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from core.data import upload_artefacts
from core.data.uploads import CONTROL_CHARS, MB, UploadError, display_name, env_number
from core.models.errors import DatasetUnavailableError
from core.models.paths import atomic_write, cache_dir

DEFAULT_STORE_MB: Final = 500
DATASET_ID_PATTERN: Final = re.compile(r"^upload-[0-9a-f]{16}\Z")
_SHA_FILE = re.compile(r"^([0-9a-f]{64})\.bin\Z")


class UploadNotFoundError(UploadError, DatasetUnavailableError):
    """A valid upload id that this server does not hold (never stored, or evicted)."""


def max_store_bytes() -> int:
    """The upload store's size cap: ``RERANK_UPLOAD_STORE_MB`` (default 500) megabytes."""
    return int(env_number("RERANK_UPLOAD_STORE_MB", DEFAULT_STORE_MB) * MB)


def is_upload_id(dataset_id: object) -> bool:
    """True when ``dataset_id`` has the exact form ``upload-<16 lowercase hex>``."""
    return isinstance(dataset_id, str) and DATASET_ID_PATTERN.match(dataset_id) is not None


def upload_id(data: bytes) -> str:
    """The dataset id of these exact bytes: ``upload-`` + the first 16 hex of sha256."""
    return f"upload-{hashlib.sha256(data).hexdigest()[:16]}"


_STORE_LOCK = threading.RLock()
_STALE_TEMP_SECONDS = 3600.0


class UploadStore:
    """Uploaded files kept on the server, addressed by content.

    Each upload is ``<root>/<sha256>.bin`` (the exact bytes) plus ``<sha256>.json``
    (original file name, size, time stored). Both are written to a temporary file and
    renamed into place, so readers in any process see whole files or none. The ``.bin``
    file's modification time is its last use (store or read); when the ``.bin`` files
    exceed ``max_total_bytes``, the least recently used are deleted first, never the one
    just stored. Put an upload only after :func:`core.data.uploads.parse_upload` accepted it.
    """

    def __init__(
        self,
        root: Path | None = None,
        max_total_bytes: int | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.root = Path(root) if root is not None else cache_dir() / "uploads"
        # the cache folder's own store: the uploads' cache files count and go with them
        self.owns_cache = root is None or self.root.resolve() == (cache_dir() / "uploads").resolve()
        self.max_total_bytes = max_store_bytes() if max_total_bytes is None else max_total_bytes
        self._clock = clock

    def __repr__(self) -> str:
        return f"UploadStore(root={str(self.root)!r}, max_total_bytes={self.max_total_bytes})"

    def put(self, data: bytes, filename: str) -> str:
        """Store ``data`` (idempotent) and return its dataset id ``upload-<16 hex>``."""
        digest = hashlib.sha256(data).hexdigest()
        blob, meta = self._paths(digest)
        now = self._clock()
        with _STORE_LOCK:
            self.root.mkdir(parents=True, exist_ok=True)
            stored_at = now
            old = self._read_meta(meta)
            if old is not None and isinstance(old.get("stored_at"), int | float):
                stored_at = old["stored_at"]
            info = {
                "filename": display_name(filename),
                "size": len(data),
                "sha256": digest,
                "stored_at": stored_at,
            }
            if old != info:
                atomic_write(meta, json.dumps(info, ensure_ascii=False).encode())
            try:
                present = blob.stat().st_size == len(data)
            except FileNotFoundError:
                present = False
            if not present:
                atomic_write(blob, data)
            self._touch(blob, now)
            self._evict(keep=digest)
        return f"upload-{digest[:16]}"

    def get(self, dataset_id: str) -> tuple[bytes, str]:
        """The exact bytes and original file name of an upload.

        Raises :class:`UploadError` for anything but a well-formed id (checked before
        any file is touched) and :class:`UploadNotFoundError` when it is not here.
        """
        prefix = self._prefix(dataset_id)
        with _STORE_LOCK:
            for blob in self._blobs(prefix):
                digest = blob.name[:64]
                try:
                    data = blob.read_bytes()
                except FileNotFoundError:
                    continue
                if hashlib.sha256(data).hexdigest() != digest:
                    self._remove(digest)  # damaged on disk: never serve it
                    continue
                meta = self._read_meta(self._paths(digest)[1]) or {}
                filename = meta.get("filename")
                if not isinstance(filename, str) or not filename:
                    filename = f"{dataset_id}.json"
                self._touch(blob, self._clock())
                return data, filename
        raise UploadNotFoundError(
            f"upload '{dataset_id}' is no longer on this server (uploads are kept only "
            "while space allows); upload the file again"
        )

    def exists(self, dataset_id: str) -> bool:
        """True when this server holds the upload; False for any other name."""
        if not is_upload_id(dataset_id):
            return False
        return any(True for _ in self._blobs(dataset_id[len("upload-") :]))

    def total_bytes(self) -> int:
        """Bytes of all stored uploads (the ``.bin`` files)."""
        return sum(size for _, size, _ in self._entries())

    def cache_bytes(self) -> int:
        """What the cap bounds: the uploads and, for the cache folder's store, the cache
        files made from them (:mod:`core.data.upload_artefacts`)."""
        total = self.total_bytes()
        if self.owns_cache:
            total += sum(upload_artefacts.size(u) for u in upload_artefacts.uploads())
        return total

    def evict(self, keep: str | None = None) -> None:
        """Evict least recently used uploads (with their cache files) until the cap holds,
        never ``keep`` (an upload id); called after a build wrote an upload's cache files."""
        digest = self._prefix(keep) if keep is not None else ""
        with _STORE_LOCK:
            if self.root.is_dir() or self.owns_cache:
                self._evict(keep=digest)

    # -- internals --

    @staticmethod
    def _prefix(dataset_id: object) -> str:
        if not is_upload_id(dataset_id):
            shown = CONTROL_CHARS.sub(" ", str(dataset_id))[:80]
            raise UploadError(
                f"{shown!r} is not a valid dataset id; upload ids look like upload-<16 hex digits>"
            )
        assert isinstance(dataset_id, str)
        return dataset_id[len("upload-") :]

    def _paths(self, digest: str) -> tuple[Path, Path]:
        return self.root / f"{digest}.bin", self.root / f"{digest}.json"

    def _blobs(self, prefix: str) -> list[Path]:
        if not self.root.is_dir():
            return []
        return sorted(p for p in self.root.glob(f"{prefix}*.bin") if _SHA_FILE.match(p.name))

    @staticmethod
    def _read_meta(path: Path) -> dict[str, Any] | None:
        try:
            value = json.loads(path.read_text("utf-8"))
        except (OSError, ValueError):
            return None
        return value if isinstance(value, dict) else None

    @staticmethod
    def _touch(path: Path, when: float) -> None:
        try:
            ns = int(when * 1e9)
            os.utime(path, ns=(ns, ns))
        except FileNotFoundError:
            pass

    def _remove(self, digest: str) -> None:
        for path in self._paths(digest):
            path.unlink(missing_ok=True)
        if self.owns_cache:
            upload_artefacts.remove(f"upload-{digest[:16]}")

    def _entries(self) -> list[tuple[str, int, int]]:
        """``(sha256, size, last-used ns)`` of every stored upload."""
        if not self.root.is_dir():
            return []
        out = []
        for path in self.root.iterdir():
            match = _SHA_FILE.match(path.name)
            if not match:
                continue
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            out.append((match.group(1), st.st_size, st.st_mtime_ns))
        return out

    def _evict(self, keep: str) -> None:
        """``keep``: a digest, or its first 16 hex (an upload id's)."""
        entries = sorted(self._entries(), key=lambda e: (e[2], e[0]))
        sizes = {digest: size for digest, size, _ in entries}
        if self.owns_cache:
            held = {digest[:16] for digest in sizes}
            for upload in upload_artefacts.uploads():  # files of uploads no longer here
                short = upload[len("upload-") :]
                if short not in held and not (keep and short == keep[:16]):
                    upload_artefacts.remove(upload)
            for digest in sizes:
                sizes[digest] += upload_artefacts.size(f"upload-{digest[:16]}")
        total = sum(sizes.values())
        for digest, _, _ in entries:
            if total <= self.max_total_bytes:
                break
            if keep and digest.startswith(keep):
                continue
            self._remove(digest)
            total -= sizes[digest]
        if self.root.is_dir():
            self._remove_stale_temps()

    def _remove_stale_temps(self) -> None:
        cutoff = time.time() - _STALE_TEMP_SECONDS
        for path in self.root.glob(".*"):
            try:
                if path.is_file() and path.stat().st_mtime < cutoff:
                    path.unlink()
            except OSError:
                pass
