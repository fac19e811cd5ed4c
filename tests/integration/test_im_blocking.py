"""Integration tests: Blocking Command (mod_blocking; XEP-0191)."""

import asyncio
import time

from harness import DEFAULT_MODULES, NS_STANZAS, ParleyTestCase, error_of, xml_str

NS_BLOCKING = 'urn:xmpp:blocking'
NS_BLOCKED = 'urn:xmpp:blocking:errors'
NS_DISCO_INFO = 'http://jabber.org/protocol/disco#info'
NS_VERSION = 'jabber:iq:version'
MODULES = DEFAULT_MODULES + ('blocking',)


def node(jid):
    return jid.split('@', 1)[0]


def items(*jids):
    return ''.join("<item jid='%s'/>" % j for j in jids)


class BlockingBase(ParleyTestCase):

    async def get_list(self, client):
        r = await client.iq('get', None, "<blocklist xmlns='urn:xmpp:blocking'/>")
        self.assertEqual(r['type'], 'result', xml_str(r))
        lists = list(r.xml)
        self.assertEqual([x.tag for x in lists], ['{%s}blocklist' % NS_BLOCKING], xml_str(r))
        for it in lists[0]:
            self.assertEqual(it.tag, '{%s}item' % NS_BLOCKING, xml_str(r))
        return sorted(it.get('jid') for it in lists[0])

    async def change(self, client, verb, *jids):
        r = await client.iq('set', None, "<%s xmlns='urn:xmpp:blocking'>%s</%s>"
                            % (verb, items(*jids), verb))
        self.assertEqual((r['type'], list(r.xml)), ('result', []), xml_str(r))
        return r

    def stored(self, server, user):
        out = server.run.pg.psql("SELECT jid FROM blocklist WHERE username = '%s' ORDER BY jid"
                                 % node(user), dbname=server.dbname)
        return [x for x in out.split('\n') if x]

    async def pushes(self, client, n, wait=0.5):
        """The blocking pushes client received: waits for n, then checks
        that no more arrive within wait seconds."""
        def found():
            return [iq for iq in client.iq_log
                    if iq['type'] == 'set' and len(iq.xml) == 1
                    and iq.xml[0].tag in ('{%s}block' % NS_BLOCKING,
                                          '{%s}unblock' % NS_BLOCKING)]
        deadline = time.monotonic() + 5
        while len(found()) < n and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(wait)
        got = found()
        self.assertEqual(len(got), n, [xml_str(x) for x in got])
        return [(p.xml[0].tag.split('}')[1], sorted(i.get('jid') for i in p.xml[0]))
                for p in got]

    async def expect_bounce(self, client, frm, id_, condition, blocked=False):
        m = await client.next_message()
        self.assertEqual((m['type'], m['id'], m['from'].full), ('error', id_, frm), xml_str(m))
        err = [c for c in m.xml if c.tag.endswith('}error')][0]
        self.assertEqual(error_of(m)[:2], ('cancel', [condition]), xml_str(m))
        extra = [c.tag for c in err if not c.tag.startswith('{%s}' % NS_STANZAS)]
        self.assertEqual(extra, ['{%s}blocked' % NS_BLOCKED] if blocked else [], xml_str(m))

    def message(self, client, to, body, id_):
        m = client.make_message(mto=to, mbody=body, mtype='chat')
        m['id'] = id_
        m.send()


class BlockingTests(BlockingBase):
    SHARED_SERVER = {'modules': MODULES, 'limits': {'auth_failures': '1000'}}

    async def test_list_block_unblock_and_pushes(self):
        alice, apw = self.user(prefix='alice')
        a1 = await self.online(alice, apw, resource='one')
        a2 = await self.online(alice, apw, resource='two')   # never asks for the list
        self.assertEqual(await self.get_list(a1), [])
        await self.change(a1, 'block', 'x@localhost', 'Y@Example.ORG/Res', 'z.example')
        self.assertEqual(self.stored(self.server, alice),
                         ['x@localhost', 'y@example.org/Res', 'z.example'])
        self.assertEqual(await self.get_list(a1),
                         ['x@localhost', 'y@example.org/Res', 'z.example'])
        self.assertEqual(await self.pushes(a1, 1),
                         [('block', ['x@localhost', 'y@example.org/Res', 'z.example'])])
        self.assertEqual(await self.pushes(a2, 0, wait=0), [])
        await self.change(a1, 'unblock', 'z.example')
        self.assertEqual(self.stored(self.server, alice), ['x@localhost', 'y@example.org/Res'])
        self.assertEqual(await self.get_list(a2), ['x@localhost', 'y@example.org/Res'])
        self.assertEqual(await self.pushes(a1, 2),
                         [('block', ['x@localhost', 'y@example.org/Res', 'z.example']),
                          ('unblock', ['z.example'])])
        # a2 asked for the list now: it gets the pushes from here on
        await self.change(a1, 'unblock')
        self.assertEqual(self.stored(self.server, alice), [])
        self.assertEqual(await self.get_list(a1), [])
        self.assertEqual((await self.pushes(a1, 3))[2], ('unblock', []))
        self.assertEqual(await self.pushes(a2, 1), [('unblock', [])])

    async def test_bad_requests(self):
        alice, apw = self.user(prefix='alice')
        a = await self.online(alice, apw)
        r = await a.iq('set', None, "<block xmlns='urn:xmpp:blocking'/>")
        self.assertStanzaError(r, 'modify', 'bad-request')
        r = await a.iq('set', None, "<block xmlns='urn:xmpp:blocking'>%s</block>"
                       % items('ok@localhost', 'bad@@jid'))
        self.assertStanzaError(r, 'modify', 'jid-malformed')
        r = await a.iq('set', None, "<block xmlns='urn:xmpp:blocking'><item/></block>")
        self.assertStanzaError(r, 'modify', 'jid-malformed')
        self.assertEqual(self.stored(self.server, alice), [])

    async def test_blocked_contact_stanzas_not_delivered(self):
        alice, apw = self.user(prefix='alice')
        mallory, mpw = self.user(prefix='mallory')
        a = await self.online(alice, apw, resource='a')
        m = await self.online(mallory, mpw, resource='m')
        await self.change(a, 'block', mallory)
        for to in (alice, alice + '/a'):
            self.message(m, to, 'let me in', 'm-' + to)
            await self.expect_bounce(m, to, 'm-' + to, 'service-unavailable')
        p = m.Presence()
        p['to'] = alice + '/a'
        p.send()
        p = m.Presence()
        p['to'] = alice
        p['status'] = 'hi'
        p.send()
        r = await m.iq('get', alice + '/a', "<query xmlns='%s'/>" % NS_VERSION)
        self.assertStanzaError(r, 'cancel', 'service-unavailable')
        self.assertEqual(r['from'].full, alice + '/a')
        await a.no_message()
        with self.assertRaises(AssertionError):
            await a.next_presence(timeout=0.5)
        self.assertEqual([x for x in a.iq_log if x['type'] in ('get', 'set')
                          and x['from'].bare == mallory], [])
        # unblocked: delivered again
        await self.change(a, 'unblock', mallory)
        self.message(m, alice, 'hello again', 'm2')
        got = await a.next_message()
        self.assertEqual((got['from'].full, got['body']), (mallory + '/m', 'hello again'))
        await m.no_message()
        p = m.Presence()
        p['to'] = alice + '/a'
        p['status'] = 'visible now'
        p.send()
        got = await a.next_presence()
        self.assertEqual((got['from'].full, got['status']), (mallory + '/m', 'visible now'))

    async def test_outbound_to_blocked_bounces_with_blocked(self):
        alice, apw = self.user(prefix='alice')
        bob, bpw = self.user(prefix='bob')
        a = await self.online(alice, apw, resource='a')
        b = await self.online(bob, bpw, resource='b')
        await self.change(a, 'block', bob)
        self.message(a, bob + '/b', 'are you there', 'out1')
        await self.expect_bounce(a, bob + '/b', 'out1', 'not-acceptable', blocked=True)
        r = await a.iq('get', bob + '/b', "<query xmlns='%s'/>" % NS_VERSION)
        self.assertEqual(r['type'], 'error', xml_str(r))
        self.assertEqual(error_of(r)[:2], ('cancel', ['not-acceptable']), xml_str(r))
        err = [c for c in r.xml if c.tag.endswith('}error')][0]
        self.assertIsNotNone(err.find('{%s}blocked' % NS_BLOCKED), xml_str(r))
        p = a.Presence()
        p['to'] = bob + '/b'
        p['id'] = 'pres1'
        p.send()
        got = await a.next_presence()
        self.assertEqual((got['type'], got['id'], got['from'].full), ('error', 'pres1', bob + '/b'),
                         xml_str(got))
        self.assertEqual(error_of(got)[:2], ('cancel', ['not-acceptable']), xml_str(got))
        await b.no_message()
        with self.assertRaises(AssertionError):
            await b.next_presence(timeout=0.3)
        self.assertEqual([x for x in b.iq_log if x['from'].bare == alice], [])

    async def test_full_jid_item_blocks_one_resource(self):
        alice, apw = self.user(prefix='alice')
        carol, cpw = self.user(prefix='carol')
        a = await self.online(alice, apw, resource='a')
        evil = await self.online(carol, cpw, resource='evil')
        good = await self.online(carol, cpw, resource='good')
        await self.change(a, 'block', carol + '/evil')
        self.message(evil, alice, 'from evil', 'e1')
        await self.expect_bounce(evil, alice, 'e1', 'service-unavailable')
        self.message(good, alice, 'from good', 'g1')
        got = await a.next_message()
        self.assertEqual((got['from'].full, got['body']), (carol + '/good', 'from good'))
        await a.no_message()

    async def test_unavailable_presence_to_subscribed_contact(self):
        alice, apw = self.user(prefix='alice')
        carol, cpw = self.user(prefix='carol')
        dave, dpw = self.user(prefix='dave')
        for contact, sub in ((carol, 'from'), (dave, 'to')):
            self.server.run.pg.psql(
                "INSERT INTO roster (host, username, contact, subscription) VALUES "
                "('localhost', '%s', '%s', '%s')" % (node(alice), contact, sub),
                dbname=self.server.dbname)
        c = await self.online(carol, cpw, resource='c')
        d = await self.online(dave, dpw, resource='d')
        a = await self.online(alice, apw, resource='a')
        await self.change(a, 'block', carol, dave)
        p = await c.next_presence()
        self.assertEqual((p['type'], p['from'].full, p['to'].bare),
                         ('unavailable', alice + '/a', carol), xml_str(p))
        with self.assertRaises(AssertionError):
            await d.next_presence(timeout=0.5)
        with self.assertRaises(AssertionError):
            await c.next_presence(timeout=0.2)
        # unblocking sends the current presence
        a.available(priority=3)
        await self.settle()
        await self.change(a, 'unblock', carol)
        p = await c.next_presence()
        self.assertEqual((p['type'], p['from'].full, p['priority']),
                         ('available', alice + '/a', 3), xml_str(p))

    async def test_disco_feature(self):
        alice, apw = self.user(prefix='alice')
        a = await self.online(alice, apw)
        r = await a.iq('get', 'localhost', "<query xmlns='%s'/>" % NS_DISCO_INFO)
        feats = [f.get('var') for f in r.xml.iter('{%s}feature' % NS_DISCO_INFO)]
        self.assertIn(NS_BLOCKING, feats)


class BlockingServerTests(BlockingBase):

    async def test_domain_item_blocks_whole_domain(self):
        srv = self.parley(modules=MODULES, vhosts=('localhost', 'other.test'))
        alice, apw = self.user(srv, prefix='alice')
        eve, epw = self.user(srv, prefix='eve', domain='other.test')
        a = await self.online(alice, apw, server=srv, resource='a')
        e = await self.online(eve, epw, server=srv, resource='e')
        await self.change(a, 'block', 'other.test')
        self.message(e, alice, 'from the other domain', 'd1')
        await self.expect_bounce(e, alice, 'd1', 'service-unavailable')
        self.message(a, eve, 'to the other domain', 'd2')
        await self.expect_bounce(a, eve, 'd2', 'not-acceptable', blocked=True)
        await a.no_message()
        await e.no_message()

    async def test_lists_survive_restart(self):
        srv = self.parley(modules=MODULES)
        alice, apw = self.user(srv, prefix='alice')
        bob, bpw = self.user(srv, prefix='bob')
        a = await self.online(alice, apw, server=srv)
        await self.change(a, 'block', bob)
        await a.close()
        srv.stop()
        srv.start()
        srv.wait_log(r'loaded 1 blocked JIDs of 1 accounts')
        a = await self.online(alice, apw, server=srv, resource='a')
        b = await self.online(bob, bpw, server=srv, resource='b')
        self.assertEqual(await self.get_list(a), [bob])
        self.message(b, alice, 'still blocked?', 'r1')
        await self.expect_bounce(b, alice, 'r1', 'service-unavailable')
        await a.no_message()
        # a reload loads the lists again; requests meanwhile wait for them
        await self.in_thread(srv.ctl, 'module', 'reload', 'blocking')
        self.assertEqual(await self.get_list(a), [bob])
        self.message(b, alice, 'and now?', 'r2')
        await self.expect_bounce(b, alice, 'r2', 'service-unavailable')
        await self.change(a, 'unblock', bob)
        self.message(b, alice, 'finally', 'r3')
        self.assertEqual((await a.next_message())['body'], 'finally')


class BlockingPresenceTests(BlockingBase):
    """With the roster and presence modules: broadcasts skip blocked
    contacts."""

    async def test_broadcast_skips_blocked_contact(self):
        srv = self.parley(modules=DEFAULT_MODULES + ('roster', 'presence', 'blocking'))
        alice, apw = self.user(srv, prefix='alice')
        bob, bpw = self.user(srv, prefix='bob')
        carol, cpw = self.user(srv, prefix='carol')
        rows = [(alice, bob), (bob, alice), (alice, carol), (carol, alice)]
        srv.run.pg.psql(
            "INSERT INTO roster (host, username, contact, subscription) VALUES %s"
            % ', '.join("('localhost', '%s', '%s', 'both')" % (node(u), c) for u, c in rows),
            dbname=srv.dbname)
        b = await self.online(bob, bpw, server=srv, resource='b')
        c = await self.online(carol, cpw, server=srv, resource='c')
        a = await self.online(alice, apw, server=srv, resource='a')
        for peer in (b, c):
            # skip what predates alice's login: the peer's own initial
            # presence (RFC 6121 4.2.2) and the answer to its login probe
            # while alice was offline (unavailable from her bare JID)
            for _ in range(4):
                p = await peer.next_presence()
                own = p['from'].bare == peer.boundjid.bare
                probe_answer = p['type'] == 'unavailable' and p['from'].full == alice
                if not own and not probe_answer:
                    break
            self.assertEqual((p['type'], p['from'].full), ('available', alice + '/a'), xml_str(p))
        await self.change(a, 'block', bob)
        p = await b.next_presence()
        self.assertEqual((p['type'], p['from'].full), ('unavailable', alice + '/a'), xml_str(p))
        # bob's answer to alice's login probe may still be arriving: it
        # predates the block
        await self.settle()
        a.drain()
        b.drain()
        c.drain()
        p = a.Presence()
        p['status'] = 'after the block'
        p.send()
        got = await c.next_presence()
        self.assertEqual((got['from'].full, got['status']), (alice + '/a', 'after the block'))
        with self.assertRaises(AssertionError):
            await b.next_presence(timeout=0.5)
        # bob's own broadcasts do not reach alice either
        b.available(priority=1)
        await self.settle()
        seen = []
        while not a.presences.empty():
            seen.append(a.presences.get_nowait())
        self.assertEqual([x for x in seen if x['from'].bare == bob], [])
        b.drain()
        await self.change(a, 'unblock', bob)
        got = await b.next_presence()
        self.assertEqual((got['type'], got['from'].full, got['status']),
                         ('available', alice + '/a', 'after the block'), xml_str(got))
