"""Candidates (baselines first), calibration and portable persistence.

Every candidate follows one small interface, :class:`Candidate`: ``fit(train, y_train, valid,
y_valid)``, ``predict(frame)`` (raw scores in ``[0, 1]``), ``save(directory)`` /
``load(directory)`` (JSON and text files, never pickle) and ``describe()``. They are chosen by
short name from :data:`CANDIDATES`:

==========  ===============================================================================
name        what it is
==========  ===============================================================================
prior       the training base rate, the same score for every row
rules       the spec's ``value.baseline_policy`` (today's rule) mapped to training rates
logistic    imputation, scaling and one-hot encoding, then logistic regression
lightgbm    LightGBM with early stopping on validation and native categorical splits
==========  ===============================================================================

Every candidate handles missing values and categorical levels unseen in training. The
decision is not part of a candidate: :func:`fit_calibrator` maps its validation scores to
probabilities, and the policy stage turns those into actions.

>>> import numpy as np
>>> import pandas as pd
>>> rng = np.random.default_rng(1)
>>> frame = pd.DataFrame({"amount": rng.exponential(100, 3000),
...                       "channel": rng.choice(["web", "pos"], 3000)})
>>> y = (rng.uniform(size=3000) < frame["amount"] / 1000).astype(int).to_numpy()
>>> features = FeatureSet.infer(frame, ["amount", "channel"])
>>> model = make_candidate("logistic", features, seed=0).fit(frame, y, frame, y)
>>> calibrator = fit_calibrator(model.predict(frame), y)
>>> probabilities = calibrator.apply(model.predict(frame))
>>> bool(0 < probabilities.min() <= probabilities.max() < 1)
True

Scoring needs only what a candidate saved: ``load_candidate(directory)`` picks the class from
``candidate.json``.

A model of your own joins them through :func:`as_candidate`: any scikit-learn compatible
classifier (a ``Pipeline``, an ``LGBMClassifier``) becomes a candidate under a name you
choose, fitted on the training rows and scored with ``predict_proba`` (see
:mod:`valuechain.models.sklearn`; it is saved with skops, or with joblib and a
``NotPortableWarning`` when skops cannot round-trip it).
"""

from __future__ import annotations

from valuechain.models.base import (
    CANDIDATES,
    Candidate,
    FeatureSet,
    make_candidate,
    register_candidate,
)
from valuechain.models.baselines import Prior, Rules
from valuechain.models.calibration import Calibrator, fit_calibrator
from valuechain.models.gbm import LightGBM
from valuechain.models.logistic import Logistic
from valuechain.models.persist import load_candidate
from valuechain.models.sklearn import EstimatorCandidate, NotPortableWarning, as_candidate

__all__ = [
    "CANDIDATES",
    "Calibrator",
    "Candidate",
    "EstimatorCandidate",
    "FeatureSet",
    "LightGBM",
    "Logistic",
    "NotPortableWarning",
    "Prior",
    "Rules",
    "as_candidate",
    "fit_calibrator",
    "load_candidate",
    "make_candidate",
    "register_candidate",
]
