/*
 * Response bodies: a command's answer, rendered where its outcome is
 * decided, and the bodies of one problem, item, reservation or event.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_http_inventory_render.h"


static void ngx_http_inventory_render_answer(yajl_gen g,
    ngx_http_inventory_cmd_t *cmd);
static void ngx_http_inventory_render_problem_cb(yajl_gen g,
    const void *data);
static void ngx_http_inventory_render_item_cb(yajl_gen g, const void *data);
static void ngx_http_inventory_render_reservation_cb(yajl_gen g,
    const void *data);
static void ngx_http_inventory_render_event_cb(yajl_gen g, const void *data);


/*
 * The response to a command, rendered where its outcome is decided so that
 * an idempotency record can keep it in the same transaction.  The body is a
 * heap buffer: no pool is touched, whatever thread this runs on.
 */

/*
 * The most bytes render_outcome() can give a command, or a replay of its
 * stored answer (a replay is of the same method, path and body): a problem
 * or one or two items fit in the base, a reservation or its shortages take
 * a line's worth per line (ids of 64 bytes and two integers of 17 digits);
 * commit and release cannot know their reservation's lines beforehand.  The
 * unit tests render the worst cases against it.
 */

size_t
ngx_http_inventory_render_bound(const ngx_http_inventory_cmd_t *cmd)
{
    size_t  lines;

    switch (cmd->type) {

    case NGX_HTTP_INVENTORY_CMD_RESERVE:
        lines = cmd->res.nlines;
        break;

    case NGX_HTTP_INVENTORY_CMD_COMMIT:
    case NGX_HTTP_INVENTORY_CMD_RELEASE:
        lines = NGX_HTTP_INVENTORY_MAX_LINES;
        break;

    case NGX_HTTP_INVENTORY_CMD_BATCH:
        /* an item or a problem a change, at most 4 lines' worth each */
        lines = 4 * cmd->nchanges;
        break;

    default:
        lines = 0;
        break;
    }

    /* the reference may take 6 bytes a byte, escaped (\u001f) */
    return 2048 + 6 * NGX_HTTP_INVENTORY_REFERENCE_MAX + lines * 256;
}


void
ngx_http_inventory_render_outcome(ngx_http_inventory_cmd_t *cmd)
{
    yajl_gen                  g;
    ngx_http_inventory_buf_t  b;

    ngx_http_inventory_buf_init(&b, NULL, NULL);

    g = ngx_http_inventory_gen_open(&b);
    if (g == NULL) {
        cmd->status = 500;
        return;
    }

    /* a batch decided: its changes' answers (render_batch.c) */
    if (cmd->type == NGX_HTTP_INVENTORY_CMD_BATCH
        && (cmd->outcome == NGX_HTTP_INVENTORY_OK
            || cmd->outcome == NGX_HTTP_INVENTORY_INSUFFICIENT))
    {
        ngx_http_inventory_render_batch(g, cmd);

    } else {
        ngx_http_inventory_render_answer(g, cmd);
    }

    yajl_gen_free(g);

    if (b.failed) {
        free(b.data);
        cmd->status = 500;
        return;
    }

    cmd->body = b.data;
    cmd->body_len = b.len;
}


/* the answer to a command of one item, a transfer or a reservation */

static void
ngx_http_inventory_render_answer(yajl_gen g, ngx_http_inventory_cmd_t *cmd)
{
    char                          detail[256];
    ngx_http_inventory_slot_t    *s;
    ngx_http_inventory_problem_t  p;

    memset(&p, 0, sizeof(p));
    p.code = NGX_HTTP_INVENTORY_P_LAST;
    cmd->etag = 0;
    cmd->status = 200;

    switch (cmd->outcome) {

    case NGX_HTTP_INVENTORY_OK:
    case NGX_HTTP_INVENTORY_CREATED:
        if (cmd->outcome == NGX_HTTP_INVENTORY_CREATED) {
            cmd->status = 201;
        }

        switch (cmd->type) {

        case NGX_HTTP_INVENTORY_CMD_COUNT:
        case NGX_HTTP_INVENTORY_CMD_ADJUST:
        case NGX_HTTP_INVENTORY_CMD_MOVE:
            s = &cmd->slots[0];
            ngx_http_inventory_render_item(g, s->sku, s->location, &s->item);
            cmd->etag = s->item.version;
            break;

        case NGX_HTTP_INVENTORY_CMD_TRANSFER:
            yajl_gen_map_open(g);
            ngx_http_inventory_gen_str(g, "from");
            s = &cmd->slots[0];
            ngx_http_inventory_render_item(g, s->sku, s->location, &s->item);
            ngx_http_inventory_gen_str(g, "to");
            s = &cmd->slots[1];
            ngx_http_inventory_render_item(g, s->sku, s->location, &s->item);
            yajl_gen_map_close(g);
            break;

        default:
            ngx_http_inventory_render_reservation(g, &cmd->res);
            break;
        }

        break;

    case NGX_HTTP_INVENTORY_NOT_FOUND:
        p.code = NGX_HTTP_INVENTORY_P_NOT_FOUND;

        if (cmd->type == NGX_HTTP_INVENTORY_CMD_COMMIT
            || cmd->type == NGX_HTTP_INVENTORY_CMD_RELEASE
            || cmd->type == NGX_HTTP_INVENTORY_CMD_EXPIRE)
        {
            p.detail = "no such reservation";
            break;
        }

        s = &cmd->slots[cmd->failed_slot];
        snprintf(detail, sizeof(detail),
                 "no stock item for sku \"%.*s\" at location \"%.*s\"",
                 (int) s->sku.len, s->sku.data,
                 (int) s->location.len, s->location.data);
        p.detail = detail;
        break;

    case NGX_HTTP_INVENTORY_INSUFFICIENT:
        p.code = NGX_HTTP_INVENTORY_P_INSUFFICIENT_STOCK;

        switch (cmd->type) {

        case NGX_HTTP_INVENTORY_CMD_COUNT:
        case NGX_HTTP_INVENTORY_CMD_ADJUST:
            p.detail = "no quantity may fall below zero, damaged + "
                       "quality_control must stay within on_hand, and "
                       "reserved within on_hand - damaged - quality_control "
                       "+ backorder_limit";
            break;

        case NGX_HTTP_INVENTORY_CMD_MOVE:
            p.detail = "the state moved from holds less than the quantity "
                       "(available: less is available)";
            break;

        case NGX_HTTP_INVENTORY_CMD_COMMIT:
            p.detail = "the reservation's stock is not all on hand: a "
                       "backordered hold is committed once the stock is "
                       "there";
            p.shorts = cmd;
            break;

        case NGX_HTTP_INVENTORY_CMD_TRANSFER:
            p.detail = "the source location has less available than "
                       "the quantity";
            break;

        default:
            p.detail = "not enough available stock for every line";
            p.shorts = cmd->multi_line ? cmd : NULL;
            break;
        }

        p.available = cmd->available;
        p.has_available = (p.shorts == NULL);
        break;

    case NGX_HTTP_INVENTORY_OUT_OF_RANGE:
        p.code = NGX_HTTP_INVENTORY_P_INSUFFICIENT_STOCK;
        p.detail = "a quantity would exceed 9007199254740991";
        p.available = cmd->available;
        p.has_available = 1;
        break;

    case NGX_HTTP_INVENTORY_VERSION_MISMATCH:
        p.code = NGX_HTTP_INVENTORY_P_VERSION_MISMATCH;
        p.detail = "If-Match does not name the item's current version";

        if (cmd->slots[0].exists) {
            p.version = cmd->slots[0].item.version;
            p.has_version = 1;
        }

        break;

    case NGX_HTTP_INVENTORY_NOT_ACTIVE:
        p.code = NGX_HTTP_INVENTORY_P_RESERVATION_NOT_ACTIVE;

        if (cmd->res.state == NGX_HTTP_INVENTORY_RES_ACTIVE) {
            p.detail = "the reservation has expired";
            p.state = "expired";

        } else {
            p.detail = "the reservation has ended";
            p.state = ngx_http_inventory_res_state_name(cmd->res.state);
        }

        break;

    case NGX_HTTP_INVENTORY_KEY_REUSED:
        p.code = NGX_HTTP_INVENTORY_P_IDEMPOTENCY_KEY_REUSED;
        p.detail = "this Idempotency-Key was used for a different request";
        break;

    case NGX_HTTP_INVENTORY_STORAGE_FULL:
        p.code = NGX_HTTP_INVENTORY_P_STORAGE_FULL;
        p.detail = "the store is full; nothing was written";
        break;

    case NGX_HTTP_INVENTORY_UNKNOWN:
        p.code = NGX_HTTP_INVENTORY_P_UNAVAILABLE;
        p.detail = "the worker committing this write died; whether it was "
                   "applied is unknown (a write sent with an "
                   "Idempotency-Key can be retried safely)";
        break;

    default:
        p.code = NGX_HTTP_INVENTORY_P_UNAVAILABLE;
        p.detail = "the store cannot be written; nothing was written";
        break;
    }

    if (p.code != NGX_HTTP_INVENTORY_P_LAST) {
        ngx_http_inventory_render_problem(g, &p);
        cmd->status = ngx_http_inventory_problem_status(p.code);
    }
}


void
ngx_http_inventory_render_body(ngx_http_inventory_buf_t *b,
    ngx_http_inventory_render_pt render, const void *data)
{
    yajl_gen  g;

    g = ngx_http_inventory_gen_open(b);
    if (g == NULL) {
        b->failed = 1;
        return;
    }

    render(g, data);
    yajl_gen_free(g);
}


void
ngx_http_inventory_render_problem_body(ngx_http_inventory_buf_t *b,
    const ngx_http_inventory_problem_t *p)
{
    ngx_http_inventory_render_body(b, ngx_http_inventory_render_problem_cb,
                                   p);
}


static void
ngx_http_inventory_render_problem_cb(yajl_gen g, const void *data)
{
    ngx_http_inventory_render_problem(g, data);
}


void
ngx_http_inventory_render_item_body(ngx_http_inventory_buf_t *b,
    const ngx_http_inventory_slot_t *slot)
{
    ngx_http_inventory_render_body(b, ngx_http_inventory_render_item_cb,
                                   slot);
}


static void
ngx_http_inventory_render_item_cb(yajl_gen g, const void *data)
{
    const ngx_http_inventory_slot_t  *slot = data;

    ngx_http_inventory_render_item(g, slot->sku, slot->location, &slot->item);
}


void
ngx_http_inventory_render_reservation_body(ngx_http_inventory_buf_t *b,
    const ngx_http_inventory_reservation_t *res)
{
    ngx_http_inventory_render_body(b,
                                   ngx_http_inventory_render_reservation_cb,
                                   res);
}


static void
ngx_http_inventory_render_reservation_cb(yajl_gen g, const void *data)
{
    ngx_http_inventory_render_reservation(g, data);
}


void
ngx_http_inventory_render_event_body(ngx_http_inventory_buf_t *b,
    const ngx_http_inventory_event_t *ev)
{
    ngx_http_inventory_render_body(b, ngx_http_inventory_render_event_cb, ev);
}


static void
ngx_http_inventory_render_event_cb(yajl_gen g, const void *data)
{
    ngx_http_inventory_render_event(g, data);
}


/* {"sku", "on_hand", "reserved", "available", "locations": [items]} */
