"""Stored activities and accounts: the Table layout (`layout`), the writer the pull uses, the reader the API uses."""
