"""Same-origin check for browser posts: another site's page cannot post to this server.

A multipart POST needs no CORS preflight, so without this any web page could make its
visitors' browsers store reports on (or burn the CPU of) an instance on their network.
Browsers say where a request comes from: `Sec-Fetch-Site` (all current browsers) and `Origin`
(on every POST). A request that carries either must come from this server's own origin, or one
listed in TRUSTED_ORIGINS; 403 otherwise. API clients (curl, scripts) send neither and are let
through: they are not a confused browser acting for a page, and the rate limits still apply.

The Host header is checked too (DNS rebinding: a page on an attacker's name that resolves to this
server is same-origin in the browser's eyes): the server answers only for localhost, addresses
typed as IP literals, the hosts of TRUSTED_ORIGINS and ALLOWED_HOSTS; 400 `bad_host` otherwise.
"""
import ipaddress
from urllib.parse import urlsplit

from flask import current_app, request

from app.errors import error_response
from app.i18n import _

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
DEFAULT_PORTS = {"http": 80, "https": 443}


def normalise_origin(origin):
    """'scheme://host[:port]' in one spelling (lower case, default port dropped), or None if not an origin."""
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname or parts.path not in ("", "/"):
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"  # IPv6 literal
    port = port if port and port != DEFAULT_PORTS[parts.scheme] else None
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")


def own_origin():
    """This server's origin as the browser sees it (Host and scheme; behind a proxy with PROXY_FIX)."""
    return normalise_origin(f"{request.scheme}://{request.host}")


def trusted_origins(config):
    """TRUSTED_ORIGINS as a list: a JSON list, or one string with commas (FLASK_TRUSTED_ORIGINS)."""
    value = config.get("TRUSTED_ORIGINS") or []
    return [o for o in value.replace(",", " ").split()] if isinstance(value, str) else list(value)


def allowed_hosts(config):
    """ALLOWED_HOSTS as a list ("*" allows any; ".example.org" allows it and its subdomains)."""
    return trusted_origins({"TRUSTED_ORIGINS": config.get("ALLOWED_HOSTS")})


def host_allowed(host, config):
    """True when this server answers for `host` (the Host header, a port allowed)."""
    name = (urlsplit(f"//{host}").hostname or "") if host else ""
    if not name or name == "localhost" or name.endswith(".localhost"):
        return True  # no Host at all (HTTP/1.0) is answered by the server's own name
    try:
        ipaddress.ip_address(name)
        return True  # an address typed by hand: no DNS, so nothing rebinds
    except ValueError:
        pass
    allowed = [h.lower() for h in allowed_hosts(config)]
    allowed += [urlsplit(o).hostname or "" for o in trusted_origins(config)]
    return "*" in allowed or any(name == h or (h.startswith(".") and (name == h[1:] or name.endswith(h)))
                                 for h in allowed if h)


def check_host():
    """before_request: 400 for a Host this server does not answer for."""
    if host_allowed(request.host, current_app.config):
        return None
    current_app.logger.warning("refused Host %r: add it to FLASK_ALLOWED_HOSTS if this server is "
                               "reached under that name", request.host)
    return error_response(_("This server does not answer for this host name."), 400, "bad_host")


def check_origin():
    """before_request: 403 for a browser's unsafe request from a page on another origin."""
    if request.method in SAFE_METHODS:
        return None
    site = request.headers.get("Sec-Fetch-Site")
    origin = request.headers.get("Origin")
    if site is None and origin is None:
        return None  # not a browser
    # Sec-Fetch-Site is computed by the browser itself, so it holds behind any proxy; "none" is
    # the user's own action (typed URL, bookmark). "same-site" is another origin all the same.
    allowed = site in ("same-origin", "none")
    if not allowed and origin is not None:  # browsers without Sec-Fetch-*, and trusted origins
        trusted = {own_origin(), *(normalise_origin(o) for o in trusted_origins(current_app.config))}
        allowed = normalise_origin(origin) in trusted - {None}
    if allowed:
        return None
    return error_response(_("This server accepts posts only from its own pages; a page on another "
                            "site cannot post here."), 403, "cross_origin")


def init_app(app):
    """Check the Host of every request and the origin of every unsafe one to `app`."""
    app.before_request(check_host)
    app.before_request(check_origin)
