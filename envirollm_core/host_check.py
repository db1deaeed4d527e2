"""Which Host names the app answers: the guard against DNS rebinding.

Streamlit checks that a websocket's Origin matches its Host, and nothing else:
a page at `attacker.test`, whose name the attacker makes resolve to 127.0.0.1,
is same-origin with itself and can drive the app (tried in Chromium: a run was
deleted). A browser always sends the name it typed as Host, so the app runs no
page for a Host it was not started for:
- loopback names: `localhost`, `*.localhost` (browsers resolve them to the
  loopback themselves), 127.0.0.0/8, ::1;
- when the server listens beyond the loopback (Streamlit's default, or an
  explicit LAN address): this machine's own addresses, its host name, its
  fully qualified name and `<hostname>.local`;
- names the user lists in `ENVIROLLM_ALLOWED_HOSTS` (comma-separated), for a
  reverse proxy or a DNS name on the LAN.
"""

from __future__ import annotations

import ipaddress
import os
import socket

import psutil

ALLOWED_HOSTS_ENV = "ENVIROLLM_ALLOWED_HOSTS"


def host_name(host_header: str) -> str:
    """The name in a Host header, without its port, brackets or final dot, in lower case."""
    host = host_header.strip().lower()
    if host.startswith("["):  # [::1]:8501
        host = host[1:].split("]", 1)[0]
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".")


def _loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _listens_beyond_loopback(bound_address: str | None) -> bool:
    if not bound_address:
        return True  # Streamlit's default: every interface
    try:
        return not ipaddress.ip_address(bound_address).is_loopback
    except ValueError:
        return bound_address.lower() != "localhost"


def machine_names() -> set[str]:
    """This machine's own addresses and names."""
    names = {a.address.split("%", 1)[0].lower() for addrs in psutil.net_if_addrs().values() for a in addrs}
    hostname = socket.gethostname().lower()
    return names | {hostname, socket.getfqdn().lower(), f"{hostname}.local"}


def configured_hosts() -> set[str]:
    return {host_name(name) for name in os.environ.get(ALLOWED_HOSTS_ENV, "").split(",") if name.strip()}


def host_refusal(host_header: str | None, bound_address: str | None) -> str | None:
    """Why a request with this Host must not be answered, or None when it may be. A request without a Host
    header does not come from a browser (HTTP/1.1 requires one), so it cannot be a rebinding attack."""
    if not host_header:
        return None
    host = host_name(host_header)
    if _loopback(host) or host in configured_hosts():
        return None
    if _listens_beyond_loopback(bound_address) and host in machine_names():
        return None
    return (f"This EnviroLLM app does not answer to the name {host!r}: it answers to localhost, this machine's own"
            f" names and addresses, and names listed in {ALLOWED_HOSTS_ENV}. If {host!r} is a name you gave this"
            f" machine, start the app with {ALLOWED_HOSTS_ENV}={host}; if not, a page you did not open sent you here.")
