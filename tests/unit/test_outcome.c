/* test_outcome.c - frontend/outcome.c and dsn.c: per-recipient replies and
 * amavis' action words for the destinies that need no reinjection
 * (discard, reject, tempfail, suppressed bounce), SMTP mode's single reply
 * rules, refusal of verdicts that do not cover the job, the log's
 * category and Hits:, and the RFC 3464 report. Reinjection itself (pass,
 * bounce with a DSN) is covered end to end (tests/e2e/t_scan_*.sh). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "frontend/dsn.h"
#include "frontend/outcome.h"
#include "util/sl_body.h"
#include "util/sl_util.h"

struct capture {
    bool called;
    char *replies[8];
    size_t n;
    char *combined;
    char *action;
    bool passed;
};

static void
on_done(void *ctx, const struct fe_delivery_result *res)
{
    struct capture *c = ctx;

    c->called = true;
    assert_false(res->cancelled);
    c->n = res->n_replies;
    for (size_t i = 0; i < res->n_replies && i < 8; i++)
        c->replies[i] = sl_strdup(res->replies[i]);
    c->combined = sl_strdup(res->combined);
    c->action = sl_strdup(res->action);
    c->passed = res->passed;
}

static void
capture_free(struct capture *c)
{
    for (size_t i = 0; i < c->n && i < 8; i++)
        free(c->replies[i]);
    free(c->combined);
    free(c->action);
    memset(c, 0, sizeof(*c));
}

/* Runs one delivery of a verdict with the given destinies (no D_PASS). */
static void
run(const int *destinies, size_t n, bool lmtp, const char *mail_from, bool originating,
    struct capture *c)
{
    struct event_base *base = event_base_new();
    static char msg[] = "Subject: x\r\n\r\nbody\r\n";
    struct sl_body *body = sl_body_new(sl_strdup(msg), strlen(msg));
    struct fe_reinject_rcpt rcpts[8];
    Sluice__RecipientVerdict rv[8], *rvp[8];
    Sluice__Verdict v = SLUICE__VERDICT__INIT;
    const char *error = NULL;

    for (size_t i = 0; i < n; i++) {
        rcpts[i] = (struct fe_reinject_rcpt){.address = "r@example.com"};
        sluice__recipient_verdict__init(&rv[i]);
        rv[i].index = (uint32_t)(n - 1 - i); /* any order */
        rv[i].destiny = (Sluice__Destiny)destinies[n - 1 - i];
        rv[i].category = "INFECTED";
        rv[i].reason = "INFECTED: Eicar-Test-Signature";
        rv[i].remote = originating && i == 0; /* one outbound, one internal */
        rvp[i] = &rv[i];
    }
    v.job_id = "testtesttest";
    v.ok = 1;
    v.category = "INFECTED";
    v.rcpts = rvp;
    v.n_rcpts = n;
    v.originating = originating;
    struct fe_reinject_request req = {.job_id = "testtesttest",
                                      .host = "127.0.0.1",
                                      .port = 9,
                                      .mail_from = mail_from,
                                      .rcpts = rcpts,
                                      .n_rcpts = n,
                                      .body = body};
    struct fe_delivery_params p = {
        .base = base, .req = &req, .verdict = &v, .lmtp = lmtp, .hostname = "filter.test"};
    memset(c, 0, sizeof(*c));
    struct fe_delivery *d = fe_delivery_start(&p, on_done, NULL, c, &error);
    assert_non_null(d);
    assert_false(c->called); /* never from inside start */
    event_base_loop(base, EVLOOP_ONCE);
    assert_true(c->called);
    sl_body_unref(&body);
    event_base_free(base);
}

static void
test_lmtp_replies(void **state)
{
    int d[] = {SLUICE__DESTINY__D_DISCARD, SLUICE__DESTINY__D_REJECT, SLUICE__DESTINY__D_TEMPFAIL,
               SLUICE__DESTINY__D_BOUNCE};
    struct capture c;

    (void)state;
    /* null sender: the bounce cannot be sent, it is discarded (no DSN) */
    run(d, 4, true, "", false, &c);
    assert_int_equal(c.n, 4);
    assert_string_equal(c.replies[0], "250 2.7.0 Ok, discarded, id=testtesttest - INFECTED: "
                                      "Eicar-Test-Signature");
    assert_string_equal(c.replies[1], "554 5.7.0 Reject, id=testtesttest - INFECTED: "
                                      "Eicar-Test-Signature");
    assert_string_equal(c.replies[2], "451 4.7.1 id=testtesttest, temporary failure - INFECTED: "
                                      "Eicar-Test-Signature, try again later");
    assert_string_equal(c.replies[3], "250 2.7.0 Ok, discarded, id=testtesttest - INFECTED: "
                                      "Eicar-Test-Signature (no DSN)");
    /* sorted, as amavisd-new lists them */
    assert_string_equal(c.action, "DiscardedInbound,NoBounceInbound,RejectedInbound,"
                                  "TempFailedInbound");
    assert_false(c.passed);
    capture_free(&c);

    int one[] = {SLUICE__DESTINY__D_DISCARD, SLUICE__DESTINY__D_DISCARD};
    run(one, 2, true, "s@example.org", true, &c);
    assert_string_equal(c.action, "DiscardedInternal,DiscardedOutbound");
    capture_free(&c);
}

/* SMTP: one reply; tempfail for one is tempfail for all; a partial reject
 * becomes a bounce (here without DSN: null sender). */
static void
test_smtp_mode(void **state)
{
    struct capture c;

    (void)state;
    int t[] = {SLUICE__DESTINY__D_DISCARD, SLUICE__DESTINY__D_TEMPFAIL};
    run(t, 2, false, "", false, &c);
    assert_non_null(strstr(c.combined, "451 4.7.1 id=testtesttest, temporary failure"));
    assert_string_equal(c.action, "TempFailedInbound");
    capture_free(&c);

    int r[] = {SLUICE__DESTINY__D_DISCARD, SLUICE__DESTINY__D_REJECT};
    run(r, 2, false, "", false, &c);
    assert_non_null(strstr(c.combined, "250 2.7.0 Ok, discarded"));
    assert_string_equal(c.action, "DiscardedInbound,NoBounceInbound");
    capture_free(&c);

    int all[] = {SLUICE__DESTINY__D_REJECT, SLUICE__DESTINY__D_REJECT};
    run(all, 2, false, "", false, &c);
    assert_non_null(strstr(c.combined, "554 5.7.0 Reject"));
    capture_free(&c);
}

static void
test_bad_verdicts(void **state)
{
    struct event_base *base = event_base_new();
    struct fe_reinject_rcpt rcpts[2] = {{.address = "a@x"}, {.address = "b@x"}};
    Sluice__RecipientVerdict rv[2], *rvp[2] = {&rv[0], &rv[1]};
    Sluice__Verdict v = SLUICE__VERDICT__INIT;
    struct fe_reinject_request req = {.job_id = "testtesttest", .rcpts = rcpts, .n_rcpts = 2};
    struct fe_delivery_params p = {.base = base, .req = &req, .verdict = &v, .lmtp = true};
    const char *error = NULL;
    struct capture c = {0};

    (void)state;
    for (int i = 0; i < 2; i++) {
        sluice__recipient_verdict__init(&rv[i]);
        rv[i].category = "CLEAN";
    }
    v.rcpts = rvp;
    v.n_rcpts = 1; /* one recipient left out */
    assert_null(fe_delivery_start(&p, on_done, NULL, &c, &error));
    assert_non_null(strstr(error, "count"));
    v.n_rcpts = 2; /* index 0 twice */
    assert_null(fe_delivery_start(&p, on_done, NULL, &c, &error));
    assert_non_null(strstr(error, "repeated"));
    rv[1].index = 7; /* out of range */
    assert_null(fe_delivery_start(&p, on_done, NULL, &c, &error));
    assert_false(c.called);
    event_base_free(base);
}

static void
test_action_words(void **state)
{
    char w[64];

    (void)state;
    fe_action_word(SLUICE__DESTINY__D_PASS, false, false, 250, false, false, w, sizeof(w));
    assert_string_equal(w, "RelayedInbound");
    fe_action_word(SLUICE__DESTINY__D_PASS, true, false, 250, false, false, w, sizeof(w));
    assert_string_equal(w, "RelayedTaggedInbound");
    fe_action_word(SLUICE__DESTINY__D_PASS, false, false, 451, true, false, w, sizeof(w));
    assert_string_equal(w, "TempFailedInternal");
    fe_action_word(SLUICE__DESTINY__D_PASS, false, false, 550, false, false, w, sizeof(w));
    assert_string_equal(w, "RejectedInbound");
    fe_action_word(SLUICE__DESTINY__D_BOUNCE, false, false, 250, false, false, w, sizeof(w));
    assert_string_equal(w, "BouncedInbound");
    /* the four directions of amavisd-new: originating x local recipient */
    fe_action_word(SLUICE__DESTINY__D_PASS, false, false, 250, true, true, w, sizeof(w));
    assert_string_equal(w, "RelayedOutbound");
    fe_action_word(SLUICE__DESTINY__D_PASS, false, false, 250, true, false, w, sizeof(w));
    assert_string_equal(w, "RelayedInternal");
    fe_action_word(SLUICE__DESTINY__D_PASS, false, false, 250, false, true, w, sizeof(w));
    assert_string_equal(w, "RelayedOpenRelay");
    fe_action_word(SLUICE__DESTINY__D_REJECT, false, false, 554, true, true, w, sizeof(w));
    assert_string_equal(w, "RejectedOutbound");
}

/* amavis' " %p LOCAL" between the action words and the client address */
static void
test_log_bank(void **state)
{
    Sluice__Verdict v = SLUICE__VERDICT__INIT;
    char *s;

    (void)state;
    s = fe_verdict_log_bank(&v);
    assert_string_equal(s, "");
    free(s);
    v.policy_bank = "ORIGINATING";
    v.originating = true;
    s = fe_verdict_log_bank(&v);
    assert_string_equal(s, " ORIGINATING LOCAL");
    free(s);
    v.policy_bank = "PORT10026,ORIGINATING";
    s = fe_verdict_log_bank(&v);
    assert_string_equal(s, " PORT10026/ORIGINATING LOCAL");
    free(s);
    v.policy_bank = "SUBMISSION";
    v.originating = false;
    s = fe_verdict_log_bank(&v);
    assert_string_equal(s, " SUBMISSION");
    free(s);
}

static void
test_log_parts(void **state)
{
    Sluice__Verdict v = SLUICE__VERDICT__INIT;
    Sluice__ScanFacts f = SLUICE__SCAN_FACTS__INIT;
    char *names[] = {"Eicar-Test-Signature.UNOFFICIAL", "Other"};
    char *banned[] = {"application/zip,a.zip | b.exe (banned extension .exe)"};
    char *cat, *hits;

    (void)state;
    v.category = "INFECTED";
    v.facts = &f;
    f.virus_names = names;
    f.n_virus_names = 2;
    fe_verdict_log_parts(&v, &cat, &hits);
    assert_string_equal(cat, "INFECTED (Eicar-Test-Signature.UNOFFICIAL,Other)");
    assert_null(hits);
    free(cat);
    v.category = "BANNED";
    f.banned = banned;
    f.n_banned = 1;
    f.spam_scanned = true;
    f.spam_score = 1000.6;
    fe_verdict_log_parts(&v, &cat, &hits);
    assert_string_equal(cat, "BANNED (application/zip,a.zip | b.exe (banned extension .exe))");
    assert_string_equal(hits, "1000.6");
    free(cat);
    free(hits);
    v.category = "";
    f.spam_score = -0.0001;
    fe_verdict_log_parts(&v, &cat, &hits);
    assert_string_equal(cat, "CLEAN");
    assert_string_equal(hits, "0");
    free(cat);
    free(hits);
}

static void
test_dsn(void **state)
{
    static const char orig[] = "From: a@example.org\r\nSubject: hi\r\n\r\nX5O!P%@AP body\r\n";
    struct fe_dsn_rcpt r[2] = {
        {"b@example.com", "rfc822;B@example.com", "554 5.7.0 Reject, id=j - INFECTED: E", NULL},
        {"c@example.com", NULL, "554 5.7.0 Reject, id=j - INFECTED: E", NULL},
    };
    struct fe_dsn_info in = {.job_id = "jobjobjobjob",
                             .reporting_host = "filter.test",
                             .sender = "a@example.org",
                             .envid = "ENV1",
                             .category = "INFECTED",
                             .reason = "INFECTED: E",
                             .message_id = "<m@example.org>",
                             .original = orig,
                             .original_len = strlen(orig),
                             .rcpts = r,
                             .n_rcpts = 2};
    size_t len;
    char *d = fe_dsn_build(&in, &len);

    (void)state;
    assert_int_equal(strlen(d), len);
    assert_non_null(strstr(d, "Content-Type: multipart/report; report-type=delivery-status;\r\n"));
    assert_non_null(strstr(d, "Subject: Undeliverable mail, VIRUS in message\r\n"));
    assert_non_null(strstr(d, "To: <a@example.org>\r\n"));
    assert_non_null(strstr(d, "Auto-Submitted: auto-replied\r\n"));
    assert_non_null(strstr(d, "Content-Type: message/delivery-status\r\n"));
    assert_non_null(strstr(d, "Reporting-MTA: dns; filter.test\r\n"));
    assert_non_null(strstr(d, "Original-Envelope-Id: ENV1\r\n"));
    assert_non_null(strstr(d, "\r\nOriginal-Recipient: rfc822;B@example.com\r\n"
                              "Final-Recipient: rfc822; b@example.com\r\nAction: failed\r\n"
                              "Status: 5.7.0\r\n"));
    assert_non_null(strstr(d, "Final-Recipient: rfc822; c@example.com\r\n"));
    assert_non_null(strstr(d, "Content-Type: text/rfc822-headers\r\n"));
    assert_non_null(strstr(d, "\r\n\r\nFrom: a@example.org\r\nSubject: hi\r\n\r\n------------=_"));
    assert_null(strstr(d, "X5O!P%@AP")); /* the content never goes back */
    assert_non_null(strstr(d, "------------=_jobjobjobjob--\r\n"));
    for (size_t i = 0; i < len; i++) /* CRLF only */
        if (d[i] == '\n')
            assert_true(i > 0 && d[i - 1] == '\r');
    free(d);

    /* SMTP mode's report of :10025's refusals: its cause, its codes */
    static const char no_separator[] =
        "From: a@example.org\r\nSubject: hi\r\nbody, no empty line\r\n";
    struct fe_dsn_rcpt refused = {"c@example.com", NULL,
                                  "550 5.1.1 id=j, Rejected by next-hop MTA on relaying, from "
                                  "MTA(smtp:[127.0.0.1]:10025) during fwd-rcpt-to: 550 5.1.1 "
                                  "<c@example.com>: Recipient address rejected",
                                  "5.1.1"};
    struct fe_dsn_info in2 = {.job_id = "jobjobjobjob",
                              .reporting_host = "filter.test",
                              .sender = "a@example.org",
                              .cause = "the next-hop mail server refused it",
                              .original = no_separator,
                              .original_len = strlen(no_separator),
                              .rcpts = &refused,
                              .n_rcpts = 1};
    d = fe_dsn_build(&in2, &len);
    assert_non_null(strstr(d, "Subject: Undeliverable mail\r\n"));
    assert_non_null(
        strstr(d, "  <c@example.com>\r\nbecause the next-hop mail server refused it\r\n"));
    assert_null(strstr(d, "content filter blocked"));
    assert_non_null(strstr(d, "Final-Recipient: rfc822; c@example.com\r\nAction: failed\r\n"
                              "Status: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 id=j, Rejected"));
    /* only the header section goes back, even without the empty line */
    assert_non_null(strstr(d, "\r\n\r\nFrom: a@example.org\r\nSubject: hi\r\n\r\n------------=_"));
    assert_null(strstr(d, "body, no empty line"));
    free(d);

    assert_true(fe_dsn_notify_failure(NULL));
    assert_true(fe_dsn_notify_failure("SUCCESS,FAILURE"));
    assert_false(fe_dsn_notify_failure("NEVER"));
    assert_false(fe_dsn_notify_failure("DELAY"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lmtp_replies), cmocka_unit_test(test_smtp_mode),
        cmocka_unit_test(test_bad_verdicts), cmocka_unit_test(test_log_bank),
        cmocka_unit_test(test_action_words), cmocka_unit_test(test_log_parts),
        cmocka_unit_test(test_dsn),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
