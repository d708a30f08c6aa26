/* check_headers.c - amavisd-new's BAD-HEADER checks on the top-level
 * header section (checks.h). The texts follow amavis' so that operators'
 * log searches keep working:
 *   Non-encoded 8-bit data (char E4 hex) in header field "Subject"
 *   Improper use of control character (char 07 hex) in header field "X-Foo"
 *   Invalid header field name: "Bad Name"
 *   Header line longer than 998 characters: "X-Long"
 *   Duplicate header field: "Subject"
 *   Missing required header field: "From"
 * RFC 5322 2.1.1 (line length), 2.2 (field names, US-ASCII), 3.6 (which
 * fields must appear, at most once). With SMTPUTF8 (RFC 6532) 8-bit
 * header content is legitimate and not reported. */
#include "checks.h"

#include <string.h>
#include <strings.h>

#include "util/sl_util.h"

#define MAX_LINE 998
#define NAME_MAX_SHOWN 64

/* RFC 5322 3.6: fields that may appear at most once; the first two are
 * required ("orig-date" and "from"). */
static const char *const once_fields[] = {
    "Date", "From",       "Sender",      "Reply-To",   "To",      "Cc",
    "Bcc",  "Message-ID", "In-Reply-To", "References", "Subject",
};

static void
shown_name(const char *name, size_t len, char *out, size_t outlen)
{
    size_t n = len < NAME_MAX_SHOWN ? len : NAME_MAX_SHOWN;
    if (n >= outlen)
        n = outlen - 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        out[i] = (c < 0x20 || c > 0x7e || c == '"') ? '?' : (char)c;
    }
    out[n] = '\0';
}

unsigned
check_header_tests(char *const *names, size_t n)
{
    static const struct {
        const char *name;
        unsigned bit;
    } tests[] = {
        {"mime", BH_MIME},         {"8bit", BH_8BIT},     {"control", BH_CONTROL},
        {"long", BH_LONG},         {"syntax", BH_SYNTAX}, {"missing", BH_MISSING},
        {"multiple", BH_MULTIPLE},
    };
    unsigned mask = 0;

    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < SL_N_ELEMENTS(tests); k++)
            if (strcasecmp(names[i], tests[k].name) == 0)
                mask |= tests[k].bit;
    return mask;
}

void
check_headers(const char *data, size_t len, bool smtputf8, unsigned mask, struct check_findings *f)
{
    const char *p = data, *end = data + len;
    unsigned counts[SL_N_ELEMENTS(once_fields)] = {0};
    bool long_reported = false, eight_reported = false, ctrl_reported = false;
    char cur[NAME_MAX_SHOWN + 1] = "";

    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *line_end = eol != NULL ? eol : end;
        size_t n = (size_t)(line_end - p);
        if (n > 0 && p[n - 1] == '\r')
            n--;
        if (n == 0)
            break; /* end of the header section */
        if (p[0] == ' ' || p[0] == '\t') {
            if (cur[0] == '\0' && (mask & BH_SYNTAX))
                check_add(&f->bad_headers, &f->n_bad_headers,
                          "Header section starts with a continuation line");
        } else {
            const char *colon = memchr(p, ':', n);
            bool ok = colon != NULL && colon > p;
            for (const char *q = p; ok && q < colon; q++)
                ok = (unsigned char)*q >= 33 && (unsigned char)*q <= 126;
            shown_name(p, colon != NULL ? (size_t)(colon - p) : n, cur, sizeof(cur));
            if (!ok && (mask & BH_SYNTAX)) {
                check_add(&f->bad_headers, &f->n_bad_headers, "Invalid header field name: \"%s\"",
                          cur);
            } else if (ok) {
                for (size_t i = 0; i < SL_N_ELEMENTS(once_fields); i++)
                    if (strlen(once_fields[i]) == (size_t)(colon - p) &&
                        strncasecmp(once_fields[i], p, (size_t)(colon - p)) == 0 &&
                        ++counts[i] == 2 && (mask & BH_MULTIPLE))
                        check_add(&f->bad_headers, &f->n_bad_headers,
                                  "Duplicate header field: \"%s\"", once_fields[i]);
            }
        }
        if (n > MAX_LINE && !long_reported && (mask & BH_LONG)) {
            check_add(&f->bad_headers, &f->n_bad_headers,
                      "Header line longer than %d characters: \"%s\"", MAX_LINE, cur);
            long_reported = true;
        }
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)p[i];
            if (c >= 0x80 && !smtputf8 && !eight_reported && (mask & BH_8BIT)) {
                check_add(&f->bad_headers, &f->n_bad_headers,
                          "Non-encoded 8-bit data (char %02X hex) in header field \"%s\"", c, cur);
                eight_reported = true;
            } else if (((c < 0x20 && c != '\t') || c == 0x7f) && (mask & BH_CONTROL)) {
                if (!ctrl_reported)
                    check_add(&f->bad_headers, &f->n_bad_headers,
                              "Improper use of control character (char %02X hex) in header "
                              "field \"%s\"",
                              c, cur);
                ctrl_reported = true;
            }
        }
        p = eol != NULL ? eol + 1 : end;
    }
    for (size_t i = 0; i < 2 && (mask & BH_MISSING); i++)
        if (counts[i] == 0)
            check_add(&f->bad_headers, &f->n_bad_headers, "Missing required header field: \"%s\"",
                      once_fields[i]);
}
