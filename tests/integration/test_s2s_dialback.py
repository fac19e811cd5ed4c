"""Integration tests: federation authenticated with Server Dialback
(XEP-0220, keys per XEP-0185) when certificates do not verify, and the
security rules of mod_s2s: forged dialback keys and stanzas from domains
that are not authenticated are refused, certificates are enforced when
required (RFC 6120 13.7.2, XEP-0178), dialback elements are answered as
XEP-0220 says. Raw s2s peers (RawS2S) play the attacker."""

import os
import time
import xml.etree.ElementTree as ET

from harness import Certs, xml_str
from test_s2s_common import (NS_DB, NS_SASL, NS_STANZAS, NS_STREAM, NS_STREAMS, FedTestCase,
                             RawS2S, stream_line)

_OTHER = {}


def other_ca(run):
    """A second CA that signed nothing the servers present: a server whose
    tls.ca_file is this one cannot verify any peer, so it uses dialback."""
    if 'certs' not in _OTHER:
        _OTHER['certs'] = Certs(os.path.join(run.tmp, 'other-ca'))
    return _OTHER['certs'].ca


def stream_error(raw):
    """The condition of the stream error raw received (or None)."""
    for el in raw.elements:
        if el.tag == '{%s}error' % NS_STREAM:
            conds = [c.tag.split('}')[1] for c in el if c.tag.startswith('{%s}' % NS_STREAMS)
                     and not c.tag.endswith('}text')]
            return conds[0] if conds else None
    return None


class DialbackPairTests(FedTestCase):
    """Two servers that cannot verify each other's certificates."""

    def untrusting_pair(self, a_opts=None, b_opts=None):
        ca = other_ca(self.run_ctx)
        return self.fed_pair(a_kw={'ca_file': ca, 's2s_options': a_opts or {}},
                             b_kw={'ca_file': ca, 's2s_options': b_opts or {}})

    async def test_messages_both_ways_with_dialback(self):
        a, b = self.untrusting_pair()
        aj, apw = self.user(a, domain='a.test')
        bj, bpw = self.user(b, domain='b.test')
        ca = await self.online(aj, apw, server=a, resource='x')
        cb = await self.online(bj, bpw, server=b, resource='y')
        ca.send_chat(bj + '/y', 'via dialback')
        m = await cb.next_message(timeout=15)
        self.assertEqual((m['from'].full, m['body']), (aj + '/x', 'via dialback'), xml_str(m))
        cb.send_chat(aj + '/x', 'and back')
        m = await ca.next_message(timeout=15)
        self.assertEqual((m['from'].full, m['body']), (bj + '/y', 'and back'), xml_str(m))
        la, lb = a.s2s(), b.s2s()
        for line in (stream_line(la, 'out', 'a.test', 'b.test'),
                     stream_line(la, 'in', 'a.test', 'b.test'),
                     stream_line(lb, 'out', 'b.test', 'a.test'),
                     stream_line(lb, 'in', 'b.test', 'a.test')):
            self.assertIsNotNone(line, '%r %r' % (la, lb))
            self.assertEqual(line[3], 'dialback', line)
            self.assertRegex(line[4], r'^TLS1\.[23]/')
            self.assertEqual(line[6], 'ready', line)
        # the keys were checked by the authoritative server, not skipped
        self.assertRegex(a.log(), r'db:verify b\.test -> a\.test id \S+: valid')
        self.assertRegex(b.log(), r'db:verify a\.test -> b\.test id \S+: valid')
        self.assertIn('dialback will be needed', a.log())

    async def test_dialback_disabled_refuses_both_ways(self):
        a, b = self.untrusting_pair(a_opts={'dialback': 'no'})
        aj, apw = self.user(a, domain='a.test')
        bj, bpw = self.user(b, domain='b.test')
        ca = await self.online(aj, apw, server=a, resource='x')
        cb = await self.online(bj, bpw, server=b, resource='y')
        ca.send_chat(bj + '/y', 'no way')
        m = await ca.next_message(timeout=15)
        self.assertStanzaError(m, 'cancel', 'remote-server-not-found')
        # b offers a key; a answers with a dialback error, b bounces
        # with remote-server-timeout (XEP-0220 2.4)
        cb.send_chat(aj + '/x', 'nor this')
        m = await cb.next_message(timeout=15)
        self.assertStanzaError(m, 'wait', 'remote-server-timeout')
        await ca.no_message(wait=0.5)
        self.assertIn('dialback for b.test refused', a.log())

    async def test_per_domain_dialback_policy(self):
        # certificates required by default, but b.test may use dialback
        a, b = self.untrusting_pair(a_opts={'require_valid_cert': 'yes',
                                            'policies': 'b.test=dialback'})
        aj, apw = self.user(a, domain='a.test')
        bj, bpw = self.user(b, domain='b.test')
        ca = await self.online(aj, apw, server=a, resource='x')
        cb = await self.online(bj, bpw, server=b, resource='y')
        cb.send_chat(aj + '/x', 'allowed by policy')
        m = await ca.next_message(timeout=15)
        self.assertEqual(m['body'], 'allowed by policy', xml_str(m))


class ForgeryTests(FedTestCase):
    """Raw peers that claim to be b.test."""

    def setup_servers(self):
        ca = other_ca(self.run_ctx)
        return self.fed_pair(a_kw={'ca_file': ca}, b_kw={'ca_file': ca})

    async def test_forged_dialback_key_is_refused(self):
        a, b = self.setup_servers()
        aj, apw = self.user(a, domain='a.test')
        ca = await self.online(aj, apw, server=a, resource='x')
        raw = RawS2S(a, slow=a.run.slow)
        self.addCleanup(raw.close)
        raw.open('b.test', 'a.test')
        feats = raw.starttls('b.test', 'a.test')
        self.assertIsNone(feats.find('{%s}mechanisms' % NS_SASL), ET.tostring(feats))
        self.assertIsNotNone(feats.find('{urn:xmpp:features:dialback}dialback'))
        raw.send("<db:result from='b.test' to='a.test'>%s</db:result>" % ('0' * 64))
        el = raw.next(timeout=15 * a.run.slow)
        self.assertEqual(el.tag, '{%s}result' % NS_DB, ET.tostring(el))
        self.assertEqual((el.get('type'), el.get('from'), el.get('to')),
                         ('invalid', 'a.test', 'b.test'))
        self.assertTrue(raw.read_to_close(timeout=5))
        self.assertEqual(stream_error(raw), 'not-authorized')
        self.assertTrue(raw.stream_closed)
        await ca.no_message(wait=0.5)
        # the authoritative server (b.test) was asked and said no
        self.assertRegex(b.log(), r'db:verify a\.test -> b\.test id \S+: invalid')
        self.assertIn('is invalid (spoofing attempt?)', a.log())

    async def test_stanza_before_authentication_is_not_delivered(self):
        a, b = self.setup_servers()
        aj, apw = self.user(a, domain='a.test')
        ca = await self.online(aj, apw, server=a, resource='x')
        raw = RawS2S(a, slow=a.run.slow)
        self.addCleanup(raw.close)
        raw.open('b.test', 'a.test')
        raw.starttls('b.test', 'a.test')
        raw.send("<db:result from='b.test' to='a.test'>%s</db:result>"
                 "<message from='mallory@b.test/x' to='%s/x' type='chat'><body>spoof</body>"
                 "</message>" % ('1' * 64, aj))
        self.assertTrue(raw.read_to_close(timeout=10))
        self.assertEqual(stream_error(raw), 'not-authorized')
        await ca.no_message(wait=1.0)

    async def test_dialback_before_tls_is_refused(self):
        a, b = self.setup_servers()
        raw = RawS2S(a, slow=a.run.slow)
        self.addCleanup(raw.close)
        feats = raw.open('b.test', 'a.test')
        self.assertIsNotNone(feats.find('{urn:ietf:params:xml:ns:xmpp-tls}starttls/'
                                        '{urn:ietf:params:xml:ns:xmpp-tls}required'))
        raw.send("<db:result from='b.test' to='a.test'>%s</db:result>" % ('2' * 64))
        el = raw.next()
        self.assertEqual((el.tag, el.get('type')), ('{%s}result' % NS_DB, 'error'))
        self.assertEqual([c.tag for c in el.find('{jabber:server}error')],
                         ['{%s}policy-violation' % NS_STANZAS], ET.tostring(el))

    async def test_db_verify_answers(self):
        a, b = self.setup_servers()
        raw = RawS2S(a, slow=a.run.slow)
        self.addCleanup(raw.close)
        raw.open('b.test', 'a.test')
        raw.starttls('b.test', 'a.test')
        raw.send("<db:verify from='b.test' to='a.test' id='abc123'>%s</db:verify>" % ('3' * 64))
        el = raw.next()
        self.assertEqual((el.tag, el.get('from'), el.get('to'), el.get('id'), el.get('type')),
                         ('{%s}verify' % NS_DB, 'a.test', 'b.test', 'abc123', 'invalid'))
        raw.send("<db:verify from='b.test' to='elsewhere.test' id='x1'>%s</db:verify>"
                 % ('3' * 64))
        el = raw.next()
        self.assertEqual((el.get('from'), el.get('to'), el.get('id'), el.get('type')),
                         ('elsewhere.test', 'b.test', 'x1', 'error'))
        self.assertEqual([c.tag for c in el.find('{jabber:server}error')],
                         ['{%s}item-not-found' % NS_STANZAS])
        # a db:result for a domain not served here: a dialback error, the
        # stream stays
        raw.send("<db:result from='b.test' to='elsewhere.test'>%s</db:result>" % ('4' * 64))
        el = raw.next()
        self.assertEqual((el.tag, el.get('type')), ('{%s}result' % NS_DB, 'error'))
        self.assertEqual([c.tag for c in el.find('{jabber:server}error')],
                         ['{%s}item-not-found' % NS_STANZAS])
        # nobody speaks for a domain served here
        raw.send("<db:result from='a.test' to='a.test'>%s</db:result>" % ('6' * 64))
        el = raw.next()
        self.assertEqual((el.get('from'), el.get('to'), el.get('type')),
                         ('a.test', 'a.test', 'error'))
        self.assertEqual([c.tag for c in el.find('{jabber:server}error')],
                         ['{%s}not-authorized' % NS_STANZAS])
        self.assertFalse(raw.closed)

    async def test_unauthenticated_stream_times_out(self):
        a = self.fed('a.test', '127.0.0.2', limits={'unauth_timeout': '2s'})
        raw = RawS2S(a, slow=a.run.slow)
        self.addCleanup(raw.close)
        raw.open('b.test', 'a.test')
        started = time.monotonic()
        self.assertTrue(raw.read_to_close(timeout=10))
        self.assertGreaterEqual(time.monotonic() - started, 1.5)
        self.assertEqual(stream_error(raw), 'connection-timeout')


class CertificateTests(FedTestCase):
    """Peers presenting client certificates to a.test, which requires
    valid certificates."""

    def strict_a(self):
        a = self.fed('a.test', '127.0.0.2', s2s_options={'require_valid_cert': 'yes'})
        return a

    async def test_valid_client_certificate_authenticates_with_sasl_external(self):
        a = self.strict_a()
        aj, apw = self.user(a, domain='a.test')
        ca = await self.online(aj, apw, server=a, resource='x')
        raw = RawS2S(a, slow=a.run.slow)
        self.addCleanup(raw.close)
        raw.open('b.test', 'a.test')
        feats = raw.starttls('b.test', 'a.test', cert=self.run_ctx.certs.leaf('b.test'))
        mechs = [m.text for m in feats.findall('{%s}mechanisms/{%s}mechanism' % (NS_SASL, NS_SASL))]
        self.assertEqual(mechs, ['EXTERNAL'])
        raw.send("<auth xmlns='%s' mechanism='EXTERNAL'>YmFkLnRlc3Q=</auth>" % NS_SASL)
        el = raw.next()   # "bad.test" does not match the stream's from
        self.assertEqual([c.tag for c in el], ['{%s}invalid-authzid' % NS_SASL])
        raw.send("<auth xmlns='%s' mechanism='EXTERNAL'>=</auth>" % NS_SASL)
        self.assertEqual(raw.next().tag, '{%s}success' % NS_SASL)
        raw.open('b.test', 'a.test')
        raw.send("<message from='bob@b.test/r' to='%s/x' type='chat' id='m1'>"
                 "<body>certified</body></message>" % aj)
        m = await ca.next_message(timeout=10)
        self.assertEqual((m['from'].full, m['body'], m['id']), ('bob@b.test/r', 'certified', 'm1'))
        line = stream_line(a.s2s(), 'in', 'a.test', 'b.test')
        self.assertEqual(line[3], 'sasl-external', line)
        # another sender domain on this stream is refused
        raw.send("<message from='eve@evil.test/r' to='%s/x' type='chat'><body>x</body>"
                 "</message>" % aj)
        self.assertTrue(raw.read_to_close(timeout=10))
        self.assertEqual(stream_error(raw), 'invalid-from')
        await ca.no_message(wait=0.5)

    async def test_several_domains_on_one_stream(self):
        """Dialback multiplexing (XEP-0220 section 2.5): a certificate valid
        for two domains authenticates both pairs on one stream at once
        (XEP-0344), a third domain is refused."""
        a = self.strict_a()
        aj, apw = self.user(a, domain='a.test')
        ca = await self.online(aj, apw, server=a, resource='x')
        certs = self.run_ctx.certs
        key = os.path.join(certs.dir, 'multi.key')
        cert = os.path.join(certs.dir, 'multi.pem')
        if not os.path.exists(cert):
            certs._privkey(key)
            tmpl = certs._template('multi', 'cn = "b.test"\ndns_name = "b.test"\n'
                                   'dns_name = "muc.b.test"\ntls_www_server\ntls_www_client\n'
                                   'signing_key\nencryption_key\nexpiration_days = 30\n')
            certs._run(['certtool', '--generate-certificate', '--load-privkey', key,
                        '--load-ca-certificate', certs.ca, '--load-ca-privkey', certs.ca_key,
                        '--hash=SHA256', '--template', tmpl, '--outfile', cert])
        raw = RawS2S(a, slow=a.run.slow)
        self.addCleanup(raw.close)
        raw.open('b.test', 'a.test')
        raw.starttls('b.test', 'a.test', cert=(cert, key))
        for dom in ('b.test', 'muc.b.test', 'c.test'):
            raw.send("<db:result from='%s' to='a.test'>%s</db:result>" % (dom, '7' * 64))
        results = [raw.next() for _ in range(2)]
        self.assertEqual([(r.get('from'), r.get('to'), r.get('type')) for r in results],
                         [('a.test', 'b.test', 'valid'), ('a.test', 'muc.b.test', 'valid')])
        for dom in ('b.test', 'muc.b.test'):
            raw.send("<message from='room@%s/nick' to='%s/x' type='chat'><body>hi from %s"
                     "</body></message>" % (dom, aj, dom))
            m = await ca.next_message(timeout=10)
            self.assertEqual((m['from'].full, m['body']), ('room@%s/nick' % dom, 'hi from ' + dom))
        lines = a.s2s()
        self.assertEqual(stream_line(lines, 'in', 'a.test', 'b.test')[3], 'dialback')
        self.assertEqual(stream_line(lines, 'in', 'a.test', 'muc.b.test')[3], 'dialback')
        # c.test is not covered by the certificate and certificates are
        # required: a dialback error, and its stanzas end the stream
        el = raw.next()
        self.assertEqual((el.get('from'), el.get('to'), el.get('type')),
                         ('a.test', 'c.test', 'error'))
        raw.send("<message from='x@c.test/r' to='%s/x' type='chat'><body>x</body></message>"
                 % aj)
        self.assertTrue(raw.read_to_close(timeout=10))
        self.assertEqual(stream_error(raw), 'invalid-from')
        await ca.no_message(wait=0.5)

    async def test_stanza_to_unknown_host_closes_the_stream(self):
        a = self.strict_a()
        raw = RawS2S(a, slow=a.run.slow)
        self.addCleanup(raw.close)
        raw.open('b.test', 'a.test')
        raw.starttls('b.test', 'a.test', cert=self.run_ctx.certs.leaf('b.test'))
        raw.send("<auth xmlns='%s' mechanism='EXTERNAL'>Yi50ZXN0</auth>" % NS_SASL)
        self.assertEqual(raw.next().tag, '{%s}success' % NS_SASL)
        raw.open('b.test', 'a.test')
        raw.send("<message from='bob@b.test/r' to='someone@elsewhere.test' type='chat'>"
                 "<body>x</body></message>")
        self.assertTrue(raw.read_to_close(timeout=10))
        self.assertEqual(stream_error(raw), 'host-unknown')

    async def test_wrong_certificate_is_refused(self):
        a = self.strict_a()
        aj, apw = self.user(a, domain='a.test')
        ca = await self.online(aj, apw, server=a, resource='x')
        raw = RawS2S(a, slow=a.run.slow)
        self.addCleanup(raw.close)
        raw.open('b.test', 'a.test')
        # a certificate from the trusted CA, but for another name
        feats = raw.starttls('b.test', 'a.test', cert=self.run_ctx.certs.leaf('wrong.test'))
        self.assertIsNone(feats.find('{%s}mechanisms' % NS_SASL), ET.tostring(feats))
        self.assertIsNone(feats.find('{urn:xmpp:features:dialback}dialback'))
        raw.send("<auth xmlns='%s' mechanism='EXTERNAL'>=</auth>" % NS_SASL)
        el = raw.next()
        self.assertEqual([c.tag for c in el], ['{%s}not-authorized' % NS_SASL])
        raw.send("<db:result from='b.test' to='a.test'>%s</db:result>" % ('5' * 64))
        el = raw.next()
        self.assertEqual((el.tag, el.get('type')), ('{%s}result' % NS_DB, 'error'))
        self.assertEqual([c.tag for c in el.find('{jabber:server}error')],
                         ['{%s}not-authorized' % NS_STANZAS])
        raw.send("<message from='bob@b.test/r' to='%s/x' type='chat'><body>x</body></message>"
                 % aj)
        self.assertTrue(raw.read_to_close(timeout=10))
        self.assertEqual(stream_error(raw), 'not-authorized')
        await ca.no_message(wait=0.5)

    async def test_outgoing_to_a_wrong_certificate_is_refused(self):
        a = self.fed('a.test', '127.0.0.2', start=False,
                     s2s_options={'require_valid_cert': 'yes'})
        b = self.fed('b.test', '127.0.0.3', start=False,
                     cert=self.run_ctx.certs.leaf('wrong.test'))
        a.route_to(b)
        b.route_to(a)
        a.start()
        b.start()
        aj, apw = self.user(a, domain='a.test')
        ca = await self.online(aj, apw, server=a, resource='x')
        ca.send_chat('bob@b.test', 'are you b.test?')
        m = await ca.next_message(timeout=15)
        self.assertStanzaError(m, 'cancel', 'remote-server-not-found')
        self.assertIn('certificate of b.test not valid', a.log())
        self.assertIsNone(stream_line(a.s2s(), 'out', 'a.test', 'b.test'))
