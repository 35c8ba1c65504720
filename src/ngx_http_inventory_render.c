/*
 * Response bodies.  Problem types are URNs named after their code: they
 * identify the problem without promising a page to fetch.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_http_inventory_render.h"


static void ngx_http_inventory_render_problem_cb(yajl_gen g,
    const void *data);
static void ngx_http_inventory_render_item_cb(yajl_gen g, const void *data);
static void ngx_http_inventory_render_reservation_cb(yajl_gen g,
    const void *data);
static void ngx_http_inventory_render_event_cb(yajl_gen g, const void *data);
static void ngx_http_inventory_render_shorts(yajl_gen g,
    const ngx_http_inventory_cmd_t *cmd);


typedef struct {
    const char                 *code;
    unsigned                    status;
    const char                 *title;
} ngx_http_inventory_problem_type_t;


static const ngx_http_inventory_problem_type_t
    ngx_http_inventory_problem_types[] = {
    { "invalid-request", 400, "The request is invalid" },
    { "not-found", 404, "Not found" },
    { "method-not-allowed", 405, "Method not allowed" },
    { "unsupported-media-type", 415, "Unsupported media type" },
    { "insufficient-stock", 409, "Insufficient stock" },
    { "reservation-not-active", 409, "The reservation is not active" },
    { "version-mismatch", 412, "Version mismatch" },
    { "idempotency-key-reused", 422,
      "The idempotency key was used for another request" },
    { "idempotency-key-in-flight", 409,
      "A request with this idempotency key is in progress" },
    { "storage-full", 507, "Storage full" },
    { "unavailable", 503, "Service unavailable" },
    { "not-primary", 503, "This node is not the primary" },
    { "replica-behind", 503, "This replica is behind" },
    { "store-mismatch", 409, "Another store" },
    { "snapshot-required", 410, "A snapshot is required" },
    { "replication-timeout", 503,
      "The write was not replicated in time" },
    { "handover-failed", 503, "The lead was not handed over" }
};


unsigned
ngx_http_inventory_problem_status(unsigned code)
{
    return ngx_http_inventory_problem_types[code].status;
}


void
ngx_http_inventory_render_problem(yajl_gen g,
    const ngx_http_inventory_problem_t *p)
{
    char                                      type[64];
    size_t                                    i;
    const ngx_http_inventory_problem_type_t  *t;

    t = &ngx_http_inventory_problem_types[p->code];

    strcpy(type, "urn:inventory:problem:");
    strcat(type, t->code);

    yajl_gen_map_open(g);
    ngx_http_inventory_gen_key_str(g, "type", type, strlen(type));
    ngx_http_inventory_gen_key_str(g, "title", t->title, strlen(t->title));
    ngx_http_inventory_gen_key_int(g, "status", t->status);
    ngx_http_inventory_gen_key_str(g, "detail", p->detail, strlen(p->detail));
    ngx_http_inventory_gen_key_str(g, "code", t->code, strlen(t->code));

    if (p->has_available) {
        ngx_http_inventory_gen_key_int(g, "available", p->available);
    }

    if (p->has_version) {
        ngx_http_inventory_gen_key_int(g, "current_version",
                                       (int64_t) p->version);
    }

    if (p->state) {
        ngx_http_inventory_gen_key_str(g, "state", p->state,
                                       strlen(p->state));
    }

    if (p->primary) {
        ngx_http_inventory_gen_key_str(g, "primary", p->primary,
                                       strlen(p->primary));
    }

    if (p->shorts) {
        ngx_http_inventory_render_shorts(g, p->shorts);
    }

    if (p->errors) {
        ngx_http_inventory_gen_str(g, "errors");
        yajl_gen_array_open(g);

        for (i = 0; i < p->errors->n; i++) {
            yajl_gen_map_open(g);
            ngx_http_inventory_gen_key_str(g, "field", p->errors->e[i].field,
                                           strlen(p->errors->e[i].field));
            ngx_http_inventory_gen_key_str(g, "message",
                                           p->errors->e[i].message,
                                           strlen(p->errors->e[i].message));
            yajl_gen_map_close(g);
        }

        yajl_gen_array_close(g);
    }

    yajl_gen_map_close(g);
}


void
ngx_http_inventory_render_item(yajl_gen g, ngx_http_inventory_str_t sku,
    ngx_http_inventory_str_t location, const ngx_http_inventory_item_t *item)
{
    yajl_gen_map_open(g);
    ngx_http_inventory_gen_key_str(g, "sku", sku.data, sku.len);
    ngx_http_inventory_gen_key_str(g, "location", location.data,
                                   location.len);
    ngx_http_inventory_gen_key_int(g, "on_hand", item->on_hand);
    ngx_http_inventory_gen_key_int(g, "reserved", item->reserved);
    ngx_http_inventory_gen_key_int(g, "damaged", item->damaged);
    ngx_http_inventory_gen_key_int(g, "quality_control",
                                   item->quality_control);
    ngx_http_inventory_gen_key_int(g, "safety_stock", item->safety_stock);
    ngx_http_inventory_gen_key_int(g, "incoming", item->incoming);
    ngx_http_inventory_gen_key_int(g, "backorder_limit",
                                   item->backorder_limit);
    ngx_http_inventory_gen_key_int(g, "available",
                                   ngx_http_inventory_available(item));
    ngx_http_inventory_gen_key_int(g, "min_level", item->min_level);
    ngx_http_inventory_gen_str(g, "low_stock");
    yajl_gen_bool(g, ngx_http_inventory_low_stock(item));
    ngx_http_inventory_gen_key_int(g, "seq", (int64_t) item->seq);
    ngx_http_inventory_gen_key_int(g, "version", (int64_t) item->version);

    ngx_http_inventory_render_time(g, "updated_at", item->updated_at);
    yajl_gen_map_close(g);
}


void
ngx_http_inventory_render_time(yajl_gen g, const char *key, uint64_t ms)
{
    char    ts[NGX_HTTP_INVENTORY_TIME_LEN];
    size_t  n;

    n = ngx_http_inventory_time_format(ms, ts);
    ngx_http_inventory_gen_key_str(g, key, ts, n);
}


/* every item a reservation could not get: what it asked, what there is */

static void
ngx_http_inventory_render_shorts(yajl_gen g,
    const ngx_http_inventory_cmd_t *cmd)
{
    size_t                            i;
    const ngx_http_inventory_slot_t  *s;

    ngx_http_inventory_gen_str(g, "lines");
    yajl_gen_array_open(g);

    for (i = 0; i < cmd->nslots; i++) {
        s = &cmd->slots[i];

        if (!s->short_stock) {
            continue;
        }

        yajl_gen_map_open(g);
        ngx_http_inventory_gen_key_str(g, "sku", s->sku.data, s->sku.len);
        ngx_http_inventory_gen_key_str(g, "location", s->location.data,
                                       s->location.len);
        ngx_http_inventory_gen_key_int(g, "quantity", s->demand);
        ngx_http_inventory_gen_key_int(g, "available",
                                       ngx_http_inventory_available(&s->item));
        yajl_gen_map_close(g);
    }

    yajl_gen_array_close(g);
}


void
ngx_http_inventory_render_reservation(yajl_gen g,
    const ngx_http_inventory_reservation_t *res)
{
    size_t                            i;
    const char                       *state;
    const ngx_http_inventory_line_t  *line;

    state = ngx_http_inventory_res_state_name(res->state);

    yajl_gen_map_open(g);
    ngx_http_inventory_gen_key_str(g, "id", res->id,
                                   NGX_HTTP_INVENTORY_RES_ID_LEN);
    ngx_http_inventory_gen_key_str(g, "state", state, strlen(state));
    ngx_http_inventory_gen_str(g, "lines");
    yajl_gen_array_open(g);

    for (i = 0; i < res->nlines; i++) {
        line = &res->lines[i];

        yajl_gen_map_open(g);
        ngx_http_inventory_gen_key_str(g, "sku", line->sku.data,
                                       line->sku.len);
        ngx_http_inventory_gen_key_str(g, "location", line->location.data,
                                       line->location.len);
        ngx_http_inventory_gen_key_int(g, "quantity", line->quantity);
        yajl_gen_map_close(g);
    }

    yajl_gen_array_close(g);

    ngx_http_inventory_gen_str(g, "reference");

    if (res->reference.len) {
        yajl_gen_string(g, (const unsigned char *) res->reference.data,
                        res->reference.len);

    } else {
        yajl_gen_null(g);
    }

    ngx_http_inventory_render_time(g, "created_at", res->created_at);
    ngx_http_inventory_render_time(g, "expires_at", res->expires_at);

    if (res->ended_at) {
        ngx_http_inventory_render_time(g, "ended_at", res->ended_at);
    }

    yajl_gen_map_close(g);
}


void
ngx_http_inventory_render_event(yajl_gen g,
    const ngx_http_inventory_event_t *ev)
{
    const char  *type, *state;

    type = ngx_http_inventory_event_name(ev->type);

    yajl_gen_map_open(g);
    ngx_http_inventory_gen_key_int(g, "seq", (int64_t) ev->seq);
    ngx_http_inventory_gen_key_str(g, "type", type, strlen(type));
    ngx_http_inventory_gen_key_str(g, "sku", ev->sku.data, ev->sku.len);
    ngx_http_inventory_gen_key_str(g, "location", ev->location.data,
                                   ev->location.len);
    ngx_http_inventory_gen_key_int(g, "version", (int64_t) ev->version);
    ngx_http_inventory_render_time(g, "at", ev->at);

    ngx_http_inventory_gen_str(g, "data");
    yajl_gen_map_open(g);

    switch (ev->type) {

    case NGX_HTTP_INVENTORY_EV_STOCK_COUNTED:
        ngx_http_inventory_gen_key_int(g, "on_hand", ev->on_hand);
        ngx_http_inventory_gen_key_int(g, "min_level", ev->min_level);
        ngx_http_inventory_gen_key_int(g, "safety_stock", ev->safety_stock);
        ngx_http_inventory_gen_key_int(g, "backorder_limit",
                                       ev->backorder_limit);
        break;

    case NGX_HTTP_INVENTORY_EV_STOCK_ADJUSTED:
        ngx_http_inventory_gen_key_int(g, "delta", ev->delta);
        state = ngx_http_inventory_state_name(
                    ev->state ? ev->state
                              : NGX_HTTP_INVENTORY_STATE_AVAILABLE);
        ngx_http_inventory_gen_key_str(g, "state", state, strlen(state));
        break;

    case NGX_HTTP_INVENTORY_EV_STOCK_MOVED:
        state = ngx_http_inventory_state_name(ev->state);
        ngx_http_inventory_gen_key_str(g, "from", state, strlen(state));
        state = ngx_http_inventory_state_name(ev->to_state);
        ngx_http_inventory_gen_key_str(g, "to", state, strlen(state));
        ngx_http_inventory_gen_key_int(g, "quantity", ev->quantity);
        break;

    case NGX_HTTP_INVENTORY_EV_TRANSFERRED_OUT:
    case NGX_HTTP_INVENTORY_EV_TRANSFERRED_IN:
        ngx_http_inventory_gen_key_int(g, "quantity", ev->quantity);
        ngx_http_inventory_gen_key_str(g,
                             ev->type == NGX_HTTP_INVENTORY_EV_TRANSFERRED_OUT
                             ? "to" : "from",
                             ev->other_location.data,
                             ev->other_location.len);
        break;

    case NGX_HTTP_INVENTORY_EV_LOW_STOCK_DETECTED:
        ngx_http_inventory_gen_key_int(g, "available", ev->available);
        ngx_http_inventory_gen_key_int(g, "min_level", ev->min_level);
        break;

    default:
        ngx_http_inventory_gen_key_str(g, "reservation_id",
                                       ev->reservation_id.data,
                                       ev->reservation_id.len);
        ngx_http_inventory_gen_key_int(g, "quantity", ev->quantity);
        break;
    }

    if (ev->reason.len) {
        ngx_http_inventory_gen_key_str(g, "reason", ev->reason.data,
                                       ev->reason.len);
    }

    if (ev->reference.len) {
        ngx_http_inventory_gen_key_str(g, "reference", ev->reference.data,
                                       ev->reference.len);
    }

    if (ev->actor.len) {
        ngx_http_inventory_gen_key_str(g, "actor", ev->actor.data,
                                       ev->actor.len);
    }

    yajl_gen_map_close(g);
    yajl_gen_map_close(g);
}


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
    char                          detail[256];
    yajl_gen                      g;
    ngx_http_inventory_buf_t      b;
    ngx_http_inventory_slot_t    *s;
    ngx_http_inventory_problem_t  p;

    ngx_http_inventory_buf_init(&b, NULL, NULL);

    g = ngx_http_inventory_gen_open(&b);
    if (g == NULL) {
        cmd->status = 500;
        return;
    }

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
        p.has_available = !cmd->multi_line;
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

    yajl_gen_free(g);

    if (b.failed) {
        free(b.data);
        cmd->status = 500;
        return;
    }

    cmd->body = b.data;
    cmd->body_len = b.len;
}


/* a whole body: the renderer into the buffer, with its own generator */

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
