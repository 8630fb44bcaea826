"""Talking to Milvus: one shared client per target (:func:`connect`, :func:`release`),
calls with their errors translated into one clear :class:`~core.models.errors.MilvusError`
(unreachable, refused credentials, wrong schema), never carrying the token."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.models.errors import (
    MilvusAuthError,
    MilvusError,
    MilvusUnavailableError,
)
from core.search.milvus_reference import TOKEN_ENV, URI_ENV, MilvusTarget

DEFAULT_TIMEOUT = 30.0
CONNECT_TIMEOUT = 10.0


def _message(exc: BaseException) -> str:
    details = getattr(exc, "details", None)
    text = getattr(exc, "message", None) or (details() if callable(details) else None) or exc
    return " ".join(str(text).split())[:300]


_AUTH_WORDS = (
    "authenticat",
    "auth check",
    "credential",
    "password",
    "privilege",
    "permission denied",
)


def _grpc_codes(exc: BaseException) -> set[Any]:
    """gRPC status codes anywhere in the exception's cause chain (pymilvus wraps them)."""
    import grpc

    codes, seen, current = set(), set(), exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, grpc.RpcError) and callable(getattr(current, "code", None)):
            codes.add(current.code())
        current = current.__cause__ or current.__context__
    return codes


def translate_error(exc: BaseException, target: MilvusTarget, doing: str) -> MilvusError:
    """A :class:`MilvusError` with a one-line message for a pymilvus/gRPC failure."""
    import grpc

    if isinstance(exc, MilvusError):
        return exc
    code = getattr(exc, "code", None)
    codes = _grpc_codes(exc)
    text = _message(exc)
    lowered = text.lower()
    refused = {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED}
    if codes & refused or code == 1800 or any(w in lowered for w in _AUTH_WORDS):
        how = "no token was given" if not target.token else "the token was refused"
        return MilvusAuthError(
            f"Milvus at {target.label} refused the request ({how}); set {TOKEN_ENV} "
            "to user:password or an API key with access to it"
        )
    unreachable = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
    if codes & unreachable or code == 2 or "fail connecting" in lowered:
        return MilvusUnavailableError(
            f"cannot reach Milvus at {target.label} while {doing} ({text}); "
            f"check the URI ({URI_ENV}) and that the server is running"
        )
    return MilvusError(f"Milvus at {target.label} failed while {doing}: {text}")


_CLIENTS: dict[tuple[str, str], Any] = {}
_CLIENTS_LOCK = threading.Lock()
# Opened collections (core.search.milvus.cached_collection), dropped with their client.
OPEN_COLLECTIONS: dict[tuple[str, str, str], Any] = {}  # opened MilvusCollection objects
OPEN_COLLECTIONS_LOCK = threading.Lock()


def connect(target: MilvusTarget, *, create: bool = False, timeout: float = CONNECT_TIMEOUT):
    """A ``MilvusClient`` for ``target``, shared per process (gRPC clients are
    thread-safe). A Lite database must exist unless ``create``; its folder must.

    Raises :class:`MilvusUnavailableError` (cannot reach / open) or
    :class:`MilvusAuthError` (token refused): the client is tried with one cheap call.
    """
    from pymilvus import MilvusClient

    key = (target.uri, target.token)
    with _CLIENTS_LOCK:
        client = _CLIENTS.get(key)
    if client is not None:
        return client
    uri = target.uri
    if target.is_lite:
        path = Path(uri).expanduser()
        if path.suffix != ".db":
            raise MilvusUnavailableError(
                f"{uri!r} is neither a server URI (http://host:port) nor a Milvus Lite "
                "database (a path ending in .db)"
            )
        if not path.parent.is_dir():
            raise MilvusUnavailableError(f"cannot open Milvus Lite {path}: no folder {path.parent}")
        if not create and not _is_lite_database(path):
            raise MilvusUnavailableError(
                f"no Milvus Lite database at {path.resolve()}: export a collection into it "
                "first (python -m core milvus export --uri ...)"
            )
        uri = str(path.resolve())
    try:
        client = MilvusClient(uri, token=target.token, timeout=timeout)
        client.list_collections(timeout=timeout)
    except Exception as exc:
        if target.is_lite and "open local milvus failed" in _message(exc).lower():
            raise MilvusUnavailableError(
                f"cannot open Milvus Lite {target.label}: another process may hold it; "
                "serve it with `milvus-lite server --data-dir ...` and connect by URI"
            ) from exc
        raise translate_error(exc, target, "connecting") from exc
    with _CLIENTS_LOCK:
        client = _CLIENTS.setdefault(key, client)
    return client


def _is_lite_database(path: Path) -> bool:
    return path.is_dir() and (path / "collections").is_dir()


def release(target: MilvusTarget) -> None:
    """Forget the shared client of ``target``; for a Lite database, stop its in-process
    server so another process can open the file."""
    with _CLIENTS_LOCK:
        stale = [k for k in _CLIENTS if k[0] == target.uri]
        clients = [_CLIENTS.pop(k) for k in stale]
    for client in clients:
        with contextlib.suppress(Exception):  # a broken channel: nothing left to close
            client.close()
    if target.is_lite:
        from milvus_lite.server_manager import server_manager_instance

        server_manager_instance.release_server(str(Path(target.uri).expanduser().resolve()))
    with OPEN_COLLECTIONS_LOCK:
        for k in [k for k in OPEN_COLLECTIONS if k[0] == target.uri]:
            OPEN_COLLECTIONS.pop(k)


def call_milvus(target: MilvusTarget, doing: str, fn: Callable[..., Any], *args, **kwargs):
    """``fn(*args, **kwargs)``, its failure raised as one clear :class:`MilvusError`."""
    try:
        return fn(*args, **kwargs)
    except Exception as exc:
        raise translate_error(exc, target, doing) from exc
