"""HTTP and HTTPS for every lab address: one nginx configuration.

nginx (Debian's ``nginx`` package) runs in the server
namespace and listens on the wildcard addresses, so every pool address
serves every lab name: port 80 (HTTP), 443 (HTTPS with the lab CA's
leaf) and :data:`INTERCEPT_PORT` (HTTPS with the interception CA's leaf,
where the censor redirects connections it intercepts). Any path and any
safe method gets ``200`` and a small page whose title names the host.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from probe.lab.certs import LabCerts

__all__ = ["INTERCEPTED_TITLE", "INTERCEPT_PORT", "nginx_argv", "nginx_config", "page_title"]

INTERCEPT_PORT = 8443
INTERCEPTED_TITLE = "intercepted by the lab censor"


def page_title(host: str) -> str:
    """The <title> of a lab page for ``host``, for tests to recognise."""
    return f"{host} (lab server)"


def nginx_config(directory: Path, certs: LabCerts) -> str:
    """The whole configuration; every path nginx writes stays in ``directory``."""
    page = _page(page_title("$host"), "the lab server for $host")
    intercepted = _page(INTERCEPTED_TITLE, "a middlebox answered for $host")
    temp = "\n".join(
        f"    {kind}_temp_path {directory / 'tmp' / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""\
# Written by probe.lab.servers.web for one lab; removed with the lab.
daemon off;
master_process on;
worker_processes 1;
user root;
pid {directory / 'nginx.pid'};
error_log {directory / 'nginx-error.log'} warn;
events {{ worker_connections 1024; }}
http {{
    access_log {directory / 'nginx-access.log'};
{temp}
    default_type text/html;
    server_tokens off;
    # Any path, any method: registration (/v2/register), provider.json ...
    server {{
        listen 80 default_server;
        listen [::]:80 default_server;
        listen 443 ssl http2 default_server;
        listen [::]:443 ssl http2 default_server;
        ssl_certificate {certs.leaf};
        ssl_certificate_key {certs.leaf_key};
        location / {{ return 200 "{page}"; }}
    }}
    server {{
        listen {INTERCEPT_PORT} ssl http2 default_server;
        listen [::]:{INTERCEPT_PORT} ssl http2 default_server;
        ssl_certificate {certs.intercept_leaf};
        ssl_certificate_key {certs.intercept_key};
        location / {{ return 200 "{intercepted}"; }}
    }}
}}
"""


def nginx_argv(config: Path) -> list[str]:
    """The command line; LookupError when nginx is not installed."""
    # /usr/sbin may be missing from a non-root PATH; the lab runs as root anyway.
    binary = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
    if binary is None:
        raise LookupError("the lab's web servers need nginx: apt-get install nginx")
    # -p: the prefix for relative paths; -e: the startup error log before the config is read.
    return [binary, "-c", str(config), "-p", str(config.parent), "-e", str(config.parent / "nginx-error.log")]


def _page(title: str, text: str) -> str:
    return f"<!doctype html><html><head><title>{title}</title></head><body><p>{text}</p></body></html>\\n"
