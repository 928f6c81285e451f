"""The activities and accounts API: search what was stored."""
