/* context.h - what every session and job of one frontend shares.
 *
 * frontend.c owns it (embedded in struct frontend) and fills it at start;
 * sessions (session.c) and jobs (job.c) read it and keep themselves on its
 * two lists, so the frontend can stop or free them all. Nothing here calls
 * back into frontend.c except through on_idle: the files depend on each
 * other in one direction only (frontend -> session -> job -> outcome ->
 * reinject). Not used outside frontend/. */
#ifndef SLUICE_FRONTEND_CONTEXT_H
#define SLUICE_FRONTEND_CONTEXT_H

#include <stdbool.h>
#include <event2/event.h>

struct sl_config;
struct fe_settings;
struct fe_broker_link;
struct fe_reinjector;
struct fe_ledger;
struct fe_quar;
struct fe_local_record;
struct session;
struct fe_job;

struct fe_context {
    struct event_base *base;
    /* The current configuration and origins (settings.h); a session or a
     * job keeps the one it started under. config is settings->config. */
    struct fe_settings *settings;
    const struct sl_config *config;
    const char *hostname;               /* greeting, Received:, EHLO to :10025 */
    struct fe_broker_link *link;
    struct fe_reinjector *reinjector;
    struct fe_ledger *ledger;           /* exactly-once ledger (dedup.*), or NULL */
    struct fe_quar *quar;               /* quarantine and notifications (quarantine.h) */
    struct fe_local_record *local_record; /* what was reinjected, without the ledger */
    bool dedup_tempfail;                /* dedup.on_unavailable: tempfail */
    bool test_kill_after_reinject;      /* SLUICE_TEST_KILL_AFTER_REINJECT (tests only) */
    bool shutting_down;                 /* no new transactions; close when answered */

    struct session *sessions;           /* every open connection (session.c) */
    unsigned n_sessions;
    struct fe_job *jobs;                /* every message in flight (job.c) */
    unsigned n_jobs;

    /* A session or a job ended: a descriptor may be free again, and a
     * shutdown may be complete. Set by frontend.c. */
    void (*on_idle)(struct fe_context *ctx);
};

#endif
