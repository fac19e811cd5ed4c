"""Integration tests: finding a remote domain's servers through DNS (RFC
6120 3.2, RFC 2782, XEP-0368) with no route override: a.test asks a
dnsmasq started by the test (mod_s2s option dns_servers) for the SRV
records of b.test, tries the targets in priority order (the first one
refuses connections), and reaches b.test's STARTTLS or direct TLS
listener; a name that does not exist is bounced with
remote-server-not-found."""

import os
import shutil
import signal
import socket
import subprocess
import unittest

from harness import wait_until
from test_s2s_common import FedTestCase, stream_line

DNSMASQ = shutil.which('dnsmasq') or '/usr/sbin/dnsmasq'


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


class Dnsmasq:
    """dnsmasq answering only from the given records on 127.0.0.1."""

    def __init__(self, records):
        self.port = free_udp_port()
        argv = [DNSMASQ, '--no-daemon', '--port=%d' % self.port,
                '--listen-address=127.0.0.1', '--bind-interfaces', '--no-resolv', '--no-hosts',
                '--conf-file=/dev/null', '--local=/test/', '--pid-file=', '--log-queries']
        self.proc = subprocess.Popen(argv + list(records), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        wait_until(self._bound, 10, what='dnsmasq to listen')

    def _bound(self):
        if self.proc.poll() is not None:
            raise AssertionError('dnsmasq exited: %s' % self.proc.stdout.read().decode())
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind(('127.0.0.1', self.port))
            except OSError:
                return True
        return False

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()


@unittest.skipUnless(os.path.exists(DNSMASQ), 'dnsmasq is not installed')
class DnsTests(FedTestCase):

    def dns(self, records):
        d = Dnsmasq(records)
        self.addCleanup(d.stop)
        return d

    def servers(self, b_tls=False):
        b = self.fed('b.test', '127.0.0.3', start=False, s2s_tls=b_tls)
        return b

    async def test_srv_targets_in_order_with_failover(self):
        b = self.servers()
        with socket.socket() as s:
            s.bind(('127.0.0.9', 0))
            dead = s.getsockname()[1]
        d = self.dns([
            '--srv-host=_xmpp-server._tcp.b.test,first.b.test,%d,10,0' % dead,
            '--srv-host=_xmpp-server._tcp.b.test,second.b.test,%d,20,0' % b.s2s_port,
            '--host-record=first.b.test,127.0.0.9',
            '--host-record=second.b.test,127.0.0.3',
        ])
        a = self.fed('a.test', '127.0.0.2', start=False,
                     s2s_options={'dns_servers': '127.0.0.1:%d' % d.port})
        b.route_to(a)
        a.start()
        b.start()
        aj, apw = self.user(a, domain='a.test')
        bj, bpw = self.user(b, domain='b.test')
        ca = await self.online(aj, apw, server=a, resource='x')
        cb = await self.online(bj, bpw, server=b, resource='y')
        ca.send_chat(bj + '/y', 'found you through SRV')
        m = await cb.next_message(timeout=20)
        self.assertEqual((m['from'].full, m['body']), (aj + '/x', 'found you through SRV'))
        line = stream_line(a.s2s(), 'out', 'a.test', 'b.test')
        self.assertEqual(line[5], '127.0.0.3:%d' % b.s2s_port, line)
        self.assertEqual(line[3], 'sasl-external')
        self.assertIn('connect to 127.0.0.9:%d failed' % dead, a.log())

    async def test_xmpps_srv_record_means_direct_tls(self):
        b = self.servers(b_tls=True)
        d = self.dns([
            '--srv-host=_xmpps-server._tcp.b.test,tls.b.test,%d,5,0' % b.s2s_tls_port,
            '--srv-host=_xmpp-server._tcp.b.test,tls.b.test,%d,10,0' % b.s2s_port,
            '--host-record=tls.b.test,127.0.0.3',
        ])
        a = self.fed('a.test', '127.0.0.2', start=False,
                     s2s_options={'dns_servers': '127.0.0.1:%d' % d.port})
        b.route_to(a)
        a.start()
        b.start()
        aj, apw = self.user(a, domain='a.test')
        bj, bpw = self.user(b, domain='b.test')
        ca = await self.online(aj, apw, server=a, resource='x')
        cb = await self.online(bj, bpw, server=b, resource='y')
        ca.send_chat(bj + '/y', 'direct TLS via SRV')
        m = await cb.next_message(timeout=20)
        self.assertEqual(m['body'], 'direct TLS via SRV')
        line = stream_line(a.s2s(), 'out', 'a.test', 'b.test')
        self.assertEqual(line[5], '127.0.0.3:%d' % b.s2s_tls_port, line)
        self.assertIn('(direct TLS)', a.log())

    async def test_domain_without_srv_uses_its_address_and_5269(self):
        # no SRV: the domain's own address on port 5269, where the test
        # listens, accepts and hangs up: the attempt fails and is bounced
        lsn = socket.socket()
        try:
            lsn.bind(('127.0.0.8', 5269))
        except OSError as e:
            lsn.close()
            self.skipTest('127.0.0.8:5269 is not free here: %s' % e)
        self.addCleanup(lsn.close)
        lsn.listen(4)
        d = self.dns(['--host-record=plain.test,127.0.0.8'])
        a = self.fed('a.test', '127.0.0.2',
                     s2s_options={'dns_servers': '127.0.0.1:%d' % d.port})
        aj, apw = self.user(a, domain='a.test')
        ca = await self.online(aj, apw, server=a, resource='x')
        ca.send_chat('someone@plain.test', 'hello?')
        lsn.settimeout(10 * a.run.slow)
        conn, peer = await self.in_thread(lsn.accept)
        self.assertEqual(peer[0], '127.0.0.1')
        header = await self.in_thread(conn.recv, 4096)
        self.assertIn(b"to='plain.test'", header)
        self.assertIn(b"from='a.test'", header)
        conn.close()
        m = await ca.next_message(timeout=20)
        self.assertStanzaError(m, 'cancel', 'remote-server-not-found')
        self.assertIn('connecting to 127.0.0.8:5269', a.log())

    async def test_nonexistent_domain(self):
        d = self.dns([])
        a = self.fed('a.test', '127.0.0.2',
                     s2s_options={'dns_servers': '127.0.0.1:%d' % d.port})
        aj, apw = self.user(a, domain='a.test')
        ca = await self.online(aj, apw, server=a, resource='x')
        ca.send_chat('someone@missing.test', 'hello?')
        m = await ca.next_message(timeout=20)
        self.assertStanzaError(m, 'cancel', 'remote-server-not-found')
        self.assertIn('no address for missing.test', a.log())
