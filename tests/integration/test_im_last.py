"""Integration tests: Last Activity (mod_last; XEP-0012)."""

import asyncio
import time

from harness import DEFAULT_MODULES, ParleyTestCase, xml_str

NS_LAST = 'jabber:iq:last'
NS_DISCO_INFO = 'http://jabber.org/protocol/disco#info'
MODULES = DEFAULT_MODULES + ('last',)
QUERY = "<query xmlns='jabber:iq:last'/>"


def node(jid):
    return jid.split('@', 1)[0]


class LastTests(ParleyTestCase):
    SHARED_SERVER = {'modules': MODULES, 'limits': {'auth_failures': '1000'}}

    def psql(self, sql):
        return self.server.run.pg.psql(sql, dbname=self.server.dbname).strip()

    def subscribe(self, user, contact, subscription='from'):
        """Gives user a roster item for contact with this subscription."""
        self.psql("INSERT INTO roster (host, username, contact, subscription) "
                  "VALUES ('localhost', '%s', '%s', '%s')" % (node(user), contact, subscription))

    def last_of(self, r):
        """(seconds, text) of a jabber:iq:last result."""
        self.assertEqual(r['type'], 'result', xml_str(r))
        qs = list(r.xml)
        self.assertEqual([q.tag for q in qs], ['{%s}query' % NS_LAST], xml_str(r))
        self.assertEqual(list(qs[0]), [], xml_str(r))
        secs = qs[0].get('seconds')
        self.assertRegex(secs or '', r'^\d+$', xml_str(r))
        return int(secs), qs[0].text

    async def wait_recorded(self, user, timeout=10):
        sql = ("SELECT coalesce(status, '<null>') FROM last_activity "
               "WHERE host = 'localhost' AND username = '%s'" % node(user))
        deadline = time.monotonic() + timeout
        while True:
            out = await self.in_thread(self.psql, sql)
            if out:
                return out
            self.assertLess(time.monotonic(), deadline, 'no last_activity row for ' + user)
            await asyncio.sleep(0.05)

    async def test_server_uptime(self):
        alice, apw = self.user(prefix='alice')
        a = await self.online(alice, apw)
        r = await a.iq('get', 'localhost', QUERY)
        s1, text = self.last_of(r)
        self.assertIsNone(text)
        self.assertEqual(r['from'].full, 'localhost')
        await asyncio.sleep(1.1)
        s2, _ = self.last_of(await a.iq('get', 'localhost', QUERY))
        self.assertGreaterEqual(s2, s1 + 1)
        self.assertLess(s2, 3600)

    async def test_own_account_is_online(self):
        alice, apw = self.user(prefix='alice')
        a = await self.online(alice, apw)
        for to in (None, alice):
            self.assertEqual(self.last_of(await a.iq('get', to, QUERY)), (0, None))

    async def test_online_contact_is_zero(self):
        alice, apw = self.user(prefix='alice')
        bob, bpw = self.user(prefix='bob')
        self.subscribe(bob, alice, 'both')
        a = await self.online(alice, apw)
        await self.online(bob, bpw)
        r = await a.iq('get', bob, QUERY)
        self.assertEqual(r['from'].full, bob, xml_str(r))
        self.assertEqual(self.last_of(r), (0, None))

    async def test_offline_contact_after_logout(self):
        alice, apw = self.user(prefix='alice')
        bob, bpw = self.user(prefix='bob')
        self.subscribe(bob, alice)
        a = await self.online(alice, apw)
        r = await a.iq('get', bob, QUERY)
        self.assertStanzaError(r, 'cancel', 'item-not-found')
        b = await self.online(bob, bpw)
        p = b.Presence()
        p['type'] = 'unavailable'
        p['status'] = 'gone fishing <&>'
        p.send()
        await b.close()
        self.assertEqual(await self.wait_recorded(bob), 'gone fishing <&>')
        secs, text = self.last_of(await a.iq('get', bob, QUERY))
        self.assertEqual(text, 'gone fishing <&>')
        self.assertGreaterEqual(secs, 0)
        self.assertLess(secs, 10)
        await asyncio.sleep(1.1)
        secs2, text2 = self.last_of(await a.iq('get', bob, QUERY))
        self.assertGreaterEqual(secs2, secs + 1)
        self.assertEqual(text2, 'gone fishing <&>')

    async def test_disconnect_without_unavailable_has_no_status(self):
        alice, apw = self.user(prefix='alice')
        bob, bpw = self.user(prefix='bob')
        self.subscribe(bob, alice)
        a = await self.online(alice, apw)
        b = await self.online(bob, bpw)
        b.abort()
        self.assertEqual(await self.wait_recorded(bob), '<null>')
        self.assertLess(self.last_of(await a.iq('get', bob, QUERY))[0], 10)
        self.assertIsNone(self.last_of(await a.iq('get', bob, QUERY))[1])

    async def test_other_resource_still_available(self):
        alice, apw = self.user(prefix='alice')
        bob, bpw = self.user(prefix='bob')
        self.subscribe(bob, alice)
        a = await self.online(alice, apw)
        b1 = await self.online(bob, bpw, resource='one')
        await self.online(bob, bpw, resource='two')
        await b1.close()
        await asyncio.sleep(0.3)
        self.assertEqual(await self.in_thread(
            self.psql, "SELECT count(*) FROM last_activity WHERE username = '%s'" % node(bob)),
            '0')
        self.assertEqual(self.last_of(await a.iq('get', bob, QUERY)), (0, None))

    async def test_not_subscribed_is_forbidden(self):
        alice, apw = self.user(prefix='alice')
        bob, bpw = self.user(prefix='bob')
        carol, cpw = self.user(prefix='carol')
        self.subscribe(bob, carol, 'to')
        a = await self.online(alice, apw)
        c = await self.online(carol, cpw)
        b = await self.online(bob, bpw)
        await b.close()
        await self.wait_recorded(bob)
        for client in (a, c):
            r = await client.iq('get', bob, QUERY)
            self.assertStanzaError(r, 'auth', 'forbidden')
            self.assertEqual(r['from'].full, bob, xml_str(r))

    async def test_unknown_account(self):
        alice, apw = self.user(prefix='alice')
        a = await self.online(alice, apw)
        r = await a.iq('get', 'nobody-here@localhost', QUERY)
        self.assertStanzaError(r, 'cancel', 'service-unavailable')

    async def test_disco_feature(self):
        alice, apw = self.user(prefix='alice')
        a = await self.online(alice, apw)
        r = await a.iq('get', 'localhost', "<query xmlns='%s'/>" % NS_DISCO_INFO)
        feats = [f.get('var') for f in r.xml.iter('{%s}feature' % NS_DISCO_INFO)]
        self.assertIn(NS_LAST, feats)
