"""The report end to end: a generated world through every stage, then the HTML checked against
the ``--json`` output of each stage.

One test (one world, ~30 s on one core): generate 150k transactions, run ``check``, ``build``,
``audit``, ``train``, ``decide`` and ``report`` through the CLI with ``--json``, then assert
that no report section failed and that the numbers the HTML shows (read from the elements the
report marks with ``data-key``) are the ones the stages printed. Finally the stale-frame
scenario of issue 8: rebuilding the frame with an earlier ``--as-of`` after training makes the
report flag the run (both fingerprints, the command that fixes it).
"""

from __future__ import annotations

import json
import math
import shutil
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from valuechain.cli import app
from valuechain.report import render_report
from valuechain.spec import load_spec

from .conftest import small_fraud_project

ROWS = 150_000


class Keyed(HTMLParser):
    """Every element with a ``data-key``: its ``data-value`` (if any) and its text."""

    def __init__(self) -> None:
        super().__init__()
        self.found: dict[str, list[tuple[str | None, str]]] = {}
        self.statuses: list[str] = []
        self._open: list[tuple[str, str | None, list[str], int]] = []
        self._depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("br", "img", "meta", "link", "input", "hr"):
            return
        self._depth += 1
        named = dict(attrs)
        if tag == "section" and named.get("data-status"):
            self.statuses.append(str(named["data-status"]))
        if named.get("data-key"):
            self._open.append((str(named["data-key"]), named.get("data-value"), [],
                               self._depth))

    def handle_endtag(self, tag: str) -> None:
        if tag in ("br", "img", "meta", "link", "input", "hr"):
            return
        if self._open and self._open[-1][3] == self._depth:
            key, value, text, _ = self._open.pop()
            self.found.setdefault(key, []).append((value, " ".join("".join(text).split())))
        self._depth -= 1

    def handle_data(self, data: str) -> None:
        for _, _, text, _ in self._open:
            text.append(data)

    def one(self, key: str) -> tuple[str | None, str]:
        """The only element with ``key`` (an assertion error when absent or repeated)."""
        hits = self.found.get(key, [])
        assert len(hits) == 1, f"data-key {key!r}: {len(hits)} elements"
        return hits[0]


def _cli(*args: str) -> Any:
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def _parse(path: Path) -> Keyed:
    keyed = Keyed()
    keyed.feed(path.read_text(encoding="utf-8"))
    return keyed


def _count(text: str) -> int:
    return int(text.replace(",", ""))


@pytest.mark.slow
def test_report_shows_the_numbers_every_stage_printed(tmp_path: Path) -> None:
    project = small_fraud_project(tmp_path / "fraud", min_positives=10)
    _cli("generate", "fraud", "--out", str(project / "data"), "--rows", str(ROWS), "--seed", "5")
    where = ("--spec", str(project))
    check = _cli("check", *where)
    build = _cli("build", *where)
    audit = _cli("audit", *where)
    train = _cli("train", *where)
    decide = _cli("decide", *where)
    _cli("report", *where)
    assert check["passed"] is True and audit["critical"] == 0

    loaded = load_spec(project)
    result = render_report(loaded)
    assert result.ok and result.failed == () and result.mismatches == ()
    assert "error" not in {s.status for s in result.sections}
    assert {s.id for s in result.sections} >= {"provenance", "lineage", "label-maturity",
                                               "audit", "evaluation", "decide"}
    assert all(s.status != "missing" for s in result.sections)
    page = _parse(result.path)
    assert page.statuses == [s.status for s in result.sections] and "error" not in page.statuses
    assert "report-errors" not in page.found and "report-mismatches" not in page.found

    # build: rows and the frame's identity
    assert _count(page.one("build-rows-mature")[1]) == build["rows"]["mature"]
    assert _count(page.one("build-rows-total")[1]) == build["rows"]["total"] == ROWS
    assert page.one("build-frame-fingerprint")[1] == build["fingerprint"]
    assert page.one("origin-build-as-of")[0] == build["as_of"]

    # audit: the frame it audited is the frame built
    assert page.one("audit-critical")[0] == str(audit["critical"])
    assert page.one("origin-audit-frame-fingerprint")[0] == build["fingerprint"]

    # train: run, frame, best candidate and its test AUC and AP
    best = train["best_candidate"]
    test = train["candidates"][best]["test"]
    assert page.one("train-run-id")[1] == train["run_id"]
    assert page.one("origin-train-frame-fingerprint")[0] == build["fingerprint"]
    assert page.one("train-best")[1] == best
    for key, metric, shown in (("train-best-test-auc", "roc_auc", 3),
                               ("train-best-test-ap", "average_precision", 3)):
        value, text = page.one(key)
        assert value is not None and float(value) == test[metric]
        assert text == f"{test[metric]:.{shown}f}"
    for name, entry in train["candidates"].items():
        for role in ("validation", "test"):
            for metric in ("roc_auc", "average_precision"):
                value, _ = page.one(f"{role}-{name}-{metric}")
                recorded = entry[role][metric]
                assert (value == "" if recorded is None or math.isnan(recorded)
                        else float(value or "nan") == recorded), (role, name, metric)

    # decide: the run it priced, the policy's thresholds, savings, capacity use
    assert page.one("decide-run-id")[1] == decide["run_id"] == train["run_id"]
    assert page.one("origin-decide-run")[0] == train["run_id"]
    assert page.one("decide-kind")[0] == decide["policy"]["kind"] == decide["kind"]
    thresholds = {"three_band": ("review_at", "decline_at"), "threshold": ("threshold",),
                  "top_n": ("n", "min_score")}[decide["kind"]]
    shown_any = False
    for key in thresholds:
        recorded = decide["policy"][key]
        if recorded is None:  # an infinite band edge: not a number to show
            assert f"decide-policy-{key}" not in page.found
            continue
        shown_any = True
        assert float(page.one(f"decide-policy-{key}")[0] or "nan") == recorded
    assert shown_any
    savings = decide["test"]["savings"]
    for name in ("approve_all", "rules"):
        assert float(page.one(f"decide-savings-{name}")[0] or "nan") == savings[name]["value"]
    _, text = page.one("decide-savings-approve_all")
    assert text == f"{savings['approve_all']['value']:+,.0f}"
    cap = decide["test"]["capacity"]
    used, text = page.one("decide-max-used")
    assert float(used or "nan") == cap["max_used"]
    assert text == f"{cap['max_used']:,.0f} / {cap['limit']:,.0f}"
    assert float(page.one("decide-cost-per-1000")[0] or "nan") == decide["test"]["cost_per_1000"]

    # the stale frame of issue 8: rebuild earlier after training; the report says so
    shutil.copy(result.path, tmp_path / "before.html")
    rebuilt = _cli("build", *where, "--as-of", "2025-09-01", "--force")
    assert rebuilt["fingerprint"] != build["fingerprint"]
    stale = render_report(loaded)
    assert stale.ok  # every section still renders ...
    flagged = {m.stage: m for m in stale.mismatches}  # ... and the mismatches are named
    assert set(flagged) == {"train", "audit", "decide"}
    run = flagged["train"]
    assert (run.found, run.expected) == (build["fingerprint"], rebuilt["fingerprint"])
    assert run.command == "valuechain train"
    page = _parse(stale.path)
    banner = " ".join(text for _, text in page.found["mismatch"])
    assert build["fingerprint"] in banner and rebuilt["fingerprint"] in banner
    assert "valuechain train" in banner
    assert "mismatch-train" in page.found and stale.section("evaluation").status == "warn"
    assert _count(page.one("build-rows-mature")[1]) == rebuilt["rows"]["mature"]
