"""Which model ids a share link or the sidebar may select.

A model id that reaches a loader can make the server read a folder (sentence-transformers
treats an existing path as a local model), so ids from outside the operator's hands go
through :func:`model_refusal` first. The decision is made on the text alone: nothing
here touches the file system, so a refusal never tells whether a folder exists.

Allowed, from a link or typed in the sidebar:

* the packaged models and their aliases (:mod:`core.models.packaged`);
* ``together:<model>`` (the hosted API; the id is sent as a JSON string, never opened);
* ids the operator lists in ``RERANK_ALLOWED_MODELS`` (comma-separated, exact match);
* hub-style ``org/name`` ids, only when ``RERANK_ALLOW_DOWNLOADS`` is on (off by default:
  this deployment has no model hub).

Refused always (unless listed by the operator): anything that looks like a path
(absolute, relative, ``~``, ``..``, a drive letter, backslashes, a ``file:`` URL) and
other free text. Typed into the sidebar (not from a link), a local folder is allowed
when the operator sets ``RERANK_ALLOW_LOCAL_MODELS`` on.
"""

from __future__ import annotations

import os
import re
from typing import Final, Literal

from core.models.base import DEFAULT_ENCODER, PACKAGED_CROSS_ENCODER
from core.models.packaged import BGE_SMALL, BGE_SMALL_ALIASES, CROSS_ENCODER_ALIASES, MINILM_ALIASES

ModelRole = Literal["encoder", "reranker"]
Origin = Literal["link", "typed"]

ALLOWED_MODELS_ENV: Final = "RERANK_ALLOWED_MODELS"
ALLOW_DOWNLOADS_ENV: Final = "RERANK_ALLOW_DOWNLOADS"
ALLOW_LOCAL_MODELS_ENV: Final = "RERANK_ALLOW_LOCAL_MODELS"
TOGETHER_PREFIX: Final = "together:"
MAX_MODEL_ID_CHARS: Final = 200

# The hub's own rule: org and name of letters, digits, '-', '_', '.', at most 96 each.
_HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]")
_DRIVE = re.compile(r"^[A-Za-z]:")
_PACKAGED = {
    "encoder": MINILM_ALIASES | BGE_SMALL_ALIASES,
    "reranker": CROSS_ENCODER_ALIASES,
}
_PACKAGED_SHOWN = {
    "encoder": f"{DEFAULT_ENCODER}, {BGE_SMALL}",
    "reranker": PACKAGED_CROSS_ENCODER,
}


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def operator_allowed_models() -> frozenset[str]:
    """Ids the operator allows explicitly (``RERANK_ALLOWED_MODELS``, comma-separated)."""
    raw = os.environ.get(ALLOWED_MODELS_ENV, "")
    return frozenset(part.strip() for part in raw.split(",") if part.strip())


def downloads_allowed() -> bool:
    """Whether hub-style ``org/name`` ids may be selected (``RERANK_ALLOW_DOWNLOADS``)."""
    return _flag(ALLOW_DOWNLOADS_ENV)


def local_models_allowed() -> bool:
    """Whether a folder typed in the sidebar may be loaded (``RERANK_ALLOW_LOCAL_MODELS``)."""
    return _flag(ALLOW_LOCAL_MODELS_ENV)


def looks_like_path(model_id: str) -> bool:
    """True for text that names a file-system location rather than a model id.

    Decided on the text alone (no file-system call): absolute or home paths, ``.`` or
    ``..`` segments, backslashes, drive letters, ``file:`` URLs, and more than one ``/``.
    """
    text = model_id.strip()
    if not text:
        return False
    if text[0] in "/~." or "\\" in text or _DRIVE.match(text):
        return True
    if text.lower().startswith("file:"):
        return True
    parts = text.split("/")
    if len(parts) > 2:
        return True
    return len(parts) == 2 and any(p in ("", ".", "..") for p in parts)


def is_hub_id(model_id: str) -> bool:
    """True for a hub-style ``org/name`` id (the hub's character rules, no ``..``)."""
    return bool(_HUB_ID.fullmatch(model_id)) and ".." not in model_id


def _shown(model_id: str) -> str:
    text = _CONTROL.sub(" ", model_id)
    return repr(text if len(text) <= 80 else text[:77] + "...")


def model_refusal(model_id: str, role: ModelRole, *, origin: Origin = "link") -> str | None:
    """None when ``model_id`` may be loaded for ``role``; otherwise one line saying why.

    ``origin`` is ``"link"`` for ids read from a URL and ``"typed"`` for ids typed into
    the sidebar (which may name a local folder when the operator allows it). The
    decision never touches the file system.
    """
    text = model_id.strip()
    what = "Bi-encoder" if role == "encoder" else "Reranker"
    if not text:
        return f"{what} model id is empty"
    if text in operator_allowed_models():
        return None
    if len(text) > MAX_MODEL_ID_CHARS or _CONTROL.search(text):
        return f"{what} model {_shown(text)} is not a model id (too long or has control characters)"
    if text in _PACKAGED[role]:
        return None
    if text.startswith(TOGETHER_PREFIX):
        if text.removeprefix(TOGETHER_PREFIX).strip():
            return None
        return f"{what} model {_shown(text)} names no Together model"
    options = (
        f"packaged models ({_PACKAGED_SHOWN[role]}), together:<model> ids, or ids the "
        f"operator allows ({ALLOWED_MODELS_ENV})"
    )
    if looks_like_path(text):
        if origin == "typed":
            if local_models_allowed():
                return None
            options += f"; a local folder needs {ALLOW_LOCAL_MODELS_ENV}=1"
        return f"{what} model {_shown(text)} looks like a file path and is not used; use {options}"
    if is_hub_id(text):
        if downloads_allowed():
            return None
        return (
            f"{what} model {_shown(text)} is not packaged and this server does not fetch "
            f"models ({ALLOW_DOWNLOADS_ENV} is off); use {options}"
        )
    return f"{what} model {_shown(text)} is not a known model id; use {options}"
