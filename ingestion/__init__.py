"""Fan-out, pull, normalization and storage of Azure activities."""
