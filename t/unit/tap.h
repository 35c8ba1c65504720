/* A minimal TAP producer for the C unit tests, read by prove. */

#ifndef _TAP_H_INCLUDED_
#define _TAP_H_INCLUDED_

#include <stdio.h>

extern int  tap_n, tap_failed;

#define ok(cond, ...)                                                        \
    do {                                                                     \
        int  ok_c_ = (cond) ? 1 : 0;                                         \
        printf("%sok %d - ", ok_c_ ? "" : "not ", ++tap_n);                  \
        printf(__VA_ARGS__);                                                 \
        printf("\n");                                                        \
        if (!ok_c_) {                                                        \
            tap_failed++;                                                    \
            printf("#   failed at %s line %d\n", __FILE__, __LINE__);        \
        }                                                                    \
    } while (0)

#define is_int(got, want, ...)                                               \
    do {                                                                     \
        long long  g_ = (long long) (got), w_ = (long long) (want);          \
        ok(g_ == w_, __VA_ARGS__);                                           \
        if (g_ != w_) {                                                      \
            printf("#   got %lld, want %lld\n", g_, w_);                     \
        }                                                                    \
    } while (0)

void test_core(void);
void test_codec(void);
void test_json(void);
void test_store(void);
void test_uri(void);
void test_proc(void);
void test_render(void);
void test_pack(void);
void test_repl(void);
void test_states(void);

#endif
