"""The node's own address: the private IPv4 of its network interface.

Dask guesses its address by opening a UDP socket toward a public address, which in a private
subnet without a route to the internet can fall back to 127.0.0.1 and leave the other nodes
unable to connect. Here the interfaces are listed instead; ``CLUSTER_NODE_HOST`` overrides (the
local MNP simulator gives each node its own 127.0.0.x).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Mapping

import psutil

from cluster.context import ClusterConfigError

NODE_HOST = "CLUSTER_NODE_HOST"


def _candidates() -> list[tuple[str, ipaddress.IPv4Address]]:
    stats = psutil.net_if_stats()
    found = []
    for name, addrs in sorted(psutil.net_if_addrs().items()):
        if name in stats and not stats[name].isup:
            continue
        for addr in addrs:
            if addr.family == socket.AF_INET:
                found.append((name, ipaddress.IPv4Address(addr.address)))
    return found


def choose_address(candidates: list[tuple[str, ipaddress.IPv4Address]]) -> str | None:
    """The first private, non-loopback IPv4 (awsvpc gives each container one ENI), else any
    non-loopback, non-link-local one."""
    usable = [(n, a) for n, a in candidates if not (a.is_loopback or a.is_link_local)]
    private = [(n, a) for n, a in usable if a.is_private]
    for _, address in private or usable:
        return str(address)
    return None


def node_address(env: Mapping[str, str]) -> str:
    """This node's address: ``CLUSTER_NODE_HOST`` if set, else the interface's private IPv4."""
    override = env.get(NODE_HOST, "").strip()
    if override:
        try:
            ipaddress.ip_address(override)
        except ValueError:
            raise ClusterConfigError(f"{NODE_HOST}={override!r} is not an IP address") from None
        return override
    address = choose_address(_candidates())
    if address is None:
        raise ClusterConfigError(
            f"no non-loopback IPv4 address on this node's interfaces; set {NODE_HOST}"
        )
    return address
