/* checks.c - the built-in checks' MIME walk (checks.h): one GMime parse
 * gives the structure (mime_check), every leaf goes through the banned
 * checks, encrypted parts are noted, and the top-level header section and
 * GMime's structural complaints make the bad-header findings. */
#include "checks.h"

#include <gmime/gmime.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mime_check.h"
#include "conf/sl_config.h"
#include "util/sl_util.h"

struct walk {
    const struct check_ctx *ctx;
    struct check_findings *f;
    struct banned_state banned;
};

static void
on_leaf(void *arg, const struct mime_leaf *leaf)
{
    struct walk *w = arg;

    if (leaf->encrypted ||
        ((strcmp(leaf->type, "application/pkcs7-mime") == 0 ||
          strcmp(leaf->type, "application/x-pkcs7-mime") == 0) &&
         (leaf->smime_type == NULL || strcasecmp(leaf->smime_type, "enveloped-data") == 0 ||
          strcasecmp(leaf->smime_type, "authenveloped-data") == 0))) {
        check_add(&w->f->encrypted, &w->f->n_encrypted, "%s,%s", leaf->type,
                  leaf->filename != NULL ? leaf->filename : "-");
        return;
    }
    if (w->ctx->banned)
        banned_check_part(&w->banned, leaf);
}

/* GMime's critical parser warnings, as amavis words MIME trouble. */
static void
mime_findings(const struct mime_info *info, unsigned tests, struct check_findings *f)
{
    static const struct {
        int code;
        const char *text;
    } crit[] = {
        {GMIME_CRIT_INVALID_HEADER_NAME, "invalid header name in a MIME part"},
        {GMIME_CRIT_CONFLICTING_HEADER, "conflicting MIME header fields"},
        {GMIME_CRIT_CONFLICTING_PARAMETER, "conflicting MIME parameters"},
        {GMIME_CRIT_MULTIPART_WITHOUT_BOUNDARY, "multipart without a boundary"},
        {GMIME_CRIT_NESTING_OVERFLOW, "MIME nesting too deep"},
        {GMIME_CRIT_PART_WITHOUT_HEADERS_OR_CONTENT, "MIME part without headers or content"},
    };
    /* GMime also sees the top-level header section: do not report twice
     * what check_headers() reported, nor what its disabled tests skip. */
    bool dup = false, badname = false;
    for (size_t i = 0; i < f->n_bad_headers; i++) {
        dup |= strncmp(f->bad_headers[i], "Duplicate header field", 22) == 0;
        badname |= strncmp(f->bad_headers[i], "Invalid header field name", 25) == 0;
    }
    for (size_t i = 0; i < SL_N_ELEMENTS(crit); i++)
        if ((info->issue_mask & (1ULL << (unsigned)crit[i].code)) &&
            !((dup || !(tests & BH_MULTIPLE)) && crit[i].code == GMIME_CRIT_CONFLICTING_HEADER) &&
            !((badname || !(tests & BH_SYNTAX)) && crit[i].code == GMIME_CRIT_INVALID_HEADER_NAME))
            check_add(&f->bad_headers, &f->n_bad_headers, "MIME error: %s", crit[i].text);
    if (info->truncated_walk)
        check_add(&f->bad_headers, &f->n_bad_headers,
                  "MIME error: structure too deep or too "
                  "many parts");
}

void
checks_run(const struct check_ctx *ctx, const char *data, size_t len, struct check_findings *f)
{
    struct walk w = {.ctx = ctx, .f = f};
    struct mime_info info;

    memset(f, 0, sizeof(*f));
    w.banned.ctx = ctx;
    w.banned.f = f;
    unsigned tests = check_header_tests(ctx->p->bad_header_tests, ctx->p->n_bad_header_tests);
    if (ctx->headers)
        check_headers(data, len, ctx->smtputf8, tests, f);
    if (mime_check_walk(data, len, &info, on_leaf, &w) == 0 && ctx->headers && (tests & BH_MIME))
        mime_findings(&info, tests, f);
    f->parts = info.parts;
    f->message_id = info.message_id;
    info.message_id = NULL;
    f->expanded = w.banned.expanded;
    mime_info_free(&info);
}

void
checks_findings_free(struct check_findings *f)
{
    sl_strv_free(f->banned, f->n_banned);
    sl_strv_free(f->bad_headers, f->n_bad_headers);
    sl_strv_free(f->encrypted, f->n_encrypted);
    sl_strv_free(f->overlimit, f->n_overlimit);
    free(f->message_id);
    memset(f, 0, sizeof(*f));   /* empty again: a second free, or checks_run(), is safe */
}
