"""X-Forwarded-* trusted only from the reverse proxy: with PROXY_FIX on, a request whose direct peer
is not in PROXY_TRUSTED (someone reaching gunicorn around the proxy) keeps its own address and
scheme, so a forged X-Forwarded-For can neither pick its rate-limit key nor pose as another client."""
import ipaddress

from werkzeug.middleware.proxy_fix import ProxyFix


def networks(value):
    """PROXY_TRUSTED as networks: a list, or one string of CIDRs split by commas or spaces."""
    items = value.replace(",", " ").split() if isinstance(value, str) else list(value or [])
    return [ipaddress.ip_network(item.strip(), strict=False) for item in items]


class TrustedProxyFix:
    """WSGI middleware: ProxyFix (exactly one hop) for requests from a trusted proxy, nothing for others."""

    def __init__(self, app, trusted):
        self.plain = app
        self.fixed = ProxyFix(app, x_for=1, x_proto=1, x_host=1, x_prefix=1)
        self.trusted = networks(trusted)

    def _from_proxy(self, address):
        try:
            ip = ipaddress.ip_address((address or "").split("%", 1)[0])
        except ValueError:
            return False
        if ip.version == 6 and ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        return any(ip in net for net in self.trusted if net.version == ip.version)

    def __call__(self, environ, start_response):
        handler = self.fixed if self._from_proxy(environ.get("REMOTE_ADDR")) else self.plain
        return handler(environ, start_response)
