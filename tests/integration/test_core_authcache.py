"""Integration tests: mod_auth_pg's credential cache, kept current by
the users table's notifications (schema version 3)."""

import time
import xml.etree.ElementTree as ET

from harness import NS_SASL, ParleyTestCase

# Logins that fail on purpose must not throttle the other tests.
LENIENT = {'auth_failures': '1000'}
LISTENING = r'listening on parley_users'
MECHS = ('SCRAM-SHA-256', 'SCRAM-SHA-1', 'PLAIN')


def sasl_condition(el):
    return [c.tag.split('}', 1)[1] for c in el if c.tag != '{%s}text' % NS_SASL]


def node(jid):
    return jid.split('@')[0]


class CacheHelpers:
    """Logins by hand and silent changes to the users table."""

    def attempt(self, jid, password, mech='SCRAM-SHA-256', server=None):
        """One login; returns the final <success/> or <failure/>."""
        r = self.raw(server)
        r.connect_tls()
        if mech == 'PLAIN':
            el = r.auth_plain(node(jid), password)
        else:
            el, verified = r.auth_scram(node(jid), password, mech)
            if el.tag == '{%s}success' % NS_SASL:
                self.assertTrue(verified, 'server signature wrong in <success/>')
        r.close()
        return el

    def assertLogin(self, jid, password, mech='SCRAM-SHA-256', server=None):
        el = self.attempt(jid, password, mech, server)
        self.assertEqual(el.tag, '{%s}success' % NS_SASL,
                         '%s with %s: %s' % (jid, mech, ET.tostring(el, encoding='unicode')))

    def assertRefused(self, jid, password, mech='SCRAM-SHA-256', server=None):
        el = self.attempt(jid, password, mech, server)
        self.assertEqual(el.tag, '{%s}failure' % NS_SASL, ET.tostring(el, encoding='unicode'))
        self.assertEqual(sasl_condition(el), ['not-authorized'],
                         ET.tostring(el, encoding='unicode'))

    def until_refused(self, jid, password, limit=3.0, server=None):
        """Tries to log in until refused with <not-authorized/>, for at most
        `limit` seconds (notifications are asynchronous); returns how long
        it took. Fails if the login still works at the end."""
        t0 = time.monotonic()
        deadline = t0 + limit * self.run_ctx.slow
        for _ in range(1000):
            el = self.attempt(jid, password, server=server)
            if el.tag == '{%s}failure' % NS_SASL:
                self.assertEqual(sasl_condition(el), ['not-authorized'],
                                 ET.tostring(el, encoding='unicode'))
                return time.monotonic() - t0
            self.assertEqual(el.tag, '{%s}success' % NS_SASL, ET.tostring(el, encoding='unicode'))
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.fail('%s still logs in with the old password after %.1f s'
                  % (jid, time.monotonic() - t0))

    def psql(self, sql, server=None):
        srv = server or self.server
        return self.run_ctx.pg.psql(sql, dbname=srv.dbname)

    def copy_creds_silently(self, to_jid, from_jid, server=None):
        """Gives to_jid the credentials of from_jid without the trigger:
        no notification, so only the database knows."""
        self.psql("BEGIN; ALTER TABLE users DISABLE TRIGGER users_notify; "
                  "UPDATE users u SET iterations = o.iterations, salt = o.salt, "
                  "sha1_stored_key = o.sha1_stored_key, sha1_server_key = o.sha1_server_key, "
                  "sha256_stored_key = o.sha256_stored_key, "
                  "sha256_server_key = o.sha256_server_key "
                  "FROM users o WHERE u.host = 'localhost' AND u.username = '%s' "
                  "AND o.host = 'localhost' AND o.username = '%s'; "
                  "ALTER TABLE users ENABLE TRIGGER users_notify; COMMIT;"
                  % (node(to_jid), node(from_jid)), server)

class AuthCacheTests(CacheHelpers, ParleyTestCase):
    SHARED_SERVER = {'limits': LENIENT}

    def setUp(self):
        super().setUp()
        # the cache answers only once the LISTEN is in effect
        self.server.wait_log(LISTENING)

    async def test_passwd_takes_effect(self):
        jid, old = self.user()
        for mech in MECHS:
            self.assertLogin(jid, old, mech)
        new = 'new-' + old
        self.server.ctl('user', 'passwd', jid, new)
        self.until_refused(jid, old)
        for mech in MECHS:
            self.assertRefused(jid, old, mech)
            self.assertLogin(jid, new, mech)

    async def test_delete_takes_effect(self):
        jid, pw = self.user()
        self.assertLogin(jid, pw)
        self.assertLogin(jid, pw, 'PLAIN')
        self.server.ctl('user', 'delete', jid)
        self.until_refused(jid, pw)
        for mech in MECHS:
            self.assertRefused(jid, pw, mech)

    async def test_no_negative_caching(self):
        jid = 'later%d@localhost' % self.server.n
        pw = 'pw-later'
        self.assertRefused(jid, pw)
        self.assertRefused(jid, pw, 'PLAIN')
        self.server.add_user(jid, pw)
        # at once: a missing account is never cached
        self.assertLogin(jid, pw)
        self.assertLogin(jid, pw, 'SCRAM-SHA-1')

    async def test_cached_until_notified(self):
        jid, pw = self.user()
        other, other_pw = self.user()
        self.assertLogin(jid, pw)
        self.copy_creds_silently(jid, other)
        # the server did not hear of it: the cache still answers
        self.assertLogin(jid, pw)
        self.assertLogin(jid, pw, 'PLAIN')
        self.assertRefused(jid, other_pw)
        # an account's notification drops its entry only
        self.assertLogin(other, other_pw)
        self.psql("SELECT pg_notify('parley_users', 'localhost/%s')" % node(jid))
        self.until_refused(jid, pw)
        self.assertLogin(jid, other_pw)
        self.assertLogin(other, other_pw)

    async def test_truncate_notifies(self):
        jid, pw = self.user()
        self.assertLogin(jid, pw)
        # the payload "" (what TRUNCATE sends) drops every entry
        other, other_pw = self.user()
        self.copy_creds_silently(jid, other)
        self.assertLogin(jid, pw)
        self.psql("SELECT pg_notify('parley_users', '')")
        self.until_refused(jid, pw)
        self.assertLogin(jid, other_pw)


class AuthCacheConnectionTests(CacheHelpers, ParleyTestCase):

    async def test_cache_dropped_when_listener_lost(self):
        srv = self.parley(limits=LENIENT)
        srv.wait_log(LISTENING)
        jid, pw = self.user(srv)
        other, other_pw = self.user(srv)
        self.assertLogin(jid, pw, server=srv)
        self.copy_creds_silently(jid, other, server=srv)
        self.assertLogin(jid, pw, server=srv)   # from the cache
        # parleyd's database connections are killed: it may have missed
        # notifications, so it forgets everything and asks the database
        self.run_ctx.pg.psql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                             "WHERE datname = '%s' AND pid <> pg_backend_pid()" % srv.dbname,
                             dbname='postgres')
        t0 = time.monotonic()
        deadline = t0 + 5 * self.run_ctx.slow
        el = None
        for _ in range(1000):
            el = self.attempt(jid, other_pw, server=srv)
            if el.tag == '{%s}success' % NS_SASL or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self.assertEqual(el.tag, '{%s}success' % NS_SASL,
                         'stale credentials after the connection loss: %s\n%s'
                         % (ET.tostring(el, encoding='unicode'), srv.log_tail(20)))
        self.assertRefused(jid, pw, server=srv)
        # the LISTEN comes back, and with it the cache: a silent delete
        # goes unseen again
        srv.wait_log('(?s)%s.*%s' % (LISTENING, LISTENING), timeout=10)
        self.assertLogin(jid, other_pw, server=srv)
        self.psql("BEGIN; ALTER TABLE users DISABLE TRIGGER users_notify; "
                  "DELETE FROM users WHERE host = 'localhost' AND username = '%s'; "
                  "ALTER TABLE users ENABLE TRIGGER users_notify; COMMIT;" % node(jid), srv)
        self.assertLogin(jid, other_pw, server=srv)

    async def test_cache_off(self):
        srv = self.parley(limits=LENIENT, extra_config='module auth_pg { cache_size 0; }')
        jid, pw = self.user(srv)
        other, other_pw = self.user(srv)
        self.assertLogin(jid, pw, server=srv)
        self.copy_creds_silently(jid, other, server=srv)
        # every login asks the database: the change is seen at once
        self.assertRefused(jid, pw, server=srv)
        self.assertLogin(jid, other_pw, server=srv)
        # and nothing listens
        self.assertNotRegex(srv.log(), LISTENING)
