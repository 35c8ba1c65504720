/*
 * Response bodies.  Problem types are URNs named after their code: they
 * identify the problem without promising a page to fetch.
 */

#include <string.h>

#include "ngx_http_inventory_render.h"


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
    { "unavailable", 503, "Service unavailable" }
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
    char    ts[NGX_HTTP_INVENTORY_TIME_LEN];
    size_t  n;

    yajl_gen_map_open(g);
    ngx_http_inventory_gen_key_str(g, "sku", sku.data, sku.len);
    ngx_http_inventory_gen_key_str(g, "location", location.data,
                                   location.len);
    ngx_http_inventory_gen_key_int(g, "on_hand", item->on_hand);
    ngx_http_inventory_gen_key_int(g, "reserved", item->reserved);
    ngx_http_inventory_gen_key_int(g, "available",
                                   ngx_http_inventory_available(item));
    ngx_http_inventory_gen_key_int(g, "min_level", item->min_level);
    ngx_http_inventory_gen_str(g, "low_stock");
    yajl_gen_bool(g, ngx_http_inventory_low_stock(item));
    ngx_http_inventory_gen_key_int(g, "version", (int64_t) item->version);

    n = ngx_http_inventory_time_format(item->updated_at, ts);
    ngx_http_inventory_gen_key_str(g, "updated_at", ts, n);
    yajl_gen_map_close(g);
}
