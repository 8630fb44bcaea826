"""Where a Milvus collection is: the target (a Milvus Lite file or a server, with the
token only for the configured URI) and the ``milvus:`` reference that names a
collection and its field mapping (:func:`parse_reference`); which linked URIs a page
may open (:func:`link_refusal`)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

from core.models.errors import (
    SettingsError,
)
from core.models.paths import cache_dir

URI_ENV = "RERANK_MILVUS_URI"
TOKEN_ENV = "RERANK_MILVUS_TOKEN"
REFERENCE_PREFIX = "milvus:"
SERVER_SCHEMES = ("http", "https", "tcp", "grpc", "unix")
_COLLECTION_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")
MAPPING_KEYS = ("id", "text", "vector", "sparse", "record", "title", "encoder")


def default_lite_path() -> Path:
    """The Milvus Lite database used when nothing else is named: ``<cache>/milvus.db``."""
    return cache_dir() / "milvus.db"


def is_server_uri(uri: str) -> bool:
    """True for a server address (``http://``, ``https://``, ...), False for a Lite path."""
    return urlsplit(uri).scheme.lower() in SERVER_SCHEMES


@dataclass(frozen=True)
class MilvusTarget:
    """A Milvus to talk to: a Lite ``.db`` path or a server URI, and its token.

    ``repr`` and :attr:`label` never show the token.
    """

    uri: str
    token: str = field(default="", repr=False)

    @property
    def is_lite(self) -> bool:
        """Whether this is an embedded Milvus Lite database (a local path)."""
        return not is_server_uri(self.uri)

    @property
    def label(self) -> str:
        """What to show a person: the URI (a Lite path made absolute), never the token."""
        return str(Path(self.uri).expanduser().resolve()) if self.is_lite else self.uri


def resolve_target(uri: str | None = None, token: str | None = None) -> MilvusTarget:
    """The target for ``uri`` (default: ``RERANK_MILVUS_URI``, else the Lite file in the
    cache folder). ``token`` defaults to ``RERANK_MILVUS_TOKEN`` only when ``uri`` is
    that of ``RERANK_MILVUS_URI`` (or not given): a URI from elsewhere gets no secret."""
    env_uri = (os.environ.get(URI_ENV) or "").strip()
    chosen = (uri or "").strip() or env_uri or str(default_lite_path())
    if token is None:
        same = not (uri or "").strip() or chosen == env_uri
        token = os.environ.get(TOKEN_ENV, "") if same else ""
    return MilvusTarget(chosen, token or "")


@dataclass(frozen=True)
class MilvusReference:
    """A collection by name, where it lives (``uri``; None: the default) and how to read
    it (``mapping``: field names and encoder of a collection we did not export)."""

    collection: str
    uri: str | None = None
    mapping: tuple[tuple[str, str], ...] = ()

    def __str__(self) -> str:
        text = REFERENCE_PREFIX + self.collection
        if self.uri:
            text += "@" + self.uri
        if self.mapping:
            text += "?" + urlencode(self.mapping, safe="/,:")
        return text

    @property
    def mapping_dict(self) -> dict[str, str]:
        """The field mapping as a dict."""
        return dict(self.mapping)


def is_milvus_reference(name: object) -> bool:
    """True when ``name`` is a ``milvus:...`` dataset reference."""
    return isinstance(name, str) and name.startswith(REFERENCE_PREFIX)


def check_collection_name(name: str) -> str:
    """Return ``name`` if Milvus accepts it as a collection name; else raise."""
    if not _COLLECTION_NAME.match(name or ""):
        raise SettingsError(
            f"invalid Milvus collection name {name!r}: use letters, digits and _ "
            "(starting with a letter or _), at most 255 characters"
        )
    return name


def parse_reference(text: str) -> MilvusReference:
    """Parse a ``milvus:...`` reference (grammar in the module docstring)."""
    if not is_milvus_reference(text):
        raise SettingsError(f"not a Milvus reference (milvus:<collection>[@<uri>]): {text!r}")
    rest = text[len(REFERENCE_PREFIX) :]
    rest, _, query = rest.partition("?")
    if rest.startswith("//"):
        parts = urlsplit("milvus:" + rest)
        if not parts.netloc or not parts.path.strip("/"):
            raise SettingsError(f"a milvus:// reference needs host:port/collection: {text!r}")
        collection, uri = parts.path.strip("/"), f"http://{parts.netloc}"
    else:
        collection, _, uri = rest.partition("@")
    mapping = []
    for key, value in parse_qsl(query, keep_blank_values=False):
        if key not in MAPPING_KEYS:
            raise SettingsError(
                f"unknown Milvus mapping key {key!r}: use {', '.join(MAPPING_KEYS)}"
            )
        mapping.append((key, value.strip()))
    return MilvusReference(
        check_collection_name(collection.strip()), uri.strip() or None, tuple(mapping)
    )


def normalize_reference(text: str) -> str:
    """A reference as typed (``milvus:`` may be left out) in canonical form."""
    text = (text or "").strip()
    if not is_milvus_reference(text):
        text = REFERENCE_PREFIX + text
    return str(parse_reference(text))


ALLOWED_URIS_ENV = "RERANK_MILVUS_ALLOWED_URIS"


def link_refusal(reference: str) -> str | None:
    """Why a share link may not name this Milvus reference (None: it may).

    A link comes from outside the operator's hands, and opening a reference makes the
    server open a local folder (a Lite path) or connect to a host. A link may name a
    collection at the operator's Milvus (no URI, or the URI of ``RERANK_MILVUS_URI``) or
    at a URI listed in ``RERANK_MILVUS_ALLOWED_URIS`` (comma-separated, exact). Typed
    into the sidebar, any reference may be opened. Decided on the text alone.
    """
    try:
        ref = parse_reference(reference)
    except SettingsError as exc:
        return str(exc)
    if ref.uri is None:
        return None
    allowed = {u.strip() for u in os.environ.get(ALLOWED_URIS_ENV, "").split(",") if u.strip()}
    allowed.add((os.environ.get(URI_ENV) or "").strip())
    if ref.uri in allowed:
        return None
    return (
        f"a link may name only the operator's Milvus ({URI_ENV}) or a URI listed in "
        f"{ALLOWED_URIS_ENV}; open {ref.collection} from the sidebar's Milvus box instead"
    )
