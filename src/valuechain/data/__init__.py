"""Sources, labels, features and point-in-time semantics."""
