"""Integration tests: PostgreSQL going away and coming back under a
running parleyd."""

import re
import time
import xml.etree.ElementTree as ET

from harness import NS_SASL, ParleyTestCase, wait_until


def sasl_condition(el):
    return [c.tag.split('}', 1)[1] for c in el if c.tag != '{%s}text' % NS_SASL]


class DatabaseOutageTests(ParleyTestCase):

    def status_db(self, srv):
        out = srv.ctl('status').stdout
        m = re.search(r'^database: (\S+)$', out, re.M)
        return m.group(1) if m else None

    def plain_login(self, srv, jid, pw):
        r = self.raw(srv)
        r.connect_tls()
        return r.auth_plain(jid.split('@')[0], pw)

    async def test_outage_and_recovery(self):
        srv = self.parley(limits={'auth_failures': '1000'})
        pg = self.run_ctx.pg
        alice, apw = self.user(srv, prefix='alice')
        bob, bpw = self.user(srv, prefix='bob')
        carol, cpw = self.user(srv, prefix='carol')
        a = await self.online(alice, apw, server=srv, resource='a')
        b = await self.online(bob, bpw, server=srv, resource='b')
        try:
            await self.in_thread(pg.stop)
            # parleyd notices (the status turns "down")
            deadline = time.monotonic() + 10 * self.run_ctx.slow
            state = None
            while time.monotonic() < deadline:
                state = await self.in_thread(self.status_db, srv)
                if state == 'down':
                    break
                await self.settle(0.2)
            self.assertEqual(state, 'down')

            # new logins fail with temporary-auth-failure, both mechanisms
            el = await self.in_thread(self.plain_login, srv, carol, cpw)
            self.assertEqual(el.tag, '{%s}failure' % NS_SASL, ET.tostring(el, encoding='unicode'))
            self.assertEqual(sasl_condition(el), ['temporary-auth-failure'])
            c = await self.client(carol, cpw, server=srv, wait=False)
            failure = await c.wait_auth_failure()
            self.assertEqual(failure['condition'], 'temporary-auth-failure')

            # the server is up and existing sessions go on
            self.assertTrue(srv.running())
            a.send_chat(bob + '/b', 'db is down')
            m = await b.next_message()
            self.assertEqual((m['from'].full, m['body']), (alice + '/a', 'db is down'))
            res = await b.iq('get', 'localhost', "<ping xmlns='urn:xmpp:ping'/>")
            self.assertEqual(res['type'], 'result')
        finally:
            if not pg.running:
                await self.in_thread(pg.start)

        # within a few seconds of the database's return, logins work again
        deadline = time.monotonic() + 15 * self.run_ctx.slow
        el = None
        while time.monotonic() < deadline:
            el = await self.in_thread(self.plain_login, srv, carol, cpw)
            if el.tag == '{%s}success' % NS_SASL:
                break
            await self.settle(0.5)
        self.assertEqual(el.tag, '{%s}success' % NS_SASL,
                         'no login after the database came back: %s\n%s'
                         % (ET.tostring(el, encoding='unicode'), srv.log_tail(30)))
        self.assertEqual(await self.in_thread(self.status_db, srv), 'up')
        c2 = await self.client(carol, cpw, server=srv, resource='back')
        self.assertEqual(c2.boundjid.full, carol + '/back')
        b.send_chat(alice + '/a', 'db is back')
        m = await a.next_message()
        self.assertEqual(m['body'], 'db is back')

    async def test_start_without_database(self):
        # parleyd starts while PostgreSQL is down, and connects once it is up
        pg = self.run_ctx.pg
        srv = self.parley(start=False, limits={'auth_failures': '1000'})
        alice, apw = self.user(srv)
        try:
            await self.in_thread(pg.stop)
            await self.in_thread(srv.start, False)
            self.assertEqual(await self.in_thread(self.status_db, srv), 'down')
            el = await self.in_thread(self.plain_login, srv, alice, apw)
            self.assertEqual(sasl_condition(el), ['temporary-auth-failure'])
        finally:
            if not pg.running:
                await self.in_thread(pg.start)
        await self.in_thread(wait_until, srv.db_up, 15 * self.run_ctx.slow, 0.2,
                             '"database: up" after PostgreSQL started')
        c = await self.client(alice, apw, server=srv)
        self.assertEqual(c.boundjid.bare, alice)
