"""Forecasts of customer behaviour: aggregate counts a finance team can plan with.

- :mod:`valuechain.forecast.project`: ``valuechain forecast`` — churners per period three
  ways (:func:`forecast_project`), backtested on rolling origins;
- :mod:`valuechain.forecast.poisson_binomial`: the exact distribution and interval of a sum
  of independent Bernoulli variables;
- :mod:`valuechain.forecast.individual`: the sum of calibrated probabilities at an origin;
- :mod:`valuechain.forecast.series`: seasonal naive, ETS and ARIMA baselines;
- :mod:`valuechain.forecast.backtest`: rolling-origin backtests and their errors;
- :mod:`valuechain.forecast.bgnbd`: the BG/NBD model of Fader, Hardie & Lee (2005) for
  non-contractual repeat purchases, with the RFM summary it is fitted on;
- :mod:`valuechain.forecast.purchases`: repeat purchases per week and the BG/NBD forecaster.

See ``docs/forecast.md``. :func:`forecast_project` and :class:`ForecastResult` are imported
lazily (they pull in the frame builder and the models).
"""

from __future__ import annotations

from typing import Any

__all__ = ["ForecastResult", "forecast_project"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from valuechain.forecast import project

        return getattr(project, name)
    raise AttributeError(f"module 'valuechain.forecast' has no attribute {name!r}")
