"""Label maturity respects the outcome's availability (issue 9): properties against the
definitions of valuechain.data.pit, on generated worlds with ties, out-of-order rows, null
times and time zones, for the reference and the DuckDB engine."""

from __future__ import annotations

import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from valuechain.data.build import finish_frame
from valuechain.data.engines import get_engine
from valuechain.data.pit import is_mature, label_delay
from valuechain.data.plan import EventPointsPlan, LabelRule, Plan
from valuechain.testing import HOUR, _ts, _World

ENGINES = {"reference": lambda: get_engine("reference"),
           "duckdb": lambda: get_engine({"type": "duckdb", "threads": 1})}
ORIGIN = 1_743_289_200 - 10 * 3600  # the night Europe/Paris springs forward


def _world(data: Any, folder: Path, *, declared: bool, cut: bool = False
           ) -> tuple[Plan, dict[str, Any]]:
    zone = data.draw(st.sampled_from([None, "UTC", "Europe/Paris"]), label="zone")
    world = _World(folder, zone, ORIGIN)
    n = data.draw(st.integers(1, 12), label="decisions")
    hours = data.draw(st.lists(st.integers(0, 30), min_size=n, max_size=n), label="t (h)")
    keys = data.draw(st.lists(st.sampled_from([1, 2, 3, None]), min_size=n, max_size=n))
    order = data.draw(st.permutations(list(range(n))), label="row order")  # out of order
    tx = {"id": [i + 1 for i in order], "ts": [ORIGIN + hours[i] * 3600 for i in order],
          "k": [keys[i] for i in order], "y": [0] * n}
    m = data.draw(st.integers(0, 10), label="outcomes")
    e = data.draw(st.lists(st.one_of(st.none(), st.integers(-2, 40)), min_size=m, max_size=m))
    gap = data.draw(st.lists(st.one_of(st.none(), st.sampled_from([0, 0, 1, 5, 12, 30])),
                             min_size=m, max_size=m), label="gap (h)")
    out_keys = data.draw(st.lists(st.sampled_from([1, 2, 3]), min_size=m, max_size=m))
    ev = [None if h is None else ORIGIN + h * 3600 for h in e]
    av = [None if (h is None and g is None) else
          (ev[i] if g is None else (ORIGIN + 3600 * (e[i] or 0) + g * 3600))
          for i, (h, g) in enumerate(zip(e, gap, strict=True))]
    av = [None if g is None and data.draw(st.booleans()) else a
          for a, g in zip(av, gap, strict=True)]  # some availability times are null
    as_of_h = data.draw(st.integers(0, 80), label="as_of (h)")
    as_of = ORIGIN + as_of_h * 3600
    gaps = [a - x for x, a in zip(ev, av, strict=True) if x is not None and a is not None]
    truth_delay = max([0, *gaps]) * 1_000_000
    rows = list(range(m))
    if cut:  # the extraction taken at as_of: only what was known (and happened) by then
        rows = [i for i in rows if av[i] is not None and av[i] <= as_of]
        keep = [i for i in range(n) if tx["ts"][i] <= as_of]
        tx = {c: [v[i] for i in keep] for c, v in tx.items()}
    world.write("tx", pa.table({
        "id": pa.array(tx["id"], pa.int64()), "ts": _ts(tx["ts"], zone),
        "k": pa.array(tx["k"], pa.int64()), "y": pa.array(tx["y"], pa.int64())}),
        keys=("id",), event_time="ts")
    world.write("outcomes", pa.table({
        "oid": pa.array(rows, pa.int64()), "k": pa.array([out_keys[i] for i in rows], pa.int64()),
        "e": _ts([ev[i] for i in rows], zone), "a": _ts([av[i] for i in rows], zone)}),
        keys=("oid",), event_time="e", available_at="a", role="outcome",
        reporting_delay_us=truth_delay if declared else None)
    moment = datetime.fromtimestamp(as_of, UTC)
    horizon = data.draw(st.integers(1, 15), label="horizon (h)") * HOUR
    plan = world.plan(EventPointsPlan("tx", ("id",)),
                      as_of=moment if zone else moment.replace(tzinfo=None),
                      label=LabelRule(name="label", kind="binary", horizon_us=horizon,
                                      source="outcomes", keys=(("k", "k"),)))
    facts = {"ev": ev, "av": av, "keys": out_keys, "tx": tx, "as_of_us": as_of * 1_000_000,
             "delay_us": truth_delay, "horizon_us": horizon}
    return plan, facts


def _examples(body: Any, examples: int) -> Any:
    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def run(data: Any) -> None:
        folder = Path(tempfile.mkdtemp(prefix="vc-maturity-"))
        try:
            body(data, folder)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    return run


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_mature_labels_are_final_and_immature_ones_are_counted(engine: str) -> None:
    """With the inferred delay, a mature label equals the label over *every* outcome ever
    recorded (no false final negative), and the counts follow pit.is_mature."""

    def body(data: Any, folder: Path) -> None:
        plan, f = _world(data, folder, declared=False)
        out = ENGINES[engine]().execute(plan)
        assert (out.label_delay_us, out.label_delay_basis) == (
            label_delay(None, [f["delay_us"]]))
        frame, counts = finish_frame(plan, out)
        got = dict(zip(frame.column("decision_id").to_pylist(),
                       frame.column("label").to_pylist(), strict=True))
        want: dict[str, int] = {}
        by_horizon = 0
        for i, t in zip(f["tx"]["id"], f["tx"]["ts"], strict=True):
            t_us, k = t * 1_000_000, f["tx"]["k"][f["tx"]["id"].index(i)]
            by_horizon += t_us + f["horizon_us"] <= f["as_of_us"]
            if not is_mature(t_us, f["horizon_us"], f["delay_us"], f["as_of_us"]):
                continue
            want[str(i)] = int(any(
                k is not None and key == k and e is not None and a is not None
                and t < e <= t + f["horizon_us"] // 1_000_000
                for e, a, key in zip(f["ev"], f["av"], f["keys"], strict=True)))
        assert got == want, f"labels {got}, the final truth {want}"
        assert counts.immature_delay == by_horizon - len(want)

    _examples(body, 60 if engine == "duckdb" else 30)()


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_build_as_of_equals_the_extraction_taken_then(engine: str) -> None:
    """`--as-of X` on today's data builds the frame an extraction taken at X would give
    (outcomes known later do not count), when the delay is declared."""

    # The cut world replays the full world's draws, then keeps what was known by as_of.
    @settings(max_examples=40 if engine == "duckdb" else 20, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def run(data: Any) -> None:
        folder = Path(tempfile.mkdtemp(prefix="vc-maturity-"))
        try:
            draws: list[Any] = []

            class Recorder:
                def draw(self, strategy: Any, label: str | None = None) -> Any:
                    value = data.draw(strategy, label=label)
                    draws.append(value)
                    return value

            class Replayer:
                def draw(self, strategy: Any, label: str | None = None) -> Any:
                    return draws.pop(0)

            (folder / "full").mkdir()
            (folder / "cut").mkdir()
            plan_full, _ = _world(Recorder(), folder / "full", declared=True)
            plan_cut, _ = _world(Replayer(), folder / "cut", declared=True, cut=True)
            full = finish_frame(plan_full, ENGINES[engine]().execute(plan_full))[0]
            cut = finish_frame(plan_cut, ENGINES[engine]().execute(plan_cut))[0]
            assert full.select(["decision_id", "label"]).to_pylist() == cut.select(
                ["decision_id", "label"]).to_pylist()
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    run()


def test_build_and_check_report_the_inferred_delay(tmp_path: Path) -> None:
    import yaml

    from valuechain.data.build import build_frame
    from valuechain.data.validate import check_project
    from valuechain.spec import load_spec

    from .test_data_validation import _BASE, _DAY, _with_reported

    project = _with_reported(tmp_path, [_BASE + 12 * _DAY, _BASE + 20 * _DAY],
                             [_BASE + 15 * _DAY, _BASE + 21 * _DAY])
    loaded = load_spec(project)
    result = build_frame(loaded, as_of=datetime(2025, 1, 22))
    delay = result.manifest["label_delay"]
    assert delay["seconds"] == 3 * 86_400 and delay["basis"] == "inferred"
    assert "largest 'reported_at' - 'opened_at'" in delay["note"]
    assert "`sources.cancels.reporting_delay` (e.g. '3d')" in delay["note"]
    assert delay["rows_made_immature"] == result.rows.immature_delay > 0
    features = {c.name: c for c in check_project(loaded).data_checks}["features"]
    assert "outcome delay 3 days (inferred" in features.message
    # Declared: used as is, no note.
    spec = yaml.safe_load((project / "valuechain.yaml").read_text())
    spec["sources"]["cancels"]["reporting_delay"] = "5d"
    (project / "valuechain.yaml").write_text(yaml.safe_dump(spec))
    declared = build_frame(load_spec(project), as_of=datetime(2025, 1, 22))
    assert declared.manifest["label_delay"] == {
        "seconds": 5 * 86_400, "basis": "declared",
        "rows_made_immature": declared.rows.immature_delay}
    assert declared.rows.immature_delay >= result.rows.immature_delay
