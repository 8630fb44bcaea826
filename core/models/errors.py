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


class MilvusError(CoreError):
    """Milvus (an embedded Milvus Lite file or a server) could not do what was asked."""


class MilvusUnavailableError(MilvusError):
    """A Milvus server cannot be reached, or a Milvus Lite file cannot be opened."""


class MilvusAuthError(MilvusError):
    """A Milvus server refused the token (missing, wrong or without the privilege)."""


class MilvusSchemaError(MilvusError):
    """A collection is missing, lacks a mapped field, or does not match the encoder
    (vector dimension, metric, or the model that made its vectors)."""


class BatchEngineError(CoreError):
    """A batch engine (Ray) could not be started, reached or finish a job."""


class WalkthroughError(CoreError):
    """A walkthrough file or link could not be read (malformed, too large, unknown id)."""
