"""Network facts shared by the apps: the caller's address behind trusted
proxies, and which destination addresses a webhook may call (the SSRF
address check used at save time by rendering and at send time by transport)."""

from __future__ import annotations

import ipaddress

from django.conf import settings

METADATA_ADDRESSES = {
    ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack
    ipaddress.ip_address("169.254.170.2"),  # AWS ECS task metadata
    ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
    ipaddress.ip_address("fd00:ec2::254"),  # AWS IPv6
}
SHARED_NETWORK = ipaddress.ip_network("100.64.0.0/10")


def client_ip(request) -> str:
    """The caller's address: REMOTE_ADDR, or the X-Forwarded-For entry set by
    the nearest of HUB_TRUSTED_PROXY_COUNT trusted proxies."""
    proxies = settings.HUB_TRUSTED_PROXY_COUNT
    if proxies:
        forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
        if len(forwarded) >= proxies:
            return forwarded[-proxies]
    return request.META.get("REMOTE_ADDR", "")


def address_problem(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why a webhook may not call this address, or None when it is a public address."""
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address"
    checks = (
        ("is_loopback", "a loopback address"),
        ("is_link_local", "a link-local address"),
        ("is_multicast", "a multicast address"),
        ("is_unspecified", "an unspecified address"),
        ("is_reserved", "a reserved address"),
        ("is_private", "a private address"),
    )
    for attribute, words in checks:
        if getattr(ip, attribute):
            return words
    if ip.version == 4 and ip in SHARED_NETWORK:
        return "a shared (carrier-grade NAT) address"
    if not ip.is_global:
        return "not a public address"
    return None
