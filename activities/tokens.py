"""Continuation tokens: opaque, authenticated, and bound to the query that issued them.

A token is base64url (no padding) of::

    version (1 byte) | nonce (12 bytes) | AES-256-GCM(payload, associated data = version)

so it is opaque (storage keys never show) and tamper-evident (the GCM tag). The payload is
``{"k": kind, "q": query fingerprint, "c": caller, "e": expiry, "p": position}``: ``kind`` names
the listing (``activities`` or ``accounts``), the fingerprint is a hash of the normalized filters
(never the limit, so a client may change the page size between pages), ``caller`` a hash of the
caller's object id (a token leaked to someone else is worth nothing to them), ``expiry`` the
epoch second after which it is refused (``TOKEN_LIFETIME``), and the position is where the next
page starts (the storage continuation, or the last key of an in-memory listing). The key is
random and kept in Table Storage (``connector`` table, PartitionKey ``secret``, RowKey
``continuation``) so that every instance of the app accepts the tokens of every other. It is
created once (first writer wins) and cached per process.

Every way a token can be wrong is an ``InvalidInput`` on ``continuation``: never a 500.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets
import threading
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from core.errors import InvalidInput
from core.optimistic import AlreadyExists, write_optimistically

FIELD = "continuation"
VERSION = 1
NONCE_BYTES = 12
TAG_BYTES = 16
MAX_TOKEN_CHARS = 4096
SECRET_PK = "secret"
SECRET_RK = "continuation"
KEY_BYTES = 32
TOKEN_LIFETIME = timedelta(hours=1)

Position = dict[str, Any]


def fingerprint(kind: str, filters: Mapping[str, str | None]) -> str:
    """A stable hash of a listing's normalized filters (keys sorted, nulls kept)."""
    canonical = json.dumps({"kind": kind, "filters": dict(filters)}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]


def caller_hash(caller: str) -> str:
    """What binds a token to its caller: a hash of the caller's object id (or app id)."""
    return hashlib.sha256(f"caller|{caller.lower()}".encode()).hexdigest()[:32]


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _b64decode(text: str) -> bytes:
    if not text or len(text) > MAX_TOKEN_CHARS or not text.isascii():
        raise ValueError("bad length")
    padded = text + "=" * (-len(text) % 4)
    return base64.b64decode(padded.encode("ascii"), altchars=b"-_", validate=True)


class ContinuationSigner:
    """Issues and opens continuation tokens under one key."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError(f"the continuation key must be {KEY_BYTES} bytes")
        self._aead = AESGCM(key)

    def issue(self, kind: str, query_fingerprint: str, position: Position, *, caller: str, now: datetime) -> str:
        payload = json.dumps(
            {
                "k": kind,
                "q": query_fingerprint,
                "c": caller_hash(caller),
                "e": int((now + TOKEN_LIFETIME).timestamp()),
                "p": position,
            },
            separators=(",", ":"),
        )
        version = bytes([VERSION])
        nonce = secrets.token_bytes(NONCE_BYTES)
        return _b64encode(version + nonce + self._aead.encrypt(nonce, payload.encode("utf-8"), version))

    def open(self, token: str, kind: str, query_fingerprint: str, *, caller: str, now: datetime) -> Position:
        """The position a token carries; InvalidInput when garbage, altered, expired, or not this caller's query."""
        try:
            data = _b64decode(token.strip())
        except (ValueError, binascii.Error):
            raise InvalidInput(
                FIELD, "is not a valid continuation token; pass the value from the previous page unchanged"
            ) from None
        if len(data) < 1 + NONCE_BYTES + TAG_BYTES + 2 or data[0] != VERSION:
            raise InvalidInput(
                FIELD, "is not a valid continuation token; pass the value from the previous page unchanged"
            )
        nonce, sealed = data[1 : 1 + NONCE_BYTES], data[1 + NONCE_BYTES :]
        try:
            payload = self._aead.decrypt(nonce, sealed, data[:1])
        except InvalidTag:
            raise InvalidInput(FIELD, "was altered or was not issued by this service; start again without it") from None
        try:
            document = json.loads(payload)
        except ValueError:  # cannot happen for a token we signed, but never a 500
            raise InvalidInput(FIELD, "is not a valid continuation token") from None
        if not isinstance(document, dict) or not isinstance(document.get("p"), dict):
            raise InvalidInput(FIELD, "is not a valid continuation token")
        if document.get("k") != kind:
            raise InvalidInput(FIELD, f"belongs to another listing, not to {kind}")
        if document.get("c") != caller_hash(caller):
            raise InvalidInput(FIELD, "was issued to another caller; start again without it")
        expiry = document.get("e")
        if not isinstance(expiry, int) or now.timestamp() > expiry:
            raise InvalidInput(FIELD, "has expired (tokens are valid for an hour); start again without it")
        if document.get("q") != query_fingerprint:
            raise InvalidInput(
                FIELD,
                "was issued for a query with other filters; repeat the same filters to get the next page, "
                "or leave continuation out to start over",
            )
        position: Position = document["p"]
        return position


# --- the key, in Table Storage -----------------------------------------------------------------

_cache: dict[str, ContinuationSigner] = {}
_cache_lock = threading.Lock()


def load_or_create_key(table: TableClient) -> bytes:
    """Read the shared key; create it when missing (the first writer wins, everyone reads that one)."""

    def attempt() -> bytes:
        try:
            row = table.get_entity(SECRET_PK, SECRET_RK)
        except ResourceNotFoundError:
            key = secrets.token_bytes(KEY_BYTES)
            try:
                table.create_entity({"PartitionKey": SECRET_PK, "RowKey": SECRET_RK, "key": _b64encode(key)})
            except ResourceExistsError as exc:
                raise AlreadyExists() from exc  # someone else won: read theirs
            return key
        value = row.get("key")
        if isinstance(value, str):
            try:
                return _b64decode(value)
            except (ValueError, binascii.Error):
                pass
        raise RuntimeError("the continuation key row in the connector table is malformed; delete it to renew")

    return write_optimistically(attempt, what="The continuation key")


def signer_for(table: TableClient) -> ContinuationSigner:
    """The process-wide signer for the key stored in `table` (read once, then cached)."""
    cache_key = f"{table.url}|{table.table_name}"
    with _cache_lock:
        signer = _cache.get(cache_key)
        if signer is None:
            signer = ContinuationSigner(load_or_create_key(table))
            _cache[cache_key] = signer
        return signer


def signer_source(signer: ContinuationSigner | None, table: TableClient) -> Callable[[], ContinuationSigner]:
    """`signer` when one is given, else the process-wide signer of the key in `table`, read on first use."""
    if signer is not None:
        return lambda: signer
    return lambda: signer_for(table)


class LazySigner:
    """One caller's view of the signer, fetched only when a token is read or issued (a last page needs neither)."""

    def __init__(self, factory: Callable[[], ContinuationSigner], *, caller: str, now: Callable[[], datetime]) -> None:
        self._factory = factory
        self._signer: ContinuationSigner | None = None
        self._caller = caller
        self._now = now

    def get(self) -> ContinuationSigner:
        if self._signer is None:
            self._signer = self._factory()
        return self._signer

    def issue(self, kind: str, query_fingerprint: str, position: Position) -> str:
        return self.get().issue(kind, query_fingerprint, position, caller=self._caller, now=self._now())

    def open(self, token: str, kind: str, query_fingerprint: str) -> Position:
        return self.get().open(token, kind, query_fingerprint, caller=self._caller, now=self._now())
