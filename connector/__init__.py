"""The connect handshake, the connector's state and its HTTP API."""
