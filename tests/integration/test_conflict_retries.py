"""The ledger loops' shared transaction step against real Azurite: a lost race, a give-up, an invalid batch."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from azure.data.tables import TableClient, TableServiceClient, TableTransactionError

from core import storage as storage_module
from core.storage import MAX_CONFLICT_RETRIES, ConflictRetries, create_or_replace_if_unchanged

pytestmark = pytest.mark.integration

PK = "p"


class Contention(Exception):
    pass


@pytest.fixture
def table(storage_connection_string: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[TableClient]:
    monkeypatch.setattr(storage_module, "_pause", lambda _: None)  # the pauses, not the retries
    service = TableServiceClient.from_connection_string(storage_connection_string)
    client = service.create_table("t" + uuid.uuid4().hex[:12])
    try:
        yield client
    finally:
        service.delete_table(client.table_name)


def summary(count: int) -> dict[str, Any]:
    return {"PartitionKey": PK, "RowKey": "summary", "count": count}


def test_a_create_and_a_conditional_replace_commit_and_a_stale_one_loses(table: TableClient) -> None:
    retries = ConflictRetries("partition p", Contention)
    assert retries.submit(table, [create_or_replace_if_unchanged(summary(1), None)])
    read = table.get_entity(PK, "summary")
    assert retries.submit(table, [("create", {"PartitionKey": PK, "RowKey": "a"}),
                                  create_or_replace_if_unchanged(summary(2), read)])  # fmt: skip
    assert table.get_entity(PK, "summary")["count"] == 2 and retries.conflicts == 0

    # Written over since `read`, and created by someone else since "none was read": both lose, nothing is written.
    assert not retries.submit(table, [("create", {"PartitionKey": PK, "RowKey": "b"}),
                                      create_or_replace_if_unchanged(summary(3), read)])  # fmt: skip
    assert not retries.submit(table, [create_or_replace_if_unchanged(summary(4), None)])
    assert retries.conflicts == 2
    assert table.get_entity(PK, "summary")["count"] == 2
    assert sorted(row["RowKey"] for row in table.list_entities()) == ["a", "summary"]


def test_a_partition_that_keeps_changing_raises_the_contention_error(table: TableClient) -> None:
    table.create_entity(summary(1))
    retries = ConflictRetries("partition p", Contention)
    outcomes = []
    with pytest.raises(Contention, match="partition p kept changing") as raised:
        while True:
            outcomes.append(retries.submit(table, [create_or_replace_if_unchanged(summary(2), None)]))
    assert outcomes == [False] * MAX_CONFLICT_RETRIES
    assert isinstance(raised.value.__cause__, TableTransactionError)


def test_an_invalid_transaction_is_raised_at_once(table: TableClient) -> None:
    retries = ConflictRetries("partition p", Contention)
    twice = [("create", {"PartitionKey": PK, "RowKey": "a"}), ("create", {"PartitionKey": PK, "RowKey": "a"})]
    with pytest.raises(TableTransactionError):
        retries.submit(table, twice)
    assert retries.conflicts == 0
