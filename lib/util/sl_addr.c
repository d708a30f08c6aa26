/* sl_addr.c - "host:port" endpoints and CIDR lists.
 *
 * CIDR lists follow Postfix's mynetworks conventions: elements separated by
 * commas and/or whitespace, an address without /prefix is a single host,
 * IPv6 may be written bare or in brackets ([::1], [2001:db8::]/32), and an
 * element with host bits set below its prefix (127.0.0.1/8) is an error, as
 * Postfix treats it ("non-null host address bits"), because it is nearly
 * always a typo for the network or for the host. */
#include "util/sl_addr.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Longest element we accept: an IPv6 address in brackets plus "/128". */
#define CIDR_ELEMENT_MAX (INET6_ADDRSTRLEN + 8)

static bool
is_sep(char c)
{
    return c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* Parses a prefix length of 0..max, digits only. */
static int
parse_prefix(const char *s, unsigned max, unsigned *prefix_r)
{
    unsigned long v = 0;

    if (*s == '\0')
        return -1;
    for (; *s != '\0'; s++) {
        if (!isdigit((unsigned char)*s))
            return -1;
        v = v * 10 + (unsigned long)(*s - '0');
        if (v > max)
            return -1;
    }
    *prefix_r = (unsigned)v;
    return 0;
}

/* True if addr has a bit set below the first prefix bits. */
static bool
has_host_bits(const unsigned char *addr, size_t addr_len, unsigned prefix)
{
    for (size_t i = 0; i < addr_len; i++) {
        unsigned bit0 = (unsigned)i * 8;
        unsigned char mask;
        if (bit0 + 8 <= prefix)
            continue;
        mask = bit0 >= prefix ? 0xff : (unsigned char)(0xff >> (prefix - bit0));
        if (addr[i] & mask)
            return true;
    }
    return false;
}

/* One element, NUL-terminated in elem. Returns 0, or -1 with *why_r set to
 * a static reason. */
static int
cidr_parse_one(char *elem, struct sl_cidr *cidr_r, const char **why_r)
{
    char *slash = strchr(elem, '/');
    char *host = elem;
    size_t addr_len;
    unsigned max;

    memset(cidr_r, 0, sizeof(*cidr_r));
    if (slash != NULL)
        *slash = '\0';
    if (host[0] == '[') {
        size_t n = strlen(host);
        if (n < 3 || host[n - 1] != ']') {
            *why_r = "unbalanced brackets";
            return -1;
        }
        host[n - 1] = '\0';
        host++;
        if (inet_pton(AF_INET6, host, cidr_r->addr) != 1) {
            *why_r = "not an IPv6 address inside brackets";
            return -1;
        }
        cidr_r->family = AF_INET6;
    } else if (inet_pton(AF_INET, host, cidr_r->addr) == 1) {
        cidr_r->family = AF_INET;
    } else if (inet_pton(AF_INET6, host, cidr_r->addr) == 1) {
        cidr_r->family = AF_INET6;
    } else {
        *why_r = "not an IPv4 or IPv6 address";
        return -1;
    }
    addr_len = cidr_r->family == AF_INET ? 4 : 16;
    max = (unsigned)addr_len * 8;
    cidr_r->prefix = max;
    if (slash != NULL && parse_prefix(slash + 1, max, &cidr_r->prefix) < 0) {
        *why_r = cidr_r->family == AF_INET ? "prefix length must be 0..32"
                                           : "prefix length must be 0..128";
        return -1;
    }
    if (has_host_bits(cidr_r->addr, addr_len, cidr_r->prefix)) {
        *why_r = "host bits set below the prefix length";
        return -1;
    }
    return 0;
}

int
sl_cidr_list_parse(const char *text, struct sl_cidr_list *list_r, char **error_r)
{
    struct sl_cidr_list list = {NULL, 0};
    size_t cap = 0;
    const char *p = text;

    *error_r = NULL;
    while (*p != '\0') {
        char elem[CIDR_ELEMENT_MAX + 1];
        const char *why = NULL;
        size_t n = 0;

        while (is_sep(*p))
            p++;
        if (*p == '\0')
            break;
        while (p[n] != '\0' && !is_sep(p[n]))
            n++;
        if (n > CIDR_ELEMENT_MAX) {
            *error_r = sl_asprintf("\"%.*s...\": too long for a network", 40, p);
            goto fail;
        }
        memcpy(elem, p, n);
        elem[n] = '\0';
        if (list.n == cap) {
            cap = cap ? cap * 2 : 4;
            list.items = sl_realloc(list.items, cap * sizeof(*list.items));
        }
        if (cidr_parse_one(elem, &list.items[list.n], &why) < 0) {
            *error_r = sl_asprintf("\"%.*s\": %s", (int)n, p, why);
            goto fail;
        }
        list.n++;
        p += n;
    }
    *list_r = list;
    return 0;

fail:
    free(list.items);
    list_r->items = NULL;
    list_r->n = 0;
    return -1;
}

void
sl_cidr_list_free(struct sl_cidr_list *list)
{
    if (list == NULL)
        return;
    free(list->items);
    list->items = NULL;
    list->n = 0;
}

static bool
prefix_equal(const unsigned char *a, const unsigned char *b, unsigned prefix)
{
    unsigned bytes = prefix / 8, bits = prefix % 8;

    if (memcmp(a, b, bytes) != 0)
        return false;
    if (bits == 0)
        return true;
    unsigned char mask = (unsigned char)(0xff << (8 - bits));
    return (a[bytes] & mask) == (b[bytes] & mask);
}

static bool
cidr_list_match_raw(const struct sl_cidr_list *list, int family, const unsigned char *addr)
{
    for (size_t i = 0; i < list->n; i++) {
        const struct sl_cidr *c = &list->items[i];
        if (c->family == family && prefix_equal(c->addr, addr, c->prefix))
            return true;
    }
    return false;
}

bool
sl_cidr_list_match(const struct sl_cidr_list *list, const struct sockaddr *sa)
{
    if (list == NULL || sa == NULL)
        return false;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)sa;
        return cidr_list_match_raw(list, AF_INET, (const unsigned char *)&sin->sin_addr);
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)(const void *)sa;
        const unsigned char *a = sin6->sin6_addr.s6_addr;
        /* A dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d: match
         * them against the IPv4 networks, and still against IPv6 ones
         * (someone may have written ::ffff:0:0/96). */
        if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr) && cidr_list_match_raw(list, AF_INET, a + 12))
            return true;
        return cidr_list_match_raw(list, AF_INET6, a);
    }
    return false;
}

bool
sl_cidr_list_match_text(const struct sl_cidr_list *list, const char *ip)
{
    struct sockaddr_in sin;
    struct sockaddr_in6 sin6;

    if (ip == NULL)
        return false;
    memset(&sin, 0, sizeof(sin));
    memset(&sin6, 0, sizeof(sin6));
    if (inet_pton(AF_INET, ip, &sin.sin_addr) == 1) {
        sin.sin_family = AF_INET;
        return sl_cidr_list_match(list, (const struct sockaddr *)&sin);
    }
    if (inet_pton(AF_INET6, ip, &sin6.sin6_addr) == 1) {
        sin6.sin6_family = AF_INET6;
        return sl_cidr_list_match(list, (const struct sockaddr *)&sin6);
    }
    return false;
}

int
sl_hostport_parse(const char *text, char **host_r, unsigned *port_r)
{
    const char *host, *host_end, *port;
    unsigned long v = 0;

    *host_r = NULL;
    *port_r = 0;
    if (text == NULL)
        return -1;
    if (text[0] == '[') {
        host = text + 1;
        host_end = strchr(host, ']');
        if (host_end == NULL || host_end[1] != ':')
            return -1;
        port = host_end + 2;
        /* Brackets are for IPv6 literals only (Postfix also allows [name]
         * to mean "no MX lookup"; no lookups here, so only addresses). */
        char buf[INET6_ADDRSTRLEN];
        unsigned char a[16];
        if ((size_t)(host_end - host) >= sizeof(buf))
            return -1;
        memcpy(buf, host, (size_t)(host_end - host));
        buf[host_end - host] = '\0';
        if (inet_pton(AF_INET6, buf, a) != 1)
            return -1;
    } else {
        host_end = strrchr(text, ':');
        if (host_end == NULL)
            return -1;
        host = text;
        port = host_end + 1;
        /* A bare IPv6 address is ambiguous ("::1:25"): require brackets. */
        if (memchr(host, ':', (size_t)(host_end - host)) != NULL)
            return -1;
        for (const char *c = host; c < host_end; c++)
            if (!(isalnum((unsigned char)*c) || *c == '.' || *c == '-' || *c == '_'))
                return -1;
    }
    if (host_end == host || *port == '\0')
        return -1;
    for (const char *c = port; *c != '\0'; c++) {
        if (!isdigit((unsigned char)*c))
            return -1;
        v = v * 10 + (unsigned long)(*c - '0');
        if (v > 65535)
            return -1;
    }
    if (v == 0)
        return -1;
    *host_r = sl_strndup(host, (size_t)(host_end - host));
    *port_r = (unsigned)v;
    return 0;
}

void
sl_sockaddr_ip(const struct sockaddr *sa, char *buf, size_t len, unsigned *port_r)
{
    const void *addr = NULL;
    unsigned port = 0;

    if (sa != NULL && sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)sa;
        addr = &sin->sin_addr;
        port = ntohs(sin->sin_port);
    } else if (sa != NULL && sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)(const void *)sa;
        addr = &sin6->sin6_addr;
        port = ntohs(sin6->sin6_port);
    }
    if (port_r != NULL)
        *port_r = port;
    if (len == 0)
        return;
    if (addr == NULL || inet_ntop(sa->sa_family, addr, buf, (socklen_t)len) == NULL) {
        /* Unknown family (AF_UNIX) or buffer too small: never garbage. */
        snprintf(buf, len, "%s", addr == NULL ? "unknown" : "?");
    }
}

bool
sl_addr_domain_listed(char *const *list, size_t n, const char *addr)
{
    const char *at = strrchr(addr, '@');
    const char *dom = at != NULL ? at + 1 : "";
    size_t dl = strlen(dom);

    while (dl > 0 && dom[dl - 1] == '.') /* "example.com." */
        dl--;
    for (size_t i = 0; i < n; i++) {
        const char *e = list[i];
        size_t el = strlen(e);
        if (strcmp(e, ".") == 0)
            return true;
        if (e[0] == '.') {
            /* ".example.com": example.com itself and any name ending in it */
            if ((dl == el - 1 && strncasecmp(dom, e + 1, dl) == 0) ||
                (dl > el && strncasecmp(dom + dl - el, e, el) == 0))
                return true;
        } else if (dl == el && strncasecmp(dom, e, dl) == 0) {
            return true;
        }
    }
    return false;
}
