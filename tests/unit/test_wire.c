/* test_wire.c - lib/net/sl_wire: pack/unpack round trips, the
 * validation of frames from the network (every reject path has a case),
 * a body in one frame or in pieces, and the header edit operations
 * between the wire and lib/mail. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "mail/sl_message.h"
#include "net/sl_wire.h"
#include "net/sl_zsock.h"
#include "sluice.pb-c.h"
#include "util/sl_log.h"

/* A complete, valid job (all strings point at literals or *buf). */
struct job_fixture {
    Sluice__Frame frame;
    Sluice__Job job;
    Sluice__Xforward xf;
    Sluice__Recipient r[2];
    Sluice__Recipient *rp[2];
};

static void
job_fixture_init(struct job_fixture *f)
{
    Sluice__Frame frame = SLUICE__FRAME__INIT;
    Sluice__Job job = SLUICE__JOB__INIT;
    Sluice__Xforward xf = SLUICE__XFORWARD__INIT;
    Sluice__Recipient r = SLUICE__RECIPIENT__INIT;

    f->frame = frame;
    f->job = job;
    f->xf = xf;
    f->r[0] = r;
    f->r[1] = r;
    f->r[0].address = "alice@example.org";
    f->r[0].notify = "SUCCESS,FAILURE";
    f->r[0].orcpt = "rfc822;alice@example.org";
    f->r[1].address = "bob@example.org";
    f->rp[0] = &f->r[0];
    f->rp[1] = &f->r[1];
    f->xf.name = "client.example.net";
    f->xf.addr = "198.51.100.7";
    f->xf.ident = "4Xyz1234";
    f->job.job_id = "AbCd-_012345";
    f->job.origin = "default";
    f->job.client_addr = "127.0.0.1";
    f->job.deadline_ms = 1700000000000ULL;
    f->job.mail_from = "sender@example.net";
    f->job.body_type = "8BITMIME";
    f->job.smtputf8 = 1;
    f->job.n_rcpts = 2;
    f->job.rcpts = f->rp;
    f->job.xforward = &f->xf;
    f->job.size = 1234;
    f->job.attempt = 1;
    f->job.helo = "mx.example.org";
    f->job.proto = "LMTP";
    f->job.received_ms = 1699999999000ULL;
    f->job.by_host = "filter.example.org";
    f->job.by_port = 10024;
    f->frame.kind_case = SLUICE__FRAME__KIND_JOB;
    f->frame.job = &f->job;
}

/* Packs without sl_wire's checks (to build frames a hostile peer could send). */
static size_t
raw_pack(const Sluice__Frame *frame, uint8_t *buf, size_t cap)
{
    size_t len = sluice__frame__get_packed_size(frame);
    assert_true(len <= cap);
    return sluice__frame__pack(frame, buf);
}

static void
expect_reject(const void *data, size_t len, const char *error_prefix)
{
    Sluice__Frame *frame = (Sluice__Frame *)0x1;
    const char *error = NULL;

    assert_int_equal(sl_wire_unpack(data, len, &frame, &error), -1);
    assert_null(frame);
    assert_non_null(error);
    if (error_prefix != NULL && strncmp(error, error_prefix, strlen(error_prefix)) != 0)
        fail_msg("error \"%s\" does not start with \"%s\"", error, error_prefix);
}

static void
expect_raw_reject(const Sluice__Frame *frame, const char *error_prefix)
{
    static uint8_t buf[SL_WIRE_FRAME_MAX * 2];
    size_t len = raw_pack(frame, buf, sizeof(buf));

    expect_reject(buf, len, error_prefix);
}

static void
test_job_round_trip(void **state)
{
    struct job_fixture f;
    zmq_msg_t msg;
    Sluice__Frame *out = NULL;
    const char *error = NULL;

    (void)state;
    job_fixture_init(&f);
    f.frame.version = 77;   /* pack sets it */
    assert_int_equal(sl_wire_pack(&f.frame, &msg, &error), 0);
    assert_int_equal(f.frame.version, SL_WIRE_VERSION);
    assert_int_equal(sl_wire_unpack_msg(&msg, &out, &error), 0);
    zmq_msg_close(&msg);

    assert_int_equal(out->version, 1);
    assert_int_equal(out->kind_case, SLUICE__FRAME__KIND_JOB);
    assert_string_equal(out->job->job_id, "AbCd-_012345");
    assert_string_equal(out->job->origin, "default");
    assert_int_equal(out->job->deadline_ms, 1700000000000ULL);
    assert_int_equal(out->job->n_rcpts, 2);
    assert_string_equal(out->job->rcpts[0]->address, "alice@example.org");
    assert_string_equal(out->job->rcpts[0]->notify, "SUCCESS,FAILURE");
    assert_string_equal(out->job->rcpts[0]->orcpt, "rfc822;alice@example.org");
    assert_string_equal(out->job->rcpts[1]->address, "bob@example.org");
    assert_string_equal(out->job->rcpts[1]->notify, "");
    assert_non_null(out->job->xforward);
    assert_string_equal(out->job->xforward->ident, "4Xyz1234");
    assert_true(out->job->smtputf8);
    assert_int_equal(out->job->size, 1234);
    assert_int_equal(out->job->by_port, 10024);
    assert_string_equal(out->job->by_host, "filter.example.org");
    assert_string_equal(sl_wire_kind_name(out), "job");
    sl_wire_frame_free(&out);
    assert_null(out);
    sl_wire_frame_free(&out);   /* NULL is fine */
}

static void
test_verdict_and_small_frames_round_trip(void **state)
{
    Sluice__Frame frame = SLUICE__FRAME__INIT;
    Sluice__Verdict v = SLUICE__VERDICT__INIT;
    Sluice__HeaderEdit e1 = SLUICE__HEADER_EDIT__INIT, e2 = SLUICE__HEADER_EDIT__INIT;
    Sluice__HeaderEdit *edits[2] = { &e1, &e2 };
    Sluice__Ready ready = SLUICE__READY__INIT;
    Sluice__Heartbeat hb = SLUICE__HEARTBEAT__INIT;
    Sluice__Disconnect dc = SLUICE__DISCONNECT__INIT;
    Sluice__Frame *out = NULL;
    const char *error = NULL;
    zmq_msg_t msg;

    (void)state;
    e1.op = SLUICE__HEADER_EDIT__OP__PREPEND;
    e1.name = "Received";
    e1.value = "from a ([127.0.0.1]) by b (sluice 0.1.0, port 10024) with LMTP id x";
    e2.op = SLUICE__HEADER_EDIT__OP__APPEND;
    e2.name = "X-Virus-Scanned";
    e2.value = "sluice at b\twith a tab";
    v.job_id = "zzzzzzzzzzzz";
    v.ok = 1;
    v.category = "CLEAN";
    v.n_edits = 2;
    v.edits = edits;
    v.message_id = "abc@example.org";
    v.worker = "host:1:p1w0";
    v.scan_ms = 12;
    v.mime_parts = 3;
    frame.kind_case = SLUICE__FRAME__KIND_VERDICT;
    frame.verdict = &v;
    assert_int_equal(sl_wire_pack(&frame, &msg, &error), 0);
    assert_int_equal(sl_wire_unpack_msg(&msg, &out, &error), 0);
    zmq_msg_close(&msg);
    assert_int_equal(out->kind_case, SLUICE__FRAME__KIND_VERDICT);
    assert_true(out->verdict->ok);
    assert_string_equal(out->verdict->category, "CLEAN");
    assert_int_equal(out->verdict->n_edits, 2);
    assert_int_equal(out->verdict->edits[1]->op, SLUICE__HEADER_EDIT__OP__APPEND);
    assert_string_equal(out->verdict->edits[1]->value, "sluice at b\twith a tab");
    assert_int_equal(out->verdict->mime_parts, 3);
    sl_wire_frame_free(&out);

    ready.worker_id = "host:1:p1w0";
    ready.slots = 1;
    frame.kind_case = SLUICE__FRAME__KIND_READY;
    frame.ready = &ready;
    assert_int_equal(sl_wire_pack(&frame, &msg, &error), 0);
    assert_int_equal(sl_wire_unpack_msg(&msg, &out, &error), 0);
    zmq_msg_close(&msg);
    assert_int_equal(out->ready->slots, 1);
    sl_wire_frame_free(&out);

    frame.kind_case = SLUICE__FRAME__KIND_HEARTBEAT;
    frame.heartbeat = &hb;
    assert_int_equal(sl_wire_pack(&frame, &msg, &error), 0);
    assert_int_equal(sl_wire_unpack_msg(&msg, &out, &error), 0);
    zmq_msg_close(&msg);
    assert_int_equal(out->kind_case, SLUICE__FRAME__KIND_HEARTBEAT);
    sl_wire_frame_free(&out);

    frame.kind_case = SLUICE__FRAME__KIND_DISCONNECT;
    frame.disconnect = &dc;
    assert_int_equal(sl_wire_pack(&frame, &msg, &error), 0);
    assert_int_equal(sl_wire_unpack_msg(&msg, &out, &error), 0);
    zmq_msg_close(&msg);
    assert_int_equal(out->kind_case, SLUICE__FRAME__KIND_DISCONNECT);
    sl_wire_frame_free(&out);
}

static void
test_reject_wrong_version(void **state)
{
    struct job_fixture f;

    (void)state;
    job_fixture_init(&f);
    f.frame.version = 2;
    expect_raw_reject(&f.frame, "frame.version");
    f.frame.version = 0;    /* a proto3 default: absent on the wire */
    expect_raw_reject(&f.frame, "frame.version");
}

static void
test_reject_truncated(void **state)
{
    struct job_fixture f;
    static uint8_t buf[SL_WIRE_FRAME_MAX];
    size_t len;
    Sluice__Frame *out = NULL;
    const char *error;

    (void)state;
    job_fixture_init(&f);
    f.frame.version = SL_WIRE_VERSION;
    len = raw_pack(&f.frame, buf, sizeof(buf));
    assert_int_equal(sl_wire_unpack(buf, len, &out, &error), 0);
    sl_wire_frame_free(&out);
    /* every proper prefix, including the empty one, must be refused */
    for (size_t cut = 0; cut < len; cut++)
        expect_reject(buf, cut, NULL);
}

static void
test_reject_garbage(void **state)
{
    static const uint8_t ff[] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
    static const char text[] = "HELO example.org\r\nMAIL FROM:<a@b>\r\n";
    /* version 1, then field 15 (unknown to this version) as an empty message */
    static const uint8_t unknown_kind[] = { 0x08, 0x01, 0x7a, 0x00 };
    /* version 1, then a job whose length runs past the end */
    static const uint8_t overrun[] = { 0x08, 0x01, 0x5a, 0x7f, 0x0a, 0x0c };
    uint8_t buf[512];
    unsigned seed = 12345;

    (void)state;
    expect_reject(ff, sizeof(ff), NULL);
    expect_reject(text, sizeof(text) - 1, NULL);
    expect_reject(unknown_kind, sizeof(unknown_kind), "frame.kind");
    expect_reject(overrun, sizeof(overrun), "frame: not a valid protobuf");
    for (int round = 0; round < 2000; round++) {
        size_t len = (size_t)(rand_r(&seed) % sizeof(buf));
        for (size_t i = 0; i < len; i++)
            buf[i] = (uint8_t)rand_r(&seed);
        expect_reject(buf, len, NULL);
    }
}

static void
test_reject_oversize(void **state)
{
    struct job_fixture f;
    uint8_t *big = calloc(1, SL_WIRE_FRAME_MAX + 1);
    Sluice__Recipient **many;
    Sluice__Recipient r = SLUICE__RECIPIENT__INIT;
    const size_t n = 5000;      /* 5000 x 1000 octets: past the 4 MiB cap */
    char address[1000];
    zmq_msg_t msg;
    const char *error = NULL;

    (void)state;
    assert_non_null(big);
    expect_reject(big, SL_WIRE_FRAME_MAX + 1, "frame: larger than 4 MiB");
    free(big);

    /* the sender refuses too: a job whose recipients do not fit */
    memset(address, 'a', sizeof(address) - 1);
    address[sizeof(address) - 1] = '\0';
    r.address = address;
    many = calloc(n, sizeof(*many));
    for (size_t i = 0; i < n; i++)
        many[i] = &r;
    job_fixture_init(&f);
    f.job.rcpts = many;
    f.job.n_rcpts = n;
    assert_int_equal(sl_wire_pack(&f.frame, &msg, &error), -1);
    assert_string_equal(error, "frame: larger than 4 MiB");
    free(many);
}

static void
test_reject_job_id(void **state)
{
    static const char *const bad[] = {
        "",                 /* missing */
        "abcdefghijk",      /* 11 */
        "abcdefghijklm",    /* 13 */
        "abcdefghij+/",     /* base64, not base64url */
        "abcdefghij k",
        "abcdefghij\xc3\xa9",
        "../../etc/pa",
    };
    struct job_fixture f;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        job_fixture_init(&f);
        f.frame.version = SL_WIRE_VERSION;
        f.job.job_id = (char *)bad[i];
        expect_raw_reject(&f.frame, "job.job_id");
        assert_false(sl_wire_job_id_valid(bad[i]));
    }
    assert_true(sl_wire_job_id_valid("AbCd-_012345"));
    assert_false(sl_wire_job_id_valid(NULL));
}

static void
test_reject_bad_fields(void **state)
{
    struct job_fixture f;
    Sluice__Frame frame = SLUICE__FRAME__INIT;
    Sluice__Verdict v = SLUICE__VERDICT__INIT;
    Sluice__HeaderEdit e = SLUICE__HEADER_EDIT__INIT;
    Sluice__HeaderEdit *edits[1] = { &e };
    Sluice__Ready ready = SLUICE__READY__INIT;
    char *long_str;
    const char *error;

    (void)state;
    /* header injection through a field the worker copies into Received: */
    job_fixture_init(&f);
    f.frame.version = SL_WIRE_VERSION;
    f.job.helo = "mx.example.org\r\nX-Injected: yes";
    expect_raw_reject(&f.frame, "job.helo");

    job_fixture_init(&f);
    f.frame.version = SL_WIRE_VERSION;
    f.job.n_rcpts = 0;
    expect_raw_reject(&f.frame, "job.rcpts");

    job_fixture_init(&f);
    f.frame.version = SL_WIRE_VERSION;
    f.r[1].address = "";
    expect_raw_reject(&f.frame, "job.rcpts.address");

    job_fixture_init(&f);
    f.frame.version = SL_WIRE_VERSION;
    f.job.deadline_ms = 0;
    expect_raw_reject(&f.frame, "job.deadline_ms");

    job_fixture_init(&f);
    f.frame.version = SL_WIRE_VERSION;
    long_str = malloc(SL_WIRE_MAX_STR + 2);
    memset(long_str, 'x', SL_WIRE_MAX_STR + 1);
    long_str[SL_WIRE_MAX_STR + 1] = '\0';
    f.job.mail_from = long_str;
    expect_raw_reject(&f.frame, "job.mail_from");
    long_str[SL_WIRE_MAX_STR] = '\0';   /* exactly the limit is fine */
    assert_int_equal(sl_wire_check(&f.frame, &error), 0);
    free(long_str);

    /* too many recipients: checked on the struct (it could never be packed) */
    job_fixture_init(&f);
    f.frame.version = SL_WIRE_VERSION;
    f.job.n_rcpts = SL_WIRE_MAX_RCPTS + 1;
    assert_int_equal(sl_wire_check(&f.frame, &error), -1);
    assert_string_equal(error, "job.rcpts: too many recipients");

    /* verdicts */
    frame.version = SL_WIRE_VERSION;
    frame.kind_case = SLUICE__FRAME__KIND_VERDICT;
    frame.verdict = &v;
    v.job_id = "zzzzzzzzzzzz";
    v.ok = 1;
    expect_raw_reject(&frame, "verdict.category");     /* ok needs a category */
    v.ok = 0;
    expect_raw_reject(&frame, "verdict.error");        /* !ok needs a reason */
    v.ok = 1;
    v.category = "CLEAN";
    v.n_edits = 1;
    v.edits = edits;
    e.name = "X Bad";
    expect_raw_reject(&frame, "verdict.edits.name");
    e.name = "X-Ok";
    e.value = "line1\nline2";
    expect_raw_reject(&frame, "verdict.edits.value");
    e.value = "fine";
    e.op = (Sluice__HeaderEdit__Op)9;
    expect_raw_reject(&frame, "verdict.edits.op");
    e.op = SLUICE__HEADER_EDIT__OP__DELETE;
    assert_int_equal(sl_wire_check(&frame, &error), 0);

    /* ready */
    frame.kind_case = SLUICE__FRAME__KIND_READY;
    frame.ready = &ready;
    ready.worker_id = "w";
    ready.slots = 0;
    expect_raw_reject(&frame, "ready.slots");
    ready.slots = 1;
    ready.worker_id = "";
    expect_raw_reject(&frame, "ready.worker_id");

    /* kind not set */
    frame.kind_case = SLUICE__FRAME__KIND__NOT_SET;
    expect_raw_reject(&frame, "frame.kind");
}

/* protobuf-c takes an over-long tag for field number 0 or above 2^29-1 as
 * an unknown field and packs it back in a form it refuses: such a frame,
 * relayed by the broker, would be dropped by the worker (found by
 * tests/fuzz/fuzz_wire.c). Unknown fields with valid numbers still pass. */
static void
test_reject_bad_field_numbers(void **state)
{
    /* heartbeat, then field 0 (tag 0x85 0x00), wire type 5, 4 bytes */
    static const uint8_t tag0[] = {0x08, 0x01, 0x6a, 0x00, 0x85, 0x00, 1, 2, 3, 4};
    /* the same inside the Disconnect message */
    static const uint8_t nested0[] = {0x08, 0x01, 0x72, 0x06, 0x85, 0x00, 1, 2, 3, 4};
    /* field 2^29, varint 1 */
    static const uint8_t big[] = {0x08, 0x01, 0x6a, 0x00, 0x80, 0x80, 0x80, 0x80, 0x10, 0x01};
    /* field 99, varint 1: an unknown field from a newer sender, kept */
    static const uint8_t f99[] = {0x08, 0x01, 0x6a, 0x00, 0x98, 0x06, 0x01};
    Sluice__Frame *frame = NULL;
    const char *error = NULL;
    zmq_msg_t msg;

    (void)state;
    expect_reject(tag0, sizeof(tag0), "frame: field number 0 or above 2^29-1");
    expect_reject(nested0, sizeof(nested0), "frame: field number 0 or above 2^29-1");
    expect_reject(big, sizeof(big), "frame: field number 0 or above 2^29-1");

    assert_int_equal(sl_wire_unpack(f99, sizeof(f99), &frame, &error), 0);
    assert_int_equal(frame->kind_case, SLUICE__FRAME__KIND_HEARTBEAT);
    assert_int_equal(sl_wire_pack(frame, &msg, &error), 0);
    sl_wire_frame_free(&frame);
    assert_int_equal(sl_wire_unpack_msg(&msg, &frame, &error), 0);
    zmq_msg_close(&msg);
    sl_wire_frame_free(&frame);
}

/* Per-recipient results and scan facts (scanning): a full verdict round
 * trips; every field's bad form is refused. */
static void
test_verdict_scan_fields(void **state)
{
    Sluice__Frame frame = SLUICE__FRAME__INIT, *back = NULL;
    Sluice__Verdict v = SLUICE__VERDICT__INIT;
    Sluice__ScanFacts f = SLUICE__SCAN_FACTS__INIT;
    Sluice__RecipientVerdict r[2], *rp[2] = { &r[0], &r[1] };
    Sluice__HeaderEdit e = SLUICE__HEADER_EDIT__INIT, *ep[1] = { &e };
    char *viruses[] = { "Eicar-Test-Signature.UNOFFICIAL" }, *tests[] = { "GTUBE=1000" };
    zmq_msg_t msg;
    const char *error;

    (void)state;
    for (int i = 0; i < 2; i++)
        sluice__recipient_verdict__init(&r[i]);
    e.op = SLUICE__HEADER_EDIT__OP__APPEND;
    e.name = "X-Spam-Flag";
    e.value = "YES";
    r[0].index = 1;
    r[0].destiny = SLUICE__DESTINY__D_DISCARD;
    r[0].category = "INFECTED";
    r[0].reason = "INFECTED: Eicar-Test-Signature.UNOFFICIAL";
    r[1].index = 0;
    r[1].destiny = SLUICE__DESTINY__D_PASS;
    r[1].category = "SPAMMY";
    r[1].edits = ep;
    r[1].n_edits = 1;
    r[1].tagged = 1;
    f.spam_scanned = 1;
    f.spam_score = 1000.5;
    f.spam_tests = tests;
    f.n_spam_tests = 1;
    f.virus_names = viruses;
    f.n_virus_names = 1;
    v.job_id = "AbCd-_012345";
    v.ok = 1;
    v.category = "INFECTED";
    v.rcpts = rp;
    v.n_rcpts = 2;
    v.facts = &f;
    v.originating = 1;
    v.policy_bank = "ORIGINATING";
    frame.kind_case = SLUICE__FRAME__KIND_VERDICT;
    frame.verdict = &v;
    assert_int_equal(sl_wire_pack(&frame, &msg, &error), 0);
    assert_int_equal(sl_wire_unpack_msg(&msg, &back, &error), 0);
    zmq_msg_close(&msg);
    assert_int_equal(back->verdict->n_rcpts, 2);
    assert_int_equal(back->verdict->rcpts[0]->index, 1);
    assert_int_equal(back->verdict->rcpts[0]->destiny, SLUICE__DESTINY__D_DISCARD);
    assert_string_equal(back->verdict->rcpts[1]->edits[0]->name, "X-Spam-Flag");
    assert_true(back->verdict->rcpts[1]->tagged);
    assert_true(back->verdict->facts->spam_score == 1000.5);
    assert_string_equal(back->verdict->facts->virus_names[0], "Eicar-Test-Signature.UNOFFICIAL");
    assert_true(back->verdict->originating);
    sl_wire_frame_free(&back);

    /* each bad form alone */
    r[0].destiny = (Sluice__Destiny)7;
    assert_int_equal(sl_wire_check(&frame, &error), -1);
    assert_non_null(strstr(error, "destiny"));
    r[0].destiny = SLUICE__DESTINY__D_DISCARD;
    r[0].category = "";
    assert_int_equal(sl_wire_check(&frame, &error), -1);
    r[0].category = "INFECTED";
    r[0].reason = "two\r\nlines";
    assert_int_equal(sl_wire_check(&frame, &error), -1);
    r[0].reason = "";
    r[0].index = SL_WIRE_MAX_RCPTS;
    assert_int_equal(sl_wire_check(&frame, &error), -1);
    r[0].index = 1;
    e.name = "Bad Name";
    assert_int_equal(sl_wire_check(&frame, &error), -1);
    e.name = "X-Spam-Flag";
    viruses[0] = "bad\nname";
    assert_int_equal(sl_wire_check(&frame, &error), -1);
    viruses[0] = "ok";
    f.spam_score = 0.0 / 0.0;
    assert_int_equal(sl_wire_check(&frame, &error), -1);
    f.spam_score = 1;
    assert_int_equal(sl_wire_check(&frame, &error), 0);
    /* quarantine and notifications (docs/quarantine.md) */
    r[0].quarantine = "virus";
    r[0].admin = "postmaster@example.org";
    r[0].warn = 1;
    assert_int_equal(sl_wire_check(&frame, &error), 0);
    r[0].quarantine = "archive";
    assert_int_equal(sl_wire_check(&frame, &error), -1);
    assert_non_null(strstr(error, "quarantine"));
    r[0].quarantine = "badh";
    r[0].admin = "a@b>\r\nRCPT TO:<x@y";
    assert_int_equal(sl_wire_check(&frame, &error), -1);
    assert_non_null(strstr(error, "admin"));
    r[0].admin = "";
    assert_int_equal(sl_wire_check(&frame, &error), 0);
}

/* sl_wire maps header edit operations by number (sl_wire.h): the two
 * enums must agree, which only a file that sees both can check. */
_Static_assert((int)SL_HDR_PREPEND == (int)SLUICE__HEADER_EDIT__OP__PREPEND, "PREPEND");
_Static_assert((int)SL_HDR_APPEND == (int)SLUICE__HEADER_EDIT__OP__APPEND, "APPEND");
_Static_assert((int)SL_HDR_REPLACE == (int)SLUICE__HEADER_EDIT__OP__REPLACE, "REPLACE");
_Static_assert((int)SL_HDR_DELETE == (int)SLUICE__HEADER_EDIT__OP__DELETE, "DELETE");

static void
test_header_ops(void **state)
{
    static const struct {
        enum sl_header_op mail;
        Sluice__HeaderEdit__Op wire;
    } ops[] = {
        {SL_HDR_PREPEND, SLUICE__HEADER_EDIT__OP__PREPEND},
        {SL_HDR_APPEND, SLUICE__HEADER_EDIT__OP__APPEND},
        {SL_HDR_REPLACE, SLUICE__HEADER_EDIT__OP__REPLACE},
        {SL_HDR_DELETE, SLUICE__HEADER_EDIT__OP__DELETE},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        assert_int_equal(sl_wire_header_op_from_mail(ops[i].mail), ops[i].wire);
        assert_int_equal(sl_wire_header_op_to_mail(ops[i].wire), ops[i].mail);
    }
    /* numbers neither side knows: PREPEND, as the old switches did */
    assert_int_equal(sl_wire_header_op_from_mail(4), SLUICE__HEADER_EDIT__OP__PREPEND);
    assert_int_equal(sl_wire_header_op_from_mail(-1), SLUICE__HEADER_EDIT__OP__PREPEND);
    assert_int_equal(sl_wire_header_op_to_mail((Sluice__HeaderEdit__Op)7), SL_HDR_PREPEND);
}

/* ---- the body frames -------------------------------------------------- */

/* A PAIR of inproc sockets; the message "head" followed by the parts. */
struct pair {
    void *ctx, *tx, *rx;
};

static void
pair_open(struct pair *p)
{
    p->ctx = zmq_ctx_new();
    p->tx = zmq_socket(p->ctx, ZMQ_PAIR);
    p->rx = zmq_socket(p->ctx, ZMQ_PAIR);
    assert_int_equal(zmq_bind(p->rx, "inproc://test-wire-body"), 0);
    assert_int_equal(zmq_connect(p->tx, "inproc://test-wire-body"), 0);
}

static void
pair_close(struct pair *p)
{
    zmq_close(p->tx);
    zmq_close(p->rx);
    zmq_ctx_term(p->ctx);
}

/* Sends "head" and then n parts of the given lengths, cut from text. */
static void
send_parts(struct pair *p, const char *text, const size_t *lens, size_t n)
{
    size_t off = 0;

    assert_int_equal(zmq_send(p->tx, "head", 4, n > 0 ? ZMQ_SNDMORE : 0), 4);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(zmq_send(p->tx, text + off, lens[i], i + 1 < n ? ZMQ_SNDMORE : 0),
                         (int)lens[i]);
        off += lens[i];
    }
}

/* Receives the "head" part, as the roles receive the Job frame. */
static void
recv_head(struct pair *p)
{
    char head[8];

    assert_int_equal(zmq_recv(p->rx, head, sizeof(head), 0), 4);
}

static void
test_body_pieces(void **state)
{
    static const char text[] = "Subject: pieces\r\n\r\nfirst, second and the third.\r\n";
    const size_t len = sizeof(text) - 1;
    const size_t lens[3] = {10, 20, len - 30};
    struct pair p;
    struct sl_wire_body body;
    const char *error = NULL;
    zmq_msg_t joined;

    (void)state;
    pair_open(&p);

    /* three pieces: kept as three, joined into the text */
    send_parts(&p, text, lens, 3);
    recv_head(&p);
    assert_int_equal(sl_wire_body_recv(p.rx, len, &body, &error), 0);
    assert_int_equal(body.n, 3);
    assert_int_equal(body.size, len);
    /* sent on as pieces: the same three frames */
    assert_int_equal(zmq_send(p.rx, "head", 4, ZMQ_SNDMORE), 4);
    assert_int_equal(sl_wire_body_send(p.rx, &body, true), 0);
    /* sent on to a peer that takes one frame: the three joined */
    assert_int_equal(zmq_send(p.rx, "head", 4, ZMQ_SNDMORE), 4);
    assert_int_equal(sl_wire_body_send(p.rx, &body, false), 0);
    assert_int_equal(sl_wire_body_join(&body, &joined), 0);
    assert_int_equal(body.n, 0);
    assert_int_equal(zmq_msg_size(&joined), len);
    assert_memory_equal(zmq_msg_data(&joined), text, len);
    zmq_msg_close(&joined);
    for (int round = 0; round < 2; round++) {
        zmq_msg_t m;
        size_t off = 0, parts = 0;
        char head[8];

        assert_int_equal(zmq_recv(p.tx, head, sizeof(head), 0), 4);
        while (sl_zsock_more(p.tx)) {
            zmq_msg_init(&m);
            assert_true(zmq_msg_recv(&m, p.tx, 0) >= 0);
            assert_true(off + zmq_msg_size(&m) <= len);
            assert_memory_equal(zmq_msg_data(&m), text + off, zmq_msg_size(&m));
            off += zmq_msg_size(&m);
            parts++;
            zmq_msg_close(&m);
        }
        assert_int_equal(off, len);
        assert_int_equal(parts, round == 0 ? 3 : 1);
    }

    /* one frame: used as it is */
    send_parts(&p, text, &len, 1);
    recv_head(&p);
    assert_int_equal(sl_wire_body_recv(p.rx, len, &body, &error), 0);
    assert_int_equal(body.n, 1);
    assert_int_equal(sl_wire_body_join(&body, &joined), 0);
    assert_memory_equal(zmq_msg_data(&joined), text, len);
    zmq_msg_close(&joined);

    /* an empty body is one empty frame */
    send_parts(&p, "", (const size_t[]){0}, 1);
    recv_head(&p);
    assert_int_equal(sl_wire_body_recv(p.rx, 0, &body, &error), 0);
    assert_int_equal(body.n, 1);
    sl_wire_body_close(&body);
    pair_close(&p);
}

static void
test_body_refused(void **state)
{
    static const char text[] = "0123456789abcdefghij";
    const size_t lens[2] = {10, 10};
    struct pair p;
    struct sl_wire_body body;
    const char *error = NULL;
    size_t one = 1;

    (void)state;
    pair_open(&p);

    /* no body at all */
    send_parts(&p, text, lens, 0);
    recv_head(&p);
    assert_int_equal(sl_wire_body_recv(p.rx, 20, &body, &error), -1);
    assert_string_equal(error, "job without body frame");

    /* pieces longer than job.size, and shorter */
    send_parts(&p, text, lens, 2);
    recv_head(&p);
    assert_int_equal(sl_wire_body_recv(p.rx, 15, &body, &error), -1);
    assert_string_equal(error, "body frames do not add up to job.size");
    assert_false(sl_zsock_more(p.rx));  /* the rest of the message was drained */
    send_parts(&p, text, lens, 2);
    recv_head(&p);
    assert_int_equal(sl_wire_body_recv(p.rx, 21, &body, &error), -1);
    assert_string_equal(error, "body frames do not add up to job.size");

    /* more pieces than SL_WIRE_BODY_PIECES_MAX */
    assert_int_equal(zmq_send(p.tx, "head", 4, ZMQ_SNDMORE), 4);
    for (size_t i = 0; i <= SL_WIRE_BODY_PIECES_MAX; i++)
        assert_int_equal(zmq_send(p.tx, "x", one, i < SL_WIRE_BODY_PIECES_MAX ? ZMQ_SNDMORE : 0),
                         1);
    recv_head(&p);
    assert_int_equal(sl_wire_body_recv(p.rx, SL_WIRE_BODY_PIECES_MAX + 1, &body, &error), -1);
    assert_string_equal(error, "too many body frames");
    assert_false(sl_zsock_more(p.rx));

    /* the socket is in step afterwards: the next message is whole */
    send_parts(&p, text, lens, 2);
    recv_head(&p);
    assert_int_equal(sl_wire_body_recv(p.rx, 20, &body, &error), 0);
    assert_int_equal(body.n, 2);
    sl_wire_body_close(&body);
    pair_close(&p);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_job_round_trip),
        cmocka_unit_test(test_verdict_and_small_frames_round_trip),
        cmocka_unit_test(test_reject_wrong_version),
        cmocka_unit_test(test_reject_truncated),
        cmocka_unit_test(test_reject_garbage),
        cmocka_unit_test(test_reject_oversize),
        cmocka_unit_test(test_reject_job_id),
        cmocka_unit_test(test_reject_bad_fields),
        cmocka_unit_test(test_reject_bad_field_numbers),
        cmocka_unit_test(test_verdict_scan_fields),
        cmocka_unit_test(test_header_ops),
        cmocka_unit_test(test_body_pieces),
        cmocka_unit_test(test_body_refused),
    };

    sl_log_open("test_wire", SL_LOG_STDERR, LOG_WARNING);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
