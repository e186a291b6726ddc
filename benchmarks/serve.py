"""Latency and throughput of ``POST /v1/decide`` on loopback, against the bare model.

Usage::

    python benchmarks/serve.py --project DIR [--seconds 15] [--max-seconds 10]
                               [--score-rows 1000000] [--write]

``DIR`` is a packaged, promoted project (``valuechain package`` + ``promote``; the fraud
demo). The script starts, one after the other, each server on a free loopback port:

- ``valuechain``: ``valuechain serve`` — the whole path (validation, online features,
  LightGBM score + reasons, policy, real-time capacity, durable group-committed log);
- ``floor``: the same FastAPI/uvicorn stack with one endpoint that only predicts (the
  bundle's calibrated LightGBM score of a ready feature vector);
- ``mlflow``: MLflow's pyfunc scoring server for the same LightGBM booster, when
  ``--mlflow-python`` names a Python with ``mlflow`` installed (a separate venv).

For each: fixed-rate load at 100 and 300 requests/s from several client processes (open
loop: latency is measured from each request's scheduled send time, so a stalled server is
charged for the queue it causes), then the maximum throughput with ``wrk`` (closed loop,
32 connections). The service's per-stage times come from the responses (``latency_us``).
Batch: ``valuechain score`` of ``--score-rows`` events, rows/s. Every run is bounded: a
phase stops after its duration or its request count, whichever comes first.

With ``--write`` the table is appended to ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from fastapi import FastAPI, Request
from fastapi.responses import Response

ROOT = Path(__file__).resolve().parents[1]
API_KEY = "bench-key"
LIVE_DAY = pd.Timestamp("2025-09-29")


# ---------------------------------------------------------------------- request bodies


def make_events(project: Path, n: int, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` payments resampled from the last 30 days of the data, re-keyed and re-timed
    into the day after it (realistic customers, terminals and amounts; fresh ids)."""
    tx = pd.read_parquet(project / "data" / "transactions.parquet")
    recent = tx[tx["ts"] >= tx["ts"].max() - pd.Timedelta("30D")]
    rng = np.random.default_rng(seed)
    rows = recent.iloc[rng.integers(0, len(recent), n)].reset_index(drop=True)
    start = max(LIVE_DAY, tx["ts"].max().normalize() + pd.Timedelta("1D"))
    offsets = np.sort(rng.integers(0, 86_400_000_000, n))
    out = []
    for i, row in enumerate(rows.to_dict("records")):
        ev = {str(k): (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
        ev["transaction_id"] = 1_000_000_000 + i
        ev["ts"] = (start + pd.Timedelta(microseconds=int(offsets[i]))).isoformat()
        out.append(ev)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError("server did not start")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ---------------------------------------------------------------------- servers


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` and all its descendants (Linux /proc)."""
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry.name)] = int(fields[1])
        cpu[int(entry.name)] = (int(fields[11]) + int(fields[12])) / tick
    family, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        for child, ppid in parents.items():
            if ppid == parent and child not in family:
                family.add(child)
                frontier.append(child)
    return sum(cpu.get(p, 0.0) for p in family)


def floor_app(project: Path) -> FastAPI:
    """FastAPI doing only the model: the bundle's calibrated score of a feature vector."""
    from valuechain.registry import Registry, default_registry
    from valuechain.spec.loader import load_spec

    bundle = Registry(default_registry(load_spec(project))).load()
    bundle.model.params["num_threads"] = 1  # type: ignore[attr-defined]
    app = FastAPI()

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/predict")
    async def predict(request: Request) -> Response:
        score = float(bundle.score(json.loads(await request.body()))[0])
        return Response(json.dumps({"score": score}), media_type="application/json")

    return app


def start_valuechain(project: Path, port: int, log: Path, env: dict[str, str],
                     sync: str = "full", workers: int = 1, state: str = "memory",
                     reasons: str = "all") -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-c", "from valuechain.cli import main; main()", "serve", "--spec",
           str(project), "--port", str(port), "--log", str(log), "--log-sync", sync,
           "--state", state, "--reasons", reasons]
    if workers > 1:
        cmd += ["--workers", str(workers)]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def start_floor(project: Path, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    here, where = str(Path(__file__).parent), str(project)
    code = (f"import sys, uvicorn; sys.path.insert(0, {here!r}); import serve as b; "
            f"uvicorn.run(b.floor_app(__import__('pathlib').Path({where!r})), "
            f"host='127.0.0.1', port={port}, log_level='warning', access_log=False)")
    return subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def start_mlflow(python: str, project: Path, port: int, workdir: Path
                 ) -> subprocess.Popen[bytes]:
    """MLflow's scoring server for the bundle's booster (saved with mlflow.lightgbm)."""
    from valuechain.registry import Registry, default_registry
    from valuechain.spec.loader import load_spec

    bundle = Registry(default_registry(load_spec(project))).load()
    model_txt = workdir / "model.txt"
    bundle.model.booster.save_model(str(model_txt))  # type: ignore[attr-defined]
    target = workdir / "mlflow-model"
    shutil.rmtree(target, ignore_errors=True)
    subprocess.run([python, "-c", "import lightgbm, mlflow.lightgbm, sys; "
                    "mlflow.lightgbm.save_model(lightgbm.Booster(model_file=sys.argv[1]), "
                    "sys.argv[2])", str(model_txt), str(target)], check=True)
    bindir = Path(python).parent
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"  # its uvicorn
    return subprocess.Popen([str(bindir / "mlflow"), "models", "serve", "-m", str(target),
                             "-p", str(port), "-h", "127.0.0.1", "--env-manager", "local",
                             "-w", "1"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


# ---------------------------------------------------------------------- load: fixed rate


def _client(port: int, path: str, bodies: list[bytes], rate: float, seconds: float,
            headers: dict[str, str], queue: Any) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    lat: list[float] = []
    stages: list[dict[str, int]] = []
    errors = 0
    start = time.perf_counter() + 0.2
    n = min(len(bodies), int(rate * seconds))
    for i in range(n):
        due = start + i / rate
        now = time.perf_counter()
        if due > now:
            time.sleep(due - now)
        try:
            conn.request("POST", path, body=bodies[i], headers=headers)
            res = conn.getresponse()
            data = res.read()
        except OSError:
            errors += 1
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            continue
        lat.append(time.perf_counter() - due)
        if res.status != 200:
            errors += 1
        elif path == "/v1/decide" and i % 5 == 0:
            stages.append(json.loads(data)["latency_us"])
    queue.put((lat, stages, errors, time.perf_counter() - start))


def fixed_rate(port: int, path: str, bodies: list[bytes], rate: float, seconds: float,
               headers: dict[str, str], clients: int) -> dict[str, Any]:
    """Open-loop load at ``rate`` requests/s split over ``clients`` processes."""
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    per = [bodies[k::clients] for k in range(clients)]
    procs = [ctx.Process(target=_client, args=(port, path, per[k], rate / clients, seconds,
                                               headers, queue)) for k in range(clients)]
    for p in procs:
        p.start()
    results = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    lat = np.concatenate([np.asarray(r[0]) for r in results]) * 1000
    stages = [s for r in results for s in r[1]]
    errors = sum(r[2] for r in results)
    elapsed = max(r[3] for r in results)
    out: dict[str, Any] = {"requests": len(lat), "errors": errors,
                           "achieved_rps": len(lat) / elapsed,
                           "p50_ms": float(np.percentile(lat, 50)),
                           "p99_ms": float(np.percentile(lat, 99)),
                           "max_ms": float(lat.max())}
    if stages:
        for name in ("features", "model", "policy", "log", "total"):
            values = np.asarray([s[name] for s in stages]) / 1000
            out[f"{name}_p50_ms"] = float(np.percentile(values, 50))
            out[f"{name}_p99_ms"] = float(np.percentile(values, 99))
    return out


# ---------------------------------------------------------------------- load: wrk


WRK_LUA = """
local bodies = {}
local index = 0
local step = 1
function setup(thread)
  thread:set("offset", __THREAD__)
  __THREAD__ = __THREAD__ + 1
end
function init(args)
  for line in io.lines("__FILE__") do bodies[#bodies + 1] = line end
  index = offset
  step = __THREADS__
end
function request()
  index = index + step
  if index > #bodies then index = offset + 1 end
  return wrk.format("POST", "__PATH__", {["Content-Type"] = "application/json",
    ["X-API-Key"] = "__KEY__"}, bodies[index])
end
"""


def wrk_max(port: int, path: str, bodies: list[bytes], seconds: int, workdir: Path,
            threads: int = 2, connections: int = 32) -> dict[str, Any]:
    lines = workdir / f"bodies{path.replace('/', '_')}.jsonl"
    lines.write_bytes(b"\n".join(bodies) + b"\n")
    script = workdir / "post.lua"
    script.write_text("__THREAD__ = 0\n" + WRK_LUA.replace("__FILE__", str(lines)).replace(
        "__PATH__", path).replace("__KEY__", API_KEY).replace("__THREADS__", str(threads)))
    res = subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s",
                          "--latency", "-s", str(script), f"http://127.0.0.1:{port}"],
                         capture_output=True, text=True, check=True)
    text = res.stdout
    rps = float(next(ln.split()[1] for ln in text.splitlines() if ln.startswith("Requests/sec")))
    non2xx = next((int(ln.split()[-1]) for ln in text.splitlines()
                   if "Non-2xx" in ln), 0)
    p99 = next((ln.split()[1] for ln in text.splitlines() if ln.strip().startswith("99%")), "")
    return {"max_rps": rps, "non_2xx": non2xx, "wrk_p99": p99}


# ---------------------------------------------------------------------- the run


def bench_server(name: str, port: int, path: str, bodies: list[bytes], args: argparse.Namespace,
                 workdir: Path, pid: int) -> dict[str, Any]:
    headers = {"Content-Type": "application/json", "X-API-Key": API_KEY}
    out: dict[str, Any] = {"server": name}
    # warm-up (allocations, LightGBM, the first log batches)
    fixed_rate(port, path, bodies[:200], 100, 2, headers, 1)
    used = 200
    for rate in (100, 300):
        n = int(rate * args.seconds)
        chunk = bodies[used:used + n]
        used += n
        cpu = tree_cpu_seconds(pid)
        out[rate] = fixed_rate(port, path, chunk, rate, args.seconds, headers,
                               clients=2 if rate <= 100 else 3)
        out[rate]["cpu_ms_per_request"] = (tree_cpu_seconds(pid) - cpu) * 1000 / max(
            out[rate]["requests"], 1)
        print(f"  {name} @ {rate}/s: p50 {out[rate]['p50_ms']:.2f} ms, p99 "
              f"{out[rate]['p99_ms']:.2f} ms ({out[rate]['requests']} requests, "
              f"{out[rate]['errors']} errors)", flush=True)
    cpu = tree_cpu_seconds(pid)
    out["max"] = wrk_max(port, path, bodies[used:], args.max_seconds, workdir)
    served = out["max"]["max_rps"] * args.max_seconds
    out["max"]["cpu_ms_per_request"] = (tree_cpu_seconds(pid) - cpu) * 1000 / max(served, 1)
    print(f"  {name} max: {out['max']['max_rps']:.0f} req/s ({out['max']['non_2xx']} non-2xx)",
          flush=True)
    return out


def load_average() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def run(args: argparse.Namespace) -> dict[str, Any]:
    project = Path(args.project).resolve()
    workdir = Path(tempfile.mkdtemp(prefix="vc-bench-serve-"))
    env = {**os.environ, "VALUECHAIN_API_KEYS": API_KEY, "VALUECHAIN_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT / "src"), args.extra_path,
                                                       os.environ.get("PYTHONPATH", "")) if p)}
    total = 200 + int(100 * args.seconds) + int(300 * args.seconds) + 400_000
    events = make_events(project, min(total, args.max_bodies))
    bodies = [json.dumps(e).encode() for e in events]
    results: dict[str, Any] = {"load_before": load_average(), "servers": []}

    from valuechain.registry import Registry, default_registry
    from valuechain.serve.features import OnlineFeatures
    from valuechain.serve.state import MemoryState
    from valuechain.spec.loader import load_spec

    # feature vectors for the floor and MLflow (computed once, offline)
    bundle = Registry(default_registry(load_spec(project))).load()
    online = OnlineFeatures(bundle.plan(project), MemoryState())
    online.warm()
    feature_rows = []
    for ev in events[:5000]:
        checked = online.check_event(ev)
        feature_rows.append(online.compute(checked))
        online.apply_event(checked)
    vectors = [json.dumps({n: r.get(n) for n in bundle.feature_names}).encode()
               for r in feature_rows]
    vectors = (vectors * (len(bodies) // len(vectors) + 1))[:len(bodies)]

    wanted = {s.strip() for s in args.servers.split(",")}
    if "valuechain" in wanted:
        port = free_port()
        server_env = {**env, **dict(kv.split("=", 1) for kv in args.server_env)}
        proc = start_valuechain(project, port, workdir / "decisions.sqlite", server_env,
                                args.log_sync, args.workers, args.state, args.reasons)
        try:
            wait_ready(port, proc)
            print("valuechain serve (whole path)", flush=True)
            results["servers"].append(bench_server("valuechain", port, "/v1/decide", bodies,
                                                   args, workdir, proc.pid))
        finally:
            stop(proc)
    if "floor" in wanted:
        port = free_port()
        proc = start_floor(project, port, env)
        try:
            wait_ready(port, proc)
            print("floor (FastAPI, model only)", flush=True)
            results["servers"].append(bench_server("floor", port, "/predict", vectors, args,
                                                   workdir, proc.pid))
        finally:
            stop(proc)
    if args.mlflow_python and "mlflow" in wanted:
        model: Any = bundle.model
        matrix = model.matrix(pd.DataFrame(feature_rows, columns=list(bundle.feature_names)))
        names = [f"Column_{j}" for j in range(matrix.shape[1])]
        frames = [json.dumps({"dataframe_split": {"columns": names, "data": [
            [None if v != v else float(v) for v in row]]}}).encode() for row in matrix]
        frames = (frames * (len(bodies) // len(frames) + 1))[:len(bodies)]
        port = free_port()
        proc = start_mlflow(args.mlflow_python, project, port, workdir)
        try:
            wait_ready(port, proc)
            print("mlflow pyfunc server", flush=True)
            results["servers"].append(bench_server("mlflow", port, "/invocations", frames,
                                                   args, workdir, proc.pid))
        finally:
            stop(proc)
    if args.score_rows:
        results["score"] = bench_score(project, args.score_rows, workdir, env)
    results["load_after"] = load_average()
    shutil.rmtree(workdir, ignore_errors=True)
    return results


def bench_score(project: Path, rows: int, workdir: Path, env: dict[str, str]
                ) -> dict[str, Any]:
    """``valuechain score`` of ``rows`` events (the data's last rows, looped if needed)."""
    tx = pd.read_parquet(project / "data" / "transactions.parquet")
    take = tx.tail(rows) if rows <= len(tx) else tx
    path = workdir / "events.parquet"
    take.to_parquet(path)
    out = workdir / "scored.parquet"
    cmd = [sys.executable, "-c", "from valuechain.cli import main; main()", "score", "--spec",
           str(project), "--input", str(path), "--out", str(out), "--log",
           str(workdir / "score-log.sqlite"), "--top", "150", "--json"]
    started = time.perf_counter()
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - started
    payload = json.loads(res.stdout.strip().splitlines()[-1])
    print(f"score: {payload['rows']:,} rows in {payload['seconds']:.1f} s "
          f"({payload['rows_per_second']:,.0f} rows/s; {wall:.1f} s with start-up)", flush=True)
    return {**payload, "wall_seconds": wall}


def table(results: dict[str, Any]) -> str:
    servers = {s["server"]: s for s in results["servers"]}
    floor = servers.get("floor")
    lines = ["| server | p50 @100/s | p99 @100/s | p50 @300/s | p99 @300/s | max req/s "
             "(wrk, 32 conn) | ratio to floor (max) | server CPU ms/request (max) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, s in servers.items():
        ratio = (f"{s['max']['max_rps'] / floor['max']['max_rps']:.2f}×" if floor else "-")
        lines.append(f"| {name} | {s[100]['p50_ms']:.2f} ms | {s[100]['p99_ms']:.2f} ms | "
                     f"{s[300]['p50_ms']:.2f} ms | {s[300]['p99_ms']:.2f} ms | "
                     f"{s['max']['max_rps']:,.0f} | {ratio} | "
                     f"{s['max'].get('cpu_ms_per_request', float('nan')):.2f} |")
    vc = servers.get("valuechain")
    if vc and "features_p50_ms" in vc[100]:
        lines += ["", "Per stage inside the service (from each response's `latency_us`, every "
                  "5th request; `model` is the score and the reasons (TreeSHAP), `log` the wait "
                  "for the group commit):", "",
                  "| stage | p50 @100/s | p99 @100/s | p50 @300/s | p99 @300/s |",
                  "|---|---:|---:|---:|---:|"]
        for stage in ("features", "model", "policy", "log", "total"):
            lines.append(f"| {stage} | {vc[100][f'{stage}_p50_ms']:.3f} ms | "
                         f"{vc[100][f'{stage}_p99_ms']:.3f} ms | "
                         f"{vc[300][f'{stage}_p50_ms']:.3f} ms | "
                         f"{vc[300][f'{stage}_p99_ms']:.3f} ms |")
    if "score" in results:
        sc = results["score"]
        lines += ["", f"Batch: `valuechain score` of {sc['rows']:,} events: "
                  f"{sc['rows_per_second']:,.0f} rows/s ({sc['seconds']:.1f} s, "
                  f"{sc['wall_seconds']:.1f} s with start-up), logged and written with top-150 "
                  "per day."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--project", required=True, help="packaged, promoted project")
    parser.add_argument("--seconds", type=float, default=15.0, help="per fixed-rate phase")
    parser.add_argument("--max-seconds", type=int, default=10, help="wrk duration")
    parser.add_argument("--max-bodies", type=int, default=60_000)
    parser.add_argument("--score-rows", type=int, default=0)
    parser.add_argument("--mlflow-python", default="", help="a Python with mlflow installed")
    parser.add_argument("--extra-path", default="", help="prepended to the servers' "
                        "PYTHONPATH (e.g. a --target dir holding httptools and uvloop)")
    parser.add_argument("--log-sync", default="full", choices=("full", "normal"))
    parser.add_argument("--workers", type=int, default=1,
                        help="valuechain serve --workers (above 1 needs --state redis://...)")
    parser.add_argument("--state", default="memory", help="valuechain serve --state")
    parser.add_argument("--reasons", default="all", choices=("all", "flagged", "none"),
                        help="valuechain serve --reasons")
    parser.add_argument("--server-env", action="append", default=[], metavar="KEY=VALUE",
                        help="environment of the valuechain server (repeatable), e.g. "
                        "VALUECHAIN_REASONS_THREAD=1")
    parser.add_argument("--servers", default="valuechain,floor,mlflow",
                        help="comma-separated: valuechain, floor, mlflow")
    parser.add_argument("--write", action="store_true", help="append to RESULTS.md")
    parser.add_argument("--label", default="", help="a note for the RESULTS.md section")
    args = parser.parse_args(argv)
    results = run(args)
    text = table(results)
    print(text)
    print(f"load average before {results['load_before']}, after {results['load_after']}")
    (Path(tempfile.gettempdir()) / "vc-bench-serve.json").write_text(json.dumps(
        results, indent=1, default=str))
    if args.write:
        with (ROOT / "benchmarks" / "RESULTS.md").open("a", encoding="utf-8") as out:
            out.write(f"\n## Decision service (`benchmarks/serve.py`) {args.label}\n\n"
                      f"Loopback, 2 cores shared with the load generators; 1-min load average "
                      f"{results['load_before']} before, {results['load_after']} after.\n\n"
                      f"{text}\n")


if __name__ == "__main__":
    main()
