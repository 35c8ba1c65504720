/*
 * The API's entry point: finds the route below the location's prefix,
 * checks the method and the identifiers of the path, and hands the request
 * to the read or the write side.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_inventory_module.h"


#define NGX_HTTP_INVENTORY_MAX_SEGMENTS  5


#define NGX_HTTP_INVENTORY_NO_PARAMS    0
#define NGX_HTTP_INVENTORY_ITEM_PARAMS  1     /* {sku}[/{location}] */
#define NGX_HTTP_INVENTORY_ID_PARAM     2     /* {id} */


/*
 * A route: its first path segment, its number of segments, its last
 * segment when that is a fixed word, and what segments 1 and 2 hold.
 */
struct ngx_http_inventory_route_s {
    ngx_str_t                   first;
    ngx_uint_t                  nsegs;
    ngx_str_t                   last;
    ngx_uint_t                  params;
    ngx_uint_t                  route;
    ngx_uint_t                  methods;
    ngx_str_t                   allow;
};


static void ngx_http_inventory_ctx_mark(void *data);
static ngx_http_inventory_route_t *ngx_http_inventory_route(
    ngx_http_request_t *r, ngx_http_inventory_ctx_t *ctx);
static ngx_uint_t ngx_http_inventory_reservation_id_valid(ngx_str_t *id);


#define NGX_HTTP_INVENTORY_READ   (NGX_HTTP_GET|NGX_HTTP_HEAD)

static ngx_http_inventory_route_t  ngx_http_inventory_routes[] = {

    { ngx_string("health"), 1, ngx_null_string,
      NGX_HTTP_INVENTORY_NO_PARAMS,
      NGX_HTTP_INVENTORY_ROUTE_HEALTH,
      NGX_HTTP_INVENTORY_READ, ngx_string("GET, HEAD") },

    { ngx_string("inventory"), 2, ngx_null_string,
      NGX_HTTP_INVENTORY_ITEM_PARAMS,
      NGX_HTTP_INVENTORY_ROUTE_AGGREGATE,
      NGX_HTTP_INVENTORY_READ, ngx_string("GET, HEAD") },

    { ngx_string("inventory"), 3, ngx_null_string,
      NGX_HTTP_INVENTORY_ITEM_PARAMS,
      NGX_HTTP_INVENTORY_ROUTE_ITEM,
      NGX_HTTP_INVENTORY_READ|NGX_HTTP_PUT, ngx_string("GET, HEAD, PUT") },

    { ngx_string("inventory"), 4, ngx_string("adjustments"),
      NGX_HTTP_INVENTORY_ITEM_PARAMS,
      NGX_HTTP_INVENTORY_ROUTE_ADJUST,
      NGX_HTTP_POST, ngx_string("POST") },

    { ngx_string("inventory"), 4, ngx_string("reservations"),
      NGX_HTTP_INVENTORY_ITEM_PARAMS,
      NGX_HTTP_INVENTORY_ROUTE_RESERVE,
      NGX_HTTP_POST, ngx_string("POST") },

    { ngx_string("inventory"), 4, ngx_string("events"),
      NGX_HTTP_INVENTORY_ITEM_PARAMS,
      NGX_HTTP_INVENTORY_ROUTE_ITEM_EVENTS,
      NGX_HTTP_INVENTORY_READ, ngx_string("GET, HEAD") },

    { ngx_string("reservations"), 1, ngx_null_string,
      NGX_HTTP_INVENTORY_NO_PARAMS,
      NGX_HTTP_INVENTORY_ROUTE_CART,
      NGX_HTTP_POST, ngx_string("POST") },

    { ngx_string("reservations"), 2, ngx_null_string,
      NGX_HTTP_INVENTORY_ID_PARAM,
      NGX_HTTP_INVENTORY_ROUTE_RESERVATION,
      NGX_HTTP_INVENTORY_READ, ngx_string("GET, HEAD") },

    { ngx_string("reservations"), 3, ngx_string("commit"),
      NGX_HTTP_INVENTORY_ID_PARAM,
      NGX_HTTP_INVENTORY_ROUTE_COMMIT,
      NGX_HTTP_POST, ngx_string("POST") },

    { ngx_string("reservations"), 3, ngx_string("release"),
      NGX_HTTP_INVENTORY_ID_PARAM,
      NGX_HTTP_INVENTORY_ROUTE_RELEASE,
      NGX_HTTP_POST, ngx_string("POST") },

    { ngx_string("events"), 1, ngx_null_string,
      NGX_HTTP_INVENTORY_NO_PARAMS,
      NGX_HTTP_INVENTORY_ROUTE_EVENTS,
      NGX_HTTP_INVENTORY_READ, ngx_string("GET, HEAD") },

    { ngx_string("low-stock"), 1, ngx_null_string,
      NGX_HTTP_INVENTORY_NO_PARAMS,
      NGX_HTTP_INVENTORY_ROUTE_LOW_STOCK,
      NGX_HTTP_INVENTORY_READ, ngx_string("GET, HEAD") },

    { ngx_string("transfers"), 1, ngx_null_string,
      NGX_HTTP_INVENTORY_NO_PARAMS,
      NGX_HTTP_INVENTORY_ROUTE_TRANSFER,
      NGX_HTTP_POST, ngx_string("POST") },

    { ngx_null_string, 0, ngx_null_string, 0, 0, 0, ngx_null_string }
};


ngx_int_t
ngx_http_inventory_handler(ngx_http_request_t *r)
{
    ngx_http_inventory_ctx_t        *ctx;
    ngx_http_inventory_route_t      *rt;
    ngx_http_inventory_errors_t      errs;
    ngx_http_inventory_main_conf_t  *imcf;

    ctx = ngx_http_inventory_request_ctx(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rt = ctx->rt;

    if (rt == NULL) {
        return ngx_http_inventory_reject(r, NGX_HTTP_INVENTORY_P_NOT_FOUND,
                                         "no such resource", NULL);
    }

    if (!(r->method & rt->methods)) {
        return ngx_http_inventory_not_allowed(r, &rt->allow);
    }

    if (ctx->route == NGX_HTTP_INVENTORY_ROUTE_HEALTH) {
        return ngx_http_inventory_health(r);
    }

    errs.n = 0;

    if (ctx->sku.data) {
        ngx_http_inventory_validate_id(&errs, "sku", ctx->sku);
    }

    if (ctx->location.data) {
        ngx_http_inventory_validate_id(&errs, "location", ctx->location);
    }

    if (errs.n) {
        return ngx_http_inventory_reject(r,
                                    NGX_HTTP_INVENTORY_P_INVALID_REQUEST,
                                    "the path holds an invalid identifier",
                                    &errs);
    }

    /* an id that could not have been issued names no reservation */
    if (ctx->id.data && !ngx_http_inventory_reservation_id_valid(&ctx->id)) {
        return ngx_http_inventory_reject(r, NGX_HTTP_INVENTORY_P_NOT_FOUND,
                                         "no such reservation", NULL);
    }

    imcf = ngx_http_get_module_main_conf(r, ngx_http_inventory_module);

    if (!imcf->store_open) {
        return ngx_http_inventory_reject(r, NGX_HTTP_INVENTORY_P_UNAVAILABLE,
                                         "the store is not open", NULL);
    }

    if (!(r->method & NGX_HTTP_INVENTORY_READ)) {
        return ngx_http_inventory_start_write(r, ctx);
    }

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    switch (ctx->route) {

    case NGX_HTTP_INVENTORY_ROUTE_AGGREGATE:
        return ngx_http_inventory_get_aggregate(r, ctx);

    case NGX_HTTP_INVENTORY_ROUTE_ITEM_EVENTS:
        return ngx_http_inventory_get_item_events(r, ctx);

    case NGX_HTTP_INVENTORY_ROUTE_RESERVATION:
        return ngx_http_inventory_get_reservation(r, ctx);

    case NGX_HTTP_INVENTORY_ROUTE_EVENTS:
        return ngx_http_inventory_get_events(r, ctx);

    case NGX_HTTP_INVENTORY_ROUTE_LOW_STOCK:
        return ngx_http_inventory_get_low_stock(r, ctx);

    default: /* NGX_HTTP_INVENTORY_ROUTE_ITEM */
        return ngx_http_inventory_get_item(r, ctx);
    }
}


/*
 * The request's context, routed once: the module's variables need the SKU
 * and location earlier than the content handler (limit_req, map), and the
 * handler then finds the work done.
 */

ngx_http_inventory_ctx_t *
ngx_http_inventory_request_ctx(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t        *cln;
    ngx_http_inventory_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_inventory_module);
    if (ctx) {
        return ctx;
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_inventory_ctx_t));
    if (ctx == NULL) {
        return NULL;
    }

    /* found again by saved_ctx() after an internal redirect */
    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    cln->handler = ngx_http_inventory_ctx_mark;
    cln->data = ctx;

    ctx->rt = ngx_http_inventory_route(r, ctx);

    ngx_http_set_ctx(r, ctx, ngx_http_inventory_module);

    return ctx;
}


/*
 * nginx forgets module contexts on an internal redirect, e.g. to the named
 * location that answers a 429 for limit_req: the request still belongs to
 * the route it came for, in the metrics and in $inventory_sku of the log.
 */

ngx_http_inventory_ctx_t *
ngx_http_inventory_saved_ctx(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t        *cln;
    ngx_http_inventory_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_inventory_module);

    if (ctx || !(r->internal || r->filter_finalize)) {
        return ctx;
    }

    for (cln = r->pool->cleanup; cln; cln = cln->next) {
        if (cln->handler == ngx_http_inventory_ctx_mark) {
            return cln->data;
        }
    }

    return NULL;
}


static void
ngx_http_inventory_ctx_mark(void *data)
{
    /* nothing to free: the handler only marks the context */
}


/* the context of a request in one of the module's locations, or NULL */

ngx_http_inventory_ctx_t *
ngx_http_inventory_location_ctx(ngx_http_request_t *r)
{
    ngx_http_inventory_ctx_t  *ctx;
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    if (clcf->handler != ngx_http_inventory_handler
        && clcf->handler != ngx_http_inventory_metrics_handler)
    {
        return NULL;
    }

    ctx = ngx_http_inventory_request_ctx(r);

    if (ctx && clcf->handler == ngx_http_inventory_metrics_handler) {
        ctx->rt = NULL;
        ctx->route = NGX_HTTP_INVENTORY_ROUTE_METRICS;
    }

    return ctx;
}


/*
 * Every request of the module's locations gets its context before limit_req
 * and access checks: what they answer is then counted for its route.  An
 * allocation failure here shows again in the content handler.
 */

ngx_int_t
ngx_http_inventory_preaccess(ngx_http_request_t *r)
{
    (void) ngx_http_inventory_location_ctx(r);

    return NGX_DECLINED;
}


/* the path below the location's prefix, matched against the route table */

static ngx_http_inventory_route_t *
ngx_http_inventory_route(ngx_http_request_t *r, ngx_http_inventory_ctx_t *ctx)
{
    u_char                      *p, *end, *start;
    ngx_str_t                    seg[NGX_HTTP_INVENTORY_MAX_SEGMENTS];
    ngx_uint_t                   n;
    ngx_http_core_loc_conf_t    *clcf;
    ngx_http_inventory_route_t  *rt;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    p = r->uri.data;
    end = r->uri.data + r->uri.len;

    /* a regex location has no prefix to strip: routes then start at "/" */
    if (clcf->regex == NULL) {
        if (r->uri.len < clcf->name.len
            || ngx_strncmp(p, clcf->name.data, clcf->name.len) != 0)
        {
            return NULL;
        }

        p += clcf->name.len;
    }

    if (p < end && *p == '/') {
        p++;
    }

    for (n = 0; n < NGX_HTTP_INVENTORY_MAX_SEGMENTS; n++) {
        start = p;

        while (p < end && *p != '/') {
            p++;
        }

        seg[n].data = start;
        seg[n].len = p - start;

        if (seg[n].len == 0) {
            return NULL;
        }

        if (p == end) {
            n++;
            break;
        }

        p++;
    }

    if (p < end) {
        return NULL;
    }

    for (rt = ngx_http_inventory_routes; rt->nsegs; rt++) {
        if (rt->nsegs != n
            || rt->first.len != seg[0].len
            || ngx_strncmp(rt->first.data, seg[0].data, seg[0].len) != 0)
        {
            continue;
        }

        if (rt->last.len
            && (rt->last.len != seg[n - 1].len
                || ngx_strncmp(rt->last.data, seg[n - 1].data,
                               seg[n - 1].len) != 0))
        {
            continue;
        }

        break;
    }

    if (rt->nsegs == 0) {
        return NULL;
    }

    ctx->route = rt->route;

    if (rt->params == NGX_HTTP_INVENTORY_ITEM_PARAMS) {
        ctx->sku.data = (char *) seg[1].data;
        ctx->sku.len = seg[1].len;

        if (n > 2) {
            ctx->location.data = (char *) seg[2].data;
            ctx->location.len = seg[2].len;
        }

    } else if (rt->params == NGX_HTTP_INVENTORY_ID_PARAM) {
        ctx->id = seg[1];
    }

    return rt;
}


static ngx_uint_t
ngx_http_inventory_reservation_id_valid(ngx_str_t *id)
{
    ngx_uint_t  i;

    if (id->len != NGX_HTTP_INVENTORY_RES_ID_LEN
        || id->data[0] != 'r' || id->data[1] != '_')
    {
        return 0;
    }

    for (i = 2; i < id->len; i++) {
        if (!((id->data[i] >= '0' && id->data[i] <= '9')
              || (id->data[i] >= 'A' && id->data[i] <= 'Z')
              || (id->data[i] >= 'a' && id->data[i] <= 'z')))
        {
            return 0;
        }
    }

    return 1;
}


ngx_int_t
ngx_http_inventory_reject(ngx_http_request_t *r, unsigned code,
    const char *detail, ngx_http_inventory_errors_t *errs)
{
    ngx_http_inventory_problem_t  p;

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memzero(&p, sizeof(ngx_http_inventory_problem_t));
    p.code = code;
    p.detail = detail;
    p.errors = errs;

    return ngx_http_inventory_send_problem(r, &p);
}


ngx_int_t
ngx_http_inventory_not_allowed(ngx_http_request_t *r, ngx_str_t *allow)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Allow");
    h->value = *allow;

    return ngx_http_inventory_reject(r,
                                NGX_HTTP_INVENTORY_P_METHOD_NOT_ALLOWED,
                                "the method is not allowed on this resource",
                                NULL);
}


/*
 * Parses an If-Match or If-None-Match value: "*" or a list of entity tags.
 * Tags that can never name a version (weak ones when strong comparison is
 * asked for, opaque ones that are not a number) are skipped; a value that is
 * not a list of entity tags is an error.
 */

ngx_int_t
ngx_http_inventory_parse_etags(ngx_str_t *value, ngx_uint_t weak_ok,
    uint64_t *versions, size_t *n, ngx_uint_t *any)
{
    u_char      *p, *last, *start;
    uint64_t     v;
    ngx_uint_t   weak, numeric;

    p = value->data;
    last = value->data + value->len;
    *n = 0;
    *any = 0;

    for ( ;; ) {
        while (p < last && (*p == ' ' || *p == '\t' || *p == ',')) {
            p++;
        }

        if (p == last) {
            return NGX_OK;
        }

        if (*p == '*') {
            *any = 1;
            p++;
            continue;
        }

        weak = 0;

        if (last - p > 2 && p[0] == 'W' && p[1] == '/') {
            weak = 1;
            p += 2;
        }

        if (*p != '"') {
            return NGX_ERROR;
        }

        start = ++p;
        v = 0;
        numeric = 1;

        while (p < last && *p != '"') {
            if (*p < '0' || *p > '9' || p - start >= 19) {
                numeric = 0;

            } else {
                v = v * 10 + (*p - '0');
            }

            p++;
        }

        if (p == last) {
            return NGX_ERROR;
        }

        if (numeric && p > start && (weak_ok || !weak)) {
            if (*n == NGX_HTTP_INVENTORY_ETAGS_MAX) {
                return NGX_ERROR;
            }

            versions[(*n)++] = v;
        }

        p++;
    }
}


uint64_t
ngx_http_inventory_now(void)
{
    ngx_time_t  *tp;

    ngx_time_update();
    tp = ngx_timeofday();

    return (uint64_t) tp->sec * 1000 + tp->msec;
}
