/* sl_wire.c - packing and validating Frames (docs/protocol-wire.md).
 *
 * Validation is deliberately strict about what ends up in mail headers or
 * log lines: no string may carry CR, LF, NUL or another control character
 * (a HELO name with CRLF in it would otherwise become a header injection
 * in the worker's Received: line). Bytes >= 0x80 are allowed (SMTPUTF8). */
#include "net/sl_wire.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "net/sl_zsock.h"
#include "util/sl_id.h"

/* protobuf-c leaves unset strings pointing at protobuf_c_empty_string, but a
 * frame built by hand may hold NULL: treat it as "". */
static const char *
str_or_empty(const char *s)
{
    return s == NULL ? "" : s;
}

/* length within [min, max], no control characters except TAB */
static bool
str_ok(const char *s, size_t min, size_t max)
{
    size_t n = 0;

    for (const unsigned char *p = (const unsigned char *)str_or_empty(s); *p != '\0'; p++, n++) {
        if (n >= max)
            return false;
        if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
            return false;
    }
    return n >= min;
}

bool
sl_wire_job_id_valid(const char *id)
{
    size_t n = 0;

    if (id == NULL)
        return false;
    for (; id[n] != '\0'; n++) {
        char c = id[n];
        if (n >= SL_ID_LEN)
            return false;
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return false;
    }
    return n == SL_ID_LEN;
}

/* RFC 5322 3.6.8: printable US-ASCII except ':' */
static bool
header_name_ok(const char *s)
{
    size_t n = 0;

    for (const unsigned char *p = (const unsigned char *)str_or_empty(s); *p != '\0'; p++, n++)
        if (n >= SL_WIRE_MAX_HEADER_NAME || *p < 33 || *p > 126 || *p == ':')
            return false;
    return n > 0;
}

/* An address the frontend puts into RCPT TO and a notification's To:
 * (RecipientVerdict.admin): "" or printable US-ASCII without blanks and
 * without the characters that would end or split it. */
static bool
address_ok(const char *s)
{
    size_t n = 0;

    for (const unsigned char *p = (const unsigned char *)str_or_empty(s); *p != '\0'; p++, n++)
        if (n >= 254 || *p < 33 || *p > 126 || strchr("<>,;\"\\", *p) != NULL)
            return false;
    return true;
}

/* RecipientVerdict.quarantine: amavis' quarantine types, or "" for none. */
static bool
quarantine_type_ok(const char *s)
{
    static const char *const types[] = {"", "virus", "banned", "spam", "badh"};

    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
        if (strcmp(str_or_empty(s), types[i]) == 0)
            return true;
    return false;
}

/* Each check returns the field's name (a static string) on failure. */
#define CHECK(cond, msg)                                                                       \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            *error_r = (msg);                                                                  \
            return -1;                                                                         \
        }                                                                                      \
    } while (0)
#define CHECK_STR(s, min, max, name) CHECK(str_ok((s), (min), (max)), name ": bad length or control characters")

static int
check_xforward(const Sluice__Xforward *x, const char **error_r)
{
    CHECK_STR(x->name, 0, SL_WIRE_MAX_STR, "job.xforward.name");
    CHECK_STR(x->addr, 0, SL_WIRE_MAX_STR, "job.xforward.addr");
    CHECK_STR(x->port, 0, SL_WIRE_MAX_STR, "job.xforward.port");
    CHECK_STR(x->proto, 0, SL_WIRE_MAX_STR, "job.xforward.proto");
    CHECK_STR(x->helo, 0, SL_WIRE_MAX_STR, "job.xforward.helo");
    CHECK_STR(x->ident, 0, SL_WIRE_MAX_STR, "job.xforward.ident");
    CHECK_STR(x->source, 0, SL_WIRE_MAX_STR, "job.xforward.source");
    CHECK_STR(x->domain, 0, SL_WIRE_MAX_STR, "job.xforward.domain");
    return 0;
}

static int
check_job(const Sluice__Job *j, const char **error_r)
{
    CHECK(j != NULL, "job: missing");
    CHECK(j->job_id != NULL && j->job_id[0] != '\0', "job.job_id: missing");
    CHECK(sl_wire_job_id_valid(j->job_id), "job.job_id: not 12 base64url characters");
    CHECK_STR(j->origin, 0, SL_WIRE_MAX_STR, "job.origin");
    CHECK_STR(j->client_addr, 0, SL_WIRE_MAX_STR, "job.client_addr");
    CHECK(j->deadline_ms != 0, "job.deadline_ms: missing");
    CHECK_STR(j->mail_from, 0, SL_WIRE_MAX_STR, "job.mail_from");
    CHECK_STR(j->ret, 0, SL_WIRE_MAX_STR, "job.ret");
    CHECK_STR(j->envid, 0, SL_WIRE_MAX_STR, "job.envid");
    CHECK_STR(j->body_type, 0, SL_WIRE_MAX_STR, "job.body_type");
    CHECK(j->n_rcpts > 0, "job.rcpts: no recipients");
    CHECK(j->n_rcpts <= SL_WIRE_MAX_RCPTS, "job.rcpts: too many recipients");
    CHECK(j->rcpts != NULL, "job.rcpts: missing");
    for (size_t i = 0; i < j->n_rcpts; i++) {
        const Sluice__Recipient *r = j->rcpts[i];
        CHECK(r != NULL, "job.rcpts: missing element");
        CHECK_STR(r->address, 1, SL_WIRE_MAX_STR, "job.rcpts.address");
        CHECK_STR(r->notify, 0, SL_WIRE_MAX_STR, "job.rcpts.notify");
        CHECK_STR(r->orcpt, 0, SL_WIRE_MAX_STR, "job.rcpts.orcpt");
    }
    if (j->xforward != NULL && check_xforward(j->xforward, error_r) < 0)
        return -1;
    CHECK(j->attempt <= SL_WIRE_MAX_ATTEMPT, "job.attempt: out of range");
    CHECK_STR(j->helo, 0, SL_WIRE_MAX_STR, "job.helo");
    CHECK_STR(j->proto, 0, SL_WIRE_MAX_STR, "job.proto");
    CHECK_STR(j->by_host, 0, SL_WIRE_MAX_STR, "job.by_host");
    CHECK(j->by_port <= 65535, "job.by_port: out of range");
    CHECK(j->origin_concurrency <= 100000, "job.origin_concurrency: out of range");
    CHECK(j->submit <= SL_WIRE_MAX_ATTEMPT, "job.submit: out of range");
    return 0;
}

static int
check_edits(Sluice__HeaderEdit *const *edits, size_t n, const char **error_r)
{
    CHECK(n <= SL_WIRE_MAX_EDITS, "verdict.edits: too many");
    CHECK(n == 0 || edits != NULL, "verdict.edits: missing");
    for (size_t i = 0; i < n; i++) {
        const Sluice__HeaderEdit *e = edits[i];
        CHECK(e != NULL, "verdict.edits: missing element");
        CHECK((unsigned)e->op <= SLUICE__HEADER_EDIT__OP__DELETE, "verdict.edits.op: unknown");
        CHECK(header_name_ok(e->name), "verdict.edits.name: not a header field name");
        CHECK_STR(e->value, 0, SL_WIRE_MAX_HEADER_VALUE, "verdict.edits.value");
    }
    return 0;
}

static int
check_strv(char *const *v, size_t n, const char **error_r)
{
    CHECK(n <= SL_WIRE_MAX_FACTS, "verdict.facts: too many items");
    CHECK(n == 0 || v != NULL, "verdict.facts: missing");
    for (size_t i = 0; i < n; i++)
        CHECK_STR(v[i], 0, SL_WIRE_MAX_STR, "verdict.facts: item");
    return 0;
}

/* Per-recipient results and findings (scanning). Indices are
 * checked against the job by the frontend, which alone knows it. */
static int
check_verdict_scan(const Sluice__Verdict *v, const char **error_r)
{
    CHECK(v->n_rcpts <= SL_WIRE_MAX_RCPTS, "verdict.rcpts: too many");
    CHECK(v->n_rcpts == 0 || v->rcpts != NULL, "verdict.rcpts: missing");
    for (size_t i = 0; i < v->n_rcpts; i++) {
        const Sluice__RecipientVerdict *r = v->rcpts[i];
        CHECK(r != NULL, "verdict.rcpts: missing element");
        CHECK(r->index < SL_WIRE_MAX_RCPTS, "verdict.rcpts.index: out of range");
        CHECK((unsigned)r->destiny <= SLUICE__DESTINY__D_TEMPFAIL,
              "verdict.rcpts.destiny: unknown");
        CHECK_STR(r->category, 1, 64, "verdict.rcpts.category");
        CHECK_STR(r->reason, 0, SL_WIRE_MAX_STR, "verdict.rcpts.reason");
        CHECK(quarantine_type_ok(r->quarantine), "verdict.rcpts.quarantine: unknown type");
        CHECK(address_ok(r->admin), "verdict.rcpts.admin: not an address");
        if (check_edits(r->edits, r->n_edits, error_r) < 0)
            return -1;
    }
    if (v->facts != NULL) {
        const Sluice__ScanFacts *f = v->facts;
        CHECK(f->spam_score == f->spam_score, "verdict.facts.spam_score: not a number");
        if (check_strv(f->spam_tests, f->n_spam_tests, error_r) < 0 ||
            check_strv(f->virus_names, f->n_virus_names, error_r) < 0 ||
            check_strv(f->banned, f->n_banned, error_r) < 0 ||
            check_strv(f->bad_headers, f->n_bad_headers, error_r) < 0 ||
            check_strv(f->unchecked, f->n_unchecked, error_r) < 0)
            return -1;
        CHECK_STR(f->rspamd_action, 0, 64, "verdict.facts.rspamd_action");
    }
    CHECK_STR(v->policy_bank, 0, SL_WIRE_MAX_STR, "verdict.policy_bank");
    return 0;
}

static int
check_verdict(const Sluice__Verdict *v, const char **error_r)
{
    CHECK(v != NULL, "verdict: missing");
    CHECK(v->job_id != NULL && v->job_id[0] != '\0', "verdict.job_id: missing");
    CHECK(sl_wire_job_id_valid(v->job_id), "verdict.job_id: not 12 base64url characters");
    if (v->ok)
        CHECK_STR(v->category, 1, 64, "verdict.category");
    else
        CHECK_STR(v->error, 1, SL_WIRE_MAX_STR, "verdict.error");
    CHECK_STR(v->error, 0, SL_WIRE_MAX_STR, "verdict.error");
    CHECK_STR(v->category, 0, 64, "verdict.category");
    CHECK(v->n_edits <= SL_WIRE_MAX_EDITS, "verdict.edits: too many");
    CHECK(v->n_edits == 0 || v->edits != NULL, "verdict.edits: missing");
    for (size_t i = 0; i < v->n_edits; i++) {
        const Sluice__HeaderEdit *e = v->edits[i];
        CHECK(e != NULL, "verdict.edits: missing element");
        CHECK((unsigned)e->op <= SLUICE__HEADER_EDIT__OP__DELETE, "verdict.edits.op: unknown");
        CHECK(header_name_ok(e->name), "verdict.edits.name: not a header field name");
        CHECK_STR(e->value, 0, SL_WIRE_MAX_HEADER_VALUE, "verdict.edits.value");
    }
    CHECK_STR(v->message_id, 0, SL_WIRE_MAX_STR, "verdict.message_id");
    CHECK_STR(v->worker, 0, SL_WIRE_MAX_WORKER_ID, "verdict.worker");
    return check_verdict_scan(v, error_r);
}

static int
check_ready(const Sluice__Ready *r, const char **error_r)
{
    CHECK(r != NULL, "ready: missing");
    CHECK_STR(r->worker_id, 1, SL_WIRE_MAX_WORKER_ID, "ready.worker_id");
    CHECK(r->slots >= 1 && r->slots <= SL_WIRE_MAX_SLOTS, "ready.slots: out of range");
    CHECK(r->idle_heartbeat_ms <= SL_WIRE_MAX_HEARTBEAT_MS, "ready.idle_heartbeat_ms: out of range");
    return 0;
}

int
sl_wire_check(const Sluice__Frame *frame, const char **error_r)
{
    CHECK(frame->version == SL_WIRE_VERSION, "frame.version: not 1");
    switch (frame->kind_case) {
    case SLUICE__FRAME__KIND_READY:
        return check_ready(frame->ready, error_r);
    case SLUICE__FRAME__KIND_JOB:
        return check_job(frame->job, error_r);
    case SLUICE__FRAME__KIND_VERDICT:
        return check_verdict(frame->verdict, error_r);
    case SLUICE__FRAME__KIND_HEARTBEAT:
        CHECK(frame->heartbeat != NULL, "heartbeat: missing");
        CHECK_STR(frame->heartbeat->instance, 0, 64, "heartbeat.instance");
        return 0;
    case SLUICE__FRAME__KIND_DISCONNECT:
        CHECK(frame->disconnect != NULL, "disconnect: missing");
        return 0;
    case SLUICE__FRAME__KIND__NOT_SET:
    default:
        *error_r = "frame.kind: not set or unknown";
        return -1;
    }
}

int
sl_wire_pack(Sluice__Frame *frame, zmq_msg_t *msg_r, const char **error_r)
{
    size_t len;

    frame->version = SL_WIRE_VERSION;
    if (sl_wire_check(frame, error_r) < 0)
        return -1;
    len = sluice__frame__get_packed_size(frame);
    CHECK(len <= SL_WIRE_FRAME_MAX, "frame: larger than 4 MiB");
    if (zmq_msg_init_size(msg_r, len) != 0)
        sl_bug(__FILE__, __LINE__, "zmq_msg_init_size: out of memory");
    size_t packed = sluice__frame__pack(frame, zmq_msg_data(msg_r));
    SL_BUG_ON(packed != len);
    return 0;
}

/* protobuf-c reads an over-long varint tag as field number 0 or above
 * 2^29-1 and keeps it as an unknown field, then packs it back in a form it
 * refuses (tag 0) or cannot read (a 6-byte tag). Unknown fields are
 * otherwise kept and relayed (docs/protocol-wire.md 2.1), so a frame the
 * broker accepted and relayed would be dropped by the worker: refuse such
 * frames on receipt. Walks every message field by descriptor, so fields
 * added to sluice.proto are covered. */
#define FIELD_NUMBER_MAX 536870911u     /* 2^29 - 1 */

static bool
unknown_fields_ok(const ProtobufCMessage *m)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    const char *base = (const char *)m;

    for (unsigned i = 0; i < m->n_unknown_fields; i++)
        if (m->unknown_fields[i].tag == 0 || m->unknown_fields[i].tag > FIELD_NUMBER_MAX)
            return false;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->type != PROTOBUF_C_TYPE_MESSAGE)
            continue;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)(base + f->quantifier_offset);
            ProtobufCMessage *const *v = *(ProtobufCMessage *const *const *)(base + f->offset);
            for (size_t k = 0; k < n; k++)
                if (v[k] != NULL && !unknown_fields_ok(v[k]))
                    return false;
            continue;
        }
        /* of a oneof only the member named by the case is valid */
        if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
            *(const uint32_t *)(base + f->quantifier_offset) != f->id)
            continue;
        const ProtobufCMessage *sub = *(ProtobufCMessage *const *)(base + f->offset);
        if (sub != NULL && !unknown_fields_ok(sub))
            return false;
    }
    return true;
}

int
sl_wire_unpack(const void *data, size_t len, Sluice__Frame **frame_r, const char **error_r)
{
    Sluice__Frame *frame;

    *frame_r = NULL;
    CHECK(len <= SL_WIRE_FRAME_MAX, "frame: larger than 4 MiB");
    /* protobuf-c rejects truncated input, bad wire types and lengths that
     * run past the end; it returns NULL also when out of memory, which we
     * cannot tell apart and report as the peer's fault. */
    frame = sluice__frame__unpack(NULL, len, data);
    CHECK(frame != NULL, "frame: not a valid protobuf Frame");
    if (!unknown_fields_ok(&frame->base)) {
        sluice__frame__free_unpacked(frame, NULL);
        *error_r = "frame: field number 0 or above 2^29-1";
        return -1;
    }
    if (sl_wire_check(frame, error_r) < 0) {
        sluice__frame__free_unpacked(frame, NULL);
        return -1;
    }
    *frame_r = frame;
    return 0;
}

int
sl_wire_unpack_msg(zmq_msg_t *msg, Sluice__Frame **frame_r, const char **error_r)
{
    return sl_wire_unpack(zmq_msg_data(msg), zmq_msg_size(msg), frame_r, error_r);
}

void
sl_wire_frame_free(Sluice__Frame **framep)
{
    if (*framep != NULL)
        sluice__frame__free_unpacked(*framep, NULL);
    *framep = NULL;
}

/* ---- the body frames -------------------------------------------------- */

static zmq_msg_t *
body_frame(const struct sl_wire_body *body, size_t i)
{
    return i == 0 ? (zmq_msg_t *)&body->first : &body->more[i - 1];
}

int
sl_wire_body_recv(void *sock, uint64_t size, struct sl_wire_body *body, const char **error_r)
{
    size_t cap = 0;

    memset(body, 0, sizeof(*body));
    zmq_msg_init(&body->first);
    if (!sl_zsock_more(sock)) {
        *error_r = "job without body frame";
        return -1;
    }
    while (body->n == 0 || sl_zsock_more(sock)) {
        zmq_msg_t *m;

        if (body->n == SL_WIRE_BODY_PIECES_MAX) {
            *error_r = "too many body frames";
            goto bad;
        }
        if (body->n > 0 && body->n - 1 == cap) {
            cap = cap == 0 ? 16 : cap * 2;
            body->more = sl_realloc(body->more, cap * sizeof(*body->more));
        }
        m = body_frame(body, body->n);
        if (body->n > 0)
            zmq_msg_init(m);
        /* the message arrived whole, so its parts are all here */
        if (zmq_msg_recv(m, sock, ZMQ_DONTWAIT) < 0) {
            if (body->n > 0)
                zmq_msg_close(m);
            *error_r = "body frame not received";
            goto bad;
        }
        body->n++;
        body->size += zmq_msg_size(m);
        if (body->size > size) {
            *error_r = "body frames do not add up to job.size";
            goto bad;
        }
    }
    if (body->size != size) {
        *error_r = "body frames do not add up to job.size";
        goto bad;
    }
    return 0;
bad:
    sl_zsock_drain_more(sock);
    sl_wire_body_close(body);
    return -1;
}

void
sl_wire_body_move(struct sl_wire_body *to, struct sl_wire_body *from)
{
    *to = *from;
    /* a zmq_msg_t is moved with zmq_msg_move, not by copying its bytes */
    zmq_msg_init(&to->first);
    zmq_msg_move(&to->first, &from->first);
    zmq_msg_close(&from->first);
    memset(from, 0, sizeof(*from));
    zmq_msg_init(&from->first);
}

void
sl_wire_body_close(struct sl_wire_body *body)
{
    for (size_t i = 0; i < body->n; i++)
        zmq_msg_close(body_frame(body, i));
    if (body->n == 0)
        zmq_msg_close(&body->first);
    free(body->more);
    memset(body, 0, sizeof(*body));
    zmq_msg_init(&body->first);
}

int
sl_wire_body_join(struct sl_wire_body *body, zmq_msg_t *out)
{
    size_t off = 0;

    if (body->n <= 1) {
        zmq_msg_init(out);
        zmq_msg_move(out, &body->first);
        sl_wire_body_close(body);
        return 0;
    }
    if (zmq_msg_init_size(out, body->size) != 0)
        return -1;
    for (size_t i = 0; i < body->n; i++) {
        zmq_msg_t *m = body_frame(body, i);
        size_t len = zmq_msg_size(m);

        memcpy((char *)zmq_msg_data(out) + off, zmq_msg_data(m), len);
        off += len;
        zmq_msg_close(m);           /* one piece at a time: at most the body and a piece */
        zmq_msg_init(m);
    }
    sl_wire_body_close(body);
    return 0;
}

int
sl_wire_body_send(void *sock, const struct sl_wire_body *body, bool pieces)
{
    zmq_msg_t m;
    size_t n = body->n == 0 ? 1 : body->n;

    if (!pieces && n > 1) {
        size_t off = 0;

        if (zmq_msg_init_size(&m, body->size) != 0) {
            errno = ENOMEM;
            return -1;
        }
        for (size_t i = 0; i < n; i++) {
            zmq_msg_t *piece = body_frame(body, i);

            memcpy((char *)zmq_msg_data(&m) + off, zmq_msg_data(piece), zmq_msg_size(piece));
            off += zmq_msg_size(piece);
        }
        n = 1;
    } else {
        zmq_msg_init(&m);
        zmq_msg_copy(&m, body_frame(body, 0));  /* a reference, not a copy of the bytes */
    }
    for (size_t i = 0;;) {
        bool last = i + 1 == n;

        if (zmq_msg_send(&m, sock, (last ? 0 : ZMQ_SNDMORE) | ZMQ_DONTWAIT) < 0) {
            int saved = errno;
            zmq_msg_close(&m);
            errno = saved;
            return -1;
        }
        if (last)
            return 0;
        zmq_msg_init(&m);
        zmq_msg_copy(&m, body_frame(body, ++i));
    }
}

const char *
sl_wire_kind_name(const Sluice__Frame *frame)
{
    switch (frame->kind_case) {
    case SLUICE__FRAME__KIND_READY:
        return "ready";
    case SLUICE__FRAME__KIND_JOB:
        return "job";
    case SLUICE__FRAME__KIND_VERDICT:
        return "verdict";
    case SLUICE__FRAME__KIND_HEARTBEAT:
        return "heartbeat";
    case SLUICE__FRAME__KIND_DISCONNECT:
        return "disconnect";
    case SLUICE__FRAME__KIND__NOT_SET:
    default:
        return "unset";
    }
}

/* One range check serves both directions: the numbers are the same
 * (sl_wire.h). */
static bool
header_op_known(int op)
{
    return op >= SLUICE__HEADER_EDIT__OP__PREPEND && op <= SLUICE__HEADER_EDIT__OP__DELETE;
}

int
sl_wire_header_op_to_mail(Sluice__HeaderEdit__Op op)
{
    return header_op_known((int)op) ? (int)op : SLUICE__HEADER_EDIT__OP__PREPEND;
}

Sluice__HeaderEdit__Op
sl_wire_header_op_from_mail(int op)
{
    return header_op_known(op) ? (Sluice__HeaderEdit__Op)op : SLUICE__HEADER_EDIT__OP__PREPEND;
}
