"""Synthetic demo worlds with planted leaks and drift: fraud (:mod:`valuechain.demo.fraud`) and churn
(:mod:`valuechain.demo.churn`); what they share is in :mod:`valuechain.demo.tables`."""
