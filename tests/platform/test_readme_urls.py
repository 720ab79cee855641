"""Every URL of the README's "With `make run` up" table works, offline, on the stack `make run` runs.

The web process is started as ``make run`` starts it: ``collectstatic`` with the production static
storage (hashed, compressed names), then gunicorn with DEBUG unset (off by default) and whitenoise
serving the assets. Each URL the table lists on the web process must answer 200, or redirect to
the admin login page for the login-protected admin. The API docs pages (Swagger UI, ReDoc) and the
browsable API root must reference no host but the server's own, and every asset they reference
must be served: on a machine without internet they render, and they pin what they load.
URLs of other processes in the table (RabbitMQ management) must be on loopback.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from tests.fuzz.live import ROOT, Gunicorn, raw_request

WEB = "127.0.0.1:8000"
_ATTRIBUTE_URL = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", re.IGNORECASE)

pytestmark = pytest.mark.django_db(transaction=True)


def readme_urls() -> list[str]:
    """The URLs in the README table that follows "With `make run` up:"."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("With `make run` up:", 1)[1].lstrip("\n")
    table = []
    for line in section.splitlines():
        if not line.startswith("|"):
            break
        table.append(line)
    return re.findall(r"https?://[^\s|·)]+", "\n".join(table))


@pytest.fixture(scope="module")
def web(django_db_setup) -> Iterator[Gunicorn]:  # type: ignore[no-untyped-def]
    static_root = tempfile.mkdtemp(prefix="tourapp-static-")
    env = {"STATIC_ROOT": static_root, "TOURAPP_TESTING": "0", "REDIS_KEY_PREFIX": f"readme.{uuid.uuid4().hex[:8]}"}
    server = Gunicorn(extra_env=env)
    collect = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
        cwd=ROOT,
        env=server.environment(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert collect.returncode == 0, collect.stderr
    with server:
        yield server


def _get(server: Gunicorn, path: str, accept: str = "*/*"):  # type: ignore[no-untyped-def]
    return raw_request(server.port, "GET", path, headers=[("Accept", accept)])


def test_the_readme_table_lists_the_api_root_docs_admin_health_and_metrics():
    paths = {urlsplit(url).path for url in readme_urls() if urlsplit(url).netloc == WEB}
    assert {"/api/", "/api/schema/", "/api/docs/", "/api/redoc/", "/admin/", "/health/live", "/metrics"} <= paths


def test_every_readme_url_of_the_web_process_answers_200_or_the_admin_login_redirect(web, kafka_topic):
    from ops.heartbeat import worker_heartbeat_clear, worker_heartbeat_write

    # given a worker heartbeat (readiness wants a live worker; this test starts web only)
    hostname = f"readme-test-{uuid.uuid4().hex[:6]}"
    _with_prefix(web, worker_heartbeat_write, hostname=hostname)
    try:
        answers = {}
        # when each URL of the table is fetched from the server
        for url in readme_urls():
            parts = urlsplit(url)
            if parts.netloc != WEB:
                assert parts.hostname == "127.0.0.1", f"{url}: not on loopback"
                continue
            response = _get(web, parts.path or "/", accept="text/html,application/json;q=0.9")
            answers[parts.path] = (response.status, response.header("Location"))
    finally:
        _with_prefix(web, worker_heartbeat_clear, hostname=hostname)

    # then each works: 200, and the admin sends an anonymous visitor to its login page
    broken = {
        path: answer
        for path, answer in answers.items()
        if answer[0] != 200 and not (answer[0] == 302 and (answer[1] or "").startswith("/admin/login/"))
    }
    assert not broken, broken


def _with_prefix(server: Gunicorn, function, **kwargs):  # type: ignore[no-untyped-def]
    """Call a Redis helper under the server's cache prefix (it differs from this process's)."""
    from django.conf import settings
    from django.core.cache import cache
    from django.test import override_settings

    prefix = server.extra_env["REDIS_KEY_PREFIX"]
    caches = {"default": {**settings.CACHES["default"], "KEY_PREFIX": prefix}}
    with override_settings(CACHES=caches):
        assert cache.make_key("x").startswith(prefix)
        return function(**kwargs)


@pytest.mark.parametrize("path", ["/api/docs/", "/api/redoc/", "/api/"])
def test_the_docs_pages_reference_no_external_host_and_every_asset_is_served(web, path):
    # when the page is fetched as a browser would
    page = _get(web, path, accept="text/html")
    assert page.status == 200, page.body[:300]
    html = page.body.decode()

    # then nothing it loads or links to lives on another host
    references = _ATTRIBUTE_URL.findall(html)
    external = [ref for ref in references if urlsplit(ref).netloc not in ("", f"127.0.0.1:{web.port}")]
    assert not external, external
    assert not re.search(r"""["'(]\s*(https?:)?//(?!127\.0\.0\.1)""", html), "an absolute URL elsewhere in the page"
    # and every local asset (scripts, styles, icons) is served, with DEBUG off, by whitenoise
    assets = [ref for ref in references if "/static/" in ref]
    assert assets, "the page loads no asset of its own?"
    for ref in assets:
        assert _get(web, urlsplit(ref).path).status == 200, ref


def test_swagger_ui_does_not_send_the_schema_to_an_online_validator(web):
    page = _get(web, "/api/docs/", accept="text/html").body.decode()
    assert '"validatorUrl": null' in page


def test_the_docs_assets_are_pinned_by_the_sidecar_package(web):
    requirements = (ROOT / "requirements.txt").read_text()
    assert re.search(r"^drf-spectacular-sidecar==\d+\.\d+\.\d+", requirements, re.MULTILINE)
    page = _get(web, "/api/docs/", accept="text/html").body.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in page
