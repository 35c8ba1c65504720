/* The JSON parser and body validation. */

#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "ngx_http_inventory_validate.h"


/* an arena of malloc'd blocks, freed after each case */

typedef struct block_s  block_t;

struct block_s {
    block_t  *next;
};

static block_t  *blocks;


static void *
test_alloc(void *ctx, size_t size)
{
    block_t  *b;

    (void) ctx;

    b = malloc(sizeof(block_t) + size + 16);
    if (b == NULL) {
        return NULL;
    }

    b->next = blocks;
    blocks = b;

    return (char *) b + sizeof(block_t) + 16 - sizeof(block_t) % 16;
}


static void
test_free(void)
{
    block_t  *b;

    while (blocks) {
        b = blocks->next;
        free(blocks);
        blocks = b;
    }
}


static int
body(unsigned type, const char *text, ngx_http_inventory_cmd_t *cmd,
    ngx_http_inventory_errors_t *errs)
{
    memset(cmd, 0, sizeof(*cmd));
    cmd->type = type;
    errs->n = 0;

    return ngx_http_inventory_cmd_from_body(cmd, text, strlen(text),
                                            test_alloc, NULL, errs);
}


static int
has_error(ngx_http_inventory_errors_t *errs, const char *field)
{
    size_t  i;

    for (i = 0; i < errs->n; i++) {
        if (strcmp(errs->e[i].field, field) == 0) {
            return 1;
        }
    }

    return 0;
}


static void
test_bad_bodies(void)
{
    size_t                       i;
    ngx_http_inventory_cmd_t     cmd;
    ngx_http_inventory_errors_t  errs;
    char                         deep[64];

    static const struct {
        unsigned     type;
        const char  *text;
        const char  *field;
    } cases[] = {
        { NGX_HTTP_INVENTORY_CMD_COUNT, "", "body" },
        { NGX_HTTP_INVENTORY_CMD_COUNT, "{", "body" },
        { NGX_HTTP_INVENTORY_CMD_COUNT, "[1]", "body" },
        { NGX_HTTP_INVENTORY_CMD_COUNT, "\"x\"", "body" },
        { NGX_HTTP_INVENTORY_CMD_COUNT, "{\"on_hand\":1} x", "body" },
        { NGX_HTTP_INVENTORY_CMD_COUNT, "{\"on_hand\":1}{}", "body" },
        { NGX_HTTP_INVENTORY_CMD_COUNT, "{\"on_hand\":1,}", "body" },
        { NGX_HTTP_INVENTORY_CMD_COUNT, "{/*c*/\"on_hand\":1}", "body" },
        { NGX_HTTP_INVENTORY_CMD_COUNT, "{}", "on_hand" },
        { NGX_HTTP_INVENTORY_CMD_COUNT, "{\"on_hand\":1.5}", "on_hand" },
        { NGX_HTTP_INVENTORY_CMD_COUNT, "{\"on_hand\":1e3}", "on_hand" },
        { NGX_HTTP_INVENTORY_CMD_COUNT, "{\"on_hand\":1.0}", "on_hand" },
        { NGX_HTTP_INVENTORY_CMD_COUNT, "{\"on_hand\":\"5\"}", "on_hand" },
        { NGX_HTTP_INVENTORY_CMD_COUNT, "{\"on_hand\":true}", "on_hand" },
        { NGX_HTTP_INVENTORY_CMD_COUNT, "{\"on_hand\":null}", "on_hand" },
        { NGX_HTTP_INVENTORY_CMD_COUNT, "{\"on_hand\":-1}", "on_hand" },
        { NGX_HTTP_INVENTORY_CMD_COUNT, "{\"on_hand\":9007199254740992}",
          "on_hand" },
        { NGX_HTTP_INVENTORY_CMD_COUNT,
          "{\"on_hand\":99999999999999999999999}", "on_hand" },
        { NGX_HTTP_INVENTORY_CMD_COUNT, "{\"on_hand\":1,\"min_level\":-1}",
          "min_level" },
        { NGX_HTTP_INVENTORY_CMD_COUNT, "{\"on_hand\":1,\"x\":1}", "x" },
        { NGX_HTTP_INVENTORY_CMD_COUNT, "{\"on_hand\":1,\"on_hand\":2}",
          "on_hand" },
        { NGX_HTTP_INVENTORY_CMD_COUNT, "{\"on_hand\":1,\"reason\":5}",
          "reason" },
        { NGX_HTTP_INVENTORY_CMD_COUNT,
          "{\"on_hand\":1,\"reason\":\"\xff\"}", "body" },
        { NGX_HTTP_INVENTORY_CMD_COUNT,
          "{\"on_hand\":1,\"reason\":\"\xc0\xaf\"}", "body" },
        { NGX_HTTP_INVENTORY_CMD_COUNT,
          "{\"on_hand\":1,\"reason\":\"\xed\xa0\x80\"}", "body" },
        { NGX_HTTP_INVENTORY_CMD_COUNT,
          "{\"on_hand\":1,\"reason\":\"\xf4\x90\x80\x80\"}", "body" },
        { NGX_HTTP_INVENTORY_CMD_COUNT, "{\"\xe0\x80\xaf\":1}", "body" },
        /* half a surrogate pair, as a \u escape */
        { NGX_HTTP_INVENTORY_CMD_COUNT,
          "{\"on_hand\":1,\"reason\":\"\\ud800\"}", "body" },
        { NGX_HTTP_INVENTORY_CMD_COUNT,
          "{\"on_hand\":1,\"reason\":\"a\\udbffb\"}", "body" },
        { NGX_HTTP_INVENTORY_CMD_COUNT,
          "{\"on_hand\":1,\"reason\":\"\\ud800\\u0041\"}", "body" },
        { NGX_HTTP_INVENTORY_CMD_COUNT,
          "{\"on_hand\":1,\"reason\":\"\\ud800\\n\"}", "body" },
        { NGX_HTTP_INVENTORY_CMD_COUNT,
          "{\"on_hand\":1,\"reason\":\"\\udc00\\ud800\"}", "body" },
        { NGX_HTTP_INVENTORY_CMD_COUNT,
          "{\"on_hand\":1,\"reference\":\"\\uD83D\"}", "body" },
        { NGX_HTTP_INVENTORY_CMD_COUNT, "{\"\\ud800\":1}", "body" },
        { NGX_HTTP_INVENTORY_CMD_ADJUST, "{\"delta\":0}", "delta" },
        { NGX_HTTP_INVENTORY_CMD_ADJUST, "{\"delta\":1000000001}", "delta" },
        { NGX_HTTP_INVENTORY_CMD_ADJUST, "{\"delta\":-1000000001}", "delta" },
        { NGX_HTTP_INVENTORY_CMD_ADJUST, "{\"delta\":2.5}", "delta" },
        { NGX_HTTP_INVENTORY_CMD_ADJUST, "{\"on_hand\":1}", "on_hand" },
    };

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ok(body(cases[i].type, cases[i].text, &cmd, &errs) != 0
           && has_error(&errs, cases[i].field),
           "bad body %zu (%s) names \"%s\"", i, cases[i].text,
           cases[i].field);
        test_free();
    }

    ok(body(NGX_HTTP_INVENTORY_CMD_COUNT,
            "{\"on_hand\":-1,\"min_level\":1.5,\"x\":1,\"reason\":[]}",
            &cmd, &errs) != 0 && errs.n == 4,
       "one 400 names every bad field (%zu)", errs.n);
    test_free();

    memset(deep, '[', sizeof(deep) - 1);
    deep[sizeof(deep) - 1] = '\0';
    ok(body(NGX_HTTP_INVENTORY_CMD_COUNT, deep, &cmd, &errs) != 0
       && has_error(&errs, "body")
       && strstr(errs.e[0].message, "nested") != NULL,
       "deep nesting refused: %s", errs.n ? errs.e[0].message : "");
    test_free();
}


static void
test_good_bodies(void)
{
    char                         big[300];
    ngx_http_inventory_cmd_t     cmd;
    ngx_http_inventory_errors_t  errs;

    ok(body(NGX_HTTP_INVENTORY_CMD_COUNT,
            " {\"on_hand\": 9007199254740991, \"min_level\": 0,"
            " \"reason\": \"count \\u00e4\xf0\x9f\x93\xa6\"} ", &cmd,
            &errs) == 0,
       "count body");
    ok(cmd.on_hand == 9007199254740991LL && cmd.has_min_level
       && cmd.min_level == 0 && cmd.reason.len == 12,
       "count body values");
    test_free();

    ok(body(NGX_HTTP_INVENTORY_CMD_COUNT,
            "{\"on_hand\":1,\"reason\":\"\\ud83d\\uDE00 \\\\ud800\"}",
            &cmd, &errs) == 0
       && cmd.reason.len == 11
       && memcmp(cmd.reason.data, "\xf0\x9f\x98\x80 \\ud800", 11) == 0,
       "a surrogate pair, and \\\\ud800 (a backslash, not an escape)");
    test_free();

    ok(body(NGX_HTTP_INVENTORY_CMD_COUNT, "{\"on_hand\":0}", &cmd, &errs) == 0
       && !cmd.has_min_level && cmd.reason.data == NULL,
       "min_level and reason are optional");
    test_free();

    ok(body(NGX_HTTP_INVENTORY_CMD_ADJUST, "{\"delta\":-1000000000}", &cmd,
            &errs) == 0 && cmd.delta == -1000000000, "adjust body");
    test_free();

    memset(big, 'r', sizeof(big));
    memcpy(big, "{\"delta\":1,\"reason\":\"", 21);
    memcpy(big + 21 + 256, "\"}", 3);
    ok(body(NGX_HTTP_INVENTORY_CMD_ADJUST, big, &cmd, &errs) == 0,
       "reason of 256 bytes");
    test_free();

    memcpy(big + 21 + 257, "\"}", 3);
    big[21 + 256] = 'r';
    ok(body(NGX_HTTP_INVENTORY_CMD_ADJUST, big, &cmd, &errs) != 0
       && has_error(&errs, "reason"), "reason of 257 bytes");
    test_free();
}


void
test_json(void)
{
    test_bad_bodies();
    test_good_bodies();
}
