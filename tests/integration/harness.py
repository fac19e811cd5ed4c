"""tests/integration/harness.py: the integration-test harness.

One test run shares a temporary PostgreSQL cluster (socket only, run by an
unprivileged user), a test CA with leaf certificates, and a scratch
directory. Each Parley instance gets its own database, config file, reserved
loopback ports and log file. Clients are slixmpp ClientXMPP objects driven
by the test's asyncio loop, or RawClient, a blocking socket client for
protocol-level tests that returns exactly what the server sent.

Runs with Debian's /usr/bin/python3 (slixmpp 1.8.3) and the standard
library only.
"""

import asyncio
import atexit
import base64
import ctypes
import glob
import hashlib
import hmac
import itertools
import os
import pwd
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest
import xml.etree.ElementTree as ET

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

NS_STREAM = 'http://etherx.jabber.org/streams'
NS_STREAMS = 'urn:ietf:params:xml:ns:xmpp-streams'
NS_STANZAS = 'urn:ietf:params:xml:ns:xmpp-stanzas'
NS_TLS = 'urn:ietf:params:xml:ns:xmpp-tls'
NS_SASL = 'urn:ietf:params:xml:ns:xmpp-sasl'
NS_BIND = 'urn:ietf:params:xml:ns:xmpp-bind'
NS_SESSION = 'urn:ietf:params:xml:ns:xmpp-session'
NS_CLIENT = 'jabber:client'

SANITIZER_MARKERS = ('ERROR: AddressSanitizer', 'runtime error:', 'LeakSanitizer')

# Slower builds (sanitizers, valgrind) stretch every wait by this factor.
SLOW = float(os.environ.get('PARLEY_TEST_SLOW', '1'))


def build_dir():
    """The build directory under test (PARLEY_BUILD, default REPO/build)."""
    return os.path.abspath(os.environ.get('PARLEY_BUILD', os.path.join(REPO, 'build')))


def is_sanitizer_build(bdir):
    """True if bdir was configured with --enable-sanitizers."""
    try:
        with open(os.path.join(bdir, 'config.status'), errors='replace') as f:
            return '--enable-sanitizers' in f.read()
    except OSError:
        return False


def sanitizer_env():
    """The environment for every process of the server under test: any
    sanitizer report is fatal and gives a distinctive exit status."""
    env = dict(os.environ)
    env.setdefault('ASAN_OPTIONS', 'halt_on_error=1:detect_leaks=1:abort_on_error=0:'
                   'exitcode=86:strict_string_checks=1:detect_stack_use_after_return=0')
    env.setdefault('UBSAN_OPTIONS', 'halt_on_error=1:print_stacktrace=1:exitcode=87')
    env.setdefault('LSAN_OPTIONS', 'exitcode=88')
    return env


# ==== ports ====

START_ATTEMPTS = 5


def reserve_port(addr='127.0.0.1'):
    """A TCP socket bound to a port of addr that no other socket is bound
    to, with SO_REUSEADDR and not listening. While it stays open the
    kernel gives the port to no other bind to port 0 (how every test
    worker and run picks its ports) and to no outgoing connection, yet a
    server that sets SO_REUSEADDR itself (parleyd, Prosody, dnsmasq) can
    bind and listen beside it."""
    family = socket.AF_INET6 if ':' in addr else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, 0))
    return s


class Ports:
    """The TCP ports of one server by name ("c2s", "s2s"...), each held by
    reserve_port() from take() until close(), restarts included, so no
    other test takes them between picking and listening."""

    def __init__(self):
        self._held = {}

    def take(self, name, addr='127.0.0.1'):
        """Reserves a fresh port on addr for name (releasing name's old
        one) and returns its number."""
        if name in self._held:
            self._held.pop(name).close()
        self._held[name] = reserve_port(addr)
        return self[name]

    def __getitem__(self, name):
        return self._held[name].getsockname()[1]

    def get(self, name):
        return self[name] if name in self._held else None

    def renew(self, addr, port):
        """Takes a fresh port in place of addr:port, which another process
        holds; returns (name, port, new port). Raises if addr:port is not
        one of ours."""
        addr = addr.strip('[]')
        for name, s in self._held.items():
            if s.getsockname()[:2] == (addr, port):
                return name, port, self.take(name, addr)
        raise AssertionError('%s port %d is taken, and it is not a port of this server'
                             % (addr, port))

    def close(self):
        for s in self._held.values():
            s.close()
        self._held.clear()


def accepts(addr, port):
    """Whether a TCP connection to addr:port is accepted now."""
    try:
        with socket.create_connection((addr, port), timeout=1):
            return True
    except OSError:
        return False


class PortsOwner:
    """A server whose listeners are on reserved ports (self.ports) named in
    a config file it writes (self.write_config())."""

    def _renew(self, taken):
        """Gives the listener at taken (addr, port) a fresh port and
        rewrites the config; returns Ports.renew's answer."""
        renewed = self.ports.renew(*taken)
        self.write_config()
        return renewed


def start_on_free_ports(what, attempt, renew, attempts=START_ATTEMPTS):
    """Starts a server whose port another process may hold despite the
    reservation (one that binds a fixed port with SO_REUSEADDR): attempt()
    starts it once and returns None when it is up, or (addr, port) of the
    listener it could not open, the server stopped; renew((addr, port))
    then gives it a fresh port and the start is tried again, `attempts`
    times at most. Returns what renew returned each time (such as
    Ports.renew's (name, port, new port))."""
    taken_all, renewed = [], []
    for _ in range(attempts):
        taken = attempt()
        if taken is None:
            return renewed
        taken_all.append(taken)
        renewed.append(renew(taken))
    raise AssertionError('%s: a port was taken by another process at each of %d starts: %s'
                         % (what, attempts, ', '.join('%s:%d' % t for t in taken_all)))


def wait_until(pred, timeout, interval=0.05, what='condition'):
    """Polls pred() until it returns a true value (returned) or timeout."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError('timed out after %.1fs waiting for %s' % (timeout, what))
        time.sleep(interval)


def file_size(path):
    """The size of path in bytes, 0 if it is missing (where the lines a
    process appends next will start, for read_from)."""
    return os.path.getsize(path) if os.path.exists(path) else 0


def read_from(path, offset=0):
    """The text of a file from byte offset on ('' if it is missing)."""
    try:
        with open(path, 'rb') as f:
            f.seek(offset)
            return f.read().decode(errors='replace')
    except OSError:
        return ''


def tail(path, lines=60):
    try:
        with open(path, errors='replace') as f:
            return ''.join(f.readlines()[-lines:])
    except OSError:
        return '(no log)'


# ==== PostgreSQL ====

def pg_bindir():
    """The newest /usr/lib/postgresql/*/bin that has initdb."""
    cands = [d for d in glob.glob('/usr/lib/postgresql/*/bin')
             if os.path.exists(os.path.join(d, 'initdb'))]
    if not cands:
        raise RuntimeError('no PostgreSQL server binaries in /usr/lib/postgresql/*/bin')
    return sorted(cands, key=lambda d: [int(x) for x in re.findall(r'\d+', d)])[-1]


def unprivileged_user():
    """Who runs PostgreSQL when we are root: PL_PG_USER, else the parley
    system user if it exists, else nobody."""
    for name in (os.environ.get('PL_PG_USER'), 'parley', 'nobody'):
        if not name:
            continue
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError('no unprivileged user to run PostgreSQL')


class Postgres:
    """A temporary PostgreSQL cluster listening only on a UNIX socket in
    its own directory. Superuser "parley", trust authentication."""

    def __init__(self, base=None):
        self.bindir = pg_bindir()
        self.dir = tempfile.mkdtemp(prefix='parley-pg-', dir=base or '/tmp')
        self.data = os.path.join(self.dir, 'data')
        self.sockdir = os.path.join(self.dir, 'sock')
        self.logfile = os.path.join(self.dir, 'postgresql.log')
        self.user = None
        os.mkdir(self.sockdir)
        if os.geteuid() == 0:
            self.user = unprivileged_user()
            os.chmod(self.dir, 0o755)
            for p in (self.dir, self.sockdir):
                os.chown(p, self.user.pw_uid, self.user.pw_gid)
        self._ndb = itertools.count(1)
        self.running = False
        self._initdb()

    def _cmd(self, argv, check=True, timeout=60):
        if self.user is not None:
            argv = ['runuser', '-u', self.user.pw_name, '--'] + argv
        r = subprocess.run(argv, cwd=self.dir, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=timeout, text=True)
        if check and r.returncode != 0:
            raise RuntimeError('%s failed (%d):\n%s' % (' '.join(argv), r.returncode, r.stdout))
        return r

    def _initdb(self):
        self._cmd([os.path.join(self.bindir, 'initdb'), '-D', self.data, '-A', 'trust',
                   '-U', 'parley', '-E', 'UTF8', '--no-locale', '--no-sync'])
        settings = {
            'listen_addresses': "''",
            'unix_socket_directories': "'%s'" % self.sockdir,
            'max_connections': '300',
            'shared_buffers': '32MB',
            'fsync': 'off',
            'synchronous_commit': 'off',
            'full_page_writes': 'off',
            'log_min_messages': 'warning',
        }
        with open(os.path.join(self.data, 'postgresql.conf'), 'a') as f:
            for k, v in settings.items():
                f.write('%s = %s\n' % (k, v))

    def conninfo(self, dbname='parley'):
        return 'host=%s dbname=%s user=parley' % (self.sockdir, dbname)

    def start(self):
        self._cmd([os.path.join(self.bindir, 'pg_ctl'), '-D', self.data, '-l', self.logfile,
                   '-w', '-t', '60', 'start'])
        self.running = True

    def stop(self, mode='fast'):
        """Stops the cluster ("fast" disconnects clients at once)."""
        self._cmd([os.path.join(self.bindir, 'pg_ctl'), '-D', self.data, '-m', mode,
                   '-w', '-t', '60', 'stop'])
        self.running = False

    def psql(self, sql, dbname='parley'):
        r = subprocess.run([os.path.join(self.bindir, 'psql'), '-X', '-q', '-t', '-A',
                            '-v', 'ON_ERROR_STOP=1', '-d', self.conninfo(dbname), '-c', sql],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=30)
        if r.returncode != 0:
            raise RuntimeError('psql failed: %s' % r.stderr)
        return r.stdout

    def createdb(self):
        """Creates a fresh database and returns its name."""
        name = 'parley_%d' % next(self._ndb)
        r = subprocess.run([os.path.join(self.bindir, 'createdb'), '-h', self.sockdir,
                            '-U', 'parley', name], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=30)
        if r.returncode != 0:
            raise RuntimeError('createdb %s failed: %s' % (name, r.stdout))
        return name

    def destroy(self):
        if self.running:
            try:
                self.stop(mode='immediate')
            except Exception:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)


# ==== certificates ====

class Certs:
    """A test CA and leaf certificates made with certtool (GnuTLS)."""

    def __init__(self, directory):
        self.dir = directory
        os.makedirs(self.dir, exist_ok=True)
        self.ca_key = os.path.join(self.dir, 'ca.key')
        self.ca = os.path.join(self.dir, 'ca.pem')
        self._privkey(self.ca_key)
        tmpl = self._template('ca', 'cn = "Parley Test CA"\nca\ncert_signing_key\n'
                              'expiration_days = 30\n')
        self._run(['certtool', '--generate-self-signed', '--load-privkey', self.ca_key,
                   '--template', tmpl, '--outfile', self.ca])
        self.leaves = {}

    def _run(self, argv):
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError('%s failed:\n%s' % (' '.join(argv), r.stdout))

    def _privkey(self, path):
        self._run(['certtool', '--generate-privkey', '--key-type=rsa', '--bits=2048',
                   '--outfile', path])
        os.chmod(path, 0o600)

    def _template(self, name, text):
        path = os.path.join(self.dir, name + '.tmpl')
        with open(path, 'w') as f:
            f.write(text)
        return path

    def leaf(self, domain):
        """(certificate, key) for domain, signed by the test CA (SHA-256)."""
        if domain in self.leaves:
            return self.leaves[domain]
        key = os.path.join(self.dir, domain + '.key')
        cert = os.path.join(self.dir, domain + '.pem')
        self._privkey(key)
        tmpl = self._template(domain, 'cn = "%s"\ndns_name = "%s"\ntls_www_server\n'
                              'tls_www_client\nsigning_key\nencryption_key\n'
                              'expiration_days = 30\n' % (domain, domain))
        self._run(['certtool', '--generate-certificate', '--load-privkey', key,
                   '--load-ca-certificate', self.ca, '--load-ca-privkey', self.ca_key,
                   '--hash=SHA256', '--template', tmpl, '--outfile', cert])
        self.leaves[domain] = (cert, key)
        return cert, key


# ==== the run-wide context ====

class TestRun:
    """What one test run shares: scratch dir, PostgreSQL cluster, certs,
    and every Parley instance started (stopped at the end)."""

    def __init__(self):
        self.build = build_dir()
        self.sanitizers = is_sanitizer_build(self.build)
        self.slow = SLOW * (2 if self.sanitizers else 1)
        self.tmp = tempfile.mkdtemp(prefix='parley-it-')
        self.pg = Postgres()
        self.pg.start()
        self.certs = Certs(os.path.join(self.tmp, 'certs'))
        self.certs.leaf('localhost')
        self.instances = []
        self._n = itertools.count(1)

    def next_id(self):
        return next(self._n)

    def close(self):
        for p in list(self.instances):
            try:
                p.kill9()
            except Exception:
                pass
        self.pg.destroy()
        if not os.environ.get('PARLEY_KEEP_TMP'):
            shutil.rmtree(self.tmp, ignore_errors=True)


_RUN = None


def run_context():
    """The shared TestRun, created on first use and closed at exit."""
    global _RUN
    if _RUN is None:
        _RUN = TestRun()
        atexit.register(close_run)
    return _RUN


def close_run():
    global _RUN
    if _RUN is not None:
        _RUN.close()
        _RUN = None


# ==== the server under test ====

DEFAULT_MODULES = ('auth_pg', 'disco', 'ping', 'version', 'time')


class Parley(PortsOwner):
    """One parleyd process with its own database, config and log."""

    def __init__(self, run=None, *, vhosts=('localhost',), modules=DEFAULT_MODULES,
                 limits=None, log_level='debug', pool_size=2, scram_iterations=4096,
                 c2s_require_tls=True, extra_config=''):
        self.run = run or run_context()
        self.n = self.run.next_id()
        self.dir = os.path.join(self.run.tmp, 'parley%d' % self.n)
        os.makedirs(self.dir)
        self.build = self.run.build
        self.parleyd = os.path.join(self.build, 'parleyd')
        self.parleyctl = os.path.join(self.build, 'parleyctl')
        self.conf = os.path.join(self.dir, 'parley.conf')
        self.logfile = os.path.join(self.dir, 'parleyd.log')
        self.ctl_socket = os.path.join(self.dir, 'ctl.sock')
        self.dbname = self.run.pg.createdb()
        self.ports = Ports()
        self.take_ports()
        self.vhosts = list(vhosts)
        self.modules = list(modules)
        self.limits = {'max_stanza_size': '256k', 'unauth_timeout': '30s',
                       'auth_failures': '5', 'auth_window': '60s'}
        self.limits.update(limits or {})
        self.log_level = log_level
        self.pool_size = pool_size
        self.scram_iterations = scram_iterations
        self.c2s_require_tls = c2s_require_tls
        self.extra_config = extra_config
        self.proc = None
        self._log = None
        self.exit_codes = []
        self.write_config()

    @property
    def ca(self):
        return self.run.certs.ca

    def take_ports(self):
        """Reserves the listeners' ports (a subclass adds its own)."""
        self.ports.take('c2s')
        self.ports.take('c2s_tls')

    @property
    def c2s_port(self):
        return self.ports['c2s']

    @property
    def c2s_tls_port(self):
        return self.ports['c2s_tls']

    def config_text(self):
        lines = [
            'log_level %s;' % self.log_level,
            'modules_dir "%s";' % os.path.join(self.build, 'modules'),
            'control_socket "%s";' % self.ctl_socket,
            'database { conninfo "%s"; pool_size %d; }' % (
                self.run.pg.conninfo(self.dbname), self.pool_size),
            'auth { scram_iterations %d; }' % self.scram_iterations,
            'tls { c2s_require %s; }' % ('yes' if self.c2s_require_tls else 'no'),
            'listen c2s 127.0.0.1:%d;' % self.c2s_port,
            'listen c2s_tls 127.0.0.1:%d;' % self.c2s_tls_port,
            'limits { %s }' % ' '.join('%s %s;' % kv for kv in self.limits.items()),
            'modules { %s }' % ' '.join('%s;' % m for m in self.modules),
        ]
        for h in self.vhosts:
            cert, key = self.run.certs.leaf(h)
            lines.append('vhost %s { certificate "%s"; key "%s"; }' % (h, cert, key))
        if self.extra_config:
            lines.append(self.extra_config)
        return '\n'.join(lines) + '\n'

    def write_config(self):
        with open(self.conf, 'w') as f:
            f.write(self.config_text())

    # -- process control --

    def start(self, wait_db=True, timeout=20):
        """Starts parleyd and waits until the c2s port accepts and
        `parleyctl status` answers (with "database: up" if wait_db). When
        parleyd exits at start-up because another process holds one of its
        ports, that port is renewed, the config rewritten and parleyd
        started again (start_on_free_ports); then ports_renewed() runs."""
        if not os.access(self.parleyd, os.X_OK):
            raise AssertionError('%s is not built' % self.parleyd)
        timeout *= self.run.slow
        renewed = start_on_free_ports('parleyd #%d' % self.n,
                                      lambda: self._start_once(wait_db, timeout), self._renew)
        if renewed:
            self.ports_renewed(renewed)
        return self

    def _start_once(self, wait_db, timeout):
        """Starts parleyd once; None when it is up, or (host, port) of the
        listener it could not open because the address was in use (it has
        exited then)."""
        offset = file_size(self.logfile)
        self._log = open(self.logfile, 'ab')
        self.proc = subprocess.Popen([self.parleyd, '--config', self.conf],
                                     stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=self._log, env=sanitizer_env(),
                                     cwd=self.dir)
        if self not in self.run.instances:
            self.run.instances.append(self)

        def exited():
            return self.proc.poll() is not None
        # the control socket opens after every listener, so a status
        # answer also means no other process answered on the c2s port
        try:
            wait_until(lambda: exited() or self._accepting(), timeout,
                       what='parleyd to accept on c2s')
            wait_until(lambda: exited() or self._status_ok(wait_db), timeout, interval=0.1,
                       what='"database: up" in parleyctl status' if wait_db
                       else 'parleyctl status to answer')
        except AssertionError as e:
            raise AssertionError('%s\n--- parleyd log (tail) ---\n%s' % (e, self.log_tail()))
        if not exited():
            return None
        rc = self.proc.returncode
        self.kill9()
        self.check_log_clean()
        m = re.search(r'cannot listen on (\S+) port (\d+): Address already in use',
                      read_from(self.logfile, offset))
        if m is None:
            raise AssertionError('parleyd exited with status %d during start-up\n'
                                 '--- parleyd log (tail) ---\n%s' % (rc, self.log_tail()))
        return m.group(1), int(m.group(2))

    def ports_renewed(self, renewed):
        """Called after a start that had to renew ports ((name, port, new
        port) each): a subclass tells whoever recorded the old numbers."""

    def _accepting(self):
        return accepts('127.0.0.1', self.c2s_port)

    def db_up(self):
        return self._status_ok(True)

    def _status_ok(self, db_up):
        r = self.ctl('status', check=False)
        return r.returncode == 0 and \
            (not db_up or re.search(r'^database: up$', r.stdout, re.M) is not None)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=10):
        """SIGTERM; asserts a clean exit (status 0 within timeout seconds,
        no sanitizer report). SIGKILL if it does not exit in time."""
        if self.proc is None:
            return None
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=timeout * self.run.slow)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            self._close_log()
            raise AssertionError('parleyd did not exit within %ds of SIGTERM\n%s'
                                 % (timeout, self.log_tail()))
        self._close_log()
        self.exit_codes.append(rc)
        self.check_log_clean()
        if rc != 0:
            raise AssertionError('parleyd exited with status %d\n--- log tail ---\n%s'
                                 % (rc, self.log_tail()))
        return rc

    def kill9(self):
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        self._close_log()

    def _close_log(self):
        if self._log:
            self._log.close()
            self._log = None
        if self in self.run.instances:
            self.run.instances.remove(self)

    def check_log_clean(self):
        """Asserts the log holds no sanitizer report; the failure shows the
        start of the first report (its first 80 lines)."""
        text = self.log()
        hits = [(text.find(m), m) for m in SANITIZER_MARKERS if m in text]
        if not hits:
            return
        pos, marker = min(hits)
        start = text.rfind('\n', 0, max(0, text.rfind('=====', 0, pos))) + 1 \
            if '=====' in text[max(0, pos - 200):pos] else text.rfind('\n', 0, pos) + 1
        report = '\n'.join(text[start:].split('\n')[:80])
        raise AssertionError('sanitizer report in parleyd log %s (%s):\n%s'
                             % (self.logfile, marker, report))

    def log(self):
        try:
            with open(self.logfile, errors='replace') as f:
                return f.read()
        except OSError:
            return ''

    def log_tail(self, lines=60):
        return tail(self.logfile, lines)

    def wait_log(self, pattern, timeout=5):
        rx = re.compile(pattern)
        return wait_until(lambda: rx.search(self.log()), timeout * self.run.slow,
                          what='log line matching %r' % pattern)

    # -- parleyctl --

    def ctl(self, *args, input=None, check=True, timeout=30):
        """Runs `parleyctl --config FILE args...`; returns the
        CompletedProcess (text). check: assert exit status 0."""
        r = subprocess.run([self.parleyctl, '--config', self.conf] + list(args),
                           input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, timeout=timeout * self.run.slow, env=sanitizer_env(),
                           stdin=None if input is not None else subprocess.DEVNULL)
        for m in SANITIZER_MARKERS:
            if m in r.stderr:
                raise AssertionError('sanitizer report from parleyctl %s:\n%s'
                                     % (' '.join(args), r.stderr))
        if check and r.returncode != 0:
            raise AssertionError('parleyctl %s exited %d\nstdout: %s\nstderr: %s'
                                 % (' '.join(args), r.returncode, r.stdout, r.stderr))
        return r

    def add_user(self, jid, password):
        self.ctl('user', 'add', jid, password)
        return jid


# ==== slixmpp clients ====

import logging  # noqa: E402

logging.getLogger('slixmpp').setLevel(logging.CRITICAL + 1)
logging.getLogger('asyncio').setLevel(logging.CRITICAL + 1)

import slixmpp  # noqa: E402
from slixmpp.exceptions import IqError, IqTimeout  # noqa: E402
from slixmpp.xmlstream.handler import Callback  # noqa: E402
from slixmpp.xmlstream.matcher import MatchXPath  # noqa: E402


class Client(slixmpp.ClientXMPP):
    """A slixmpp client aimed at one Parley instance: connects to
    127.0.0.1 (STARTTLS on the c2s port, or direct TLS), trusts the test
    CA, uses one SASL mechanism, and queues every stanza it receives."""

    def __init__(self, server, jid, password, *, mech='SCRAM-SHA-256', direct_tls=False,
                 tls_max=None, port=None):
        super().__init__(jid, password, sasl_mech=mech)
        self.pl_server = server
        self.pl_mech = mech
        self.pl_direct_tls = direct_tls
        self.pl_port = port or (server.c2s_tls_port if direct_tls else server.c2s_port)
        self.ca_certs = server.ca
        self.ssl_context = ssl.create_default_context()
        self.ssl_context.check_hostname = True
        self.ssl_context.verify_mode = ssl.CERT_REQUIRED
        if tls_max is not None:
            self.ssl_context.maximum_version = tls_max
        self.use_ipv6 = False
        self.whitespace_keepalive = False
        self['feature_mechanisms'].sasl_callback = self._credentials
        self.messages = asyncio.Queue()
        self.presences = asyncio.Queue()
        self.iqs = asyncio.Queue()          # IQ requests addressed to us
        self.stream_errors = []
        self.failures = []                  # SASL <failure/> stanzas
        self.started = asyncio.Event()
        self.auth_failed = asyncio.Event()
        self.gone = asyncio.Event()         # the TCP connection closed
        self.eof = False
        self.register_handler(Callback('pl messages', MatchXPath('{%s}message' % NS_CLIENT),
                                       lambda s: self.messages.put_nowait(s)))
        self.register_handler(Callback('pl presences', MatchXPath('{%s}presence' % NS_CLIENT),
                                       lambda s: self.presences.put_nowait(s)))
        self.iq_log = []                    # every IQ received
        self.register_handler(Callback('pl iqs', MatchXPath('{%s}iq' % NS_CLIENT),
                                       lambda s: self.iq_log.append(s)))
        self.add_event_handler('session_start', lambda _: self.started.set())
        self.add_event_handler('failed_auth', self._on_failed_auth)
        self.add_event_handler('failed_all_auth', lambda _: self.auth_failed.set())
        self.add_event_handler('stream_error', lambda e: self.stream_errors.append(e))
        self.add_event_handler('disconnected', lambda _: self.gone.set())
        self.add_event_handler('eof_received', self._on_eof)
        self.add_event_handler('connection_failed', lambda _: self.gone.set())

    def _on_eof(self, _):
        self.eof = True

    def _on_failed_auth(self, stanza):
        self.failures.append(stanza)
        self.auth_failed.set()

    def _credentials(self, required, optional):
        """SASL credentials: channel binding data only for -PLUS mechanisms
        (slixmpp uses tls-unique), so plain SCRAM sends the "n" flag."""
        values = set(required) | set(optional)
        out = {}
        for v in values:
            if v == 'username':
                out[v] = self.requested_jid.user
            elif v == 'password':
                out[v] = self.password
            elif v == 'channel_binding':
                out[v] = None
                if self.pl_mech and self.pl_mech.endswith('-PLUS') and \
                        isinstance(self.socket, (ssl.SSLSocket, ssl.SSLObject)):
                    out[v] = self.socket.get_channel_binding('tls-unique')
            elif v in ('host', 'realm'):
                out[v] = self.requested_jid.domain
            elif v == 'service':
                out[v] = 'xmpp'
            elif v == 'authzid':
                out[v] = ''
            else:
                out[v] = self.credentials.get(v)
        return out

    async def get_dns_records(self, domain, port=None):
        return [(domain, '127.0.0.1', self.pl_port)]

    def start(self):
        self.connect(('127.0.0.1', self.pl_port), use_ssl=self.pl_direct_tls)

    async def wait_session(self, timeout=10):
        """Waits for session_start; raises AssertionError on auth failure,
        disconnection or timeout."""
        timeout *= self.pl_server.run.slow
        waiters = {asyncio.ensure_future(self.started.wait()): 'started',
                   asyncio.ensure_future(self.auth_failed.wait()): 'auth failed',
                   asyncio.ensure_future(self.gone.wait()): 'disconnected'}
        done, pending = await asyncio.wait(waiters, timeout=timeout,
                                           return_when=asyncio.FIRST_COMPLETED)
        for p in pending:
            p.cancel()
        if self.started.is_set():
            return self
        what = 'timeout'
        if done:
            what = waiters[next(iter(done))]
        detail = ''
        if self.failures:
            detail = ' (SASL failure: %s)' % self.failures[-1]['condition']
        if self.stream_errors:
            detail += ' (stream error: %s)' % self.stream_errors[-1]['condition']
        raise AssertionError('%s did not start a session: %s%s\n--- parleyd log ---\n%s'
                             % (self.requested_jid, what, detail, self.pl_server.log_tail(30)))

    async def wait_auth_failure(self, timeout=10):
        """Waits for a SASL failure; returns the <failure/> stanza."""
        timeout *= self.pl_server.run.slow
        waiters = [asyncio.ensure_future(self.auth_failed.wait()),
                   asyncio.ensure_future(self.started.wait()),
                   asyncio.ensure_future(self.gone.wait())]
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        for w in waiters:
            w.cancel()
        if self.started.is_set():
            raise AssertionError('%s logged in but should not have' % self.requested_jid)
        if not self.failures:
            raise AssertionError('%s: no SASL failure (gone=%s)'
                                 % (self.requested_jid, self.gone.is_set()))
        return self.failures[-1]

    async def wait_gone(self, timeout=10):
        try:
            await asyncio.wait_for(self.gone.wait(), timeout * self.pl_server.run.slow)
        except asyncio.TimeoutError:
            raise AssertionError('%s: connection still open after %ss'
                                 % (self.boundjid, timeout))

    async def next_message(self, timeout=5):
        try:
            return await asyncio.wait_for(self.messages.get(), timeout * self.pl_server.run.slow)
        except asyncio.TimeoutError:
            raise AssertionError('%s: no message within %ss' % (self.boundjid, timeout))

    async def next_presence(self, timeout=5):
        try:
            return await asyncio.wait_for(self.presences.get(), timeout * self.pl_server.run.slow)
        except asyncio.TimeoutError:
            raise AssertionError('%s: no presence within %ss' % (self.boundjid, timeout))

    async def no_message(self, wait=0.5):
        """Asserts no message arrives within wait seconds."""
        try:
            m = await asyncio.wait_for(self.messages.get(), wait * self.pl_server.run.slow)
        except asyncio.TimeoutError:
            return
        raise AssertionError('%s: unexpected message: %s' % (self.boundjid, m))

    def drain(self):
        """Forgets queued messages and presences."""
        for q in (self.messages, self.presences):
            while not q.empty():
                q.get_nowait()

    async def iq(self, type_, to, payload, timeout=5):
        """Sends <iq type=type_ to=to> with payload (XML text) and returns
        the answer (result or error stanza)."""
        iq = self.Iq()
        iq['type'] = type_
        if to:
            iq['to'] = to
        if payload:
            iq.append(ET.fromstring(payload))
        try:
            return await iq.send(timeout=timeout * self.pl_server.run.slow)
        except IqError as e:
            return e.iq
        except IqTimeout:
            raise AssertionError('%s: no answer to %s within %ss' % (self.boundjid, iq, timeout))

    def send_chat(self, to, body, type_='chat', mfrom=None):
        m = self.make_message(mto=to, mbody=body, mtype=type_)
        if mfrom:
            m['from'] = mfrom
        m.send()
        return m

    def available(self, priority=None):
        p = self.Presence()
        if priority is not None:
            p['priority'] = priority
        p.send()

    async def close(self, wait=1.0):
        if self.transport is not None:
            try:
                await asyncio.wait_for(self.disconnect(wait=wait), wait + 2)
            except Exception:
                pass
        if self.transport is not None:
            self.abort()


def error_of(elem):
    """(type, [condition names], text) of the <error/> child of a stanza
    (an ElementTree element or a slixmpp stanza), or None."""
    if hasattr(elem, 'xml'):
        elem = elem.xml
    err = None
    for child in elem:
        if child.tag.endswith('}error') or child.tag == 'error':
            err = child
    if err is None:
        return None
    conds = [c.tag.split('}', 1)[1] for c in err
             if c.tag.startswith('{%s}' % NS_STANZAS) and not c.tag.endswith('}text')]
    text = None
    for c in err:
        if c.tag == '{%s}text' % NS_STANZAS:
            text = c.text
    return err.get('type'), conds, text


def stream_error_of(elem):
    """([condition names], text) of a <stream:error/> element."""
    conds = [c.tag.split('}', 1)[1] for c in elem
             if c.tag.startswith('{%s}' % NS_STREAMS) and c.tag != '{%s}text' % NS_STREAMS]
    text = None
    for c in elem:
        if c.tag == '{%s}text' % NS_STREAMS:
            text = c.text
    return conds, text


def xml_str(elem):
    if hasattr(elem, 'xml'):
        elem = elem.xml
    return ET.tostring(elem, encoding='unicode')


# ==== the raw protocol client ====

class _Libssl:
    """OpenSSL's exporter via ctypes, for the tls-exporter channel binding
    (Python's ssl module has no keying-material exporter)."""
    lib = None

    @classmethod
    def load(cls):
        if cls.lib is None:
            lib = ctypes.CDLL('libssl.so.3')
            lib.SSL_get_version.restype = ctypes.c_char_p
            lib.SSL_get_version.argtypes = [ctypes.c_void_p]
            lib.SSL_export_keying_material.restype = ctypes.c_int
            lib.SSL_export_keying_material.argtypes = [
                ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p,
                ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int]
            lib.SSL_get_finished.restype = ctypes.c_size_t
            lib.SSL_get_finished.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
            cls.lib = lib
        return cls.lib


def _ssl_pointer(sslsock):
    """The SSL* inside a Python ssl.SSLSocket (CPython's PySSLSocket keeps
    it right after the object header and the socket weakref). Checked
    against the finished message Python itself reports."""
    lib = _Libssl.load()
    obj = sslsock._sslobj
    word = ctypes.sizeof(ctypes.c_void_p)
    ptr = ctypes.c_void_p.from_address(id(obj) + 3 * word).value
    if not ptr:
        raise RuntimeError('no SSL pointer')
    version = lib.SSL_get_version(ptr)
    if version is None or version.decode() != sslsock.version():
        raise RuntimeError('SSL pointer check failed (%r vs %r)' % (version, sslsock.version()))
    buf = ctypes.create_string_buffer(128)
    n = lib.SSL_get_finished(ptr, buf, 128)
    if buf.raw[:n] != sslsock.get_channel_binding('tls-unique'):
        raise RuntimeError('SSL pointer check failed (finished message)')
    return ptr


def tls_exporter(sslsock, label=b'EXPORTER-Channel-Binding', length=32):
    """RFC 9266 tls-exporter channel binding data of a TLS 1.3 socket."""
    lib = _Libssl.load()
    ptr = _ssl_pointer(sslsock)
    out = ctypes.create_string_buffer(length)
    if lib.SSL_export_keying_material(ptr, out, length, label, len(label), None, 0, 0) != 1:
        raise RuntimeError('SSL_export_keying_material failed')
    return out.raw


def tls_server_end_point(sslsock):
    """RFC 5929 tls-server-end-point: SHA-256 of the server certificate
    (the test certificates are signed with SHA-256)."""
    return hashlib.sha256(sslsock.getpeercert(binary_form=True)).digest()


class RawClient:
    """A blocking XMPP client over a plain socket that does each protocol
    step by hand and records everything the server sends."""

    HEADER = ("<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
              "xmlns:stream='http://etherx.jabber.org/streams' to='%s' version='1.0'>")

    def __init__(self, server=None, port=None, host='127.0.0.1', timeout=5, direct_tls=False,
                 ca=None, tls_max=None, domain='localhost'):
        self.server = server
        self.slow = server.run.slow if server else 1
        self.timeout = timeout * self.slow
        self.domain = domain
        self.ca = ca or (server.ca if server else None)
        self.tls_max = tls_max
        port = port or (server.c2s_tls_port if direct_tls else server.c2s_port)
        self.sock = socket.create_connection((host, port), timeout=self.timeout)
        self.raw = b''             # everything received on this connection
        self.elements = []         # top-level elements of the current stream
        self.stream_header = None  # the server's <stream:stream> element
        self.stream_closed = False  # saw </stream:stream>
        self.closed = False        # TCP (or TLS) connection ended
        self.parse_error = None
        self.tls = False
        self.jid = None
        if direct_tls:
            self._wrap_tls()
        self._new_parser()

    # -- low level --

    def _new_parser(self):
        self.parser = ET.XMLPullParser(events=('start', 'end'))
        self.depth = 0
        self.elements = []
        self.stream_header = None
        self.stream_closed = False

    def _wrap_tls(self):
        ctx = ssl.create_default_context(cafile=self.ca)
        ctx.check_hostname = True
        if self.tls_max is not None:
            ctx.maximum_version = self.tls_max
        self.sock = ctx.wrap_socket(self.sock, server_hostname=self.domain)
        self.tls = True

    def send(self, data):
        if isinstance(data, str):
            data = data.encode('utf-8')
        self.sock.sendall(data)

    def _feed(self, data):
        self.raw += data
        if self.parse_error:
            return
        try:
            self.parser.feed(data)
            for ev, el in self.parser.read_events():
                if ev == 'start':
                    if self.depth == 0:
                        self.stream_header = el
                    self.depth += 1
                else:
                    self.depth -= 1
                    if self.depth == 1:
                        self.elements.append(el)
                    elif self.depth == 0:
                        self.stream_closed = True
        except ET.ParseError as e:
            self.parse_error = e

    def _recv_once(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return False
        except (ssl.SSLEOFError, ssl.SSLZeroReturnError, ConnectionResetError, BrokenPipeError):
            data = b''
        except ssl.SSLError:
            data = b''
        if not data:
            self.closed = True
            return False
        self._feed(data)
        return True

    def read_until(self, pred, timeout=None):
        """Reads until pred(self) is true, the connection closes, or the
        timeout passes. Returns pred(self)."""
        deadline = time.monotonic() + (timeout * self.slow if timeout else self.timeout)
        while not pred(self):
            if self.closed or not self._recv_once(deadline):
                break
        return pred(self)

    def read_element(self, timeout=None):
        """The next top-level element not yet taken by read_element."""
        if not hasattr(self, '_taken'):
            self._taken = 0
        ok = self.read_until(lambda c: len(c.elements) > c._taken, timeout)
        if not ok:
            raise AssertionError('no element from the server (closed=%s, stream_closed=%s, '
                                 'parse_error=%s); received: %r'
                                 % (self.closed, self.stream_closed, self.parse_error,
                                    self.raw[-2000:]))
        el = self.elements[self._taken]
        self._taken += 1
        return el

    def read_to_close(self, timeout=None):
        """Reads until the TCP connection closes; True if it did."""
        return self.read_until(lambda c: c.closed, timeout)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    # -- stream steps --

    def open_stream(self, header=None):
        """Sends a stream header and reads the server's stream features;
        returns the <stream:features/> element."""
        self._new_parser()
        self._taken = 0
        self.send(header if header is not None else self.HEADER % self.domain)
        return self.expect('{%s}features' % NS_STREAM)

    def expect(self, tag, timeout=None):
        el = self.read_element(timeout)
        if el.tag != tag:
            raise AssertionError('expected %s, got %s' % (tag, ET.tostring(el, encoding='unicode')))
        return el

    def starttls(self):
        """STARTTLS: sends <starttls/>, waits for <proceed/>, handshakes and
        restarts the stream; returns the new features."""
        self.send("<starttls xmlns='%s'/>" % NS_TLS)
        self.expect('{%s}proceed' % NS_TLS)
        self._wrap_tls()
        return self.open_stream()

    def connect_tls(self):
        """Stream header + STARTTLS (or just the header on direct TLS);
        returns the features offered over TLS."""
        feats = self.open_stream()
        if self.tls:
            return feats
        return self.starttls()

    def auth_plain(self, user, password, authzid=''):
        """SASL PLAIN. Returns the <success/> or <failure/> element."""
        msg = ('%s\0%s\0%s' % (authzid, user, password)).encode('utf-8')
        self.send("<auth xmlns='%s' mechanism='PLAIN'>%s</auth>"
                  % (NS_SASL, base64.b64encode(msg).decode()))
        return self.read_element()

    def channel_binding(self, cb_type):
        if cb_type == 'tls-unique':
            return self.sock.get_channel_binding('tls-unique')
        if cb_type == 'tls-exporter':
            return tls_exporter(self.sock)
        if cb_type == 'tls-server-end-point':
            return tls_server_end_point(self.sock)
        raise ValueError(cb_type)

    def auth_scram(self, user, password, mech='SCRAM-SHA-256', cb_type=None,
                   cb_flag=None, cb_data=None):
        """SCRAM (RFC 5802) by hand. For -PLUS, cb_type names the channel
        binding; cb_data overrides the computed data (to test a mismatch);
        cb_flag overrides the gs2 flag ('y' to claim no server support).
        Returns (final element, server signature verified)."""
        hname = 'sha256' if 'SHA-256' in mech else 'sha1'
        if mech.endswith('-PLUS'):
            gs2 = 'p=%s,,' % cb_type
            binding = cb_data if cb_data is not None else self.channel_binding(cb_type)
        else:
            gs2 = '%s,,' % (cb_flag or 'n')
            binding = b''
        cnonce = base64.b64encode(os.urandom(18)).decode()
        name = user.replace('=', '=3D').replace(',', '=2C')
        first_bare = 'n=%s,r=%s' % (name, cnonce)
        self.send("<auth xmlns='%s' mechanism='%s'>%s</auth>"
                  % (NS_SASL, mech, base64.b64encode((gs2 + first_bare).encode()).decode()))
        el = self.read_element()
        if el.tag != '{%s}challenge' % NS_SASL:
            return el, False
        server_first = base64.b64decode(el.text or '').decode()
        attrs = dict(kv.split('=', 1) for kv in server_first.split(','))
        if not attrs['r'].startswith(cnonce):
            raise AssertionError('server nonce does not extend ours: %r' % server_first)
        salt = base64.b64decode(attrs['s'])
        iterations = int(attrs['i'])
        cbind = base64.b64encode(gs2.encode() + binding).decode()
        final_bare = 'c=%s,r=%s' % (cbind, attrs['r'])
        salted = hashlib.pbkdf2_hmac(hname, password.encode('utf-8'), salt, iterations)
        client_key = hmac.new(salted, b'Client Key', hname).digest()
        stored_key = hashlib.new(hname, client_key).digest()
        auth_message = ('%s,%s,%s' % (first_bare, server_first, final_bare)).encode()
        signature = hmac.new(stored_key, auth_message, hname).digest()
        proof = bytes(a ^ b for a, b in zip(client_key, signature))
        server_key = hmac.new(salted, b'Server Key', hname).digest()
        server_sig = hmac.new(server_key, auth_message, hname).digest()
        final = '%s,p=%s' % (final_bare, base64.b64encode(proof).decode())
        self.send("<response xmlns='%s'>%s</response>"
                  % (NS_SASL, base64.b64encode(final.encode()).decode()))
        el = self.read_element()
        verified = False
        if el.tag == '{%s}success' % NS_SASL and el.text:
            data = base64.b64decode(el.text).decode()
            verified = data == 'v=' + base64.b64encode(server_sig).decode()
        return el, verified

    def bind(self, resource=None):
        """Resource binding; returns the IQ answer element."""
        inner = '<resource>%s</resource>' % _xml_escape(resource) if resource is not None else ''
        self.send("<iq type='set' id='bind1'><bind xmlns='%s'>%s</bind></iq>" % (NS_BIND, inner))
        el = self.read_element()
        if el.get('type') == 'result':
            j = el.find('{%s}bind/{%s}jid' % (NS_BIND, NS_BIND))
            self.jid = j.text if j is not None else None
        return el

    def login(self, user, password, resource=None):
        """STARTTLS, PLAIN, stream restart and bind; returns the full JID."""
        self.connect_tls()
        el = self.auth_plain(user, password)
        if el.tag != '{%s}success' % NS_SASL:
            raise AssertionError('login failed: %s' % ET.tostring(el, encoding='unicode'))
        self.open_stream()
        res = self.bind(resource)
        if res.get('type') != 'result':
            raise AssertionError('bind failed: %s' % ET.tostring(res, encoding='unicode'))
        return self.jid

    def stream_error(self, timeout=None):
        """Waits for a <stream:error/> and returns it (or raises)."""
        ok = self.read_until(lambda c: any(e.tag == '{%s}error' % NS_STREAM
                                           for e in c.elements), timeout)
        if not ok:
            raise AssertionError('no stream error (closed=%s, parse_error=%s); received: %r'
                                 % (self.closed, self.parse_error, self.raw[-2000:]))
        return [e for e in self.elements if e.tag == '{%s}error' % NS_STREAM][0]


def _xml_escape(s):
    return (s.replace('&', '&amp;').replace('<', '&lt;').replace('>', '&gt;')
            .replace("'", '&apos;').replace('"', '&quot;'))


def features_of(el):
    """Child tags of a <stream:features/> element, in order."""
    return [c.tag for c in el]


def mechanisms_of(el):
    mechs = el.find('{%s}mechanisms' % NS_SASL)
    if mechs is None:
        return []
    return [m.text for m in mechs.findall('{%s}mechanism' % NS_SASL)]


# ==== test case base ====

class ParleyTestCase(unittest.IsolatedAsyncioTestCase):
    """Base class: starts servers and clients and cleans them up.

    A class can set SHARED_SERVER = {kwargs} to run one server for all its
    tests (started in setUpClass); otherwise tests call self.parley()."""

    SHARED_SERVER = None
    _users = itertools.count(1)

    @classmethod
    def setUpClass(cls):
        # A failure here is re-raised by every test's setUp, so each test
        # of the class is reported (and counted) as failed.
        cls.class_error = None
        cls.shared = None
        try:
            cls.run_ctx = run_context()
            if cls.SHARED_SERVER is not None:
                cls.shared = Parley(cls.run_ctx, **cls.SHARED_SERVER)
                cls.shared.start()
        except Exception as e:
            cls.class_error = e
            if cls.shared is not None:
                cls.shared.kill9()
                cls.shared.ports.close()
                cls.shared = None

    @classmethod
    def tearDownClass(cls):
        if cls.shared is not None:
            srv, cls.shared = cls.shared, None
            try:
                srv.stop()
            finally:
                srv.ports.close()

    def setUp(self):
        self._servers = []
        self._clients = []
        self._raws = []
        if self.class_error is not None:
            raise AssertionError('class set-up failed: %s' % self.class_error)

    async def asyncTearDown(self):
        for c in self._clients:
            await c.close(wait=0.5)
        for r in self._raws:
            r.close()
        for s in self._servers:
            if s.proc is not None:
                s.stop()
        if self.shared is not None:
            if not self.shared.running():
                raise AssertionError('the shared parleyd died\n' + self.shared.log_tail())
            self.shared.check_log_clean()

    @property
    def server(self):
        return self.shared

    def failure_context(self, lines=25):
        """The log tails of the servers this test used (for reports)."""
        servers = list(getattr(self, '_servers', []))
        if self.shared is not None:
            servers.append(self.shared)
        parts = []
        for srv in servers:
            parts.append('--- parleyd #%d log (%s), last %d lines ---\n%s'
                         % (srv.n, srv.logfile, lines, srv.log_tail(lines)))
        return '\n'.join(parts)

    def parley(self, start=True, **kw):
        """A fresh server for this test (stopped, and checked, at the end)."""
        p = self.track(Parley(self.run_ctx, **kw))
        if start:
            p.start()
        return p

    def track(self, server):
        """Stops server (in tearDown) and releases its ports (after it)."""
        self._servers.append(server)
        self.addCleanup(server.ports.close)
        return server

    def user(self, server=None, password=None, domain='localhost', prefix='u'):
        """Creates a new account; returns (bare JID, password)."""
        server = server or self.server
        n = next(self._users)
        jid = '%s%d_%d@%s' % (prefix, server.n, n, domain)
        password = password or 'pw-%d-%s' % (n, base64.b32encode(os.urandom(5)).decode())
        server.add_user(jid, password)
        return jid, password

    async def client(self, jid, password, server=None, resource=None, wait=True,
                     **kw):
        """A connected slixmpp client (session started unless wait=False)."""
        server = server or self.server
        full = jid + ('/' + resource if resource else '')
        c = Client(server, full, password, **kw)
        self._clients.append(c)
        c.start()
        if wait:
            await c.wait_session()
        return c

    async def online(self, jid, password, server=None, resource=None, priority=None, **kw):
        """A connected client that has sent initial presence."""
        c = await self.client(jid, password, server=server, resource=resource, **kw)
        c.available(priority)
        # stanzas of one stream are handled in order: once this ping is
        # answered, the presence has been processed
        await c.iq('get', c.boundjid.domain, "<ping xmlns='urn:xmpp:ping'/>")
        c.drain()
        return c

    def raw(self, server=None, **kw):
        r = RawClient(server or self.server, **kw)
        self._raws.append(r)
        return r

    async def settle(self, seconds=0.2):
        """Lets in-flight stanzas arrive (longer on slow builds)."""
        await asyncio.sleep(seconds * self.run_ctx.slow)

    async def in_thread(self, fn, *args, **kw):
        """Runs a blocking call without stalling the clients' loop."""
        return await asyncio.to_thread(fn, *args, **kw)

    def assertStanzaError(self, stanza, etype, condition):
        e = error_of(stanza)
        self.assertIsNotNone(e, 'no <error/> in %s' % xml_str(stanza))
        self.assertEqual(stanza.xml.get('type') if hasattr(stanza, 'xml') else stanza.get('type'),
                         'error', xml_str(stanza))
        self.assertEqual((e[0], e[1]), (etype, [condition]), xml_str(stanza))

    def assertStreamError(self, raw, condition):
        """The raw client got exactly this stream error, then the server
        closed the stream and the connection."""
        el = raw.stream_error()
        conds, _ = stream_error_of(el)
        self.assertEqual(conds, [condition], ET.tostring(el, encoding='unicode'))
        self.assertTrue(raw.read_to_close(timeout=5),
                        'server did not close the connection after <%s/>' % condition)
        self.assertTrue(raw.stream_closed,
                        'no </stream:stream> after the stream error; received %r'
                        % raw.raw[-500:])
        idx = raw.elements.index(el)
        self.assertEqual(len(raw.elements), idx + 1,
                         'elements after the stream error: %r' % raw.elements[idx + 1:])
        return el


# ==== command line: a throwaway cluster for other scripts ====

def _main(argv):
    """`harness.py pg-start` prints "DIR\\tCONNINFO" of a new running
    cluster; `harness.py pg-stop DIR` stops and removes it."""
    if len(argv) >= 1 and argv[0] == 'pg-start':
        pg = Postgres()
        pg.start()
        print('%s\t%s' % (pg.dir, pg.conninfo('parley')))
        subprocess.run([os.path.join(pg.bindir, 'createdb'), '-h', pg.sockdir, '-U', 'parley',
                        'parley'], check=True, stdin=subprocess.DEVNULL)
        return 0
    if len(argv) == 2 and argv[0] == 'pg-stop':
        d = os.path.abspath(argv[1])
        if not os.path.basename(d).startswith('parley-pg-') or not os.path.isdir(d):
            print('not a harness cluster: %s' % d, file=sys.stderr)
            return 1
        pg = Postgres.__new__(Postgres)
        pg.bindir = pg_bindir()
        pg.dir = d
        pg.data = os.path.join(d, 'data')
        pg.sockdir = os.path.join(d, 'sock')
        pg.user = unprivileged_user() if os.geteuid() == 0 else None
        pg.running = True
        pg.destroy()
        return 0
    print('usage: harness.py pg-start | pg-stop DIR', file=sys.stderr)
    return 2


if __name__ == '__main__':
    sys.exit(_main(sys.argv[1:]))
