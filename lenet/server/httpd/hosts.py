"""Which ``Host`` headers a server bound to loopback answers (a defence against DNS rebinding).

A web page on another site can make the visitor's browser send requests to 127.0.0.1 by giving
its own domain name that address (DNS rebinding); the browser then sends ``Host: that.domain``.
A server only reachable from this machine therefore answers only the names of this machine,
plus any the user allows (``--allow-host``). A server bound to a network address checks nothing:
whoever can reach it may, and the names it is known by are not its to guess.
"""

import ipaddress

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")


class HostCheck:
    """``allows(host_header)``: always True unless ``bound_address`` is a loopback address."""

    def __init__(self, bound_address, allowed_hosts=()):
        try:
            self.active = ipaddress.ip_address(bound_address).is_loopback
        except ValueError:  # a name, not an address: let the socket layer's choice stand unchecked
            self.active = False
        literal = f"[{bound_address}]" if ":" in bound_address else bound_address
        self.names = {name.lower() for name in (*LOOPBACK_NAMES, literal, *allowed_hosts)}

    def allows(self, host):
        """Whether ``host`` (a Host header or URL authority: ``name`` or ``name:port``) is answered."""
        return not self.active or host_name(host) in self.names


def host_name(host):
    """The name part of ``name[:port]`` (IPv6 literals keep their brackets), lower case."""
    host = host.strip().lower()
    name, colon, port = host.rpartition(":")
    if colon and port.isdigit() and not name.endswith(":"):  # not the inside of a bare IPv6 literal
        return name
    return host
