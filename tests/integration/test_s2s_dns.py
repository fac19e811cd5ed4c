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
import struct
import subprocess
import unittest

from harness import Ports, run_context, start_on_free_ports, wait_until
from test_s2s_common import FedTestCase, stream_line

DNSMASQ = shutil.which('dnsmasq') or '/usr/sbin/dnsmasq'
IN_USE = 'Address already in use'


class Dnsmasq:
    """dnsmasq answering only from the given records on 127.0.0.1:port.

    dnsmasq binds the port for both TCP and UDP. The TCP port is reserved
    (harness.Ports) and was free for UDP when chosen, but a parallel test
    can take it for UDP before dnsmasq binds it: when dnsmasq exits with
    "Address already in use" it is started again on a fresh port
    (start_on_free_ports). It counts as started once it answers a query (a
    probe that bound the port itself could make dnsmasq's own bind fail).

    When a server whose s2s port is in the SRV records has to renew it at
    its start, dnsmasq learns the new port (peer_moved) and restarts."""

    def __init__(self, records):
        self.run = run_context()
        self.logfile = os.path.join(self.run.tmp, 'dnsmasq%d.log' % self.run.next_id())
        self.records = list(records)
        self.ports = Ports()
        self._take_port()
        self._launch()

    def _launch(self):
        start_on_free_ports('dnsmasq', lambda: self._start(10 * self.run.slow),
                            lambda taken: self._take_port())

    @property
    def port(self):
        return self.ports['dns']

    def _take_port(self):
        """Reserves a TCP port on 127.0.0.1 that is free for UDP too."""
        for _ in range(20):
            port = self.ports.take('dns')
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                try:
                    u.bind(('127.0.0.1', port))
                except OSError:
                    continue
                return 'dns'
        raise AssertionError('no loopback port free for both UDP and TCP')

    def _start(self, timeout):
        """Starts dnsmasq on self.port; None once it answers, or its
        address if it exited because the port was in use. Raises if it
        exited for another reason, or kills it and raises if it does
        neither in time."""
        argv = [DNSMASQ, '--no-daemon', '--port=%d' % self.port,
                '--listen-address=127.0.0.1', '--bind-interfaces', '--no-resolv', '--no-hosts',
                '--conf-file=/dev/null', '--local=/test/', '--pid-file=', '--log-queries']
        with open(self.logfile, 'wb') as log:
            self.proc = subprocess.Popen(argv + self.records, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_until(lambda: self.proc.poll() is not None or self._answers(), timeout,
                       what='dnsmasq to answer on port %d' % self.port)
        except AssertionError as e:
            self._kill()
            raise AssertionError('%s: %s' % (e, self.log()))
        if self.proc.poll() is None:
            return None
        if IN_USE not in self.log():
            raise AssertionError('dnsmasq exited with status %d: %s'
                                 % (self.proc.returncode, self.log()))
        return '127.0.0.1', self.port

    def _answers(self):
        """Whether a query for ready.test gets a reply with its id."""
        query = struct.pack('>6H', 0x7e57, 0x0100, 1, 0, 0, 0) + \
            b'\x05ready\x04test\x00' + struct.pack('>2H', 1, 1)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.2)
            try:
                s.sendto(query, ('127.0.0.1', self.port))
                return s.recv(512)[:2] == query[:2]
            except OSError:
                return False

    def log(self):
        with open(self.logfile, errors='replace') as f:
            return f.read()

    def peer_moved(self, moved):
        """Points the SRV records at a server's new s2s ports ({port: new
        port}) and restarts dnsmasq if that changed them."""
        records = []
        for r in self.records:
            f = r.split(',')
            if r.startswith('--srv-host=') and len(f) > 2 and int(f[2]) in moved:
                f[2] = str(moved[int(f[2])])
            records.append(','.join(f))
        if records != self.records:
            self.records = records
            self._kill()
            self._launch()

    def stop(self):
        self._kill()
        self.ports.close()

    def _kill(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@unittest.skipUnless(os.path.exists(DNSMASQ), 'dnsmasq is not installed')
class DnsTests(FedTestCase):

    def dns(self, records):
        """dnsmasq with these records, told when a server of this test
        renews an s2s port at its start (the records may name it)."""
        d = Dnsmasq(records)
        self.addCleanup(d.stop)
        for server in self._servers:
            server.peers.append(d)
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
        # the test hangs up first, which leaves 127.0.0.8:5269 in TIME_WAIT
        # for a minute: without SO_REUSEADDR the next run could not bind it
        lsn.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
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
