/* tests/unit/runner.c: main() for every unit test binary. Runs each
 * registered test in a child process with a 20 second timeout (or only
 * the tests named on the command line) and prints a PASS or FAIL line per
 * test, then "N passed, M failed". Exit status 1 if any failed. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "test.h"

#define MAX_TESTS 512

static struct { const char *name; pl_test_fn fn; } tests[MAX_TESTS];
static int ntests;

void pl_test_register(const char *name, pl_test_fn fn)
{
    if (ntests < MAX_TESTS) {
        tests[ntests].name = name;
        tests[ntests].fn = fn;
        ntests++;
    }
}

static const char *suite_name(const char *argv0)
{
    const char *s = strrchr(argv0, '/');
    return s ? s + 1 : argv0;
}

static int selected(int argc, char **argv, const char *name)
{
    if (argc < 2)
        return 1;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return 1;
    return 0;
}

int main(int argc, char **argv)
{
    const char *suite = suite_name(argv[0]);
    int passed = 0, failed = 0;
    for (int i = 0; i < ntests; i++) {
        if (!selected(argc, argv, tests[i].name))
            continue;
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            alarm(20);
            tests[i].fn();
            fflush(stdout);
            _exit(0);
        }
        int status = 0;
        waitpid(pid, &status, 0);
        int ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
        if (!ok && WIFSIGNALED(status))
            fprintf(stderr, "%s:%s: killed by signal %d%s\n", suite, tests[i].name,
                    WTERMSIG(status), WTERMSIG(status) == SIGALRM ? " (timeout)" : "");
        printf("%s %s:%s\n", ok ? "PASS" : "FAIL", suite, tests[i].name);
        if (ok)
            passed++;
        else
            failed++;
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
