/*
 * The API's entry point: finds the route below the location's prefix,
 * checks the method and the identifiers of the path, and hands the request
 * to the read or the write side.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_inventory_module.h"


static void ngx_http_inventory_ctx_mark(void *data);
static const ngx_http_inventory_route_t *ngx_http_inventory_route(
    ngx_http_request_t *r, ngx_http_inventory_ctx_t *ctx);
static ngx_uint_t ngx_http_inventory_method(ngx_http_request_t *r);


ngx_int_t
ngx_http_inventory_handler(ngx_http_request_t *r)
{
    ngx_str_t                          allow;
    ngx_http_inventory_ctx_t          *ctx;
    ngx_http_inventory_errors_t        errs;
    const ngx_http_inventory_route_t  *rt;
    ngx_http_inventory_main_conf_t    *imcf;

    ctx = ngx_http_inventory_request_ctx(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rt = ctx->rt;

    if (rt == NULL) {
        return ngx_http_inventory_reject(r, NGX_HTTP_INVENTORY_P_NOT_FOUND,
                                         "no such resource", NULL);
    }

    if (!(ngx_http_inventory_method(r) & rt->methods)) {
        allow.data = (u_char *) rt->allow;
        allow.len = ngx_strlen(rt->allow);
        return ngx_http_inventory_not_allowed(r, &allow);
    }

    if (ctx->route == NGX_HTTP_INVENTORY_ROUTE_HEALTH) {
        return ngx_http_inventory_health(r);
    }

    errs.n = 0;

    switch (ngx_http_inventory_path_check(&ctx->ids, &errs)) {

    case NGX_HTTP_INVENTORY_PATH_INVALID:
        return ngx_http_inventory_reject(r,
                                    NGX_HTTP_INVENTORY_P_INVALID_REQUEST,
                                    "the path holds an invalid identifier",
                                    &errs);

    case NGX_HTTP_INVENTORY_PATH_NO_SUCH_ID:
        return ngx_http_inventory_reject(r, NGX_HTTP_INVENTORY_P_NOT_FOUND,
                                         "no such reservation", NULL);

    default: /* NGX_HTTP_INVENTORY_PATH_OK */
        break;
    }

    imcf = ngx_http_get_module_main_conf(r, ngx_http_inventory_module);

    if (!imcf->store_open) {
        return ngx_http_inventory_reject(r, NGX_HTTP_INVENTORY_P_UNAVAILABLE,
                                         "the store is not open", NULL);
    }

    if (!(ngx_http_inventory_method(r) & NGX_HTTP_INVENTORY_M_READ)) {
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

static const ngx_http_inventory_route_t *
ngx_http_inventory_route(ngx_http_request_t *r, ngx_http_inventory_ctx_t *ctx)
{
    u_char                            *p, *end;
    ngx_http_core_loc_conf_t          *clcf;
    const ngx_http_inventory_route_t  *rt;

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

    rt = ngx_http_inventory_route_find((char *) p, end - p, &ctx->ids);

    if (rt) {
        ctx->route = rt->route;
    }

    return rt;
}


static ngx_uint_t
ngx_http_inventory_method(ngx_http_request_t *r)
{
    switch (r->method) {

    case NGX_HTTP_GET:
        return NGX_HTTP_INVENTORY_M_GET;

    case NGX_HTTP_HEAD:
        return NGX_HTTP_INVENTORY_M_HEAD;

    case NGX_HTTP_PUT:
        return NGX_HTTP_INVENTORY_M_PUT;

    case NGX_HTTP_POST:
        return NGX_HTTP_INVENTORY_M_POST;

    default:
        return 0;
    }
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


uint64_t
ngx_http_inventory_now(void)
{
    ngx_time_t  *tp;

    ngx_time_update();
    tp = ngx_timeofday();

    return (uint64_t) tp->sec * 1000 + tp->msec;
}
