"""Integration tests: rosters (RFC 6121 section 2) and roster versioning
(RFC 6121 2.6, XEP-0237) with mod_roster.

The helpers at the top (IM clients, roster requests, pushes, stored rows)
are shared with test_im_presence.py."""

import asyncio
import time
import xml.etree.ElementTree as ET

from harness import (DEFAULT_MODULES, NS_SASL, NS_STREAM, ParleyTestCase, _xml_escape,
                     error_of, xml_str)

NS_ROSTER = 'jabber:iq:roster'
NS_ROSTERVER = 'urn:xmpp:features:rosterver'
Q = '{%s}query' % NS_ROSTER
ITEM = '{%s}item' % NS_ROSTER
GROUP = '{%s}group' % NS_ROSTER

IM_MODULES = tuple(DEFAULT_MODULES) + ('roster', 'presence')
IM_SERVER = {'modules': IM_MODULES, 'limits': {'auth_failures': '1000', 'max_resources': '64'}}


# ==== roster stanzas ====

def query_of(stanza):
    xml = stanza.xml if hasattr(stanza, 'xml') else stanza
    return xml.find(Q)


def item_tuple(it):
    """(jid, name, subscription, ask, [groups]) of an <item/>."""
    return (it.get('jid'), it.get('name'), it.get('subscription'), it.get('ask'),
            [g.text or '' for g in it.findall(GROUP)])


def items_of(stanza):
    """The items of a roster result or push, in document order."""
    q = query_of(stanza)
    if q is None:
        raise AssertionError('no roster query in %s' % xml_str(stanza))
    return [item_tuple(it) for it in q.findall(ITEM)]


def item_xml(jid, name=None, groups=(), subscription=None, extra=''):
    attrs = " jid='%s'" % _xml_escape(jid)
    if name is not None:
        attrs += " name='%s'" % _xml_escape(name)
    if subscription is not None:
        attrs += " subscription='%s'" % subscription
    inner = ''.join('<group>%s</group>' % _xml_escape(g) for g in groups) + extra
    return '<item%s>%s</item>' % (attrs, inner)


async def roster_get(c, ver=None, to=None):
    v = '' if ver is None else " ver='%s'" % _xml_escape(ver)
    return await c.iq('get', to, "<query xmlns='%s'%s/>" % (NS_ROSTER, v))


async def roster_set(c, jid, name=None, groups=(), subscription=None, to=None):
    return await roster_set_raw(c, item_xml(jid, name, groups, subscription), to=to)


async def roster_set_raw(c, inner, to=None):
    return await c.iq('set', to, "<query xmlns='%s'>%s</query>" % (NS_ROSTER, inner))


def is_push(iq):
    return iq.xml.get('type') == 'set' and iq.xml.find(Q) is not None


async def take_pushes(c, n, settle=0.3, timeout=5):
    """Waits for exactly n new roster pushes to c (none more arrive within
    settle seconds) and returns them."""
    slow = c.pl_server.run.slow
    deadline = time.monotonic() + timeout * slow

    def new():
        return [iq for iq in c.iq_log[c.pl_push_cursor:] if is_push(iq)]
    while len(new()) < n and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    await asyncio.sleep(settle * slow)
    got = new()
    c.pl_push_cursor = len(c.iq_log)
    if len(got) != n:
        raise AssertionError('%s: expected %d roster push(es), got %d: %s'
                             % (c.boundjid, n, len(got), [xml_str(p) for p in got]))
    return got


def check_push(test, push, client, item, ver=None):
    """push is a roster push to client's full JID, from its account (or
    no 'from'), with one item equal to `item`."""
    x = push.xml
    test.assertIn(x.get('from'), (None, client.boundjid.bare), xml_str(push))
    test.assertEqual(x.get('to'), client.boundjid.full, xml_str(push))
    test.assertTrue(x.get('id'), xml_str(push))
    test.assertEqual(items_of(push), [item], xml_str(push))
    test.assertEqual(query_of(push).get('ver'), ver, xml_str(push))


# ==== presences ====

def pres_key(p):
    """(type, from) of a presence; type 'available' when absent."""
    x = p.xml if hasattr(p, 'xml') else p
    return (x.get('type') or 'available', x.get('from'))


async def collect_presences(c, wait=0.4, expect=None):
    """The presences c receives: with expect, until that many have arrived
    (or 10 s passed), then any more within wait seconds."""
    out = []
    slow = c.pl_server.run.slow
    if expect:
        end = time.monotonic() + 10 * slow
        while len(out) < expect:
            left = end - time.monotonic()
            if left <= 0:
                break
            try:
                out.append(await asyncio.wait_for(c.presences.get(), left))
            except asyncio.TimeoutError:
                break
    end = time.monotonic() + wait * slow
    while True:
        left = end - time.monotonic()
        if left <= 0:
            break
        try:
            out.append(await asyncio.wait_for(c.presences.get(), left))
        except asyncio.TimeoutError:
            break
    return out


def send_presence(c, type_=None, to=None, show=None, status=None, priority=None, extra=''):
    """Sends a presence with exactly these parts (as raw XML)."""
    attrs = ''
    if type_:
        attrs += " type='%s'" % type_
    if to:
        attrs += " to='%s'" % _xml_escape(to)
    inner = ''
    if show:
        inner += '<show>%s</show>' % show
    if status is not None:
        inner += '<status>%s</status>' % _xml_escape(status)
    if priority is not None:
        inner += '<priority>%d</priority>' % priority
    c.send_raw('<presence%s>%s%s</presence>' % (attrs, inner, extra))


# ==== the test case base ====

class IMTestCase(ParleyTestCase):
    """Clients that leave subscription handling to the test, roster
    requests, and stored roster rows."""

    async def im_client(self, jid, pw, resource, server=None, roster=True, available=False,
                        **presence):
        c = await self.client(jid, pw, server=server, resource=resource)
        c.auto_authorize = None
        c.auto_subscribe = False
        c.pl_push_cursor = 0
        if roster:
            res = await roster_get(c)
            self.assertEqual(res['type'], 'result', xml_str(res))
        if available:
            send_presence(c, **presence)
        return c

    def db(self, sql, server=None):
        server = server or self.server
        return server.run.pg.psql(sql, dbname=server.dbname)

    def rows(self, jid, server=None):
        """The stored roster rows of account jid, by contact:
        (name, subscription, ask, pending_in, in_roster, groups)."""
        node, host = jid.split('@')
        out = self.db("SELECT contact, coalesce(name, '<null>'), subscription, ask, pending_in, "
                      "in_roster, array_to_string(groups, '|') FROM roster WHERE host = '%s' "
                      "AND username = '%s' ORDER BY contact" % (host, node), server)
        res = {}
        for line in out.splitlines():
            if not line:
                continue
            contact, name, sub, ask, pin, inr, groups = line.split('|', 6)
            res[contact] = (None if name == '<null>' else name, sub, ask == 't', pin == 't',
                            inr == 't', groups.split('|') if groups else [])
        return res

    def version(self, jid, server=None):
        node, host = jid.split('@')
        out = self.db("SELECT version FROM roster_version WHERE host = '%s' AND username = '%s'"
                      % (host, node), server).strip()
        return int(out) if out else None

    def assertIQError(self, res, etype, cond, text=None):
        self.assertEqual(res['type'], 'error', xml_str(res))
        err = error_of(res)
        self.assertEqual(err[:2], (etype, [cond]), xml_str(res))
        if text is not None:
            self.assertEqual(err[2], text, xml_str(res))

    def assertEmptyResult(self, res):
        self.assertEqual(res['type'], 'result', xml_str(res))
        self.assertEqual(len(res.xml), 0, xml_str(res))


# ==== roster tests ====

class RosterTests(IMTestCase):
    SHARED_SERVER = IM_SERVER

    async def test_empty_roster(self):
        jid, pw = self.user(prefix='alice')
        c = await self.im_client(jid, pw, 'r', roster=False)
        res = await roster_get(c)
        self.assertEqual(res['type'], 'result', xml_str(res))
        self.assertEqual(res.xml.get('to'), jid + '/r')
        self.assertEqual(items_of(res), [])
        self.assertIsNone(query_of(res).get('ver'), 'no ver for a client without versioning')

    async def test_stream_feature(self):
        jid, pw = self.user(prefix='alice')
        raw = self.raw()

        def login():
            raw.connect_tls()
            el = raw.auth_plain(jid.split('@')[0], pw)
            assert el.tag == '{%s}success' % NS_SASL, ET.tostring(el)
            return raw.open_stream()
        feats = await self.in_thread(login)
        self.assertIsNotNone(feats.find('{%s}ver' % NS_ROSTERVER), ET.tostring(feats))
        self.assertEqual(len(feats.find('{%s}ver' % NS_ROSTERVER)), 0)

    async def test_set_get_update_remove(self):
        alice, pw = self.user(prefix='alice')
        a = await self.im_client(alice, pw, 'a')
        nurse = 'nurse@example.com'
        res = await roster_set(a, nurse, name='Nurse', groups=['Servants', 'Cäpulets & co'])
        self.assertEmptyResult(res)
        self.assertEqual(res.xml.get('to'), alice + '/a')
        want = (nurse, 'Nurse', 'none', None, ['Servants', 'Cäpulets & co'])
        check_push(self, (await take_pushes(a, 1))[0], a, want)
        self.assertEqual(items_of(await roster_get(a)), [want])
        self.assertEqual(self.rows(alice),
                         {nurse: ('Nurse', 'none', False, False, True,
                                  ['Servants', 'Cäpulets & co'])})
        # an update replaces name and groups
        res = await roster_set(a, nurse, name='The Nurse', groups=['Friends'])
        self.assertEmptyResult(res)
        want = (nurse, 'The Nurse', 'none', None, ['Friends'])
        check_push(self, (await take_pushes(a, 1))[0], a, want)
        # no name, no groups
        res = await roster_set(a, 'romeo@example.net')
        self.assertEmptyResult(res)
        check_push(self, (await take_pushes(a, 1))[0], a,
                   ('romeo@example.net', None, 'none', None, []))
        self.assertEqual(items_of(await roster_get(a)),
                         [want, ('romeo@example.net', None, 'none', None, [])])
        # remove
        res = await roster_set(a, nurse, subscription='remove')
        self.assertEmptyResult(res)
        check_push(self, (await take_pushes(a, 1))[0], a, (nurse, None, 'remove', None, []))
        self.assertEqual(items_of(await roster_get(a)),
                         [('romeo@example.net', None, 'none', None, [])])
        self.assertEqual(list(self.rows(alice)), ['romeo@example.net'])

    async def test_jid_is_prepared(self):
        alice, pw = self.user(prefix='alice')
        a = await self.im_client(alice, pw, 'a')
        res = await roster_set(a, 'Juliet@EXAMPLE.com')
        self.assertEmptyResult(res)
        check_push(self, (await take_pushes(a, 1))[0], a,
                   ('juliet@example.com', None, 'none', None, []))
        # the same item under another spelling
        self.assertEmptyResult(await roster_set(a, 'JULIET@example.COM', name='J'))
        check_push(self, (await take_pushes(a, 1))[0], a,
                   ('juliet@example.com', 'J', 'none', None, []))
        self.assertEqual(list(self.rows(alice)), ['juliet@example.com'])

    async def test_subscription_attribute_ignored_on_set(self):
        alice, pw = self.user(prefix='alice')
        a = await self.im_client(alice, pw, 'a')
        res = await roster_set_raw(a, "<item jid='x@example.com' subscription='both' "
                                      "ask='subscribe' approved='true'/>")
        self.assertEmptyResult(res)
        check_push(self, (await take_pushes(a, 1))[0], a,
                   ('x@example.com', None, 'none', None, []))
        self.assertEqual(self.rows(alice)['x@example.com'][1:3], ('none', False))

    async def test_unchanged_set_is_not_pushed(self):
        alice, pw = self.user(prefix='alice')
        a = await self.im_client(alice, pw, 'a')
        self.assertEmptyResult(await roster_set(a, 'x@example.com', name='X', groups=['G']))
        await take_pushes(a, 1)
        v = self.version(alice)
        self.assertEmptyResult(await roster_set(a, 'x@example.com', name='X', groups=['G']))
        await take_pushes(a, 0)
        self.assertEqual(self.version(alice), v)

    async def test_pushes_reach_interested_resources(self):
        alice, pw = self.user(prefix='alice')
        a1 = await self.im_client(alice, pw, 'one')
        a2 = await self.im_client(alice, pw, 'two', available=True)
        quiet = await self.im_client(alice, pw, 'quiet', roster=False, available=True)
        self.assertEmptyResult(await roster_set(a1, 'x@example.com', name='X'))
        want = ('x@example.com', 'X', 'none', None, [])
        p1 = (await take_pushes(a1, 1))[0]
        p2 = (await take_pushes(a2, 1))[0]
        check_push(self, p1, a1, want)
        check_push(self, p2, a2, want)
        self.assertNotEqual(p1.xml.get('id'), p2.xml.get('id'))
        # a resource that never requested the roster gets no pushes
        await take_pushes(quiet, 0)
        # ... until it does
        self.assertEqual(items_of(await roster_get(quiet)), [want])
        self.assertEmptyResult(await roster_set(a2, 'x@example.com', subscription='remove'))
        for c in (a1, a2, quiet):
            check_push(self, (await take_pushes(c, 1))[0], c,
                       ('x@example.com', None, 'remove', None, []))

    async def test_versioning(self):
        alice, pw = self.user(prefix='alice')
        a = await self.im_client(alice, pw, 'a', roster=False)
        res = await roster_get(a, ver='')
        self.assertEqual(items_of(res), [])
        self.assertEqual(query_of(res).get('ver'), '0')
        # up to date: an empty result
        self.assertEmptyResult(await roster_get(a, ver='0'))
        self.assertEmptyResult(await roster_set(a, 'x@example.com', name='X'))
        # pushes of a versioning client carry the new version
        check_push(self, (await take_pushes(a, 1))[0], a,
                   ('x@example.com', 'X', 'none', None, []), ver='1')
        self.assertEqual(self.version(alice), 1)
        self.assertEmptyResult(await roster_set(a, 'y@example.com'))
        check_push(self, (await take_pushes(a, 1))[0], a,
                   ('y@example.com', None, 'none', None, []), ver='2')
        # a stale version gets the whole roster and the current version
        for stale in ('0', '1', 'garbage'):
            res = await roster_get(a, ver=stale)
            self.assertEqual(res['type'], 'result')
            self.assertEqual(query_of(res).get('ver'), '2')
            self.assertEqual(items_of(res), [('x@example.com', 'X', 'none', None, []),
                                             ('y@example.com', None, 'none', None, [])])
        self.assertEmptyResult(await roster_get(a, ver='2'))
        # another resource gets the same version
        b = await self.im_client(alice, pw, 'b', roster=False)
        self.assertEmptyResult(await roster_get(b, ver='2'))
        self.assertEmptyResult(await roster_set(b, 'x@example.com', subscription='remove'))
        for c in (a, b):
            check_push(self, (await take_pushes(c, 1))[0], c,
                       ('x@example.com', None, 'remove', None, []), ver='3')
        res = await roster_get(b, ver='2')
        self.assertEqual((query_of(res).get('ver'), items_of(res)),
                         ('3', [('y@example.com', None, 'none', None, [])]))

    async def test_invalid_sets(self):
        alice, pw = self.user(prefix='alice')
        a = await self.im_client(alice, pw, 'a')
        cases = [
            ('', 'modify', 'bad-request', 'a roster set carries exactly one item'),
            (item_xml('x@example.com') + item_xml('y@example.com'),
             'modify', 'bad-request', 'a roster set carries exactly one item'),
            ("<item name='no jid'/>", 'modify', 'bad-request', "the item has no 'jid'"),
            (item_xml('@example.com'), 'modify', 'jid-malformed',
             "the item's 'jid' is not a valid bare JID"),
            (item_xml('a b@example.com'), 'modify', 'jid-malformed',
             "the item's 'jid' is not a valid bare JID"),
            (item_xml('x@example.com/res'), 'modify', 'jid-malformed',
             "the item's 'jid' is not a valid bare JID"),
            (item_xml('x@example.com', groups=['A', 'B', 'A']), 'modify', 'bad-request',
             'the item lists a group twice'),
            (item_xml('x@example.com', groups=['A', '']), 'modify', 'not-acceptable',
             'a group name is empty'),
            (item_xml(alice), 'cancel', 'not-allowed',
             'an account is not an item of its own roster'),
            (item_xml(alice.upper()), 'cancel', 'not-allowed',
             'an account is not an item of its own roster'),
        ]
        for inner, etype, cond, text in cases:
            with self.subTest(item=inner):
                res = await roster_set_raw(a, inner)
                self.assertIQError(res, etype, cond, text)
                self.assertIsNone(res.xml.get('from'), xml_str(res))
                self.assertEqual(res.xml.get('to'), alice + '/a', xml_str(res))
        await take_pushes(a, 0)
        self.assertEqual(self.rows(alice), {})
        # removing what is not there
        res = await roster_set(a, 'nobody@example.com', subscription='remove')
        self.assertIQError(res, 'cancel', 'item-not-found')
        await take_pushes(a, 0)

    async def test_other_accounts_roster_is_forbidden(self):
        alice, pw = self.user(prefix='alice')
        bob, bpw = self.user(prefix='bob')
        a = await self.im_client(alice, pw, 'a')
        b = await self.im_client(bob, bpw, 'b')
        for res in (await roster_set(a, 'x@example.com', to=bob),
                    await roster_get(a, to=bob)):
            self.assertIQError(res, 'auth', 'forbidden',
                               "only the account's own resources use its roster")
            self.assertEqual(res.xml.get('from'), bob, xml_str(res))
        await take_pushes(b, 0)
        self.assertEqual(self.rows(bob), {})
        # the own bare JID as 'to' is the account itself
        self.assertEmptyResult(await roster_set(a, 'x@example.com', to=alice))
        check_push(self, (await take_pushes(a, 1))[0], a,
                   ('x@example.com', None, 'none', None, []))

    async def test_many_items(self):
        alice, pw = self.user(prefix='alice')
        a = await self.im_client(alice, pw, 'a')
        jids = ['c%03d@example.org' % i for i in range(60)]
        answers = await asyncio.gather(*(roster_set(a, j, groups=['G%d' % (i % 3)])
                                         for i, j in enumerate(jids)))
        for res in answers:
            self.assertEmptyResult(res)
        pushes = await take_pushes(a, len(jids))
        self.assertEqual(sorted(items_of(p)[0][0] for p in pushes), jids)
        res = await roster_get(a, ver='')
        self.assertEqual(query_of(res).get('ver'), str(len(jids)))
        self.assertEqual(sorted(items_of(res)),
                         [(j, None, 'none', None, ['G%d' % (i % 3)]) for i, j in enumerate(jids)])


class RosterLimitTests(IMTestCase):
    SHARED_SERVER = dict(IM_SERVER, extra_config=(
        'module roster { max_items 3; max_name_length 10; max_group_length 5; }'))

    async def test_max_items(self):
        alice, pw = self.user(prefix='alice')
        a = await self.im_client(alice, pw, 'a')
        for j in ('x1@example.com', 'x2@example.com', 'x3@example.com'):
            self.assertEmptyResult(await roster_set(a, j))
        await take_pushes(a, 3)
        res = await roster_set(a, 'x4@example.com', name='Four')
        self.assertIQError(res, 'cancel', 'not-allowed', 'the roster is limited to 3 items')
        await take_pushes(a, 0)
        self.assertEqual(sorted(self.rows(alice)),
                         ['x1@example.com', 'x2@example.com', 'x3@example.com'])
        # items already there can still change; a removal makes room
        self.assertEmptyResult(await roster_set(a, 'x1@example.com', name='One'))
        self.assertEmptyResult(await roster_set(a, 'x2@example.com', subscription='remove'))
        self.assertEmptyResult(await roster_set(a, 'x4@example.com', name='Four'))
        await take_pushes(a, 3)
        self.assertEqual(sorted(self.rows(alice)),
                         ['x1@example.com', 'x3@example.com', 'x4@example.com'])
        # a subscription request to a new contact needs an item too
        send_presence(a, 'subscribe', to='x5@example.com')
        p = await a.next_presence()
        self.assertEqual(pres_key(p), ('error', 'x5@example.com'), xml_str(p))
        self.assertEqual(error_of(p), ('cancel', ['not-allowed'], 'the roster is full'))
        self.assertNotIn('x5@example.com', self.rows(alice))

    async def test_lengths(self):
        alice, pw = self.user(prefix='alice')
        a = await self.im_client(alice, pw, 'a')
        # limits count characters, not bytes
        self.assertEmptyResult(await roster_set(a, 'x@example.com', name='ééééééééé€',
                                                groups=['€€€€€']))
        res = await roster_set(a, 'y@example.com', name='12345678901')
        self.assertIQError(res, 'modify', 'not-acceptable', 'the name is longer than 10 characters')
        res = await roster_set(a, 'y@example.com', groups=['ok', 'toolong'])
        self.assertIQError(res, 'modify', 'not-acceptable',
                           'a group name is longer than 5 characters')
        await take_pushes(a, 1)
        self.assertEqual(list(self.rows(alice)), ['x@example.com'])


class RosterPersistenceTests(IMTestCase):

    async def test_survives_restart(self):
        srv = self.parley(**IM_SERVER)
        alice, pw = self.user(server=srv, prefix='alice')
        a = await self.im_client(alice, pw, 'a', server=srv)
        self.assertEmptyResult(await roster_set(a, 'x@example.com', name='X', groups=['A', 'B']))
        self.assertEmptyResult(await roster_set(a, 'y@example.com'))
        self.assertEmptyResult(await roster_set(a, 'z@example.com'))
        self.assertEmptyResult(await roster_set(a, 'y@example.com', subscription='remove'))
        await take_pushes(a, 4)
        await a.close()
        srv.stop()
        srv.start()
        a = await self.im_client(alice, pw, 'a', server=srv, roster=False)
        res = await roster_get(a, ver='')
        self.assertEqual(query_of(res).get('ver'), '4')
        self.assertEqual(items_of(res), [('x@example.com', 'X', 'none', None, ['A', 'B']),
                                         ('z@example.com', None, 'none', None, [])])
        self.assertEmptyResult(await roster_get(a, ver='4'))


class RosterOutageTests(IMTestCase):
    """Rosters of online accounts are served from memory; changes need
    the database."""

    async def test_database_down(self):
        srv = self.parley(**IM_SERVER)
        pg = self.run_ctx.pg
        alice, apw = self.user(server=srv, prefix='alice')
        bob, bpw = self.user(server=srv, prefix='bob')
        a = await self.im_client(alice, apw, 'a', server=srv)
        b = await self.im_client(bob, bpw, 'b', server=srv, available=True)
        self.assertEmptyResult(await roster_set(a, bob, name='Bob'))
        await take_pushes(a, 1)
        await self.settle(0.3)
        b.drain()
        try:
            await self.in_thread(pg.stop)
            deadline = time.monotonic() + 10 * self.run_ctx.slow
            while 'database: down' not in (await self.in_thread(srv.ctl, 'status')).stdout:
                self.assertLess(time.monotonic(), deadline, 'parleyd did not notice')
                await self.settle(0.2)
            res = await roster_get(a, ver='')
            self.assertEqual((query_of(res).get('ver'), items_of(res)),
                             ('1', [(bob, 'Bob', 'none', None, [])]))
            res = await roster_set(a, 'x@example.com')
            self.assertIQError(res, 'wait', 'internal-server-error',
                               'the roster storage is unavailable')
            send_presence(a, 'subscribe', to=bob)
            p = await a.next_presence()
            self.assertEqual(pres_key(p), ('error', bob), xml_str(p))
            self.assertEqual(error_of(p), ('wait', ['internal-server-error'],
                                           'the roster storage is unavailable'))
            await take_pushes(a, 0)
            self.assertEqual(await collect_presences(b, 0.3), [])
        finally:
            if not pg.running:
                await self.in_thread(pg.start)
        deadline = time.monotonic() + 15 * self.run_ctx.slow
        while True:
            res = await roster_set(a, 'x@example.com')
            if res['type'] == 'result' or time.monotonic() > deadline:
                break
            await self.settle(0.5)
        self.assertEmptyResult(res)
        check_push(self, (await take_pushes(a, 1))[0], a,
                   ('x@example.com', None, 'none', None, []), ver='2')
        self.assertEqual(sorted(self.rows(alice, srv)), sorted([bob, 'x@example.com']))
