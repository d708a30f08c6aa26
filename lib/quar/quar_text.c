/* quar_text.c - an entry as both stores keep it (quar_int.h): amavis'
 * prefix header fields, sluice's X-Sluice-Quarantine, the message with LF
 * line ends, or the message sealed.
 *
 * Layout, as amavisd-new's do_quarantine writes it (its local: method adds
 * Return-Path and Delivered-To on top):
 *   Return-Path: <sender>                 (local: only)
 *   Delivered-To: virus-quarantine        (local: only)
 *   X-Envelope-From: <sender>
 *   X-Envelope-To: <a@example.com>,
 *    <b@example.com>
 *   X-Envelope-To-Blocked: <a@example.com>
 *   X-Quarantine-ID: <mail_id>
 *   X-Amavis-Alert: INFECTED, message contains virus: Eicar-Test-Signature
 *   X-Sluice-Quarantine: type=virus; secret_id=...; origin=default; ...
 *   <the message>
 * amavis' own release skips the known fields and stops at the first
 * unknown one; X-Sluice-Quarantine always comes last, so sluice knows
 * where the message starts even when it is sealed (nonce and ciphertext,
 * XChaCha20-Poly1305 with the mail_id as additional data). A text amavis
 * wrote (no X-Sluice-Quarantine) reads too: the message starts at the
 * first field amavis would not skip. */
#include "quar_int.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SEAL_NONCE crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define SEAL_TAG crypto_aead_xchacha20poly1305_ietf_ABYTES

/* ---- helpers ----------------------------------------------------------- */

char *
quar_to_lf(const char *msg, size_t len, size_t *len_r)
{
    char *out = sl_malloc(len + 1);
    size_t o = 0;

    for (size_t i = 0; i < len; i++) {
        if (msg[i] == '\r' && i + 1 < len && msg[i + 1] == '\n')
            continue;
        out[o++] = msg[i];
    }
    out[o] = '\0';
    *len_r = o;
    return out;
}

/* One header line ends at LF; *next_r is the start of the next field
 * (folded lines belong to this one). */
static size_t
field_len(const char *p, const char *end, const char **next_r)
{
    const char *q = p;

    for (;;) {
        const char *lf = memchr(q, '\n', (size_t)(end - q));
        if (lf == NULL) {
            *next_r = end;
            return (size_t)(end - p);
        }
        q = lf + 1;
        if (q >= end || (*q != ' ' && *q != '\t')) {
            *next_r = q;
            return (size_t)(lf - p);
        }
    }
}

#define SLUICE_FIELD "X-Sluice-Quarantine"

/* Is p..p+len a field named name? */
static bool
field_is(const char *p, size_t len, const char *name)
{
    size_t nl = strlen(name);

    return len > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':';
}

/* The value of a field p..p+len named name (unfolded, trimmed), or NULL. */
static char *
field_value(const char *p, size_t len, const char *name)
{
    size_t nl = strlen(name);
    struct sl_buf b;

    if (!field_is(p, len, name))
        return NULL;
    sl_buf_init(&b);
    for (size_t i = nl + 1; i < len; i++) {
        if (p[i] == '\r' || p[i] == '\n')
            continue;
        sl_buf_append(&b, &p[i], 1);
    }
    char *v = sl_buf_steal(&b, NULL);
    char *s = v;
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    memmove(v, s, n);
    v[n] = '\0';
    return v;
}

char *
quar_header(const char *msg, size_t len, const char *name)
{
    const char *p = msg, *end = msg + len, *next;

    while (p < end && *p != '\n' && !(*p == '\r' && p + 1 < end && p[1] == '\n')) {
        size_t fl = field_len(p, end, &next);
        char *v = field_value(p, fl, name);
        if (v != NULL)
            return v;
        p = next;
    }
    return NULL;
}

char *
quar_column_text(const char *s, size_t max)
{
    size_t n = strlen(s), o = 0;
    char *out = sl_malloc(n + 1);

    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        size_t clen = c < 0x80             ? 1
                      : (c & 0xe0) == 0xc0 ? 2
                      : (c & 0xf0) == 0xe0 ? 3
                      : (c & 0xf8) == 0xf0 ? 4
                                           : 0;
        bool ok = clen > 0 && i + clen <= n && (clen > 1 || (c >= 0x20 && c != 0x7f));
        for (size_t k = 1; ok && k < clen; k++)
            ok = ((unsigned char)s[i + k] & 0xc0) == 0x80;
        if (!ok)
            clen = 1;
        if (o + clen > max)
            break;
        if (ok)
            memcpy(out + o, s + i, clen);
        else
            out[o] = '?';
        o += clen;
        i += clen;
    }
    out[o] = '\0';
    return out;
}

/* A value of X-Sluice-Quarantine: letters, digits and ".:_@,+-" pass,
 * anything else becomes '_' (they are names and addresses). */
static void
put_kv(struct sl_buf *b, const char *key, const char *value)
{
    if (value == NULL || value[0] == '\0')
        return;
    sl_buf_printf(b, "; %s=", key);
    for (const char *p = value; *p != '\0'; p++) {
        char c = isalnum((unsigned char)*p) || strchr(".:_@,+-/", *p) != NULL ? *p : '_';
        sl_buf_append(b, &c, 1);
    }
}

static const char *
quarantine_to_name(const char *type)
{
    return strcmp(type, "badh") == 0     ? "bad-header-quarantine"
           : strcmp(type, "banned") == 0 ? "banned-quarantine"
           : strcmp(type, "spam") == 0   ? "spam-quarantine"
                                         : "virus-quarantine";
}

/* ---- build ------------------------------------------------------------- */

char *
quar_text_build(const struct sl_quar_entry *e, bool local_delivery, const unsigned char *key,
                size_t *len_r)
{
    struct sl_buf b;
    size_t n_blocked = 0, k = 0;
    char num[64];

    sl_buf_init(&b);
    if (local_delivery)
        sl_buf_printf(&b, "Return-Path: <%s>\nDelivered-To: %s\n", e->sender,
                      quarantine_to_name(e->type));
    sl_buf_printf(&b, "X-Envelope-From: <%s>\nX-Envelope-To:", e->sender);
    for (size_t i = 0; i < e->n_rcpts; i++) {
        sl_buf_printf(&b, "%s <%s>", i ? ",\n" : "", e->rcpts[i].address);
        n_blocked += e->rcpts[i].blocked;
    }
    sl_buf_append_str(&b, "\nX-Envelope-To-Blocked:");
    for (size_t i = 0; i < e->n_rcpts; i++)
        if (e->rcpts[i].blocked)
            sl_buf_printf(&b, "%s <%s>", k++ ? ",\n" : "", e->rcpts[i].address);
    (void)n_blocked;
    sl_buf_printf(&b, "\nX-Quarantine-ID: <%s>\n", e->mail_id);
    for (size_t i = 0; i < e->n_alerts; i++) {
        char *v = quar_column_text(e->alerts[i], 900);
        sl_buf_printf(&b, "X-Amavis-Alert: %s\n", v);
        free(v);
    }
    sl_buf_printf(&b, "X-Sluice-Quarantine: type=%s", e->type);
    put_kv(&b, "secret_id", e->secret_id);
    put_kv(&b, "origin", e->origin);
    put_kv(&b, "client", e->client);
    put_kv(&b, "client_addr", e->client_addr);
    put_kv(&b, "category", e->category);
    put_kv(&b, "policy", e->policy);
    put_kv(&b, "host", e->host);
    snprintf(num, sizeof(num), "%llu", e->time_ms);
    put_kv(&b, "time", num);
    snprintf(num, sizeof(num), "%zu", e->size);
    put_kv(&b, "size", num);
    if (e->originating)
        put_kv(&b, "originating", "1");
    if (e->spam_scanned) {
        sl_format_score(e->spam_level, num, sizeof(num));
        put_kv(&b, "spam_level", num);
    }
    if (key != NULL)
        put_kv(&b, "sealed", "1");
    sl_buf_append_str(&b, "\n");

    size_t mlen;
    char *lf = quar_to_lf(e->message, e->message_len, &mlen);
    if (key == NULL) {
        sl_buf_append(&b, lf, mlen);
    } else {
        size_t off = b.len;
        unsigned long long clen;
        sl_buf_reserve(&b, SEAL_NONCE + mlen + SEAL_TAG);
        unsigned char *nonce = (unsigned char *)b.data + off;
        randombytes_buf(nonce, SEAL_NONCE);
        crypto_aead_xchacha20poly1305_ietf_encrypt(
            nonce + SEAL_NONCE, &clen, (const unsigned char *)lf, mlen,
            (const unsigned char *)e->mail_id, strlen(e->mail_id), NULL, nonce, key);
        b.len = off + SEAL_NONCE + (size_t)clen;
        b.data[b.len] = '\0';
    }
    sodium_memzero(lf, mlen);
    free(lf);
    return sl_buf_steal(&b, len_r);
}

/* ---- parse ------------------------------------------------------------- */

/* amavis' msg_from_quarantine skips these (release, not report) */
static bool
amavis_skips(const char *p, size_t len)
{
    static const char *const names[] = {
        "Return-Path:",      "Delivered-To:",          "X-Envelope-From:",
        "X-Envelope-To:",    "X-Envelope-To-Blocked:", "X-Quarantine-ID:",
        "X-Amavis-Hold:",    "X-Amavis-Alert:",        "X-Amavis-Modified:",
        "X-Amavis-PenPals:", "X-Amavis-PolicyBank:",   "X-Amavis-OS-Fingerprint:"};

    for (size_t i = 0; i < SL_N_ELEMENTS(names); i++)
        if (len >= strlen(names[i]) && strncasecmp(p, names[i], strlen(names[i])) == 0)
            return true;
    if ((len > 7 && strncasecmp(p, "X-Spam-", 7) == 0) ||
        (len > 9 && strncasecmp(p, "X-CRM114-", 9) == 0)) {
        const char *colon = memchr(p, ':', len);
        return colon != NULL;
    }
    return false;
}

/* "<a@b>,\n <c@d>" -> addresses without <>. */
static char **
address_list(const char *v, size_t *n_r)
{
    char **out = NULL;
    size_t n = 0;
    const char *p = v;

    while (*p != '\0') {
        const char *end = strchr(p, ',');
        const char *stop = end != NULL ? end : p + strlen(p);
        while (p < stop && (*p == ' ' || *p == '\t'))
            p++;
        size_t len = (size_t)(stop - p);
        while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        if (len >= 2 && p[0] == '<' && p[len - 1] == '>') {
            p++;
            len -= 2;
        }
        if (len > 0 || (p > v && p[-1] == '<')) {
            out = sl_realloc(out, (n + 1) * sizeof(*out));
            out[n++] = sl_strndup(p, len);
        }
        p = end != NULL ? end + 1 : stop;
    }
    *n_r = n;
    return out;
}

static char *
strip_angle(const char *v)
{
    size_t len = strlen(v);
    if (len >= 2 && v[0] == '<' && v[len - 1] == '>')
        return sl_strndup(v + 1, len - 2);
    return sl_strdup(v);
}

static void
replace(char **field, char *value)
{
    free(*field);
    *field = value;
}

/* X-Sluice-Quarantine's "type=virus; secret_id=...": into e. */
static bool
sluice_fields(const char *v, struct sl_quar_entry *e)
{
    bool sealed = false;
    const char *p = v;

    while (*p != '\0') {
        while (*p == ' ' || *p == ';')
            p++;
        const char *eq = strchr(p, '='), *end = strchr(p, ';');
        if (end == NULL)
            end = p + strlen(p);
        if (eq == NULL || eq > end)
            break;
        char *key = sl_strndup(p, (size_t)(eq - p));
        char *val = sl_strndup(eq + 1, (size_t)(end - eq - 1));
        if (strcmp(key, "type") == 0 && quar_type_valid(val))
            snprintf(e->type, sizeof(e->type), "%s", val);
        else if (strcmp(key, "secret_id") == 0)
            snprintf(e->secret_id, sizeof(e->secret_id), "%s", val);
        else if (strcmp(key, "origin") == 0)
            replace(&e->origin, sl_strdup(val));
        else if (strcmp(key, "client") == 0)
            replace(&e->client, sl_strdup(val));
        else if (strcmp(key, "client_addr") == 0)
            replace(&e->client_addr, sl_strdup(val));
        else if (strcmp(key, "category") == 0)
            replace(&e->category, sl_strdup(val));
        else if (strcmp(key, "policy") == 0)
            replace(&e->policy, sl_strdup(val));
        else if (strcmp(key, "host") == 0)
            replace(&e->host, sl_strdup(val));
        else if (strcmp(key, "time") == 0)
            e->time_ms = strtoull(val, NULL, 10);
        else if (strcmp(key, "size") == 0)
            e->size = (size_t)strtoull(val, NULL, 10);
        else if (strcmp(key, "originating") == 0)
            e->originating = strcmp(val, "1") == 0;
        else if (strcmp(key, "spam_level") == 0) {
            e->spam_scanned = true;
            e->spam_level = strtod(val, NULL);
        } else if (strcmp(key, "sealed") == 0)
            sealed = strcmp(val, "1") == 0;
        free(key);
        free(val);
        p = end;
    }
    return sealed;
}

static void
set_rcpts(struct sl_quar_entry *e, char **all, size_t n_all, char **blocked, size_t n_blocked,
          bool have_blocked)
{
    for (size_t i = 0; i < e->n_rcpts; i++) {
        free(e->rcpts[i].address);
        free(e->rcpts[i].smtp_resp);
    }
    free(e->rcpts);
    e->rcpts = sl_calloc(n_all ? n_all : 1, sizeof(*e->rcpts));
    e->n_rcpts = n_all;
    for (size_t i = 0; i < n_all; i++) {
        struct sl_quar_rcpt *r = &e->rcpts[i];
        r->address = all[i];
        r->rs = ' ';
        r->blocked = !have_blocked; /* amavis before 2.6: all of them */
        for (size_t k = 0; k < n_blocked && !r->blocked; k++)
            r->blocked = strcasecmp(blocked[k], all[i]) == 0;
    }
    free(all);
    sl_strv_free(blocked, n_blocked);
}

int
quar_text_parse(const char *text, size_t len, const unsigned char *key, bool want_message,
                struct sl_quar_entry *e, char **error_r)
{
    const char *p = text, *end = text + len, *next, *msg = end;
    char **all = NULL, **blocked = NULL;
    size_t n_all = 0, n_blocked = 0;
    bool have_blocked = false, sealed = false, ours = false;

    while (p < end) {
        size_t fl = field_len(p, end, &next);
        char *v;
        /* sluice writes its field on one line; what follows it is the
         * message, and a sealed one starts with a random nonce that may
         * begin with SP or HT: never a folded continuation of the field */
        if (field_is(p, fl, SLUICE_FIELD)) {
            const char *lf = memchr(p, '\n', (size_t)(end - p));
            fl = lf != NULL ? (size_t)(lf - p) : (size_t)(end - p);
            next = lf != NULL ? lf + 1 : end;
        }
        if (fl == 0 || (fl == 1 && p[0] == '\r') || !amavis_skips(p, fl)) {
            if ((v = field_value(p, fl, SLUICE_FIELD)) != NULL) {
                sealed = sluice_fields(v, e);
                ours = true;
                free(v);
                msg = next;
            } else {
                msg = p; /* amavis' own text: the message starts here */
            }
            break;
        }
        if ((v = field_value(p, fl, "X-Envelope-From")) != NULL ||
            (e->sender == NULL && (v = field_value(p, fl, "Return-Path")) != NULL)) {
            replace(&e->sender, strip_angle(v));
        } else if ((v = field_value(p, fl, "X-Envelope-To")) != NULL) {
            sl_strv_free(all, n_all);
            all = address_list(v, &n_all);
        } else if ((v = field_value(p, fl, "X-Envelope-To-Blocked")) != NULL) {
            sl_strv_free(blocked, n_blocked);
            blocked = address_list(v, &n_blocked);
            have_blocked = true;
        } else if ((v = field_value(p, fl, "X-Quarantine-ID")) != NULL) {
            char *id = strip_angle(v);
            snprintf(e->mail_id, sizeof(e->mail_id), "%s", id);
            free(id);
        } else if ((v = field_value(p, fl, "X-Amavis-Alert")) != NULL) {
            e->alerts = sl_realloc(e->alerts, (e->n_alerts + 1) * sizeof(char *));
            e->alerts[e->n_alerts++] = v;
            v = NULL;
        }
        free(v);
        p = next;
    }
    if (all != NULL || n_all == 0)
        set_rcpts(e, all, n_all, blocked, n_blocked, have_blocked);
    if (!ours && e->mail_id[0] == '\0')
        return quar_fail(error_r, "not a quarantined message (no X-Quarantine-ID)");
    if (e->sender == NULL)
        e->sender = sl_strdup("");

    const char *m = msg;
    size_t mlen = (size_t)(end - msg);
    char *opened = NULL;
    if (sealed && want_message) {
        unsigned long long olen;
        if (key == NULL)
            return quar_fail(error_r, "the message is sealed (quarantine.encryption) and no "
                                      "key is configured");
        if (mlen < SEAL_NONCE + SEAL_TAG)
            return quar_fail(error_r, "sealed message too short");
        opened = sl_malloc(mlen + 1);
        if (crypto_aead_xchacha20poly1305_ietf_decrypt(
                (unsigned char *)opened, &olen, NULL, (const unsigned char *)m + SEAL_NONCE,
                mlen - SEAL_NONCE, (const unsigned char *)e->mail_id, strlen(e->mail_id),
                (const unsigned char *)m, key) != 0) {
            free(opened);
            return quar_fail(error_r, "cannot open the sealed message: wrong key "
                                      "(quarantine.key_file) or damaged entry");
        }
        opened[olen] = '\0';
        m = opened;
        mlen = (size_t)olen;
    }
    if (!sealed || opened != NULL) {
        replace(&e->message_id, quar_header(m, mlen, "Message-ID"));
        replace(&e->from, quar_header(m, mlen, "From"));
        replace(&e->subject, quar_header(m, mlen, "Subject"));
        if (e->size == 0)
            e->size = mlen;
    }
    if (want_message) {
        free(e->message);
        e->message = opened != NULL ? opened : sl_strndup(m, mlen);
        e->message_len = mlen;
    } else {
        free(opened);
    }
    return 0;
}
