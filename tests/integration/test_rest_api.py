"""The REST API of a real `csmm serve`: bearer tokens, each customer reaching only its own SLAs,
the SLS changed within the SLA's bounds, conformance as the CLI shows it, JSON refusals."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DEMO_FILE
from tests.integration.test_cli import run
from tests.integration.web_support import controller


@dataclass
class Api:
    db: str
    base: str
    tokens: dict[str, str]

    def call(self, method: str, path: str, who: str | None = None, body: Any = None,
             raw: bytes | None = None) -> tuple[int, Any, dict[str, str]]:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        request = urllib.request.Request(self.base + path, data=data, method=method)
        if who is not None:
            request.add_header("Authorization", f"Bearer {self.tokens.get(who, who)}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read()), dict(response.headers)
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read()), dict(error.headers)


def token(db: str, name: str, *customer: str) -> str:
    out = run(db, "api", "token", "add", name, *(("--customer", customer[0]) if customer else ())).stdout
    return out.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    directory = tmp_path_factory.mktemp("rest")
    db = f"sqlite:///{directory}/rest.sqlite3"
    run(db, "db", "upgrade")
    run(db, "apply", str(DEMO_FILE))
    tokens = {"acme": token(db, "acme-app", "acme"), "globex": token(db, "globex-app", "globex"),
              "operator": token(db, "noc")}
    with controller(db, directory) as base:
        yield Api(db, base, tokens)


def test_a_request_without_a_valid_token_is_refused_with_401(api: Api) -> None:
    for who in (None, "not-a-token"):
        status, body, headers = api.call("GET", "/api/v1/slas", who)
        assert status == 401 and body["error"] == "unauthenticated"
        assert headers["WWW-Authenticate"].startswith("Bearer")


def test_each_customer_sees_only_its_own_slas_and_another_ones_answers_like_a_missing_one(api: Api) -> None:
    status, slas, _ = api.call("GET", "/api/v1/slas", "acme")
    assert status == 200 and [s["name"] for s in slas] == ["acme-hq"]
    assert slas[0]["sls"]["class"] == "silver"
    _, everything, _ = api.call("GET", "/api/v1/slas", "operator")
    assert len(everything) == 5
    for path in ("/api/v1/slas/globex-main", "/api/v1/slas/globex-main/sls", "/api/v1/slas/globex-main/conformance"):
        status, body, _ = api.call("GET", path, "acme")
        missing, nothing, _ = api.call("GET", path.replace("globex-main", "no-such-sla"), "acme")
        assert (status, missing) == (404, 404)
        assert body["error"] == nothing["error"] == "not-found"
    status, refused, _ = api.call("PUT", "/api/v1/slas/globex-main/sls", "acme", {"class": "gold",
                                                                                  "bandwidth_bps": 1_000_000})
    assert status == 404


def test_a_customer_changes_its_sls_and_an_out_of_bounds_value_names_the_field_and_bound(api: Api) -> None:
    status, body, _ = api.call("PUT", "/api/v1/slas/acme-hq/sls", "acme", {"class": "gold", "bandwidth_bps": 9_000_000})
    assert status == 422
    assert (body["field"], body["bound"], body["value"]) == ("sls.bandwidth", 3_000_000, 9_000_000)
    assert "exceeds the SLA's gold maximum 3 Mbit/s" in body["message"]
    assert json.loads(run(api.db, "sls", "show", "acme-hq", "--json").stdout)["class"] == "silver"   # unchanged
    status, changed, _ = api.call("PUT", "/api/v1/slas/acme-hq/sls", "acme", {"class": "gold",
                                                                              "bandwidth_bps": 2_000_000})
    assert status == 200 and changed["changed"] and changed["channel"] == "rest"
    shown = json.loads(run(api.db, "sls", "show", "acme-hq", "--json").stdout)
    assert (shown["class"], shown["bandwidth_bps"], shown["version"]) == ("gold", 2_000_000, changed["version"])
    status, too_soon, _ = api.call("PUT", "/api/v1/slas/acme-hq/sls", "acme", {"class": "silver",
                                                                               "bandwidth_bps": 5_000_000})
    assert status == 409 and too_soon["error"] == "too-soon"


@pytest.mark.parametrize("body, field", [
    (b"not json", "body"), (b"[1, 2]", "body"), (b'{"bandwidth_bps": 1000000}', "class"),
    (b'{"class": "gold", "bandwidth_bps": "1M"}', "bandwidth_bps"),
    (b'{"class": "platinum", "bandwidth_bps": 1000000}', "sls.class")])
def test_a_malformed_change_is_a_422_naming_the_field(api: Api, body: bytes, field: str) -> None:
    status, refused, _ = api.call("PUT", "/api/v1/slas/globex-main/sls", "globex", raw=body)
    assert status == 422 and refused["field"] == field


def test_conformance_reads_as_the_cli_shows_it(api: Api) -> None:
    status, conformance, _ = api.call("GET", "/api/v1/slas/globex-main/conformance", "globex")
    cli = next(r for r in json.loads(run(api.db, "conformance", "--json").stdout) if r["sla"] == "globex-main")
    assert status == 200 and conformance == cli
    assert conformance["loss_bound_ppm"] == 100 and conformance["state"] == "unknown"   # no agents here


def test_invoices_are_listed_per_customer_and_the_openapi_document_needs_no_token(api: Api) -> None:
    status, invoices, _ = api.call("GET", "/api/v1/invoices?month=2026-11", "acme")
    assert status == 200 and invoices == []
    status, refused, _ = api.call("GET", "/api/v1/invoices?month=garbage", "acme")
    assert status == 422 and refused["field"] == "month"
    status, document, _ = api.call("GET", "/api/v1/openapi.json")
    assert status == 200 and document["openapi"].startswith("3.")
    assert "/api/v1/slas/{sla}/conformance" in document["paths"]


def test_a_removed_token_is_refused_at_once(api: Api, tmp_path: Path) -> None:
    extra = token(api.db, "temporary", "globex")
    assert api.call("GET", "/api/v1/slas", extra)[0] == 200
    run(api.db, "api", "token", "remove", "temporary")
    assert api.call("GET", "/api/v1/slas", extra)[0] == 401
    listed = run(api.db, "api", "tokens").stdout
    assert "acme-app" in listed and extra not in listed


def test_usage_is_the_customers_own_and_agent_status_is_the_domain_managers(api: Api) -> None:
    status, usage, _ = api.call("GET", "/api/v1/customers/initech/usage?month=2026-11", "operator")
    cli = json.loads(run(api.db, "report", "usage", "initech", "--month", "2026-11", "--json").stdout)
    assert status == 200 and usage == cli
    assert api.call("GET", "/api/v1/customers/initech/usage", "acme")[0] == 404
    status, refused, _ = api.call("GET", "/api/v1/customers/acme/usage?month=9999-12", "acme")
    assert status == 422 and refused["field"] == "month"
    status, agents, _ = api.call("GET", "/api/v1/agents", "operator")
    assert status == 200 and agents == json.loads(run(api.db, "agents", "--json").stdout)
    status, forbidden, _ = api.call("GET", "/api/v1/agents", "acme")
    assert status == 403 and forbidden["error"] == "forbidden"


def test_the_domain_manager_adds_a_customer_and_creates_modifies_and_moves_an_sla(api: Api) -> None:
    status, added, _ = api.call("POST", "/api/v1/customers", "operator", {"name": "hooli", "display_name": "Hooli"})
    assert status == 201 and added == {"name": "hooli", "kind": "customer", "display_name": "Hooli"}
    assert api.call("POST", "/api/v1/customers", "operator", {"name": "hooli"})[0] == 409
    attachment = {"router": "edge1", "interface": "eth2", "access_speed_bps": 10_000_000,
                  "prefixes": ["198.19.9.0/24"]}
    spec = {"name": "hooli-1", "customer": "hooli", "offering": "gsb-business", "attachment": attachment,
            "state": "operational"}
    # The offering's default bounds reserve more Gold than the core-egress link's share: admission refuses.
    status, refused, _ = api.call("POST", "/api/v1/slas", "operator", spec)
    assert status == 409 and refused["error"] == "capacity-exceeded"
    assert (refused["field"], refused["bound"]) == ("link[core-egress].gold", 12_000_000)
    assert api.call("GET", "/api/v1/slas/hooli-1", "operator")[0] == 404          # nothing was created
    bounds = {"gold": {"min_bps": 1_000_000, "max_bps": 1_000_000}, "bronze": {"min_bps": 1_000_000,
                                                                               "max_bps": 5_000_000}}
    status, created, _ = api.call("POST", "/api/v1/slas", "operator",
                                  {**spec, "bounds": bounds, "initial_class": "bronze"})
    assert status == 201 and created["state"] == "operational" and created["sls"]["class"] == "bronze"
    assert json.loads(run(api.db, "sla", "show", "hooli-1", "--json").stdout)["bounds"]["gold"]["max"] == 1_000_000
    status, refused, _ = api.call("PATCH", "/api/v1/slas/hooli-1", "operator",
                                  {"bounds": {**bounds, "gold": {"min_bps": 1_000_000, "max_bps": 50_000_000}}})
    assert status == 422 and refused["field"].startswith("bounds.gold")
    status, changed, _ = api.call("PATCH", "/api/v1/slas/hooli-1", "operator", {"access_speed_bps": 8_000_000})
    assert status == 200 and changed["attachment"]["access_speed_bps"] == 8_000_000
    assert changed["bounds"]["gold"]["max"] == 1_000_000                       # the terms not given are kept
    status, ending, _ = api.call("PATCH", "/api/v1/slas/hooli-1", "operator", {"valid_until": "2027-06-30T00:00:00Z"})
    assert status == 200 and ending["valid_until"] == "2027-06-30T00:00:00+00:00"
    assert api.call("PATCH", "/api/v1/slas/hooli-1", "operator", {"access_speed_bps": 9_000_000})[1]["valid_until"] \
        == "2027-06-30T00:00:00+00:00"                                          # absent: kept
    status, open_ended, _ = api.call("PATCH", "/api/v1/slas/hooli-1", "operator", {"valid_until": None})
    assert status == 200 and open_ended["valid_until"] is None                 # null: open-ended again
    status, moved, _ = api.call("PUT", "/api/v1/slas/hooli-1/state", "operator", {"state": "offered"})
    assert status == 409 and moved["error"] == "conflict"                      # states only move forward
    status, moved, _ = api.call("PUT", "/api/v1/slas/hooli-1/state", "operator", {"state": "deinstalled"})
    assert status == 200 and moved["state"] == "deinstalled"


def test_customers_cannot_create_or_modify_slas_and_bad_bodies_name_the_field(api: Api) -> None:
    status, refused, _ = api.call("PATCH", "/api/v1/slas/acme-hq", "acme", {"access_speed_bps": 1_000_000})
    assert status == 403 and refused["error"] == "forbidden"
    assert api.call("POST", "/api/v1/customers", "acme", {"name": "evil"})[0] == 403
    status, mine, _ = api.call("GET", "/api/v1/customers", "acme")
    assert status == 200 and [c["name"] for c in mine] == ["acme"]
    status, refused, _ = api.call("PATCH", "/api/v1/slas/acme-hq", "operator", {"bogus": 1})
    assert status == 422 and refused["field"] == "bogus"
    status, refused, _ = api.call("POST", "/api/v1/slas", "operator", {"name": "x", "customer": "acme"})
    assert status == 422 and refused["field"] in ("offering", "attachment")
    assert json.loads(run(api.db, "sla", "show", "acme-hq", "--json").stdout)["attachment"]["access_speed_bps"] \
        == 20_000_000
