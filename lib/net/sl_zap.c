/* sl_zap.c - allow-list and ZAP handler (sl_zap.h).
 *
 * RFC 27 request:  "1.0", request id, domain, address, routing id,
 *                  mechanism, credentials (CURVE: the 32-byte client key)
 *        reply:    "1.0", request id, status code, status text, user id,
 *                  metadata (empty)
 * libzmq sends the requests; a malformed one is still answered 400 and
 * never asserted on. Refusals are logged once per key and then at most
 * once a minute with a count: a refused worker keeps reconnecting. */
#include "net/sl_zap.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "net/sl_keys.h"
#include "util/sl_log.h"
#include "util/sl_metrics.h"

#define REFUSAL_SLOTS 64
#define REFUSAL_LOG_MS 60000

struct allow_entry {
    unsigned char key[32];
    unsigned roles;
    char *name;                 /* "worker/w1.pub", for logs */
};

struct sl_allowlist {
    struct allow_entry *items;
    size_t n;
};

struct refusal {
    unsigned char key[32];
    unsigned long long last_ms;
    unsigned long suppressed;
};

struct sl_zap {
    void *zctx;
    void *rep;                  /* the handler's socket, thread side */
    void *ctl_thread, *ctl_main;
    pthread_t thread;
    char *dir;
    unsigned admitted;
    pthread_mutex_t lock;       /* list: swapped by reload, read by the thread */
    struct sl_allowlist *list;
    struct refusal refusals[REFUSAL_SLOTS];     /* thread only */
    unsigned long long n_admitted, n_refused;
};

static struct sl_metric *handshakes; /* sl_zap_metrics_register(); NULL: off */

static const struct {
    const char *name;
    enum sl_role role;
} roles[] = {
    {"frontend", SL_ROLE_FRONTEND},
    {"worker", SL_ROLE_WORKER},
    {"broker", SL_ROLE_BROKER},
};

/* ---- the allow-list ---------------------------------------------------- */

static bool
ends_with(const char *s, const char *suffix)
{
    size_t ls = strlen(s), lx = strlen(suffix);
    return ls > lx && strcmp(s + ls - lx, suffix) == 0;
}

static int
allow_add_file(struct sl_allowlist *list, const char *path, const char *name, unsigned role,
               char **error_r)
{
    char z85[41];
    unsigned char bin[32];

    if (sl_key_read_file(path, false, z85, error_r) < 0)
        return -1;
    zmq_z85_decode(bin, z85);
    for (size_t i = 0; i < list->n; i++)
        if (memcmp(list->items[i].key, bin, 32) == 0) {
            list->items[i].roles |= role;       /* one key, several roles */
            return 0;
        }
    list->items = sl_realloc(list->items, (list->n + 1) * sizeof(*list->items));
    list->items[list->n].roles = role;
    memcpy(list->items[list->n].key, bin, 32);
    list->items[list->n].name = sl_strdup(name);
    list->n++;
    return 0;
}

/* Adds dir's *.pub: all with role when role != 0, else by file name
 * prefix ("worker-w1.pub"). Subdirectories named after a role are read
 * when role == 0. */
static int
allow_add_dir(struct sl_allowlist *list, const char *dir, const char *prefix, unsigned role,
              char **error_r)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int ret = 0;

    if (d == NULL) {
        *error_r = sl_asprintf("%s: %s", dir, strerror(errno));
        return -1;
    }
    while (ret == 0 && (de = readdir(d)) != NULL) {
        char *path, *name;
        struct stat st;
        unsigned r = role;

        if (de->d_name[0] == '.')
            continue;
        path = sl_asprintf("%s/%s", dir, de->d_name);
        name = sl_asprintf("%s%s", prefix, de->d_name);
        if (stat(path, &st) != 0) {
            *error_r = sl_asprintf("%s: %s", path, strerror(errno));
            ret = -1;
        } else if (S_ISDIR(st.st_mode) && role == 0) {
            bool known = false;
            for (size_t i = 0; i < SL_N_ELEMENTS(roles); i++)
                if (strcmp(de->d_name, roles[i].name) == 0) {
                    char *sub = sl_asprintf("%s/", de->d_name);
                    ret = allow_add_dir(list, path, sub, roles[i].role, error_r);
                    free(sub);
                    known = true;
                }
            if (!known)
                sl_warn("allow-list: %s: not a role (frontend, worker, broker), ignored", path);
        } else if (S_ISREG(st.st_mode) && ends_with(de->d_name, ".pub")) {
            for (size_t i = 0; r == 0 && i < SL_N_ELEMENTS(roles); i++) {
                size_t l = strlen(roles[i].name);
                if (strncmp(de->d_name, roles[i].name, l) == 0 &&
                    (de->d_name[l] == '-' || de->d_name[l] == '.'))
                    r = roles[i].role;
            }
            if (r == 0)
                sl_warn("allow-list: %s: no role (put it in frontend/, worker/ or broker/, "
                        "or name it worker-NAME.pub), ignored",
                        path);
            else
                ret = allow_add_file(list, path, name, r, error_r);
        }
        free(name);
        free(path);
    }
    closedir(d);
    return ret;
}

struct sl_allowlist *
sl_allowlist_load(const char *dir, char **error_r)
{
    struct sl_allowlist *list = sl_calloc(1, sizeof(*list));
    char *error = NULL;

    if (allow_add_dir(list, dir, "", 0, &error) < 0) {
        *error_r = sl_asprintf("security.allow_dir: %s", error);
        free(error);
        sl_allowlist_destroy(&list);
        return NULL;
    }
    return list;
}

void
sl_allowlist_destroy(struct sl_allowlist **listp)
{
    struct sl_allowlist *list = *listp;

    if (list == NULL)
        return;
    *listp = NULL;
    for (size_t i = 0; i < list->n; i++)
        free(list->items[i].name);
    free(list->items);
    free(list);
}

unsigned
sl_allowlist_roles(const struct sl_allowlist *list, const unsigned char key[32],
                   const char **name_r)
{
    *name_r = NULL;
    for (size_t i = 0; i < list->n; i++)
        if (memcmp(list->items[i].key, key, 32) == 0) {
            *name_r = list->items[i].name;
            return list->items[i].roles;
        }
    return 0;
}

size_t
sl_allowlist_count(const struct sl_allowlist *list, enum sl_role role)
{
    size_t n = 0;
    for (size_t i = 0; i < list->n; i++)
        if (list->items[i].roles & (unsigned)role)
            n++;
    return n;
}

/* ---- the handler -------------------------------------------------------- */

static void
roles_text(unsigned r, char *buf, size_t len)
{
    buf[0] = '\0';
    for (size_t i = 0; i < SL_N_ELEMENTS(roles); i++)
        if (r & (unsigned)roles[i].role) {
            if (buf[0] != '\0')
                strncat(buf, "+", len - strlen(buf) - 1);
            strncat(buf, roles[i].name, len - strlen(buf) - 1);
        }
}

/* Logs a refusal unless this key was logged less than a minute ago. */
static void
log_refusal(struct sl_zap *z, const unsigned char *key, const char *address, const char *why)
{
    unsigned long long now = sl_now_mono_ms();
    struct refusal *slot = NULL, *oldest = &z->refusals[0];
    char z85[41] = "(none)", id[SL_KEY_ID_LEN + 1];

    if (key != NULL) {
        zmq_z85_encode(z85, key, 32);
        for (size_t i = 0; i < REFUSAL_SLOTS; i++) {
            if (memcmp(z->refusals[i].key, key, 32) == 0 && z->refusals[i].last_ms != 0)
                slot = &z->refusals[i];
            if (z->refusals[i].last_ms < oldest->last_ms)
                oldest = &z->refusals[i];
        }
        if (slot != NULL && now - slot->last_ms < REFUSAL_LOG_MS) {
            slot->suppressed++;
            return;
        }
        if (slot == NULL) {
            slot = oldest;
            memcpy(slot->key, key, 32);
            slot->suppressed = 0;
        }
    }
    sl_key_id(z85, id);
    if (slot != NULL && slot->suppressed > 0)
        sl_warn("broker: CURVE key %s from %s refused: %s (%lu more refusals of this key in "
                "the last minute)",
                id, address, why, slot->suppressed);
    else
        sl_warn("broker: CURVE key %s from %s refused: %s", id, address, why);
    if (slot != NULL) {
        slot->last_ms = now;
        slot->suppressed = 0;
    }
}

/* Decides one request: 200 with the User-Id, or 400 with the reason. */
static const char *
zap_decide(struct sl_zap *z, zmq_msg_t *parts, size_t n, char *user_id, size_t ulen)
{
    const char *domain = zmq_msg_data(&parts[2]), *mech = zmq_msg_data(&parts[5]);
    size_t dlen = zmq_msg_size(&parts[2]), mlen = zmq_msg_size(&parts[5]);
    char address[64], id[SL_KEY_ID_LEN + 1], z85[41], rtext[40];
    const unsigned char *key;
    const char *name;
    unsigned r;

    snprintf(address, sizeof(address), "%.*s",
             (int)(zmq_msg_size(&parts[3]) < 63 ? zmq_msg_size(&parts[3]) : 63),
             (const char *)zmq_msg_data(&parts[3]));
    if (n != 7 || mlen != 5 || memcmp(mech, "CURVE", 5) != 0 || zmq_msg_size(&parts[6]) != 32) {
        z->n_refused++;
        log_refusal(z, NULL, address, "not a CURVE handshake");
        return "CURVE required";
    }
    key = zmq_msg_data(&parts[6]);
    if (dlen != strlen(SL_ZAP_DOMAIN) || memcmp(domain, SL_ZAP_DOMAIN, dlen) != 0) {
        z->n_refused++;
        log_refusal(z, key, address, "unknown ZAP domain");
        return "unknown domain";
    }
    pthread_mutex_lock(&z->lock);
    r = sl_allowlist_roles(z->list, key, &name);
    if (r != 0 && (r & z->admitted) != 0) {
        zmq_z85_encode(z85, key, 32);
        sl_key_id(z85, id);
        roles_text(r & z->admitted, rtext, sizeof(rtext));
        snprintf(user_id, ulen, "%s:%s", rtext, id);
        sl_info("broker: CURVE key %s (%s, %s) admitted from %s", id, rtext, name, address);
        pthread_mutex_unlock(&z->lock);
        z->n_admitted++;
        return NULL;
    }
    pthread_mutex_unlock(&z->lock);
    z->n_refused++;
    if (r == 0) {
        log_refusal(z, key, address, "not on the allow-list (security.allow_dir)");
        return "key not allowed";
    }
    roles_text(r, rtext, sizeof(rtext));
    char why[96];
    snprintf(why, sizeof(why), "its role (%s) may not connect here", rtext);
    log_refusal(z, key, address, why);
    return "wrong role";
}

static void
zap_answer(struct sl_zap *z)
{
    zmq_msg_t parts[8];
    size_t n = 0;
    char user_id[64] = "";
    const char *refused = "malformed request";

    /* the whole request: the first 8 parts kept, any more discarded
     * (a REP socket must read a request to its end before replying) */
    bool more = true;
    while (more) {
        zmq_msg_t part;
        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, z->rep, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&part);
            break;
        }
        more = zmq_msg_more(&part);
        if (n < SL_N_ELEMENTS(parts)) {
            zmq_msg_init(&parts[n]);
            zmq_msg_move(&parts[n++], &part);
        }
        zmq_msg_close(&part);
    }
    if (n == 0)
        return;
    if (n >= 7 && zmq_msg_size(&parts[0]) == 3 && memcmp(zmq_msg_data(&parts[0]), "1.0", 3) == 0)
        refused = zap_decide(z, parts, n, user_id, sizeof(user_id));
    sl_metric_inc(handshakes, refused == NULL ? 0 : 1);
    /* a REP socket must answer every request, even a broken one */
    zmq_send(z->rep, "1.0", 3, ZMQ_SNDMORE);
    if (n >= 2)
        zmq_send(z->rep, zmq_msg_data(&parts[1]), zmq_msg_size(&parts[1]), ZMQ_SNDMORE);
    else
        zmq_send(z->rep, "", 0, ZMQ_SNDMORE);
    zmq_send(z->rep, refused == NULL ? "200" : "400", 3, ZMQ_SNDMORE);
    zmq_send(z->rep, refused == NULL ? "OK" : refused, refused == NULL ? 2 : strlen(refused),
             ZMQ_SNDMORE);
    zmq_send(z->rep, user_id, strlen(user_id), ZMQ_SNDMORE);
    zmq_send(z->rep, "", 0, 0);
    for (size_t i = 0; i < n; i++)
        zmq_msg_close(&parts[i]);
}

static void *
zap_thread(void *arg)
{
    struct sl_zap *z = arg;

    for (;;) {
        zmq_pollitem_t items[2] = {
            {.socket = z->ctl_thread, .events = ZMQ_POLLIN},
            {.socket = z->rep, .events = ZMQ_POLLIN},
        };
        if (zmq_poll(items, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            sl_error("broker: ZAP handler: zmq_poll: %s", zmq_strerror(errno));
            break;
        }
        if (items[0].revents & ZMQ_POLLIN)
            break;
        if (items[1].revents & ZMQ_POLLIN)
            zap_answer(z);
    }
    return NULL;
}

static void
log_list(const struct sl_allowlist *list, const char *dir, const char *what)
{
    sl_info("broker: allow-list %s from %s: %zu frontend, %zu worker, %zu broker keys", what, dir,
            sl_allowlist_count(list, SL_ROLE_FRONTEND), sl_allowlist_count(list, SL_ROLE_WORKER),
            sl_allowlist_count(list, SL_ROLE_BROKER));
}

struct sl_zap *
sl_zap_start(void *zctx, const char *allow_dir, unsigned admitted, char **error_r)
{
    struct sl_zap *z = sl_calloc(1, sizeof(*z));
    char ctl[64];
    int ret;

    z->list = sl_allowlist_load(allow_dir, error_r);
    if (z->list == NULL) {
        free(z);
        return NULL;
    }
    z->zctx = zctx;
    z->dir = sl_strdup(allow_dir);
    z->admitted = admitted;
    pthread_mutex_init(&z->lock, NULL);
    z->rep = zmq_socket(zctx, ZMQ_REP);
    SL_BUG_ON(z->rep == NULL);
    ret = 0;
    zmq_setsockopt(z->rep, ZMQ_LINGER, &ret, sizeof(ret));
    if (zmq_bind(z->rep, SL_ZAP_ENDPOINT) != 0) {
        *error_r = sl_asprintf("ZAP handler: cannot bind %s: %s", SL_ZAP_ENDPOINT,
                               zmq_strerror(errno));
        zmq_close(z->rep);
        goto fail;
    }
    snprintf(ctl, sizeof(ctl), "inproc://sluice-zap-ctl-%p", (void *)z);
    z->ctl_thread = zmq_socket(zctx, ZMQ_PAIR);
    z->ctl_main = zmq_socket(zctx, ZMQ_PAIR);
    SL_BUG_ON(z->ctl_thread == NULL || z->ctl_main == NULL);
    ret = zmq_bind(z->ctl_thread, ctl);
    SL_BUG_ON(ret != 0);
    ret = zmq_connect(z->ctl_main, ctl);
    SL_BUG_ON(ret != 0);
    ret = pthread_create(&z->thread, NULL, zap_thread, z);
    if (ret != 0) {
        *error_r = sl_asprintf("ZAP handler: pthread_create: %s", strerror(ret));
        zmq_close(z->ctl_thread);
        zmq_close(z->ctl_main);
        zmq_close(z->rep);
        goto fail;
    }
    log_list(z->list, z->dir, "loaded");
    return z;
fail:
    sl_allowlist_destroy(&z->list);
    pthread_mutex_destroy(&z->lock);
    free(z->dir);
    free(z);
    return NULL;
}

int
sl_zap_reload(struct sl_zap *z, char **error_r)
{
    struct sl_allowlist *fresh = sl_allowlist_load(z->dir, error_r), *old;

    if (fresh == NULL)
        return -1;
    log_list(fresh, z->dir, "reloaded");
    pthread_mutex_lock(&z->lock);
    old = z->list;
    z->list = fresh;
    pthread_mutex_unlock(&z->lock);
    sl_allowlist_destroy(&old);
    return 0;
}

void
sl_zap_stop(struct sl_zap **zapp)
{
    struct sl_zap *z = *zapp;
    int linger = 0;

    if (z == NULL)
        return;
    *zapp = NULL;
    zmq_setsockopt(z->ctl_main, ZMQ_LINGER, &linger, sizeof(linger));
    zmq_setsockopt(z->ctl_thread, ZMQ_LINGER, &linger, sizeof(linger));
    if (zmq_send(z->ctl_main, "", 0, 0) < 0)
        sl_bug(__FILE__, __LINE__, "ZAP control socket");
    pthread_join(z->thread, NULL);
    sl_info("broker: ZAP handler stopped: %llu connections admitted, %llu refused",
            z->n_admitted, z->n_refused);
    zmq_close(z->ctl_thread);
    zmq_close(z->ctl_main);
    zmq_close(z->rep);
    sl_allowlist_destroy(&z->list);
    pthread_mutex_destroy(&z->lock);
    free(z->dir);
    free(z);
}

unsigned
sl_zap_msg_roles(zmq_msg_t *msg, const char **user_id_r)
{
    const char *uid = zmq_msg_gets(msg, "User-Id");
    unsigned r = 0;

    *user_id_r = uid != NULL ? uid : "";
    if (uid == NULL)
        return 0;
    const char *colon = strchr(uid, ':');
    size_t len = colon != NULL ? (size_t)(colon - uid) : strlen(uid);
    for (const char *p = uid; p < uid + len;) {
        const char *end = memchr(p, '+', (size_t)(uid + len - p));
        size_t l = end != NULL ? (size_t)(end - p) : (size_t)(uid + len - p);
        for (size_t i = 0; i < SL_N_ELEMENTS(roles); i++)
            if (strlen(roles[i].name) == l && strncmp(p, roles[i].name, l) == 0)
                r |= (unsigned)roles[i].role;
        p += l + 1;
    }
    return r;
}

void
sl_zap_metrics_register(struct sl_metrics *reg)
{
    static const char *const results[] = {"admitted", "refused"};
    struct sl_metric_dim result = SL_METRIC_DIM("result", results);

    handshakes = sl_metrics_counter(reg, "sluice_curve_handshakes_total",
                                    "CURVE handshakes the broker's ZAP handler answered: "
                                    "admitted (a key on the allow-list, in a role admitted "
                                    "here) or refused.",
                                    &result, 1, 0);
}
