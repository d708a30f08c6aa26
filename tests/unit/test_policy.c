/* test_policy.c - workers/policy.c: amavis' categories and their priority,
 * destinies (Debian defaults and configured), spam levels per recipient
 * and per domain, the DSN cut-off, header edits (X-Spam-*, subject tag,
 * X-Amavis-Alert) with the score format they use (sl_format_score),
 * policy banks (listener, origin, mynetworks), and the quarantine and
 * notifications (policy_quarantine.c): the type per category, per bank
 * and per recipient (_quarantine_to maps), the administrators
 * (banned_admin falling back to virus_admin), warnings for local
 * recipients only, nothing for a tempfail; and a lookup's answer per
 * recipient (lib/lookup): levels over the maps, lovers, bypass,
 * whitelisted and blacklisted senders, a failed lookup tempfailing that
 * recipient only. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/sl_config.h"
#include "mail/sl_message.h"
#include "workers/policy.h"

static struct sl_config *
config_with(char *const *ov, size_t n)
{
    char *error = NULL;
    struct sl_config *c = sl_config_load_buffer("test", "", 0, ov, n, &error);

    if (c == NULL)
        fail_msg("config: %s", error);
    return c;
}

/* The value of the per-recipient edit called name, or NULL. */
static const char *
redit(const struct policy_rcpt *r, const char *name)
{
    for (size_t i = 0; i < r->n_edits; i++)
        if (strcmp(r->edits[i].name, name) == 0)
            return r->edits[i].value;
    return NULL;
}

static const char *
cedit(const struct policy_result *res, const char *name, int op)
{
    for (size_t i = 0; i < res->n_edits; i++)
        if (strcmp(res->edits[i].name, name) == 0 && res->edits[i].op == op)
            return res->edits[i].value;
    return NULL;
}

static void
decide(const struct sl_config *c, const struct policy_facts *f, const char *from,
       const char *const *rcpts, size_t n, struct policy_result *res)
{
    struct policy_view view;

    policy_select(c, "default", 10024, "192.0.2.1", &view);
    policy_decide(&view, f, from, rcpts, n, "Hello", res);
}

static char *viruses[] = {"Eicar-Test-Signature.UNOFFICIAL"};
static char *gtube_tests[] = {"GTUBE=1000", "NO_RELAYS=-0.001"};
static char *banned[] = {"application/octet-stream,clam.exe (banned extension .exe)"};
static char *bad[] = {"Duplicate header field: \"Subject\""};
static char *why[] = {"clamd failed: unix:/x: connect: No such file or directory"};

static void
test_clean(void **state)
{
    struct sl_config *c = config_with(NULL, 0);
    struct policy_facts f = {.size = 100};
    const char *rcpts[] = {"a@example.com"};
    struct policy_result res;

    (void)state;
    decide(c, &f, "s@example.org", rcpts, 1, &res);
    assert_string_equal(res.category, "CLEAN");
    assert_int_equal(res.rcpts[0].destiny, POLICY_D_PASS);
    assert_string_equal(res.rcpts[0].category, "CLEAN");
    assert_int_equal(res.rcpts[0].n_edits, 0);
    assert_int_equal(res.n_edits, 0); /* no spam scan: nothing to remove */
    policy_result_free(&res);
    sl_config_destroy(&c);
}

/* Debian amavis: virus and banned D_DISCARD, spam D_PASS (tagged),
 * bad-header D_PASS; ours: UNCHECKED (a scanner failed) D_TEMPFAIL. */
static void
test_debian_defaults(void **state)
{
    struct sl_config *c = config_with(NULL, 0);
    const char *rcpts[] = {"a@example.com", "b@example.com"};
    struct policy_result res;

    (void)state;
    struct policy_facts fv = {.viruses = viruses, .n_viruses = 1};
    decide(c, &fv, "s@example.org", rcpts, 2, &res);
    assert_string_equal(res.category, "INFECTED");
    for (int i = 0; i < 2; i++) {
        assert_int_equal(res.rcpts[i].destiny, POLICY_D_DISCARD);
        assert_string_equal(res.rcpts[i].reason, "INFECTED: Eicar-Test-Signature.UNOFFICIAL");
    }
    assert_string_equal(cedit(&res, "X-Amavis-Alert", SL_HDR_APPEND),
                        "INFECTED, message contains virus: Eicar-Test-Signature.UNOFFICIAL");
    policy_result_free(&res);

    struct policy_facts fb = {.banned = banned, .n_banned = 1};
    decide(c, &fb, "s@example.org", rcpts, 1, &res);
    assert_string_equal(res.rcpts[0].category, "BANNED");
    assert_int_equal(res.rcpts[0].destiny, POLICY_D_DISCARD);
    assert_non_null(strstr(res.rcpts[0].reason, "BANNED: application/octet-stream,clam.exe"));
    policy_result_free(&res);

    struct policy_facts fh = {.bad_headers = bad, .n_bad_headers = 1};
    decide(c, &fh, "s@example.org", rcpts, 1, &res);
    assert_string_equal(res.rcpts[0].category, "BAD-HEADER");
    assert_int_equal(res.rcpts[0].destiny, POLICY_D_PASS);
    assert_string_equal(cedit(&res, "X-Amavis-Alert", SL_HDR_APPEND),
                        "BAD HEADER SECTION, Duplicate header field: \"Subject\"");
    policy_result_free(&res);

    struct policy_facts fu = {
        .unchecked = POLICY_UNCHECKED_FAILED, .unchecked_reasons = why, .n_unchecked_reasons = 1};
    decide(c, &fu, "s@example.org", rcpts, 1, &res);
    assert_string_equal(res.rcpts[0].category, "UNCHECKED");
    assert_int_equal(res.rcpts[0].destiny, POLICY_D_TEMPFAIL);
    assert_non_null(strstr(res.rcpts[0].reason, "UNCHECKED: clamd failed"));
    policy_result_free(&res);

    fu.unchecked = POLICY_UNCHECKED_ENCRYPTED;
    decide(c, &fu, "s@example.org", rcpts, 1, &res);
    assert_string_equal(res.rcpts[0].category, "UNCHECKED-ENCRYPTED");
    assert_int_equal(res.rcpts[0].destiny, POLICY_D_PASS);
    policy_result_free(&res);

    fu.unchecked = POLICY_UNCHECKED_OVERLIMIT;
    decide(c, &fu, "s@example.org", rcpts, 1, &res);
    assert_string_equal(res.rcpts[0].category, "UNCHECKED-OVERLIMIT");
    assert_int_equal(res.rcpts[0].destiny, POLICY_D_REJECT);
    policy_result_free(&res);
    sl_config_destroy(&c);
}

/* GTUBE: SPAM, passed and tagged by default; with a kill-level destiny
 * of discard it is discarded. */
static void
test_spam_tagged_and_killed(void **state)
{
    struct sl_config *c = config_with(NULL, 0);
    const char *rcpts[] = {"a@example.com"};
    struct policy_facts f = {
        .spam_scanned = true, .spam_score = 1000, .spam_tests = gtube_tests, .n_spam_tests = 2};
    struct policy_result res;
    char stars[65];

    (void)state;
    decide(c, &f, "s@example.org", rcpts, 1, &res);
    const struct policy_rcpt *r = &res.rcpts[0];
    assert_string_equal(r->category, "SPAM");
    assert_int_equal(r->destiny, POLICY_D_PASS);
    assert_true(r->tagged);
    assert_string_equal(redit(r, "X-Spam-Flag"), "YES");
    assert_string_equal(redit(r, "X-Spam-Score"), "1000");
    memset(stars, '*', 64);
    stars[64] = '\0';
    assert_string_equal(redit(r, "X-Spam-Level"), stars);
    assert_string_equal(redit(r, "X-Spam-Status"), "Yes, score=1000 tagged_above=2 required=6.31 "
                                                   "tests=[GTUBE=1000, NO_RELAYS=-0.001]");
    assert_string_equal(redit(r, "Subject"), "***SPAM*** Hello");
    /* anybody else's X-Spam-* go first */
    assert_non_null(cedit(&res, "X-Spam-Status", SL_HDR_DELETE));
    assert_non_null(cedit(&res, "X-Spam-Flag", SL_HDR_DELETE));
    policy_result_free(&res);
    sl_config_destroy(&c);

    char *ov[] = {"policy.final_spam_destiny=discard"};
    c = config_with(ov, 1);
    decide(c, &f, "s@example.org", rcpts, 1, &res);
    assert_string_equal(res.rcpts[0].category, "SPAM");
    assert_int_equal(res.rcpts[0].destiny, POLICY_D_DISCARD);
    assert_string_equal(res.rcpts[0].reason, "SPAM, score=1000");
    policy_result_free(&res);
    sl_config_destroy(&c);
}

/* Between the levels: tag -> X-Spam-Status only; tag2 -> SPAMMY, flag and
 * subject; below tag -> nothing. */
static void
test_spam_levels(void **state)
{
    struct sl_config *c = config_with(NULL, 0);
    const char *rcpts[] = {"a@example.com"};
    struct policy_facts f = {.spam_scanned = true, .spam_tests = gtube_tests, .n_spam_tests = 1};
    struct policy_result res;

    (void)state;
    f.spam_score = 1.5;
    decide(c, &f, "s@example.org", rcpts, 1, &res);
    assert_string_equal(res.rcpts[0].category, "CLEAN");
    assert_int_equal(res.rcpts[0].n_edits, 0);
    policy_result_free(&res);

    f.spam_score = 3.25;
    decide(c, &f, "s@example.org", rcpts, 1, &res);
    assert_string_equal(res.rcpts[0].category, "CLEAN");
    assert_false(res.rcpts[0].tagged);
    assert_null(redit(&res.rcpts[0], "X-Spam-Flag"));
    assert_null(redit(&res.rcpts[0], "Subject"));
    assert_string_equal(redit(&res.rcpts[0], "X-Spam-Level"), "***");
    assert_string_equal(redit(&res.rcpts[0], "X-Spam-Status"),
                        "No, score=3.25 tagged_above=2 required=6.31 tests=[GTUBE=1000]");
    policy_result_free(&res);

    char *ov[] = {"policy.spam_kill_level=10"};
    sl_config_destroy(&c);
    c = config_with(ov, 1);
    f.spam_score = 7;
    decide(c, &f, "s@example.org", rcpts, 1, &res);
    assert_string_equal(res.rcpts[0].category, "SPAMMY");
    assert_true(res.rcpts[0].tagged);
    assert_string_equal(redit(&res.rcpts[0], "X-Spam-Flag"), "YES");
    policy_result_free(&res);
    sl_config_destroy(&c);
}

/* Per-recipient and per-domain levels: one message, two outcomes. */
static void
test_per_recipient_levels(void **state)
{
    char *ov[] = {
        "policy.final_spam_destiny=reject",
        "policy.spam_kill_level_map=boss@example.com=2000, .lenient.example=50",
        "policy.spam_tag_level_map=EXAMPLE.NET=-999",
    };
    struct sl_config *c = config_with(ov, 3);
    const char *rcpts[] = {"boss@example.com", "user@example.com", "x@sub.lenient.example",
                           "y@example.net"};
    struct policy_facts f = {
        .spam_scanned = true, .spam_score = 20, .spam_tests = gtube_tests, .n_spam_tests = 1};
    struct policy_result res;

    (void)state;
    decide(c, &f, "s@example.org", rcpts, 4, &res);
    assert_string_equal(res.category, "SPAM");
    assert_string_equal(res.rcpts[0].category, "SPAMMY"); /* kill 2000 */
    assert_int_equal(res.rcpts[0].destiny, POLICY_D_PASS);
    assert_true(res.rcpts[0].tagged);
    assert_non_null(strstr(redit(&res.rcpts[0], "X-Spam-Status"), "Yes, score=20 "));
    assert_string_equal(res.rcpts[1].category, "SPAM"); /* kill 6.31 */
    assert_int_equal(res.rcpts[1].destiny, POLICY_D_REJECT);
    assert_string_equal(res.rcpts[2].category, "SPAMMY"); /* .lenient.example: 50 */
    assert_int_equal(res.rcpts[2].destiny, POLICY_D_PASS);
    assert_int_equal(res.rcpts[3].destiny, POLICY_D_REJECT);
    policy_result_free(&res);

    /* low score: only the domain with tag level -999 gets X-Spam-Status */
    f.spam_score = 0.5;
    decide(c, &f, "s@example.org", rcpts, 4, &res);
    assert_null(redit(&res.rcpts[1], "X-Spam-Status"));
    assert_non_null(strstr(redit(&res.rcpts[3], "X-Spam-Status"), "No, score=0.5 "
                                                                  "tagged_above=-999 "));
    policy_result_free(&res);
    sl_config_destroy(&c);
}

static void
test_level_lookup(void **state)
{
    char *map[] = {"a@x.example=1", "b@=2", "x.example=3", ".y.example=4", ".=5"};

    (void)state;
    assert_true(policy_rcpt_level(map, 5, 9, "a@x.example") == 1);
    assert_true(policy_rcpt_level(map, 5, 9, "A@X.EXAMPLE") == 1);
    assert_true(policy_rcpt_level(map, 5, 9, "b@anywhere.example") == 2);
    assert_true(policy_rcpt_level(map, 5, 9, "c@x.example") == 3);
    assert_true(policy_rcpt_level(map, 5, 9, "c@sub.x.example") == 5); /* no dot: exact only */
    assert_true(policy_rcpt_level(map, 5, 9, "c@y.example") == 4);
    assert_true(policy_rcpt_level(map, 5, 9, "c@deep.sub.y.example") == 4);
    assert_true(policy_rcpt_level(map, 5, 9, "c@z.example") == 5);
    assert_true(policy_rcpt_level(map, 4, 9, "c@z.example") == 9);
    assert_true(policy_rcpt_level(NULL, 0, 9, "c@z.example") == 9);
}

/* amavis' priority order and the blocking category. */
static void
test_priorities(void **state)
{
    const char *rcpts[] = {"a@example.com"};
    struct policy_facts f = {.viruses = viruses,
                             .n_viruses = 1,
                             .banned = banned,
                             .n_banned = 1,
                             .spam_scanned = true,
                             .spam_score = 1000,
                             .spam_tests = gtube_tests,
                             .n_spam_tests = 1,
                             .bad_headers = bad,
                             .n_bad_headers = 1};
    struct policy_result res;

    (void)state;
    struct sl_config *c = config_with(NULL, 0);
    decide(c, &f, "s@example.org", rcpts, 1, &res);
    assert_string_equal(res.rcpts[0].category, "INFECTED");
    policy_result_free(&res);
    sl_config_destroy(&c);

    /* virus lovers: INFECTED passes, so BANNED (next) blocks */
    char *ov[] = {"policy.final_virus_destiny=pass", "policy.final_banned_destiny=bounce"};
    c = config_with(ov, 2);
    decide(c, &f, "s@example.org", rcpts, 1, &res);
    assert_string_equal(res.rcpts[0].category, "BANNED");
    assert_int_equal(res.rcpts[0].destiny, POLICY_D_BOUNCE);
    /* ...a bounce of a message scoring 1000: past the DSN cut-off (10) */
    assert_true(res.rcpts[0].dsn_suppressed);
    assert_string_equal(res.category, "BANNED");
    policy_result_free(&res);

    /* everything passes: the highest category present is reported */
    char *ov2[] = {"policy.final_virus_destiny=pass", "policy.final_banned_destiny=pass"};
    sl_config_destroy(&c);
    c = config_with(ov2, 2);
    decide(c, &f, "s@example.org", rcpts, 1, &res);
    assert_string_equal(res.rcpts[0].category, "INFECTED");
    assert_int_equal(res.rcpts[0].destiny, POLICY_D_PASS);
    policy_result_free(&res);
    sl_config_destroy(&c);
}

static void
test_bounce_dsn_cutoff(void **state)
{
    char *ov[] = {"policy.final_spam_destiny=bounce"};
    struct sl_config *c = config_with(ov, 1);
    const char *rcpts[] = {"a@example.com"};
    struct policy_facts f = {.spam_scanned = true, .spam_score = 8};
    struct policy_result res;

    (void)state;
    decide(c, &f, "s@example.org", rcpts, 1, &res);
    assert_int_equal(res.rcpts[0].destiny, POLICY_D_BOUNCE);
    assert_false(res.rcpts[0].dsn_suppressed);
    policy_result_free(&res);
    decide(c, &f, "", rcpts, 1, &res); /* never bounce a bounce */
    assert_true(res.rcpts[0].dsn_suppressed);
    policy_result_free(&res);
    f.spam_score = 10;
    decide(c, &f, "s@example.org", rcpts, 1, &res);
    assert_true(res.rcpts[0].dsn_suppressed);
    policy_result_free(&res);
    sl_config_destroy(&c);
}

static void
test_oversized(void **state)
{
    char *ov[] = {"policy.message_size_limit=1k"};
    struct sl_config *c = config_with(ov, 1);
    const char *rcpts[] = {"a@example.com"};
    struct policy_facts f = {.size = 2000};
    struct policy_result res;

    (void)state;
    decide(c, &f, "s@example.org", rcpts, 1, &res);
    assert_string_equal(res.rcpts[0].category, "OVERSIZED");
    assert_int_equal(res.rcpts[0].destiny, POLICY_D_BOUNCE);
    policy_result_free(&res);
    sl_config_destroy(&c);
}

/* Banks: listener, origin, then mynetworks (ORIGINATING), layered. */
static void
test_banks(void **state)
{
    char *ov[] = {
        "origins.o2.match=127.0.0.2",
        "policy.mynetworks=10.0.0.0/8, 2001:db8::/32",
        "policy_banks.ORIGINATING.originating=yes",
        "policy_banks.ORIGINATING.spam_kill_level=3",
        "policy_banks.SUB.match_listener=10026",
        "policy_banks.SUB.final_spam_destiny=reject",
        "policy_banks.O2.match_origin=o2",
        "policy_banks.O2.spam_kill_level=50",
    };
    struct sl_config *c = config_with(ov, sizeof(ov) / sizeof(ov[0]));
    struct policy_view v;

    (void)state;
    policy_select(c, "default", 10024, "192.0.2.1", &v);
    assert_false(v.originating);
    assert_string_equal(v.banks, "");
    assert_true(v.p.spam_kill_level == 6.31);

    policy_select(c, "default", 10024, "10.1.2.3", &v);
    assert_true(v.originating);
    assert_string_equal(v.banks, "ORIGINATING");
    assert_true(v.p.spam_kill_level == 3);

    policy_select(c, "default", 10024, "IPv6:2001:db8::5", &v);
    assert_true(v.originating);

    policy_select(c, "o2", 10026, "192.0.2.1", &v);
    assert_string_equal(v.banks, "SUB,O2");
    assert_string_equal(v.p.final_spam_destiny, "reject");
    assert_true(v.p.spam_kill_level == 50);

    /* later banks win: mynetworks' bank over the origin's */
    policy_select(c, "o2", 10024, "10.0.0.1", &v);
    assert_string_equal(v.banks, "O2,ORIGINATING");
    assert_true(v.p.spam_kill_level == 3);
    sl_config_destroy(&c);

    /* mynetworks without a bank of that name: still originating */
    char *ov2[] = {"policy.mynetworks=127.0.0.0/8"};
    c = config_with(ov2, 1);
    policy_select(c, "default", 10024, "127.0.0.1", &v);
    assert_true(v.originating);
    assert_string_equal(v.banks, "");
    sl_config_destroy(&c);
}

/* amavis' recip_is_local: the log's Inbound / Internal / Outbound /
 * OpenRelay per recipient; and the same message from outside and from
 * mynetworks gets each bank's destiny. */
static void
test_direction(void **state)
{
    char *local[] = {"example.com", ".example.org"};
    char *ov[] = {
        "policy.mynetworks=10.0.0.0/8",
        "policy.local_domains=example.com, .example.org",
        "policy_banks.ORIGINATING.final_spam_destiny=reject",
    };
    struct sl_config *c = config_with(ov, sizeof(ov) / sizeof(ov[0]));
    const char *rcpts[] = {"a@example.com", "b@far.example.net", "c@sub.example.org"};
    struct policy_facts f = {
        .spam_scanned = true, .spam_score = 1000, .spam_tests = gtube_tests, .n_spam_tests = 2};
    struct policy_view v;
    struct policy_result res;

    (void)state;
    assert_true(policy_domain_is_local(local, 2, "x@EXAMPLE.com"));
    assert_true(policy_domain_is_local(local, 2, "x@example.com."));
    assert_false(policy_domain_is_local(local, 2, "x@sub.example.com"));
    assert_true(policy_domain_is_local(local, 2, "x@example.org"));
    assert_true(policy_domain_is_local(local, 2, "x@a.b.example.org"));
    assert_false(policy_domain_is_local(local, 2, "x@badexample.org"));
    assert_false(policy_domain_is_local(local, 2, "postmaster"));
    char *all[] = {"."};
    assert_true(policy_domain_is_local(all, 1, "x@anything.test"));

    /* from outside: spam passed (tagged); the remote recipient is OpenRelay */
    policy_select(c, "default", 10024, "192.0.2.1", &v);
    policy_decide(&v, &f, "s@example.net", rcpts, 3, "Hello", &res);
    assert_int_equal(res.rcpts[0].destiny, POLICY_D_PASS);
    assert_false(res.rcpts[0].remote);
    assert_true(res.rcpts[1].remote);
    assert_false(res.rcpts[2].remote);
    policy_result_free(&res);

    /* from mynetworks: the ORIGINATING bank rejects spam */
    policy_select(c, "default", 10024, "10.9.8.7", &v);
    assert_true(v.originating);
    policy_decide(&v, &f, "s@example.com", rcpts, 3, "Hello", &res);
    for (int i = 0; i < 3; i++)
        assert_int_equal(res.rcpts[i].destiny, POLICY_D_REJECT);
    assert_false(res.rcpts[0].remote);
    assert_true(res.rcpts[1].remote);
    policy_result_free(&res);
    sl_config_destroy(&c);

    /* no local_domains: the bank alone decides (Inbound / Outbound) */
    char *ov2[] = {"policy.mynetworks=10.0.0.0/8"};
    c = config_with(ov2, 1);
    policy_select(c, "default", 10024, "10.0.0.1", &v);
    policy_decide(&v, &f, "s@example.com", rcpts, 1, "Hello", &res);
    assert_true(res.rcpts[0].remote);
    policy_result_free(&res);
    policy_select(c, "default", 10024, "192.0.2.1", &v);
    policy_decide(&v, &f, "s@example.com", rcpts, 1, "Hello", &res);
    assert_false(res.rcpts[0].remote);
    policy_result_free(&res);
    sl_config_destroy(&c);
}

static void
test_names(void **state)
{
    /* the score in X-Spam-* headers, rspamd's symbols and the frontend's
     * log lines: at most 3 decimals, no exponent, never "-0" */
    static const struct {
        double score;
        const char *text;
    } scores[] = {
        {6.31, "6.31"}, {-0.0001, "0"},      {1000.001, "1000.001"}, {1000.0, "1000"},
        {-0.0, "0"},    {-2.5, "-2.5"},      {0.1, "0.1"},           {1e9, "1000000000"},
        {NAN, "0"},     {-INFINITY, "0"},
    };
    char buf[32];

    (void)state;
    assert_int_equal(policy_destiny_from_name("DISCARD"), POLICY_D_DISCARD);
    assert_int_equal(policy_destiny_from_name("nonsense"), POLICY_D_TEMPFAIL);
    assert_string_equal(policy_destiny_name(POLICY_D_BOUNCE), "bounce");
    assert_string_equal(policy_ccat_name(CCAT_BAD_HEADER), "BAD-HEADER");
    for (size_t i = 0; i < sizeof(scores) / sizeof(scores[0]); i++) {
        sl_format_score(scores[i].score, buf, sizeof(buf));
        assert_string_equal(buf, scores[i].text);
    }
}

/* ---- quarantine and notifications (policy_quarantine.c) ------------------ */

/* decide(), the message coming from origin (its policy banks). */
static void
decide_origin(const struct sl_config *c, const struct policy_facts *f, const char *origin,
              const char *const *rcpts, size_t n, struct policy_result *res)
{
    struct policy_view view;

    policy_select(c, origin, 10024, "192.0.2.1", &view);
    policy_decide(&view, f, "s@example.org", rcpts, n, "Hello", res);
}

static char *q_viruses[] = {"Eicar-Test-Signature"};
static char *q_banned[] = {"application/octet-stream,a.exe"};
static char *q_bad[] = {"Duplicate header field: \"Subject\""};
static char *q_why[] = {"clamd failed: connect: refused"};

static void
test_quarantine_types_by_category(void **state)
{
    struct sl_config *c = config_with(NULL, 0);
    const char *rcpts[] = {"a@example.com"};
    struct policy_result res;
    struct policy_facts clean = {.size = 10};
    struct policy_facts virus = {.viruses = q_viruses, .n_viruses = 1, .size = 10};
    struct policy_facts ban = {.banned = q_banned, .n_banned = 1, .size = 10};
    struct policy_facts spam = {.spam_scanned = true, .spam_score = 1000, .size = 10};
    struct policy_facts spammy = {.spam_scanned = true, .spam_score = 6.5, .size = 10};
    struct policy_facts badh = {.bad_headers = q_bad, .n_bad_headers = 1, .size = 10};

    (void)state;
    decide(c, &clean, "s@example.org", rcpts, 1, &res);
    assert_null(res.rcpts[0].quarantine);
    assert_null(res.rcpts[0].admin);
    policy_result_free(&res);
    decide(c, &virus, "s@example.org", rcpts, 1, &res);
    assert_string_equal(res.rcpts[0].quarantine, "virus");
    assert_int_equal(res.rcpts[0].destiny, POLICY_D_DISCARD);
    policy_result_free(&res);
    decide(c, &ban, "s@example.org", rcpts, 1, &res);
    assert_string_equal(res.rcpts[0].quarantine, "banned");
    policy_result_free(&res);
    /* passed spam and bad headers are kept too, as amavis keeps them */
    decide(c, &spam, "s@example.org", rcpts, 1, &res);
    assert_int_equal(res.rcpts[0].destiny, POLICY_D_PASS);
    assert_string_equal(res.rcpts[0].quarantine, "spam");
    policy_result_free(&res);
    {
        char *ov[] = {"policy.spam_kill_level=10"};
        struct sl_config *c2 = config_with(ov, 1);
        decide(c2, &spammy, "s@example.org", rcpts, 1, &res);
        assert_string_equal(res.rcpts[0].category, "SPAMMY");
        assert_null(res.rcpts[0].quarantine); /* no spammy quarantine in amavis */
        policy_result_free(&res);
        sl_config_destroy(&c2);
    }
    decide(c, &badh, "s@example.org", rcpts, 1, &res);
    assert_string_equal(res.rcpts[0].quarantine, "badh");
    policy_result_free(&res);
    sl_config_destroy(&c);
}

static void
test_quarantine_tempfail_and_off(void **state)
{
    char *ov[] = {"policy.final_virus_destiny=tempfail", "policy.banned_quarantine_to="};
    struct sl_config *c = config_with(ov, 2);
    const char *rcpts[] = {"a@example.com"};
    struct policy_result res;
    struct policy_facts virus = {.viruses = q_viruses, .n_viruses = 1, .size = 10};
    struct policy_facts ban = {.banned = q_banned, .n_banned = 1, .size = 10};
    struct policy_facts unchecked = {.unchecked = POLICY_UNCHECKED_FAILED,
                                     .unchecked_reasons = q_why,
                                     .n_unchecked_reasons = 1,
                                     .size = 10};

    (void)state;
    decide(c, &virus, "s@example.org", rcpts, 1, &res);
    assert_int_equal(res.rcpts[0].destiny, POLICY_D_TEMPFAIL);
    assert_null(res.rcpts[0].quarantine); /* it comes back: nothing kept now */
    policy_result_free(&res);
    decide(c, &ban, "s@example.org", rcpts, 1, &res);
    assert_int_equal(res.rcpts[0].destiny, POLICY_D_DISCARD);
    assert_null(res.rcpts[0].quarantine); /* banned_quarantine_to "" */
    policy_result_free(&res);
    decide(c, &unchecked, "s@example.org", rcpts, 1, &res);
    assert_null(res.rcpts[0].quarantine);
    policy_result_free(&res);
    sl_config_destroy(&c);
}

/* Per recipient: the map's most specific item wins, "" turns it off. */
static void
test_quarantine_per_recipient_map(void **state)
{
    char *ov[] = {"policy.virus_quarantine_to_map=boss@example.com= .example.org=virus-q"
                  " .=virus-quarantine",
                  "policy.virus_quarantine_to="};
    struct sl_config *c = config_with(ov, 2);
    const char *rcpts[] = {"boss@example.com", "x@sub.example.org", "y@example.net"};
    struct policy_result res;
    struct policy_facts virus = {.viruses = q_viruses, .n_viruses = 1, .size = 10};

    (void)state;
    decide(c, &virus, "s@example.org", rcpts, 3, &res);
    assert_null(res.rcpts[0].quarantine);
    assert_string_equal(res.rcpts[1].quarantine, "virus");
    assert_string_equal(res.rcpts[2].quarantine, "virus"); /* "." */
    policy_result_free(&res);
    sl_config_destroy(&c);
}

/* Administrators and warnings, and a bank that changes them. */
static void
test_quarantine_admins_warnings_banks(void **state)
{
    char *ov[] = {"policy.virus_admin=postmaster@example.com",
                  "policy.spam_admin=spamadmin@example.com",
                  "policy.warn_virus_recip=yes",
                  "policy.local_domains=example.com",
                  "origins.o2.match=127.0.0.2",
                  "policy_banks.B.match_origin=o2",
                  "policy_banks.B.virus_quarantine_to=",
                  "policy_banks.B.virus_admin=other@example.com"};
    struct sl_config *c = config_with(ov, 8);
    const char *rcpts[] = {"a@example.com", "b@elsewhere.test"};
    struct policy_result res;
    struct policy_facts virus = {.viruses = q_viruses, .n_viruses = 1, .size = 10};
    struct policy_facts ban = {.banned = q_banned, .n_banned = 1, .size = 10};
    struct policy_facts spam = {.spam_scanned = true, .spam_score = 1000, .size = 10};

    (void)state;
    decide(c, &virus, "s@example.org", rcpts, 2, &res);
    assert_string_equal(res.rcpts[0].admin, "postmaster@example.com");
    assert_true(res.rcpts[0].warn);
    assert_false(res.rcpts[1].warn); /* not local: amavis' $warn_offsite */
    policy_result_free(&res);
    decide(c, &ban, "s@example.org", rcpts, 1, &res);
    assert_string_equal(res.rcpts[0].admin, "postmaster@example.com"); /* banned_admin "" */
    assert_false(res.rcpts[0].warn);
    policy_result_free(&res);
    decide(c, &spam, "s@example.org", rcpts, 1, &res);
    assert_string_equal(res.rcpts[0].admin, "spamadmin@example.com");
    policy_result_free(&res);
    decide_origin(c, &virus, "o2", rcpts, 1, &res);
    assert_null(res.rcpts[0].quarantine);
    assert_string_equal(res.rcpts[0].admin, "other@example.com");
    policy_result_free(&res);
    sl_config_destroy(&c);
}

static void
test_quarantine_map_checked_at_load(void **state)
{
    char *ov[] = {"policy.spam_quarantine_to_map=nokey"};
    char *error = NULL;
    struct sl_config *c = sl_config_load_buffer("test", "", 0, ov, 1, &error);

    (void)state;
    assert_null(c);
    assert_non_null(strstr(error, "policy.spam_quarantine_to_map"));
    free(error);
}

/* ---- lookups (lib/lookup): one recipient's answer over the policy ---- */

static void
answer_set(struct sl_lookup_answer *a, enum sl_lookup_field f, const char *v)
{
    a->found = true;
    free(a->value[f]);
    a->value[f] = strdup(v);
}

static void
test_policy_three_recipients(void **state)
{
    char *ov[] = {"policy.final_spam_destiny=reject", "policy.spam_kill_level=6.31",
                  "policy.spam_tag2_level=6.31"};
    struct sl_config *c = config_with(ov, 3);
    struct policy_view view;
    struct policy_facts f = {.spam_scanned = true, .spam_score = 7.0};
    struct sl_lookup_answer lover = {0}, low = {0};
    struct policy_lookup pl[4] = {{0}};
    const char *rcpts[] = {"lover@example.com", "low@example.com", "plain@example.com",
                           "down@example.com"};
    struct policy_result res;

    (void)state;
    policy_select(c, "default", 10024, NULL, &view);
    answer_set(&lover, SL_LF_SPAM_LOVER, "Y");
    answer_set(&low, SL_LF_SPAM_KILL_LEVEL, "10");
    answer_set(&low, SL_LF_SPAM_TAG2_LEVEL, "8");
    pl[0].answer = &lover;
    pl[1].answer = &low;
    pl[3].failed = "PostgreSQL: connection refused";
    policy_decide_lookups(&view, &f, "s@example.org", rcpts, 4, "offer", pl, &res);

    assert_int_equal(res.rcpts[0].destiny, POLICY_D_PASS); /* a lover gets its spam */
    assert_string_equal(res.rcpts[0].category, "SPAM");
    assert_int_equal(res.rcpts[1].destiny, POLICY_D_PASS); /* 7 is under its kill level 10 */
    assert_string_equal(res.rcpts[1].category, "CLEAN");
    assert_false(res.rcpts[1].tagged);
    assert_int_equal(res.rcpts[2].destiny, POLICY_D_REJECT);   /* the default */
    assert_int_equal(res.rcpts[3].destiny, POLICY_D_TEMPFAIL); /* never a default verdict */
    assert_string_equal(res.rcpts[3].reason, "policy lookup failed");
    assert_null(res.rcpts[3].quarantine);
    policy_result_free(&res);

    /* the sender lists: blacklisted is spam at any score, whitelisted never */
    struct policy_facts clean = {.spam_scanned = true, .spam_score = 0.5};
    pl[3].failed = NULL;
    pl[0].answer = NULL;
    pl[1].answer = NULL;
    pl[0].wb.blacklisted = true;
    pl[2].wb.whitelisted = true;
    policy_decide_lookups(&view, &clean, "s@example.org", rcpts, 3, "hi", pl, &res);
    assert_int_equal(res.rcpts[0].destiny, POLICY_D_REJECT);
    assert_true(res.rcpts[0].tagged);
    assert_int_equal(res.rcpts[1].destiny, POLICY_D_PASS);
    policy_result_free(&res);
    policy_decide_lookups(&view, &f, "s@example.org", rcpts, 3, "offer", pl, &res);
    assert_int_equal(res.rcpts[2].destiny, POLICY_D_PASS); /* 7 >= 6.31, but whitelisted */
    assert_false(res.rcpts[2].tagged);
    policy_result_free(&res);

    sl_lookup_answer_clear(&lover);
    sl_lookup_answer_clear(&low);
    sl_config_unref(&c);
}

static void
test_policy_bypass_and_quarantine(void **state)
{
    char *ov[] = {"policy.final_virus_destiny=discard", "policy.virus_quarantine_to=virus-q"};
    struct sl_config *c = config_with(ov, 2);
    struct policy_view view;
    char *found[] = {"Eicar-Test-Signature"};
    struct policy_facts f = {.viruses = found, .n_viruses = 1};
    struct sl_lookup_answer bypass = {0}, noquar = {0};
    struct policy_lookup pl[3] = {{0}};
    const char *rcpts[] = {"a@example.com", "b@example.com", "c@example.com"};
    struct policy_result res;

    (void)state;
    policy_select(c, "default", 10024, NULL, &view);
    answer_set(&bypass, SL_LF_BYPASS_VIRUS_CHECKS, "Y");
    answer_set(&noquar, SL_LF_VIRUS_QUARANTINE_TO, "");
    pl[0].answer = &bypass;
    pl[1].answer = &noquar;
    pl[1].name = "sql:no-quarantine";
    policy_decide_lookups(&view, &f, "s@example.org", rcpts, 3, NULL, pl, &res);
    assert_int_equal(res.rcpts[0].destiny, POLICY_D_PASS); /* bypassed: not INFECTED for it */
    assert_string_equal(res.rcpts[0].category, "CLEAN");
    assert_int_equal(res.rcpts[1].destiny, POLICY_D_DISCARD);
    assert_null(res.rcpts[1].quarantine); /* its own virus_quarantine_to is empty */
    assert_string_equal(res.rcpts[1].lookup, "sql:no-quarantine");
    assert_int_equal(res.rcpts[2].destiny, POLICY_D_DISCARD);
    assert_string_equal(res.rcpts[2].quarantine, "virus");
    assert_null(res.rcpts[2].lookup);
    policy_result_free(&res);
    sl_lookup_answer_clear(&bypass);
    sl_lookup_answer_clear(&noquar);
    sl_config_unref(&c);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clean),
        cmocka_unit_test(test_debian_defaults),
        cmocka_unit_test(test_spam_tagged_and_killed),
        cmocka_unit_test(test_spam_levels),
        cmocka_unit_test(test_per_recipient_levels),
        cmocka_unit_test(test_level_lookup),
        cmocka_unit_test(test_priorities),
        cmocka_unit_test(test_bounce_dsn_cutoff),
        cmocka_unit_test(test_oversized),
        cmocka_unit_test(test_banks),
        cmocka_unit_test(test_direction),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_quarantine_types_by_category),
        cmocka_unit_test(test_quarantine_tempfail_and_off),
        cmocka_unit_test(test_quarantine_per_recipient_map),
        cmocka_unit_test(test_quarantine_admins_warnings_banks),
        cmocka_unit_test(test_quarantine_map_checked_at_load),
        cmocka_unit_test(test_policy_three_recipients),
        cmocka_unit_test(test_policy_bypass_and_quarantine),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
