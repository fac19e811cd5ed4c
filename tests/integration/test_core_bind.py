"""Integration tests: resource binding (RFC 6120 section 7), resource
conflicts, and the legacy session establishment (RFC 3921 / 6121 notes)."""

import xml.etree.ElementTree as ET

from harness import (NS_BIND, NS_SASL, NS_SESSION, ParleyTestCase, error_of,
                     stream_error_of)


def s(el):
    return ET.tostring(el, encoding='unicode')


class BindTests(ParleyTestCase):
    SHARED_SERVER = {'limits': {'auth_failures': '1000'}}

    def authed_raw(self, jid, pw):
        r = self.raw()
        r.connect_tls()
        el = r.auth_plain(jid.split('@')[0], pw)
        self.assertEqual(el.tag, '{%s}success' % NS_SASL, s(el))
        return r, r.open_stream()

    async def test_client_resource_kept(self):
        jid, pw = self.user()
        r, _ = self.authed_raw(jid, pw)
        res = r.bind('laptop')
        self.assertEqual(res.get('type'), 'result', s(res))
        self.assertEqual(res.get('id'), 'bind1')
        bind = res.find('{%s}bind' % NS_BIND)
        self.assertIsNotNone(bind, s(res))
        self.assertEqual([c.tag for c in bind], ['{%s}jid' % NS_BIND])
        self.assertEqual(bind.find('{%s}jid' % NS_BIND).text, jid + '/laptop')

    async def test_client_resource_kept_slixmpp(self):
        jid, pw = self.user()
        c = await self.client(jid, pw, resource='Tablet 2')
        self.assertEqual(c.boundjid.full, jid + '/Tablet 2')

    async def test_server_generated_resource(self):
        jid, pw = self.user()
        r1, _ = self.authed_raw(jid, pw)
        res = r1.bind(None)
        self.assertEqual(res.get('type'), 'result', s(res))
        self.assertTrue(r1.jid.startswith(jid + '/'), r1.jid)
        self.assertGreater(len(r1.jid), len(jid) + 1)
        r2, _ = self.authed_raw(jid, pw)
        self.assertEqual(r2.bind(None).get('type'), 'result')
        self.assertTrue(r2.jid.startswith(jid + '/'), r2.jid)
        self.assertNotEqual(r1.jid, r2.jid)
        # both sessions are listed
        out = (await self.in_thread(self.server.ctl, 'sessions')).stdout
        jids = [line.split()[0] for line in out.splitlines() if line.strip()]
        self.assertIn(r1.jid, jids)
        self.assertIn(r2.jid, jids)

    async def test_conflict_replaces_old_session(self):
        jid, pw = self.user()
        other, opw = self.user()
        old, _ = self.authed_raw(jid, pw)
        self.assertEqual(old.bind('dup').get('type'), 'result')
        peer = await self.online(other, opw, resource='p')
        new = await self.online(jid, pw, resource='dup')
        self.assertEqual(new.boundjid.full, jid + '/dup')
        err = await self.in_thread(old.stream_error)
        self.assertEqual(stream_error_of(err)[0], ['conflict'], s(err))
        self.assertTrue(await self.in_thread(old.read_to_close), 'old connection left open')
        self.assertTrue(old.stream_closed, 'no </stream:stream> after <conflict/>')
        # the new session works both ways
        new.send_chat(other + '/p', 'from the new one')
        m = await peer.next_message()
        self.assertEqual((m['from'].full, m['body']), (jid + '/dup', 'from the new one'))
        peer.send_chat(jid + '/dup', 'back')
        m = await new.next_message()
        self.assertEqual((m['from'].full, m['body']), (other + '/p', 'back'))

    async def test_conflict_slixmpp(self):
        jid, pw = self.user()
        first = await self.client(jid, pw, resource='same')
        second = await self.client(jid, pw, resource='same')
        await first.wait_gone()
        self.assertEqual([e['condition'] for e in first.stream_errors], ['conflict'])
        self.assertFalse(second.gone.is_set())
        res = await second.iq('get', 'localhost', "<ping xmlns='urn:xmpp:ping'/>")
        self.assertEqual(res['type'], 'result')

    async def bad_resource(self, resource):
        jid, pw = self.user()
        r, _ = self.authed_raw(jid, pw)
        res = r.bind(resource)
        self.assertEqual(res.get('type'), 'error', s(res))
        self.assertEqual(res.get('id'), 'bind1')
        self.assertEqual(error_of(res)[:2], ('modify', ['jid-malformed']), s(res))
        # the stream stays usable: a good resource binds
        self.assertFalse(r.closed)
        res = r.bind('good')
        self.assertEqual(res.get('type'), 'result', s(res))
        self.assertEqual(r.jid, jid + '/good')

    async def test_bad_resource_control_char(self):
        # U+0007 cannot be written in XML 1.0 at all; U+007F (DEL) and TAB
        # are legal XML but prohibited by Resourceprep (RFC 3920 B.5, C.2.1)
        await self.bad_resource('bad\x7fres')

    async def test_bad_resource_tab(self):
        await self.bad_resource('bad\tres')

    async def test_bad_resource_unassigned(self):
        # U+0221 was unassigned in Unicode 3.2: not allowed in a stored
        # string (RFC 3454 section 7)
        await self.bad_resource('bad\u0221res')

    async def test_bad_resource_too_long(self):
        await self.bad_resource('x' * 1024)

    async def test_session_feature_and_legacy_iq(self):
        jid, pw = self.user()
        r, feats = self.authed_raw(jid, pw)
        sess = feats.find('{%s}session' % NS_SESSION)
        self.assertIsNotNone(sess, 'no <session/> feature: %s' % s(feats))
        self.assertEqual([c.tag for c in sess], ['{%s}optional' % NS_SESSION], s(sess))
        self.assertIsNotNone(feats.find('{%s}bind' % NS_BIND), s(feats))
        self.assertEqual(r.bind('sess').get('type'), 'result')
        r.send("<iq type='set' id='sess1'><session xmlns='%s'/></iq>" % NS_SESSION)
        res = r.read_element()
        self.assertEqual(res.tag, '{jabber:client}iq', s(res))
        self.assertEqual((res.get('type'), res.get('id')), ('result', 'sess1'), s(res))
        self.assertEqual(len(res), 0, s(res))

    async def test_stanza_before_bind_not_routed(self):
        # after SASL but before binding, a stanza must not be routed
        jid, pw = self.user()
        other, opw = self.user()
        peer = await self.online(other, opw, resource='p')
        r, _ = self.authed_raw(jid, pw)
        r.send("<message to='%s/p' type='chat'><body>unbound</body></message>" % other)
        await peer.no_message(wait=1.0)
