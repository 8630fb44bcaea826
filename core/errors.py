"""Typed errors raised by :mod:`core`.

Every error a user can cause (bad data, unknown fields, a model that cannot be had
offline, a failing remote API) is a :class:`CoreError`, whose message is one line a
person can act on. The CLI prints it; the app shows it; nothing else should need to
catch bare exceptions.
"""

from __future__ import annotations


class CoreError(Exception):
    """Base class of every error :mod:`core` raises on purpose."""


class DatasetError(CoreError):
    """A dataset could not be read, parsed or validated."""


class DatasetUnavailableError(DatasetError):
    """A dataset could not be obtained (missing file, no network, bad checksum)."""


class FieldError(CoreError):
    """A requested field does not exist in the dataset, or yields no text."""


class ModelUnavailableError(CoreError):
    """A model id could not be resolved to a packaged copy nor loaded from the hub."""


class RerankError(CoreError):
    """A reranker failed while scoring."""


class RemoteAPIError(CoreError):
    """A hosted API (Together) failed; the message never contains a secret."""


class SettingsError(CoreError):
    """A search setting is out of range or inconsistent (empty query, bad counts)."""


class WalkthroughError(CoreError):
    """A walkthrough file or link could not be read (malformed, too large, unknown id)."""
