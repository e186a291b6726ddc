"""Synthetic demo worlds with planted fraud, leaks and drift (see :mod:`valuechain.demo.fraud`)."""
