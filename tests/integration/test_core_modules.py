"""Integration tests: the core modules (ping XEP-0199, version XEP-0092,
time XEP-0202, disco XEP-0030) and runtime module management through
parleyctl."""

import datetime

from harness import ParleyTestCase, error_of, xml_str

DISCO_INFO = 'http://jabber.org/protocol/disco#info'
PING = "<ping xmlns='urn:xmpp:ping'/>"


def disco_features(res):
    q = res.xml.find('{%s}query' % DISCO_INFO)
    return [f.get('var') for f in q.findall('{%s}feature' % DISCO_INFO)]


def disco_identities(res):
    q = res.xml.find('{%s}query' % DISCO_INFO)
    return [(i.get('category'), i.get('type'))
            for i in q.findall('{%s}identity' % DISCO_INFO)]


class ModuleTests(ParleyTestCase):
    SHARED_SERVER = {}

    async def asyncSetUp(self):
        jid, pw = self.user()
        self.jid = jid
        self.c = await self.client(jid, pw, resource='m')

    def assertResult(self, res):
        self.assertEqual(res['type'], 'result', xml_str(res))
        self.assertEqual(res['from'].full, 'localhost', xml_str(res))
        self.assertEqual(res['to'].full, self.jid + '/m', xml_str(res))

    async def test_ping(self):
        res = await self.c.iq('get', 'localhost', PING)
        self.assertResult(res)
        self.assertEqual(len(res.xml), 0, xml_str(res))

    async def test_version(self):
        res = await self.c.iq('get', 'localhost', "<query xmlns='jabber:iq:version'/>")
        self.assertResult(res)
        q = res.xml.find('{jabber:iq:version}query')
        self.assertIsNotNone(q, xml_str(res))
        self.assertEqual(q.findtext('{jabber:iq:version}name'), 'Parley')
        self.assertRegex(q.findtext('{jabber:iq:version}version') or '', r'^\d+\.\d+')

    async def test_time(self):
        res = await self.c.iq('get', 'localhost', "<time xmlns='urn:xmpp:time'/>")
        self.assertResult(res)
        t = res.xml.find('{urn:xmpp:time}time')
        self.assertIsNotNone(t, xml_str(res))
        tzo = t.findtext('{urn:xmpp:time}tzo')
        utc = t.findtext('{urn:xmpp:time}utc')
        self.assertRegex(tzo or '', r'^(Z|[+-]\d\d:\d\d)$')
        self.assertRegex(utc or '', r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$')
        when = datetime.datetime.strptime(utc[:19], '%Y-%m-%dT%H:%M:%S').replace(
            tzinfo=datetime.timezone.utc)
        now = datetime.datetime.now(datetime.timezone.utc)
        self.assertLess(abs((now - when).total_seconds()), 60)

    async def test_disco_info(self):
        res = await self.c.iq('get', 'localhost', "<query xmlns='%s'/>" % DISCO_INFO)
        self.assertResult(res)
        self.assertIn(('server', 'im'), disco_identities(res))
        feats = disco_features(res)
        for f in ('urn:xmpp:ping', 'jabber:iq:version', 'urn:xmpp:time', DISCO_INFO):
            self.assertIn(f, feats)
        self.assertEqual(len(feats), len(set(feats)), 'duplicate features: %r' % feats)

    async def test_unknown_namespace_get(self):
        res = await self.c.iq('get', 'localhost', "<query xmlns='urn:example:nothing'/>")
        self.assertEqual(res['type'], 'error', xml_str(res))
        self.assertEqual(res['from'].full, 'localhost')
        self.assertEqual(error_of(res)[:2], ('cancel', ['service-unavailable']), xml_str(res))

    async def test_unknown_namespace_set(self):
        res = await self.c.iq('set', 'localhost', "<frob xmlns='urn:example:nothing'/>")
        self.assertEqual(res['type'], 'error', xml_str(res))
        self.assertEqual(error_of(res)[:2], ('cancel', ['service-unavailable']), xml_str(res))

    async def test_ping_set_is_not_ping(self):
        # ping is a get; a set with the same payload has no handler
        res = await self.c.iq('set', 'localhost', PING)
        self.assertEqual(res['type'], 'error', xml_str(res))
        self.assertEqual(error_of(res)[:2], ('cancel', ['service-unavailable']), xml_str(res))


class ModuleManagementTests(ParleyTestCase):

    async def ping(self, c):
        return await c.iq('get', 'localhost', PING)

    async def test_unload_load_reload(self):
        srv = self.parley()
        alice, apw = self.user(srv, prefix='alice')
        bob, bpw = self.user(srv, prefix='bob')
        a = await self.online(alice, apw, server=srv, resource='a')
        b = await self.online(bob, bpw, server=srv, resource='b')

        self.assertEqual((await self.ping(a))['type'], 'result')
        await self.in_thread(srv.ctl, 'module', 'unload', 'ping')
        res = await self.ping(a)
        self.assertEqual(res['type'], 'error', xml_str(res))
        self.assertEqual(error_of(res)[:2], ('cancel', ['service-unavailable']), xml_str(res))
        info = await a.iq('get', 'localhost', "<query xmlns='%s'/>" % DISCO_INFO)
        self.assertNotIn('urn:xmpp:ping', disco_features(info))
        self.assertIn('jabber:iq:version', disco_features(info))
        listing = (await self.in_thread(srv.ctl, 'module', 'list')).stdout
        self.assertNotRegex(listing, r'\bping\b')
        self.assertRegex(listing, r'\bversion\b')

        # messaging goes on while modules change
        a.send_chat(bob + '/b', 'still here')
        m = await b.next_message()
        self.assertEqual(m['body'], 'still here')

        await self.in_thread(srv.ctl, 'module', 'load', 'ping')
        self.assertEqual((await self.ping(a))['type'], 'result')
        self.assertEqual((await self.ping(b))['type'], 'result')
        info = await a.iq('get', 'localhost', "<query xmlns='%s'/>" % DISCO_INFO)
        self.assertIn('urn:xmpp:ping', disco_features(info))
        listing = (await self.in_thread(srv.ctl, 'module', 'list')).stdout
        self.assertRegex(listing, r'\bping\b')

        await self.in_thread(srv.ctl, 'module', 'reload', 'version')
        res = await a.iq('get', 'localhost', "<query xmlns='jabber:iq:version'/>")
        self.assertEqual(res['type'], 'result', xml_str(res))
        self.assertEqual(res.xml.findtext('{jabber:iq:version}query/{jabber:iq:version}name'),
                         'Parley')

        b.send_chat(alice + '/a', 'after reload')
        m = await a.next_message()
        self.assertEqual((m['from'].full, m['body']), (bob + '/b', 'after reload'))
        self.assertFalse(a.gone.is_set() or b.gone.is_set())
        self.assertEqual(a.stream_errors + b.stream_errors, [])

    async def test_module_commands_per_host(self):
        srv = self.parley()
        alice, apw = self.user(srv)
        a = await self.online(alice, apw, server=srv, resource='a')
        await self.in_thread(srv.ctl, 'module', 'unload', 'time', 'localhost')
        res = await a.iq('get', 'localhost', "<time xmlns='urn:xmpp:time'/>")
        self.assertEqual(error_of(res)[:2], ('cancel', ['service-unavailable']), xml_str(res))
        await self.in_thread(srv.ctl, 'module', 'load', 'time', 'localhost')
        res = await a.iq('get', 'localhost', "<time xmlns='urn:xmpp:time'/>")
        self.assertEqual(res['type'], 'result', xml_str(res))

    async def test_module_errors(self):
        srv = self.parley()
        r = await self.in_thread(srv.ctl, 'module', 'load', 'nosuchmodule', check=False)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertTrue(r.stderr.strip(), 'no message on stderr')
        r = await self.in_thread(srv.ctl, 'module', 'unload', 'nosuchmodule', check=False)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        # the server still works
        alice, apw = self.user(srv)
        a = await self.client(alice, apw, server=srv)
        self.assertEqual((await self.ping(a))['type'], 'result')
