"""Loading models by hub id, failing fast and clearly when the hub cannot be had.

Hugging Face loaders retry unreachable hosts for about a minute before giving up. We
first try the local hub cache, then check in about a second whether the hub answers
at all, and only then let the loader download.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import urlparse

from core.models.errors import ModelUnavailableError

T = TypeVar("T")

_REACHABILITY: dict[str, tuple[float, bool]] = {}
_REACHABILITY_TTL = 60.0


def hub_endpoint() -> str:
    """The Hugging Face endpoint in use (``HF_ENDPOINT`` or the public hub)."""
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co")


def hub_offline() -> bool:
    """True when the user switched the hub off (``HF_HUB_OFFLINE``)."""
    return os.environ.get("HF_HUB_OFFLINE", "").lower() not in ("", "0", "false", "no")


def hub_reachable(timeout: float = 2.0) -> bool:
    """Whether a TCP connection to the hub succeeds; remembered for a minute."""
    url = urlparse(hub_endpoint())
    host = url.hostname or "huggingface.co"
    port = url.port or (443 if url.scheme == "https" else 80)
    cached = _REACHABILITY.get(host)
    now = time.monotonic()
    if cached and now - cached[0] < _REACHABILITY_TTL:
        return cached[1]
    try:
        with socket.create_connection((host, port), timeout=timeout):
            ok = True
    except OSError:
        ok = False
    _REACHABILITY[host] = (now, ok)
    return ok


def quiet_transformers() -> None:
    """Silence transformers' per-load progress bars and advisory warnings."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        return
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def load_hub_model(load: Callable[..., T], model_id: str, role: str, packaged: list[str]) -> T:
    """Call ``load(model_id, local_files_only=...)``: local cache first, then the hub.

    Raises :class:`ModelUnavailableError` with one actionable line when neither works.
    """
    try:
        return load(model_id, local_files_only=True)
    except Exception:  # not in the local cache: try the hub below
        pass
    if hub_offline():
        reason = "offline mode is on (HF_HUB_OFFLINE=1) and it is not in the local cache"
    elif not hub_reachable():
        reason = f"the Hugging Face hub ({hub_endpoint()}) cannot be reached from this machine"
    else:
        try:
            return load(model_id, local_files_only=False)
        except Exception as exc:  # the hub raises many types; all mean "not available"
            reason = f"loading it from the hub failed ({type(exc).__name__}: {_first_line(exc)})"
    raise ModelUnavailableError(
        f"{role} model '{model_id}' is not available: {reason}. "
        f"Models that work offline here: {', '.join(packaged)}."
    )


def load_local_folder(load: Callable[[], T], folder: str, role: str) -> T:
    """Call ``load()`` on a local model folder; a folder that is not a model of this kind
    (no config, wrong files, unreadable) raises :class:`ModelUnavailableError` in one line."""
    try:
        return load()
    except Exception as exc:  # transformers raises ValueError, OSError, KeyError, ...
        raise ModelUnavailableError(
            f"{role} model folder '{folder}' could not be loaded as a model "
            f"({type(exc).__name__}: {_first_line(exc)})"
        ) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else "no details"
