"""
Browser fixtures: a real ``airflow api-server`` and headless Chromium from Debian driven by Selenium.

Nothing is downloaded at run time: the browser and its driver are Debian's ``chromium`` and
``chromium-driver`` (``/usr/bin/chromium``, ``/usr/bin/chromedriver``), and Selenium Manager is told to stay
offline. When they are missing the tests fail (never skip) and say how to install them.

The api-server runs with the simple auth manager and one user (``admin``, password below); the tests log in
through the real login page, so every page (the plugin's dashboard included) sees the UI's session cookie.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import ARTIFACTS, VENV_BIN, free_port, wait_until

CHROMIUM = os.environ.get("MC_UI_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("MC_UI_CHROMEDRIVER", "/usr/bin/chromedriver")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,1800",
)
INSTALL_HINT = "apt-get install chromium chromium-driver"

UI_USER = "admin"
UI_PASSWORD = "ui-test-password-7f3c"
CALLBACK_SECRET = "ui-callback-secret-0123456789abcdef"
ARTIFACTS_UI = ARTIFACTS / "ui"


@dataclass
class ApiServer:
    """A running ``airflow api-server``: its base URL, report store, callback secret and log file."""

    url: str
    store_url: str
    secret: str
    log: Path
    home: Path

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else "(no log)"


def _require_browser() -> None:
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not Path(path).exists()]
    if missing:
        pytest.fail(
            f"the UI tests need Debian's Chromium and its driver, missing: {', '.join(missing)}. "
            f"Install them with: {INSTALL_HINT}",
            pytrace=False,
        )
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.fail("the UI tests need Selenium: pip install 'selenium>=4.20' (in the dev extra)", pytrace=False)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def api_server() -> Iterator[ApiServer]:
    """
    ``airflow db migrate`` then ``airflow api-server`` on a free 127.0.0.1 port, in its own AIRFLOW_HOME.

    Test connection is enabled; the MessageCentral receiver (mounted by the plugin) stores reports in a
    SQLite file of the session and accepts callbacks with :data:`CALLBACK_SECRET`.
    """
    _require_browser()
    home = Path(tempfile.mkdtemp(prefix="mc-ui-airflow-"))
    (home / "dags").mkdir()
    passwords = home / "passwords.json"
    passwords.write_text(json.dumps({UI_USER: UI_PASSWORD}))
    store_url = f"sqlite:///{home / 'reports.db'}"
    port = free_port()
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{UI_USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "MESSAGECENTRAL_CALLBACK_SECRET": CALLBACK_SECRET,
        "MESSAGECENTRAL_REPORTS_URL": store_url,
    }
    for name in [k for k in env if k.startswith("AIRFLOW_CONN_")]:
        env.pop(name)
    migrate = subprocess.run(
        [str(VENV_BIN / "airflow"), "db", "migrate"], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert migrate.returncode == 0, f"airflow db migrate failed:\n{migrate.stderr[-3000:]}"
    log = home / "api-server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(VENV_BIN / "airflow"), "api-server", "--host", "127.0.0.1", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    server = ApiServer(url=f"http://127.0.0.1:{port}", store_url=store_url, secret=CALLBACK_SECRET, log=log, home=home)

    def up() -> bool:
        try:
            return httpx.get(f"{server.url}/api/v2/version", timeout=2).status_code == 200
        except httpx.HTTPError:
            return proc.poll() is not None

    try:
        assert wait_until(up, timeout=180, interval=0.5) and proc.poll() is None, (
            f"airflow api-server did not start:\n{server.log_tail()}"
        )
        yield server
    finally:
        _stop(proc)
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """``tests/artifacts/ui/`` (gitignored): screenshots of the UI tests."""
    ARTIFACTS_UI.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS_UI


@pytest.fixture(scope="session")
def browser(api_server: ApiServer) -> Iterator[Any]:
    """Headless Debian Chromium (Selenium, chromedriver from Debian), logged in to the api-server's UI."""
    _require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must never try to download a driver or browser
    profile = tempfile.mkdtemp(prefix="mc-ui-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    try:
        driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    except Exception as err:
        pytest.fail(f"headless Chromium did not start ({type(err).__name__}: {err}). Is it installed? {INSTALL_HINT}")
    driver.set_page_load_timeout(60)
    try:
        _login(driver, api_server.url)
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _login(driver: Any, base: str) -> None:
    """Log in through the simple auth manager's login page, as a user would."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(f"{base}/")
    wait = WebDriverWait(driver, 60)
    user = wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, "input[name=username]")))
    user.send_keys(UI_USER)
    driver.find_element(By.CSS_SELECTOR, "input[name=password]").send_keys(UI_PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(lambda d: "_token" in {c["name"] for c in d.get_cookies()})


@pytest.fixture
def screenshot(browser: Any, artifacts: Path, request: pytest.FixtureRequest) -> Iterator[Callable[[str], Path]]:
    """
    ``screenshot("name")`` saves ``tests/artifacts/ui/<name>.png``; a failing test also leaves
    ``<test name>-failed.png`` there.
    """

    def take(name: str) -> Path:
        path = artifacts / f"{name}.png"
        time.sleep(0.3)  # let transitions (toasts, accordions) settle so the picture shows the final state
        browser.save_screenshot(str(path))
        return path

    yield take
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        browser.save_screenshot(str(artifacts / f"{request.node.name}-failed.png"))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]
    return report
