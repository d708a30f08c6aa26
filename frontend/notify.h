/* notify.h - the quarantine's notifications: the administrator's (amavis'
 * virus_admin family) and the warning to a recipient of a virus or banned
 * file, each from a template in amavisd-new's wording (deploy/templates/
 * notify-admin.txt and notify-recip.txt, compiled in; a file named by
 * quarantine.notify.admin_template or recip_template replaces one).
 *
 * The template language is the part of amavis' that its notification
 * templates use (docs/quarantine.md, "Notifications"):
 *   %x         a macro (below); a list is written "a, b, c"
 *   %#x        the number of elements of x (a text: 0 or 1)
 *   [? %x |a|b|c...]   the alternative chosen by the count of x: a for
 *              none, b for one, c for two, ..., the last for more
 *   [text|sep] text repeated for each element of the list macro in it,
 *              separated by sep ("[\n%D]": one per line)
 *   \n \t \[ \] \| \\ \%   a newline, a tab, the character itself
 *   a line starting with "#" is a comment; "#" before a line end joins
 *   the line with the next
 * Macros: %f From, %T To, %d date, %i mail_id, %n log id (the same), %h
 * host, %s envelope sender (<a@b>), %a client address, %m Message-ID,
 * %j Subject, %c category, %V viruses, %F banned parts, %X bad headers,
 * %q quarantine id, %S spam score, %z size, %D recipients it is delivered
 * to, %N those it is not, %R all recipients.
 *
 * No I/O but fe_notify_load_template(); the output has LF line ends. */
#ifndef SLUICE_FRONTEND_NOTIFY_H
#define SLUICE_FRONTEND_NOTIFY_H

#include <stddef.h>

struct fe_notify_list {
    const char *const *v;
    size_t n;
};

struct fe_notify_vars {
    const char *from;       /* %f: the From: header field's value */
    struct fe_notify_list to, viruses, banned, bad_headers, delivered, blocked, rcpts;
    const char *date;       /* %d */
    const char *mail_id;    /* %i, %n */
    const char *host;       /* %h */
    const char *sender;     /* %s, with <> */
    const char *client;     /* %a */
    const char *message_id; /* %m */
    const char *subject;    /* %j */
    const char *category;   /* %c */
    const char *quarantine; /* %q */
    const char *spam_score; /* %S */
    const char *size;       /* %z */
};

enum fe_notify_kind { FE_NOTIFY_ADMIN, FE_NOTIFY_RECIP };

/* The built-in template. */
const char *fe_notify_builtin(enum fe_notify_kind kind);
/* A template file's contents (malloc'ed), or NULL with *error_r. */
char *fe_notify_load_template(const char *path, char **error_r);

/* The template expanded; malloc'ed, *len_r bytes, LF line ends. */
char *fe_notify_expand(const char *tmpl, const struct fe_notify_vars *v, size_t *len_r);

#endif
