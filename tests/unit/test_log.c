/* test_log.c - lib/util/sl_log: the line format the mail-log tools read
 * (a syslog file's: "Mmm dd hh:mm:ss host ident[pid]: "), log.ident,
 * the journal's priority prefixes when stderr is systemd's journal
 * (JOURNAL_STREAM), and settings changed while other threads log (a
 * reload). stderr goes to a temporary file for each case. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/sl_log.h"
#include "util/sl_util.h"

static int saved_stderr = -1;
static char capture_path[] = "/tmp/sluice-test-log.XXXXXX";

/* stderr to a new temporary file */
static void
capture_start(void)
{
    int fd;

    strcpy(capture_path, "/tmp/sluice-test-log.XXXXXX");
    fd = mkstemp(capture_path);
    assert_true(fd >= 0);
    fflush(stderr);
    saved_stderr = dup(STDERR_FILENO);
    assert_true(saved_stderr >= 0);
    assert_true(dup2(fd, STDERR_FILENO) >= 0);
    close(fd);
}

/* stderr back; the captured text, malloc'ed */
static char *
capture_end(void)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f;

    fflush(stderr);
    assert_true(dup2(saved_stderr, STDERR_FILENO) >= 0);
    close(saved_stderr);
    f = fopen(capture_path, "r");
    assert_non_null(f);
    assert_true(getdelim(&text, &len, '\0', f) >= 0 || feof(f));
    fclose(f);
    unlink(capture_path);
    return text != NULL ? text : sl_strdup("");
}

static void
assert_matches(const char *text, const char *re)
{
    regex_t r;

    assert_int_equal(regcomp(&r, re, REG_EXTENDED | REG_NEWLINE | REG_NOSUB), 0);
    if (regexec(&r, text, 0, NULL, 0) != 0)
        fail_msg("/%s/ does not match:\n%s", re, text);
    regfree(&r);
}

#define STAMP "[A-Z][a-z]{2} [ 1-3][0-9] [0-2][0-9]:[0-5][0-9]:[0-6][0-9] [^ ]+ "

/* The format of a syslog file (what logwatch's shared filters and
 * mailgraph's Parse::Syslog take apart), with the ident given. */
static void
test_file_format(void **state)
{
    capture_start();
    sl_log_open("amavis", SL_LOG_STDERR, LOG_INFO);
    sl_info("(2Ss9GwNayojX) Passed CLEAN {RelayedInbound}, [203.0.113.5]:4711 <a@b> -> <c@d>");
    sl_warn("a warning");
    sl_log(LOG_CRIT, "the end");
    sl_debug("not written at info");
    assert_false(sl_log_journal());
    char *text = capture_end();

    assert_matches(text, "^" STAMP "amavis\\[[0-9]+\\]: \\(2Ss9GwNayojX\\) Passed CLEAN "
                         "\\{RelayedInbound\\}, \\[203\\.0\\.113\\.5\\]:4711 <a@b> -> <c@d>$");
    assert_matches(text, "^" STAMP "amavis\\[[0-9]+\\]: warning: a warning$");
    assert_matches(text, "^" STAMP "amavis\\[[0-9]+\\]: fatal: the end$");
    assert_null(strstr(text, "not written"));
    free(text);
}

/* stderr is the journal: <N> priority prefixes and no stamp, host or
 * name; a JOURNAL_STREAM naming another file (inherited by a process
 * whose stderr went elsewhere) does not count. */
static void
test_journal(void **state)
{
    struct stat st;
    char *env;

    capture_start();
    assert_int_equal(fstat(STDERR_FILENO, &st), 0);
    env = sl_asprintf("%llu:%llu", (unsigned long long)st.st_dev, (unsigned long long)st.st_ino);
    setenv("JOURNAL_STREAM", env, 1);
    sl_log_open("sluice", SL_LOG_STDERR, LOG_DEBUG);
    assert_true(sl_log_journal());
    sl_info("(id) Passed CLEAN");
    sl_warn("w");
    sl_error("e");
    sl_log(LOG_CRIT, "c");
    sl_notice("n");
    sl_debug("d");
    char *text = capture_end();
    assert_string_equal(text, "<6>(id) Passed CLEAN\n<4>warning: w\n<3>error: e\n<2>fatal: c\n"
                              "<5>notice: n\n<7>debug: d\n");
    free(text);
    free(env);

    capture_start();
    setenv("JOURNAL_STREAM", "1:2", 1);
    sl_log_open("sluice", SL_LOG_STDERR, LOG_INFO);
    assert_false(sl_log_journal());
    sl_info("plain");
    text = capture_end();
    assert_matches(text, "^" STAMP "sluice\\[[0-9]+\\]: plain$");
    free(text);
    unsetenv("JOURNAL_STREAM");
}

#define LOG_THREADS 3
#define LOG_LINES 2000

static void *
log_lines(void *arg)
{
    (void)arg;
    for (int i = 0; i < LOG_LINES; i++)
        sl_info("line %d", i);
    return NULL;
}

/* A reload changes ident and level while other threads log: every line is
 * whole and carries one of the two names; the level applies at once. */
static void
test_reopen_while_logging(void **state)
{
    pthread_t t[LOG_THREADS];

    capture_start();
    sl_log_open("sluice", SL_LOG_STDERR, LOG_INFO);
    for (int i = 0; i < LOG_THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, log_lines, NULL), 0);
    for (int i = 0; i < 50; i++)
        sl_log_open(i % 2 ? "sluice" : "amavis", SL_LOG_STDERR, LOG_INFO);
    for (int i = 0; i < LOG_THREADS; i++)
        pthread_join(t[i], NULL);
    sl_log_open("amavis", SL_LOG_STDERR, LOG_WARNING);
    sl_info("filtered");
    sl_warn("kept");
    char *text = capture_end();

    size_t lines = 0;
    regex_t r;
    assert_int_equal(regcomp(&r,
                             "^" STAMP "(sluice|amavis)\\[[0-9]+\\]: (line [0-9]+|warning: kept)$",
                             REG_EXTENDED | REG_NOSUB),
                     0);
    for (char *line = strtok(text, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        if (regexec(&r, line, 0, NULL, 0) != 0)
            fail_msg("not a whole line: \"%s\"", line);
        lines++;
    }
    regfree(&r);
    assert_int_equal(lines, LOG_THREADS * LOG_LINES + 1);
    free(text);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_file_format),
        cmocka_unit_test(test_journal),
        cmocka_unit_test(test_reopen_while_logging),
    };
    unsetenv("JOURNAL_STREAM");
    return cmocka_run_group_tests(tests, NULL, NULL);
}
