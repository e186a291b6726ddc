"""The HTTP app in process (TestClient): auth, validation, limits, health, metrics, OpenAPI,
outcomes, real-time capacity overflow."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from valuechain.errors import SpecError
from valuechain.serve.app import create_app, read_api_keys
from valuechain.serve.service import open_service

from .serve_world import API_KEY, HEADERS, event, packaged_project

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return packaged_project(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def client(project: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    log = tmp_path_factory.mktemp("applog") / "decisions.sqlite"
    service = open_service(project, log_path=log)
    app = create_app(service, api_keys=[API_KEY, "second-key"], max_body_bytes=4096)
    with TestClient(app) as c:
        yield c


def test_decide_returns_a_logged_decision(client: TestClient) -> None:
    res = client.post("/v1/decide", json=event(1), headers=HEADERS)
    assert res.status_code == 200, res.text
    body = res.json()
    assert body["action"] == "approve" and 0 <= body["score"] <= 1
    assert body["bundle_version"].startswith("v") and body["policy_version"].startswith(
        "three_band@")
    assert len(body["reasons"]) == 3 and {"feature", "value", "contribution"} <= set(
        body["reasons"][0])
    assert set(body["latency_us"]) == {"features", "model", "policy", "log", "total"}
    log = client.app.state.service.log  # type: ignore[attr-defined]
    logged = log.get(body["decision_id"])
    assert logged is not None and logged["score"] == body["score"]
    assert logged["event"]["transaction_id"] == event(1)["transaction_id"]
    reviewed = client.post("/v1/decide", json=event(2, review=True), headers=HEADERS).json()
    assert reviewed["action"] == "review" and reviewed["overflow"] is False


@pytest.mark.parametrize("headers", [{}, {"X-API-Key": "wrong"},
                                     {"Authorization": "Bearer wrong"},
                                     {"Authorization": "Basic " + API_KEY}])
def test_without_a_valid_key_401(client: TestClient, headers: dict[str, str]) -> None:
    res = client.post("/v1/decide", json=event(3), headers=headers)
    assert res.status_code == 401
    assert "API key" in res.json()["detail"] and res.headers["www-authenticate"] == "Bearer"
    assert client.get("/metrics", headers=headers).status_code == 401


def test_bearer_and_second_key_work(client: TestClient) -> None:
    assert client.post("/v1/decide", json=event(4), headers={
        "Authorization": f"Bearer {API_KEY}"}).status_code == 200
    assert client.post("/v1/decide", json=event(5), headers={
        "X-API-Key": "second-key"}).status_code == 200


def test_validation_errors_are_422_naming_the_field(client: TestClient) -> None:
    missing = {k: v for k, v in event(6).items() if k != "amount"}
    res = client.post("/v1/decide", json=missing, headers=HEADERS)
    assert res.status_code == 422
    assert "'amount'" in res.json()["detail"] and "Traceback" not in res.text
    typed = {**event(7), "customer_id": "not-a-number"}
    res = client.post("/v1/decide", json=typed, headers=HEADERS)
    assert res.status_code == 422 and "customer_id" in res.json()["detail"]
    res = client.post("/v1/decide", content=b"{not json", headers={
        **HEADERS, "Content-Type": "application/json"})
    assert res.status_code == 422 and "not valid JSON" in res.json()["detail"]
    res = client.post("/v1/decide", json=[event(8)], headers=HEADERS)
    assert res.status_code == 422 and "JSON object" in res.json()["detail"]
    res = client.post("/v1/outcomes", json={"rows": []}, headers=HEADERS)
    assert res.status_code == 422
    assert "`source`" in res.json()["detail"] and "`rows`" in res.json()["detail"]
    assert "Traceback" not in res.text
    log = client.app.state.service.log  # type: ignore[attr-defined]
    assert not log.read(where="key = ?", params=(str(event(6)["transaction_id"]),)).shape[0]


def test_body_over_the_limit_is_413(client: TestClient) -> None:
    big = {**event(9), "padding": "x" * 5000}
    res = client.post("/v1/decide", json=big, headers=HEADERS)
    assert res.status_code == 413 and "4,096 bytes" in res.json()["detail"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while streaming
        yield b'{"padding": "'
        for _ in range(10):
            yield b"y" * 1000
        yield b'"}'

    res = client.post("/v1/decide", content=chunks(), headers=HEADERS)
    assert res.status_code == 413


def test_health_metrics_and_openapi(client: TestClient) -> None:
    health = client.get("/health")  # no key needed
    assert health.status_code == 200 and health.json()["status"] == "ok"
    client.post("/v1/decide", json=event(10), headers=HEADERS)
    text = client.get("/metrics", headers=HEADERS).text
    for stage in ("features", "model", "policy", "log"):
        assert f'valuechain_stage_duration_seconds_count{{stage="{stage}"}}' in text
    assert 'valuechain_decisions_total{action="approve"}' in text
    assert 'valuechain_requests_total{endpoint="/v1/decide",status="401"}' in text
    assert "# TYPE valuechain_stage_duration_seconds histogram" in text
    schema = client.get("/openapi.json").json()
    assert {"/v1/decide", "/v1/outcomes", "/v1/dimensions", "/health", "/metrics"} <= set(
        schema["paths"])
    assert "ApiKey" in schema["components"]["securitySchemes"]
    decide = schema["paths"]["/v1/decide"]["post"]
    assert "transaction_id" in decide["requestBody"]["content"]["application/json"][
        "schema"]["required"]


def test_outcomes_feed_outcome_features(client: TestClient) -> None:
    first = client.post("/v1/decide", json=event(11), headers=HEADERS).json()
    res = client.post("/v1/outcomes", json={"source": "chargebacks", "rows": [{
        "chargeback_id": 99_000_001, "transaction_id": event(11)["transaction_id"],
        "reported_at": "2025-09-29T15:00:00", "amount": 20.0}]}, headers=HEADERS)
    assert res.status_code == 200, res.text
    assert res.json() == {"accepted": 1}
    log = client.app.state.service.log  # type: ignore[attr-defined]
    kinds = [e.kind for e in log.journal()]
    assert "outcome" in kinds
    later = client.post("/v1/decide", json=event(12, hour=16), headers=HEADERS).json()
    before = log.get(first["decision_id"])["features"]
    after = log.get(later["decision_id"])["features"]
    assert after["terminal_fraud_rate_7d"] != before["terminal_fraud_rate_7d"]
    good_row = {"chargeback_id": 99_000_002, "transaction_id": event(12)["transaction_id"],
                "reported_at": "2025-09-29T17:00:00", "amount": 20.0}
    journal_before = len(list(log.journal()))
    online = client.app.state.service.online  # type: ignore[attr-defined]
    probe = online.check_event(event(13, hour=18))
    features_before = online.compute(probe)
    bad = client.post("/v1/outcomes", json={"source": "chargebacks", "rows": [
        good_row, {"x": 1}]}, headers=HEADERS)
    assert bad.status_code == 422 and "Traceback" not in bad.text
    assert "`rows.1`" in bad.json()["detail"] and "No row" in bad.json()["detail"]
    assert len(list(log.journal())) == journal_before  # the good row was not journaled
    assert online.compute(probe) == features_before  # nor applied
    unknown = client.post("/v1/outcomes", json={"source": "nope", "rows": [good_row]},
                          headers=HEADERS)
    assert unknown.status_code == 422 and "nope" in unknown.json()["detail"]


def test_capacity_overflow_in_real_time(project: Path, tmp_path: Path) -> None:
    service = open_service(project, log_path=tmp_path / "log.sqlite", capacity_limit=2)
    app = create_app(service, api_keys=[API_KEY])
    with TestClient(app) as c:
        answers = [c.post("/v1/decide", json=event(100 + i, review=True), headers=HEADERS
                          ).json() for i in range(4)]
        next_day = c.post("/v1/decide", json=event(200, review=True, day="2025-09-30"),
                          headers=HEADERS).json()
        text = c.get("/metrics", headers=HEADERS).text
    assert [a["action"] for a in answers] == ["review", "review", "approve", "approve"]
    assert [a["overflow"] for a in answers] == [False, False, True, True]
    assert all(a["policy_action"] == "review" for a in answers)
    assert "capacity 2 per 1d is full" in answers[2]["capacity_note"]
    assert "overflow rule `approve`" in answers[2]["capacity_note"]
    assert next_day["action"] == "review"  # a new period has room again
    assert 'valuechain_capacity_overflow_total{action="review"} 2' in text


def test_no_api_key_refuses_to_start(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="VALUECHAIN_API_KEYS"):
        create_app(None, api_keys=[])  # type: ignore[arg-type]
    keys = tmp_path / "keys.txt"
    keys.write_text("# ops\nk1\n\nk2\n")
    assert read_api_keys({"VALUECHAIN_API_KEYS": "k3"}, keys) == {"k1", "k2", "k3"}


def test_concurrent_events_of_one_customer_see_each_other(client: TestClient) -> None:
    import asyncio

    import httpx

    app = client.app
    n = 12

    async def burst() -> list[dict[str, object]]:
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://test",
                                     headers=HEADERS) as ac:
            responses = await asyncio.gather(*[
                ac.post("/v1/decide", json=event(500 + i, customer=850_000_001, minute=i))
                for i in range(n)])
        return [r.json() for r in responses]

    answers = asyncio.run(burst())
    log = client.app.state.service.log  # type: ignore[attr-defined]
    counts = sorted(log.get(a["decision_id"])["features"]["cust_count_1d"] for a in answers)
    assert counts == list(range(1, n + 1))  # each saw every payment decided before it
