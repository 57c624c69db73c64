"""The web portal and console of a real `csmm serve`, over HTTP as a browser speaks it: log in
(Argon2id, cookies, rate limiting), CSRF, a customer's SLS change with inline refusals, and each
customer reaching only its own SLAs and invoices; the domain manager's console and bulk import."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import NamedTuple

import pytest
import yaml
from sqlalchemy import select

from controller.accounting.usage import add_meter_usage
from controller.store.database import Database
from controller.store.schema import WebUserRow
from tests.conftest import DEMO_FILE
from tests.integration.test_cli import run
from tests.integration.web_support import PASSWORD, WebClient, add_login, controller


@dataclass
class Portal:
    db: str
    base: str
    invoices: dict[str, str]     # customer -> its November invoice number

    def client(self) -> WebClient:
        return WebClient(self.base)

    def logged_in(self, name: str) -> WebClient:
        client = self.client()
        assert client.log_in(name).status == 303
        return client


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Portal]:
    directory = tmp_path_factory.mktemp("portal")
    db = f"sqlite:///{directory}/portal.sqlite3"
    run(db, "db", "upgrade")
    run(db, "--now", "2026-11-01T00:00:00Z", "apply", str(DEMO_FILE))      # a month to invoice
    run(db, "invoice", "issue", "--month", "2026-11")
    listed = json.loads(run(db, "invoice", "list", "--json").stdout)
    invoices = {i["customer"]: i["number"] for i in listed}
    for name, customer in (("alice", "acme"), ("gina", "globex"), ("ivan", "initech"), ("tess", "umbrella"),
                           ("noc", None)):
        add_login(db, name, customer)
    with controller(db, directory) as base:
        yield Portal(db, base, invoices)


def sls_of(portal: Portal, sla: str) -> dict[str, object]:
    return json.loads(run(portal.db, "sls", "show", sla, "--json").stdout)


def test_people_without_a_session_are_sent_to_the_login_page(portal: Portal) -> None:
    client = portal.client()
    answer = client.get("/portal/slas/acme-hq")
    assert answer.status == 303 and answer.location == "/login?next=/portal/slas/acme-hq"
    assert client.post("/portal/slas/acme-hq/sls", {"class": "gold", "bandwidth": "1M"}).status == 401
    assert client.get("/static/csmm.css").status == 200


def test_login_sets_a_strict_session_cookie_and_stores_only_an_argon2id_hash(portal: Portal) -> None:
    client = portal.client()
    answer = client.log_in("alice", next_path="/portal/invoices")
    assert answer.status == 303 and answer.location == "/portal/invoices"
    cookie = next(c for c in answer.set_cookies if c.startswith("csmm_session="))
    assert all(flag in cookie for flag in ("HttpOnly", "SameSite=Strict", "Secure", "Path=/"))
    assert "Content-Security-Policy" in client.get("/portal").headers
    with Database(portal.db).read() as session:
        stored = session.scalar(select(WebUserRow.password_hash).where(WebUserRow.name == "alice"))
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    for elsewhere in ("https://evil.example/", "//evil.example", "/\t/evil.example", "/\\evil.example",
                      "/\n/evil.example"):
        assert portal.client().log_in("alice", next_path=elsewhere).location == "/", elsewhere  # no open redirect
    failed_first = portal.client()
    assert 'value="/portal/usage"' in failed_first.log_in("alice", "wrong password", "/portal/usage").body
    replaced = dict(client.cookies)
    assert client.log_in("alice").status == 303                  # logging in again ends the previous session
    assert WebClient(portal.base, replaced).get("/portal").status == 303


def test_a_wrong_password_and_an_unknown_name_look_the_same(portal: Portal) -> None:
    wrong, unknown = portal.client().log_in("alice", "not the password"), portal.client().log_in("nobody", "x" * 12)
    assert wrong.status == unknown.status == 401
    assert "wrong login name or password" in wrong.body and "wrong login name or password" in unknown.body
    assert not any(c.startswith("csmm_session=") for c in wrong.set_cookies)


def test_repeated_failures_lock_that_name_from_that_address_with_429(portal: Portal) -> None:
    add_login(portal.db, "tom", "initech")
    for _ in range(5):
        assert portal.client().log_in("tom", "guess guess guess").status == 401
    locked = portal.client().log_in("tom")              # even the right password, while locked
    assert locked.status == 429 and 0 < int(locked.headers["Retry-After"]) <= 15 * 60
    assert "too many failed logins" in locked.body
    assert portal.client().log_in("ivan").status == 303   # another login is not affected


def test_a_post_without_the_session_csrf_token_or_from_another_origin_changes_nothing(portal: Portal) -> None:
    client = portal.logged_in("gina")
    before = sls_of(portal, "globex-main")
    for form in ({"class": "gold", "bandwidth": "1M"}, {"csrf": "forged", "class": "gold", "bandwidth": "1M"}):
        answer = client.post("/portal/slas/globex-main/sls", form)
        assert answer.status == 403 and "security token" in answer.body
    token = client.get("/portal/slas/globex-main").form_token()
    answer = client.post("/portal/slas/globex-main/sls", {"csrf": token, "class": "gold", "bandwidth": "1M"},
                         origin="https://evil.example")
    assert answer.status == 403 and "another site" in answer.body
    assert sls_of(portal, "globex-main") == before
    login = portal.client().post("/login", {"name": "gina", "password": PASSWORD})   # no login CSRF token
    assert login.status == 403
    assert client.post("/portal/slas/globex-main/sls", {"csrf": "jeton-forgé", "class": "gold"}).status == 403


def test_a_customer_changes_its_sls_and_refusals_show_inline_with_field_bound_and_next_time(portal: Portal) -> None:
    client = portal.logged_in("alice")
    page = client.get("/portal/slas/acme-hq")
    assert page.status == 200 and 'id="change-fee">0.10 USD' in page.body
    token = page.form_token()
    over = client.post("/portal/slas/acme-hq/sls", {"csrf": token, "class": "gold", "bandwidth": "9M"})
    assert over.status == 422
    assert "exceeds the SLA&#39;s gold maximum 3 Mbit/s" in over.body
    assert 'id="refusal-field">sls.bandwidth<' in over.body and "3 Mbit/s (3000000 bit/s)" in over.body
    assert 'value="9M"' in over.body and 'aria-invalid="true"' in over.body      # the form keeps what was asked
    assert sls_of(portal, "acme-hq")["class"] == "silver"
    junk = client.post("/portal/slas/acme-hq/sls", {"csrf": token, "class": "gold", "bandwidth": "lots"})
    assert junk.status == 422 and "is not a bandwidth" in junk.body

    done = client.post("/portal/slas/acme-hq/sls", {"csrf": token, "class": "gold", "bandwidth": "2M"})
    assert done.status == 303 and re.fullmatch(r"/portal/slas/acme-hq\?changed=\d+", done.location)
    shown = client.get(done.location)
    assert 'id="changed"' in shown.body and "2 Mbit/s" in shown.body and "fee 0.10 USD" in shown.body
    now = sls_of(portal, "acme-hq")
    assert (now["class"], now["bandwidth_bps"], now["channel"], now["changed_by"]) == \
        ("gold", 2_000_000, "web", "customer:acme")

    soon = client.post("/portal/slas/acme-hq/sls", {"csrf": token, "class": "silver", "bandwidth": "2M"})
    assert soon.status == 409 and "next change allowed" in soon.body and 'id="refusal-bound">2026' in soon.body
    assert sls_of(portal, "acme-hq")["class"] == "gold"


def test_a_customer_reaches_neither_another_customers_sla_nor_invoice_by_url(portal: Portal) -> None:
    client = portal.logged_in("tess")                  # umbrella
    own, theirs = portal.invoices["umbrella"], portal.invoices["globex"]
    for path in ("/portal/slas/globex-main", "/portal/slas/globex-main/conformance", f"/portal/invoices/{theirs}",
                 f"/portal/invoices/{theirs}?format=json", "/portal/slas/no-such-sla"):
        answer = client.get(path)
        assert answer.status == 404, path
        assert "globex" not in answer.body.replace("globex-main", "").lower() or "no SLA" in answer.body
    token = client.get("/portal").form_token()
    before = sls_of(portal, "globex-main")
    assert client.post("/portal/slas/globex-main/sls", {"csrf": token, "class": "gold", "bandwidth": "1M"}).status \
        == 404
    assert sls_of(portal, "globex-main") == before
    printable = client.get(f"/portal/invoices/{own}")
    assert printable.status == 200 and "<style" in printable.body and "<script" not in printable.body
    assert "style-src 'unsafe-inline'" in printable.headers["Content-Security-Policy"]   # its inline CSS applies
    mine = client.get(f"/portal/invoices/{own}?format=json")
    assert mine.status == 200 and json.loads(mine.body)["customer"] == "umbrella"
    assert mine.headers["Content-Disposition"] == f'attachment; filename="{own}.json"'
    listed = client.get("/portal/invoices").body
    assert own in listed and theirs not in listed
    assert client.get("/console").location == "/portal"           # the console is the domain manager's
    assert client.send("GET", "/api/v1/slas").status == 401       # a session cookie does not open the API


def test_logging_out_or_removing_the_login_ends_the_session(portal: Portal) -> None:
    client = portal.logged_in("ivan")
    kept = dict(client.cookies)
    token = client.get("/portal").form_token()
    assert client.post("/logout", {"csrf": token}).location == "/login"
    replay = WebClient(portal.base, kept)
    assert replay.get("/portal").status == 303                     # the old cookie is dead on the server
    add_login(portal.db, "ivan2", "initech")
    other = portal.logged_in("ivan2")
    assert other.get("/portal").status == 200
    run(portal.db, "web", "user", "remove", "ivan2")
    assert other.get("/portal").status == 303


class _Delta(NamedTuple):
    octets: int
    packets: int
    drops: int


def test_conformance_page_charts_metered_throughput_against_the_sls(portal: Portal) -> None:
    client = portal.logged_in("gina")
    page = client.get("/portal/slas/globex-main/conformance")
    assert page.status == 200 and "<svg" in page.body and 'class="agreed agreed-' in page.body
    assert "no measurements in this period" in page.body
    with Database(portal.db).write() as session:                   # what the southbound meters from counters
        add_meter_usage(session, {("globex-main", "silver"): _Delta(450_000_000, 300_000, 0)}, {"silver": 34},
                        datetime.now(timezone.utc))
    page = client.get("/portal/slas/globex-main/conformance?hours=6")
    assert 'class="measured measured-silver"' in page.body and page.body.count('class="point point-silver"') == 1


def test_the_domain_manager_manages_customers_and_slas_and_sees_refusals_on_the_form(portal: Portal) -> None:
    client = portal.logged_in("noc")
    assert client.get("/").location == "/console" and client.get("/portal").location == "/console"
    for path in ("/console", "/console/customers", "/console/slas", "/console/slas/acme-hq", "/console/topology",
                 "/console/routers", "/console/violations", "/console/revenue?month=2026-11", "/console/import"):
        assert client.get(path).status == 200, path
    revenue = client.get("/console/revenue?month=2026-11").body
    assert "gsb-business" in revenue and 'id="revenue"' in revenue
    assert "core-egress" in client.get("/console/topology").body
    token = client.get("/console/customers").form_token()
    assert client.post("/console/customers", {"csrf": token, "name": "hooli", "kind": "customer"}).status == 303
    duplicate = client.post("/console/customers", {"csrf": token, "name": "hooli", "kind": "customer"})
    assert duplicate.status == 422 and 'id="refusal"' in duplicate.body
    form = {"csrf": token, "name": "hooli-1", "customer": "hooli", "offering": "gsb-business", "router": "edge1",
            "interface": "eth2", "access_speed": "10M", "prefixes": "198.19.9.0/24", "state": "operational",
            "class": "", "bandwidth": ""}
    refused = client.post("/console/slas", form)
    assert refused.status == 409 and "link[core-egress].gold" in refused.body and 'value="hooli-1"' in refused.body
    assert run(portal.db, "sla", "show", "hooli-1", check=False).returncode == 3     # nothing created
    no_speed = client.post("/console/slas", {**form, "access_speed": ""})
    assert no_speed.status == 422 and "attachment.access_speed is required" in no_speed.body
    created = client.post("/console/slas", {**form, "offering": "gsb-economy", "interface": "eth3", "router": "edge2",
                                            "silver_min": "1M", "silver_max": "4M", "bronze_min": "1M",
                                            "bronze_max": "10M", "class": "bronze", "bandwidth": "2M"})
    assert created.status == 303 and created.location == "/console/slas/hooli-1?created=1"
    terms = {"csrf": token, "offering": "gsb-economy", "access_speed": "10M", "prefixes": "198.19.9.0/24",
             "silver_min": "1M", "silver_max": "4M", "bronze_min": "1M", "bronze_max": "99M"}
    unknown = client.post("/console/slas/hooli-1", {**terms, "offering": "gsb-platinum"})
    assert unknown.status == 422 and 'id="refusal"' in unknown.body and "gsb-platinum" in unknown.body
    too_big = client.post("/console/slas/hooli-1", terms)
    assert too_big.status == 422 and "bounds.bronze" in too_big.body
    saved = client.post("/console/slas/hooli-1", {**terms, "bronze_max": "8M"})
    assert saved.status == 303 and "?saved=1" in saved.location, re.findall(r'<strong>(.*?)</strong>', saved.body)
    assert json.loads(run(portal.db, "sla", "show", "hooli-1", "--json").stdout)["bounds"]["bronze"]["max"] \
        == 8_000_000


def test_bulk_import_applies_a_file_with_progress_or_refuses_it_whole(portal: Portal, tmp_path: Path) -> None:
    client = portal.logged_in("noc")
    token = client.get("/console/import").form_token()
    data = yaml.safe_load(DEMO_FILE.read_text())
    template = data["customers"][0]["slas"][0]
    data["customers"] = [{"name": f"bulk{i}", "slas": [{**template, "name": f"bulk{i}-sla",
                                                        "bounds": {"bronze": {"min": "1M", "max": "1M"}},
                                                        "access_speed": "1M", "prefixes": [f"198.18.{40 + i // 256}."
                                                                                           f"{i % 256}/32"],
                                                        "sls": {"class": "bronze", "bandwidth": "1M"}}]}
                         for i in range(150)]
    job = _upload(client, token, "bulk.yaml", yaml.safe_dump(data).encode())
    assert job.status == 303 and job.location.startswith("/console/import/")
    page = _until_finished(client, job.location)
    assert 'id="import-state">done<' in page and "SLAs: 150 created" in page, page
    assert len(json.loads(run(portal.db, "sla", "list", "--json").stdout)) >= 155

    data["customers"] = [{"name": "bulkbad", "slas": [{**template, "name": "bulkbad-sla",
                                                       "bounds": {"gold": {"min": "1M", "max": "900M"}}}]}]
    refused = _until_finished(client, _upload(client, token, "bad.yaml", yaml.safe_dump(data).encode()).location)
    assert 'id="import-state">refused<' in refused and 'id="refusal"' in refused
    assert run(portal.db, "sla", "show", "bulkbad-sla", check=False).returncode == 3


def _upload(client: WebClient, token: str, filename: str, content: bytes) -> object:
    boundary = "csmmboundary7f3a"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{token}\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n"
            f"Content-Type: application/yaml\r\n\r\n").encode() + content + f"\r\n--{boundary}--\r\n".encode()
    return client.send("POST", "/console/import", body, content_type=f"multipart/form-data; boundary={boundary}")


def _until_finished(client: WebClient, location: str) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        page = client.get(location).body
        if 'http-equiv="refresh"' not in page:
            return page
        assert "<progress" in page
        time.sleep(0.2)
    raise AssertionError("the import did not finish in 60 s")
