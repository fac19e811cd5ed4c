"""Integration tests: vcard-temp (mod_vcard; XEP-0054)."""

import xml.etree.ElementTree as ET

from harness import DEFAULT_MODULES, ParleyTestCase, error_of, xml_str

NS_VCARD = 'vcard-temp'
NS_DISCO_INFO = 'http://jabber.org/protocol/disco#info'
MODULES = DEFAULT_MODULES + ('vcard',)

CARD = ("<vCard xmlns='vcard-temp'><FN>Alice &amp; Co</FN><N><FAMILY>Liddell</FAMILY>"
        "<GIVEN>Alice</GIVEN></N><NICKNAME>ali\u00e7e</NICKNAME>"
        "<X-EXT xmlns='urn:example:ext' a='1'>kept</X-EXT></vCard>")


def canon(el):
    """A comparable form of an element tree: (tag, sorted attrs, text,
    children), whitespace-only text ignored."""
    text = (el.text or '').strip()
    return (el.tag, sorted(el.attrib.items()), text, [canon(c) for c in el])


def node(jid):
    return jid.split('@', 1)[0]


class VcardTests(ParleyTestCase):
    SHARED_SERVER = {'modules': MODULES, 'extra_config': 'module vcard { max_size 2k; }',
                     'limits': {'auth_failures': '1000'}}

    def vcard_of(self, r):
        self.assertEqual(r['type'], 'result', xml_str(r))
        cards = list(r.xml)
        self.assertEqual(len(cards), 1, xml_str(r))
        self.assertEqual(cards[0].tag, '{%s}vCard' % NS_VCARD, xml_str(r))
        return cards[0]

    async def test_own_vcard_empty_then_set_and_get(self):
        alice, apw = self.user(prefix='alice')
        a = await self.online(alice, apw)
        r = await a.iq('get', None, "<vCard xmlns='vcard-temp'/>")
        self.assertEqual(canon(self.vcard_of(r)), ('{vcard-temp}vCard', [], '', []))
        r = await a.iq('set', None, CARD)
        self.assertEqual((r['type'], list(r.xml)), ('result', []), xml_str(r))
        stored = self.server.run.pg.psql(
            "SELECT vcard FROM vcard WHERE username = '%s'" % node(alice),
            dbname=self.server.dbname).strip()
        self.assertEqual(canon(ET.fromstring(stored)), canon(ET.fromstring(CARD)))
        for to in (None, alice):
            r = await a.iq('get', to, "<vCard xmlns='vcard-temp'/>")
            self.assertEqual(canon(self.vcard_of(r)), canon(ET.fromstring(CARD)))

    async def test_set_replaces(self):
        alice, apw = self.user(prefix='alice')
        a = await self.online(alice, apw)
        await a.iq('set', None, CARD)
        second = "<vCard xmlns='vcard-temp'><FN>Second</FN></vCard>"
        r = await a.iq('set', None, second)
        self.assertEqual(r['type'], 'result', xml_str(r))
        r = await a.iq('get', None, "<vCard xmlns='vcard-temp'/>")
        self.assertEqual(canon(self.vcard_of(r)), canon(ET.fromstring(second)))

    async def test_other_users_vcard(self):
        alice, apw = self.user(prefix='alice')
        bob, bpw = self.user(prefix='bob')
        a = await self.online(alice, apw)
        b = await self.online(bob, bpw)
        r = await b.iq('get', alice, "<vCard xmlns='vcard-temp'/>")
        self.assertStanzaError(r, 'cancel', 'item-not-found')
        self.assertEqual(r['from'].full, alice)
        await a.iq('set', None, CARD)
        r = await b.iq('get', alice, "<vCard xmlns='vcard-temp'/>")
        self.assertEqual(r['from'].full, alice, xml_str(r))
        self.assertEqual(canon(self.vcard_of(r)), canon(ET.fromstring(CARD)))
        # another user's vCard cannot be written
        r = await b.iq('set', alice, "<vCard xmlns='vcard-temp'><FN>Mallory</FN></vCard>")
        self.assertStanzaError(r, 'auth', 'forbidden')
        r = await b.iq('get', alice, "<vCard xmlns='vcard-temp'/>")
        self.assertEqual(canon(self.vcard_of(r)), canon(ET.fromstring(CARD)))

    async def test_unknown_account(self):
        alice, apw = self.user(prefix='alice')
        a = await self.online(alice, apw)
        r = await a.iq('get', 'nobody-at-all@localhost', "<vCard xmlns='vcard-temp'/>")
        self.assertStanzaError(r, 'cancel', 'service-unavailable')

    async def test_host_vcard_not_supported(self):
        alice, apw = self.user(prefix='alice')
        a = await self.online(alice, apw)
        r = await a.iq('get', 'localhost', "<vCard xmlns='vcard-temp'/>")
        self.assertStanzaError(r, 'cancel', 'service-unavailable')

    async def test_too_large(self):
        alice, apw = self.user(prefix='alice')
        a = await self.online(alice, apw)
        big = "<vCard xmlns='vcard-temp'><DESC>%s</DESC></vCard>" % ('x' * 3000)
        r = await a.iq('set', None, big)
        self.assertStanzaError(r, 'modify', 'not-acceptable')
        self.assertEqual(error_of(r)[2], 'the vCard is too large')
        r = await a.iq('get', None, "<vCard xmlns='vcard-temp'/>")
        self.assertEqual(canon(self.vcard_of(r)), ('{vcard-temp}vCard', [], '', []))

    async def test_disco_feature(self):
        alice, apw = self.user(prefix='alice')
        a = await self.online(alice, apw)
        r = await a.iq('get', 'localhost', "<query xmlns='%s'/>" % NS_DISCO_INFO)
        feats = [f.get('var') for f in r.xml.iter('{%s}feature' % NS_DISCO_INFO)]
        self.assertIn('vcard-temp', feats)
