/* test_quar.c - lib/quar without a database: the stored text (amavis'
 * prefix fields, X-Sluice-Quarantine, LF line ends) built and read back,
 * sealed and opened, an amavis-written text read; ids as users give them;
 * the local: store in amavis' layout (put, get, list with filters, delete,
 * expiry under its lock, a second put of one id refused; sealed with a
 * key from the environment: not readable without it); AM.PDP lines in
 * and out, as amavisd-release writes and reads them. The sql: store and
 * releases run against real PostgreSQL and Postfix in tests/e2e. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <utime.h>

#include "conf/sl_config.h"
#include "lib/quar/quar_int.h"
#include "quar/sl_quar.h"

static const char message[] = "From: <s@example.org>\r\nTo: <a@example.com>\r\n"
                              "Subject: hello\r\nMessage-ID: <m1@example.org>\r\n\r\n"
                              "line one\r\n.dot line\r\nlast\r\n";

static struct sl_quar_rcpt rcpts[2] = {
    {.address = "a@example.com", .blocked = true, .ds = 'D', .content = 'V'},
    {.address = "b@example.com", .blocked = false, .ds = 'P', .content = 'C'},
};
static char *alerts[] = {"INFECTED, message contains virus: Eicar-Test-Signature"};

static void
entry_fill(struct sl_quar_entry *e, const char *mail_id)
{
    memset(e, 0, sizeof(*e));
    snprintf(e->type, sizeof(e->type), "virus");
    snprintf(e->mail_id, sizeof(e->mail_id), "%s", mail_id);
    snprintf(e->secret_id, sizeof(e->secret_id), "SeCrEt012345");
    e->sender = "s@example.org";
    e->rcpts = rcpts;
    e->n_rcpts = 2;
    e->origin = "default";
    e->client = "127.0.0.1";
    e->category = "INFECTED";
    e->alerts = alerts;
    e->n_alerts = 1;
    e->host = "mx.example.com";
    e->time_ms = 1700000000123ULL;
    e->size = sizeof(message) - 1;
    e->message = (char *)message;
    e->message_len = sizeof(message) - 1;
}

static void
test_text_round_trip(void **state)
{
    struct sl_quar_entry in, out = {0};
    size_t len;
    char *error = NULL;

    (void)state;
    entry_fill(&in, "Abcdefghij12");
    char *text = quar_text_build(&in, true, NULL, &len);
    assert_non_null(strstr(text, "Return-Path: <s@example.org>\nDelivered-To: virus-quarantine\n"
                                 "X-Envelope-From: <s@example.org>\n"
                                 "X-Envelope-To: <a@example.com>,\n <b@example.com>\n"
                                 "X-Envelope-To-Blocked: <a@example.com>\n"
                                 "X-Quarantine-ID: <Abcdefghij12>\n"
                                 "X-Amavis-Alert: INFECTED, message contains virus: "
                                 "Eicar-Test-Signature\nX-Sluice-Quarantine: type=virus; "));
    assert_null(strchr(text, '\r')); /* LF, as amavis' files */
    assert_int_equal(quar_text_parse(text, len, NULL, true, &out, &error), 0);
    assert_string_equal(out.type, "virus");
    assert_string_equal(out.mail_id, "Abcdefghij12");
    assert_string_equal(out.secret_id, "SeCrEt012345");
    assert_string_equal(out.sender, "s@example.org");
    assert_int_equal(out.n_rcpts, 2);
    assert_string_equal(out.rcpts[1].address, "b@example.com");
    assert_true(out.rcpts[0].blocked);
    assert_false(out.rcpts[1].blocked);
    assert_string_equal(out.origin, "default");
    assert_string_equal(out.client, "127.0.0.1");
    assert_string_equal(out.category, "INFECTED");
    assert_int_equal(out.time_ms, 1700000000123ULL);
    assert_string_equal(out.subject, "hello");
    assert_string_equal(out.message_id, "<m1@example.org>");
    assert_int_equal(out.n_alerts, 1);
    assert_string_equal(out.message, "From: <s@example.org>\nTo: <a@example.com>\nSubject: hello\n"
                                     "Message-ID: <m1@example.org>\n\nline one\n.dot line\nlast\n");
    sl_quar_entry_clear(&out);
    free(text);
}

static void
test_sealed(void **state)
{
    unsigned char key[QUAR_KEY_LEN], other[QUAR_KEY_LEN];
    struct sl_quar_entry in, out = {0};
    char *error = NULL;
    size_t len;

    (void)state;
    randombytes_buf(key, sizeof(key));
    randombytes_buf(other, sizeof(other));
    entry_fill(&in, "Sealed123456");
    char *text = quar_text_build(&in, false, key, &len);
    assert_null(memmem(text, len, "line one", 8)); /* the message is not readable */
    assert_non_null(strstr(text, "X-Envelope-To: <a@example.com>")); /* the envelope is */
    assert_non_null(strstr(text, "sealed=1"));
    /* listing reads the header fields without the key */
    assert_int_equal(quar_text_parse(text, len, NULL, false, &out, &error), 0);
    assert_string_equal(out.mail_id, "Sealed123456");
    assert_null(out.subject);
    sl_quar_entry_clear(&out);
    assert_int_equal(quar_text_parse(text, len, NULL, true, &out, &error), -1);
    assert_non_null(strstr(error, "no key"));
    sl_quar_entry_clear(&out);
    sl_free_and_clear(&error);
    assert_int_equal(quar_text_parse(text, len, other, true, &out, &error), -1);
    assert_non_null(strstr(error, "wrong key"));
    sl_quar_entry_clear(&out);
    sl_free_and_clear(&error);
    assert_int_equal(quar_text_parse(text, len, key, true, &out, &error), 0);
    assert_non_null(strstr(out.message, "\n.dot line\n"));
    assert_string_equal(out.subject, "hello");
    sl_quar_entry_clear(&out);
    free(text);

    /* A nonce that begins with SP or HT (2 draws in 256) is no folded
     * line of the field above it: seal until one does, then open it. */
    int found = 0;
    for (int i = 0; i < 20000 && !found; i++) {
        text = quar_text_build(&in, false, key, &len);
        const char *nonce = strstr(text, "sealed=1\n") + 9;
        if (*nonce == ' ' || *nonce == '\t') {
            found = 1;
            assert_int_equal(quar_text_parse(text, len, key, true, &out, &error), 0);
            assert_non_null(out.subject); /* not the ciphertext taken for the message */
            assert_string_equal(out.subject, "hello");
            sl_quar_entry_clear(&out);
        }
        free(text);
    }
    assert_true(found);
}

/* A file amavisd-new wrote: its fields, its Received, the message. */
static void
test_amavis_text(void **state)
{
    static const char text[] = "Return-Path: <s@example.org>\nDelivered-To: virus-quarantine\n"
                               "X-Envelope-From: <s@example.org>\nX-Envelope-To: <a@x.test>\n"
                               "X-Envelope-To-Blocked: <a@x.test>\n"
                               "X-Quarantine-ID: <VJ0aS3P5bbDF>\n"
                               "X-Spam-Flag: NO\nReceived: from localhost by amavis\n"
                               "Subject: old\n\nbody\n";
    struct sl_quar_entry out = {0};
    char *error = NULL;

    (void)state;
    assert_int_equal(quar_text_parse(text, sizeof(text) - 1, NULL, true, &out, &error), 0);
    assert_string_equal(out.mail_id, "VJ0aS3P5bbDF");
    assert_string_equal(out.rcpts[0].address, "a@x.test");
    assert_string_equal(out.message, "Received: from localhost by amavis\nSubject: old\n\nbody\n");
    sl_quar_entry_clear(&out);
    assert_int_equal(quar_text_parse("Subject: x\n\ny\n", 14, NULL, true, &out, &error), -1);
    sl_quar_entry_clear(&out);
    free(error);
}

static void
test_ids(void **state)
{
    char type[SL_QUAR_TYPE_MAX + 1], id[SL_ID_LEN + 1];

    (void)state;
    assert_int_equal(sl_quar_id_parse("virus-Ab-d_fghij12", type, id), 0);
    assert_string_equal(type, "virus");
    assert_string_equal(id, "Ab-d_fghij12");
    assert_int_equal(sl_quar_id_parse("A/badh-Abcdefghij12", type, id), 0);
    assert_string_equal(type, "badh");
    assert_int_equal(sl_quar_id_parse("Abcdefghij12", type, id), 0);
    assert_string_equal(type, "");
    assert_int_equal(sl_quar_id_parse("clean-Abcdefghij12", type, id), -1);
    assert_int_equal(sl_quar_id_parse("virus-short", type, id), -1);
    assert_int_equal(sl_quar_id_parse("virus-Abcdefghij1!", type, id), -1);
    assert_int_equal(sl_quar_content_letter("INFECTED"), 'V');
    assert_int_equal(sl_quar_content_letter("SPAMMY"), 'Y');
    assert_int_equal(sl_quar_content_letter("SPAM"), 'S');
    assert_int_equal(sl_quar_content_letter("BAD-HEADER"), 'H');
    assert_int_equal(sl_quar_content_letter("CLEAN"), 'C');
    /* job ids: amavisd-release splits "virus-<id>" only when the id
     * begins and ends with a letter or digit */
    for (int i = 0; i < 2000; i++) {
        char j[SL_ID_LEN + 1];
        sl_id_new(j);
        assert_true(j[0] != '-' && j[0] != '_' && j[11] != '-' && j[11] != '_');
    }
}

/* ---- the local: store --------------------------------------------------- */

static char dir[64];

static struct sl_quar_store *
local_store(void)
{
    char *ov = sl_asprintf("quarantine.store=local:%s", dir), *error = NULL;
    struct sl_config *c = sl_config_load_buffer("test", "", 0, &ov, 1, &error);
    struct sl_quar_store *s;

    assert_non_null(c);
    s = sl_quar_store_open(c, &error);
    assert_non_null(s);
    sl_config_destroy(&c);
    free(ov);
    return s;
}

struct seen {
    char ids[8][SL_QUAR_ID_MAX + 1];
    size_t n;
};

static void
on_entry(void *ctx, const struct sl_quar_entry *e)
{
    struct seen *s = ctx;
    assert_true(s->n < 8);
    sl_quar_entry_id(e, s->ids[s->n++]);
}

static void
test_local_store(void **state)
{
    struct sl_quar_store *s;
    struct sl_quar_entry in, out;
    struct seen seen = {0};
    struct sl_quar_filter all = {0}, only_b = {.recipient = "B@example.com"};
    char *error = NULL;
    unsigned long n;

    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/sluice-test-quar.XXXXXX");
    assert_non_null(mkdtemp(dir));
    s = local_store();
    entry_fill(&in, "Abcdefghij12");
    assert_int_equal(sl_quar_put(s, &in, &error), 0);
    char *path = sl_asprintf("%s/A/virus-Abcdefghij12", dir);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0640);
    /* amavis refuses to overwrite; so does sluice */
    assert_int_equal(sl_quar_put(s, &in, &error), -1);
    assert_non_null(strstr(error, "exists already"));
    sl_free_and_clear(&error);

    entry_fill(&in, "zyxwvu987654");
    snprintf(in.type, sizeof(in.type), "spam");
    in.n_rcpts = 1;
    in.time_ms += 1000;
    assert_int_equal(sl_quar_put(s, &in, &error), 0);

    assert_int_equal(sl_quar_get(s, "Abcdefghij12", &out, &error), 1);
    assert_string_equal(out.type, "virus");
    assert_string_equal(out.secret_id, "SeCrEt012345");
    sl_quar_entry_clear(&out);
    assert_int_equal(sl_quar_get(s, "A/virus-Abcdefghij12", &out, &error), 1);
    sl_quar_entry_clear(&out);
    assert_int_equal(sl_quar_get(s, "banned-Abcdefghij12", &out, &error), 0);
    assert_int_equal(sl_quar_get(s, "nonsense", &out, &error), -1);
    sl_free_and_clear(&error);

    assert_int_equal(sl_quar_list(s, &all, on_entry, &seen, &error), 0);
    assert_int_equal(seen.n, 2);
    assert_string_equal(seen.ids[0], "virus-Abcdefghij12");
    assert_string_equal(seen.ids[1], "spam-zyxwvu987654");
    seen.n = 0;
    assert_int_equal(sl_quar_list(s, &only_b, on_entry, &seen, &error), 0);
    assert_int_equal(seen.n, 1);
    assert_string_equal(seen.ids[0], "virus-Abcdefghij12");

    /* expiry: by mtime; a second process finds the lock held */
    struct utimbuf old = {.actime = 1000, .modtime = 1000};
    assert_int_equal(utime(path, &old), 0);
    char *lock = sl_asprintf("%s/.expire.lock", dir);
    int fd = open(lock, O_RDWR | O_CREAT, 0640);
    assert_true(fd >= 0);
    assert_int_equal(flock(fd, LOCK_EX), 0);
    assert_int_equal(sl_quar_expire(s, sl_now_wall_ms() - 3600 * 1000ULL, &n, &error), 0);
    close(fd);
    assert_int_equal(sl_quar_expire(s, sl_now_wall_ms() - 3600 * 1000ULL, &n, &error), 1);
    assert_int_equal(n, 1);
    assert_int_equal(sl_quar_get(s, "virus-Abcdefghij12", &out, &error), 0);

    assert_int_equal(sl_quar_delete(s, "spam-zyxwvu987654", &error), 1);
    assert_int_equal(sl_quar_delete(s, "spam-zyxwvu987654", &error), 0);
    seen.n = 0;
    assert_int_equal(sl_quar_list(s, &all, on_entry, &seen, &error), 0);
    assert_int_equal(seen.n, 0);
    sl_quar_store_close(&s);
    free(lock);
    free(path);
    char *rm = sl_asprintf("rm -rf '%s'", dir);
    assert_int_equal(system(rm), 0);
    free(rm);
}

/* The same store sealed (SLUICE_QUARANTINE_KEY): the file does not hold
 * the message, a get opens it, a store with another key cannot. */
static void
test_local_sealed(void **state)
{
    struct sl_quar_store *s;
    struct sl_quar_entry in, out;
    char *error = NULL, *ov[2];
    struct sl_config *c;

    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/sluice-test-quar.XXXXXX");
    assert_non_null(mkdtemp(dir));
    ov[0] = sl_asprintf("quarantine.store=local:%s", dir);
    ov[1] = "quarantine.encryption=yes";
    setenv("SLUICE_QUARANTINE_KEY",
           "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff", 1);
    c = sl_config_load_buffer("test", "", 0, ov, 2, &error);
    assert_non_null(c);
    s = sl_quar_store_open(c, &error);
    assert_non_null(s);
    entry_fill(&in, "Sealed987654");
    assert_int_equal(sl_quar_put(s, &in, &error), 0);
    char *path = sl_asprintf("%s/S/virus-Sealed987654", dir), *text = NULL;
    size_t len = 0;
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    text = sl_calloc(1, 65536);
    len = fread(text, 1, 65535, fp);
    fclose(fp);
    assert_null(memmem(text, len, "line one", 8));
    assert_non_null(memmem(text, len, "X-Envelope-To: <a@example.com>", 30));
    assert_int_equal(sl_quar_get(s, "virus-Sealed987654", &out, &error), 1);
    assert_non_null(strstr(out.message, "line one\n.dot line\n"));
    sl_quar_entry_clear(&out);
    sl_quar_store_close(&s);
    setenv("SLUICE_QUARANTINE_KEY",
           "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100", 1);
    s = sl_quar_store_open(c, &error);
    assert_non_null(s);
    assert_int_equal(sl_quar_get(s, "virus-Sealed987654", &out, &error), -1);
    assert_non_null(strstr(error, "wrong key"));
    sl_free_and_clear(&error);
    sl_quar_store_close(&s);
    setenv("SLUICE_QUARANTINE_KEY", "not hex", 1);
    assert_null(sl_quar_store_open(c, &error));
    assert_non_null(strstr(error, "SLUICE_QUARANTINE_KEY"));
    sl_free_and_clear(&error);
    unsetenv("SLUICE_QUARANTINE_KEY");
    sl_config_destroy(&c);
    free(ov[0]);
    free(text);
    free(path);
    char *rm = sl_asprintf("rm -rf '%s'", dir);
    assert_int_equal(system(rm), 0);
    free(rm);
}

/* ---- AM.PDP ------------------------------------------------------------- */

static void
test_pdp(void **state)
{
    struct sl_pdp_request req = {0};
    const char *error, *all[4];
    struct sl_buf out;
    static const char *const lines[] = {"request=release\r\n", "mail_id=Abcdefghij12\r\n",
                                        "secret_id=x%2By\r\n", "recipient=<a@b>\r\n",
                                        "recipient: <c@d>\r\n"};

    (void)state;
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(sl_pdp_feed_line(&req, lines[i], strlen(lines[i]), &error), 0);
    assert_int_equal(sl_pdp_feed_line(&req, "no attribute", 12, &error), -1);
    assert_int_equal(sl_pdp_feed_line(&req, "\r\n", 2, &error), 1);
    assert_string_equal(sl_pdp_get(&req, "request"), "release");
    assert_string_equal(sl_pdp_get(&req, "secret_id"), "x+y");
    assert_int_equal(sl_pdp_all(&req, "recipient", all, 4), 2);
    assert_string_equal(all[1], "<c@d>");
    assert_null(sl_pdp_get(&req, "quar_type"));
    sl_pdp_request_clear(&req);

    sl_buf_init(&out);
    sl_pdp_encode(&out, "setreply", "250 2.0.0 Ok, 100% done");
    assert_string_equal(out.data, "setreply=250%202.0.0%20Ok,%20100%25%20done\r\n");
    sl_buf_free(&out);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_round_trip),
        cmocka_unit_test(test_sealed),
        cmocka_unit_test(test_amavis_text),
        cmocka_unit_test(test_ids),
        cmocka_unit_test(test_local_store),
        cmocka_unit_test(test_local_sealed),
        cmocka_unit_test(test_pdp),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
