"""Walkthroughs: an ordered list of steps a presenter steps through, saved by content.

A :class:`Step` is one view: the Search page's settings as their URL parameters (query
included), the B side of the head-to-head as a spec string
(:func:`core.quality.headtohead.parse_spec`), and an optional note. A
:class:`Walkthrough` is a title and its steps; its JSON form is the export/import
format and what the server stores.

:class:`WalkthroughStore` keeps walkthroughs in the shared state store
(:mod:`core.data.state_store`: SQLite in the cache folder, or PostgreSQL for replicas)
under the sha256 of the canonical JSON, so the same walkthrough always gets the same id
and one link (``?walkthrough=<16 hex>``) opens it for anyone on the same deployment.
Rows are re-hashed when read; a damaged one is never served. Walkthroughs saved by
earlier versions as ``<cache dir>/walkthroughs/<sha256>.json`` are still found (and
copied into the store on first use).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.data.state_store import StateStore, open_store
from core.models.errors import CoreError, WalkthroughError
from core.models.paths import cache_dir
from core.present.gate import admit_pin, admit_spec, admit_view
from core.present.views import SearchSettings
from core.quality.explain import ExplainPin
from core.quality.headtohead import RerankSpec, parse_spec

FORMAT = "rerank-walkthrough/1"
MAX_STEPS = 100
MAX_NOTE_CHARS = 4_000
MAX_BYTES = 1_000_000
ID_LENGTH = 16
_ID = re.compile(r"^[0-9a-f]{16}\Z")
_FILE = re.compile(r"^([0-9a-f]{64})\.json\Z")


@dataclass(frozen=True)
class Step:
    """One step: settings (Search page URL parameters), B's spec, a note, and an
    optional pinned explanation (``explain``: ``doc``, ``method``, ``side``, kept as
    given and admitted by the gate when used, like ``params`` and ``b``)."""

    params: dict[str, str]
    b: str = "none"
    note: str = ""
    explain: dict[str, str] | None = None

    @property
    def settings(self) -> SearchSettings:
        """The step's settings, through the same gate as a link's (an unknown dataset, a
        Milvus reference not the operator's or a refused model id falls back to the
        default; :meth:`warnings` says which)."""
        return admit_view(self.params, origin="stored")[0]

    @property
    def warnings(self) -> list[str]:
        """What of the step's settings or B's spec was not used, one line each."""
        return (
            admit_view(self.params, origin="stored")[1]
            + self.b_spec_and_warnings[1]
            + admit_pin(self.explain, origin="stored")[1]
        )

    @property
    def pin(self) -> ExplainPin | None:
        """The pinned explanation, through the gate's text rules (None when there is
        none or it was refused); the caller checks the document against the dataset."""
        return admit_pin(self.explain, origin="stored")[0]

    @property
    def b_spec(self) -> RerankSpec:
        """B's spec, through the gate (a refused or malformed one is ``none``)."""
        return self.b_spec_and_warnings[0]

    @property
    def b_spec_and_warnings(self) -> tuple[RerankSpec, list[str]]:
        """B's spec and why it was not usable (empty when it was)."""
        return admit_spec(self.b, side="B", origin="stored")

    @property
    def query(self) -> str:
        """The step's query."""
        return self.settings.query

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        data: dict[str, Any] = {
            "params": dict(sorted(self.params.items())),
            "b": self.b,
            "note": self.note,
        }
        if self.explain:  # only when pinned: older walkthroughs keep their ids
            data["explain"] = dict(sorted(self.explain.items()))
        return data


@dataclass(frozen=True)
class Walkthrough:
    """A titled, ordered list of steps."""

    title: str = "Walkthrough"
    steps: tuple[Step, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with the format tag."""
        return {
            "format": FORMAT,
            "title": self.title,
            "steps": [s.to_dict() for s in self.steps],
        }

    def to_json(self) -> str:
        """Canonical JSON (sorted keys, no extra spaces): the stored and hashed form."""
        return json.dumps(self.to_dict(), sort_keys=True, ensure_ascii=False, indent=1)

    @property
    def digest(self) -> str:
        """sha256 of :meth:`to_json`."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()

    @property
    def id(self) -> str:
        """The short id in links: the digest's first 16 hex digits."""
        return self.digest[:ID_LENGTH]

    def add(self, step: Step) -> Walkthrough:
        """A copy with ``step`` appended (:class:`WalkthroughError` past the step limit)."""
        if len(self.steps) >= MAX_STEPS:
            raise WalkthroughError(f"a walkthrough holds at most {MAX_STEPS} steps")
        return Walkthrough(self.title, (*self.steps, step))

    def remove(self, index: int) -> Walkthrough:
        """A copy without step ``index`` (0-based)."""
        return Walkthrough(self.title, self.steps[:index] + self.steps[index + 1 :])

    def move(self, index: int, offset: int) -> Walkthrough:
        """A copy with step ``index`` moved by ``offset`` (clamped to the ends)."""
        steps = list(self.steps)
        target = min(max(index + offset, 0), len(steps) - 1)
        steps.insert(target, steps.pop(index))
        return Walkthrough(self.title, tuple(steps))


def step_from_view(
    settings: SearchSettings,
    b: str,
    note: str = "",
    fingerprint: str | None = None,
    pin: ExplainPin | None = None,
) -> Step:
    """A step built from the current view (its URL parameters) and B's spec;
    ``fingerprint`` (its manifest's, :mod:`core.present.manifest`) goes in as ``fp`` so a
    later showing can tell whether the step still reproduces; ``pin``, an explanation
    the presenter pinned to it."""
    parse_spec(b)  # reject a malformed spec now, not when presenting
    params = settings.to_params() | ({"fp": fingerprint} if fingerprint else {})
    return Step(params, b, note[:MAX_NOTE_CHARS], pin.to_dict() if pin else None)


def parse_walkthrough(data: bytes | str) -> Walkthrough:
    """Read a walkthrough from its JSON; :class:`WalkthroughError` with one clear line."""
    if isinstance(data, bytes):
        if len(data) > MAX_BYTES:
            raise WalkthroughError(f"walkthrough file is over {MAX_BYTES // 1000} kB")
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            raise WalkthroughError("walkthrough file is not UTF-8 text") from None
    try:
        raw = json.loads(data)
    except ValueError as exc:
        raise WalkthroughError(f"walkthrough file is not valid JSON ({exc.msg})") from None
    except RecursionError:
        raise WalkthroughError("walkthrough file is nested too deeply to read") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise WalkthroughError(f"not a walkthrough: expected an object with format {FORMAT!r}")
    title = raw.get("title", "Walkthrough")
    steps = raw.get("steps")
    if not isinstance(title, str) or not isinstance(steps, list):
        raise WalkthroughError("walkthrough needs a text 'title' and a list of 'steps'")
    if not steps:
        raise WalkthroughError("walkthrough has no steps")
    if len(steps) > MAX_STEPS:
        raise WalkthroughError(f"walkthrough has {len(steps)} steps; at most {MAX_STEPS}")
    out = []
    for number, step in enumerate(steps, start=1):
        if not isinstance(step, dict):
            raise WalkthroughError(f"step {number} is not an object")
        params, b, note = step.get("params"), step.get("b", "none"), step.get("note", "")
        if not isinstance(params, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in params.items()
        ):
            raise WalkthroughError(f"step {number}: 'params' must map text to text")
        if not isinstance(b, str) or not isinstance(note, str):
            raise WalkthroughError(f"step {number}: 'b' and 'note' must be text")
        explain = step.get("explain")
        if explain is not None and (
            not isinstance(explain, dict)
            or len(explain) > 3
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in explain.items())
        ):
            raise WalkthroughError(f"step {number}: 'explain' must map doc, method, side to text")
        if len(note) > MAX_NOTE_CHARS:
            raise WalkthroughError(f"step {number}: note is over {MAX_NOTE_CHARS} characters")
        try:
            parse_spec(b)
        except CoreError as exc:
            raise WalkthroughError(f"step {number}: {exc}") from None
        if not admit_view(params, origin="stored")[0].query:
            raise WalkthroughError(f"step {number} has no query (parameter 'q')")
        out.append(Step(dict(params), b, note, dict(explain) if explain else None))
    return Walkthrough(title.strip()[:200] or "Walkthrough", tuple(out))


def is_walkthrough_id(value: object) -> bool:
    """True for a well-formed link id (16 lowercase hex digits)."""
    return isinstance(value, str) and bool(_ID.match(value))


class WalkthroughStore:
    """Walkthroughs in the state store, addressed by content. ``root`` (tests, tools)
    puts the store in ``<root>/state.sqlite3`` and reads legacy JSON files from ``root``;
    by default the app's store (:func:`core.data.state_store.open_store`) and legacy files
    from ``<cache dir>/walkthroughs``."""

    def __init__(self, root: Path | None = None, *, state: StateStore | None = None) -> None:
        self.legacy = Path(root) if root is not None else cache_dir() / "walkthroughs"
        if state is None:
            state = open_store(f"sqlite:///{Path(root) / 'state.sqlite3'}" if root else None)
        self.state = state

    def put(self, walkthrough: Walkthrough) -> str:
        """Store ``walkthrough`` (idempotent); return its link id."""
        if not walkthrough.steps:
            raise WalkthroughError("add at least one step before saving")
        self.state.put_walkthrough(walkthrough.id, walkthrough.digest, walkthrough.to_json())
        return walkthrough.id

    def get(self, walkthrough_id: str) -> Walkthrough:
        """The walkthrough with link id ``walkthrough_id``; :class:`WalkthroughError` if the
        id is malformed (checked before anything is read) or not on this server."""
        if not is_walkthrough_id(walkthrough_id):
            shown = re.sub(r"[\x00-\x1f\x7f]", " ", str(walkthrough_id))[:40]
            raise WalkthroughError(
                f"{shown!r} is not a walkthrough id (16 hex digits, from a shared link)"
            )
        body = self.state.get_walkthrough(walkthrough_id)
        if body is not None:
            return parse_walkthrough(body)
        legacy = self._legacy(walkthrough_id)
        if legacy is not None:
            self.put(legacy)
            return legacy
        raise WalkthroughError(f"walkthrough {walkthrough_id} is not on this server")

    def _legacy(self, walkthrough_id: str) -> Walkthrough | None:
        """A walkthrough saved as a JSON file by an earlier version, re-hashed."""
        if not self.legacy.is_dir():
            return None
        for path in sorted(self.legacy.glob(f"{walkthrough_id}*.json")):
            match = _FILE.match(path.name)
            if not match:
                continue
            try:
                data = path.read_bytes()
            except OSError:
                continue
            if hashlib.sha256(data).hexdigest() == match.group(1):
                return parse_walkthrough(data)
        return None
