"""Monitoring the deployed decision: drift, operations, matured KPIs, estimates, alerts."""
