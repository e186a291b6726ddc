"""``valuechain check``: does the data match the spec, and is the project ready?

Each data check is independent and reports pass/fail with a message, so one bad source does
not hide the others. Results are data; the CLI renders them and sets the exit code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from valuechain.data.engines.resolve import awareness, resolve
from valuechain.data.plan import Plan, make_plan
from valuechain.data.sources import Catalog
from valuechain.errors import ValuechainError
from valuechain.spec.loader import LoadedSpec
from valuechain.spec.readiness import ChecklistItem, readiness
from valuechain.sql import quote_ident

__all__ = ["CheckReport", "DataCheck", "check_project"]


@dataclass(frozen=True)
class DataCheck:
    name: str
    passed: bool
    message: str


@dataclass(frozen=True)
class CheckReport:
    spec: str
    data_checks: list[DataCheck] = field(default_factory=list)
    checklist: list[ChecklistItem] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.data_checks) and all(c.passed for c in self.checklist)

    def to_json(self) -> dict[str, Any]:
        return {
            "spec": self.spec,
            "passed": self.passed,
            "data_checks": [c.__dict__ for c in self.data_checks],
            "checklist": [c.__dict__ for c in self.checklist],
        }


def _run(name: str, fn: Callable[[], str]) -> DataCheck:
    try:
        return DataCheck(name, True, fn())
    except ValuechainError as err:
        return DataCheck(name, False, str(err))


def check_project(loaded: LoadedSpec) -> CheckReport:
    """Validate the spec against its data and evaluate the readiness checklist."""
    spec = loaded.spec
    try:
        plan: Plan | None = make_plan(loaded)
        plan_error = ""
    except ValuechainError as err:
        plan, plan_error = None, str(err)
    catalog = Catalog(plan or loaded, open_all=False)
    checks: list[DataCheck] = []

    def readable(name: str) -> Callable[[], str]:
        def fn() -> str:
            catalog.open(name)
            src = spec.sources[name]
            for fld in ("event_time", "available_at", "valid_from"):
                column = getattr(src, fld)
                if column:
                    catalog.time_us(name, column, "sources", name, fld)
            for key in src.keys:
                catalog.require_column(name, key, "sources", name, "keys")
            rows = catalog.scalar(f"SELECT count(*) FROM {catalog.view(name)}")
            note = ""
            if not src.keys:  # nothing tells repeated lines apart: say how many there are
                same = rows - catalog.scalar(
                    f"SELECT count(*) FROM (SELECT DISTINCT * FROM {catalog.view(name)})")
                if same:
                    note = (f"; {same:,} rows repeat another row exactly (no `keys` tell them "
                            "apart; each counts in the features)")
            return (f"{rows:,} rows, {len(catalog.columns(name))} columns; declared columns "
                    f"exist{note}")
        return fn

    def engine() -> str:
        from valuechain.data.build import select_engine

        chosen = select_engine(loaded)
        options = {k: v for k, v in chosen.config.model_dump().items() if k != "type"}
        return f"'{chosen.name}' with {options or 'its defaults'}"

    for name in spec.sources:
        checks.append(_run(f"source '{name}'", readable(name)))
    if not all(c.passed for c in checks):
        return CheckReport(str(loaded.path), checks, readiness(spec))

    def times() -> str:
        aware, _ = awareness(catalog)
        return f"all time columns are {'time-zone aware' if aware else 'naive'}"

    checks.append(_run("time columns", times))

    def label_join() -> str:
        lab, own = spec.label, spec.event_source
        if lab.source is None or own is None:
            return "label read from the decision rows" if lab.source is None else "schedule"
        pairs = list((lab.keys or {}).items()) or [
            (k, k) for k in spec.sources[own].keys if k in catalog.columns(lab.source)]
        cond = " AND ".join(f"d.{quote_ident(a)} = o.{quote_ident(b)}" for a, b in pairs)
        total, matched = catalog.con.execute(
            f"SELECT count(*), count(*) FILTER (WHERE EXISTS (SELECT 1 FROM "
            f"{catalog.view(own)} d WHERE {cond})) FROM {catalog.view(lab.source)} o"
        ).fetchone() or (0, 0)
        if total and not matched:
            raise ValuechainError(
                f"{loaded.where('label', 'keys')}: none of the {total:,} outcome rows of "
                f"'{lab.source}' matches a decision on {pairs}. Fix `label.keys`."
            )
        return f"{matched:,} of {total:,} outcome rows join a decision on {pairs}"

    checks.append(_run("label joins", label_join))

    def features() -> str:
        if plan is None:
            raise ValuechainError(plan_error)
        resolved = resolve(plan, catalog)
        delay = ""
        if resolved.label_delay_basis != "none" and plan.label.source is not None:
            days = resolved.label_delay_us / 86_400_000_000
            delay = (f"; outcome delay {days:.4g} days ({resolved.label_delay_basis}"
                     + (f": the largest available_at - event_time of '{plan.label.source}'; "
                        f"declare `sources.{plan.label.source}.reporting_delay` to fix it"
                        if resolved.label_delay_basis == "inferred" else "")
                     + "): a label is final at t + horizon + delay")
        return (f"{len(spec.features)} features resolve over "
                f"{resolved.problem.points.num_rows:,} decision points{delay}")

    if all(c.passed for c in checks):
        checks.append(_run("features", features))
    checks.append(_run("engine", engine))
    return CheckReport(str(loaded.path), checks, readiness(spec))
