/* sl_drill_tally.c - the drill's accounting (sl_drill.h): what was sent,
 * answered and delivered, per message and recipient, and the figures made
 * from it. Pure: no I/O, no clock. */
#include "cli/sl_drill.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/sl_util.h"

struct drill_unit {              /* one recipient of one message */
    unsigned char state;         /* enum sl_drill_rcpt_state */
    unsigned short copies;       /* delivered to the sink (saturates) */
    unsigned long long final_ms; /* when the final reply came */
};

struct drill_message {
    bool sent;
    unsigned long long first_ms; /* the first attempt */
};

struct sl_drill_tally {
    unsigned count, rcpts;
    struct drill_message *msgs; /* count */
    struct drill_unit *units;   /* count x rcpts, message-major */
    unsigned long tempfails;
    unsigned long foreign;
    /* kept up as things happen: the progress line and the end test */
    unsigned long n_sent, n_accepted, n_delivered;
    unsigned long n_missing; /* recipients accepted, no copy yet */
};

struct sl_drill_tally *
sl_drill_tally_new(unsigned count, unsigned rcpts)
{
    struct sl_drill_tally *t = sl_calloc(1, sizeof(*t));

    SL_BUG_ON(count == 0 || rcpts == 0 || count > SL_DRILL_MAX_COUNT ||
              rcpts > SL_DRILL_MAX_RCPTS || (unsigned long long)count * rcpts > SL_DRILL_MAX_UNITS);
    t->count = count;
    t->rcpts = rcpts;
    t->msgs = sl_calloc(count, sizeof(*t->msgs));
    t->units = sl_calloc((size_t)count * rcpts, sizeof(*t->units));
    return t;
}

void
sl_drill_tally_destroy(struct sl_drill_tally **tallyp)
{
    struct sl_drill_tally *t = *tallyp;

    if (t == NULL)
        return;
    free(t->msgs);
    free(t->units);
    free(t);
    *tallyp = NULL;
}

static struct drill_unit *
unit(const struct sl_drill_tally *t, unsigned seq, unsigned rcpt)
{
    SL_BUG_ON(seq >= t->count || rcpt >= t->rcpts); /* the client's own numbers */
    return &t->units[(size_t)seq * t->rcpts + rcpt];
}

void
sl_drill_tally_attempt(struct sl_drill_tally *t, unsigned seq, unsigned long long now_ms)
{
    SL_BUG_ON(seq >= t->count);
    if (!t->msgs[seq].sent) {
        t->msgs[seq].sent = true;
        t->msgs[seq].first_ms = now_ms;
        t->n_sent++;
    }
}

/* Does every recipient of seq pass test? */
static bool
every_rcpt(const struct sl_drill_tally *t, unsigned seq, bool (*test)(const struct drill_unit *))
{
    for (unsigned r = 0; r < t->rcpts; r++)
        if (!test(&t->units[(size_t)seq * t->rcpts + r]))
            return false;
    return true;
}

static bool
unit_accepted(const struct drill_unit *u)
{
    return u->state == SL_DRILL_ACCEPTED;
}

static bool
unit_delivered(const struct drill_unit *u)
{
    return u->copies > 0;
}

void
sl_drill_tally_reply(struct sl_drill_tally *t, unsigned seq, unsigned rcpt, int code,
                     unsigned long long now_ms)
{
    struct drill_unit *u = unit(t, seq, rcpt);

    if (u->state != SL_DRILL_PENDING || (code >= 400 && code < 500))
        return; /* final already, or not final yet */
    u->state = code >= 200 && code < 300 ? SL_DRILL_ACCEPTED : SL_DRILL_REJECTED;
    u->final_ms = now_ms;
    if (u->state == SL_DRILL_ACCEPTED) {
        t->n_missing += u->copies == 0;
        t->n_accepted += every_rcpt(t, seq, unit_accepted);
    }
}

void
sl_drill_tally_deferred(struct sl_drill_tally *t, unsigned seq)
{
    SL_BUG_ON(seq >= t->count);
    t->tempfails++;
}

enum sl_drill_rcpt_state
sl_drill_tally_rcpt(const struct sl_drill_tally *t, unsigned seq, unsigned rcpt)
{
    return (enum sl_drill_rcpt_state)unit(t, seq, rcpt)->state;
}

bool
sl_drill_tally_final(const struct sl_drill_tally *t, unsigned seq)
{
    for (unsigned r = 0; r < t->rcpts; r++)
        if (unit(t, seq, r)->state == SL_DRILL_PENDING)
            return false;
    return true;
}

int
sl_drill_tally_delivered(struct sl_drill_tally *t, unsigned seq, unsigned rcpt)
{
    struct drill_unit *u;

    /* the numbers come from the sink's input: checked, never asserted */
    if (seq >= t->count || rcpt >= t->rcpts) {
        t->foreign++;
        return 0;
    }
    u = unit(t, seq, rcpt);
    if (u->copies < 0xffff)
        u->copies++;
    if (u->copies > 1)
        return 2;
    t->n_missing -= u->state == SL_DRILL_ACCEPTED;
    t->n_delivered += every_rcpt(t, seq, unit_delivered);
    return 1;
}

void
sl_drill_tally_foreign(struct sl_drill_tally *t)
{
    t->foreign++;
}

bool
sl_drill_tally_all_delivered(const struct sl_drill_tally *t)
{
    return t->n_missing == 0;
}

void
sl_drill_tally_progress(const struct sl_drill_tally *t, struct sl_drill_progress *p)
{
    p->sent = t->n_sent;
    p->accepted = t->n_accepted;
    p->delivered = t->n_delivered;
    p->tempfails = t->tempfails;
}

static int
cmp_ull(const void *a, const void *b)
{
    unsigned long long x = *(const unsigned long long *)a, y = *(const unsigned long long *)b;
    return x < y ? -1 : x > y;
}

unsigned long long
sl_drill_percentile(unsigned long long *values, size_t n, double p)
{
    size_t rank;

    SL_BUG_ON(p <= 0 || p > 100);
    if (n == 0)
        return 0;
    qsort(values, n, sizeof(*values), cmp_ull);
    /* nearest rank: the smallest value with at least p% at or below it */
    rank = (size_t)((p / 100.0) * (double)n);
    if ((double)rank < (p / 100.0) * (double)n)
        rank++;
    return values[rank == 0 ? 0 : rank - 1];
}

void
sl_drill_tally_summary(const struct sl_drill_tally *t, struct sl_drill_summary *sum)
{
    unsigned long long *lat = sl_calloc(t->count, sizeof(*lat));
    size_t n_lat = 0;

    memset(sum, 0, sizeof(*sum));
    for (unsigned seq = 0; seq < t->count; seq++) {
        bool accepted = true, rejected = false, delivered = true, lost = false;
        unsigned long long last = 0;

        for (unsigned r = 0; r < t->rcpts; r++) {
            const struct drill_unit *u = unit(t, seq, r);
            accepted &= u->state == SL_DRILL_ACCEPTED;
            rejected |= u->state == SL_DRILL_REJECTED;
            delivered &= u->copies > 0;
            lost |= u->state == SL_DRILL_ACCEPTED && u->copies == 0;
            if (u->copies > 1)
                sum->duplicates += u->copies - 1u;
            if (u->final_ms > last)
                last = u->final_ms;
        }
        if (!t->msgs[seq].sent) /* never tried: only a copy of nothing could be here */
            continue;
        sum->sent++;
        sum->delivered += delivered;
        sum->lost += lost;
        if (accepted) {
            sum->accepted++;
            lat[n_lat++] = last >= t->msgs[seq].first_ms ? last - t->msgs[seq].first_ms : 0;
        } else if (rejected) {
            sum->rejected++;
        } else {
            sum->unfinished++;
        }
    }
    sum->tempfails = t->tempfails;
    sum->foreign = t->foreign;
    sum->p50_ms = sl_drill_percentile(lat, n_lat, 50);
    sum->p99_ms = sl_drill_percentile(lat, n_lat, 99);
    free(lat);
}

int
sl_drill_msgid_seq(const char *msgid, const char *runid, unsigned *seq_r)
{
    static const char tail[] = "@" SL_DRILL_DOMAIN;
    const char *p = msgid, *end;
    size_t runid_len = strlen(runid);
    unsigned long seq = 0;

    p += strspn(p, " \t");
    end = p + strlen(p);
    while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    if (end > p && *p == '<') {
        if (end[-1] != '>')
            return -1;
        p++;
        end--;
    }
    if ((size_t)(end - p) < 6 + runid_len + 1 + strlen(tail) || strncmp(p, "drill-", 6) != 0 ||
        strncmp(p + 6, runid, runid_len) != 0 || p[6 + runid_len] != '-')
        return -1;
    p += 6 + runid_len + 1;
    if (*p < '0' || *p > '9')
        return -1;
    for (; p < end && *p >= '0' && *p <= '9'; p++) {
        seq = seq * 10 + (unsigned long)(*p - '0');
        if (seq > SL_DRILL_MAX_COUNT)
            return -1;
    }
    if ((size_t)(end - p) != strlen(tail) || strncasecmp(p, tail, strlen(tail)) != 0)
        return -1;
    *seq_r = (unsigned)seq;
    return 0;
}

int
sl_drill_rcpt_index(const char *address, unsigned *rcpt_r)
{
    static const char tail[] = "@" SL_DRILL_DOMAIN;
    const char *p = address;
    unsigned long k = 0;

    if (strncasecmp(p, "rcpt", 4) != 0 || p[4] < '1' || p[4] > '9')
        return -1;
    for (p += 4; *p >= '0' && *p <= '9'; p++) {
        k = k * 10 + (unsigned long)(*p - '0');
        if (k > SL_DRILL_MAX_RCPTS)
            return -1;
    }
    if (strcasecmp(p, tail) != 0)
        return -1;
    *rcpt_r = (unsigned)(k - 1);
    return 0;
}
