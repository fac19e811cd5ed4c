"""Integration tests: federation between two parleyd instances (mod_s2s)
whose certificates are valid for their domains, so each authenticates to
the other with SASL EXTERNAL over TLS (RFC 6120 sections 5, 6, 13.7;
XEP-0178). Messages, presence subscriptions, IQs and errors cross the
link through route/remote and pl_route; failures to reach a domain are
bounced (RFC 6120 8.3.3.15/16); idle links close; `parleyctl s2s` lists
the streams; XEP-0368 direct TLS."""

import asyncio
import socket
import time
import xml.etree.ElementTree as ET

from harness import NS_CLIENT, error_of, xml_str, wait_until
from test_s2s_common import FedTestCase, stream_line

NS_VERSION = 'jabber:iq:version'
NS_ROSTER = 'jabber:iq:roster'


class PairTests(FedTestCase):
    """Each test gets a fresh pair a.test (127.0.0.2) and b.test
    (127.0.0.3)."""

    async def users_online(self, a, b):
        aj, apw = self.user(a, domain='a.test', prefix='alice')
        bj, bpw = self.user(b, domain='b.test', prefix='bob')
        self.passwords = {aj: apw, bj: bpw}
        ca = await self.online(aj, apw, server=a, resource='ra')
        cb = await self.online(bj, bpw, server=b, resource='rb')
        return aj, ca, bj, cb

    def assertChat(self, m, frm, to, body):
        self.assertEqual(m.xml.tag, '{%s}message' % NS_CLIENT, xml_str(m))
        self.assertEqual((m['from'].full, m['to'].full, m['type'], m['body']),
                         (frm, to, 'chat', body), xml_str(m))
        self.assertEqual([c.tag for c in m.xml], ['{%s}body' % NS_CLIENT], xml_str(m))

    async def test_messages_both_ways_with_sasl_external(self):
        a, b = self.fed_pair()
        aj, ca, bj, cb = await self.users_online(a, b)
        ca.send_chat(bj + '/rb', 'hello from a')
        self.assertChat(await cb.next_message(timeout=10), aj + '/ra', bj + '/rb', 'hello from a')
        cb.send_chat(aj + '/ra', 'hello from b')
        self.assertChat(await ca.next_message(timeout=10), bj + '/rb', aj + '/ra', 'hello from b')
        # a second message reuses the streams
        ca.send_chat(bj, 'again, to the bare JID')
        self.assertChat(await cb.next_message(timeout=10), aj + '/ra', bj,
                        'again, to the bare JID')
        la, lb = a.s2s(), b.s2s()
        out_a = stream_line(la, 'out', 'a.test', 'b.test')
        in_a = stream_line(la, 'in', 'a.test', 'b.test')
        out_b = stream_line(lb, 'out', 'b.test', 'a.test')
        in_b = stream_line(lb, 'in', 'b.test', 'a.test')
        for line in (out_a, in_a, out_b, in_b):
            self.assertIsNotNone(line, 'missing stream in %r / %r' % (la, lb))
            self.assertEqual(line[3], 'sasl-external', line)
            self.assertRegex(line[4], r'^TLS1\.[23]/\S+$', line)
            self.assertEqual(line[6], 'ready', line)
        self.assertEqual(out_a[5], '127.0.0.3:%d' % b.s2s_port)
        self.assertEqual(out_b[5], '127.0.0.2:%d' % a.s2s_port)
        self.assertEqual(len(la), 2, la)
        self.assertEqual(len(lb), 2, lb)

    async def roster_of(self, client):
        res = await client.iq('get', None, "<query xmlns='%s'/>" % NS_ROSTER)
        items = res.xml.findall('{%s}query/{%s}item' % (NS_ROSTER, NS_ROSTER))
        return [(i.get('jid'), i.get('subscription'), i.get('ask')) for i in items]

    async def subscribe(self, user, user_jid, contact, contact_jid, contact_full):
        """user subscribes to contact, who approves: the request and the
        answer cross the link, then contact's presence follows."""
        user.send_presence(pto=contact_jid, ptype='subscribe')
        p = await self.presence_from(contact, user_jid)
        self.assertEqual((p['type'], p['from'].full, p['to'].full),
                         ('subscribe', user_jid, contact_jid), xml_str(p))
        contact.send_presence(pto=user_jid, ptype='subscribed')
        seen = []
        for _ in range(2):
            p = await self.presence_from(user, contact_jid)
            seen.append((p['type'] or 'available', p['from'].full))
        # RFC 6121 3.1.6: subscribed from the bare JID, and the current
        # presence (mod_presence may deliver them in either order)
        self.assertEqual(sorted(seen), [('available', contact_full), ('subscribed', contact_jid)])

    async def test_subscription_and_presence_across_servers(self):
        a, b = self.fed_pair()
        aj, ca, bj, cb = await self.users_online(a, b)
        for c in (ca, cb):
            # answer nothing by itself; be an interested resource (RFC 6121 2.1.6)
            c.auto_authorize = None
            c.auto_subscribe = False
            await c.get_roster()
        await self.subscribe(ca, aj, cb, bj, bj + '/rb')
        self.assertEqual(await self.roster_of(ca), [(bj, 'to', None)])
        self.assertEqual(await self.roster_of(cb), [(aj, 'from', None)])
        await self.subscribe(cb, bj, ca, aj, aj + '/ra')
        self.assertEqual(await self.roster_of(ca), [(bj, 'both', None)])
        self.assertEqual(await self.roster_of(cb), [(aj, 'both', None)])
        # a presence change is broadcast across the link
        ca.send_presence(pstatus='busy', pshow='dnd')
        p = await self.presence_from(cb, aj)
        self.assertEqual((p['from'].full, p['show'], p['status']), (aj + '/ra', 'dnd', 'busy'))
        # bob goes offline: alice sees it
        await cb.close()
        p = await self.presence_from(ca, bj)
        self.assertEqual((p['type'], p['from'].full), ('unavailable', bj + '/rb'), xml_str(p))
        # bob comes back: his initial presence reaches alice, and the probe
        # of his server brings him alice's current presence
        bpw = self.passwords[bj]
        cb2 = await self.client(bj, bpw, server=b, resource='rb2')
        cb2.available()
        p = await self.presence_from(ca, bj)
        self.assertEqual((p['type'], p['from'].full), ('available', bj + '/rb2'), xml_str(p))
        p = await self.presence_from(cb2, aj)
        self.assertEqual((p['from'].full, p['show']), (aj + '/ra', 'dnd'), xml_str(p))

    async def presence_from(self, client, bare, timeout=10):
        """The next presence client receives from bare (its own
        presence broadcast is skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            p = await client.next_presence(timeout=max(0.1, deadline - time.monotonic()))
            if p['from'].bare == bare:
                return p

    async def test_message_to_missing_remote_user(self):
        a, b = self.fed_pair()
        aj, apw = self.user(a, domain='a.test')
        ca = await self.online(aj, apw, server=a, resource='x')
        ca.send_chat('nobody@b.test', 'anyone?')
        m = await ca.next_message(timeout=10)
        self.assertStanzaError(m, 'cancel', 'service-unavailable')
        self.assertEqual((m['from'].full, m['to'].full), ('nobody@b.test', aj + '/x'),
                         xml_str(m))

    async def test_message_to_offline_remote_user_is_stored(self):
        a, b = self.fed_pair()
        aj, apw = self.user(a, domain='a.test')
        bj, bpw = self.user(b, domain='b.test')
        ca = await self.online(aj, apw, server=a, resource='x')
        ca.send_chat(bj, 'keep this for bob')
        user = bj.split('@')[0]
        rows = await self.in_thread(wait_until, lambda: b.run.pg.psql(
            "SELECT stanza FROM offline WHERE host = 'b.test' AND username = '%s'" % user,
            dbname=b.dbname).strip(), 10 * b.run.slow, what='the offline row on b.test')
        self.assertIn('keep this for bob', rows)
        self.assertIn(aj + '/x', rows)
        await ca.no_message(wait=0.5)
        cb = await self.client(bj, bpw, server=b, resource='y')
        cb.available()   # not online(): it would drain the delivered message
        m = await cb.next_message(timeout=10)
        self.assertEqual((m['from'].full, m['body']), (aj + '/x', 'keep this for bob'),
                         xml_str(m))

    async def test_iq_to_remote_server_and_missing_resource(self):
        a, b = self.fed_pair()
        aj, ca, bj, cb = await self.users_online(a, b)
        res = await ca.iq('get', 'b.test', "<query xmlns='%s'/>" % NS_VERSION)
        self.assertEqual((res['type'], res['from'].full), ('result', 'b.test'), xml_str(res))
        self.assertEqual(res.xml.find('{%s}query/{%s}name' % (NS_VERSION, NS_VERSION)).text,
                         'Parley')
        res = await ca.iq('get', bj + '/nosuch', "<query xmlns='%s'/>" % NS_VERSION)
        self.assertStanzaError(res, 'cancel', 'service-unavailable')
        self.assertEqual(res['from'].full, bj + '/nosuch')
        # an IQ between the two users' full JIDs reaches the other client
        iq = ca.Iq()
        iq['type'] = 'get'
        iq['to'] = bj + '/rb'
        iq['id'] = 'cross-1'
        iq.append(ET.fromstring("<query xmlns='%s'/>" % NS_VERSION))
        iq.send()
        got = await self.wait_iq(cb, 'cross-1')
        self.assertEqual((got['from'].full, got['type']), (aj + '/ra', 'get'), xml_str(got))

    async def wait_iq(self, client, iq_id, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for s in client.iq_log:
                if s['id'] == iq_id:
                    return s
            await asyncio.sleep(0.05)
        raise AssertionError('no IQ %s' % iq_id)

    async def test_idle_streams_close_and_reopen(self):
        a, b = self.fed_pair(a_kw={'limits': {'s2s_idle_timeout': '2s'}},
                             b_kw={'limits': {'s2s_idle_timeout': '2s'}})
        aj, ca, bj, cb = await self.users_online(a, b)
        ca.send_chat(bj + '/rb', 'one')
        self.assertEqual((await cb.next_message(timeout=10))['body'], 'one')
        self.assertIsNotNone(stream_line(a.s2s(), 'out', 'a.test', 'b.test'))
        a.wait_s2s(lambda l: stream_line(l, 'out', 'a.test', 'b.test') is None, timeout=10,
                   what='the idle outgoing stream to close')
        b.wait_s2s(lambda l: stream_line(l, 'in', 'b.test', 'a.test') is None, timeout=10,
                   what='the incoming stream to close')
        ca.send_chat(bj + '/rb', 'two')
        self.assertEqual((await cb.next_message(timeout=10))['body'], 'two')

    async def test_direct_tls_listener(self):
        a = self.fed('a.test', '127.0.0.2', start=False)
        b = self.fed('b.test', '127.0.0.3', start=False, s2s_tls=True)
        a.route_to(b, direct_tls=True)
        b.route_to(a)
        a.start()
        b.start()
        aj, ca, bj, cb = await self.users_online(a, b)
        ca.send_chat(bj + '/rb', 'over direct TLS')
        self.assertEqual((await cb.next_message(timeout=10))['body'], 'over direct TLS')
        line = stream_line(a.s2s(), 'out', 'a.test', 'b.test')
        self.assertEqual(line[5], '127.0.0.3:%d' % b.s2s_tls_port, line)
        self.assertEqual(line[3], 'sasl-external')
        self.assertRegex(line[4], r'^TLS1\.[23]/')


class VirtualHostTests(FedTestCase):

    async def test_each_local_domain_authenticates_its_own_stream(self):
        a = self.fed('a.test', '127.0.0.2', start=False, extra_domains=('a2.test',))
        b = self.fed('b.test', '127.0.0.3', start=False)
        a.route_to(b)
        b.route_to(a)
        a.start()
        b.start()
        aj, apw = self.user(a, domain='a.test')
        a2j, a2pw = self.user(a, domain='a2.test')
        bj, bpw = self.user(b, domain='b.test')
        ca = await self.online(aj, apw, server=a, resource='x')
        ca2 = await self.online(a2j, a2pw, server=a, resource='x')
        cb = await self.online(bj, bpw, server=b, resource='y')
        ca.send_chat(bj + '/y', 'from a')
        ca2.send_chat(bj + '/y', 'from a2')
        got = {}
        for _ in range(2):
            m = await cb.next_message(timeout=10)
            got[m['body']] = m['from'].full
        self.assertEqual(got, {'from a': aj + '/x', 'from a2': a2j + '/x'})
        cb.send_chat(a2j + '/x', 'to a2')
        m = await ca2.next_message(timeout=10)
        self.assertEqual((m['from'].full, m['body']), (bj + '/y', 'to a2'))
        cb.send_chat(aj + '/x', 'to a')
        m = await ca.next_message(timeout=10)
        self.assertEqual((m['from'].full, m['body']), (bj + '/y', 'to a'))
        la, lb = a.s2s(), b.s2s()
        for local in ('a.test', 'a2.test'):
            out = stream_line(la, 'out', local, 'b.test')
            self.assertEqual(out[3], 'sasl-external', la)
            inc = stream_line(lb, 'in', 'b.test', local)
            self.assertEqual(inc[3], 'sasl-external', lb)
            self.assertEqual(stream_line(lb, 'out', 'b.test', local)[3], 'sasl-external', lb)
        self.assertEqual(len([f for f in la if f[0] == 'out']), 2, la)
        # the two outgoing streams are separate connections
        ports = {stream_line(lb, 'in', 'b.test', d)[5] for d in ('a.test', 'a2.test')}
        self.assertEqual(len(ports), 2, lb)


class Ipv6Tests(FedTestCase):

    async def test_route_to_ipv6_loopback(self):
        a = self.fed('a.test', '127.0.0.2', start=False)
        b = self.fed('b.test', '::1', start=False)
        a.route_to(b)
        b.route_to(a)
        a.start()
        b.start()
        aj, apw = self.user(a, domain='a.test')
        bj, bpw = self.user(b, domain='b.test')
        ca = await self.online(aj, apw, server=a, resource='x')
        cb = await self.online(bj, bpw, server=b, resource='y')
        ca.send_chat(bj + '/y', 'over IPv6')
        self.assertEqual((await cb.next_message(timeout=10))['body'], 'over IPv6')
        line = stream_line(a.s2s(), 'out', 'a.test', 'b.test')
        self.assertEqual(line[5], '[::1]:%d' % b.s2s_port, line)


class UnreachableTests(FedTestCase):
    """Stanzas for a domain that cannot be reached are bounced."""

    async def test_connection_refused_bounces_remote_server_not_found(self):
        a = self.fed('a.test', '127.0.0.2', start=False)
        with socket.socket() as s:
            s.bind(('127.0.0.4', 0))
            closed_port = s.getsockname()[1]
        a.route('c.test', '127.0.0.4', closed_port)
        a.start()
        aj, apw = self.user(a, domain='a.test')
        ca = await self.online(aj, apw, server=a, resource='x')
        ca.send_chat('someone@c.test/r', 'hello?')
        m = await ca.next_message(timeout=15)
        self.assertStanzaError(m, 'cancel', 'remote-server-not-found')
        self.assertEqual((m['from'].full, m['to'].full), ('someone@c.test/r', aj + '/x'))
        # an error stanza is never answered with an error
        err = ca.make_message(mto='someone@c.test', mtype='error')
        err.send()
        await ca.no_message(wait=1.5)
        # the failed stream is gone; nothing stays listed
        self.assertIsNone(stream_line(a.s2s(), 'out', 'a.test', 'c.test'))

    async def test_silent_server_bounces_remote_server_timeout(self):
        a = self.fed('a.test', '127.0.0.2', start=False, limits={'unauth_timeout': '2s'})
        silent = socket.socket()
        silent.bind(('127.0.0.4', 0))
        silent.listen(8)
        self.addCleanup(silent.close)
        a.route('slow.test', '127.0.0.4', silent.getsockname()[1])
        a.start()
        aj, apw = self.user(a, domain='a.test')
        ca = await self.online(aj, apw, server=a, resource='x')
        started = time.monotonic()
        for i in range(3):
            ca.send_chat('someone@slow.test', 'queued %d' % i)
        await asyncio.sleep(0.5)
        line = stream_line(a.s2s(), 'out', 'a.test', 'slow.test')
        self.assertIsNotNone(line)
        self.assertEqual(line[-1], 'queued=3', line)
        bodies = []
        for i in range(3):
            m = await ca.next_message(timeout=15)
            self.assertStanzaError(m, 'wait', 'remote-server-timeout')
            bodies.append(m['id'])
        self.assertGreaterEqual(time.monotonic() - started, 1.5)
        self.assertEqual(len(set(bodies)), 3)

    async def test_queue_limit_bounces_resource_constraint(self):
        a = self.fed('a.test', '127.0.0.2', start=False, limits={'unauth_timeout': '3s'},
                     s2s_options={'queue_max': '2'})
        silent = socket.socket()
        silent.bind(('127.0.0.4', 0))
        silent.listen(8)
        self.addCleanup(silent.close)
        a.route('slow.test', '127.0.0.4', silent.getsockname()[1])
        a.start()
        aj, apw = self.user(a, domain='a.test')
        ca = await self.online(aj, apw, server=a, resource='x')
        for i in range(3):
            m = ca.make_message(mto='someone@slow.test', mbody='m%d' % i, mtype='chat')
            m['id'] = 'q%d' % i
            m.send()
        m = await ca.next_message(timeout=5)
        self.assertEqual(m['id'], 'q2', xml_str(m))
        self.assertStanzaError(m, 'wait', 'resource-constraint')
        for want in ('q0', 'q1'):
            m = await ca.next_message(timeout=15)
            self.assertEqual(m['id'], want, xml_str(m))
            self.assertStanzaError(m, 'wait', 'remote-server-timeout')

    async def test_blocked_domain(self):
        a, b = self.fed_pair(a_kw={'s2s_options': {'policies': 'b.test=block'}})
        aj, apw = self.user(a, domain='a.test')
        bj, bpw = self.user(b, domain='b.test')
        ca = await self.online(aj, apw, server=a, resource='x')
        cb = await self.online(bj, bpw, server=b, resource='y')
        ca.send_chat(bj + '/y', 'blocked?')
        m = await ca.next_message(timeout=10)
        self.assertStanzaError(m, 'cancel', 'remote-server-not-found')
        await cb.no_message(wait=0.5)
        # b's attempt to reach a is refused at the stream header
        cb.send_chat(aj + '/x', 'let me in')
        m = await cb.next_message(timeout=15)
        self.assertEqual(m['type'], 'error', xml_str(m))
        self.assertEqual(error_of(m)[1], ['remote-server-not-found'], xml_str(m))
        await ca.no_message(wait=0.5)
        a.wait_log(r'stream error policy-violation', timeout=5)


class CtlTests(FedTestCase):

    async def test_s2s_command_without_the_module(self):
        p = self.parley()
        r = p.ctl('s2s', check=False)
        self.assertEqual(r.returncode, 1, r)
        self.assertIn('federation is not enabled', r.stdout + r.stderr)

    async def test_s2s_command_takes_no_arguments(self):
        a = self.fed('a.test', '127.0.0.2')
        r = a.ctl('s2s', 'extra', check=False)
        self.assertEqual(r.returncode, 2, r)
        self.assertEqual(a.s2s(), [])


class OperationsTests(FedTestCase):
    """Reloading and unloading the module, and reloading the config, while
    streams are up."""

    async def pair_online(self):
        a, b = self.fed_pair()
        aj, apw = self.user(a, domain='a.test')
        bj, bpw = self.user(b, domain='b.test')
        ca = await self.online(aj, apw, server=a, resource='x')
        cb = await self.online(bj, bpw, server=b, resource='y')
        ca.send_chat(bj + '/y', 'before')
        self.assertEqual((await cb.next_message(timeout=10))['body'], 'before')
        return a, b, aj, ca, bj, cb

    async def test_module_reload_with_streams_up(self):
        a, b, aj, ca, bj, cb = await self.pair_online()
        self.assertEqual(len(a.s2s()), 1)
        a.ctl('module', 'reload', 's2s')
        self.assertEqual(a.s2s(), [])
        b.wait_s2s(lambda l: not l, what='b.test to see its streams closed')
        ca.send_chat(bj + '/y', 'after the reload')
        self.assertEqual((await cb.next_message(timeout=10))['body'], 'after the reload')
        cb.send_chat(aj + '/x', 'and back')
        self.assertEqual((await ca.next_message(timeout=10))['body'], 'and back')

    async def test_module_unload_and_load(self):
        a, b, aj, ca, bj, cb = await self.pair_online()
        a.ctl('module', 'unload', 's2s')
        r = a.ctl('s2s', check=False)
        self.assertEqual(r.returncode, 1)
        # without the module the core bounces remote stanzas
        ca.send_chat(bj + '/y', 'nobody takes this')
        m = await ca.next_message(timeout=10)
        self.assertStanzaError(m, 'cancel', 'remote-server-not-found')
        # and nobody takes incoming connections: b cannot deliver
        cb.send_chat(aj + '/x', 'knock knock')
        m = await cb.next_message(timeout=15)
        self.assertEqual(m['type'], 'error', xml_str(m))
        a.ctl('module', 'load', 's2s')
        ca.send_chat(bj + '/y', 'back again')
        self.assertEqual((await cb.next_message(timeout=10))['body'], 'back again')
        cb.send_chat(aj + '/x', 'welcome back')
        self.assertEqual((await ca.next_message(timeout=15))['body'], 'welcome back')

    async def test_config_reload_changes_routes(self):
        a = self.fed('a.test', '127.0.0.2', start=False)
        b = self.fed('b.test', '127.0.0.3', start=False)
        with socket.socket() as s:
            s.bind(('127.0.0.4', 0))
            wrong = s.getsockname()[1]
        a.route('b.test', '127.0.0.4', wrong)
        b.route_to(a)
        a.start()
        b.start()
        aj, apw = self.user(a, domain='a.test')
        bj, bpw = self.user(b, domain='b.test')
        ca = await self.online(aj, apw, server=a, resource='x')
        cb = await self.online(bj, bpw, server=b, resource='y')
        ca.send_chat(bj + '/y', 'lost')
        m = await ca.next_message(timeout=10)
        self.assertStanzaError(m, 'cancel', 'remote-server-not-found')
        a.route_to(b)
        a.ctl('reload')
        await asyncio.sleep(1.0 * a.run.slow)   # the module rereads its options
        ca.send_chat(bj + '/y', 'found')
        self.assertEqual((await cb.next_message(timeout=10))['body'], 'found')

    async def test_config_reload_with_a_bad_route_keeps_the_old_ones(self):
        a, b, aj, ca, bj, cb = await self.pair_online()
        a.routes['broken.test'] = 'host:99999'
        a.write_config()
        a.ctl('reload')
        await asyncio.sleep(2.0 * a.run.slow)
        self.assertEqual(a.log().count('keeping the previous options: invalid route target '
                                       '"host:99999" for broken.test'), 1, a.log_tail(20))
        ca.send_chat(bj + '/y', 'still routed')
        self.assertEqual((await cb.next_message(timeout=10))['body'], 'still routed')
