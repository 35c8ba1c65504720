/*
 * Parts of bodies, for the renderers of whole bodies: problems (their
 * codes, titles and statuses), items, times, reservations and events.
 * Problem types are URNs named after their code: they identify the
 * problem without promising a page to fetch.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_http_inventory_render.h"


static void ngx_http_inventory_render_shorts(yajl_gen g,
    const ngx_http_inventory_cmd_t *cmd);
static void ngx_http_inventory_render_refused(yajl_gen g,
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

    if (p->refused) {
        ngx_http_inventory_render_refused(g, p->refused);
    }

    if (p->errors) {
        ngx_http_inventory_gen_str(g, "errors");
        yajl_gen_array_open(g);

        for (i = 0; i < p->errors->n; i++) {
            yajl_gen_map_open(g);
            ngx_http_inventory_gen_key_str(g, "field", p->errors->e[i].field,
                                           p->errors->e[i].field_len);
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


/* an atomic batch refused: every change refused, by its index */

static void
ngx_http_inventory_render_refused(yajl_gen g,
    const ngx_http_inventory_cmd_t *cmd)
{
    char                                  detail[256];
    size_t                                i;
    const char                           *code;
    ngx_http_inventory_problem_t          p;
    const ngx_http_inventory_result_t    *res;

    ngx_http_inventory_gen_str(g, "errors");
    yajl_gen_array_open(g);

    for (i = 0; i < cmd->nchanges; i++) {
        res = &cmd->results[i];

        if (res->outcome == NGX_HTTP_INVENTORY_OK
            || res->outcome == NGX_HTTP_INVENTORY_CREATED)
        {
            continue;
        }

        ngx_http_inventory_change_problem(res, &p, detail, sizeof(detail));
        code = ngx_http_inventory_problem_types[p.code].code;

        yajl_gen_map_open(g);
        ngx_http_inventory_gen_key_int(g, "index", (int64_t) i);
        ngx_http_inventory_gen_key_str(g, "code", code, strlen(code));
        ngx_http_inventory_gen_key_str(g, "detail", p.detail,
                                       strlen(p.detail));
        yajl_gen_map_close(g);
    }

    yajl_gen_array_close(g);
}


/* why a change of a batch (a count, an adjustment, a move) was refused */

void
ngx_http_inventory_change_problem(const ngx_http_inventory_result_t *res,
    ngx_http_inventory_problem_t *p, char *detail, size_t size)
{
    memset(p, 0, sizeof(ngx_http_inventory_problem_t));

    switch (res->outcome) {

    case NGX_HTTP_INVENTORY_NOT_FOUND:
        p->code = NGX_HTTP_INVENTORY_P_NOT_FOUND;
        snprintf(detail, size,
                 "no stock item for sku \"%.*s\" at location \"%.*s\"",
                 (int) res->sku.len, res->sku.data,
                 (int) res->location.len, res->location.data);
        p->detail = detail;
        return;

    case NGX_HTTP_INVENTORY_VERSION_MISMATCH:
        p->code = NGX_HTTP_INVENTORY_P_VERSION_MISMATCH;
        p->detail = "if_version does not name the item's current version";
        p->version = res->item.version;
        p->has_version = res->exists;
        return;

    case NGX_HTTP_INVENTORY_OUT_OF_RANGE:
        p->code = NGX_HTTP_INVENTORY_P_INSUFFICIENT_STOCK;
        p->detail = "a quantity would exceed 9007199254740991";
        break;

    default: /* NGX_HTTP_INVENTORY_INSUFFICIENT */
        p->code = NGX_HTTP_INVENTORY_P_INSUFFICIENT_STOCK;
        p->detail = (res->type == NGX_HTTP_INVENTORY_CMD_MOVE)
                    ? "the state moved from holds less than the quantity "
                      "(available: less is available)"
                    : "no quantity may fall below zero, damaged + "
                      "quality_control must stay within on_hand, and "
                      "reserved within on_hand - damaged - quality_control "
                      "+ backorder_limit";
        break;
    }

    p->available = res->available;
    p->has_available = 1;
}

