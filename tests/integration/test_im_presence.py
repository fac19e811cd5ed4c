"""Integration tests: presence subscriptions (RFC 6121 section 3 and the
state tables of Appendix A) and presence broadcast, probes and directed
presence (RFC 6121 section 4) with mod_presence and mod_roster."""

import asyncio
import time
import xml.etree.ElementTree as ET

from harness import NS_CLIENT, error_of, xml_str
from test_im_roster import (IM_SERVER, IMTestCase, collect_presences, items_of, pres_key,
                            roster_get, roster_set, send_presence, take_pushes)

NS_NICK = 'http://jabber.org/protocol/nick'

# ==== RFC 6121 Appendix A, as tables ====

# state name -> (subscription, ask (pending out), pending in)
STATES = {
    'None': ('none', False, False),
    'None+PO': ('none', True, False),
    'None+PI': ('none', False, True),
    'None+PO/PI': ('none', True, True),
    'To': ('to', False, False),
    'To+PI': ('to', False, True),
    'From': ('from', False, False),
    'From+PO': ('from', True, False),
    'Both': ('both', False, False),
}

# The contact's view of a consistent pair of rosters.
MIRROR = {
    'None': 'None', 'None+PO': 'None+PI', 'None+PI': 'None+PO', 'None+PO/PI': 'None+PO/PI',
    'To': 'From', 'To+PI': 'From+PO', 'From': 'To', 'From+PO': 'To+PI', 'Both': 'Both',
}

# A.2: outbound stanzas: state -> new state (None: no change). subscribe
# and unsubscribe are always routed, subscribed and unsubscribed only when
# they change the state.
OUTBOUND = {
    'subscribe': {'None': 'None+PO', 'None+PI': 'None+PO/PI', 'From': 'From+PO'},
    'subscribed': {'None+PI': 'From', 'None+PO/PI': 'From+PO', 'To+PI': 'Both'},
    'unsubscribe': {'None+PO': 'None', 'None+PO/PI': 'None+PI', 'To': 'None',
                    'To+PI': 'None+PI', 'From+PO': 'From', 'Both': 'From'},
    'unsubscribed': {'None+PI': 'None', 'None+PO/PI': 'None+PO', 'To+PI': 'To', 'From': 'None',
                     'From+PO': 'None+PO', 'Both': 'To'},
}

# A.3: inbound stanzas: state -> new state; delivered exactly when the
# state changes (a subscribe to From/From+PO/Both is approved by the
# server instead).
INBOUND = {
    'subscribe': {'None': 'None+PI', 'None+PO': 'None+PO/PI', 'To': 'To+PI'},
    'subscribed': {'None+PO': 'To', 'None+PO/PI': 'To+PI', 'From+PO': 'Both'},
    'unsubscribe': {'None+PI': 'None', 'None+PO/PI': 'None+PO', 'To+PI': 'To', 'From': 'None',
                    'From+PO': 'None+PO', 'Both': 'To'},
    'unsubscribed': {'None+PO': 'None', 'None+PO/PI': 'None+PI', 'To': 'None',
                     'To+PI': 'None+PI', 'From+PO': 'From', 'Both': 'From'},
}


def has_from(state):
    return STATES[state][0] in ('from', 'both')


def visible(state):
    """(subscription, ask) as a roster push shows them."""
    sub, ask, _ = STATES[state]
    return (sub, 'subscribe' if ask else None)


def model(sa, sb, t, a_full, a_bare, b_full, b_bare, b_available):
    """What happens when alice (state sa toward bob) sends t to bob (state
    sb toward alice): the final states, the presences each receives as
    (type, from), and the items of the roster pushes each receives."""
    a_pres, b_pres, a_push, b_push = [], [], [], []
    na = OUTBOUND[t].get(sa)
    routed = t in ('subscribe', 'unsubscribe') or na is not None
    if na and visible(na) != visible(sa):
        a_push.append(visible(na))
    sa2 = na or sa
    sb2 = sb
    if t == 'unsubscribed' and na and has_from(sa):
        b_pres.append(('unavailable', a_full))        # 3.2.2, before the stanza
    if routed:
        nb = INBOUND[t].get(sb)
        if nb:
            b_pres.append((t, a_bare))
            if visible(nb) != visible(sb):
                b_push.append(visible(nb))
            sb2 = nb
        if t == 'subscribe' and has_from(sb):           # 3.1.3: approved for bob
            na2 = INBOUND['subscribed'].get(sa2)
            if na2:
                a_pres.append(('subscribed', b_bare))
                if visible(na2) != visible(sa2):
                    a_push.append(visible(na2))
                sa2 = na2
            if b_available:
                a_pres.append(('available', b_full))
        if t == 'unsubscribe' and nb and has_from(sb) and b_available:
            a_pres.append(('unavailable', b_full))      # 3.3.3
    if t == 'subscribed' and na:
        b_pres.append(('available', a_full))            # 3.1.5
    if not b_available:
        b_pres = [p for p in b_pres if p[0] in ('subscribed', 'unsubscribe', 'unsubscribed')]
    return sa2, sb2, sorted(a_pres), sorted(b_pres), a_push, b_push


class PresenceTestCase(IMTestCase):
    SHARED_SERVER = IM_SERVER

    def seed(self, owner, contact, state, in_roster=True, stanza=None, server=None):
        """Stores owner's record for contact in the given state."""
        sub, ask, pin = STATES[state]
        node, host = owner.split('@')
        if pin and stanza is None:
            stanza = "<presence from='%s' to='%s' type='subscribe'/>" % (contact, owner)
        self.db("INSERT INTO roster (host, username, contact, subscription, ask, pending_in, "
                "pending_stanza, in_roster) VALUES ('%s', '%s', '%s', '%s', %s, %s, %s, %s)"
                % (host, node, contact, sub, 'true' if ask else 'false',
                   'true' if pin else 'false',
                   "'%s'" % stanza.replace("'", "''") if pin else 'NULL',
                   'true' if in_roster else 'false'), server)

    def assertState(self, owner, contact, state):
        sub, ask, pin = STATES[state]
        row = self.rows(owner).get(contact)
        self.assertIsNotNone(row, '%s has no record for %s' % (owner, contact))
        self.assertEqual(row[1:5], (sub, ask, pin, True),
                         'record of %s for %s: %r, expected %s' % (owner, contact, row, state))

    async def settled(self, *clients, quiet=0.3):
        """Waits until the clients have received nothing for quiet seconds
        (at most 10 s) and forgets what they received."""
        slow = self.server.run.slow
        end = time.monotonic() + 10 * slow
        while True:
            before = [(c.presences.qsize(), c.messages.qsize(), len(c.iq_log)) for c in clients]
            await asyncio.sleep(quiet * slow)
            after = [(c.presences.qsize(), c.messages.qsize(), len(c.iq_log)) for c in clients]
            for c in clients:
                c.drain()
                c.pl_push_cursor = len(c.iq_log)
            if before == after and not any(a[0] or a[1] for a in after):
                break
            if time.monotonic() > end:
                break

    async def pair(self, sa, sb, b_available=True):
        alice, apw = self.user(prefix='alice')
        bob, bpw = self.user(prefix='bob')
        self.seed(alice, bob, sa)
        self.seed(bob, alice, sb)
        a = await self.im_client(alice, apw, 'a', available=True)
        b = await self.im_client(bob, bpw, 'b', available=b_available)
        await self.settled(a, b)
        return alice, a, bob, b

    async def run_case(self, sa, sb, t, b_available=True):
        alice, a, bob, b = await self.pair(sa, sb, b_available)
        sa2, sb2, a_pres, b_pres, a_push, b_push = model(
            sa, sb, t, alice + '/a', alice, bob + '/b', bob, b_available)
        send_presence(a, t, to=bob + ('/b' if t == 'unsubscribe' else ''))
        got_a, got_b = await asyncio.gather(collect_presences(a, 0.4, len(a_pres)),
                                            collect_presences(b, 0.4, len(b_pres)))
        self.assertEqual(sorted(pres_key(p) for p in got_a), a_pres,
                         'alice received: %s' % [xml_str(p) for p in got_a])
        self.assertEqual(sorted(pres_key(p) for p in got_b), b_pres,
                         'bob received: %s' % [xml_str(p) for p in got_b])
        for p in got_a + got_b:
            x = p.xml
            if x.get('type') in ('subscribe', 'subscribed', 'unsubscribe', 'unsubscribed'):
                # stamped with bare JIDs (RFC 6121 3.1.2, 3.1.3)
                want_to = bob if p in got_b else alice
                self.assertEqual(x.get('to'), want_to, xml_str(p))
        for c, jid, pushes in ((a, bob, a_push), (b, alice, b_push)):
            got = await take_pushes(c, len(pushes), settle=0)
            self.assertEqual([items_of(p) for p in got],
                             [[(jid, None, sub, ask, [])] for sub, ask in pushes])
        self.assertState(alice, bob, sa2)
        self.assertState(bob, alice, sb2)
        # the cached rosters agree with the stored ones
        for c, jid, state in ((a, bob, sa2), (b, alice, sb2)):
            sub, ask = visible(state)
            self.assertEqual(items_of(await roster_get(c)), [(jid, None, sub, ask, [])])


class SubscriptionTableTests(PresenceTestCase):
    """Every row of the outbound tables (A.2) for consistent pairs of
    rosters, which also runs every row of the inbound tables (A.3) for
    subscribe and unsubscribe and the rows that change state for
    subscribed and unsubscribed; the other inbound rows run against
    inconsistent pairs."""

    async def cases(self, t, pairs, b_available=True):
        for sa, sb in pairs:
            with self.subTest(alice=sa, bob=sb, sends=t):
                await self.run_case(sa, sb, t, b_available)

    async def test_subscribe(self):
        await self.cases('subscribe', [(s, MIRROR[s]) for s in STATES])

    async def test_subscribed(self):
        await self.cases('subscribed', [(s, MIRROR[s]) for s in STATES])

    async def test_unsubscribe(self):
        await self.cases('unsubscribe', [(s, MIRROR[s]) for s in STATES])

    async def test_unsubscribed(self):
        await self.cases('unsubscribed', [(s, MIRROR[s]) for s in STATES])

    async def test_inbound_subscribed(self):
        # alice's None+PI routes her approval whatever bob's state is
        await self.cases('subscribed', [('None+PI', s) for s in STATES], b_available=False)

    async def test_inbound_unsubscribed(self):
        await self.cases('unsubscribed', [('None+PI', s) for s in STATES], b_available=False)


class SubscriptionTests(PresenceTestCase):

    async def test_full_handshake(self):
        """RFC 6121 3.1: subscribe, approve, and the presence that follows."""
        alice, apw = self.user(prefix='alice')
        bob, bpw = self.user(prefix='bob')
        a = await self.im_client(alice, apw, 'a', available=True, status='here')
        b = await self.im_client(bob, bpw, 'b', available=True, show='chat', priority=2)
        await self.settled(a, b)
        send_presence(a, 'subscribe', to=bob, extra="<nick xmlns='%s'>Ally</nick>" % NS_NICK)
        push = (await take_pushes(a, 1))[0]
        self.assertEqual(items_of(push), [(bob, None, 'none', 'subscribe', [])])
        req = await b.next_presence()
        self.assertEqual((pres_key(req), req.xml.get('to')), (('subscribe', alice), bob))
        self.assertEqual(req.xml.find('{%s}nick' % NS_NICK).text, 'Ally', xml_str(req))
        await take_pushes(b, 0)    # a request is not a roster item
        self.assertEqual(items_of(await roster_get(b)), [])
        self.assertEqual(self.rows(bob)[alice][1:5], ('none', False, True, False))
        # bob approves: his item appears with 'from', alice's becomes 'to'
        send_presence(b, 'subscribed', to=alice)
        check = (await take_pushes(b, 1))[0]
        self.assertEqual(items_of(check), [(alice, None, 'from', None, [])])
        got = await collect_presences(a, 0.6, expect=2)
        self.assertEqual([pres_key(p) for p in got], [('subscribed', bob), ('available', bob + '/b')])
        pres = got[1].xml
        self.assertEqual((pres.findtext('{%s}show' % NS_CLIENT),
                          pres.findtext('{%s}priority' % NS_CLIENT)), ('chat', '2'))
        self.assertEqual(items_of((await take_pushes(a, 1))[0]), [(bob, None, 'to', None, [])])
        # from now on alice's... no: bob's presence reaches alice, not the reverse
        send_presence(b, show='away', status='lunch')
        got = await collect_presences(a, 0.4, expect=1)
        self.assertEqual([pres_key(p) for p in got], [('available', bob + '/b')])
        self.assertEqual(got[0].xml.findtext('{%s}status' % NS_CLIENT), 'lunch')
        send_presence(a, status='back')
        self.assertEqual([pres_key(p) for p in await collect_presences(b, 0.4, expect=1)],
                         [('available', bob + '/b')])   # only bob's own reflection

    async def test_request_to_offline_user(self):
        """RFC 6121 3.1.3: kept with its content, delivered after each
        initial presence until answered, one request per contact."""
        alice, apw = self.user(prefix='alice')
        bob, bpw = self.user(prefix='bob')
        a = await self.im_client(alice, apw, 'a', available=True)
        await self.settled(a)
        a.send_raw("<presence type='subscribe' to='%s' id='req1'><status>It is Alice</status>"
                   "<nick xmlns='%s'>Ally</nick></presence>" % (bob, NS_NICK))
        await take_pushes(a, 1)
        a.send_raw("<presence type='subscribe' to='%s' id='req2'/>" % bob)
        await self.settle(0.3)
        row = self.rows(bob)[alice]
        self.assertEqual(row[1:5], ('none', False, True, False))

        def check_request(p):
            x = p.xml
            self.assertEqual((pres_key(p), x.get('to'), x.get('id')),
                             (('subscribe', alice), bob, 'req1'), xml_str(p))
            self.assertEqual(x.findtext('{%s}status' % NS_CLIENT), 'It is Alice')
            self.assertEqual(x.findtext('{%s}nick' % NS_NICK), 'Ally')

        for attempt in range(2):
            b = await self.im_client(bob, bpw, 'b')
            self.assertEqual(items_of(await roster_get(b)), [])
            await b.no_message(0.1)
            self.assertEqual(await collect_presences(b, 0.3), [], 'nothing before presence')
            send_presence(b)
            got = await collect_presences(b, 0.5, expect=2)
            self.assertEqual([pres_key(p) for p in got],
                             [('available', bob + '/b'), ('subscribe', alice)])
            check_request(got[1])
            await b.close()
            await self.settle(0.2)
        b = await self.im_client(bob, bpw, 'b', available=True)
        check_request((await collect_presences(b, 0.5, expect=2))[-1])
        send_presence(b, 'subscribed', to=alice)
        await take_pushes(b, 1)
        self.assertEqual(self.rows(bob)[alice][1:5], ('from', False, False, True))
        await b.close()
        await self.settle(0.2)
        b = await self.im_client(bob, bpw, 'b', available=True)
        self.assertEqual([pres_key(p) for p in await collect_presences(b, 0.5, expect=1)],
                         [('available', bob + '/b')])

    async def test_request_reaches_available_resources(self):
        alice, apw = self.user(prefix='alice')
        bob, bpw = self.user(prefix='bob')
        a = await self.im_client(alice, apw, 'a')
        b1 = await self.im_client(bob, bpw, 'one', available=True)
        b2 = await self.im_client(bob, bpw, 'two', roster=True)
        await self.settled(a, b1, b2)
        send_presence(a, 'subscribe', to=bob)
        self.assertEqual([pres_key(p) for p in await collect_presences(b1, 0.4, expect=1)],
                         [('subscribe', alice)])
        self.assertEqual(await collect_presences(b2, 0.1), [])
        # the other resource gets it once it becomes available
        send_presence(b2)
        keys = [pres_key(p) for p in await collect_presences(b2, 0.4, expect=3)]
        self.assertEqual(sorted(keys), sorted([('available', bob + '/two'),
                                               ('available', bob + '/one'),
                                               ('subscribe', alice)]))
        self.assertEqual(keys[-1], ('subscribe', alice))

    async def test_pending_only_record(self):
        """A request from a contact that is not a roster item stays out of
        the roster; its cancellation removes every trace (3.3.3)."""
        alice, apw = self.user(prefix='alice')
        bob, bpw = self.user(prefix='bob')
        a = await self.im_client(alice, apw, 'a')
        send_presence(a, 'subscribe', to=bob)
        await take_pushes(a, 1)
        await self.settle(0.2)
        self.assertEqual(self.rows(bob)[alice][1:5], ('none', False, True, False))
        send_presence(a, 'unsubscribe', to=bob)
        self.assertEqual(items_of((await take_pushes(a, 1))[0]), [(bob, None, 'none', None, [])])
        await self.settle(0.2)
        self.assertNotIn(alice, self.rows(bob))
        b = await self.im_client(bob, bpw, 'b', available=True)
        self.assertEqual([pres_key(p) for p in await collect_presences(b, 0.4, expect=1)],
                         [('available', bob + '/b')])

    async def test_approval_creates_item(self):
        """Approving a request from a non-item adds the contact with 'from'."""
        alice, apw = self.user(prefix='alice')
        bob, bpw = self.user(prefix='bob')
        a = await self.im_client(alice, apw, 'a', available=True)
        b = await self.im_client(bob, bpw, 'b', available=True)
        await self.settled(a, b)
        send_presence(a, 'subscribe', to=bob)
        await take_pushes(a, 1)
        await collect_presences(b, 0.4, expect=1)
        send_presence(b, 'subscribed', to=alice)
        self.assertEqual(items_of((await take_pushes(b, 1))[0]), [(alice, None, 'from', None, [])])
        self.assertEqual(self.rows(bob)[alice], (None, 'from', False, False, True, []))

    async def test_remove_cancels_both_ways(self):
        """RFC 6121 2.5.2: removing an item unsubscribes and cancels."""
        alice, apw = self.user(prefix='alice')
        bob, bpw = self.user(prefix='bob')
        self.seed(alice, bob, 'Both')
        self.seed(bob, alice, 'Both')
        a = await self.im_client(alice, apw, 'a', available=True)
        b = await self.im_client(bob, bpw, 'b', available=True)
        await self.settled(a, b)
        self.assertEqual((await roster_set(a, bob, subscription='remove'))['type'], 'result')
        self.assertEqual(items_of((await take_pushes(a, 1))[0]),
                         [(bob, None, 'remove', None, [])])
        got = await collect_presences(b, 0.6, expect=3)
        self.assertEqual([pres_key(p) for p in got],
                         [('unavailable', alice + '/a'), ('unsubscribed', alice),
                          ('unsubscribe', alice)])
        self.assertEqual([items_of(p) for p in await take_pushes(b, 2)],
                         [[(alice, None, 'from', None, [])], [(alice, None, 'none', None, [])]])
        self.assertEqual([pres_key(p) for p in await collect_presences(a, 0.3, expect=1)],
                         [('unavailable', bob + '/b')])
        self.assertNotIn(bob, self.rows(alice))
        self.assertEqual(self.rows(bob)[alice][1:5], ('none', False, False, True))

    async def test_self_and_remote(self):
        alice, apw = self.user(prefix='alice')
        a = await self.im_client(alice, apw, 'a', available=True)
        await self.settled(a)
        # no subscription to oneself
        send_presence(a, 'subscribe', to=alice)
        await take_pushes(a, 0)
        self.assertEqual(await collect_presences(a, 0.3), [])
        self.assertEqual(self.rows(alice), {})
        # a contact elsewhere: stored, then routed (no federation here)
        send_presence(a, 'subscribe', to='Romeo@Remote.Example/orchard')
        self.assertEqual(items_of((await take_pushes(a, 1))[0]),
                         [('romeo@remote.example', None, 'none', 'subscribe', [])])
        self.assertEqual(self.rows(alice)['romeo@remote.example'][1:5],
                         ('none', True, False, True))

    async def test_error_presence_is_not_a_subscription(self):
        alice, apw = self.user(prefix='alice')
        bob, bpw = self.user(prefix='bob')
        a = await self.im_client(alice, apw, 'a', available=True)
        b = await self.im_client(bob, bpw, 'b', available=True)
        await self.settled(a, b)
        a.send_raw("<presence type='error' to='%s'><error type='cancel'>"
                   "<not-allowed xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>"
                   "</presence>" % bob)
        await take_pushes(a, 0)
        await take_pushes(b, 0)
        self.assertEqual(self.rows(alice), {})
        self.assertEqual(self.rows(bob), {})


class BroadcastTests(PresenceTestCase):

    async def test_broadcast_to_subscribers_only(self):
        alice, apw = self.user(prefix='alice')
        bob, bpw = self.user(prefix='bob')
        carol, cpw = self.user(prefix='carol')
        dave, dpw = self.user(prefix='dave')
        self.seed(alice, bob, 'From')
        self.seed(bob, alice, 'To')
        self.seed(alice, carol, 'To')          # carol sees nothing of alice
        self.seed(carol, alice, 'From')
        self.seed(alice, dave, 'None+PI')
        self.seed(dave, alice, 'None+PO')
        b = await self.im_client(bob, bpw, 'b', available=True)
        c = await self.im_client(carol, cpw, 'c', available=True)
        d = await self.im_client(dave, dpw, 'd', available=True)
        a2 = await self.im_client(alice, apw, 'a2', available=True)
        a = await self.im_client(alice, apw, 'a')
        await self.settled(a, a2, b, c, d)
        send_presence(a, show='away', status='Out to lunch', priority=3)
        # contacts get it at their bare JID, own resources at their full JID;
        # the probe of carol is answered to alice's bare JID (all resources)
        for client, want, to in ((b, [('available', alice + '/a')], bob),
                                 (a2, [('available', alice + '/a'), ('available', carol + '/c')],
                                  alice + '/a2'),
                                 (c, [], None), (d, [], None)):
            got = await collect_presences(client, 0.4, expect=len(want))
            self.assertEqual(sorted(pres_key(p) for p in got), sorted(want), client.boundjid)
            for p in got:
                x = p.xml
                if x.get('from') != alice + '/a':
                    continue
                self.assertEqual(x.get('to'), to, xml_str(p))
                self.assertEqual([(e.tag, e.text) for e in x],
                                 [('{%s}show' % NS_CLIENT, 'away'),
                                  ('{%s}status' % NS_CLIENT, 'Out to lunch'),
                                  ('{%s}priority' % NS_CLIENT, '3')], xml_str(p))
        # the sender hears itself, its other resource, carol (probed) and
        # the request dave left while it was away
        got = await collect_presences(a, 0.1)
        self.assertEqual(sorted(pres_key(p) for p in got),
                         sorted([('available', alice + '/a'), ('available', alice + '/a2'),
                                 ('available', carol + '/c'), ('subscribe', dave)]))
        # an update is broadcast the same way, and so is unavailable
        send_presence(a, status='Back')
        self.assertEqual([pres_key(p) for p in await collect_presences(b, 0.4, expect=1)],
                         [('available', alice + '/a')])
        send_presence(a, 'unavailable', status='Gone')
        got = await collect_presences(b, 0.4, expect=1)
        self.assertEqual([pres_key(p) for p in got], [('unavailable', alice + '/a')])
        self.assertEqual(got[0].xml.findtext('{%s}status' % NS_CLIENT), 'Gone')
        self.assertEqual([pres_key(p) for p in await collect_presences(a2, 0.4, expect=2)],
                         [('available', alice + '/a'), ('unavailable', alice + '/a')])
        self.assertEqual(await collect_presences(c, 0.1), [])
        # a session that is no longer available goes away quietly
        await a.close()
        self.assertEqual(await collect_presences(b), [])

    async def test_probes_at_login(self):
        """RFC 6121 4.2.2, 4.3: initial presence probes the contacts the
        account is subscribed to; each answers with the last presence of
        each available resource, unavailable when offline, unsubscribed
        when it does not grant the subscription."""
        alice, apw = self.user(prefix='alice')
        bob, bpw = self.user(prefix='bob')
        eve, epw = self.user(prefix='eve')
        dave, dpw = self.user(prefix='dave')
        self.seed(alice, bob, 'To')
        self.seed(bob, alice, 'From')
        self.seed(alice, eve, 'Both')
        self.seed(eve, alice, 'Both')
        self.seed(alice, dave, 'To')           # dave disagrees
        self.seed(dave, alice, 'None')
        b1 = await self.im_client(bob, bpw, 'b1', available=True, show='dnd',
                                  status='In a meeting', priority=7)
        b2 = await self.im_client(bob, bpw, 'b2', available=True, status='phone', priority=-1)
        await self.im_client(bob, bpw, 'b3')    # connected, not available
        d = await self.im_client(dave, dpw, 'd', available=True)
        await self.settled(b1, b2, d)
        start = time.monotonic()
        a = await self.im_client(alice, apw, 'a', available=True)
        got = await collect_presences(a, 0.8, expect=5)
        keys = sorted(pres_key(p) for p in got)
        self.assertEqual(keys, sorted([('available', alice + '/a'),
                                       ('available', bob + '/b1'),
                                       ('available', bob + '/b2'),
                                       ('unavailable', eve),
                                       ('unsubscribed', dave)]), [xml_str(p) for p in got])
        by_from = {p.xml.get('from'): p.xml for p in got}
        self.assertEqual([(e.tag.split('}')[1], e.text) for e in by_from[bob + '/b1']],
                         [('show', 'dnd'), ('status', 'In a meeting'), ('priority', '7')])
        self.assertEqual([(e.tag.split('}')[1], e.text) for e in by_from[bob + '/b2']],
                         [('status', 'phone'), ('priority', '-1')])
        self.assertEqual(len(by_from[eve]), 0)
        self.assertLess(time.monotonic() - start, 5 * self.server.run.slow)
        # dave's denial resynchronizes alice's roster (A.3.4: To -> None)
        self.assertEqual(items_of((await take_pushes(a, 1))[0]), [(dave, None, 'none', None, [])])
        self.assertEqual(self.rows(alice)[dave][1:3], ('none', False))
        # bob and eve see nothing; bob is not subscribed to alice
        self.assertEqual(await collect_presences(b1, 0.1), [])

    async def test_unavailable_on_logout_and_drop(self):
        alice, apw = self.user(prefix='alice')
        bob, bpw = self.user(prefix='bob')
        self.seed(alice, bob, 'Both')
        self.seed(bob, alice, 'Both')
        b = await self.im_client(bob, bpw, 'b', available=True)
        for how in ('disconnect', 'drop'):
            with self.subTest(how=how):
                a = await self.im_client(alice, apw, 'a', available=True)
                await self.settled(a, b)
                if how == 'disconnect':
                    await a.close()
                else:
                    a.transport.abort()    # the TCP connection just breaks
                got = await collect_presences(b, 1.0, expect=1)
                self.assertEqual([pres_key(p) for p in got], [('unavailable', alice + '/a')])
                self.assertEqual((got[0].xml.get('to'), len(got[0].xml)), (bob, 0))

    async def test_directed_presence(self):
        """RFC 6121 4.6: directed presence reaches non-subscribers, and
        they hear the unavailable at logout unless told already."""
        alice, apw = self.user(prefix='alice')
        carol, cpw = self.user(prefix='carol')
        dave, dpw = self.user(prefix='dave')
        bob, bpw = self.user(prefix='bob')
        self.seed(alice, bob, 'From')
        self.seed(bob, alice, 'To')
        c = await self.im_client(carol, cpw, 'c', available=True)
        d = await self.im_client(dave, dpw, 'd', available=True)
        b = await self.im_client(bob, bpw, 'b', available=True)
        a = await self.im_client(alice, apw, 'a', available=True)
        await self.settled(a, b, c, d)
        send_presence(a, to=carol, status='hi carol')
        send_presence(a, to=dave + '/d', status='hi dave')
        send_presence(a, to=bob, status='hi bob')
        got = await collect_presences(c, 0.4, expect=1)
        self.assertEqual([pres_key(p) for p in got], [('available', alice + '/a')])
        self.assertEqual((got[0].xml.get('to'), got[0].xml.findtext('{%s}status' % NS_CLIENT)),
                         (carol, 'hi carol'))
        self.assertEqual([pres_key(p) for p in await collect_presences(d, 0.1, expect=1)],
                         [('available', alice + '/a')])
        self.assertEqual([pres_key(p) for p in await collect_presences(b, 0.1, expect=1)],
                         [('available', alice + '/a')])
        # directed unavailable ends it for dave
        send_presence(a, 'unavailable', to=dave + '/d')
        self.assertEqual([pres_key(p) for p in await collect_presences(d, 0.4, expect=1)],
                         [('unavailable', alice + '/a')])
        await a.close()
        got = await collect_presences(c, 0.8, expect=1)
        self.assertEqual([(pres_key(p), p.xml.get('to')) for p in got],
                         [(('unavailable', alice + '/a'), carol)])
        self.assertEqual(await collect_presences(d, 0.1), [])
        # bob is a subscriber: exactly one unavailable
        self.assertEqual([pres_key(p) for p in await collect_presences(b, 0.1, expect=1)],
                         [('unavailable', alice + '/a')])

    async def test_directed_before_initial_presence(self):
        alice, apw = self.user(prefix='alice')
        carol, cpw = self.user(prefix='carol')
        c = await self.im_client(carol, cpw, 'c', available=True)
        a = await self.im_client(alice, apw, 'a')
        await self.settled(a, c)
        send_presence(a, to=carol)
        self.assertEqual([pres_key(p) for p in await collect_presences(c, 0.4, expect=1)],
                         [('available', alice + '/a')])
        a.transport.abort()
        self.assertEqual([pres_key(p) for p in await collect_presences(c, 0.8, expect=1)],
                         [('unavailable', alice + '/a')])

    async def test_own_resources(self):
        alice, apw = self.user(prefix='alice')
        a1 = await self.im_client(alice, apw, 'one', available=True, status='first')
        a2 = await self.im_client(alice, apw, 'two')
        await self.settled(a1, a2)
        send_presence(a2, status='second', priority=1)
        got = await collect_presences(a2, 0.4, expect=2)
        self.assertEqual([pres_key(p) for p in got],
                         [('available', alice + '/two'), ('available', alice + '/one')])
        self.assertEqual([p.xml.findtext('{%s}status' % NS_CLIENT) for p in got],
                         ['second', 'first'])
        self.assertEqual([p.xml.get('to') for p in got], [alice + '/two'] * 2)
        got = await collect_presences(a1, 0.4, expect=1)
        self.assertEqual([(pres_key(p), p.xml.get('to')) for p in got],
                         [(('available', alice + '/two'), alice + '/one')])
        send_presence(a2, 'unavailable')
        self.assertEqual([pres_key(p) for p in await collect_presences(a1, 0.4, expect=1)],
                         [('unavailable', alice + '/two')])
        self.assertEqual([pres_key(p) for p in await collect_presences(a2, 0.1, expect=1)],
                         [('unavailable', alice + '/two')])

    async def test_probe_from_client(self):
        alice, apw = self.user(prefix='alice')
        bob, bpw = self.user(prefix='bob')
        carol, cpw = self.user(prefix='carol')
        self.seed(alice, bob, 'From')
        self.seed(bob, alice, 'To')
        a = await self.im_client(alice, apw, 'a', available=True, status='here')
        b = await self.im_client(bob, bpw, 'b')
        c = await self.im_client(carol, cpw, 'c')
        await self.settled(a, b, c)
        send_presence(b, 'probe', to=alice)
        got = await collect_presences(b, 0.4, expect=1)
        self.assertEqual([(pres_key(p), p.xml.get('to')) for p in got],
                         [(('available', alice + '/a'), bob + '/b')])
        self.assertEqual(got[0].xml.findtext('{%s}status' % NS_CLIENT), 'here')
        # carol is not subscribed: alice's server answers unsubscribed, which
        # changes nothing on carol's side and so is not delivered (A.3.4)
        send_presence(c, 'probe', to=alice)
        self.assertEqual(await collect_presences(c), [])
        self.assertEqual(self.rows(carol), {})
        # alice's clients never see probes
        self.assertEqual(await collect_presences(a, 0.1), [])


class ScaleTests(PresenceTestCase):
    """A login with 1000 contacts, 500 of them online on this server."""

    CONTACTS = 1000
    ONLINE = 500

    async def test_login_with_large_roster(self):
        alice, apw = self.user(prefix='alice')
        node, host = alice.split('@')
        prefix = 'big%s_' % node
        # contacts share alice's credentials; both ways subscribed
        self.db("INSERT INTO users (host, username, iterations, salt, sha1_stored_key, "
                "sha1_server_key, sha256_stored_key, sha256_server_key) "
                "SELECT host, '%s' || i, iterations, salt, sha1_stored_key, "
                "sha1_server_key, sha256_stored_key, sha256_server_key "
                "FROM users, generate_series(1, %d) i WHERE host = '%s' AND username = '%s'"
                % (prefix, self.CONTACTS, host, node))
        self.db("INSERT INTO roster (host, username, contact, subscription) "
                "SELECT '%s', '%s', '%s' || i || '@%s', 'both' FROM generate_series(1, %d) i"
                % (host, node, prefix, host, self.CONTACTS))
        self.db("INSERT INTO roster (host, username, contact, subscription) "
                "SELECT '%s', '%s' || i, '%s', 'both' FROM generate_series(1, %d) i"
                % (host, prefix, alice, self.CONTACTS))
        raws = [self.raw() for _ in range(self.ONLINE)]

        def online(i):
            r = raws[i]
            r.login('%s%d' % (prefix, i + 1), apw, 'r')
            r.send('<presence/>')
            r.read_until(lambda c: any(e.tag == '{%s}presence' % NS_CLIENT for e in c.elements))
        await asyncio.gather(*(self.in_thread(online, i) for i in range(self.ONLINE)))
        for r in raws:
            r.read_until(lambda c: False, timeout=0.01)
            r.mark = len(r.elements)
        me = self.raw()
        await self.in_thread(me.login, node, apw, 'a')
        want = 1 + self.ONLINE + (self.CONTACTS - self.ONLINE)

        def presences(c):
            return [e for e in c.elements if e.tag == '{%s}presence' % NS_CLIENT]

        def login():
            t0 = time.monotonic()
            me.send('<presence/>')
            me.read_until(lambda c: len(presences(c)) >= want, timeout=10)
            return time.monotonic() - t0
        elapsed = await self.in_thread(login)
        got = presences(me)
        self.assertEqual(len(got), want)
        kinds = sorted((e.get('type') or 'available') for e in got)
        self.assertEqual(kinds.count('available'), 1 + self.ONLINE)
        self.assertEqual(kinds.count('unavailable'), self.CONTACTS - self.ONLINE)
        froms = {e.get('from') for e in got if not e.get('type')}
        self.assertEqual(froms, {'%s%d@%s/r' % (prefix, i + 1, host)
                                 for i in range(self.ONLINE)} | {alice + '/a'})
        self.assertLess(elapsed, 1.0 * self.server.run.slow,
                        'all presences took %.2fs' % elapsed)

        # every online contact got alice's presence
        def heard(r):
            r.read_until(lambda c: any(e.get('from') == alice + '/a'
                                       for e in c.elements[r.mark:]), timeout=2)
            return [e.get('from') for e in r.elements[r.mark:]]
        for r in raws:
            self.assertIn(alice + '/a', await self.in_thread(heard, r))


class ReloadTests(PresenceTestCase):
    """Reloading the modules keeps what sessions told them."""

    async def test_reload_roster(self):
        srv = self.parley(**IM_SERVER)
        alice, apw = self.user(server=srv, prefix='alice')
        bob, bpw = self.user(server=srv, prefix='bob')
        self.seed(alice, bob, 'Both', server=srv)
        self.seed(bob, alice, 'Both', server=srv)
        a = await self.im_client(alice, apw, 'a', server=srv, available=True)
        b = await self.im_client(bob, bpw, 'b', server=srv, available=True, roster=False)
        await self.settled(a, b)
        await self.in_thread(srv.ctl, 'module', 'reload', 'roster')
        # alice still gets pushes
        self.assertEqual((await roster_set(a, 'x@example.com'))['type'], 'result')
        self.assertEqual(items_of((await take_pushes(a, 1))[0]),
                         [('x@example.com', None, 'none', None, [])])
        # bob's presence still reaches alice, and so does his logout
        send_presence(b, status='after reload')
        self.assertEqual([pres_key(p) for p in await collect_presences(a, 0.4, expect=1)],
                         [('available', bob + '/b')])
        await b.close()
        self.assertEqual([pres_key(p) for p in await collect_presences(a, 0.8, expect=1)],
                         [('unavailable', bob + '/b')])

    async def test_reload_presence_keeps_directed(self):
        alice, apw = self.user(prefix='alice')
        carol, cpw = self.user(prefix='carol')
        c = await self.im_client(carol, cpw, 'c', available=True)
        a = await self.im_client(alice, apw, 'a', available=True)
        await self.settled(a, c)
        send_presence(a, to=carol)
        self.assertEqual([pres_key(p) for p in await collect_presences(c, 0.4, expect=1)],
                         [('available', alice + '/a')])
        await self.in_thread(self.server.ctl, 'module', 'reload', 'presence')
        await a.close()
        self.assertEqual([pres_key(p) for p in await collect_presences(c, 0.8, expect=1)],
                         [('unavailable', alice + '/a')])
