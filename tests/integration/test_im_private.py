"""Integration tests: Private XML Storage (mod_private; XEP-0049)."""

import xml.etree.ElementTree as ET

from harness import DEFAULT_MODULES, ParleyTestCase, error_of, xml_str

NS_PRIVATE = 'jabber:iq:private'
MODULES = DEFAULT_MODULES + ('private',)

BOOKMARKS = ("<storage xmlns='storage:bookmarks'><conference jid='room@muc.example' "
             "autojoin='true' name='R &amp; D'><nick>ali</nick></conference></storage>")
PREFS = "<exodus xmlns='exodus:prefs'><defaultnick>Hamlet</defaultnick></exodus>"


def canon(el):
    return (el.tag, sorted(el.attrib.items()), (el.text or '').strip(), [canon(c) for c in el])


def query(inner):
    return "<query xmlns='jabber:iq:private'>%s</query>" % inner


def node(jid):
    return jid.split('@', 1)[0]


class PrivateTests(ParleyTestCase):
    SHARED_SERVER = {'modules': MODULES, 'extra_config': 'module private { max_size 1k; }',
                     'limits': {'auth_failures': '1000'}}

    def payload(self, r):
        """The one element inside the result's <query/>."""
        self.assertEqual(r['type'], 'result', xml_str(r))
        qs = list(r.xml)
        self.assertEqual([q.tag for q in qs], ['{%s}query' % NS_PRIVATE], xml_str(r))
        inner = list(qs[0])
        self.assertEqual(len(inner), 1, xml_str(r))
        return inner[0]

    async def test_get_nothing_stored_returns_empty_element(self):
        alice, apw = self.user(prefix='alice')
        a = await self.online(alice, apw)
        r = await a.iq('get', None, query("<storage xmlns='storage:bookmarks'/>"))
        self.assertEqual(canon(self.payload(r)), ('{storage:bookmarks}storage', [], '', []))

    async def test_set_get_per_namespace(self):
        alice, apw = self.user(prefix='alice')
        a = await self.online(alice, apw)
        for inner in (BOOKMARKS, PREFS):
            r = await a.iq('set', None, query(inner))
            self.assertEqual((r['type'], list(r.xml)), ('result', []), xml_str(r))
        rows = self.server.run.pg.psql(
            "SELECT namespace FROM private_xml WHERE username = '%s' ORDER BY namespace"
            % node(alice), dbname=self.server.dbname).split()
        self.assertEqual(rows, ['exodus:prefs', 'storage:bookmarks'])
        r = await a.iq('get', None, query("<storage xmlns='storage:bookmarks'/>"))
        self.assertEqual(canon(self.payload(r)), canon(ET.fromstring(BOOKMARKS)))
        r = await a.iq('get', alice, query("<exodus xmlns='exodus:prefs'/>"))
        self.assertEqual(canon(self.payload(r)), canon(ET.fromstring(PREFS)))
        # replacing one namespace leaves the other alone
        new = "<storage xmlns='storage:bookmarks'/>"
        await a.iq('set', None, query(new))
        r = await a.iq('get', None, query("<storage xmlns='storage:bookmarks'/>"))
        self.assertEqual(canon(self.payload(r)), ('{storage:bookmarks}storage', [], '', []))
        r = await a.iq('get', None, query("<exodus xmlns='exodus:prefs'/>"))
        self.assertEqual(canon(self.payload(r)), canon(ET.fromstring(PREFS)))

    async def test_other_users_data_forbidden(self):
        alice, apw = self.user(prefix='alice')
        bob, bpw = self.user(prefix='bob')
        a = await self.online(alice, apw)
        b = await self.online(bob, bpw)
        await a.iq('set', None, query(PREFS))
        for type_, inner in (('get', "<exodus xmlns='exodus:prefs'/>"), ('set', PREFS)):
            r = await b.iq(type_, alice, query(inner))
            self.assertStanzaError(r, 'auth', 'forbidden')
            self.assertNotIn('Hamlet', xml_str(r))

    async def test_malformed_queries(self):
        alice, apw = self.user(prefix='alice')
        a = await self.online(alice, apw)
        cases = [
            ('get', query(''), 'modify', 'bad-request'),
            ('set', query(''), 'modify', 'bad-request'),
            ('set', query(PREFS + BOOKMARKS), 'modify', 'bad-request'),
            ('get', query('<plain/>'), 'modify', 'not-acceptable'),
            ('set', query("<x xmlns='jabber:client'/>"), 'modify', 'not-acceptable'),
            ('set', query("<x xmlns='jabber:iq:private'/>"), 'modify', 'not-acceptable'),
        ]
        for type_, q, etype, cond in cases:
            r = await a.iq(type_, None, q)
            self.assertStanzaError(r, etype, cond)
        rows = self.server.run.pg.psql(
            "SELECT count(*) FROM private_xml WHERE username = '%s'" % node(alice),
            dbname=self.server.dbname).strip()
        self.assertEqual(rows, '0')

    async def test_too_large(self):
        alice, apw = self.user(prefix='alice')
        a = await self.online(alice, apw)
        big = "<big xmlns='urn:example:big'>%s</big>" % ('y' * 2000)
        r = await a.iq('set', None, query(big))
        self.assertStanzaError(r, 'modify', 'not-acceptable')
        self.assertEqual(error_of(r)[2], 'the element is too large')
