"""The browser portal: its static files and their serving (no data, no token needed)."""
