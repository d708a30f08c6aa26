/* fuzz_wire.c - libFuzzer target for lib/net/sl_wire: decoding and
 * validating a protobuf Frame received from another node
 * (proto/sluice.proto, docs/protocol-wire.md).
 *
 * INPUT
 *   The bytes of one ZeroMQ message part, as sl_wire_unpack() gets them.
 *
 * INVARIANTS
 *   1. sl_wire_unpack() either fails with an error string and no frame, or
 *      returns a frame that sl_wire_check() accepts and whose kind is set.
 *   2. Independently of sl_wire.c's checks: in an accepted frame no string
 *      field at all (found by descriptor, so new fields are covered) holds
 *      CR, LF or another control character except TAB: any of them can
 *      reach a header, an SMTP command, a DSN or a log line. Job ids are 12
 *      base64url characters, header edit names RFC 5322 field names, a job
 *      has recipients, a ready message a worker id and slots.
 *   3. Anything accepted re-packs with sl_wire_pack() (the sender's side
 *      runs the same validation, so a frame one node accepts, another node
 *      can send), the packed bytes unpack and validate again, and packing
 *      that gives the same bytes (a fixed point after one round).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <zmq.h>

#include "fuzz_common.h"
#include "net/sl_wire.h"

/* No CR, LF or other control character (TAB allowed) in s. */
static void
check_str(const char *s, const char *what)
{
    if (s == NULL)
        return;
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++)
        FUZZ_CHECK((*p >= 0x20 || *p == '\t') && *p != 0x7f, "control character 0x%02x in %s", *p,
                   what);
}

/* Invariant 2 for every string field of m and of the messages under it,
 * found by descriptor: fields added to sluice.proto are checked without
 * touching this file, so a new string that sl_wire_check() forgets to
 * validate shows up here. */
static void
check_strings(const ProtobufCMessage *m)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    const char *base = (const char *)m;

    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE)
            continue;
        if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
            *(const uint32_t *)(base + f->quantifier_offset) != f->id)
            continue;
        size_t n = 1;
        const void *const *v = (const void *const *)(base + f->offset);
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            n = *(const size_t *)(base + f->quantifier_offset);
            v = *(const void *const *const *)(base + f->offset);
        }
        for (size_t k = 0; k < n; k++) {
            if (v[k] == NULL)
                continue;
            if (f->type == PROTOBUF_C_TYPE_STRING) {
                char what[160];
                snprintf(what, sizeof(what), "%s.%s", d->short_name, f->name);
                check_str(v[k], what);
            } else {
                check_strings(v[k]);
            }
        }
    }
}

static void
check_id(const char *id)
{
    FUZZ_CHECK(id != NULL && strlen(id) == 12, "job id length");
    for (const char *p = id; *p != '\0'; p++)
        FUZZ_CHECK((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                       (*p >= '0' && *p <= '9') || *p == '-' || *p == '_',
                   "job id character 0x%02x", (unsigned char)*p);
}

static void
check_edit(const Sluice__HeaderEdit *e)
{
    FUZZ_CHECK(e->name != NULL && e->name[0] != '\0', "empty header name");
    for (const unsigned char *p = (const unsigned char *)e->name; *p != '\0'; p++)
        FUZZ_CHECK(*p > 32 && *p < 127 && *p != ':', "header name byte 0x%02x", *p);
}

static void
check_frame(const Sluice__Frame *f)
{
    const char *error = "unset";

    FUZZ_CHECK(sl_wire_check(f, &error) == 0, "accepted frame fails sl_wire_check: %s", error);
    FUZZ_CHECK(strcmp(sl_wire_kind_name(f), "unset") != 0, "accepted frame without a kind");
    FUZZ_CHECK(f->version == SL_WIRE_VERSION, "version %u", f->version);
    check_strings(&f->base);
    switch (f->kind_case) {
    case SLUICE__FRAME__KIND_JOB:
        check_id(f->job->job_id);
        FUZZ_CHECK(f->job->n_rcpts > 0, "job without recipients");
        for (size_t i = 0; i < f->job->n_rcpts; i++)
            FUZZ_CHECK(f->job->rcpts[i]->address != NULL && f->job->rcpts[i]->address[0] != '\0',
                       "empty recipient");
        FUZZ_CHECK(f->job->by_port <= 65535, "by_port %u", f->job->by_port);
        break;
    case SLUICE__FRAME__KIND_VERDICT:
        check_id(f->verdict->job_id);
        for (size_t i = 0; i < f->verdict->n_edits; i++)
            check_edit(f->verdict->edits[i]);
        break;
    case SLUICE__FRAME__KIND_READY:
        FUZZ_CHECK(f->ready->worker_id != NULL && f->ready->worker_id[0] != '\0',
                   "ready without worker id");
        FUZZ_CHECK(f->ready->slots >= 1, "ready with 0 slots");
        break;
    default:
        break;
    }
}

/* Packs f (which must validate) into a malloc'ed copy. */
static uint8_t *
repack(Sluice__Frame *f, size_t *len_r)
{
    zmq_msg_t msg;
    const char *error = "unset";

    FUZZ_CHECK(sl_wire_pack(f, &msg, &error) == 0, "accepted frame does not pack: %s", error);
    *len_r = zmq_msg_size(&msg);
    uint8_t *copy = malloc(*len_r ? *len_r : 1);
    FUZZ_CHECK(copy != NULL, "out of memory");
    memcpy(copy, zmq_msg_data(&msg), *len_r);
    zmq_msg_close(&msg);
    return copy;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Sluice__Frame *frame = (Sluice__Frame *)&frame; /* must be overwritten */
    const char *error = NULL;

    if (sl_wire_unpack(data, size, &frame, &error) != 0) {
        FUZZ_CHECK(frame == NULL && error != NULL, "failed unpack: frame %p, error %p",
                   (void *)frame, (const void *)error);
        return 0;
    }
    FUZZ_CHECK(frame != NULL, "unpack succeeded without a frame");
    check_frame(frame);

    size_t len1, len2;
    uint8_t *p1 = repack(frame, &len1);
    sl_wire_frame_free(&frame);
    FUZZ_CHECK(frame == NULL, "sl_wire_frame_free did not clear the pointer");

    FUZZ_CHECK(sl_wire_unpack(p1, len1, &frame, &error) == 0,
               "re-packed frame (%zu bytes) does not unpack: %s", len1, error);
    check_frame(frame);
    uint8_t *p2 = repack(frame, &len2);
    if (len1 != len2 || memcmp(p1, p2, len1) != 0) {
        fuzz_dump("first re-pack", p1, len1);
        fuzz_dump("second re-pack", p2, len2);
        FUZZ_CHECK(false, "pack(unpack(pack(x))) != pack(x)");
    }
    sl_wire_frame_free(&frame);
    free(p1);
    free(p2);
    return 0;
}
