"""Integration tests: offline messages (mod_offline; XEP-0160, XEP-0203,
RFC 6121 8.5.2)."""

import asyncio
import calendar
import os
import re
import subprocess
import time
import xml.etree.ElementTree as ET

from harness import DEFAULT_MODULES, NS_CLIENT, ParleyTestCase, error_of, xml_str

NS_DELAY = 'urn:xmpp:delay'
NS_DISCO_INFO = 'http://jabber.org/protocol/disco#info'
MODULES = DEFAULT_MODULES + ('offline',)
STAMP_RX = re.compile(r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$')


def node(jid):
    return jid.split('@', 1)[0]


class TableLock:
    """An open psql session holding an exclusive lock on the table offline
    of a server's database. The store statement in flight waits for it, so
    the messages that arrive meanwhile queue up and go to the database
    together once the lock is released."""

    def __init__(self, server):
        pg = server.run.pg
        self.proc = subprocess.Popen(
            [os.path.join(pg.bindir, 'psql'), '-X', '-q', '-t', '-A', '-v', 'ON_ERROR_STOP=1',
             '-d', pg.conninfo(server.dbname)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.proc.stdin.write("BEGIN; LOCK TABLE offline IN EXCLUSIVE MODE; SELECT 'locked';\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if line.strip() != 'locked':
            self.release()
            raise RuntimeError('cannot lock the table offline: %r' % line)

    def release(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write('COMMIT;\n')
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()


async def login(case, jid, password, server=None, resource=None, priority=None):
    """A session that sends initial presence and keeps every stanza it
    receives after it (unlike ParleyTestCase.online, which drains them)."""
    c = await case.client(jid, password, server=server, resource=resource)
    c.available(priority)
    return c


class OfflineHelpers:
    """Helpers shared by the test classes below."""

    def stored(self, server, user):
        """The stored stanzas of user, oldest first."""
        out = server.run.pg.psql(
            "SELECT stanza FROM offline WHERE host = 'localhost' AND username = '%s' "
            "ORDER BY id" % node(user), dbname=server.dbname)
        return [line for line in out.split('\n') if line]

    async def wait_stored(self, server, user, n, timeout=10):
        """Waits until exactly n messages of user are stored."""
        deadline = time.monotonic() + timeout * server.run.slow
        while True:
            rows = await self.in_thread(self.stored, server, user)
            if len(rows) == n:
                return rows
            if time.monotonic() > deadline:
                raise AssertionError('%d stored messages for %s, expected %d'
                                     % (len(rows), user, n))
            await asyncio.sleep(0.05)

    def send(self, client, to, body, type_='chat', id_=None):
        m = client.make_message(mto=to, mbody=body, mtype=type_)
        if id_:
            m['id'] = id_
        m.send()
        return m

    def assertDelayed(self, m, frm, to, body, type_='chat', sent_after=None):
        self.assertEqual((m['from'].full, m['to'].bare, m['type'], m['body']),
                         (frm, to, type_, body), xml_str(m))
        delays = m.xml.findall('{%s}delay' % NS_DELAY)
        self.assertEqual(len(delays), 1, xml_str(m))
        d = delays[0]
        self.assertEqual(d.get('from'), 'localhost', xml_str(m))
        stamp = d.get('stamp')
        self.assertRegex(stamp, STAMP_RX)
        t = calendar.timegm(time.strptime(stamp, '%Y-%m-%dT%H:%M:%SZ'))
        if sent_after is not None:
            self.assertGreaterEqual(t, int(sent_after) - 1, stamp)
            self.assertLessEqual(t, time.time() + 1, stamp)

    async def assertServiceUnavailable(self, client, frm, id_, text=None):
        e = await client.next_message()
        self.assertEqual((e['type'], e['id'], e['from'].full), ('error', id_, frm), xml_str(e))
        self.assertEqual(error_of(e)[:2], ('cancel', ['service-unavailable']), xml_str(e))
        if text is not None:
            self.assertEqual(error_of(e)[2], text, xml_str(e))


class OfflineTests(OfflineHelpers, ParleyTestCase):
    SHARED_SERVER = {'modules': MODULES, 'limits': {'auth_failures': '1000'}}

    async def test_hundred_messages_delivered_in_order(self):
        alice, apw = self.user(prefix='alice')
        bob, bpw = self.user(prefix='bob')
        a = await self.online(alice, apw, resource='a')
        t0 = time.time()
        bodies = ['offline message %03d <&> ü' % i for i in range(100)]
        for b in bodies:
            self.send(a, bob, b)
        rows = await self.wait_stored(self.server, bob, 100)
        self.assertIn('<delay xmlns="urn:xmpp:delay"', rows[0])
        await a.no_message()
        b = await login(self, bob, bpw, resource='b')
        for body in bodies:
            m = await b.next_message()
            self.assertDelayed(m, alice + '/a', bob, body, sent_after=t0)
        await b.no_message()
        await self.wait_stored(self.server, bob, 0)

    async def test_negative_priority_gets_nothing_until_non_negative(self):
        alice, apw = self.user(prefix='alice')
        bob, bpw = self.user(prefix='bob')
        a = await self.online(alice, apw, resource='a')
        for i in range(3):
            self.send(a, bob, 'hello %d' % i, type_='normal')
        await self.wait_stored(self.server, bob, 3)
        b = await login(self, bob, bpw, resource='b', priority=-1)
        await b.no_message(1.0)
        self.assertEqual(len(await self.in_thread(self.stored, self.server, bob)), 3)
        b.available(priority=-5)
        await b.no_message(0.5)
        b.available(priority=2)
        for i in range(3):
            m = await b.next_message()
            self.assertDelayed(m, alice + '/a', bob, 'hello %d' % i, type_='normal')
        await self.wait_stored(self.server, bob, 0)
        await b.no_message()

    async def test_second_session_gets_no_duplicates(self):
        alice, apw = self.user(prefix='alice')
        bob, bpw = self.user(prefix='bob')
        a = await self.online(alice, apw, resource='a')
        self.send(a, bob, 'only once')
        await self.wait_stored(self.server, bob, 1)
        b1 = await login(self, bob, bpw, resource='one')
        m = await b1.next_message()
        self.assertDelayed(m, alice + '/a', bob, 'only once')
        await self.wait_stored(self.server, bob, 0)
        b2 = await login(self, bob, bpw, resource='two')
        await b2.no_message()
        await b1.no_message(0.1)

    async def test_message_to_unknown_account_bounces(self):
        alice, apw = self.user(prefix='alice')
        a = await self.online(alice, apw, resource='a')
        ghost = 'nobody-%d@localhost' % self.server.n
        self.send(a, ghost, 'anyone there?', id_='ghost1')
        await self.assertServiceUnavailable(a, ghost, 'ghost1')
        self.assertEqual(self.stored(self.server, ghost), [])
        await a.no_message()

    async def test_groupchat_headline_error_not_stored(self):
        alice, apw = self.user(prefix='alice')
        bob, bpw = self.user(prefix='bob')
        a = await self.online(alice, apw, resource='a')
        self.send(a, bob, 'group', type_='groupchat', id_='gc1')
        await self.assertServiceUnavailable(a, bob, 'gc1')
        self.send(a, bob, 'news', type_='headline', id_='hl1')
        err = a.make_message(mto=bob, mtype='error')
        err['id'] = 'er1'
        err['error']['condition'] = 'item-not-found'
        err.send()
        chatstate = a.make_message(mto=bob, mtype='chat')
        chatstate.xml.append(ET.Element('{http://jabber.org/protocol/chatstates}active'))
        chatstate.send()
        self.send(a, bob, 'a real one', id_='c1')
        rows = await self.wait_stored(self.server, bob, 1)
        self.assertIn('a real one', rows[0])
        await asyncio.sleep(0.3)
        self.assertEqual(len(await self.in_thread(self.stored, self.server, bob)), 1)
        await a.no_message()

    async def test_disco_feature(self):
        alice, apw = self.user(prefix='alice')
        a = await self.online(alice, apw)
        r = await a.iq('get', 'localhost', "<query xmlns='%s'/>" % NS_DISCO_INFO)
        feats = [f.get('var') for f in r.xml.iter('{%s}feature' % NS_DISCO_INFO)]
        self.assertIn('msgoffline', feats)


class OfflineQuotaTests(ParleyTestCase):
    async def test_quota_reached_bounces(self):
        srv = self.parley(modules=MODULES, extra_config='module offline { quota 5; }')
        alice, apw = self.user(srv, prefix='alice')
        bob, bpw = self.user(srv, prefix='bob')
        a = await self.online(alice, apw, server=srv, resource='a')
        for i in range(6):
            m = a.make_message(mto=bob, mbody='q%d' % i, mtype='chat')
            m['id'] = 'q%d' % i
            m.send()
        e = await a.next_message()
        self.assertEqual((e['type'], e['id'], e['from'].full), ('error', 'q5', bob), xml_str(e))
        self.assertEqual(error_of(e), ('cancel', ['service-unavailable'],
                                       'offline storage is full'), xml_str(e))
        await a.no_message()
        out = srv.run.pg.psql("SELECT stanza FROM offline WHERE username = '%s' ORDER BY id"
                              % node(bob), dbname=srv.dbname)
        rows = [r for r in out.split('\n') if r]
        self.assertEqual(len(rows), 5)
        for i, r in enumerate(rows):
            self.assertIn('<body>q%d</body>' % i, r)
        b = await login(self, bob, bpw, server=srv, resource='b')
        got = [(await b.next_message())['body'] for _ in range(5)]
        self.assertEqual(got, ['q%d' % i for i in range(5)])
        await b.no_message()

    async def test_survives_module_reload(self):
        srv = self.parley(modules=MODULES)
        alice, apw = self.user(srv, prefix='alice')
        bob, bpw = self.user(srv, prefix='bob')
        a = await self.online(alice, apw, server=srv, resource='a')
        a.send_chat(bob, 'kept across a reload')
        sql = "SELECT count(*) FROM offline WHERE username = '%s'" % node(bob)
        deadline = time.monotonic() + 10
        while srv.run.pg.psql(sql, dbname=srv.dbname).strip() != '1':
            self.assertLess(time.monotonic(), deadline, 'message not stored')
            await asyncio.sleep(0.05)
        await self.in_thread(srv.ctl, 'module', 'reload', 'offline')
        b = await login(self, bob, bpw, server=srv, resource='b')
        m = await b.next_message()
        self.assertEqual((m['from'].full, m['body']), (alice + '/a', 'kept across a reload'))
        await a.no_message()

    async def test_survives_sigkill(self):
        srv = self.parley(modules=MODULES)
        alice, apw = self.user(srv, prefix='alice')
        bob, bpw = self.user(srv, prefix='bob')
        a = await self.online(alice, apw, server=srv, resource='a')
        for i in range(3):
            m = a.make_message(mto=bob, mbody='before the crash %d' % i, mtype='chat')
            m.send()
        sql = "SELECT count(*) FROM offline WHERE username = '%s'" % node(bob)
        deadline = time.monotonic() + 10
        while srv.run.pg.psql(sql, dbname=srv.dbname).strip() != '3':
            self.assertLess(time.monotonic(), deadline, 'messages not stored')
            await asyncio.sleep(0.05)
        srv.kill9()
        await a.wait_gone()
        srv.start()
        b = await login(self, bob, bpw, server=srv, resource='b')
        for i in range(3):
            m = await b.next_message()
            self.assertEqual((m['from'].full, m['body']),
                             (alice + '/a', 'before the crash %d' % i), xml_str(m))
            self.assertIsNotNone(m.xml.find('{%s}delay' % NS_DELAY), xml_str(m))
        await b.no_message()
        deadline = time.monotonic() + 10
        while srv.run.pg.psql(sql, dbname=srv.dbname).strip() != '0':
            self.assertLess(time.monotonic(), deadline, 'delivered messages not deleted')
            await asyncio.sleep(0.05)


class OfflineBatchTests(OfflineHelpers, ParleyTestCase):
    """Messages that arrive while a store statement runs are stored together
    by the next one. TableLock holds the first statement (one message to
    carol) until the rest of a burst has reached the server, so the burst
    goes to the database in batches of known composition."""

    async def start_burst(self, srv, sender, primer_to):
        """Locks the table and sends one message that takes the lock's
        wait; returns the lock. Messages sent next queue up."""
        lock = await self.in_thread(TableLock, srv)
        self.addCleanup(lock.release)
        self.send(sender, primer_to, 'primer', id_='primer')
        return lock

    async def end_burst(self, sender, lock):
        """Waits until the server has handled every message sender sent
        (stanzas of one stream are handled in order), then releases."""
        await sender.iq('get', 'localhost', "<ping xmlns='urn:xmpp:ping'/>")
        await self.in_thread(lock.release)

    def count(self, srv, user=None):
        sql = 'SELECT count(*) FROM offline'
        if user:
            sql += " WHERE username = '%s'" % node(user)
        return int(srv.run.pg.psql(sql, dbname=srv.dbname).strip())

    async def wait_count(self, srv, n, user=None, timeout=10):
        deadline = time.monotonic() + timeout * srv.run.slow
        while (await self.in_thread(self.count, srv, user)) != n:
            self.assertLess(time.monotonic(), deadline, '%s stored messages never became %d'
                            % (user or 'all', n))
            await asyncio.sleep(0.05)

    async def test_burst_to_three_accounts_delivered_once_in_order(self):
        srv = self.parley(modules=MODULES)
        alice, apw = self.user(srv, prefix='alice')
        carol, cpw = self.user(srv, prefix='carol')
        rcpts = [self.user(srv, prefix='r%d' % k) for k in range(3)]
        a = await self.online(alice, apw, server=srv, resource='a')
        t0 = time.time()
        lock = await self.start_burst(srv, a, carol)
        # 330 after the primer: a full batch of 256, then the other 74
        sent = {jid: [] for jid, _ in rcpts}
        order = ['primer']
        for i in range(330):
            to = rcpts[i % 3][0]
            # quotes, backslashes, braces and commas must survive the
            # array literals the batch travels in
            body = 'burst %03d to %s <&> "{a,b}" \\ \\"' % (i, node(to))
            self.send(a, to, body)
            sent[to].append(body)
            order.append(body)
        await self.end_burst(a, lock)
        await self.wait_count(srv, 331)
        await a.no_message()
        self.assertRegex(srv.log(), r'stored 256 of 256 offline messages')
        # ids rise in arrival order across the accounts, too
        rows = (await self.in_thread(srv.run.pg.psql, 'SELECT stanza FROM offline ORDER BY id',
                                     dbname=srv.dbname)).split('\n')
        bodies = [ET.fromstring(r).findtext('body') for r in rows if r]
        self.assertEqual(bodies, order)
        for jid, pw in rcpts:
            r = await login(self, jid, pw, server=srv, resource='r')
            for body in sent[jid]:
                m = await r.next_message()
                self.assertDelayed(m, alice + '/a', jid, body, sent_after=t0)
            await r.no_message()
        await self.wait_count(srv, 1)
        self.assertEqual(await self.in_thread(self.count, srv, carol), 1)
        c = await login(self, carol, cpw, server=srv, resource='c')
        m = await c.next_message()
        self.assertDelayed(m, alice + '/a', carol, 'primer', sent_after=t0)
        await self.wait_count(srv, 0)
        await c.no_message(0.1)

    async def test_quota_reached_within_one_batch(self):
        srv = self.parley(modules=MODULES, extra_config='module offline { quota 5; }')
        alice, apw = self.user(srv, prefix='alice')
        bob, bpw = self.user(srv, prefix='bob')
        carol, _ = self.user(srv, prefix='carol')
        a = await self.online(alice, apw, server=srv, resource='a')
        lock = await self.start_burst(srv, a, carol)
        for i in range(9):
            self.send(a, bob, 'q%d' % i, id_='q%d' % i)
        await self.end_burst(a, lock)
        for i in range(5, 9):
            await self.assertServiceUnavailable(a, bob, 'q%d' % i, 'offline storage is full')
        await a.no_message()
        self.assertRegex(srv.log(), r'stored 5 of 9 offline messages')
        full = 'offline storage of %s is full (5 messages)' % node(bob)
        self.assertEqual(srv.log().count(full), 1)
        self.assertEqual(await self.in_thread(self.count, srv, bob), 5)
        b = await login(self, bob, bpw, server=srv, resource='b')
        for i in range(5):
            m = await b.next_message()
            self.assertEqual((m['id'], m['body']), ('q%d' % i, 'q%d' % i), xml_str(m))
            self.assertDelayed(m, alice + '/a', bob, 'q%d' % i)
        await b.no_message()
        await self.wait_count(srv, 0, bob)

    async def test_quota_counts_stored_messages_and_the_batch(self):
        srv = self.parley(modules=MODULES, extra_config='module offline { quota 5; }')
        alice, apw = self.user(srv, prefix='alice')
        bob, bpw = self.user(srv, prefix='bob')
        carol, _ = self.user(srv, prefix='carol')
        a = await self.online(alice, apw, server=srv, resource='a')
        for i in range(2):
            self.send(a, bob, 'early %d' % i)
        await self.wait_count(srv, 2, bob)
        lock = await self.start_burst(srv, a, carol)
        for i in range(6):
            self.send(a, bob, 'q%d' % i, id_='q%d' % i)
        await self.end_burst(a, lock)
        for i in range(3, 6):
            await self.assertServiceUnavailable(a, bob, 'q%d' % i, 'offline storage is full')
        await a.no_message()
        self.assertRegex(srv.log(), r'stored 3 of 6 offline messages')
        b = await login(self, bob, bpw, server=srv, resource='b')
        for body in ['early 0', 'early 1', 'q0', 'q1', 'q2']:
            m = await b.next_message()
            self.assertDelayed(m, alice + '/a', bob, body)
        await b.no_message()
        await self.wait_count(srv, 0, bob)

    async def test_unknown_account_in_a_batch_bounces_alone(self):
        srv = self.parley(modules=MODULES)
        alice, apw = self.user(srv, prefix='alice')
        bob, bpw = self.user(srv, prefix='bob')
        carol, _ = self.user(srv, prefix='carol')
        ghost = 'nobody-%d@localhost' % srv.n
        a = await self.online(alice, apw, server=srv, resource='a')
        lock = await self.start_burst(srv, a, carol)
        for i in range(10):
            self.send(a, bob, 'real %d' % i, id_='r%d' % i)
            self.send(a, ghost, 'ghost %d' % i, id_='g%d' % i)
        await self.end_burst(a, lock)
        for i in range(10):
            e = await a.next_message()
            self.assertEqual((e['type'], e['id'], e['from'].full), ('error', 'g%d' % i, ghost),
                             xml_str(e))
            self.assertEqual(error_of(e), ('cancel', ['service-unavailable'], None), xml_str(e))
        await a.no_message()
        self.assertRegex(srv.log(), r'stored 10 of 20 offline messages')
        self.assertEqual(await self.in_thread(self.count, srv, ghost), 0)
        b = await login(self, bob, bpw, server=srv, resource='b')
        for i in range(10):
            m = await b.next_message()
            self.assertEqual(m['id'], 'r%d' % i, xml_str(m))
            self.assertDelayed(m, alice + '/a', bob, 'real %d' % i)
        await b.no_message()
        await self.wait_count(srv, 0, bob)


LISTENING = r'listening on parley_offline'


class OfflineHoldersTests(OfflineHelpers, ParleyTestCase):
    """The set of accounts that may have stored messages: a login outside
    it costs no query; the trigger on the table adds accounts whoever
    inserts, and losing the notifications makes the set unknown again."""

    def insert(self, srv, user, body, silently=False):
        """Stores a message for user as another program would; silently:
        with the table's trigger off, so no notification is sent."""
        stanza = ("<message xmlns=\"jabber:client\" from=\"admin@localhost\" to=\"%s\" "
                  "type=\"chat\"><body>%s</body></message>" % (user, body))
        sql = ("INSERT INTO offline (host, username, stanza) VALUES ('localhost', '%s', '%s');"
               % (node(user), stanza))
        if silently:
            sql = ("BEGIN; ALTER TABLE offline DISABLE TRIGGER offline_notify; " + sql +
                   " ALTER TABLE offline ENABLE TRIGGER offline_notify; COMMIT;")
        srv.run.pg.psql(sql, dbname=srv.dbname)

    def skipped(self, srv, user):
        """How often the server skipped the query for user's messages."""
        return len(re.findall(r'\b%s has no offline messages' % re.escape(node(user)), srv.log()))

    async def known(self, srv):
        """Logs throwaway accounts in and out until the server has read the
        set (it does so on a login once its LISTEN is in effect)."""
        rx = r'\d+ accounts? with offline messages'
        before = len(re.findall(rx, srv.log()))
        for _ in range(20):
            jid, pw = self.user(srv, prefix='probe')
            c = await login(self, jid, pw, server=srv)
            await c.no_message(0.2)
            await c.close()
            if len(re.findall(rx, srv.log())) > before:
                return
        self.fail('the set of accounts with messages was never read\n' + srv.log_tail(20))

    async def assertBody(self, client, body):
        m = await client.next_message()
        self.assertEqual((m['from'].full, m['type'], m['body']),
                         ('admin@localhost', 'chat', body), xml_str(m))

    async def assertFetchedAtLogin(self, srv, user, password, body):
        """user logs in, gets the one stored message, which is then
        deleted; the server did look (the query was not skipped)."""
        c = await login(self, user, password, server=srv)
        await self.assertBody(c, body)
        await self.wait_stored(srv, user, 0)
        self.assertEqual(self.skipped(srv, user), 0)

    async def test_login_without_messages_skips_the_query(self):
        srv = self.parley(modules=MODULES)
        await self.known(srv)
        alice, apw = self.user(srv, prefix='alice')
        bob, bpw = self.user(srv, prefix='bob')
        b = await login(self, bob, bpw, server=srv, resource='one')
        await b.no_message(0.2)
        self.assertEqual(self.skipped(srv, bob), 1, srv.log_tail(20))
        await b.close()
        a = await self.online(alice, apw, server=srv, resource='a')
        self.send(a, bob, 'while you were out')
        await self.wait_stored(srv, bob, 1)
        b = await login(self, bob, bpw, server=srv, resource='two')
        m = await b.next_message()
        self.assertDelayed(m, alice + '/a', bob, 'while you were out')
        await self.wait_stored(srv, bob, 0)
        self.assertEqual(self.skipped(srv, bob), 1)
        # everything handed over: the next session costs no query again
        b2 = await login(self, bob, bpw, server=srv, resource='three')
        await b2.no_message(0.3)
        await b.no_message(0.1)
        self.assertEqual(self.skipped(srv, bob), 2, srv.log_tail(20))

    async def test_insert_by_another_program_reaches_online_session(self):
        srv = self.parley(modules=MODULES)
        await self.known(srv)
        bob, bpw = self.user(srv, prefix='bob')
        b = await login(self, bob, bpw, server=srv)
        await b.no_message(0.2)
        await self.in_thread(self.insert, srv, bob, 'from elsewhere')
        await self.assertBody(b, 'from elsewhere')
        await self.wait_stored(srv, bob, 0)
        await b.no_message()

    async def test_insert_by_another_program_while_offline(self):
        srv = self.parley(modules=MODULES)
        await self.known(srv)
        bob, bpw = self.user(srv, prefix='bob')
        await self.in_thread(self.insert, srv, bob, 'kept for you')
        await asyncio.sleep(0.3)
        await self.assertFetchedAtLogin(srv, bob, bpw, 'kept for you')

    async def test_messages_stored_before_start_are_read(self):
        srv = self.parley(modules=MODULES)
        bob, bpw = self.user(srv, prefix='bob')
        await self.in_thread(srv.stop)
        await self.in_thread(self.insert, srv, bob, 'stored before the start', True)
        await self.in_thread(srv.start)
        await self.known(srv)   # the set is read from the table now
        await self.assertFetchedAtLogin(srv, bob, bpw, 'stored before the start')

    async def test_set_forgotten_when_listener_lost(self):
        srv = self.parley(modules=MODULES)
        await self.known(srv)
        bob, bpw = self.user(srv, prefix='bob')
        # a silent insert goes unseen while the set is trusted
        await self.in_thread(self.insert, srv, bob, 'silent', True)
        b = await login(self, bob, bpw, server=srv, resource='one')
        await b.no_message(0.5)
        self.assertEqual(self.skipped(srv, bob), 1)
        await b.close()
        # parleyd's database connections are killed: notifications may
        # have been missed, so the set is forgotten and read again
        srv.run.pg.psql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE datname = '%s' AND pid <> pg_backend_pid()" % srv.dbname,
                        dbname='postgres')
        srv.wait_log('(?s)%s.*%s' % (LISTENING, LISTENING), timeout=10)
        b = await login(self, bob, bpw, server=srv, resource='two')
        await self.assertBody(b, 'silent')
        await self.wait_stored(srv, bob, 0)
        self.assertEqual(self.skipped(srv, bob), 1)
