"""Monitoring: drift, operations, matured KPIs and estimates before labels."""
