"""Integration tests: TLS and SASL login (RFC 6120 sections 5 and 6,
RFC 5802, RFC 7677, RFC 9266, XEP-0368)."""

import asyncio
import base64
import ssl
import xml.etree.ElementTree as ET

from harness import (NS_SASL, NS_STREAM, NS_TLS, NS_BIND, ParleyTestCase, mechanisms_of,
                     stream_error_of)

EXPECTED_MECHS = ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-1-PLUS', 'SCRAM-SHA-256', 'SCRAM-SHA-1',
                  'PLAIN']

# Logins that fail on purpose must not throttle the other tests.
LENIENT = {'limits': {'auth_failures': '1000'}}


def sasl_condition(el):
    """The condition of a SASL <failure/> (children other than <text/>)."""
    return [c.tag.split('}', 1)[1] for c in el if c.tag != '{%s}text' % NS_SASL]


class LoginTests(ParleyTestCase):
    SHARED_SERVER = LENIENT

    async def login_ok(self, **kw):
        jid, pw = self.user()
        c = await self.client(jid, pw, resource='r1', **kw)
        self.assertEqual(c.boundjid.bare, jid)
        self.assertEqual(c.boundjid.resource, 'r1')
        # the session works: the server answers a ping
        res = await c.iq('get', 'localhost', "<ping xmlns='urn:xmpp:ping'/>")
        self.assertEqual(res['type'], 'result')
        return c

    def session_line(self, full_jid):
        out = self.server.ctl('sessions').stdout
        lines = [l for l in out.splitlines() if l.split()[:1] == [full_jid]]
        self.assertEqual(len(lines), 1, out)
        return lines[0]

    async def test_scram_sha1(self):
        await self.login_ok(mech='SCRAM-SHA-1')

    async def test_scram_sha256(self):
        await self.login_ok(mech='SCRAM-SHA-256')

    async def test_scram_sha256_plus_tls_unique(self):
        # slixmpp 1.8.3 binds with tls-unique, defined for TLS 1.2 only
        c = await self.login_ok(mech='SCRAM-SHA-256-PLUS', tls_max=ssl.TLSVersion.TLSv1_2)
        self.assertIn('TLS1.2', await self.in_thread(self.session_line, c.boundjid.full))

    async def test_scram_sha1_plus_tls_unique(self):
        c = await self.login_ok(mech='SCRAM-SHA-1-PLUS', tls_max=ssl.TLSVersion.TLSv1_2)
        self.assertIn('TLS1.2', await self.in_thread(self.session_line, c.boundjid.full))

    async def test_plain_slixmpp(self):
        await self.login_ok(mech='PLAIN')

    async def test_direct_tls_slixmpp(self):
        c = await self.login_ok(mech='SCRAM-SHA-256', direct_tls=True)
        self.assertIn('TLS1.3', await self.in_thread(self.session_line, c.boundjid.full))

    def raw_scram(self, mech, cb_type=None, tls_max=None, direct_tls=False):
        jid, pw = self.user()
        r = self.raw(tls_max=tls_max, direct_tls=direct_tls)
        r.connect_tls()
        el, verified = r.auth_scram(jid.split('@')[0], pw, mech, cb_type)
        self.assertEqual(el.tag, '{%s}success' % NS_SASL, ET.tostring(el, encoding='unicode'))
        self.assertTrue(verified, 'server signature (v=) missing or wrong in <success/>')
        feats = r.open_stream()
        self.assertIsNotNone(feats.find('{%s}bind' % NS_BIND))
        res = r.bind('raw')
        self.assertEqual(res.get('type'), 'result')
        self.assertEqual(r.jid, jid + '/raw')

    async def test_scram_sha256_plus_tls_exporter(self):
        self.raw_scram('SCRAM-SHA-256-PLUS', 'tls-exporter')

    async def test_scram_sha1_plus_tls_exporter(self):
        self.raw_scram('SCRAM-SHA-1-PLUS', 'tls-exporter')

    async def test_scram_sha256_plus_tls_exporter_direct_tls(self):
        self.raw_scram('SCRAM-SHA-256-PLUS', 'tls-exporter', direct_tls=True)

    async def test_scram_sha256_plus_tls_server_end_point(self):
        self.raw_scram('SCRAM-SHA-256-PLUS', 'tls-server-end-point')

    async def test_scram_sha256_plus_tls_unique_raw(self):
        self.raw_scram('SCRAM-SHA-256-PLUS', 'tls-unique', tls_max=ssl.TLSVersion.TLSv1_2)

    async def test_scram_sha256_raw(self):
        self.raw_scram('SCRAM-SHA-256')

    async def test_scram_sha1_raw(self):
        self.raw_scram('SCRAM-SHA-1')

    async def test_plain_raw(self):
        jid, pw = self.user()
        r = self.raw()
        full = r.login(jid.split('@')[0], pw, 'home')
        self.assertEqual(full, jid + '/home')

    async def test_features_before_tls(self):
        r = self.raw()
        feats = r.open_stream()
        expected = "<starttls xmlns='%s'><required/></starttls>" % NS_TLS
        self.assertEqual([ET.tostring(c, encoding='unicode') for c in feats],
                         [ET.tostring(ET.fromstring(expected), encoding='unicode')],
                         ET.tostring(feats, encoding='unicode'))
        hdr = r.stream_header
        self.assertEqual(hdr.tag, '{%s}stream' % NS_STREAM)
        self.assertEqual(hdr.get('from'), 'localhost')
        self.assertEqual(hdr.get('version'), '1.0')
        self.assertTrue(hdr.get('id'))

    async def test_mechanisms_after_starttls(self):
        r = self.raw()
        feats = r.connect_tls()
        self.assertEqual(mechanisms_of(feats), EXPECTED_MECHS)
        self.assertIsNone(feats.find('{%s}starttls' % NS_TLS), 'STARTTLS offered again')

    async def test_mechanisms_direct_tls(self):
        r = self.raw(direct_tls=True)
        feats = r.connect_tls()
        self.assertEqual(mechanisms_of(feats), EXPECTED_MECHS)
        self.assertIsNone(feats.find('{%s}starttls' % NS_TLS), 'STARTTLS offered on direct TLS')

    async def test_no_mechanisms_after_auth(self):
        jid, pw = self.user()
        r = self.raw()
        r.connect_tls()
        el = r.auth_plain(jid.split('@')[0], pw)
        self.assertEqual(el.tag, '{%s}success' % NS_SASL)
        feats = r.open_stream()
        self.assertEqual(mechanisms_of(feats), [])
        self.assertIsNone(feats.find('{%s}mechanisms' % NS_SASL))
        self.assertIsNotNone(feats.find('{%s}bind' % NS_BIND))

    async def test_auth_before_tls_refused(self):
        jid, pw = self.user()
        r = self.raw()
        r.open_stream()
        r.send("<auth xmlns='%s' mechanism='PLAIN'>%s</auth>"
               % (NS_SASL, base64.b64encode(b'\0' + jid.split('@')[0].encode() + b'\0'
                                            + pw.encode()).decode()))
        el = r.read_element()
        if el.tag == '{%s}failure' % NS_SASL:
            self.assertEqual(sasl_condition(el), ['encryption-required'],
                             ET.tostring(el, encoding='unicode'))
            return
        self.assertEqual(el.tag, '{%s}error' % NS_STREAM, ET.tostring(el, encoding='unicode'))
        self.assertEqual(stream_error_of(el)[0], ['policy-violation'])
        self.assertTrue(r.read_to_close(), 'connection not closed after the stream error')

    async def test_starttls_pipelined_bytes_discarded(self):
        alice, apw = self.user()
        bob, bpw = self.user()
        b = await self.online(bob, bpw, resource='b')
        r = self.raw()
        r.open_stream()
        # the message rides in the same write as <starttls/>: the server must
        # drop it (it would otherwise be fed to the TLS handshake or routed)
        r.send("<starttls xmlns='%s'/><message to='%s/b' type='chat'><body>injected</body>"
               "</message>" % (NS_TLS, bob))
        proceed = r.expect('{%s}proceed' % NS_TLS)
        self.assertIs(r.elements[-1], proceed, 'elements after <proceed/>: %r' % r.raw)
        r._wrap_tls()
        feats = r.open_stream()
        self.assertEqual(mechanisms_of(feats), EXPECTED_MECHS)
        el = r.auth_plain(alice.split('@')[0], apw)
        self.assertEqual(el.tag, '{%s}success' % NS_SASL)
        r.open_stream()
        self.assertEqual(r.bind('a').get('type'), 'result')
        await b.no_message(wait=1.0)
        self.assertFalse(r.closed)


class AuthFailureTests(ParleyTestCase):
    """Each test gets its own server: failures are counted per address."""

    async def test_wrong_password_plain_then_right(self):
        srv = self.parley()
        jid, pw = self.user(srv)
        r = self.raw(srv)
        r.connect_tls()
        el = r.auth_plain(jid.split('@')[0], pw + 'x')
        self.assertEqual(el.tag, '{%s}failure' % NS_SASL, ET.tostring(el, encoding='unicode'))
        self.assertEqual(sasl_condition(el), ['not-authorized'])
        self.assertFalse(r.closed)
        el = r.auth_plain(jid.split('@')[0], pw)
        self.assertEqual(el.tag, '{%s}success' % NS_SASL, ET.tostring(el, encoding='unicode'))

    async def test_wrong_password_scram_then_right(self):
        srv = self.parley()
        jid, pw = self.user(srv)
        r = self.raw(srv)
        r.connect_tls()
        el, _ = r.auth_scram(jid.split('@')[0], pw + 'x', 'SCRAM-SHA-256')
        self.assertEqual(el.tag, '{%s}failure' % NS_SASL, ET.tostring(el, encoding='unicode'))
        self.assertEqual(sasl_condition(el), ['not-authorized'])
        el, verified = r.auth_scram(jid.split('@')[0], pw, 'SCRAM-SHA-256')
        self.assertEqual(el.tag, '{%s}success' % NS_SASL, ET.tostring(el, encoding='unicode'))
        self.assertTrue(verified)

    async def test_wrong_password_slixmpp(self):
        srv = self.parley()
        jid, pw = self.user(srv)
        c = await self.client(jid, pw + 'x', server=srv, wait=False)
        failure = await c.wait_auth_failure()
        self.assertEqual(failure['condition'], 'not-authorized')

    async def test_unknown_user(self):
        srv = self.parley()
        r = self.raw(srv)
        r.connect_tls()
        el = r.auth_plain('nosuchuser', 'whatever')
        self.assertEqual(sasl_condition(el), ['not-authorized'])
        el, _ = r.auth_scram('nosuchuser', 'whatever', 'SCRAM-SHA-1')
        self.assertEqual(el.tag, '{%s}failure' % NS_SASL)
        self.assertEqual(sasl_condition(el), ['not-authorized'])

    async def test_channel_binding_mismatch(self):
        srv = self.parley()
        jid, pw = self.user(srv)
        r = self.raw(srv)
        r.connect_tls()
        el, _ = r.auth_scram(jid.split('@')[0], pw, 'SCRAM-SHA-256-PLUS', 'tls-exporter',
                             cb_data=b'\0' * 32)
        self.assertEqual(el.tag, '{%s}failure' % NS_SASL, ET.tostring(el, encoding='unicode'))

    async def test_downgrade_flag_refused(self):
        # "y": the client thinks the server cannot bind channels; but the
        # server offered -PLUS, so this is a downgrade (RFC 5802 section 6)
        srv = self.parley()
        jid, pw = self.user(srv)
        r = self.raw(srv)
        r.connect_tls()
        el, _ = r.auth_scram(jid.split('@')[0], pw, 'SCRAM-SHA-256', cb_flag='y')
        self.assertEqual(el.tag, '{%s}failure' % NS_SASL, ET.tostring(el, encoding='unicode'))

    async def test_throttle(self):
        srv = self.parley(limits={'auth_failures': '5', 'auth_window': '3s'})
        jid, pw = self.user(srv)
        user = jid.split('@')[0]
        for i in range(5):
            r = self.raw(srv)
            r.connect_tls()
            el = r.auth_plain(user, 'wrong%d' % i)
            self.assertEqual(sasl_condition(el), ['not-authorized'], 'attempt %d' % i)
        # throttled now: the right password fails too
        r = self.raw(srv)
        r.connect_tls()
        el = r.auth_plain(user, pw)
        self.assertEqual(el.tag, '{%s}failure' % NS_SASL,
                         'throttled attempt succeeded: %s' % ET.tostring(el, encoding='unicode'))
        self.assertEqual(sasl_condition(el), ['not-authorized'])
        # a SCRAM attempt is refused as well
        r = self.raw(srv)
        r.connect_tls()
        el, _ = r.auth_scram(user, pw, 'SCRAM-SHA-256')
        self.assertEqual(el.tag, '{%s}failure' % NS_SASL)
        await asyncio.sleep(3.5)      # past the 3 s window
        r = self.raw(srv)
        r.connect_tls()
        el = r.auth_plain(user, pw)
        self.assertEqual(el.tag, '{%s}success' % NS_SASL,
                         'still throttled after the window: %s'
                         % ET.tostring(el, encoding='unicode'))
