"""Integration tests: routing of messages and IQs between local sessions
(RFC 6120 section 10, RFC 6121 section 8)."""

from harness import NS_CLIENT, ParleyTestCase, error_of, xml_str


def child_tags(stanza):
    return sorted(c.tag for c in stanza.xml)


class RoutingTests(ParleyTestCase):
    SHARED_SERVER = {'limits': {'auth_failures': '1000'}}

    async def pair(self):
        alice, apw = self.user(prefix='alice')
        bob, bpw = self.user(prefix='bob')
        a = await self.online(alice, apw, resource='a')
        b = await self.online(bob, bpw, resource='b')
        return alice, a, bob, b

    def assertDelivered(self, m, frm, to, body, type_='chat'):
        self.assertEqual(m.xml.tag, '{%s}message' % NS_CLIENT)
        self.assertEqual(m['from'].full, frm, xml_str(m))
        self.assertEqual(m['to'].full, to, xml_str(m))
        self.assertEqual(m['type'], type_, xml_str(m))
        self.assertEqual(m['body'], body, xml_str(m))
        self.assertEqual(child_tags(m), ['{%s}body' % NS_CLIENT], xml_str(m))

    async def test_full_jid_message(self):
        alice, a, bob, b = await self.pair()
        a.send_chat(bob + '/b', 'hello bob')
        m = await b.next_message()
        self.assertDelivered(m, alice + '/a', bob + '/b', 'hello bob')
        await a.no_message()

    async def test_forged_from_is_restamped(self):
        alice, a, bob, b = await self.pair()
        a.send_chat(bob + '/b', 'who am i', mfrom='mallory@localhost/evil')
        m = await b.next_message()
        self.assertDelivered(m, alice + '/a', bob + '/b', 'who am i')

    async def test_message_types_and_ids_kept(self):
        alice, a, bob, b = await self.pair()
        msg = a.make_message(mto=bob + '/b', mbody='normal one', mtype='normal')
        msg['id'] = 'm-42'
        msg.send()
        m = await b.next_message()
        self.assertEqual((m['id'], m['type'], m['body']), ('m-42', 'normal', 'normal one'))

    async def test_bare_jid_highest_priority(self):
        alice, apw = self.user(prefix='alice')
        bob, bpw = self.user(prefix='bob')
        a = await self.online(alice, apw, resource='a')
        b5 = await self.online(bob, bpw, resource='five', priority=5)
        b1 = await self.online(bob, bpw, resource='one', priority=1)
        a.send_chat(bob, 'to the best')
        m = await b5.next_message()
        self.assertEqual((m['from'].full, m['body'], m['type']),
                         (alice + '/a', 'to the best', 'chat'), xml_str(m))
        self.assertIn(m['to'].full, (bob, bob + '/five'))
        await b1.no_message()
        await a.no_message()

    async def test_bare_jid_equal_priorities(self):
        alice, apw = self.user(prefix='alice')
        bob, bpw = self.user(prefix='bob')
        a = await self.online(alice, apw, resource='a')
        bx = await self.online(bob, bpw, resource='x', priority=3)
        by = await self.online(bob, bpw, resource='y', priority=3)
        a.send_chat(bob, 'to both')
        for c in (bx, by):
            m = await c.next_message()
            self.assertEqual((m['from'].full, m['body']), (alice + '/a', 'to both'), xml_str(m))
        await a.no_message()

    async def expect_service_unavailable(self, client, to, body):
        client.send_chat(to, body)
        m = await client.next_message()
        self.assertEqual(m['type'], 'error', xml_str(m))
        self.assertEqual(m['from'].full, to, xml_str(m))
        self.assertEqual(error_of(m)[:2], ('cancel', ['service-unavailable']), xml_str(m))
        return m

    async def test_bare_jid_negative_priority_only(self):
        alice, apw = self.user(prefix='alice')
        bob, bpw = self.user(prefix='bob')
        a = await self.online(alice, apw, resource='a')
        bneg = await self.online(bob, bpw, resource='neg', priority=-1)
        await self.expect_service_unavailable(a, bob, 'nobody listens')
        await bneg.no_message()

    async def test_bare_jid_connected_but_not_available(self):
        alice, apw = self.user(prefix='alice')
        bob, bpw = self.user(prefix='bob')
        a = await self.online(alice, apw, resource='a')
        silent = await self.client(bob, bpw, resource='silent')
        await self.expect_service_unavailable(a, bob, 'no presence yet')
        await silent.no_message()

    async def test_bare_jid_offline_user(self):
        alice, apw = self.user(prefix='alice')
        bob, _ = self.user(prefix='bob')
        a = await self.online(alice, apw, resource='a')
        await self.expect_service_unavailable(a, bob, 'bob is away')

    async def test_between_own_resources(self):
        alice, apw = self.user(prefix='alice')
        a1 = await self.online(alice, apw, resource='one')
        a2 = await self.online(alice, apw, resource='two')
        a1.send_chat(alice + '/two', 'note to self')
        m = await a2.next_message()
        self.assertDelivered(m, alice + '/one', alice + '/two', 'note to self')
        await a1.no_message()

    async def test_message_to_nonexistent_user(self):
        alice, apw = self.user(prefix='alice')
        a = await self.online(alice, apw, resource='a')
        m = await self.expect_service_unavailable(a, 'nosuchuser@localhost', 'anyone?')
        self.assertEqual(m['to'].full, alice + '/a')

    async def test_iq_get_to_nonexistent_full_jid(self):
        alice, apw = self.user(prefix='alice')
        a = await self.online(alice, apw, resource='a')
        res = await a.iq('get', 'nosuchuser@localhost/x', "<query xmlns='jabber:iq:version'/>")
        self.assertEqual(res['type'], 'error', xml_str(res))
        self.assertEqual(res['from'].full, 'nosuchuser@localhost/x')
        self.assertEqual(error_of(res)[:2], ('cancel', ['service-unavailable']), xml_str(res))

    async def test_iq_get_between_users(self):
        alice, a, bob, b = await self.pair()
        a.send_raw("<iq type='get' id='q1' to='%s/b'><query xmlns='urn:example:q'/></iq>" % bob)
        await self.settle(0.5)
        got = [i for i in b.iq_log if i['id'] == 'q1']
        self.assertEqual(len(got), 1, [xml_str(i) for i in b.iq_log])
        self.assertEqual((got[0]['from'].full, got[0]['type']), (alice + '/a', 'get'))

    async def test_iq_result_to_nobody_dropped(self):
        alice, apw = self.user(prefix='alice')
        bob, _ = self.user(prefix='bob')
        a = await self.online(alice, apw, resource='a')
        a.send_raw("<iq type='result' id='r1' to='nosuchuser@localhost/x'/>")
        a.send_raw("<iq type='result' id='r2' to='%s/gone'/>" % bob)
        a.send_raw("<iq type='error' id='r3' to='%s/gone'><error type='cancel'>"
                   "<item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
                   % bob)
        await self.settle(1.0)
        echoed = [xml_str(i) for i in a.iq_log if i['id'] in ('r1', 'r2', 'r3')]
        self.assertEqual(echoed, [])
        # the stream is fine
        res = await a.iq('get', 'localhost', "<ping xmlns='urn:xmpp:ping'/>")
        self.assertEqual(res['type'], 'result')
        self.assertFalse(a.gone.is_set())

    async def test_message_error_not_answered(self):
        # an error message to nowhere is dropped, never answered by an error
        alice, apw = self.user(prefix='alice')
        a = await self.online(alice, apw, resource='a')
        a.send_raw("<message type='error' id='e1' to='nosuchuser@localhost'><error "
                   "type='cancel'><gone xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
                   "</error></message>")
        await a.no_message(wait=1.0)
