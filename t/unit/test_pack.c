/*
 * A command through the shared zone's bytes (pack.c), and the room its
 * answer may need (render_bound()): the worst bodies render within it.
 */

#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "helpers.h"
#include "ngx_http_inventory_pack.h"
#include "ngx_http_inventory_render.h"


static char  long_sku[NGX_HTTP_INVENTORY_MAX_LINES][NGX_HTTP_INVENTORY_ID_MAX
                                                    + 1];
static char  long_loc[NGX_HTTP_INVENTORY_ID_MAX + 1];
static char  escaped[NGX_HTTP_INVENTORY_REFERENCE_MAX + 1];


static int
str_eq(ngx_http_inventory_str_t a, ngx_http_inventory_str_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.data, b.data, a.len) == 0);
}


static int
within(ngx_http_inventory_str_t s, const unsigned char *buf, size_t len)
{
    return (const unsigned char *) s.data >= buf
           && (const unsigned char *) s.data + s.len <= buf + len;
}


/* every field a command can carry, at its longest */

static void
full_cmd(ngx_http_inventory_cmd_t *cmd, unsigned type, size_t nlines)
{
    size_t  i;

    ngx_http_inventory_cmd_init(cmd);

    memset(long_loc, 'L', NGX_HTTP_INVENTORY_ID_MAX);
    memset(escaped, 0x01, NGX_HTTP_INVENTORY_REFERENCE_MAX);

    cmd->type = type;
    cmd->sku = S("SKU-1");
    cmd->location = S(long_loc);
    cmd->to = S("warehouse-9");
    cmd->on_hand = NGX_HTTP_INVENTORY_QTY_MAX;
    cmd->min_level = 7;
    cmd->delta = -NGX_HTTP_INVENTORY_QTY_MAX;
    cmd->quantity = NGX_HTTP_INVENTORY_REQ_QTY_MAX;
    cmd->ttl = 86400000;
    cmd->reason = S("cycle count, aisle 4");
    cmd->if_match_n = NGX_HTTP_INVENTORY_ETAGS_MAX;

    for (i = 0; i < NGX_HTTP_INVENTORY_ETAGS_MAX; i++) {
        cmd->if_match[i] = 1000 + i;
    }

    cmd->has_min_level = 1;
    cmd->has_if_match = 1;
    cmd->multi_line = 1;
    cmd->idem_key = S("key-0123456789");
    memset(cmd->fingerprint, 0xab, sizeof(cmd->fingerprint));
    memcpy(cmd->res.id, "r_0123456789abcdefghijkl",
           NGX_HTTP_INVENTORY_RES_ID_LEN);
    cmd->res.reference.data = escaped;
    cmd->res.reference.len = NGX_HTTP_INVENTORY_REFERENCE_MAX;

    for (i = 0; i < nlines; i++) {
        memset(long_sku[i], 'A' + (char) (i % 26), NGX_HTTP_INVENTORY_ID_MAX);
        long_sku[i][0] = (char) ('0' + i % 10);
        long_sku[i][1] = (char) ('0' + i / 10 % 10);
        cmd->res.lines[i].sku = S(long_sku[i]);
        cmd->res.lines[i].location = S(long_loc);
        cmd->res.lines[i].quantity = NGX_HTTP_INVENTORY_REQ_QTY_MAX;
    }

    cmd->res.nlines = nlines;
}


static void
test_pack_round_trip(void)
{
    int                        same;
    size_t                     i, len, n;
    unsigned char             *buf;
    ngx_http_inventory_cmd_t  *in, *out;

    in = malloc(sizeof(*in));
    out = malloc(sizeof(*out));
    full_cmd(in, NGX_HTTP_INVENTORY_CMD_RESERVE, NGX_HTTP_INVENTORY_MAX_LINES);

    len = ngx_http_inventory_pack_size(in);
    buf = malloc(len + 1);
    n = ngx_http_inventory_pack(in, buf);
    is_int(n, len, "pack writes pack_size() bytes");

    memset(out, 0x5a, sizeof(*out));
    is_int(ngx_http_inventory_unpack(out, buf, len), 0, "unpack takes them");

    same = out->type == in->type && out->on_hand == in->on_hand
           && out->min_level == in->min_level && out->delta == in->delta
           && out->quantity == in->quantity && out->ttl == in->ttl
           && out->if_match_n == in->if_match_n
           && memcmp(out->if_match, in->if_match, sizeof(in->if_match)) == 0
           && out->has_min_level && out->has_if_match && !out->if_match_any
           && out->multi_line
           && memcmp(out->fingerprint, in->fingerprint, 16) == 0
           && memcmp(out->res.id, in->res.id, sizeof(in->res.id)) == 0
           && str_eq(out->sku, in->sku) && str_eq(out->location, in->location)
           && str_eq(out->to, in->to) && str_eq(out->reason, in->reason)
           && str_eq(out->idem_key, in->idem_key)
           && str_eq(out->res.reference, in->res.reference)
           && out->res.nlines == in->res.nlines;
    ok(same, "every input of the command comes back");

    same = 1;

    for (i = 0; i < in->res.nlines; i++) {
        same &= str_eq(out->res.lines[i].sku, in->res.lines[i].sku)
                && str_eq(out->res.lines[i].location,
                          in->res.lines[i].location)
                && out->res.lines[i].quantity == in->res.lines[i].quantity;
    }

    ok(same, "and every one of its 100 lines");
    ok(out->outcome == 0 && out->body == NULL && out->nslots == 0
       && out->appended == 0 && out->status == 0,
       "what the store fills in starts cleared");
    ok((const unsigned char *) out->sku.data >= buf
       && (const unsigned char *) out->sku.data < buf + len,
       "strings point into the bytes: nothing is copied");

    /* every shorter prefix, and one byte more, is not a command */
    same = 1;

    for (i = 0; i < len; i++) {
        same &= ngx_http_inventory_unpack(out, buf, i) == -1;
    }

    ok(same, "every truncation of the bytes is refused");

    buf[len] = 0;
    is_int(ngx_http_inventory_unpack(out, buf, len + 1), -1,
           "a trailing byte is refused");

    /* any byte damaged: refused, or read with every string inside */
    same = 1;

    for (i = 0; i < len; i++) {
        unsigned char  saved = buf[i];

        buf[i] = 0xff;

        if (ngx_http_inventory_unpack(out, buf, len) == 0) {
            same &= within(out->sku, buf, len)
                    && within(out->res.reference, buf, len)
                    && within(out->res.lines[out->res.nlines - 1].location,
                              buf, len);
        }

        buf[i] = saved;
    }

    ok(same, "a damaged byte anywhere never points a string outside");

    free(buf);
    free(in);
    free(out);
}


/* the sweeper's commands and a count: no lines, no strings */

static void
test_pack_small(void)
{
    size_t                     len;
    unsigned char              buf[512];
    ngx_http_inventory_cmd_t  *in, *out;

    in = calloc(1, sizeof(*in));
    out = malloc(sizeof(*out));

    in->type = NGX_HTTP_INVENTORY_CMD_EXPIRE;
    memcpy(in->res.id, "r_0000000000000000000001",
           NGX_HTTP_INVENTORY_RES_ID_LEN);

    len = ngx_http_inventory_pack_size(in);
    ok(len < sizeof(buf), "an expiry packs small (%zu bytes)", len);
    (void) ngx_http_inventory_pack(in, buf);

    ok(ngx_http_inventory_unpack(out, buf, len) == 0
       && out->type == NGX_HTTP_INVENTORY_CMD_EXPIRE
       && memcmp(out->res.id, in->res.id, NGX_HTTP_INVENTORY_RES_ID_LEN) == 0
       && out->sku.len == 0 && out->res.nlines == 0 && out->idem_key.len == 0,
       "an expiry comes back with its reservation id");

    free(in);
    free(out);
}


/* the largest answers of each kind fit render_bound() */

static void
test_pack_bound(void)
{
    size_t                     i, bound;
    ngx_http_inventory_cmd_t  *cmd;

    cmd = malloc(sizeof(*cmd));

    /* a committed cart of 100 lines of the longest ids and quantities */
    full_cmd(cmd, NGX_HTTP_INVENTORY_CMD_COMMIT, NGX_HTTP_INVENTORY_MAX_LINES);
    cmd->outcome = NGX_HTTP_INVENTORY_OK;
    cmd->res.state = NGX_HTTP_INVENTORY_RES_COMMITTED;
    cmd->res.created_at = 253402300799999ULL;
    cmd->res.expires_at = 253402300799999ULL;
    cmd->res.ended_at = 253402300799999ULL;
    bound = ngx_http_inventory_render_bound(cmd);
    ngx_http_inventory_render_outcome(cmd);
    ok(cmd->body && cmd->body_len <= bound,
       "a committed cart of 100 lines: %zu bytes within %zu", cmd->body_len,
       bound);
    free(cmd->body);

    /* a refused cart: every line short, with its demand and available */
    full_cmd(cmd, NGX_HTTP_INVENTORY_CMD_RESERVE, NGX_HTTP_INVENTORY_MAX_LINES);
    ngx_http_inventory_cmd_slots(cmd);

    for (i = 0; i < cmd->nslots; i++) {
        cmd->slots[i].short_stock = 1;
        cmd->slots[i].demand = NGX_HTTP_INVENTORY_QTY_MAX;
        cmd->slots[i].item.on_hand = -NGX_HTTP_INVENTORY_QTY_MAX;
        cmd->slots[i].item.reserved = NGX_HTTP_INVENTORY_QTY_MAX;
    }

    cmd->outcome = NGX_HTTP_INVENTORY_INSUFFICIENT;
    bound = ngx_http_inventory_render_bound(cmd);
    ngx_http_inventory_render_outcome(cmd);
    ok(cmd->body && cmd->body_len <= bound,
       "a cart of 100 short lines refused: %zu bytes within %zu",
       cmd->body_len, bound);
    free(cmd->body);

    /* a transfer: two items of the longest ids and numbers */
    full_cmd(cmd, NGX_HTTP_INVENTORY_CMD_TRANSFER, 0);
    cmd->outcome = NGX_HTTP_INVENTORY_OK;
    cmd->nslots = 2;

    for (i = 0; i < 2; i++) {
        cmd->slots[i].sku = S(long_loc);
        cmd->slots[i].location = S(long_loc);
        cmd->slots[i].item.on_hand = -NGX_HTTP_INVENTORY_QTY_MAX;
        cmd->slots[i].item.reserved = NGX_HTTP_INVENTORY_QTY_MAX;
        cmd->slots[i].item.min_level = NGX_HTTP_INVENTORY_QTY_MAX;
        cmd->slots[i].item.version = NGX_HTTP_INVENTORY_QTY_MAX;
        cmd->slots[i].item.updated_at = 253402300799999ULL;
    }

    bound = ngx_http_inventory_render_bound(cmd);
    ngx_http_inventory_render_outcome(cmd);
    ok(cmd->body && cmd->body_len <= bound,
       "a transfer: %zu bytes within %zu", cmd->body_len, bound);
    free(cmd->body);

    /* a missing item named in the problem's detail */
    cmd->outcome = NGX_HTTP_INVENTORY_NOT_FOUND;
    cmd->failed_slot = 1;
    ngx_http_inventory_render_outcome(cmd);
    ok(cmd->body && cmd->body_len <= bound,
       "a missing item: %zu bytes within %zu", cmd->body_len, bound);
    free(cmd->body);

    free(cmd);
}


void
test_pack(void)
{
    test_pack_round_trip();
    test_pack_small();
    test_pack_bound();
}
