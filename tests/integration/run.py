#!/usr/bin/python3
"""tests/integration/run.py: runs the integration tests.

    /usr/bin/python3 tests/integration/run.py [--build DIR] [--list] [PATTERN...]

Discovers tests/integration/test_*.py, runs every test (or those whose id
contains a PATTERN, or matches it as a shell glob) against the build in
DIR (default: build/), prints "PASS integration:<id>" or "FAIL
integration:<id>" per test, with the failure and the server log tail
indented below a failure, and ends with "N passed, M failed". Exit status
1 if any test failed. One PostgreSQL cluster and one test CA serve the
whole run.
"""

import argparse
import re
import fnmatch
import os
import signal
import sys
import time
import traceback
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

TEST_TIMEOUT = 120   # seconds for one test, setUp and tearDown included


RESULT_LINE = re.compile(r'^(\d+) passed, (\d+) failed$')


class TestTimeout(Exception):
    pass


def _alarm(signum, frame):
    raise TestTimeout('test exceeded %ds' % TEST_TIMEOUT)


def iter_tests(suite):
    for t in suite:
        if isinstance(t, unittest.TestSuite):
            yield from iter_tests(t)
        else:
            yield t


def short_id(test):
    return test.id()


def matches(test_id, patterns):
    if not patterns:
        return True
    for p in patterns:
        if any(ch in p for ch in '*?['):
            if fnmatch.fnmatch(test_id, p) or fnmatch.fnmatch(test_id, '*' + p + '*'):
                return True
        elif p in test_id:
            return True
    return False


def indent(text):
    return ''.join('    ' + line + '\n' for line in text.rstrip('\n').split('\n'))


class LineResult(unittest.TestResult):
    """Prints one PASS/FAIL line per test as it finishes."""

    def __init__(self, out):
        super().__init__()
        self.out = out
        self.passed = 0
        self.failed = 0
        self._problems = {}
        self._started = {}

    def startTest(self, test):
        super().startTest(test)
        self._started[test.id()] = time.monotonic()
        self._problems.pop(test.id(), None)

    def _problem(self, test, err):
        self._problems.setdefault(test.id(), []).append(self._exc_info_to_string(err, test))

    def addError(self, test, err):
        super().addError(test, err)
        if isinstance(test, unittest.case._SubTest):
            test = test.test_case
        self._problem_or_fixture(test, err)

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._problem(test, err)

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            self._problems.setdefault(test.id(), []).append(
                '%s:\n%s' % (subtest.id(), self._exc_info_to_string(err, test)))

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._problems.setdefault(test.id(), []).append('skipped: %s' % reason)

    def _problem_or_fixture(self, test, err):
        # setUpClass / tearDownClass / module fixtures arrive as _ErrorHolder
        if not isinstance(test, unittest.TestCase):
            self._line(False, test.id(), [''.join(traceback.format_exception(*err))])
            return
        self._problem(test, err)

    def stopTest(self, test):
        super().stopTest(test)
        problems = self._problems.pop(test.id(), [])
        if problems and hasattr(test, 'failure_context'):
            try:
                problems.append(test.failure_context())
            except Exception as e:
                problems.append('(no server logs: %s)' % e)
        elapsed = time.monotonic() - self._started.pop(test.id(), time.monotonic())
        self._line(not problems, test.id(), problems, elapsed)

    def _line(self, ok, test_id, problems, elapsed=None):
        if ok:
            self.passed += 1
        else:
            self.failed += 1
        timing = ' (%.1fs)' % elapsed if elapsed is not None else ''
        self.out.write('%s integration:%s%s\n' % ('PASS' if ok else 'FAIL', test_id, timing))
        for p in problems:
            self.out.write(indent(p))
        self.out.flush()


def run_workers(args, tests):
    """Spreads the test modules over args.jobs worker processes (each with
    its own PostgreSQL cluster and servers), echoes their result lines and
    prints the combined count."""
    import subprocess
    import threading
    # the unit of distribution is a test class (module.Class)
    by_module = {}
    for t in tests:
        key = '.'.join(t.id().split('.')[:2])
        by_module[key] = by_module.get(key, 0) + 1
    jobs = min(args.jobs, len(by_module)) or 1
    groups = [[] for _ in range(jobs)]
    load = [0] * jobs
    for mod, n in sorted(by_module.items(), key=lambda kv: -kv[1]):
        i = load.index(min(load))
        groups[i].append(mod)
        load[i] += n
    started = time.monotonic()
    lock = threading.Lock()
    counts = {'passed': 0, 'failed': 0, 'summaries': 0}

    def pump(proc):
        for line in proc.stdout:
            if RESULT_LINE.match(line):
                with lock:
                    p, f = RESULT_LINE.match(line).groups()
                    counts['passed'] += int(p)
                    counts['failed'] += int(f)
                    counts['summaries'] += 1
                continue
            if line.startswith('integration tests took'):
                continue
            with lock:
                sys.stdout.write(line)
                sys.stdout.flush()

    procs, threads = [], []
    for g in groups:
        cmd = [sys.executable, os.path.abspath(__file__), '--build', args.build,
               '--modules', ','.join(g)] + list(args.patterns)
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, bufsize=1)
        th = threading.Thread(target=pump, args=(proc,))
        th.start()
        procs.append(proc)
        threads.append(th)
    for th in threads:
        th.join()
    for proc in procs:
        proc.wait()
    missing = jobs - counts['summaries']
    if missing:
        sys.stdout.write('FAIL integration:workers (%d worker(s) ended without a result)\n'
                         % missing)
        counts['failed'] += missing
    sys.stdout.write('integration tests took %.0fs (%d workers)\n'
                     % (time.monotonic() - started, jobs))
    sys.stdout.write('%d passed, %d failed\n' % (counts['passed'], counts['failed']))
    sys.stdout.flush()
    return 1 if counts['failed'] else 0


def main():
    ap = argparse.ArgumentParser(description='Parley integration tests')
    ap.add_argument('--build', default=os.path.join(REPO, 'build'))
    ap.add_argument('--list', action='store_true', help='list the tests and exit')
    ap.add_argument('--jobs', type=int,
                    default=int(os.environ.get('PARLEY_TEST_JOBS', '3')),
                    help='worker processes (test modules are spread over them)')
    ap.add_argument('--modules', help=argparse.SUPPRESS)  # worker mode
    ap.add_argument('patterns', nargs='*')
    args = ap.parse_args()
    os.environ['PARLEY_BUILD'] = os.path.abspath(args.build)

    loader = unittest.TestLoader()
    suite = loader.discover(HERE, pattern='test_*.py', top_level_dir=HERE)
    tests = [t for t in iter_tests(suite) if matches(t.id(), args.patterns)]
    if args.modules is not None:
        wanted = set(args.modules.split(','))
        tests = [t for t in tests if '.'.join(t.id().split('.')[:2]) in wanted]

    if args.list:
        for t in tests:
            print(t.id())
        return 0
    if args.modules is None and args.jobs > 1:
        return run_workers(args, tests)

    out = sys.stdout
    result = LineResult(out)
    if not tests:
        out.write('0 passed, 0 failed\n')
        return 0

    import harness
    signal.signal(signal.SIGALRM, _alarm)
    started = time.monotonic()
    try:
        harness.run_context()
    except Exception:
        out.write('FAIL integration:harness-setup\n')
        out.write(indent(traceback.format_exc()))
        out.write('0 passed, 1 failed\n')
        return 1

    runner_suite = unittest.TestSuite(tests)
    # a per-test watchdog: SIGALRM interrupts a test that hangs
    orig_run = unittest.TestCase.run

    def run_with_alarm(self, result=None):
        signal.alarm(TEST_TIMEOUT)
        try:
            return orig_run(self, result)
        finally:
            signal.alarm(0)

    unittest.TestCase.run = run_with_alarm
    try:
        runner_suite.run(result)
    finally:
        unittest.TestCase.run = orig_run
        signal.alarm(0)
        harness.close_run()
    out.write('integration tests took %.0fs\n' % (time.monotonic() - started))
    out.write('%d passed, %d failed\n' % (result.passed, result.failed))
    out.flush()
    return 1 if result.failed else 0


if __name__ == '__main__':
    sys.exit(main())
