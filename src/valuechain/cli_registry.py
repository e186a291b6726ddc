"""``valuechain package``, ``promote``, ``rollback`` and ``registry``: thin over valuechain.registry."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from valuechain.cli import JsonOpt, SpecOpt, _emit, _load, app, console, user_errors

RegistryOpt = Annotated[
    Path | None,
    typer.Option("--registry", help="Registry folder; default <workspace>/registry "
                 "(.valuechain/registry beside the spec)."),
]


def _registry(spec: Path, registry: Path | None) -> Any:
    from valuechain.registry import Registry, default_registry

    return Registry(registry if registry is not None else default_registry(_load(spec)))


def _gate_marks(gates: Any) -> str:
    return " ".join(f"[green]{g.name}[/]" if g.passed else f"[red]{g.name}[/]" for g in gates)


@app.command("package")
@user_errors
def package_command(
    spec: SpecOpt = Path("."),
    run: Annotated[str | None, typer.Option(help="Run id to package; default the latest "
                                            "(`valuechain runs` lists them).")] = None,
    registry: RegistryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Package a run, its calibrator and its policy as an immutable, versioned bundle."""
    from valuechain.registry import package

    result = package(_load(spec), run=run, registry=registry)
    if as_json:
        _emit(result.to_json())
        return
    what = "packaged" if result.created else "already packaged (same content hash) as"
    console.print(f"{what} [bold]{result.version}[/] ({result.stage}): run {result.run_id}, "
                  f"{result.candidate}; {len(result.files)} files, {result.bytes / 1024:,.0f} "
                  f"KiB, {result.seconds:.2f}s")
    console.print(f"bundle: {result.path}\ncontent hash: {result.content_hash}")
    for gate in result.gates:
        mark = "[green]pass[/]" if gate.passed else "[red]FAIL[/]"
        console.print(f"  {mark} {gate.name}: {gate.detail}"
                      + ("" if gate.passed else f". Fix: {gate.fix}."), highlight=False)
    flag = f" --registry {registry}" if registry is not None else ""
    if result.gates_passed:
        console.print(f"next: valuechain promote {result.version} --spec {spec}{flag}")


@app.command()
@user_errors
def promote(
    version: Annotated[str, typer.Argument(help="The version to put in production (v1, ...).")],
    spec: SpecOpt = Path("."),
    registry: RegistryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Move a version to production when its gates pass (audit, baselines, policy, owners)."""
    reg = _registry(spec, registry)
    result = reg.promote(version)
    if as_json:
        _emit(result.to_json())
        return
    if not result.changed:
        console.print(f"{result.version} is already in production.")
        return
    before = f"; {result.previous} archived" if result.previous else ""
    console.print(f"{result.version} is in production{before}. Gates: "
                  f"{_gate_marks(result.gates)}")
    console.print(f"serve it: valuechain serve --spec {spec}")


@app.command()
@user_errors
def rollback(
    spec: SpecOpt = Path("."),
    registry: RegistryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Bring back the version that was in production before the current one."""
    reg = _registry(spec, registry)
    result = reg.rollback()
    if as_json:
        _emit(result.to_json())
        return
    console.print(f"{result.version} is back in production; {result.previous} archived.")


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


@app.command("registry")
@user_errors
def registry_command(
    spec: SpecOpt = Path("."),
    registry: RegistryOpt = None,
    history: Annotated[bool, typer.Option(help="List every package, promote and rollback "
                                          "instead.")] = False,
    verify: Annotated[bool, typer.Option(help="Check every bundle against its checksums "
                                         "(exit 1 when one does not match).")] = False,
    as_json: JsonOpt = False,
) -> None:
    """List the registry's versions: stage, run, candidate, test metrics, savings, gates."""
    reg = _registry(spec, registry)
    if verify:
        checked = reg.verify()
        bad = [(v, problem) for v, problem in checked if problem]
        if as_json:
            _emit({"registry": str(reg.root), "ok": not bad,
                   "versions": [{"version": v, "problem": p} for v, p in checked]})
        else:
            for v, problem in checked:
                console.print(f"{v}: " + ("[green]ok[/]" if problem is None else
                                          f"[red]{problem}[/]"), highlight=False)
        if bad:
            raise typer.Exit(1)
        return
    if history:
        events = reg.history()
        if as_json:
            _emit({"registry": str(reg.root), "events": events})
            return
        table = Table(title=f"Registry history - {reg.root}")
        for column in ("when (UTC)", "action", "version", "previous", "detail"):
            table.add_column(column, overflow="fold")
        for e in events:
            table.add_row(e["at"][:19].replace("T", " "), e["action"], e["version"],
                          e["previous"] or "-", e["detail"] or "")
        console.print(table)
        return
    versions = reg.versions()
    if as_json:
        current = reg.production()
        _emit({"registry": str(reg.root), "production": current.version if current else None,
               "versions": [v.to_json() for v in versions]})
        return
    table = Table(title=f"Registry - {reg.root}", caption="test period metrics of the "
                  "chosen candidate; savings of the policy vs today's rule on test")
    for column in ("version", "stage", "created (UTC)", "run", "candidate", "AUC", "AP",
                   "saved vs today", "gates"):
        table.add_column(column, justify="right" if column in ("AUC", "AP", "saved vs today")
                         else "left", overflow="fold",
                         no_wrap=column in ("version", "stage", "AUC", "AP"))
    colours = {"production": "bold green", "staging": "yellow", "archived": "dim"}
    for v in versions:
        savings = "-" if v.savings is None else (
            f"{v.currency or ''} {v.savings:,.0f}".strip()
            + ("" if v.savings_vs == "rules" else f" (vs {v.savings_vs})"))
        failing = [g.name for g in v.gates if not g.passed]
        gates = "[green]pass[/]" if not failing else "[red]" + ", ".join(failing) + "[/]"
        table.add_row(v.version, f"[{colours.get(v.stage, '')}]{v.stage}[/]",
                      v.created_at[:16].replace("T", " "), v.run_id, v.candidate,
                      _fmt(v.test_auc, ".3f"), _fmt(v.test_ap, ".3f"), savings, gates)
    console.print(table)
    if not versions:
        console.print(f"no versions yet: `valuechain package --spec {spec}` packages the "
                      "latest decided run.")
