/* ledger_entry.c - the ledger's data, without I/O (ledger.h): the message
 * key's name, the Message-ID it is built from, what a recipient's field
 * holds and what an answer carries, and the two Lua scripts that change
 * fields on Redis' side. ledger.c sends them; the unit tests read these
 * directly. */
#include "ledger.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sodium.h>

#include "util/sl_util.h"

/* KEYS[1] message key; ARGV: node, stale ms, ttl s, mine, served,
 * recipients... node is "<registry id>/<pid>"; mine is our reservation's
 * value, or "" to date it on Redis' TIME here. A reservation is live while
 * it is younger than stale and its node's registry key exists; one of our
 * own registry id but another pid was left by a child the master has
 * since restarted, so it is stale at once; one of this very process is
 * live only while another of its jobs works on the message (served "1"):
 * otherwise no job of ours serves it any more (its release was lost while
 * Redis was away) and it is ours to take over at once.
 * Returns {now, mine, one entry per recipient}. */
const char fe_ledger_reserve_script[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local mine = ARGV[4]\n"
    "if mine == '' then mine = 'pending:' .. ARGV[1] .. ':' .. string.format('%.0f', now) end\n"
    "local stale = tonumber(ARGV[2])\n"
    "local myreg = string.match(ARGV[1], '^(.*)/%d+$')\n"
    "local out = {string.format('%.0f', now), mine}\n"
    "for i = 6, #ARGV do\n"
    "  local v = redis.call('HGET', KEYS[1], ARGV[i])\n"
    "  local live = false\n"
    "  if v and string.sub(v, 1, 5) == 'done:' then\n"
    "    live = true\n"
    "  elseif v then\n"
    "    local node, ts = string.match(v, '^pending:(.*):(%d+)$')\n"
    "    if node ~= nil and now - tonumber(ts) < stale then\n"
    "      local reg = string.match(node, '^(.*)/%d+$') or node\n"
    "      if reg == myreg then\n"
    "        live = node == ARGV[1] and ARGV[5] == '1'\n"
    "      else\n"
    "        live = redis.call('EXISTS', 'sluice:node:' .. reg) == 1\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "  if live then\n"
    "    out[#out + 1] = v\n"
    "  else\n"
    "    redis.call('HSET', KEYS[1], ARGV[i], mine)\n"
    "    out[#out + 1] = v and ('took:' .. v) or 'reserved'\n"
    "  end\n"
    "end\n"
    "redis.call('EXPIRE', KEYS[1], ARGV[3])\n"
    "return out\n";

/* KEYS[1] message key; ARGV: ttl s, mine, then recipient, value pairs;
 * value "" releases the recipient if still reserved by mine. */
const char fe_ledger_record_script[] =
    "for i = 3, #ARGV, 2 do\n"
    "  if ARGV[i + 1] ~= '' then\n"
    "    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])\n"
    "  elseif redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[2] then\n"
    "    redis.call('HDEL', KEYS[1], ARGV[i])\n"
    "  end\n"
    "end\n"
    "if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end\n"
    "return 1\n";

static void
hash_part(crypto_generichash_state *st, const void *data, size_t len, bool present)
{
    unsigned char hdr[9];

    /* a tag and a length before every part: no two inputs hash alike by
     * shifting bytes from one part into the next */
    hdr[0] = present ? 1 : 0;
    for (int i = 0; i < 8; i++)
        hdr[1 + i] = (unsigned char)((unsigned long long)len >> (8 * i));
    crypto_generichash_update(st, hdr, sizeof(hdr));
    if (len > 0)
        crypto_generichash_update(st, data, len);
}

static void
hash_str(crypto_generichash_state *st, const char *s)
{
    bool present = s != NULL && s[0] != '\0';
    hash_part(st, present ? s : "", present ? strlen(s) : 0, present);
}

void
fe_ledger_key(const struct fe_ledger_message *m, char key_r[FE_LEDGER_KEY_LEN + 1])
{
    static const char ctx[] = "sluice ledger v1";
    crypto_generichash_state st;
    unsigned char digest[32];
    size_t plen = sizeof(FE_LEDGER_KEY_PREFIX) - 1;

    crypto_generichash_init(&st, NULL, 0, sizeof(digest));
    crypto_generichash_update(&st, (const unsigned char *)ctx, sizeof(ctx) - 1);
    hash_str(&st, m->origin);
    hash_str(&st, m->ident);
    hash_str(&st, m->message_id);
    hash_part(&st, m->body, m->body_len, true);
    crypto_generichash_final(&st, digest, sizeof(digest));
    memcpy(key_r, FE_LEDGER_KEY_PREFIX, plen);
    sodium_bin2hex(key_r + plen, 64 + 1, digest, sizeof(digest));
}

const char *
fe_ledger_message_id(const char *body, size_t len, size_t *len_r)
{
    const char *p = body, *end = body + len;

    /* header lines until the empty line; continuation lines belong to the
     * header above them */
    while (p < end && !(p[0] == '\r' || p[0] == '\n')) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *next = eol ? eol + 1 : end;
        while (next < end && (*next == ' ' || *next == '\t')) {
            eol = memchr(next, '\n', (size_t)(end - next));
            next = eol ? eol + 1 : end;
        }
        if ((size_t)(next - p) > 11 && strncasecmp(p, "Message-ID:", 11) == 0) {
            const char *v = p + 11, *e = next;
            while (v < e && (*v == ' ' || *v == '\t'))
                v++;
            while (e > v && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' ' || e[-1] == '\t'))
                e--;
            *len_r = (size_t)(e - v);
            return v;
        }
        p = next;
    }
    *len_r = 0;
    return NULL;
}

/* "pending:<node>:<ms>": node may hold ':' (it is "frontend:host:pid"). */
static int
parse_pending(const char *s, size_t len, unsigned long long now_ms, struct fe_ledger_entry *e)
{
    const char *p = s + 8, *end = s + len, *colon = NULL;
    unsigned long long ts = 0;

    if (len < 8 || memcmp(s, "pending:", 8) != 0)
        return -1;
    for (const char *q = p; q < end; q++)
        if (*q == ':')
            colon = q;
    if (colon == NULL || colon == p || colon + 1 == end || end - colon > 20)
        return -1;
    for (const char *q = colon + 1; q < end; q++) {
        if (*q < '0' || *q > '9')
            return -1;
        ts = ts * 10 + (unsigned long long)(*q - '0');
    }
    e->node = sl_strndup(p, (size_t)(colon - p));
    e->age_ms = now_ms > ts ? now_ms - ts : 0;
    return 0;
}

int
fe_ledger_parse_entry(const char *s, size_t len, unsigned long long now_ms,
                      struct fe_ledger_entry *entry_r)
{
    memset(entry_r, 0, sizeof(*entry_r));
    if (memchr(s, '\0', len) != NULL)
        return -1;
    if (len == 8 && memcmp(s, "reserved", 8) == 0) {
        entry_r->state = FE_LEDGER_RESERVED;
        return 0;
    }
    if (len > 5 && memcmp(s, "took:", 5) == 0) {
        entry_r->state = FE_LEDGER_TAKEN;
        return parse_pending(s + 5, len - 5, now_ms, entry_r);
    }
    if (len > 5 && memcmp(s, "done:", 5) == 0) {
        entry_r->state = FE_LEDGER_DONE;
        entry_r->reply = sl_strndup(s + 5, len - 5);
        /* only a success is ever recorded (fe_ledger_record) */
        if (entry_r->reply[0] != '2') {
            fe_ledger_entry_clear(entry_r);
            return -1;
        }
        return 0;
    }
    entry_r->state = FE_LEDGER_IN_FLIGHT;
    return parse_pending(s, len, now_ms, entry_r);
}

void
fe_ledger_entry_clear(struct fe_ledger_entry *entry)
{
    free(entry->reply);
    free(entry->node);
    memset(entry, 0, sizeof(*entry));
}

struct fe_ledger_answer *
fe_ledger_answer_new(const struct fe_ledger_entry *entries, size_t n, const char *mine,
                     const char *error)
{
    struct fe_ledger_answer *a = sl_calloc(1, sizeof(*a));

    if (error != NULL) {
        a->error = sl_strdup(error);
        /* the reservation may have been written all the same */
        a->mine = mine != NULL ? sl_strdup(mine) : NULL;
        a->n = n;
        return a;
    }
    a->n = n;
    a->mine = sl_strdup(mine != NULL ? mine : "");
    a->entries = sl_calloc(n ? n : 1, sizeof(*a->entries));
    for (size_t i = 0; i < n; i++) {
        a->entries[i] = entries[i];
        a->entries[i].reply = entries[i].reply ? sl_strdup(entries[i].reply) : NULL;
        a->entries[i].node = entries[i].node ? sl_strdup(entries[i].node) : NULL;
    }
    return a;
}

void
fe_ledger_answer_free(struct fe_ledger_answer **ap)
{
    struct fe_ledger_answer *a = *ap;

    if (a == NULL)
        return;
    *ap = NULL;
    for (size_t i = 0; a->entries != NULL && i < a->n; i++)
        fe_ledger_entry_clear(&a->entries[i]);
    free(a->entries);
    free(a->mine);
    free(a->error);
    free(a);
}
