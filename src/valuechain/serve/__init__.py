"""Serving: online feature state, parity with the offline build (and the service on top).

* :mod:`valuechain.serve.state` — the :class:`~valuechain.serve.state.StateStore` interface
  and the in-process :class:`~valuechain.serve.state.MemoryState` (persisted to SQLite);
* :mod:`valuechain.serve.redis_state` — :class:`RedisState`, for several replicas;
* :mod:`valuechain.serve.features` — :class:`~valuechain.serve.features.OnlineFeatures`, the
  spec's features of one decision event, with the definitions of :mod:`valuechain.data.pit`;
* :mod:`valuechain.serve.rowexpr` — row expressions on one event, with DuckDB's semantics;
* :mod:`valuechain.serve.parity` — :func:`~valuechain.serve.parity.parity`, a replay compared
  with the offline build.

See docs/online-features.md.
"""
