"""Drift: a link (or a walkthrough step) made on other data or other model files.

A link carries its manifest's short fingerprint (``fp=``). Opening it, the page makes the
manifest of what it is about to show; when the fingerprints differ, :func:`drift_line`
says in one plain line what changed, from the manifest remembered when the link was made
(:func:`core.present.manifest.recall_manifest`): "This link was made on another version of
dataset movies: 3 records changed, 1 added." or "… made with another reranker file …".
The view is shown anyway: drift is reported, never hidden and never blocking.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from core.present.manifest import (
    B_ROLE,
    FINGERPRINT_PATTERN,
    Manifest,
    recall_manifest,
    record_digests,
)

FINGERPRINT_PARAM = "fp"


@dataclass(frozen=True)
class RecordChanges:
    """How the records of a dataset differ between two versions."""

    changed: int = 0
    added: int = 0
    removed: int = 0

    def phrase(self) -> str:
        """``3 records changed, 1 added`` (parts that are 0 are left out)."""
        parts = []
        if self.changed:
            parts.append(f"{self.changed:,} record{'s' * (self.changed != 1)} changed")
        for count, word in ((self.added, "added"), (self.removed, "removed")):
            if count:
                noun = "" if parts else f" record{'s' * (count != 1)}"
                parts.append(f"{count:,}{noun} {word}")
        return ", ".join(parts) or "the same records, in another order or with other ids"


def record_changes(then: Mapping[str, str], now: Mapping[str, str]) -> RecordChanges:
    """Records changed (same id, other content), added and removed between two digest maps."""
    changed = sum(1 for doc_id, digest in then.items() if doc_id in now and now[doc_id] != digest)
    added = sum(1 for doc_id in now if doc_id not in then)
    removed = sum(1 for doc_id in then if doc_id not in now)
    return RecordChanges(changed, added, removed)


def link_fingerprint(params: Mapping[str, str]) -> str | None:
    """The well-formed fingerprint a link carries, else None."""
    raw = str(params.get(FINGERPRINT_PARAM) or "").strip().lower()
    return raw if FINGERPRINT_PATTERN.match(raw) else None


def describe_drift(
    then: Manifest,
    now: Manifest,
    then_records: Mapping[str, str] | None = None,
    now_records: Mapping[str, str] | None = None,
    *,
    what: str = "This link",
) -> str | None:
    """One line saying how ``now`` differs from ``then`` in data and model files, or None
    when they match. Record counts come from the digest maps when both are given."""
    parts = []
    if then.dataset.sha256 != now.dataset.sha256:
        label = now.dataset.label
        if then_records is not None and now_records is not None:
            detail = record_changes(then_records, now_records).phrase()
        else:
            detail = f"{then.dataset.records:,} records then, {now.dataset.records:,} now"
        parts.append(f"on another version of dataset {label}: {detail}")
    if then.judgments_sha256 != now.judgments_sha256:
        parts.append("with other judgments")
    for role in ("encoder", "reranker", B_ROLE):
        a, b = then.model(role), now.model(role)
        if a is None or b is None:
            continue
        if a.model != b.model:
            parts.append(f"with another {role} ({a.model}; now {b.model})")
        elif a.sha256 != b.sha256:
            parts.append(
                f"with another {role} file ({_short(a.sha256)} then, {_short(b.sha256)} now)"
            )
        elif a.runtime != b.runtime or a.max_length != b.max_length:
            parts.append(f"with the {role} on {a.runtime} (now {b.runtime})")
    if not parts:
        return None
    return f"{what} was made " + "; and ".join(parts) + ". Shown with what is here now."


def drift_line(
    fingerprint: str | None, now: Manifest, dataset=None, *, what: str = "This link"
) -> str | None:
    """The drift line for a link carrying ``fingerprint`` opened where ``now`` holds
    (``dataset``: the corpus shown, to count changed records); None when nothing changed
    or the link carries no fingerprint."""
    if not fingerprint or fingerprint == now.fingerprint:
        return None
    recalled = recall_manifest(fingerprint)
    if recalled is None:
        return (
            f"{what} was made on other data or model files (fingerprint {fingerprint}, "
            f"here {now.fingerprint}); this server has no record of what they were. "
            "Shown with what is here now."
        )
    then, then_records = recalled
    now_records = record_digests(dataset) if dataset is not None and then_records else None
    line = describe_drift(then, now, then_records, now_records, what=what)
    if line is None:  # same files, other settings recorded under the same name
        return None
    return line


def steps_that_differ(
    fingerprints: Sequence[str | None], now: Sequence[Manifest | None]
) -> list[int]:
    """1-based numbers of walkthrough steps whose recorded fingerprint is not the one
    their manifest has now (a step recorded without a fingerprint, or whose manifest
    cannot be made here, is not checked). A step's manifest is its head-to-head's
    (:func:`core.present.manifest.head_to_head_manifest`): the data, the encoder, A's
    and B's model files."""
    return [
        i
        for i, (fp, manifest) in enumerate(zip(fingerprints, now, strict=True), start=1)
        if fp and manifest is not None and fp != manifest.fingerprint
    ]


def walkthrough_drift(
    steps_params: Sequence[Mapping[str, str]], now: Sequence[Manifest | None]
) -> str | None:
    """One line naming the walkthrough steps that no longer reproduce (each step's
    params carry the ``fp`` of the view it was made on), or None when all do."""
    numbers = steps_that_differ([link_fingerprint(p) for p in steps_params], now)
    if not numbers:
        return None
    which = ", ".join(str(n) for n in numbers)
    noun, verb = ("Steps", "were") if len(numbers) > 1 else ("Step", "was")
    return (
        f"{noun} {which} of this walkthrough {verb} made on other data or model files than "
        "this server has now: their numbers may differ from what was agreed."
    )


def _short(digest: str | None) -> str:
    return f"sha256 {digest[:12]}…" if digest else "no file"
