"""Integration tests: parleyctl (users, status, sessions, kick, modules,
config reload), SIGHUP, `parleyd --check`, and a clean SIGTERM shutdown."""

import os
import re
import signal
import subprocess
import xml.etree.ElementTree as ET

from harness import NS_STREAM, ParleyTestCase, stream_error_of


def sasl_result(el):
    return el.tag.split('}', 1)[1]


DEBUG_LINE = re.compile(r'^\S+Z debug ', re.M)


class UserTests(ParleyTestCase):
    SHARED_SERVER = {'limits': {'auth_failures': '1000'}}

    def login(self, jid, pw):
        r = self.raw()
        r.connect_tls()
        el = r.auth_plain(jid.split('@')[0], pw)
        r.close()
        return sasl_result(el)

    def users(self, *domain):
        out = self.server.ctl('user', 'list', *domain).stdout
        return [line for line in out.splitlines() if line.strip()]

    async def test_user_roundtrip(self):
        srv = self.server
        jid = 'roundtrip@localhost'
        await self.in_thread(srv.ctl, 'user', 'add', jid, 'first-pw')
        self.assertIn(jid, await self.in_thread(self.users))
        self.assertEqual(await self.in_thread(self.login, jid, 'first-pw'), 'success')
        c = await self.client(jid, 'first-pw')          # SCRAM too
        await c.close()

        await self.in_thread(srv.ctl, 'user', 'passwd', jid, 'second-pw')
        self.assertEqual(await self.in_thread(self.login, jid, 'second-pw'), 'success')
        self.assertEqual(await self.in_thread(self.login, jid, 'first-pw'), 'failure')
        c = await self.client(jid, 'second-pw', mech='SCRAM-SHA-1')
        await c.close()

        await self.in_thread(srv.ctl, 'user', 'delete', jid)
        self.assertNotIn(jid, await self.in_thread(self.users))
        self.assertEqual(await self.in_thread(self.login, jid, 'second-pw'), 'failure')

    async def test_user_list_exact(self):
        jids = ['list%d@localhost' % i for i in range(3)]
        for j in jids:
            await self.in_thread(self.server.ctl, 'user', 'add', j, 'pw')
        listed = await self.in_thread(self.users, 'localhost')
        for j in jids:
            self.assertEqual(listed.count(j), 1, listed)
        for line in listed:
            self.assertRegex(line, r'^[^@/\s]+@localhost$')

    async def test_password_from_stdin(self):
        jid = 'stdin@localhost'
        await self.in_thread(self.server.ctl, 'user', 'add', jid, input='piped-pw\n')
        self.assertEqual(await self.in_thread(self.login, jid, 'piped-pw'), 'success')
        await self.in_thread(self.server.ctl, 'user', 'passwd', jid, input='piped-2\n')
        self.assertEqual(await self.in_thread(self.login, jid, 'piped-2'), 'success')

    async def test_user_errors(self):
        srv = self.server
        await self.in_thread(srv.ctl, 'user', 'add', 'dup@localhost', 'pw')
        r = await self.in_thread(srv.ctl, 'user', 'add', 'dup@localhost', 'pw2', check=False)
        self.assertEqual(r.returncode, 1)
        self.assertTrue(r.stderr.strip())
        self.assertEqual(await self.in_thread(self.login, 'dup@localhost', 'pw'), 'success')
        r = await self.in_thread(srv.ctl, 'user', 'delete', 'ghost@localhost', check=False)
        self.assertEqual(r.returncode, 1)
        self.assertTrue(r.stderr.strip())
        r = await self.in_thread(srv.ctl, 'user', 'passwd', 'ghost@localhost', 'x', check=False)
        self.assertEqual(r.returncode, 1)
        r = await self.in_thread(srv.ctl, 'user', 'add', 'not a jid', 'x', check=False)
        self.assertEqual(r.returncode, 1)
        r = await self.in_thread(srv.ctl, 'frobnicate', check=False)
        self.assertEqual(r.returncode, 2)     # a usage error
        r = await self.in_thread(srv.ctl, 'user', 'add', check=False)
        self.assertEqual(r.returncode, 2)


class AdminTests(ParleyTestCase):

    async def two_online(self, srv):
        alice, apw = self.user(srv, prefix='alice')
        bob, bpw = self.user(srv, prefix='bob')
        a = await self.online(alice, apw, server=srv, resource='res')
        b = await self.online(bob, bpw, server=srv, resource='b')
        return alice, a, bob, b

    async def assertMessaging(self, a, alice, b, bob, text):
        a.send_chat(bob + '/b', text)
        m = await b.next_message()
        self.assertEqual((m['from'].full, m['body']), (alice + '/res', text))

    async def test_status(self):
        srv = self.parley()
        await self.two_online(srv)
        out = (await self.in_thread(srv.ctl, 'status')).stdout
        self.assertRegex(out, r'(?m)^uptime: \d+s?')
        self.assertRegex(out, r'(?m)^connections: 2$')
        self.assertRegex(out, r'(?m)^sessions: 2$')
        self.assertRegex(out, r'(?m)^database: up$')
        mods = re.search(r'(?m)^modules: (.*)$', out)
        self.assertIsNotNone(mods, out)
        for name in ('auth_pg', 'disco', 'ping', 'version', 'time'):
            self.assertRegex(mods.group(1), r'\b%s\b' % name)

    async def test_sessions_and_kick(self):
        srv = self.parley()
        alice, a, bob, b = await self.two_online(srv)
        carol, cpw = self.user(srv, prefix='carol')
        r = self.raw(srv)
        await self.in_thread(r.login, carol.split('@')[0], cpw, 'desk')
        out = (await self.in_thread(srv.ctl, 'sessions')).stdout
        lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
        self.assertEqual(set(lines), {alice + '/res', bob + '/b', carol + '/desk'}, out)
        self.assertIn('127.0.0.1', lines[alice + '/res'])
        self.assertIn('TLS', lines[alice + '/res'])

        await self.in_thread(srv.ctl, 'kick', carol + '/desk')
        self.assertTrue(await self.in_thread(r.read_to_close), 'kicked stream still open')
        self.assertTrue(r.stream_closed, 'no </stream:stream> for the kicked session: %r'
                        % r.raw[-300:])
        errors = [e for e in r.elements if e.tag == '{%s}error' % NS_STREAM]
        for e in errors:
            self.assertEqual(stream_error_of(e)[0], ['policy-violation'],
                             ET.tostring(e, encoding='unicode'))

        await self.in_thread(srv.ctl, 'kick', alice + '/res')
        await a.wait_gone()
        out = (await self.in_thread(srv.ctl, 'sessions')).stdout
        self.assertEqual([line.split()[0] for line in out.splitlines() if line.strip()],
                         [bob + '/b'])
        r2 = await self.in_thread(srv.ctl, 'kick', alice + '/res', check=False)
        self.assertEqual(r2.returncode, 1)
        self.assertFalse(b.gone.is_set())

    def debug_trigger(self, srv):
        """Things parleyd logs at debug: a control command (documented) and
        a new client connection."""
        srv.ctl('status')
        r = self.raw(srv)
        r.open_stream()
        r.close()

    async def reload_case(self, do_reload):
        srv = self.parley(log_level='debug')
        alice, a, bob, b = await self.two_online(srv)
        await self.assertMessaging(a, alice, b, bob, 'before')
        self.assertRegex(srv.log(), DEBUG_LINE)
        srv.log_level = 'info'
        srv.write_config()
        await self.in_thread(do_reload, srv)
        await self.settle(0.5)
        mark = len(srv.log())
        await self.assertMessaging(a, alice, b, bob, 'after')
        await self.in_thread(self.debug_trigger, srv)
        await self.settle(0.3)
        self.assertNotRegex(srv.log()[mark:], DEBUG_LINE)
        self.assertFalse(a.gone.is_set() or b.gone.is_set())
        # and back to debug
        srv.log_level = 'debug'
        srv.write_config()
        await self.in_thread(do_reload, srv)
        await self.settle(0.5)
        mark = len(srv.log())
        await self.assertMessaging(a, alice, b, bob, 'debug again')
        await self.in_thread(self.debug_trigger, srv)
        await self.settle(0.3)
        self.assertRegex(srv.log()[mark:], DEBUG_LINE)
        self.assertFalse(a.gone.is_set() or b.gone.is_set())

    async def test_reload_via_ctl(self):
        await self.reload_case(lambda srv: srv.ctl('reload'))

    async def test_reload_via_sighup(self):
        await self.reload_case(lambda srv: srv.signal(signal.SIGHUP))

    async def test_reload_bad_config_keeps_old(self):
        srv = self.parley()
        alice, a, bob, b = await self.two_online(srv)
        with open(srv.conf, 'a') as f:
            f.write('this is { not valid\n')
        r = await self.in_thread(srv.ctl, 'reload', check=False)
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertTrue(r.stderr.strip())
        self.assertTrue(srv.running())
        await self.assertMessaging(a, alice, b, bob, 'survived')
        srv.write_config()

    async def test_reload_adds_module(self):
        srv = self.parley(modules=('auth_pg', 'disco', 'ping', 'version'))
        alice, a, bob, b = await self.two_online(srv)
        res = await a.iq('get', 'localhost', "<time xmlns='urn:xmpp:time'/>")
        self.assertEqual(res['type'], 'error')
        srv.modules.append('time')
        srv.write_config()
        await self.in_thread(srv.ctl, 'reload')
        res = await a.iq('get', 'localhost', "<time xmlns='urn:xmpp:time'/>")
        self.assertEqual(res['type'], 'result')
        self.assertFalse(a.gone.is_set() or b.gone.is_set())

    async def test_check_config(self):
        srv = self.parley(start=False)
        ok = subprocess.run([srv.parleyd, '--config', srv.conf, '--check'],
                            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
        self.assertEqual(ok.returncode, 0, ok.stderr)
        bad = os.path.join(srv.dir, 'bad.conf')
        with open(bad, 'w') as f:
            f.write(srv.config_text() + 'listen c2s nonsense;\n')
        r = subprocess.run([srv.parleyd, '--config', bad, '--check'],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn('bad.conf:', r.stderr)


class ShutdownTests(ParleyTestCase):

    async def test_sigterm_with_clients(self):
        srv = self.parley()
        alice, apw = self.user(srv, prefix='alice')
        bob, bpw = self.user(srv, prefix='bob')
        a = await self.online(alice, apw, server=srv, resource='a')
        r = self.raw(srv)
        await self.in_thread(r.login, bob.split('@')[0], bpw, 'raw')
        unauth = self.raw(srv)
        await self.in_thread(unauth.connect_tls)
        rc = await self.in_thread(srv.stop)
        self.assertEqual(rc, 0)
        for raw in (r, unauth):
            self.assertTrue(await self.in_thread(raw.read_to_close, 5))
            self.assertTrue(raw.stream_closed, 'stream not closed: %r' % raw.raw[-300:])
            for e in raw.elements:
                if e.tag == '{%s}error' % NS_STREAM:
                    self.assertEqual(stream_error_of(e)[0], ['system-shutdown'],
                                     ET.tostring(e, encoding='unicode'))
        await a.wait_gone()
        self.assertIn(0, srv.exit_codes)
        self.assertFalse(os.path.exists(srv.ctl_socket), 'control socket left behind')

    async def test_kill9_and_restart(self):
        # SIGKILL leaves nothing that stops a restart (stale control socket)
        srv = self.parley()
        alice, apw = self.user(srv)
        srv.kill9()
        await self.in_thread(srv.start)
        c = await self.client(alice, apw, server=srv)
        self.assertEqual(c.boundjid.bare, alice)
