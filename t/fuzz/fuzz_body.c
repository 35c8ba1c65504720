/*
 * libFuzzer target: request bodies through the JSON parser and the
 * validator, then valid commands through the domain rules, and the event
 * records they produce through the codec and back.  Aborts (a finding) when
 * memory use is not bounded by the body, when a decision breaks a stock
 * invariant, or when an event does not survive encoding.
 *
 * Input: byte 0 picks the route, bytes 1..4 the state of the items the
 * command touches, the rest is the body.  A batch's changes are each run
 * as the command they are.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_http_inventory_core.h"
#include "ngx_http_inventory_codec.h"
#include "ngx_http_inventory_validate.h"
#include "ngx_http_inventory_pack.h"


#define FUZZ_HEADER  5


typedef struct fuzz_block_s  fuzz_block_t;

struct fuzz_block_s {
    fuzz_block_t  *next;
};


typedef struct {
    fuzz_block_t  *blocks;
    size_t         total;
} fuzz_arena_t;


static void *
fuzz_alloc(void *ctx, size_t size)
{
    fuzz_arena_t  *a = ctx;
    fuzz_block_t  *b;

    b = malloc(sizeof(fuzz_block_t) + size);
    if (b == NULL) {
        return NULL;
    }

    b->next = a->blocks;
    a->blocks = b;
    a->total += size;

    return b + 1;
}


static void
fuzz_free(fuzz_arena_t *a)
{
    fuzz_block_t  *b, *next;

    for (b = a->blocks; b; b = next) {
        next = b->next;
        free(b);
    }
}


static void
fuzz_check_item(const ngx_http_inventory_item_t *item)
{
    if (item->on_hand < 0 || item->on_hand > NGX_HTTP_INVENTORY_QTY_MAX
        || item->reserved < 0 || item->damaged < 0
        || item->quality_control < 0 || item->incoming < 0
        || item->incoming > NGX_HTTP_INVENTORY_QTY_MAX
        || item->damaged + item->quality_control > item->on_hand
        || item->reserved > ngx_http_inventory_sellable(item)
                            + item->backorder_limit
        || item->min_level < 0
        || item->min_level > NGX_HTTP_INVENTORY_QTY_MAX)
    {
        abort();
    }
}


static void
fuzz_roundtrip(const ngx_http_inventory_event_t *ev)
{
    size_t                      len;
    unsigned char               rec[NGX_HTTP_INVENTORY_EVENT_RECORD_MAX];
    ngx_http_inventory_event_t  back;

    len = ngx_http_inventory_event_encode(rec, ev);

    if (len > sizeof(rec)
        || ngx_http_inventory_event_decode(rec, len, &back) != 0
        || back.type != ev->type || back.version != ev->version
        || back.on_hand != ev->on_hand || back.delta != ev->delta
        || back.quantity != ev->quantity
        || back.sku.len != ev->sku.len
        || memcmp(back.sku.data, ev->sku.data, ev->sku.len) != 0
        || back.location.len != ev->location.len
        || memcmp(back.location.data, ev->location.data, ev->location.len)
           != 0)
    {
        abort();
    }
}


/* runs a valid command against items in the state the header describes */

static void
fuzz_decide(ngx_http_inventory_cmd_t *cmd, const uint8_t *state)
{
    size_t                      i, n, k;
    unsigned                    rc;
    ngx_http_inventory_slot_t  *s;
    ngx_http_inventory_event_t  ev[NGX_HTTP_INVENTORY_MAX_EVENTS];
    size_t                      slot_of[NGX_HTTP_INVENTORY_MAX_EVENTS];

    ngx_http_inventory_cmd_slots(cmd);

    for (i = 0; i < cmd->nslots; i++) {
        s = &cmd->slots[i];
        k = state[i % 4];
        s->exists = (k & 1) != 0;

        if (s->exists) {
            s->item.on_hand = (k & 0x80) ? NGX_HTTP_INVENTORY_QTY_MAX
                                         : (int64_t) (k >> 1);
            s->item.damaged = (k & 0x10) ? s->item.on_hand / 4 : 0;
            s->item.quality_control = (k & 0x20) ? s->item.on_hand / 4 : 0;
            s->item.safety_stock = (k & 0x40) ? k & 7 : 0;
            s->item.incoming = k & 0x0c;
            s->item.backorder_limit = (k & 0x02) ? 3 : 0;
            s->item.reserved = ngx_http_inventory_sellable(&s->item)
                               / (1 + (k & 3));
            s->item.min_level = k & 0x0f;
            s->item.version = k;
        }

        fuzz_check_item(&s->item);
    }

    cmd->now = 1795000000000ULL;

    rc = ngx_http_inventory_decide(cmd, ev, &n, slot_of);

    if (rc != NGX_HTTP_INVENTORY_OK && rc != NGX_HTTP_INVENTORY_CREATED) {
        if (n != 0) {
            abort();
        }

        return;
    }

    for (i = 0; i < n; i++) {
        if (slot_of[i] >= cmd->nslots) {
            abort();
        }

        s = &cmd->slots[slot_of[i]];
        ev[i].version = s->item.version + 1;

        if (ngx_http_inventory_event_apply(&s->item, &ev[i]) != 0) {
            abort();
        }

        fuzz_check_item(&s->item);
        fuzz_roundtrip(&ev[i]);
    }
}


/* a valid batch: its changes unpack to as many commands, each decided */

static void
fuzz_batch(ngx_http_inventory_cmd_t *cmd, const uint8_t *state)
{
    size_t                     i;
    const unsigned char       *p, *end;
    ngx_http_inventory_cmd_t  *change;

    change = calloc(1, sizeof(ngx_http_inventory_cmd_t));
    if (change == NULL) {
        return;
    }

    p = (const unsigned char *) cmd->changes.data;
    end = p + cmd->changes.len;

    for (i = 0; i < cmd->nchanges; i++) {
        if (ngx_http_inventory_change_unpack(change, &p, end) != 0
            || (change->type != NGX_HTTP_INVENTORY_CMD_COUNT
                && change->type != NGX_HTTP_INVENTORY_CMD_ADJUST
                && change->type != NGX_HTTP_INVENTORY_CMD_MOVE))
        {
            abort();
        }

        fuzz_decide(change, state);
    }

    if (p != end) {
        abort();
    }

    free(change);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const unsigned  types[] = {
        NGX_HTTP_INVENTORY_CMD_COUNT, NGX_HTTP_INVENTORY_CMD_ADJUST,
        NGX_HTTP_INVENTORY_CMD_RESERVE, NGX_HTTP_INVENTORY_CMD_RESERVE,
        NGX_HTTP_INVENTORY_CMD_TRANSFER, NGX_HTTP_INVENTORY_CMD_COMMIT,
        NGX_HTTP_INVENTORY_CMD_RELEASE, NGX_HTTP_INVENTORY_CMD_MOVE,
        NGX_HTTP_INVENTORY_CMD_BATCH
    };

    int                           rc;
    size_t                        len, route;
    const char                   *body;
    fuzz_arena_t                  arena;
    ngx_http_inventory_cmd_t     *cmd;
    ngx_http_inventory_errors_t   errs;
    ngx_http_inventory_item_t     item;
    ngx_http_inventory_event_t    ev;

    if (size < FUZZ_HEADER) {
        return 0;
    }

    route = data[0] % (sizeof(types) / sizeof(types[0]));
    body = (const char *) data + FUZZ_HEADER;
    len = size - FUZZ_HEADER;

    /* records read back from the store must never be trusted blindly */
    (void) ngx_http_inventory_item_decode((const unsigned char *) body, len,
                                          &item);
    (void) ngx_http_inventory_event_decode((const unsigned char *) body, len,
                                           &ev);

    cmd = calloc(1, sizeof(ngx_http_inventory_cmd_t));
    if (cmd == NULL) {
        return 0;
    }

    cmd->type = types[route];
    cmd->multi_line = (route == 3);
    cmd->sku.data = "SKU-1";
    cmd->sku.len = 5;
    cmd->location.data = "store-1";
    cmd->location.len = 7;

    arena.blocks = NULL;
    arena.total = 0;
    errs.n = 0;

    rc = ngx_http_inventory_cmd_from_body(cmd, body, len, fuzz_alloc, &arena,
                                          &errs);

    /*
     * The tree is capped in nodes; strings are copied at most once; a
     * batch copies its changes' nodes and packs its changes.
     */
    if (arena.total > 2 * len + NGX_HTTP_INVENTORY_JSON_MAX_NODES
                                * (2 * sizeof(ngx_http_inventory_json_t) + 64)
                      + sizeof(ngx_http_inventory_cmd_t)
                      + NGX_HTTP_INVENTORY_BATCH_CHANGES
                        * ngx_http_inventory_change_size_max())
    {
        abort();
    }

    if ((rc == 0) != (errs.n == 0) || errs.n > NGX_HTTP_INVENTORY_MAX_ERRORS) {
        abort();
    }

    if (rc == 0 && cmd->type == NGX_HTTP_INVENTORY_CMD_BATCH) {
        fuzz_batch(cmd, data + 1);

    } else if (rc == 0 && cmd->type != NGX_HTTP_INVENTORY_CMD_COMMIT
               && cmd->type != NGX_HTTP_INVENTORY_CMD_RELEASE)
    {
        fuzz_decide(cmd, data + 1);
    }

    fuzz_free(&arena);
    free(cmd);

    return 0;
}
