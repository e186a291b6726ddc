"""Load ``valuechain.yaml`` into a :class:`~valuechain.spec.models.Spec`.

Errors name the file, the line, the field, what was expected and the fix:

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "valuechain.yaml"
>>> _ = path.write_text("project: {name: x}\\ndecision: 3\\n")
>>> try:
...     load_spec(path)
... except SpecError as err:
...     print(str(err).splitlines()[0])
valuechain.yaml has 5 problems:
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from valuechain.errors import SpecError
from valuechain.spec.models import AggregateFeature, LookupFeature, Spec

__all__ = ["LoadedSpec", "load_spec", "spec_from_dict"]

_FIXES = {
    "missing": "add the field",
    "extra_forbidden": "remove it or check its spelling against `valuechain schema`",
    "literal_error": "use one of the allowed values",
}


@dataclass(frozen=True)
class LoadedSpec:
    """A validated spec, where it came from and its content hash."""

    spec: Spec
    path: Path
    lines: dict[tuple[str | int, ...], int]

    @property
    def root(self) -> Path:
        """Directory relative paths in the spec are resolved against."""
        return self.path.parent

    @property
    def workspace(self) -> Path:
        ws = self.spec.project.workspace
        return (self.root / ws) if ws else self.root / ".valuechain"

    @property
    def hash(self) -> str:
        """The spec's content hash; fields left at their defaults are not part of it, so a
        later version adding an optional field does not change every spec's hash."""
        payload = json.dumps(self.spec.model_dump(mode="json", exclude_defaults=True),
                             sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def line_of(self, *loc: str | int) -> int | None:
        """Line of the deepest known prefix of ``loc``."""
        for end in range(len(loc), -1, -1):
            if loc[:end] in self.lines:
                return self.lines[loc[:end]]
        return None

    def where(self, *loc: str | int) -> str:
        line = self.line_of(*loc)
        field = ".".join(str(p) for p in loc)
        return f"{self.path.name}{f', line {line}' if line else ''}, field `{field}`"


class _LineLoader(yaml.SafeLoader):
    """A safe loader with YAML 1.2 booleans (only true/false: `on:` stays a key)."""


_LineLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
for _first in "tTfF":
    _LineLoader.yaml_implicit_resolvers.setdefault(_first, []).insert(0, (
        "tag:yaml.org,2002:bool",
        re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    ))


def _compose_lines(
    node: yaml.Node, path: tuple[str | int, ...], out: dict[Any, int], file: str = "spec"
) -> None:
    """Record the line of every field; refuse a key written twice in one mapping.

    YAML itself lets the last of two equal keys win silently, which hides edits.
    """
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            line = key_node.start_mark.line + 1
            if isinstance(key, str) and key != "<<" and key in seen:
                field = ".".join(str(p) for p in (*path, key))
                raise SpecError(
                    f"{file}, lines {seen[key]} and {line}, field `{field}`: the key '{key}' is "
                    "written twice in the same mapping (YAML would silently keep the last). "
                    "Keep one of them."
                )
            if isinstance(key, str):
                seen[key] = line
            out[(*path, key)] = line
            _compose_lines(value_node, (*path, key), out, file)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            out[(*path, index)] = item.start_mark.line + 1
            _compose_lines(item, (*path, index), out, file)


def _read_yaml(path: Path) -> tuple[Any, dict[tuple[str | int, ...], int]]:
    if not path.exists():
        raise SpecError(
            f"{path}: no such spec file. Create it (see docs/spec.md) or point `spec` at the "
            "right file (or at the directory holding valuechain.yaml)."
        )
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise SpecError(
            f"{path}: not UTF-8 text (byte {err.start}: {err.reason}). Save the spec as UTF-8."
        ) from None
    except OSError as err:
        raise SpecError(
            f"{path}: cannot read the spec file ({err.strerror or err}). Check that it is a "
            "readable file, or point `spec` at another one."
        ) from err
    try:
        node = yaml.compose(text, Loader=_LineLoader)
        data = yaml.load(text, Loader=_LineLoader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err)
        raise SpecError(
            f"{path.name}{where}: not valid YAML ({problem}). Fix the indentation or quoting "
            "there."
        ) from None
    lines: dict[tuple[str | int, ...], int] = {}
    if node is not None:
        _compose_lines(node, (), lines, path.name)
    return data, lines


def _format_validation(err: ValidationError, loaded: LoadedSpec) -> str:
    problems = []
    for item in err.errors():
        loc = tuple(p for p in item["loc"] if not (isinstance(p, str) and p in _TAGS))
        got = item.get("input")
        got_text = "" if item["type"] == "missing" else f"; got {got!r}"[:120]
        msg = item["msg"].removeprefix("Value error, ")
        fix = _FIXES.get(item["type"], "correct the value")
        problems.append(f"- {loaded.where(*loc)}: {msg}{got_text}. Fix: {fix}.")
    head = f"{loaded.path.name} has {len(problems)} problem{'s' if len(problems) > 1 else ''}:"
    return "\n".join([head, *problems])


_TAGS = {"row", "aggregate", "lookup", "events", "schedule"}


def spec_from_dict(
    data: Any, path: Path, lines: dict[tuple[str | int, ...], int] | None = None
) -> LoadedSpec:
    """Validate a mapping as a spec; ``path`` names it in errors and anchors relative paths."""
    placeholder = LoadedSpec(spec=None, path=path, lines=lines or {})  # type: ignore[arg-type]
    if not isinstance(data, dict):
        raise SpecError(
            f"{path.name}: expected a mapping of fields (project, decision, sources, ...), got "
            f"{type(data).__name__}. Start from examples/fraud/valuechain.yaml."
        )
    try:
        spec = Spec.model_validate(data)
    except ValidationError as err:
        raise SpecError(_format_validation(err, placeholder)) from None
    loaded = LoadedSpec(spec=spec, path=path, lines=lines or {})
    _check_references(loaded)
    return loaded


def load_spec(path: str | Path) -> LoadedSpec:
    """Read and validate a spec file; raise :class:`SpecError` naming file, line and fix."""
    path = Path(path)
    if path.is_dir():
        path = path / "valuechain.yaml"
    data, lines = _read_yaml(path)
    return spec_from_dict(data, path.resolve(), lines)


def _check_references(loaded: LoadedSpec) -> None:
    """Cross-field rules: names resolve, roles fit their use."""
    spec, problems = loaded.spec, []
    names = sorted(spec.sources)

    def source(name: str, *loc: str | int) -> bool:
        if name not in spec.sources:
            problems.append(
                f"- {loaded.where(*loc)}: unknown source '{name}'. Expected one of {names}; "
                "declare it under `sources` or fix the name."
            )
            return False
        return True

    event_source = spec.event_source
    if event_source is not None:
        if source(event_source, "decision_points", "source"):
            src = spec.sources[event_source]
            if src.role != "events":
                problems.append(
                    f"- {loaded.where('decision_points', 'source')}: decision points come from "
                    f"'{event_source}', whose role is '{src.role}'. Expected an `events` source."
                )
            if src.event_time is None:
                problems.append(
                    f"- {loaded.where('sources', event_source)}: the decision source needs "
                    "`event_time` (the decision time of each row). Add it."
                )
            if src.available_at is not None:
                problems.append(
                    f"- {loaded.where('sources', event_source, 'available_at')}: the decision "
                    "source's rows are the decisions, known at their `event_time`; a later "
                    "`available_at` cannot apply. Remove it (declare late facts in their own "
                    "source)."
                )
            if not src.keys:
                problems.append(
                    f"- {loaded.where('sources', event_source)}: the decision source needs `keys` "
                    "(the columns that identify a decision). Add them."
                )
    else:
        sched = spec.decision_points.schedule  # type: ignore[union-attr]
        source(sched.population, "decision_points", "schedule", "population")

    label = spec.label
    if label.source is not None and source(label.source, "label", "source"):
        role = spec.sources[label.source].role
        if role != "outcome":
            problems.append(
                f"- {loaded.where('label', 'source')}: label source '{label.source}' has role "
                f"'{role}'. Expected role `outcome`; set `role: outcome` on that source."
            )
    if label.source is None and event_source is None:
        problems.append(
            f"- {loaded.where('label')}: a label `column` needs event decision points. With a "
            "schedule, give the label an outcome `source`."
        )

    seen: dict[str, int] = {}
    for index, feature in enumerate(spec.features):
        if feature.name in seen:
            problems.append(
                f"- {loaded.where('features', index, 'name')}: feature name '{feature.name}' is "
                f"also used by feature #{seen[feature.name]}. Give each feature its own name."
            )
        seen[feature.name] = index
        if feature.name == label.name:
            problems.append(
                f"- {loaded.where('features', index, 'name')}: '{feature.name}' is the label's "
                "name. Rename the feature (or set `label.name`)."
            )
        ref: str | None = None
        loc: tuple[str | int, ...] = ("features", index)
        if isinstance(feature, AggregateFeature):
            ref = feature.source or event_source
            loc = ("features", index, "source")
            if feature.outcome_derived and ref != event_source:
                problems.append(
                    f"- {loaded.where(*loc)}: feature '{feature.name}' aggregates `label`, which "
                    "exists only for rows of the decision source. Drop `source` or `of: label`."
                )
            if ref is None:
                problems.append(
                    f"- {loaded.where('features', index)}: feature '{feature.name}' needs "
                    "`source` when decision points come from a schedule."
                )
        elif isinstance(feature, LookupFeature):
            ref = feature.lookup.source
            loc = ("features", index, "lookup", "source")
        if ref is not None and source(ref, *loc):
            role = spec.sources[ref].role
            if role in ("post_outcome", "outcome"):
                problems.append(
                    f"- {loaded.where(*loc)}: feature '{feature.name}' reads source '{ref}', "
                    f"whose role is '{role}'. {role} data is not known at decision time; use "
                    "`of: label` on the decision source for outcome-derived features, or drop it."
                )
    if problems:
        head = f"{loaded.path.name} has {len(problems)} problem{'s' if len(problems) > 1 else ''}:"
        raise SpecError("\n".join([head, *problems]))
