"""The connector record and the subscription records: one owner, used by the connector API and ingestion alike."""
