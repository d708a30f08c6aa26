/* fuzz_config.c - libFuzzer target for lib/conf (sl_config.h): the YAML
 * configuration file and the -o overrides.
 *
 * INPUT
 *   The file's contents up to the first NUL byte; after it, up to four
 *   NUL-separated -o overrides ("key=value"). A NUL inside the file itself
 *   is covered by the unit tests (libyaml refuses it).
 *
 * INVARIANTS
 *   1. A load either returns a configuration and no error, or NULL and an
 *      error that names where it comes from ("fuzz.yaml:LINE..." or
 *      "-o KEY=VALUE: ...").
 *   2. A loaded configuration has the "default" origin, and
 *      sl_config_origin_for() (lib/conf/conf_origin.c) answers for any
 *      address; values are in the documented ranges.
 *   3. sl_config_print() writes YAML that loads again, and printing that in
 *      the same form gives the same text (full form and only-changed form).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "conf/sl_config.h"
#include "conf/sl_config.h"

#define NAME "fuzz.yaml"
#define MAX_OVERRIDES 4

static char *
print(const struct sl_config *c, bool only_changed, size_t *len_r)
{
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len_r);

    FUZZ_CHECK(f != NULL, "open_memstream");
    sl_config_print(c, f, only_changed);
    fclose(f);
    return buf;
}

static void
check_loaded(const struct sl_config *c)
{
    bool has_default = false;

    for (size_t i = 0; i < c->n_origins; i++) {
        const struct sl_origin_config *o = &c->origins[i];
        has_default |= strcmp(o->name, "default") == 0;
        FUZZ_CHECK(o->concurrency >= 1 && o->concurrency <= 1000, "concurrency %u", o->concurrency);
        FUZZ_CHECK(o->reinject_port >= 1 && o->reinject_port <= 65535, "reinject port %u",
                   o->reinject_port);
        FUZZ_CHECK(o->reinject_to_client || o->reinject_host != NULL, "reinject host missing");
    }
    FUZZ_CHECK(has_default, "no default origin");
    FUZZ_CHECK(sl_config_origin_for(c, "127.0.0.1") != NULL, "origin_for 127.0.0.1");
    FUZZ_CHECK(sl_config_origin_for(c, "::1") != NULL, "origin_for ::1");
    FUZZ_CHECK(sl_config_origin_for(c, "not an address") != NULL, "origin_for garbage");
    FUZZ_CHECK(c->frontend.recipient_limit >= 1 && c->frontend.recipient_limit <= 100000,
               "recipient_limit %u", c->frontend.recipient_limit);
    FUZZ_CHECK(c->frontend.timeout_s >= 1 && c->job.timeout_s >= 1 && c->job.timeout_s < 1200,
               "timeouts %u %u", c->frontend.timeout_s, c->job.timeout_s);
    FUZZ_CHECK(c->frontend.max_message_size >= 1, "max_message_size 0");
    FUZZ_CHECK(c->broker.n_endpoints >= 1, "no broker endpoint");
}

/* print -> load -> print gives the same text, in the same form: the
 * only-changed form leaves out a value equal to the default even when it
 * was written differently ("127.0.0.0/8, ::1, " from a list with an empty
 * item), so only its own form can be compared. */
static void
check_round_trip(const struct sl_config *c, bool only_changed)
{
    size_t len1, len2;
    char *text1 = print(c, only_changed, &len1);
    char *error = NULL;
    struct sl_config *again = sl_config_load_buffer(NAME, text1, len1, NULL, 0, &error);

    if (again == NULL) {
        fuzz_dump("printed", text1, len1);
        FUZZ_CHECK(false, "printed configuration does not load: %s", error);
    }
    check_loaded(again);
    char *text2 = print(again, only_changed, &len2);
    if (len1 != len2 || memcmp(text1, text2, len1) != 0) {
        fuzz_dump("first print", text1, len1);
        fuzz_dump("after load", text2, len2);
        FUZZ_CHECK(false, "print -> load -> print changed the configuration");
    }
    free(text1);
    free(text2);
    sl_config_destroy(&again);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    const char *nul = memchr(text, '\0', size);
    size_t yaml_len = nul != NULL ? (size_t)(nul - text) : size;
    char *ov[MAX_OVERRIDES];
    size_t n_ov = 0;

    /* overrides: NUL-separated strings after the file (copied: the input
     * need not be NUL-terminated) */
    for (size_t i = yaml_len; i < size && n_ov < MAX_OVERRIDES;) {
        i++; /* past the NUL */
        const char *s = text + i;
        const char *e = memchr(s, '\0', size - i);
        size_t n = e != NULL ? (size_t)(e - s) : size - i;
        ov[n_ov++] = strndup(s, n);
        i += n;
    }

    char *error = NULL;
    struct sl_config *c = sl_config_load_buffer(NAME, data, yaml_len, ov, n_ov, &error);
    if (c == NULL) {
        FUZZ_CHECK(error != NULL, "no configuration and no error");
        FUZZ_CHECK(strncmp(error, NAME ":", strlen(NAME ":")) == 0 || strncmp(error, "-o ", 3) == 0,
                   "error does not say where: %s", error);
        free(error);
    } else {
        FUZZ_CHECK(error == NULL, "configuration and an error: %s", error);
        check_loaded(c);
        check_round_trip(c, false);
        check_round_trip(c, true);
        sl_config_destroy(&c);
        FUZZ_CHECK(c == NULL, "sl_config_destroy did not clear the pointer");
    }
    for (size_t i = 0; i < n_ov; i++)
        free(ov[i]);
    return 0;
}
