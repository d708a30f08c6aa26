/* frontend_int.h - what frontend.c (listener, origins, job table) and
 * session.c (one LMTP/SMTP conversation) share. Not used outside frontend/. */
#ifndef SLUICE_FRONTEND_INT_H
#define SLUICE_FRONTEND_INT_H

#include <stdbool.h>
#include <event2/event.h>
#include <event2/listener.h>
#include "broker_link.h"
#include "reinject.h"
#include "conf/sl_config.h"
#include "util/sl_id.h"

/* Per-origin run-time state: how many transactions are in progress
 * against origins.<name>.concurrency. */
struct fe_origin {
    const struct sl_origin_config *config;
    unsigned active;
    unsigned long long last_warning_ms;  /* rate-limits the over-limit warning */
};

struct session;
struct fe_job_entry;
struct fe_ledger;

struct frontend {
    struct event_base *base;
    const struct sl_config *config;
    char *hostname;                     /* greeting, Received:, EHLO to :10025 */
    unsigned listen_port;               /* of the first socket (frontend_local_port) */
    struct evconnlistener **listeners;  /* one per listening socket */
    size_t n_listeners;
    struct event *accept_timer;         /* resumes a listener paused on EMFILE */
    bool accept_paused;
    unsigned long long accept_warned_ms;
    struct fe_broker_link *link;
    struct fe_reinjector *reinjector;
    struct fe_ledger *ledger;           /* exactly-once ledger (dedup.*), or NULL */
    bool dedup_tempfail;                /* dedup.on_unavailable: tempfail */
    bool test_kill_after_reinject;      /* SLUICE_TEST_KILL_AFTER_REINJECT (tests only) */

    struct fe_origin *origins;          /* parallel to config->origins */
    size_t n_origins;

    struct session *sessions;           /* all live sessions (doubly linked) */
    unsigned n_sessions;

    /* job id -> session waiting for its verdict (chained hash) */
    struct fe_job_entry **jobs;
    size_t jobs_size;
    unsigned n_jobs;

    bool shutting_down;
    void (*shutdown_done)(void *ctx);
    void *shutdown_ctx;
};

/* session.c */
void session_accept(struct frontend *fe, evutil_socket_t fd, const struct sockaddr *sa);
void session_on_verdict(struct session *s, const Sluice__Verdict *verdict);
/* Shutdown: idle sessions are told 421 and closed; busy ones finish. */
void session_shutdown_all(struct frontend *fe);
void session_destroy_all(struct frontend *fe);

/* frontend.c */
struct fe_origin *frontend_origin_for(struct frontend *fe, const char *ip);
void frontend_job_register(struct frontend *fe, struct session *s, const char *job_id);
void frontend_job_unregister(struct frontend *fe, const char *job_id);
void frontend_session_gone(struct frontend *fe);   /* checks shutdown completion */
/* The port a client connected to (Received: "port N", policy banks'
 * match_listener): with several sockets from systemd, not always the first. */
unsigned frontend_local_port(const struct frontend *fe, evutil_socket_t fd);

#endif
