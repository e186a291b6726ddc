"""Forecasts of customer behaviour: aggregate counts a finance team can plan with.

:mod:`valuechain.forecast.bgnbd` holds the BG/NBD model of Fader, Hardie & Lee (2005) for
non-contractual repeat purchases (how many transactions a cohort will make, which customers
are still "alive"), with the RFM summary it is fitted on. See ``docs/forecast.md``.
"""
