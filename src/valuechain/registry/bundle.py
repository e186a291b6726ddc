"""Load a bundle, checksums first, and score with it exactly as the run scored offline.

:func:`load_bundle` refuses a bundle whose files differ from ``checksums.json`` in any way (a
changed byte, a missing file, an extra file) with an
:class:`~valuechain.errors.ArtifactError` naming the file and ``valuechain package``, before
reading any of them. The :class:`Bundle` it returns scores with the persisted candidate and
calibrator: :meth:`Bundle.score` is the calibrated probability, bit for bit the run's
``score_<candidate>`` for the same feature rows; :meth:`Bundle.contributions` explains it
per feature (LightGBM's own ``pred_contrib``; for logistic regression, each coefficient times
the standardised input, summed over the inputs a feature makes).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
import pandas as pd

from valuechain.artifacts import open_artifact
from valuechain.errors import ArtifactError
from valuechain.models import Calibrator, Candidate, LightGBM, Logistic, load_candidate
from valuechain.models.persist import read_manifest
from valuechain.policy import Policy, load_policy
from valuechain.registry.fast import RowScorer
from valuechain.registry.layout import (
    BUNDLE_JSON,
    CALIBRATOR,
    CHECKSUMS,
    FORMAT_VERSION,
    MODEL_DIR,
    POLICY,
    SPEC_FILE,
    file_checksums,
)
from valuechain.spec.durations import to_micros
from valuechain.spec.loader import LoadedSpec, load_spec
from valuechain.train.context import spec_capacity

if TYPE_CHECKING:
    from valuechain.data.plan import Plan

__all__ = ["Bundle", "Features", "load_bundle", "verify_bundle"]

#: Feature rows: a DataFrame, one mapping of feature values, or a sequence of them.
Features: TypeAlias = pd.DataFrame | Mapping[str, Any] | Sequence[Mapping[str, Any]]

REBUILD_COMMAND = "valuechain package --spec DIR"
REBUILD = ("Bundles are immutable: do not edit them. Run `valuechain package --spec DIR` "
           "(DIR: the project folder) to package the run again as a new version")


def _read_checksums(folder: Path) -> dict[str, str]:
    path = folder / CHECKSUMS
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ArtifactError(f"{path} is missing: {folder} is not a complete bundle. "
                            f"{REBUILD}.") from None
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise ArtifactError(f"{path} cannot be read ({err}): the bundle is damaged. "
                            f"{REBUILD}.") from None
    files = data.get("files") if isinstance(data, dict) else None
    if data.get("algorithm") != "sha256" or not isinstance(files, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
        raise ArtifactError(f"{path}: expected {{\"algorithm\": \"sha256\", \"files\": "
                            f"{{path: digest}}}}: the bundle is damaged. {REBUILD}.")
    return dict(files)


def verify_bundle(path: Path) -> dict[str, str]:
    """Check every file of the bundle at ``path`` against ``checksums.json``.

    Returns
    -------
    dict
        The verified ``path -> sha256`` mapping.

    Raises
    ------
    ArtifactError
        Naming each changed, missing or extra file and ``valuechain package``.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise ArtifactError(f"{folder}: no bundle folder there. List the versions with "
                            "`valuechain registry --spec DIR`, or package one with "
                            "`valuechain package --spec DIR`.")
    expected = _read_checksums(folder)
    actual = file_checksums(folder)
    changed = sorted(k for k in expected if k in actual and actual[k] != expected[k])
    missing = sorted(set(expected) - set(actual))
    extra = sorted(set(actual) - set(expected))
    problems = [f"{what}: {', '.join(names)}" for what, names in (
        ("changed (checksum differs)", changed), ("missing", missing),
        ("not in checksums.json (added)", extra)) if names]
    if problems:
        raise ArtifactError(f"bundle {folder} does not match its {CHECKSUMS}: "
                            f"{'; '.join(problems)}. It was edited, damaged or cut short and "
                            f"will not be loaded. {REBUILD}.")
    return expected


def _read_json(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = open_artifact(path, "json", rebuild=REBUILD_COMMAND,
                                         what="this bundle file", expect=dict)
    return data


@dataclass(frozen=True)
class Bundle:
    """A verified bundle: the model, its calibration, the policy and the spec they came from.

    Attributes
    ----------
    version : str
        ``v1``, ``v2``, ... (the registry's number for this content).
    path : Path
        The bundle folder.
    feature_names : tuple of str
        Model input columns, in order (numeric, then categorical).
    policy : Policy
        The decided policy (``ThreeBand``, ``Threshold`` or ``TopN``).
    capacity : tuple or None
        ``(action, limit, per_us, overflow)`` of the spec's ``value.capacity``.
    content_hash, run_id, candidate : str
        What the bundle holds: its content hash, the training run and the chosen candidate.
    manifest : dict
        ``bundle.json``.
    model, calibrator
        The chosen candidate (loaded from ``model/``) and its calibration map.
    scorer : RowScorer
        Scores feature mappings without pandas (used by :meth:`score` for mappings).
    """

    version: str
    path: Path
    feature_names: tuple[str, ...]
    policy: Policy
    capacity: tuple[str, int, int, str] | None
    content_hash: str
    run_id: str
    candidate: str
    manifest: dict[str, Any] = field(repr=False, compare=False)
    model: Candidate = field(repr=False, compare=False)
    calibrator: Calibrator = field(repr=False, compare=False)
    _spec: LoadedSpec = field(repr=False, compare=False)
    scorer: RowScorer = field(repr=False, compare=False)

    # ---------------------------------------------------------------- spec and plan
    def spec(self, project: Path | str) -> LoadedSpec:
        """The bundle's spec copy, its relative paths (sources, workspace) under ``project``.

        ``project`` is the project folder, or its ``valuechain.yaml``.
        """
        path = Path(project)
        path = path if path.suffix in (".yaml", ".yml") else path / "valuechain.yaml"
        return replace(self._spec, path=path.resolve())

    def plan(self, project: Path | str) -> Plan:
        """The build plan of the bundle's spec, sources resolved under ``project``."""
        from valuechain.data.plan import make_plan

        return make_plan(self.spec(project))

    # ---------------------------------------------------------------- scoring
    def raw_score(self, features: Features) -> np.ndarray:
        """The candidate's raw (uncalibrated) score per row."""
        if isinstance(features, pd.DataFrame):
            return np.asarray(self.model.predict(features), dtype=np.float64)
        return self.scorer.raw(_rows(features))

    def score(self, features: Features) -> np.ndarray:
        """Calibrated probability per row: bit for bit the run's offline calibrated score.

        Parameters
        ----------
        features : DataFrame, mapping, or sequence of mappings
            At least :attr:`feature_names` (other columns or keys are ignored). A DataFrame
            is scored by the candidate itself (the offline code path); one mapping of feature
            values (what the online feature path computes for one decision) or a list of them
            is scored by :class:`~valuechain.registry.fast.RowScorer` without pandas, bit for
            bit like a DataFrame of the same rows, in microseconds rather than milliseconds.

        Returns
        -------
        ndarray
            One float64 probability per row (shape ``(1,)`` for one mapping).
        """
        return np.asarray(self.calibrator.apply(self.raw_score(features)), dtype=np.float64)

    def contributions(self, features: Features) -> np.ndarray:
        """Per-feature contributions to the raw score's log-odds, shape ``(n, n_features)``.

        LightGBM: ``pred_contrib`` without its bias column (SHAP values of the trees);
        logistic regression: coefficient times the standardised (imputed) value, summed over
        the inputs of each feature (a missing indicator, the one-hot levels). Row sums plus
        :meth:`bias` are the candidate's log-odds. Candidates without a native explanation
        (baselines, your own estimators) give zeros.
        """
        rows = features if isinstance(features, pd.DataFrame) else _rows(features)
        values = self.scorer.contributions(rows)
        if values is None:
            return np.zeros((len(rows), len(self.feature_names)), dtype=np.float64)
        return values[:, :-1] if isinstance(self.model, LightGBM) else values

    def bias(self, features: Features) -> np.ndarray:
        """The log-odds no feature explains (LightGBM's expected value, the intercept)."""
        model = self.model
        rows = features if isinstance(features, pd.DataFrame) else _rows(features)
        if isinstance(model, LightGBM) and model.booster is not None:
            values = self.scorer.contributions(rows)
            assert values is not None
            return values[:, -1]
        if isinstance(model, Logistic) and model.state is not None:
            return np.full(len(rows), float(model.state["intercept"]))
        return np.zeros(len(rows), dtype=np.float64)

    def reasons(self, features: Features, top: int = 3) -> list[list[tuple[str, float]]]:
        """The ``top`` features pushing each row's score up most: ``(name, contribution)``.

        Features with a contribution of zero or below are left out.
        """
        values = self.contributions(features)
        out = []
        for row in values:
            order = np.argsort(-row, kind="stable")[:top]
            out.append([(self.feature_names[j], float(row[j])) for j in order if row[j] > 0])
        return out


def _rows(features: Mapping[str, Any] | Sequence[Mapping[str, Any]]
          ) -> Sequence[Mapping[str, Any]]:
    return [features] if isinstance(features, Mapping) else features


def load_bundle(path: Path | str) -> Bundle:
    """Verify every checksum of the bundle at ``path``, then load it.

    Raises
    ------
    ArtifactError
        When a file changed, is missing or was added (naming it and ``valuechain package``),
        or the bundle's own files cannot be read.

    Examples
    --------
    >>> load_bundle("no/such/bundle")
    Traceback (most recent call last):
    ...
    valuechain.errors.ArtifactError: no/such/bundle: no bundle folder there. ...
    """
    folder = Path(path)
    verify_bundle(folder)
    manifest = _read_json(folder / BUNDLE_JSON)
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(f"{folder / BUNDLE_JSON}: format_version "
                            f"{manifest.get('format_version')!r}; this valuechain reads "
                            f"{FORMAT_VERSION}. {REBUILD}.")
    model = load_candidate(folder / MODEL_DIR)
    calibrator = Calibrator.from_dict(_read_json(folder / CALIBRATOR))
    policy = load_policy(folder / POLICY)
    loaded = load_spec(folder / SPEC_FILE)
    found = spec_capacity(loaded)
    capacity = None
    if found is not None:
        action, cap = found
        capacity = (action, int(cap.limit), to_micros(cap.per),
                    str(cap.overflow))
    features = tuple(str(c) for c in manifest.get("feature_names", ()))
    inputs, _ = read_manifest(folder / MODEL_DIR)
    if inputs.columns != features:
        raise ArtifactError(f"{folder / BUNDLE_JSON}: feature_names {list(features)} are not "
                            f"the model's inputs {list(inputs.columns)}. {REBUILD}.")
    return Bundle(version=str(manifest.get("version")), path=folder, feature_names=features,
                  policy=policy, capacity=capacity,
                  content_hash=str(manifest.get("content_hash")),
                  run_id=str(manifest.get("run_id")), candidate=str(manifest.get("candidate")),
                  manifest=manifest, model=model, calibrator=calibrator, _spec=loaded,
                  scorer=RowScorer(model, calibrator, features, inputs.numeric))
