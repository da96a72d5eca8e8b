"""HTTP and HTTPS for every lab address: one nginx configuration.

nginx (Debian's ``nginx`` package) runs in the server
namespace and listens on the wildcard addresses, so every pool address
serves every lab name: port 80 (HTTP), 443 (HTTPS with the lab CA's
leaf) and :data:`INTERCEPT_PORT` (HTTPS with the interception CA's leaf,
where the censor redirects connections it intercepts). Any path and any
safe method gets ``200`` and a page whose title names the host, padded
to :data:`PAGE_SIZE` bytes (nginx's addition module appends a padding
file) so that any lab URL can be a throughput target: a body under
64 KiB is too small to time.
"""

from __future__ import annotations

from pathlib import Path

from probe_lab.certs import LabCerts
from probe_lab.requirements import find_program

__all__ = [
    "INTERCEPTED_TITLE", "INTERCEPT_PORT", "PAGE_SIZE", "nginx_argv", "page_title", "write_site",
]

INTERCEPT_PORT = 8443
INTERCEPTED_TITLE = "intercepted by the lab censor"
PAGE_SIZE = 96 * 1024  # bytes of padding after each page: above the 64 KiB a rate needs, small enough for captures
_PADDING = "padding.html"


def page_title(host: str) -> str:
    """The <title> of a lab page for ``host``, for tests to recognise."""
    return f"{host} (lab server)"


def write_site(directory: Path, certs: LabCerts) -> Path:
    """Write nginx's configuration and the padding file; returns the configuration's path."""
    # An HTML comment: browsers and the probe's title search skip it.
    (directory / _PADDING).write_text(f"<!-- {'.' * (PAGE_SIZE - 9)} -->\n")
    config = directory / "nginx.conf"
    config.write_text(nginx_config(directory, certs))
    return config


def nginx_config(directory: Path, certs: LabCerts) -> str:
    """The whole configuration; every path nginx writes stays in ``directory``."""
    page = _page(page_title("$host"), "the lab server for $host")
    intercepted = _page(INTERCEPTED_TITLE, "a middlebox answered for $host")
    temp = "\n".join(
        f"    {kind}_temp_path {directory / 'tmp' / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""\
# Written by probe_lab.servers.web for one lab; removed with the lab.
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
        location / {{
            add_after_body /.lab-padding;
            addition_types *;
            return 200 "{page}";
        }}
        location = /.lab-padding {{ internal; alias {directory / _PADDING}; }}
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
    # -p: the prefix for relative paths; -e: the startup error log before the config is read.
    return [find_program("nginx"), "-c", str(config), "-p", str(config.parent), "-e", str(config.parent / "nginx-error.log")]


def _page(title: str, text: str) -> str:
    return f"<!doctype html><html><head><title>{title}</title></head><body><p>{text}</p></body></html>\\n"
