"""The hook's session reads the environment once (proxies, CA bundle, .netrc) and applies it as requests would."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from airflow_provider_messagecentral.client.transport import new_session

URL = "https://cpaas.messagecentral.com"


def effective(session: requests.Session, url: str) -> dict[str, object]:
    """What requests would use for a request to ``url``: its merged proxies and verify setting, and auth."""
    prepared = session.prepare_request(requests.Request("GET", url))
    settings = session.merge_environment_settings(prepared.url, {}, None, None, None)
    return {"proxies": settings["proxies"], "verify": settings["verify"], "auth": prepared.headers.get("Authorization")}


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"HTTPS_PROXY": "http://proxy.example:3128"},
        {"HTTPS_PROXY": "http://proxy.example:3128", "NO_PROXY": "messagecentral.com"},
        {"REQUESTS_CA_BUNDLE": "/etc/ssl/corp.pem"},
        {"CURL_CA_BUNDLE": "/etc/ssl/curl.pem"},
    ],
)
def test_the_session_uses_what_requests_reads_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, env: dict[str, str]
) -> None:
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "none"))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    plain = requests.Session()
    assert effective(new_session(URL), URL + "/verification/v3/send") == effective(plain, URL + "/verification/v3/send")


def test_a_netrc_entry_for_the_host_is_used_as_requests_would(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine cpaas.messagecentral.com login user password secret-pw\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    ours = effective(new_session(URL), URL + "/auth/v1/authentication/token")
    assert ours == effective(requests.Session(), URL + "/auth/v1/authentication/token")
    assert ours["auth"] is not None


def test_without_a_base_url_the_session_reads_the_environment_per_request() -> None:
    assert new_session().trust_env is True and new_session(URL).trust_env is False
