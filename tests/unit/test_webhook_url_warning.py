"""The warning beside a webhook URL that TradingView cannot (or should not) call: it calls only
ports 80 and 443 of public IPv4 hosts, over http or https (shared reference A.1)."""

from __future__ import annotations

import pytest

from services.ui.api.recorder_webhook import url_warning


@pytest.mark.parametrize(
    "public_url", ["https://hooks.example.com", "https://hooks.example.com:443", "https://8.8.8.8"]
)
def test_https_on_a_public_host_has_no_warning(public_url):
    assert url_warning(public_url) is None


@pytest.mark.parametrize(
    ("public_url", "says"),
    [
        (
            "http://localhost:8083",
            "it points at localhost and uses port 8083, and TradingView calls only ports 80 "
            "and 443",
        ),
        ("https://localhost", "it points at localhost;"),
        ("https://app.localhost", "it points at localhost;"),
        ("https://127.0.0.1", "it points at this machine (127.0.0.1)"),
        ("https://127.8.0.1", "it points at this machine (127.8.0.1)"),
        ("https://[::1]", "it points at this machine (::1)"),
        ("https://0.0.0.0", "it points at this machine (0.0.0.0)"),
        ("https://192.168.1.20", "it points at 192.168.1.20, an address of a private network"),
        ("https://10.0.0.5", "it points at 10.0.0.5, an address of a private network"),
        ("https://172.16.4.1", "it points at 172.16.4.1, an address of a private network"),
        ("https://169.254.10.1", "it points at 169.254.10.1, an address of a private network"),
        ("https://[fe80::1]", "it points at fe80::1, an address of a private network"),
        ("https://gateway", "the bare host name gateway, which only your own network"),
        ("https://trading.local", "the host name trading.local, which only your own network"),
        ("https://hooks.example.com:8443", "it uses port 8443, and TradingView calls only ports"),
        ("https://[2606:4700::1]", "an IPv6 address, and TradingView calls IPv4 addresses only"),
    ],
)
def test_an_address_tradingview_cannot_reach_says_why(public_url, says):
    warning = url_warning(public_url)

    assert warning is not None
    assert warning.startswith("TradingView cannot reach this webhook URL: ")
    assert says in warning
    assert warning.endswith(
        "set PUBLIC_URL to the address the internet reaches (docs/operations.md)."
    )


@pytest.mark.parametrize("public_url", ["http://hooks.example.com", "http://hooks.example.com:80"])
def test_plain_http_on_a_public_host_warns_that_the_token_travels_unencrypted(public_url):
    warning = url_warning(public_url)

    assert warning is not None
    assert "TradingView calls it" in warning
    assert "unencrypted" in warning


@pytest.mark.parametrize("public_url", ["hooks.example.com", "ftp://hooks.example.com", "https://"])
def test_a_public_url_that_is_not_an_address_says_so(public_url):
    assert url_warning(public_url) == (
        f"PUBLIC_URL ({public_url}) is not an http or https address, so the webhook URL cannot "
        "work; set it to the address the internet reaches (docs/operations.md)."
    )
