"""The decision service: online features, the decision log, the HTTP API."""
