"""A real `csmm serve` for the web tests (REST, portal, browser), and a small cookie-keeping HTTP
client that shows every answer as it is (no redirect followed) so tests can assert on 303s."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path

from tests.integration.snmp_support import free_tcp_port, wait_until
from tests.integration.test_cli import CSMM, run

PASSWORD = "correct horse battery"


@contextmanager
def controller(db: str, directory: Path) -> Iterator[str]:
    """`csmm serve` (HTTP only) on a free port of 127.0.0.1; yields its base URL, stops it after."""
    port = free_tcp_port()
    log = (directory / "serve.log").open("w")
    process = subprocess.Popen([CSMM, "--db", db, "serve", "--no-agents", "--no-snmp", "--no-netconf", "--http",
                                f"127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=1) as response:
                return response.status == 200
        except OSError:
            return False
    try:
        wait_until("the controller's HTTP endpoint", healthy, timeout=30)
        yield base
    finally:
        os.kill(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
        log.close()


def add_login(db: str, name: str, customer: str | None = None, password: str = PASSWORD) -> None:
    run(db, "web", "user", "add", name, *(("--customer", customer) if customer else ()), "--password-from-stdin",
        input=password + "\n")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


@dataclass
class Answer:
    status: int
    body: str
    headers: dict[str, str]
    set_cookies: list[str]

    @property
    def location(self) -> str:
        return self.headers.get("Location", "")

    def form_token(self, action: str | None = None) -> str:
        """The CSRF token of the page's first form (or of its form posting to `action`)."""
        form = r'<form[^>]*action="' + re.escape(action) + r'"[^>]*>\s*' if action else ""
        found = re.search(form + r'<input type="hidden" name="csrf" value="([^"]*)"', self.body)
        assert found, f"the page has no form {action or ''} with a CSRF token"
        return found.group(1)


@dataclass
class WebClient:
    """A person's browser, reduced to cookies: Secure cookies are kept for 127.0.0.1 like
    browsers keep them for loopback addresses."""

    base: str
    cookies: dict[str, str] = field(default_factory=dict)
    address: str = ""

    def get(self, path: str) -> Answer:
        return self.send("GET", path)

    def post(self, path: str, form: dict[str, str], origin: str | None = None) -> Answer:
        return self.send("POST", path, urllib.parse.urlencode(form).encode(), origin)

    def send(self, method: str, path: str, data: bytes | None = None, origin: str | None = None,
             content_type: str = "application/x-www-form-urlencoded") -> Answer:
        request = urllib.request.Request(self.base + path, data=data, method=method)
        if self.cookies:
            request.add_header("Cookie", "; ".join(f"{k}={v}" for k, v in self.cookies.items()))
        if data is not None:
            request.add_header("Content-Type", content_type)
        if origin is not None:
            request.add_header("Origin", origin)
        opener = urllib.request.build_opener(_NoRedirect)
        try:
            with opener.open(request, timeout=20) as response:
                answer = Answer(response.status, response.read().decode(), dict(response.headers),
                                response.headers.get_all("Set-Cookie") or [])
        except urllib.error.HTTPError as error:
            answer = Answer(error.code, error.read().decode(), dict(error.headers),
                            error.headers.get_all("Set-Cookie") or [])
        for header in answer.set_cookies:
            for name, morsel in SimpleCookie(header).items():
                if morsel["max-age"] == "0" or morsel.value == "":
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value
        return answer

    def log_in(self, name: str, password: str = PASSWORD, next_path: str = "/") -> Answer:
        token = self.get("/login").form_token("/login")
        return self.post("/login", {"csrf": token, "name": name, "password": password, "next": next_path})
