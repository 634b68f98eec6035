"""http_call's SSRF guard: non-public addresses are refused unless allowed by name."""

from __future__ import annotations

import pytest

from sagas.tools.base import ToolDomainError
from sagas.tools.url_policy import UrlPolicy


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://169.254.169.254/latest/meta-data/",  # cloud metadata
        "http://10.1.2.3/",
        "http://192.168.0.10/",
        "http://[::1]:9000/",
        "http://0.0.0.0/",
    ],
)
async def test_non_public_addresses_are_refused_by_default(url: str) -> None:
    with pytest.raises(ToolDomainError, match="non-public address"):
        await UrlPolicy().check(url)


async def test_public_addresses_are_allowed() -> None:
    await UrlPolicy().check("https://93.184.215.14/hook")  # a literal: no DNS needed


@pytest.mark.parametrize(
    ("allowed", "url"),
    [
        (["127.0.0.1"], "http://127.0.0.1:8080/hook"),
        (["127.0.0.1:8080"], "http://127.0.0.1:8080/hook"),
        (["*.internal"], "http://billing.internal/hook"),
    ],
)
async def test_allow_listed_hosts_pass_whatever_they_resolve_to(
    allowed: list[str], url: str
) -> None:
    await UrlPolicy(allowed).check(url)


async def test_an_allow_listed_port_does_not_open_other_ports() -> None:
    with pytest.raises(ToolDomainError):
        await UrlPolicy(["127.0.0.1:8080"]).check("http://127.0.0.1:5432/")


async def test_unresolvable_hosts_and_hostless_urls_are_domain_errors() -> None:
    with pytest.raises(ToolDomainError, match="cannot resolve"):
        await UrlPolicy().check("http://no-such-host.invalid/")
    with pytest.raises(ToolDomainError, match="no host"):
        await UrlPolicy().check("http:///path")
