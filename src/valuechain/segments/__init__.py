"""Behavioural segments that hold up: tendency first, k by stability, stability over time,
and a meaning per segment (docs/segments.md).

>>> from valuechain.segments import hopkins_from_distances
>>> round(hopkins_from_distances([1.0], [1.0], d=3).h, 2)
0.5
"""

from valuechain.segments.cluster import (
    Hopkins,
    KStability,
    TimeStability,
    choose_k,
    cluster_jaccard,
    hopkins,
    hopkins_from_distances,
    jaccard_stability,
    match_segments,
    prediction_strength,
    stability_by_k,
)
from valuechain.segments.frame import PointFrame, features_at
from valuechain.segments.project import Band, SegmentProfile, SegmentResult, segment_project

__all__ = [
    "Band",
    "Hopkins",
    "KStability",
    "PointFrame",
    "SegmentProfile",
    "SegmentResult",
    "TimeStability",
    "choose_k",
    "cluster_jaccard",
    "features_at",
    "hopkins",
    "hopkins_from_distances",
    "jaccard_stability",
    "match_segments",
    "prediction_strength",
    "segment_project",
    "stability_by_k",
]
