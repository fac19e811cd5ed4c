"""Integration tests: stream errors (RFC 6120 section 4.9). Each case
checks the exact condition, that the server then closes the stream and
the connection, and that another client's session is unaffected."""

import asyncio
import time

from harness import NS_STREAM, ParleyTestCase

HEADER = ("<?xml version='1.0'?><stream:stream xmlns='%s' xmlns:stream='%s' "
          "to='%s' version='%s'>")


def header(ns='jabber:client', stream_ns=NS_STREAM, to='localhost', version='1.0'):
    return HEADER % (ns, stream_ns, to, version)


class StreamErrorBase(ParleyTestCase):

    async def asyncSetUp(self):
        alice, apw = self.user(prefix='alice')
        bob, bpw = self.user(prefix='bob')
        self.alice, self.bob = alice, bob
        self.a = await self.online(alice, apw, resource='a')
        self.b = await self.online(bob, bpw, resource='b')

    async def assertBystandersFine(self):
        self.a.send_chat(self.bob + '/b', 'still fine')
        m = await self.b.next_message()
        self.assertEqual((m['from'].full, m['body']), (self.alice + '/a', 'still fine'))
        self.assertFalse(self.a.gone.is_set() or self.b.gone.is_set())

    def logged_in_raw(self):
        jid, pw = self.user()
        r = self.raw()
        r.login(jid.split('@')[0], pw, 'raw')
        return r

    async def expect(self, r, condition):
        await self.in_thread(self.assertStreamError, r, condition)
        await self.assertBystandersFine()


class StreamErrorTests(StreamErrorBase):
    SHARED_SERVER = {'limits': {'auth_failures': '1000'}}

    async def test_comment_before_tls(self):
        r = self.raw()
        r.open_stream()
        r.send('<!-- a comment -->')
        await self.expect(r, 'restricted-xml')

    async def test_comment_in_session(self):
        r = self.logged_in_raw()
        r.send("<message to='%s/b'><!-- sneaky --><body>x</body></message>" % self.bob)
        await self.expect(r, 'restricted-xml')
        await self.b.no_message()

    async def test_processing_instruction(self):
        r = self.logged_in_raw()
        r.send("<?evil instruction?>")
        await self.expect(r, 'restricted-xml')

    async def test_doctype(self):
        r = self.raw()
        r.send("<?xml version='1.0'?><!DOCTYPE stream:stream>" + header()[len("<?xml version='1.0'?>"):])
        await self.expect(r, 'restricted-xml')

    async def test_entity_declaration(self):
        r = self.raw()
        r.send("<?xml version='1.0'?><!DOCTYPE stream:stream [<!ENTITY boom 'x'>]>"
               + header()[len("<?xml version='1.0'?>"):])
        await self.expect(r, 'restricted-xml')

    async def test_mismatched_tags(self):
        r = self.logged_in_raw()
        r.send("<message to='%s/b'><body>x</message>" % self.bob)
        await self.expect(r, 'not-well-formed')
        await self.b.no_message()

    async def test_not_well_formed_before_tls(self):
        r = self.raw()
        r.open_stream()
        r.send("<a><b></a>")
        await self.expect(r, 'not-well-formed')

    async def test_wrong_stream_namespace(self):
        r = self.raw()
        r.send(header(stream_ns='http://wrong.example/streams'))
        await self.expect(r, 'invalid-namespace')

    async def test_wrong_content_namespace(self):
        r = self.raw()
        r.send(header(ns='jabber:wrong'))
        await self.expect(r, 'invalid-namespace')

    async def test_unsupported_version(self):
        r = self.raw()
        r.send(header(version='2.0'))
        await self.expect(r, 'unsupported-version')

    async def test_host_unknown(self):
        r = self.raw()
        r.send(header(to='nowhere.example'))
        await self.expect(r, 'host-unknown')
        # the server's header names no host of ours it does not serve
        self.assertNotEqual(r.stream_header.get('from'), 'nowhere.example')

    async def test_message_before_auth(self):
        r = self.raw()
        r.connect_tls()
        r.send("<message to='%s/b' type='chat'><body>unauthenticated</body></message>"
               % self.bob)
        await self.expect(r, 'not-authorized')
        await self.b.no_message()

    async def test_iq_before_auth(self):
        r = self.raw()
        r.connect_tls()
        r.send("<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        await self.expect(r, 'not-authorized')


class LimitTests(StreamErrorBase):
    SHARED_SERVER = {'limits': {'auth_failures': '1000', 'max_stanza_size': '16k',
                                'unauth_timeout': '2s'}}

    async def test_stanza_too_big(self):
        r = self.logged_in_raw()
        r.send("<message to='%s/b' type='chat'><body>%s</body></message>"
               % (self.bob, 'x' * (20 * 1024)))
        await self.expect(r, 'policy-violation')
        await self.b.no_message()

    async def test_stanza_under_limit_delivered(self):
        r = self.logged_in_raw()
        body = 'y' * (12 * 1024)
        r.send("<message to='%s/b' type='chat'><body>%s</body></message>" % (self.bob, body))
        m = await self.b.next_message()
        self.assertEqual(m['body'], body)
        self.assertFalse(r.closed)

    async def test_unauthenticated_timeout(self):
        r = self.raw()
        started = time.monotonic()
        r.open_stream()
        await self.in_thread(r.stream_error, 8)
        self.assertGreaterEqual(time.monotonic() - started, 1.5, 'timed out too early')
        await self.expect(r, 'connection-timeout')

    async def test_authenticated_session_not_timed_out(self):
        r = self.logged_in_raw()
        await asyncio.sleep(3.0)      # past unauth_timeout
        r.send("<iq type='get' id='p2' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        res = await self.in_thread(r.read_element)
        self.assertEqual((res.get('type'), res.get('id')), ('result', 'p2'))
