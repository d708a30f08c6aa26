/* fuzz_common.h - small helpers shared by the libFuzzer targets (tests/fuzz).
 *
 * Every target checks invariants, not only "does not crash": a violated one
 * prints what was expected and calls abort(), which libFuzzer reports as a
 * crash and saves the input (docs/fuzzing.md). Header-only so that each
 * target stays one file plus this. */
#ifndef SL_FUZZ_COMMON_H
#define SL_FUZZ_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond, ...)                                                                      \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz: invariant failed at %s:%d: %s\n  ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* FNV-1a: a stable hash of the input, to derive choices (split points)
 * from it without taking bytes away from the structure the fuzzer sees. */
static inline uint64_t
fuzz_hash(const uint8_t *data, size_t size)
{
    uint64_t h = 14695981039346656037ULL;
    for (size_t i = 0; i < size; i++)
        h = (h ^ data[i]) * 1099511628211ULL;
    return h;
}

/* xorshift64*: deterministic, never 0 once seeded with a non-zero state. */
static inline uint64_t
fuzz_rand(uint64_t *state)
{
    uint64_t x = *state ? *state : 0x9e3779b97f4a7c15ULL;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 2685821657736338717ULL;
}

/* Offset of the first CR not followed by LF, or LF not preceded by CR, in
 * s[0..n); n if there is none. */
static inline size_t
fuzz_bare_crlf_at(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\r' && (i + 1 == n || s[i + 1] != '\n'))
            return i;
        if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r'))
            return i;
    }
    return n;
}

/* Prints up to 300 bytes of s with C escapes, for invariant messages. */
static inline void
fuzz_dump(const char *what, const void *p, size_t n)
{
    const unsigned char *s = p;
    fprintf(stderr, "  %s (%zu bytes): \"", what, n);
    for (size_t i = 0; i < n && i < 300; i++) {
        if (s[i] == '\r')
            fputs("\\r", stderr);
        else if (s[i] == '\n')
            fputs("\\n", stderr);
        else if (s[i] == '"' || s[i] == '\\')
            fprintf(stderr, "\\%c", s[i]);
        else if (s[i] < 0x20 || s[i] >= 0x7f)
            fprintf(stderr, "\\x%02x", s[i]);
        else
            fputc(s[i], stderr);
    }
    fputs(n > 300 ? "\"...\n" : "\"\n", stderr);
}

#endif
