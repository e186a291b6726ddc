"""Monitoring: drift, operations, matured KPIs, estimates, alerts, retraining."""
