"""The one gate for every value that comes from outside the operator's hands.

A share link's URL parameters (on any page), a stored or imported walkthrough step and a
head-to-head spec become settings here and nowhere else. Every rule is applied in one
place:

* numbers are clamped and choices checked (:meth:`SearchSettings.from_params`);
* every model id (the encoder, the reranker, A and B) goes through
  :func:`core.models.allow.model_refusal`, so a link never makes the server read a folder
  or contact a model hub;
* datasets are the known ones only: built-in names, upload ids, built collections, and
  Milvus references that name the operator's own Milvus (``link_refusal``) — a link or an
  imported file never makes the server open a host, a port or a path of its choosing;
* texts are clipped: a value over :data:`MAX_VALUE_CHARS` is refused (and echoed cut), a
  query is cut to its limit (:data:`core.present.views.MAX_QUERY_CHARS`), field lists are
  capped;
* a pinned explanation (:func:`admit_pin`) names a known method, side ``a``/``b`` and a
  document id of the step's dataset.

Decisions are made on the text alone (no file system, no network), so a refusal never
tells a visitor whether a path or a host exists. Pages and stored views call
:func:`admit_view` and :func:`admit_spec`; none parses its own link.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Literal

from core.data.collection import is_collection_id
from core.data.datasets import BUILTIN
from core.data.upload_store import is_upload_id
from core.models.allow import model_refusal
from core.models.base import PACKAGED_CROSS_ENCODER
from core.models.errors import CoreError
from core.present.views import SearchSettings, shown_value
from core.quality.explain import METHODS as EXPLAIN_METHODS
from core.quality.explain import ExplainPin
from core.quality.headtohead import NONE, RerankSpec, parse_spec
from core.search.milvus_reference import is_milvus_reference, link_refusal

Origin = Literal["link", "stored"]
"""Where outside values come from: a URL (``link``) or a stored or imported file
(``stored``: a walkthrough step, a blind-test file). Both get the same rules."""

MAX_VALUE_CHARS = 300
"""Longest value of any parameter but the query (a dataset id, a model id, a field
list); a longer one is refused whole and echoed cut."""
MAX_FIELDS = 50
"""Most fields a link may choose to embed or to rerank."""
DEFAULT_DATASET = "movies"


def _where(origin: Origin) -> str:
    return "the link" if origin == "link" else "the stored view"


def _clip_params(params: Mapping[str, object]) -> tuple[dict[str, str], list[str]]:
    """Plain string values, each within its length limit, and a warning per value cut."""
    kept: dict[str, str] = {}
    warnings: list[str] = []
    for key, raw in params.items():
        if not isinstance(key, str) or len(key) > 40:
            continue
        value = raw if isinstance(raw, str) else str(raw)
        if key != "q" and len(value) > MAX_VALUE_CHARS:  # the query is cut, not refused
            warnings.append(
                f"ignored {key}={shown_value(value)}: {len(value):,} characters is not a setting"
            )
            continue
        kept[key] = value
    return kept, warnings


def known_dataset(name: str) -> bool:
    """Whether ``name`` is a dataset a link may open (Milvus references are checked by
    :func:`core.search.milvus_reference.link_refusal` on top of this)."""
    return (
        name in BUILTIN or is_upload_id(name) or is_collection_id(name) or is_milvus_reference(name)
    )


def admit_view(
    params: Mapping[str, object], *, origin: Origin = "link"
) -> tuple[SearchSettings, list[str]]:
    """The settings outside ``params`` describe, and a warning per value ignored or changed.

    Applies every rule of the module docstring; an unusable dataset falls back to
    movies, a refused model id to the default one.
    """
    clipped, warnings = _clip_params(params)
    view, more = SearchSettings.from_params(clipped)
    warnings.extend(more)
    changes: dict[str, object] = {}
    fields_cut = {
        name: getattr(view, name)[:MAX_FIELDS]
        for name in ("embed_fields", "rerank_fields")
        if len(getattr(view, name)) > MAX_FIELDS
    }
    if fields_cut:
        warnings.append(f"more than {MAX_FIELDS} fields chosen; the first {MAX_FIELDS} are used")
        changes.update(fields_cut)
    refused = is_milvus_reference(view.dataset) and link_refusal(view.dataset)
    if refused:
        warnings.append(refused)
        changes["dataset"] = DEFAULT_DATASET
    elif not known_dataset(view.dataset):
        warnings.append(
            f"unknown dataset {shown_value(view.dataset)} in {_where(origin)}; "
            f"using {DEFAULT_DATASET}"
        )
        changes["dataset"] = DEFAULT_DATASET
    return (replace(view, **changes) if changes else view), warnings


def admit_spec(
    text: str | None, *, side: str = "B", origin: Origin = "link", default: str = NONE
) -> tuple[RerankSpec, list[str]]:
    """A head-to-head side from outside text, and a warning when it was not usable.

    A malformed spec or a refused model id gives ``default`` (``none``: the first
    stage's order) and one line saying why.
    """
    fallback = parse_spec(default)
    raw = (text or "").strip()
    if not raw:
        return fallback, []
    if len(raw) > MAX_VALUE_CHARS:
        return fallback, [f"ignored {side}: {len(raw):,} characters is not a reranker spec"]
    try:
        spec = parse_spec(raw)
    except CoreError as exc:
        return fallback, [f"{side}: {exc}"]
    if spec.is_none or spec.reranker == PACKAGED_CROSS_ENCODER:
        return spec, []
    refusal = model_refusal(spec.reranker, "reranker", origin="link")
    if refusal is not None:
        return fallback, [f"{side}: {refusal}; using {fallback.label}"]
    return spec, []


_CONTROL = frozenset(chr(c) for c in (*range(32), 127))
PIN_SIDES = ("a", "b")


def admit_pin(
    raw: object, *, origin: Origin = "link", has_doc: Callable[[str], bool] | None = None
) -> tuple[ExplainPin | None, list[str]]:
    """A pinned explanation (:class:`core.quality.explain.ExplainPin`) from outside
    values, or None and one line saying why it is not used.

    ``raw`` is the stored step's ``explain`` object (``doc``, ``method``, ``side``). The
    method must be a known one, the side ``a`` or ``b``, the document id plain text of
    at most :data:`MAX_VALUE_CHARS` characters; with ``has_doc`` (the step's dataset),
    the id must name one of its records. Nothing is loaded here: the caller that holds
    the dataset passes its check.
    """
    if raw is None or raw == {}:
        return None, []
    where = _where(origin)
    if not isinstance(raw, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in raw.items()
    ):
        return None, [f"ignored the pinned explanation in {where}: not a map of text to text"]
    doc, method = raw.get("doc", ""), raw.get("method", "occlusion")
    side = raw.get("side", "a")
    if not doc or len(doc) > MAX_VALUE_CHARS or any(ch in _CONTROL for ch in doc):
        return None, [f"ignored the pinned explanation: document id {shown_value(doc)} is not one"]
    if method not in EXPLAIN_METHODS:
        return None, [
            f"ignored the pinned explanation: unknown method {shown_value(method)} "
            f"(known: {', '.join(EXPLAIN_METHODS)})"
        ]
    if side not in PIN_SIDES:
        return None, [f"ignored the pinned explanation: side {shown_value(side)} is not a or b"]
    if has_doc is not None and not has_doc(doc):
        return None, [
            f"ignored the pinned explanation: document {shown_value(doc)} is not in the dataset"
        ]
    return ExplainPin(doc, method, side), []
