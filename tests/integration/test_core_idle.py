"""Integration tests: idle trimming of client streams. After about a
second without input, parleyd releases a session's XML parser and output
buffer; the next bytes from the client rebuild the parser by re-parsing
a stream header (a constant one for the usual header, the client's own
otherwise). Each case waits until `parleyctl status` shows no parser
memory in use, then checks that the stream still works: stanzas, other
prefixes, extra namespace declarations, errors and the closing tag."""

import re
import xml.etree.ElementTree as ET

from harness import NS_CLIENT, NS_STREAM, ParleyTestCase, wait_until

PARSERS = re.compile(r'(?m)^memory: .*, (\d+) KiB of XML parsers '
                     r'\((\d+) KiB kept for reuse\)$')

# the usual header, with another prefix for the streams namespace, and
# with one more namespace declaration (RawClient formats in the domain)
HEADER_S = ("<?xml version='1.0'?><s:stream xmlns='jabber:client' "
            "xmlns:s='http://etherx.jabber.org/streams' to='%s' version='1.0'>")
HEADER_X = ("<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
            "xmlns:stream='http://etherx.jabber.org/streams' xmlns:x='urn:x' "
            "to='%s' version='1.0'>")

TRIM_WAIT = 3.0   # seconds: idle for a second, then the next sweep


def s(el):
    return ET.tostring(el, encoding='unicode')


def shape(el):
    """(tag, attributes, [(child tag, attributes, text, children)]) of a
    stanza, to compare it whole."""
    return (el.tag, dict(el.attrib),
            [(c.tag, dict(c.attrib), c.text, len(c)) for c in el])


class IdleTrimTests(ParleyTestCase):
    SHARED_SERVER = {'limits': {'auth_failures': '1000'}}

    def parser_kib(self):
        """(KiB of XML parsers in use, KiB kept for reuse) from status."""
        out = self.server.ctl('status').stdout
        m = PARSERS.search(out)
        self.assertIsNotNone(m, out)
        return int(m.group(1)), int(m.group(2))

    def wait_trimmed(self):
        """Waits (bounded) until no stream holds parser memory."""
        wait_until(lambda: self.parser_kib()[0] == 0, TRIM_WAIT * self.run_ctx.slow,
                   interval=0.1, what='0 KiB of XML parsers in parleyctl status')

    def bound(self, prefix, resource, header=None):
        """A raw client logged in and bound; header (a RawClient.HEADER
        format) is used for every stream of the login."""
        jid, pw = self.user(prefix=prefix)
        r = self.raw()
        if header is not None:
            r.HEADER = header
        r.login(jid.split('@')[0], pw, resource)
        self.assertEqual(r.jid, jid + '/' + resource)
        return r

    def send_chat(self, frm, to, mid, body, extra=''):
        frm.send("<message to='%s' type='chat' id='%s'><body>%s</body>%s</message>"
                 % (to.jid, mid, body, extra))

    def assertChat(self, el, frm, to, mid, body):
        self.assertEqual(shape(el),
                         ('{%s}message' % NS_CLIENT,
                          {'from': frm.jid, 'to': to.jid, 'type': 'chat', 'id': mid},
                          [('{%s}body' % NS_CLIENT, {}, body, 0)]), s(el))

    def assertCleanClose(self, r, end_tag):
        """r sends its closing tag; the server answers with its own, no
        stream error, and closes the connection."""
        r.send(end_tag)
        self.assertTrue(r.read_to_close(timeout=5),
                        'connection still open after %s; received %r' % (end_tag, r.raw[-300:]))
        self.assertTrue(r.stream_closed, 'no </stream:stream> from the server; received %r'
                        % r.raw[-300:])
        self.assertEqual([s(e) for e in r.elements if e.tag == '{%s}error' % NS_STREAM], [])
        self.assertIsNone(r.parse_error)

    async def test_rebuilt_usual_header(self):
        clients = [self.bound('idle', 'r%d' % i) for i in range(10)]
        self.assertGreater(self.parser_kib()[0], 0, 'no parser memory for 10 fresh streams')
        self.wait_trimmed()
        a, b = clients[0], clients[1]

        self.send_chat(a, b, 'm1', 'after the nap')
        self.assertChat(b.read_element(), a, b, 'm1', 'after the nap')

        a.send("<iq type='get' id='ping1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        res = a.read_element()
        self.assertEqual(shape(res), ('{%s}iq' % NS_CLIENT,
                                      {'type': 'result', 'id': 'ping1', 'from': 'localhost',
                                       'to': a.jid}, []), s(res))
        self.assertGreater(self.parser_kib()[0], 0, 'no parser memory after the rebuild')

        self.assertCleanClose(a, '</stream:stream>')
        # the others were not woken by any of it
        for c in clients[1:]:
            self.assertFalse(c.closed)

    async def test_other_stream_prefix(self):
        a = self.bound('prefix', 's', header=HEADER_S)
        b = self.bound('peer', 'b')
        self.wait_trimmed()

        self.send_chat(a, b, 'm2', 'prefixed')
        self.assertChat(b.read_element(), a, b, 'm2', 'prefixed')
        self.assertCleanClose(a, '</s:stream>')

    async def test_extra_namespace_declaration(self):
        a = self.bound('extra', 'x', header=HEADER_X)
        b = self.bound('peer', 'b')
        self.wait_trimmed()

        self.send_chat(a, b, 'm3', 'hi', extra='<x:data/>')
        m = b.read_element()
        self.assertEqual(shape(m),
                         ('{%s}message' % NS_CLIENT,
                          {'from': a.jid, 'to': b.jid, 'type': 'chat', 'id': 'm3'},
                          [('{%s}body' % NS_CLIENT, {}, 'hi', 0),
                           ('{urn:x}data', {}, None, 0)]), s(m))
        self.assertCleanClose(a, '</stream:stream>')

    async def test_malformed_after_trim(self):
        bad = self.bound('bad', 'bad')
        c = self.bound('good', 'c')
        b = self.bound('peer', 'b')
        self.wait_trimmed()

        bad.send('<message><body></message>')
        self.assertStreamError(bad, 'not-well-formed')

        self.send_chat(c, b, 'm4', 'unaffected')
        self.assertChat(b.read_element(), c, b, 'm4', 'unaffected')
