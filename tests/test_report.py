"""``valuechain report``: one self-contained, escaped HTML file from whatever outputs exist."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from valuechain.report import (
    Section,
    fragment,
    register_section,
    render_report,
    report_sections,
    unavailable,
    unregister_section,
)
from valuechain.report.framestats import histograms, over_time
from valuechain.report.sections_features import describe_feature
from valuechain.spec import LoadedSpec, load_spec

TITLES = ("Framing", "Readiness checklist", "Lineage", "Label maturity", "Features")
AS_OF = "2024-03-31T23:00:00"
EVIL = "<script>alert('x')</script>"
ROWS = 700


def _spec_dict() -> dict[str, Any]:
    return {
        "project": {"name": "tiny-fraud", "description": f"Tiny demo {EVIL}"},
        "decision": {
            "statement": "Review risky orders & hold them",
            "owner": "fraud ops lead",
            "moment": "at checkout",
            "actions": ["approve", "review"],
            "latency_budget_ms": 50,
            "kpi": "fraud losses per 1000 orders",
        },
        "decision_points": {"source": "orders", "keep": ["customer_id"]},
        "sources": {
            "orders": {"path": "orders.parquet", "keys": ["order_id"], "event_time": "ts"},
            "profiles": {"path": "profiles.parquet", "keys": ["customer_id"],
                         "valid_from": "valid_from", "role": "dimension"},
        },
        "label": {"name": "is_fraud", "column": "is_fraud", "horizon": "7d"},
        "features": [
            {"name": "amount", "expr": "amount", "description": f"order amount {EVIL}"},
            {"name": "n_orders_7d", "aggregate": "count", "key": "customer_id", "window": "7d"},
            {"name": "avg_amount_lag", "aggregate": "mean", "of": "amount", "key": "customer_id",
             "window": "30d", "lag": "7d"},
            {"name": "customer_fraud_rate", "aggregate": "rate", "of": "label",
             "key": "customer_id", "window": "30d", "lag": "7d", "fill": 0},
            {"name": "risk_tier", "lookup": {"source": "profiles", "key": "customer_id",
                                             "column": "tier"}},
        ],
        "owners": {
            "product": "Payments PM",
            "data_science": "Risk DS team",
            "data_engineering": "Data platform",
            "ml_engineering": "ML platform",
        },
    }


def _write_spec(root: Path) -> LoadedSpec:
    root.mkdir(parents=True, exist_ok=True)
    (root / "valuechain.yaml").write_text(yaml.safe_dump(_spec_dict(), sort_keys=False))
    return load_spec(root)


def _manifest(loaded: LoadedSpec) -> dict[str, Any]:
    spec = loaded.spec
    stats = {"amount": ("double", 0.0, 52.5, 1.0, 400.0),
             "n_orders_7d": ("int64", 0.0, 3.2, 1, 12),
             "avg_amount_lag": ("double", 0.12, 50.1, 2.0, 300.0),
             "customer_fraud_rate": ("double", 0.0, 0.01, 0.0, 1.0),
             "risk_tier": ("string", 0.05, None, None, None)}
    features = []
    for f in spec.features:
        kind, nulls, mean, lo, hi = stats[f.name]
        entry = {"name": f.name, "kind": f.kind,
                 "definition": f.model_dump(mode="json", exclude_none=True),
                 "type": kind, "null_share": nulls}
        if mean is not None:
            entry.update(mean=mean, min=lo, max=hi)
        features.append(entry)
    return {
        "valuechain_version": "0.1.0",
        "created_at": "2024-04-01T08:00:00+00:00",
        "cache_key": "abc123",
        "engine": "duckdb",
        "spec": {"path": str(loaded.path), "hash": loaded.hash, "project": "tiny-fraud"},
        "as_of": AS_OF,
        "as_of_source": "latest time in the sources",
        "time_zone_aware": False,
        "sources": {
            "orders": {"name": "orders", "path": "/data/orders.parquet", "format": "parquet",
                       "rows": 1000, "time_column": "ts", "min_time": "2024-01-01 00:00:00",
                       "max_time": AS_OF.replace("T", " "), "fingerprint": "f" * 32},
            "profiles": {"name": "profiles", "path": "/data/profiles.parquet",
                         "format": "parquet", "rows": 50, "time_column": "valid_from",
                         "min_time": None, "max_time": None, "fingerprint": "e" * 32},
        },
        "rows": {"total": 1000, "mature": ROWS, "immature": 300, "positive": 35,
                 "dropped_no_time": 2},
        "label": {"name": "is_fraud", "kind": "binary", "horizon": "1w", "column": "is_fraud"},
        "frame": {"path": "frame.parquet",
                  "columns": ["order_id", "customer_id", "ts", *[f.name for f in spec.features],
                              "is_fraud"],
                  "id_columns": ["order_id", "customer_id"], "time_column": "ts"},
        "features": features,
        "build_seconds": 1.234,
    }


def _frame() -> pa.Table:
    start = datetime(2024, 1, 1)
    ts = [start + timedelta(hours=3 * i) for i in range(ROWS)]  # 12.5 weeks from a Monday
    return pa.table({
        "order_id": pa.array(range(ROWS), pa.int64()),
        "customer_id": pa.array([i % 40 for i in range(ROWS)], pa.int64()),
        "ts": pa.array(ts, pa.timestamp("us")),
        "amount": pa.array([float(i % 97) * 3.5 for i in range(ROWS)]),
        "n_orders_7d": pa.array([1 + i % 12 for i in range(ROWS)], pa.int64()),
        "avg_amount_lag": pa.array([None if i % 8 == 0 else 2.0 + i % 50 for i in range(ROWS)]),
        "customer_fraud_rate": pa.array([(i % 10) / 10 for i in range(ROWS)]),
        "risk_tier": pa.array(["low" if i % 3 else "high" for i in range(ROWS)]),
        "is_fraud": pa.array([1 if i % 20 == 0 else 0 for i in range(ROWS)], pa.int8()),
    })


@pytest.fixture
def built(tmp_path: Path) -> LoadedSpec:
    """A spec whose workspace holds check.json, a build manifest and a frame."""
    loaded = _write_spec(tmp_path / "project")
    ws = loaded.workspace
    (ws / "build").mkdir(parents=True)
    (ws / "build" / "manifest.json").write_text(json.dumps(_manifest(loaded)))
    pq.write_table(_frame(), ws / "build" / "frame.parquet")
    (ws / "check.json").write_text(json.dumps({
        "spec": str(loaded.path),
        "passed": False,
        "data_checks": [{"name": "sources readable", "passed": True, "message": "2 sources ok"}],
        "checklist": [
            {"item": "task_to_decision_fit", "title": "Task → decision fit", "passed": True,
             "reason": "decision is clear"},
            {"item": "operational_ownership", "title": "Operational ownership", "passed": False,
             "reason": f"no operations owner {EVIL}"},
        ],
    }))
    return loaded


def _html(loaded: LoadedSpec) -> str:
    return render_report(loaded).path.read_text(encoding="utf-8")


def _section(html: str, anchor: str) -> str:
    match = re.search(rf'<section class="card \w+" id="{anchor}"[^>]*>(.*?)</section>', html, re.S)
    assert match, f"section {anchor} not found"
    return match.group(1)


def test_full_report_has_every_section_and_fact(built: LoadedSpec) -> None:
    result = render_report(built)
    assert result.path == built.workspace / "report.html" and result.ok
    assert [s.id for s in result.sections] == [
        "summary", "framing", "readiness", "provenance", "lineage", "label-maturity", "features",
        "audit", "evaluation", "model-card", "decide"]
    assert result.section("readiness").status == "fail"  # the checklist fails: not an error
    html = result.path.read_text(encoding="utf-8")
    for title in TITLES:
        assert f"{title}</h2>" in html
        assert f"{title}\n" in html or f"{title}<" in html  # also in the table of contents
    for owner in ("Payments PM", "Risk DS team", "Data platform", "ML platform", "fraud ops lead"):
        assert owner in html
    assert AS_OF in html and "latest time in the sources" in html
    assert built.hash in html
    for anchor in ("framing", "readiness", "lineage", "label-maturity", "features"):
        assert "not available yet" not in _section(html, anchor).lower()
    assert html.count("<svg") >= 2 + 4  # bars, weekly chart, a histogram per numeric feature
    assert "1,000" in html and "5.0%" in html  # total rows; positive rate 35 / 700
    assert "(t-37d, t-7d]" in html and "outcome-derived rate of label is_fraud" in html
    assert "tier of profiles as known at t" in html


def test_report_is_offline_and_script_free(built: LoadedSpec) -> None:
    html = _html(built)
    assert "http://" not in html and "https://" not in html
    assert "<script" not in html.lower()
    assert "<link" not in html.lower() and "@import" not in html
    assert not re.search(r"""(src|href)\s*=\s*["']?//""", html)
    assert "<style>" in html


def test_user_text_is_escaped(built: LoadedSpec) -> None:
    html = _html(built)
    assert "&lt;script&gt;alert(" in html
    assert EVIL not in html
    assert "Review risky orders &amp; hold them" in html


def test_missing_owner_is_highlighted(built: LoadedSpec) -> None:
    framing = _section(_html(built), "framing")
    assert 'class="missing"' in framing and "owners.operations" in framing
    assert "1 of 5 links have no" in framing


def test_readiness_shows_badges_and_reasons(built: LoadedSpec) -> None:
    readiness = _section(_html(built), "readiness")
    assert "not ready" in readiness
    assert 'badge fail">fail' in readiness and 'badge pass">pass' in readiness
    assert "no operations owner" in readiness and "2 sources ok" in readiness
    assert "1 of 2 checklist items pass" in readiness


def test_lineage_lists_sources_and_flags_a_stale_build(built: LoadedSpec) -> None:
    lineage = _section(_html(built), "lineage")
    assert "/data/orders.parquet" in lineage and "ffffffffffff" in lineage
    assert "matches the spec" in lineage and "earlier version" not in lineage
    manifest_path = built.workspace / "build" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["spec"]["hash"] = "0000000000000000"
    manifest_path.write_text(json.dumps(manifest))
    lineage = _section(_html(built), "lineage")
    assert "earlier version of the spec" in lineage and "0000000000000000" in lineage


def test_spec_only_workspace_says_what_to_run(tmp_path: Path) -> None:
    loaded = _write_spec(tmp_path / "fresh")
    path = render_report(loaded).path
    html = path.read_text(encoding="utf-8")
    assert path.parent == loaded.workspace
    for title in TITLES:
        assert f"{title}</h2>" in html
    assert "run the stage named in each" in html
    assert "valuechain check" in _section(html, "readiness")
    for anchor in ("lineage", "label-maturity"):
        body = _section(html, anchor)
        assert "Not available yet" in body and "valuechain build" in body
    features = _section(html, "features")
    assert "Statistics not available yet" in features and "valuechain build" in features
    assert "count of orders by customer_id over (t-7d, t]" in features  # from the spec itself
    assert "Payments PM" in html and "&lt;script&gt;" in html and EVIL not in html


def test_missing_frame_keeps_manifest_sections(built: LoadedSpec) -> None:
    (built.workspace / "build" / "frame.parquet").unlink()
    html = _html(built)
    assert "frame file is missing" in _section(html, "label-maturity")
    assert "frame file is" in _section(html, "features")
    assert AS_OF in html


def test_custom_out_path_and_no_temp_files(built: LoadedSpec, tmp_path: Path) -> None:
    out = tmp_path / "elsewhere" / "r.html"
    assert render_report(built, out).path == out
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert [p.name for p in out.parent.iterdir()] == ["r.html"]
    assert not (built.workspace / "report.html").exists()


def test_registered_section_appears_in_order_and_errors_stay_local(built: LoadedSpec) -> None:
    @register_section(order=45)
    def extra_section(loaded: LoadedSpec, workspace: Path) -> Section:
        return Section("extra", "Extra <stage>", fragment("<p>{{ x }}</p>", x=EVIL))

    @register_section(order=46)
    def broken_section(loaded: LoadedSpec, workspace: Path) -> Section:
        raise ValueError("manifest field `rows` is not a mapping")

    @register_section(order=47)
    def skipped_section(loaded: LoadedSpec, workspace: Path) -> Section | None:
        return None

    try:
        names = [fn.__name__ for fn in report_sections()]
        assert names.index("label_maturity_section") < names.index("extra_section")
        assert names.index("extra_section") < names.index("features_section")
        result = render_report(built)
        html = result.path.read_text(encoding="utf-8")
    finally:
        for fn in (extra_section, broken_section, skipped_section):
            unregister_section(fn)
    assert html.index('id="label-maturity"') < html.index('id="extra"')
    assert html.index('id="extra"') < html.index('id="features"')
    assert "Extra &lt;stage&gt;" in html and EVIL not in html
    broken = _section(html, "broken")
    assert "could not be rendered" in broken and "ValueError" in broken
    # a section that raises is a failure of the report, visible and returned
    assert not result.ok and [s.id for s in result.failed] == ["broken"]
    assert result.section("broken").error == "ValueError: manifest field `rows` is not a mapping"
    assert result.section("extra").status == "ok"
    assert 'data-status="error"' in html and 'class="state error">error<' in html
    banner = re.search(r'data-key="report-errors">(.*?)</div>', html, re.S)
    assert banner and '<a href="#broken">Broken</a>' in banner.group(1)
    payload = result.to_json()
    assert payload["ok"] is False and payload["failed"] == ["broken"]
    assert str(result) == str(result.path) and Path(result) == result.path
    assert 'id="skipped"' not in html
    assert extra_section not in report_sections()


def test_explicit_sections_and_duplicate_ids(built: LoadedSpec, tmp_path: Path) -> None:
    def hint(loaded: LoadedSpec, workspace: Path) -> Section:
        return unavailable("audit", "Leakage audit", "valuechain audit")

    html = render_report(built, tmp_path / "r.html", sections=[hint, hint]).path.read_text()
    assert 'id="audit"' in html and 'id="audit-2"' in html
    assert "Run <code>valuechain audit</code> to add this section." in html
    assert "Framing</h2>" not in html


def test_describe_feature_reads_like_the_spec() -> None:
    assert describe_feature(
        {"aggregate": "mean", "of": "TX_AMOUNT", "key": "CUSTOMER_ID", "window": "1w",
         "lag": "0w"}, label="y") == "mean of TX_AMOUNT by CUSTOMER_ID over (t-7d, t]"
    assert describe_feature(
        {"aggregate": "sum", "of": "amount", "key": "k", "window": "30d", "lag": "7d",
         "source": "refunds", "where": "amount > 0", "include_current": False},
        label="y", own="orders",
    ) == ("sum of amount in refunds by k over (t-37d, t-7d], where amount > 0, excluding the "
          "decision event")
    assert describe_feature({"expr": "a + b", "fill": 0}, label="y") == (
        "row expression: a + b; empty → 0")
    assert describe_feature({"lookup": {"source": "dim", "key": "k", "on": "id",
                                        "column": "c"}}, label="y") == (
        "c of dim as known at t, matched on k = id")


def test_frame_stats_cover_every_row(built: LoadedSpec) -> None:
    frame = built.workspace / "build" / "frame.parquet"
    series = over_time(frame, "ts", "is_fraud")
    assert series is not None and series.grain == "week"
    assert sum(series.decisions) == ROWS and len(series.starts) == 13  # 87.5 days
    assert all(s.weekday() == 0 for s in series.starts)  # weeks start on Monday
    rate = sum(r * n for r, n in zip(series.positive_rate, series.decisions, strict=True)
               if r is not None) / ROWS
    assert rate == pytest.approx(35 / ROWS)
    hists = histograms(frame, ["amount", "n_orders_7d", "avg_amount_lag", "risk_tier"])
    assert set(hists) == {"amount", "n_orders_7d", "avg_amount_lag"}  # text is skipped
    counts = hists["n_orders_7d"]
    assert counts.discrete and counts.counts == [59, 59, 59, 59, 58, 58, 58, 58, 58, 58, 58, 58]
    assert hists["avg_amount_lag"].rows == ROWS - len(range(0, ROWS, 8))  # nulls left out
    assert over_time(frame, "no_such_column", "is_fraud") is None
    small = histograms(frame, ["amount"], sample=100)["amount"]
    assert 20 < small.rows < 300  # a sample, not the whole frame


# --- provenance: which output each section shows, and mismatches -------------------------------

FP_A, FP_B = "a" * 32, "b" * 32


def _stage_outputs(loaded: LoadedSpec, *, frame_fp: str | None, run_fp: str | None,
                   run_cache_key: str = "abc123", decide_run: str = "r2") -> None:
    """A manifest, two runs (r2 latest) and a decide.json, with chosen identities."""
    ws = loaded.workspace
    manifest_path = ws / "build" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    if frame_fp is not None:
        manifest["frame"]["fingerprint"] = frame_fp
    manifest_path.write_text(json.dumps(manifest))
    for run_id in ("r1", "r2"):
        frame: dict[str, Any] = {"path": "build/frame.parquet", "cache_key": run_cache_key,
                                 "rows": ROWS}
        if run_fp is not None:
            frame["fingerprint"] = run_fp
        (ws / "runs" / run_id).mkdir(parents=True, exist_ok=True)
        (ws / "runs" / run_id / "metrics.json").write_text(json.dumps(
            {"run_id": run_id, "spec_hash": loaded.hash, "frame": frame}))
    (ws / "runs" / "latest").write_text("r2\n")
    (ws / "decide.json").write_text(json.dumps(
        {"run_id": decide_run, "policy": {"kind": "three_band"}}))


def _only_provenance(loaded: LoadedSpec) -> tuple[Any, str]:
    from valuechain.report.sections_build import lineage_section
    from valuechain.report.sections_provenance import provenance_section

    result = render_report(loaded, sections=[provenance_section, lineage_section])
    return result, result.path.read_text(encoding="utf-8")


def test_outputs_written_before_fingerprints_read_as_unknown(built: LoadedSpec) -> None:
    _stage_outputs(built, frame_fp=None, run_fp=None)
    result, html = _only_provenance(built)
    assert result.ok and result.mismatches == ()
    card = _section(html, "provenance")
    assert "all outputs match" in card and "unknown" in card
    for stage in ("build", "train", "decide"):
        assert f'data-key="provenance-{stage}"' in card
    assert "runs/r2/metrics.json" in card and "runs/r2/policy.yaml" in card
    lineage = _section(html, "lineage")
    assert 'data-key="build-frame-fingerprint">unknown<' in lineage
    assert 'data-key="origin-build"' in lineage and "report-mismatches" not in html


def test_run_trained_on_another_frame_is_flagged_with_both_fingerprints(
        built: LoadedSpec) -> None:
    _stage_outputs(built, frame_fp=FP_A, run_fp=FP_B)
    result, html = _only_provenance(built)
    assert result.ok  # a mismatch is a warning, not a broken section
    (mismatch,) = result.mismatches
    assert (mismatch.stage, mismatch.found, mismatch.expected) == ("train", FP_B, FP_A)
    assert mismatch.command == "valuechain train" and mismatch.output == "run r2"
    banner = re.search(r'data-key="report-mismatches">(.*?)</div>', html, re.S)
    assert banner is not None
    text = banner.group(1)
    assert f"<code>{FP_B}</code>" in text and f"<code>{FP_A}</code>" in text
    assert "<code>valuechain train</code>" in text
    assert result.section("provenance").status == "warn"
    card = _section(html, "provenance")
    assert "made from another frame" in card and 'data-key="mismatch-train"' in card
    assert result.to_json()["mismatches"][0]["expected"] == FP_A


def test_cache_keys_compared_when_fingerprints_are_unknown(built: LoadedSpec) -> None:
    _stage_outputs(built, frame_fp=FP_A, run_fp=None, run_cache_key="older-key")
    result, _ = _only_provenance(built)
    (mismatch,) = result.mismatches
    assert (mismatch.found, mismatch.expected) == ("older-key", "abc123")
    assert "cache key" in mismatch.message() and "valuechain train" in mismatch.message()


def test_policy_priced_on_another_run_is_flagged(built: LoadedSpec) -> None:
    _stage_outputs(built, frame_fp=FP_A, run_fp=FP_A, decide_run="r1")
    result, html = _only_provenance(built)
    (mismatch,) = result.mismatches
    assert (mismatch.stage, mismatch.found, mismatch.expected) == ("decide", "r1", "r2")
    assert "Run `valuechain decide`" in mismatch.message()
    assert "<code>r1</code>" in html and "<code>r2</code>" in html


def test_policy_priced_on_an_older_frame_is_flagged(built: LoadedSpec) -> None:
    _stage_outputs(built, frame_fp=FP_A, run_fp=FP_B)
    decide_path = built.workspace / "decide.json"
    decide = json.loads(decide_path.read_text())
    decide["frame"] = {"path": "build/frame.parquet", "fingerprint": FP_B}
    decide_path.write_text(json.dumps(decide))
    result, _ = _only_provenance(built)
    flagged = {m.stage: m for m in result.mismatches}
    assert set(flagged) == {"train", "decide"}
    assert (flagged["decide"].found, flagged["decide"].expected) == (FP_B, FP_A)
    assert flagged["decide"].message().endswith(
        "Run `valuechain train` to train on the current frame, then `valuechain decide`.")


def test_spec_changed_since_the_build_is_a_mismatch(built: LoadedSpec) -> None:
    manifest_path = built.workspace / "build" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["spec"]["hash"] = "0" * 16
    manifest_path.write_text(json.dumps(manifest))
    result, _ = _only_provenance(built)
    assert [(m.stage, m.command) for m in result.mismatches] == [("build", "valuechain build")]


def test_damaged_stage_output_fails_the_report_loudly(built: LoadedSpec) -> None:
    (built.workspace / "decide.json").write_text("{not json")
    result, html = _only_provenance(built)
    assert not result.ok and [s.id for s in result.failed] == ["provenance"]
    error = result.section("provenance").error or ""
    assert "decide.json: this file is damaged (not valid JSON" in error
    assert "valuechain decide" in error
    assert result.section("lineage").status == "ok"
    assert "cannot be checked" in _section(html, "lineage")


def test_frame_stats_quote_paths_and_names(tmp_path: Path) -> None:
    folder = tmp_path / "o'brien"
    folder.mkdir()
    frame = folder / "frame.parquet"
    pq.write_table(pa.table({
        'decision "time"': pa.array([datetime(2024, 1, 1) + timedelta(days=i) for i in range(30)],
                                    pa.timestamp("us")),
        "y's": pa.array([i % 3 == 0 for i in range(30)]),
        'odd "col"': pa.array([float(i) for i in range(30)]),
    }), frame)
    series = over_time(frame, 'decision "time"', "y's")
    assert series is not None and sum(series.decisions) == 30
    assert histograms(frame, ['odd "col"'])['odd "col"'].rows == 30


def test_manifest_features_and_checklist_are_read_strictly(built: LoadedSpec) -> None:
    manifest_path = built.workspace / "build" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    del manifest["features"][1]["null_share"]
    manifest_path.write_text(json.dumps(manifest))
    check_path = built.workspace / "check.json"
    check = json.loads(check_path.read_text())
    check["checklist"][0]["why"] = check["checklist"][0].pop("reason")
    check_path.write_text(json.dumps(check))
    result = render_report(built)
    failed = {s.id: s.error or "" for s in result.failed}
    assert set(failed) == {"features", "readiness"}
    assert "build/manifest.json: key `features[1].null_share` is missing" in failed["features"]
    assert "check.json: key `checklist[0].reason` is missing" in failed["readiness"]
    assert "valuechain check" in failed["readiness"]
    assert result.section("lineage").status == "ok"  # the rest still renders


def test_rows_the_build_dropped_are_counted_in_the_report(built: LoadedSpec) -> None:
    """The manifest's `dropped` counts (per source and reason) are shown, largest first."""
    path = built.workspace / "build" / "manifest.json"
    manifest = json.loads(path.read_text())
    assert "Not recorded by the build" in _section(_html(built), "label-maturity")
    manifest["dropped"] = {"chargebacks": {"no event time ('reported_at')": 12,
                                           "no available time ('known_at')": 0},
                           "orders": {"no event time ('ts')": 1234}}
    path.write_text(json.dumps(manifest))
    section = _section(_html(built), "label-maturity")
    assert 'data-key="build-dropped"' in section and "1,246" in section
    rows = re.findall(r"<tr><th>(\w+)</th><td>([^<]+)</td><td class=\"num\">([\d,]+)</td>",
                      section)
    assert rows == [("orders", "no event time (&#39;ts&#39;)", "1,234"),
                    ("chargebacks", "no event time (&#39;reported_at&#39;)", "12")]
    manifest["dropped"] = {}
    path.write_text(json.dumps(manifest))
    assert "None: every source row had the times" in _section(_html(built), "label-maturity")
    manifest["dropped"] = {"orders": {"no event time ('ts')": "many"}}
    path.write_text(json.dumps(manifest))
    result = render_report(built)
    assert not result.ok and "dropped.orders" in (result.section("label-maturity").error or "")


def test_rows_immature_only_because_of_the_outcome_delay(built: LoadedSpec) -> None:
    path = built.workspace / "build" / "manifest.json"
    manifest = json.loads(path.read_text())
    assert "build-rows-immature-delay" not in _section(_html(built), "label-maturity")
    manifest["rows"]["immature_delay"] = 120
    manifest["label_delay"] = {"seconds": 89.73 * 86_400, "basis": "inferred",
                               "rows_made_immature": 120}
    path.write_text(json.dumps(manifest))
    section = " ".join(_section(_html(built), "label-maturity").split())
    assert 'data-key="build-rows-immature-delay">120</strong>' in section
    assert "known 89.7 days after it happens" in section
    manifest["label_delay"]["seconds"] = 60 * 86_400
    path.write_text(json.dumps(manifest))
    assert "known 60d after it happens" in " ".join(
        _section(_html(built), "label-maturity").split())
