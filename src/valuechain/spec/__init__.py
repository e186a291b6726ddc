"""The decision spec: models, loading with file/line errors."""

from valuechain.spec.loader import LoadedSpec, load_spec, spec_from_dict
from valuechain.spec.models import Spec

__all__ = ["LoadedSpec", "Spec", "load_spec", "spec_from_dict"]
