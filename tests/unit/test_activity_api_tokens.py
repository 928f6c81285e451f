"""Continuation tokens: round trip, and every way of altering or misusing one is a 400 on `continuation`."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient
from hypothesis import given
from hypothesis import strategies as st

from activities.reader import ActivityQuery
from activities.tokens import TOKEN_LIFETIME, ContinuationSigner, LazySigner, fingerprint, load_or_create_key
from core.errors import InvalidInput

pytestmark = pytest.mark.unit

KEY = b"k" * 32
POSITION = {"pk": "d79738878", "rk": "8204694400000000_abc"}
NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)
ME = "1f3c5a2e-0d41-4e0b-9a59-3c1c3b1b7e11"
AS_ME: dict[str, Any] = {"caller": ME, "now": NOW}


def _bytes(token: str) -> bytearray:
    return bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))


def _text(data: bytes | bytearray) -> str:
    return base64.urlsafe_b64encode(bytes(data)).decode().rstrip("=")


def test_round_trip_and_url_safe() -> None:
    signer = ContinuationSigner(KEY)
    token = signer.issue("activities", "q1", POSITION, **AS_ME)
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert signer.open(token, "activities", "q1", **AS_ME) == POSITION
    assert "8204694400000000" not in token  # opaque: not readable as text either
    assert b"8204694400000000" not in bytes(_bytes(token)) and b"d79738878" not in bytes(_bytes(token))


def test_every_flipped_byte_is_refused() -> None:
    signer = ContinuationSigner(KEY)
    token = signer.issue("activities", "q1", POSITION, **AS_ME)
    data = _bytes(token)
    for index in range(len(data)):
        altered = bytearray(data)
        altered[index] ^= 0x20
        with pytest.raises(InvalidInput) as caught:
            signer.open(_text(altered), "activities", "q1", **AS_ME)
        assert caught.value.field == "continuation"


@given(st.text(max_size=200))
def test_garbage_is_refused_never_crashes(garbage: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        ContinuationSigner(KEY).open(garbage, "activities", "q1", **AS_ME)
    assert caught.value.field == "continuation"


def test_another_key_kind_or_query_is_refused() -> None:
    token = ContinuationSigner(KEY).issue("activities", "q1", POSITION, **AS_ME)
    with pytest.raises(InvalidInput, match="altered or was not issued"):
        ContinuationSigner(b"z" * 32).open(token, "activities", "q1", **AS_ME)
    with pytest.raises(InvalidInput, match="another listing"):
        ContinuationSigner(KEY).open(token, "accounts", "q1", **AS_ME)
    with pytest.raises(InvalidInput, match="other filters"):
        ContinuationSigner(KEY).open(token, "activities", "q2", **AS_ME)


def test_a_token_is_bound_to_its_caller_and_expires() -> None:
    signer = ContinuationSigner(KEY)
    token = signer.issue("activities", "q1", POSITION, **AS_ME)
    assert signer.open(token, "activities", "q1", caller=ME.upper(), now=NOW + TOKEN_LIFETIME) == POSITION
    with pytest.raises(InvalidInput, match="another caller"):
        signer.open(token, "activities", "q1", caller="9d0c0c8e-6a4e-4a53-8a0e-3a4b1c2d3e4f", now=NOW)
    with pytest.raises(InvalidInput, match="expired"):
        signer.open(token, "activities", "q1", caller=ME, now=NOW + TOKEN_LIFETIME + timedelta(seconds=1))


def test_fingerprint_is_canonical() -> None:
    t = datetime(2026, 11, 20, 10, tzinfo=UTC)
    a = ActivityQuery(start=t, user="Alice@Contoso.com", action="Microsoft.Compute/VirtualMachines/Write")
    b = ActivityQuery(
        start=t.astimezone(), user=" alice@contoso.com ", action="microsoft.compute/virtualmachines/write"
    )
    assert a.fingerprint() == b.fingerprint()
    assert a.fingerprint() != ActivityQuery(start=t, user="bob@contoso.com").fingerprint()
    assert a.fingerprint() != ActivityQuery(end=t, user="alice@contoso.com").fingerprint()
    assert fingerprint("activities", {"x": None}) != fingerprint("accounts", {"x": None})


def test_inverted_range_is_refused() -> None:
    t = datetime(2026, 11, 20, 10, tzinfo=UTC)
    with pytest.raises(InvalidInput) as caught:
        ActivityQuery(start=t, end=t.replace(hour=9))
    assert caught.value.field == "from"
    ActivityQuery(start=t, end=t)  # an empty range is fine


class _KeyTable:
    """A connector table where another instance creates the key between our read and our create."""

    def __init__(self, race: bool) -> None:
        self.rows: dict[tuple[str, str], dict[str, Any]] = {}
        self.race = race
        self.url = "http://127.0.0.1/devstoreaccount1"
        self.table_name = "connector"

    def get_entity(self, pk: str, rk: str) -> dict[str, Any]:
        if (pk, rk) not in self.rows:
            raise ResourceNotFoundError("absent")
        return self.rows[(pk, rk)]

    def create_entity(self, entity: dict[str, Any]) -> None:
        key = (entity["PartitionKey"], entity["RowKey"])
        if self.race:
            self.race = False
            self.rows[key] = {**entity, "key": _text(b"w" * 32)}
        if key in self.rows:
            raise ResourceExistsError("exists")
        self.rows[key] = dict(entity)


def test_key_is_created_once_and_the_first_writer_wins() -> None:
    table = _KeyTable(race=True)
    assert load_or_create_key(cast(TableClient, table)) == b"w" * 32
    calm = _KeyTable(race=False)
    first = load_or_create_key(cast(TableClient, calm))
    assert len(first) == 32 and load_or_create_key(cast(TableClient, calm)) == first


def test_lazy_signer_reads_the_key_only_when_needed() -> None:
    made: list[int] = []

    def factory() -> ContinuationSigner:
        made.append(1)
        return ContinuationSigner(KEY)

    lazy = LazySigner(factory, caller=ME, now=lambda: NOW)
    assert made == []
    token = lazy.issue("accounts", "q", {"t": 1, "k": "a"})
    assert lazy.open(token, "accounts", "q") == {"t": 1, "k": "a"}
    assert made == [1]
