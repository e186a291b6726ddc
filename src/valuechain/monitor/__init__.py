"""Monitoring: drift, operations, matured KPIs, estimates before labels, alerts."""
