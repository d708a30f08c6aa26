/* sl_addr.h - network address helpers: "host:port" endpoints and CIDR lists.
 * Knows nothing of mail. */
#ifndef SL_ADDR_H
#define SL_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include "util/sl_util.h"

/* One network in a CIDR list: 127.0.0.0/8, ::1, 10.1.2.3 (host /32). */
struct sl_cidr {
    int family;                 /* AF_INET or AF_INET6 */
    unsigned char addr[16];
    unsigned prefix;
};

struct sl_cidr_list {
    struct sl_cidr *items;
    size_t n;
};

/* Parses a list separated by commas and/or whitespace. Returns 0, or -1
 * with a malloc'ed message in *error_r naming the bad element. */
SL_WARN_UNUSED int sl_cidr_list_parse(const char *text, struct sl_cidr_list *list_r,
                                      char **error_r);
void sl_cidr_list_free(struct sl_cidr_list *list);
/* IPv4-mapped IPv6 clients (::ffff:127.0.0.1) match IPv4 networks. */
bool sl_cidr_list_match(const struct sl_cidr_list *list, const struct sockaddr *sa);
bool sl_cidr_list_match_text(const struct sl_cidr_list *list, const char *ip);

/* "127.0.0.1:10024", "[::1]:10024", "localhost:10025". Returns 0 and
 * malloc'ed *host_r (brackets removed) and *port_r, or -1. */
SL_WARN_UNUSED int sl_hostport_parse(const char *text, char **host_r, unsigned *port_r);

/* Numeric text form of a socket address ("127.0.0.1", "::1"), and port. */
/* Is addr's domain in list ("dom": that domain, ".dom": it and its
 * subdomains, ".": every domain; case-insensitive; trailing dots of the
 * address's domain ignored)? amavis' local_domains lists. */
bool sl_addr_domain_listed(char *const *list, size_t n, const char *addr);

void sl_sockaddr_ip(const struct sockaddr *sa, char *buf, size_t len, unsigned *port_r);

#endif
