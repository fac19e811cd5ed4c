"""Shared fixtures of the federation tests (test_s2s_*.py): FedParley, a
parleyd serving one domain with mod_s2s and an s2s listener on its own
loopback address, and FedTestCase, which starts pairs of them routed to
each other with the `routes` option. No tests live here."""

import os
import socket
import ssl
import time
import xml.etree.ElementTree as ET

from harness import DEFAULT_MODULES, NS_STREAM, Parley, ParleyTestCase, wait_until

NS_SERVER = 'jabber:server'
NS_DB = 'jabber:server:dialback'
NS_TLS = 'urn:ietf:params:xml:ns:xmpp-tls'
NS_SASL = 'urn:ietf:params:xml:ns:xmpp-sasl'
NS_STREAMS = 'urn:ietf:params:xml:ns:xmpp-streams'
NS_STANZAS = 'urn:ietf:params:xml:ns:xmpp-stanzas'

IM_MODULES = ('roster', 'presence', 'offline')


def built_modules(build):
    """The IM modules present in the build (the federation tests use them
    when they are there)."""
    return tuple(m for m in IM_MODULES
                 if os.path.exists(os.path.join(build, 'modules', 'mod_%s.so' % m)))


def tell_peers(server, renewed):
    """After server's start renewed ports ((name, port, new port) each),
    whatever recorded its s2s ports (server.peers: the servers routed to it,
    a DNS server with its SRV records) gets peer_moved({port: new port})."""
    moved = {old: new for name, old, new in renewed if name in ('s2s', 's2s_tls')}
    if moved:
        for peer in server.peers:
            peer.peer_moved(moved)


def route_text(addr, port, direct_tls=False):
    """ADDR:PORT as mod_s2s's routes option spells it."""
    host = '[%s]' % addr if ':' in addr else addr
    return '%s:%d%s' % (host, port, '/tls' if direct_tls else '')


class FedParley(Parley):
    """A parleyd serving `domain`, with mod_s2s, `listen s2s ADDR:PORT`,
    tls.ca_file (the test CA unless ca_file says otherwise) and the s2s
    module options in s2s_options (strings, written quoted).

    Its s2s ports are reserved on ADDR itself. The servers routed to it
    with route_to() are in `peers`, and learn its new s2s ports when its
    start had to renew them (tell_peers)."""

    def __init__(self, run, domain, addr, *, s2s_options=None, ca_file=None, cert=None,
                 s2s_require_tls=True, s2s_tls=False, extra_modules=(), extra_domains=(),
                 **kw):
        self.domain = domain
        self.s2s_addr = addr
        self.s2s_tls = s2s_tls
        self.s2s_options = dict(s2s_options or {})
        self.peer_ca = ca_file
        self.cert_override = cert
        self.s2s_require_tls = s2s_require_tls
        self.routes = {}
        self.peers = []
        modules = tuple(DEFAULT_MODULES) + ('s2s',) + built_modules(run.build) + \
            tuple(extra_modules)
        kw.setdefault('limits', {})
        super().__init__(run, vhosts=(domain,) + tuple(extra_domains), modules=modules, **kw)

    def take_ports(self):
        super().take_ports()
        self.ports.take('s2s', self.s2s_addr)
        if self.s2s_tls:
            self.ports.take('s2s_tls', self.s2s_addr)

    @property
    def s2s_port(self):
        return self.ports['s2s']

    @property
    def s2s_tls_port(self):
        return self.ports.get('s2s_tls')

    def config_text(self):
        text = super().config_text()
        ca = self.peer_ca or self.run.certs.ca
        text = text.replace('tls { ', 'tls { ca_file "%s"; s2s_require %s; '
                            % (ca, 'yes' if self.s2s_require_tls else 'no'), 1)
        if self.cert_override:
            cert, key = self.run.certs.leaf(self.domain)
            text = text.replace('certificate "%s"; key "%s";' % (cert, key),
                                'certificate "%s"; key "%s";' % self.cert_override)
        addr = '[%s]' % self.s2s_addr if ':' in self.s2s_addr else self.s2s_addr
        lines = ['listen s2s %s:%d;' % (addr, self.s2s_port)]
        if self.s2s_tls_port:
            lines.append('listen s2s_tls %s:%d;' % (addr, self.s2s_tls_port))
        opts = dict(self.s2s_options)
        if self.routes:
            opts['routes'] = ' '.join('%s=%s' % (d, r() if callable(r) else r)
                                      for d, r in sorted(self.routes.items()))
        body = ' '.join('%s "%s";' % (k, v) for k, v in sorted(opts.items()))
        lines.append('module s2s { %s }' % body)
        return text + '\n'.join(lines) + '\n'

    def route(self, domain, addr, port, direct_tls=False):
        """Maps domain to addr:port (written to the config; restart or
        reload to apply)."""
        self.routes[domain] = route_text(addr, port, direct_tls)
        self.write_config()

    def route_to(self, other, direct_tls=False):
        """Routes every domain other (a FedParley or a Prosody) serves to
        its listener, whose port is read each time the config is written."""
        def text():
            return route_text(other.s2s_addr,
                              other.s2s_tls_port if direct_tls else other.s2s_port, direct_tls)
        for domain in other.vhosts:
            self.routes[domain] = text
        if self not in other.peers:
            other.peers.append(self)
        self.write_config()

    def ports_renewed(self, renewed):
        tell_peers(self, renewed)

    def peer_moved(self, moved):
        """A server this one routes to has new s2s ports (its routes read
        them when the config is written)."""
        self.write_config()
        if self.running():
            self.stop()
            self.start()

    def s2s(self):
        """`parleyctl s2s` as a list of field lists."""
        r = self.ctl('s2s')
        return [line.split() for line in r.stdout.splitlines() if line.strip()]

    def wait_s2s(self, pred, timeout=10, what='s2s state'):
        return wait_until(lambda: pred(self.s2s()), timeout * self.run.slow, interval=0.1,
                          what=what)


def stream_line(lines, direction, local, remote):
    """The `parleyctl s2s` line of one stream (fields split), or None."""
    for f in lines:
        if f[:3] == [direction, local, remote]:
            return f
    return None


class FedTestCase(ParleyTestCase):
    """A test case with federated servers: self.fed(...) makes one,
    self.fed_pair() two routed to each other (a.test on 127.0.0.2, b.test on
    127.0.0.3). Failures print both logs."""

    def fed(self, domain, addr, start=True, **kw):
        p = self.track(FedParley(self.run_ctx, domain, addr, **kw))
        if start:
            p.start()
        return p

    def fed_pair(self, a_kw=None, b_kw=None, start=True):
        a = self.fed('a.test', '127.0.0.2', start=False, **(a_kw or {}))
        b = self.fed('b.test', '127.0.0.3', start=False, **(b_kw or {}))
        a.route_to(b)
        b.route_to(a)
        if start:
            a.start()
            b.start()
        return a, b

    def failure_context(self):
        out = []
        for s in getattr(self, '_servers', []):
            out.append('--- %s (%s) log tail ---\n%s' % (getattr(s, 'domain', '?'), s.logfile,
                                                       s.log_tail(40)))
        return '\n'.join(out)

    async def msg_roundtrip(self, sender, to, receiver, body):
        """sender sends a chat message to `to`; receiver gets it."""
        sender.send_chat(to, body)
        m = await receiver.next_message(timeout=10)
        return m


class RawS2S:
    """A blocking server-to-server peer for protocol tests: speaks the
    stream by hand and records every element received."""

    def __init__(self, server, addr=None, port=None, timeout=5, slow=1):
        self.server = server
        self.timeout = timeout * slow
        self.sock = socket.create_connection((addr or server.s2s_addr,
                                              port or server.s2s_port), timeout=self.timeout)
        self.raw = b''
        self.closed = False
        self._new_parser()

    def _new_parser(self):
        self.parser = ET.XMLPullParser(events=('start', 'end'))
        self.depth = 0
        self.elements = []
        self.header = None
        self.stream_closed = False
        self._taken = 0

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _recv_once(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return False
        except (OSError, ssl.SSLError):
            data = b''
        if not data:
            self.closed = True
            return False
        self.raw += data
        self.parser.feed(data)
        for ev, el in self.parser.read_events():
            if ev == 'start':
                if self.depth == 0:
                    self.header = el
                self.depth += 1
            else:
                self.depth -= 1
                if self.depth == 1:
                    self.elements.append(el)
                elif self.depth == 0:
                    self.stream_closed = True
        return True

    def read_until(self, pred, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while not pred(self):
            if self.closed or not self._recv_once(deadline):
                break
        return pred(self)

    def next(self, timeout=None):
        ok = self.read_until(lambda c: len(c.elements) > c._taken, timeout)
        if not ok:
            raise AssertionError('no element (closed=%s); received %r'
                                 % (self.closed, self.raw[-1500:]))
        el = self.elements[self._taken]
        self._taken += 1
        return el

    def open(self, frm, to):
        """Sends a stream header and returns the features element."""
        self._new_parser()
        self.send("<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
                  "xmlns:stream='%s' xmlns:db='%s' from='%s' to='%s' version='1.0'>"
                  % (NS_STREAM, NS_DB, frm, to))
        el = self.next()
        if el.tag != '{%s}features' % NS_STREAM:
            raise AssertionError('expected features, got %s' % ET.tostring(el))
        return el

    def starttls(self, frm, to, cafile=None, cert=None):
        self.send("<starttls xmlns='%s'/>" % NS_TLS)
        el = self.next()
        if el.tag != '{%s}proceed' % NS_TLS:
            raise AssertionError('expected proceed, got %s' % ET.tostring(el))
        ctx = ssl.create_default_context(cafile=cafile)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        if cert:
            ctx.load_cert_chain(*cert)
        self.sock = ctx.wrap_socket(self.sock, server_hostname=to)
        return self.open(frm, to)

    def read_to_close(self, timeout=None):
        return self.read_until(lambda c: c.closed, timeout)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
