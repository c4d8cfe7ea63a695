"""One module per Cloud Function: ``submit`` (HTTP) and ``worker`` (Pub/Sub)."""
