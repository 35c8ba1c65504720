/*
 * The API's content handler: checks the route, the method and the
 * identifiers of the path, then hands the request to the read or the write
 * side.  A follower refuses writes (not-primary); a read that asks for a
 * seq (Inventory-Min-Seq) the store does not hold yet waits for it, up to
 * the follow's wait, or is refused (replica-behind).
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_inventory_module.h"


static ngx_int_t ngx_http_inventory_min_seq(ngx_http_request_t *r,
    ngx_http_inventory_ctx_t *ctx, ngx_table_elt_t *h);
static ngx_int_t ngx_http_inventory_min_seq_wake(ngx_http_request_t *r,
    void *data, ngx_uint_t final);
static ngx_int_t ngx_http_inventory_read_route(ngx_http_request_t *r,
    ngx_http_inventory_ctx_t *ctx);


ngx_int_t
ngx_http_inventory_handler(ngx_http_request_t *r)
{
    ngx_str_t                          allow;
    ngx_table_elt_t                   *h;
    ngx_http_inventory_ctx_t          *ctx;
    ngx_http_inventory_errors_t        errs;
    const ngx_http_inventory_route_t  *rt;
    ngx_http_inventory_main_conf_t    *imcf;

    /* in a cluster, the role the last election gave this node */
    ngx_http_inventory_role_apply(
        ngx_http_get_module_main_conf(r, ngx_http_inventory_module));

    ctx = ngx_http_inventory_request_ctx(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rt = ctx->rt;

    if (rt == NULL) {
        return ngx_http_inventory_reject(r, NGX_HTTP_INVENTORY_P_NOT_FOUND,
                                         "no such resource", NULL);
    }

    /* every method of the path: it may be two routes' */
    if (!(ngx_http_inventory_method(r) & rt->methods)) {
        allow.data = ngx_pnalloc(r->pool, NGX_HTTP_INVENTORY_ALLOW_MAX);
        if (allow.data == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        allow.len = ngx_http_inventory_methods_allow(ctx->methods,
                                                     (char *) allow.data);
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

    if (imcf->store == NULL) {
        return ngx_http_inventory_reject(r, NGX_HTTP_INVENTORY_P_UNAVAILABLE,
                                         "the store is not open", NULL);
    }

    /*
     * A write is a method other than GET and HEAD on a route with a
     * command; a route without one reads, even the query of many items,
     * whose list is in a POST's body.
     */
    if (!(ngx_http_inventory_method(r) & NGX_HTTP_INVENTORY_M_READ)
        && rt->cmd)
    {

        /* a copy never takes a client's write itself */
        if (imcf->role_follower) {
            return ngx_http_inventory_retry_later(r,
                                    NGX_HTTP_INVENTORY_P_NOT_PRIMARY,
                                    "this node is a follower: send writes "
                                    "to the primary", &imcf->follow_url);
        }

        /* a cluster's primary whose lease may have run out: fenced */
        if (!ngx_http_inventory_role_writable(imcf)) {
            return ngx_http_inventory_retry_later(r,
                                    NGX_HTTP_INVENTORY_P_NOT_PRIMARY,
                                    "this node's lead has run out, is not "
                                    "renewed yet, or is being handed over: "
                                    "another node takes writes soon", NULL);
        }

        return ngx_http_inventory_start_write(r, ctx);
    }

    /* a body is read only by the route that takes one */
    if ((ngx_http_inventory_method(r) & NGX_HTTP_INVENTORY_M_READ)
        && ngx_http_discard_request_body(r) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h = ngx_http_inventory_header_in(r, "Inventory-Min-Seq");

    if (h) {
        return ngx_http_inventory_min_seq(r, ctx, h);
    }

    return ngx_http_inventory_read_route(r, ctx);
}


/* the read once the store holds the seq asked for, or 503 */

static ngx_int_t
ngx_http_inventory_min_seq(ngx_http_request_t *r,
    ngx_http_inventory_ctx_t *ctx, ngx_table_elt_t *h)
{
    off_t                            n;
    ngx_int_t                        rc;
    uint64_t                        *want;
    ngx_http_inventory_errors_t      errs;
    ngx_http_inventory_main_conf_t  *imcf;

    imcf = ngx_http_get_module_main_conf(r, ngx_http_inventory_module);

    n = ngx_atoof(h->value.data, h->value.len);

    if (n < 0 || n > NGX_HTTP_INVENTORY_QTY_MAX) {
        errs.n = 0;
        ngx_http_inventory_error_set(&errs, "Inventory-Min-Seq",
                                     "must be a seq (an integer from 0)");
        return ngx_http_inventory_reject(r,
                                    NGX_HTTP_INVENTORY_P_INVALID_REQUEST,
                                    "the request is invalid", &errs);
    }

    want = ngx_palloc(r->pool, sizeof(uint64_t));
    if (want == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    *want = (uint64_t) n;

    /* a primary holds every seq it gave: only a follower waits */
    rc = ngx_http_inventory_min_seq_wake(r, want, !imcf->role_follower
                                                  || imcf->follow_wait == 0);

    if (rc != NGX_DECLINED) {
        return rc;
    }

    return ngx_http_inventory_wait(r, *want ? *want - 1 : 0, 0,
                                   imcf->follow_wait,
                                   ngx_http_inventory_min_seq_wake, want);
}


static ngx_int_t
ngx_http_inventory_min_seq_wake(ngx_http_request_t *r, void *data,
    ngx_uint_t final)
{
    uint64_t  *want = data;

    int                              rc;
    uint64_t                         seq;
    ngx_http_inventory_ctx_t        *ctx;
    ngx_http_inventory_main_conf_t  *imcf;

    imcf = ngx_http_get_module_main_conf(r, ngx_http_inventory_module);
    ctx = ngx_http_get_module_ctx(r, ngx_http_inventory_module);

    rc = ngx_http_inventory_store_read_begin(imcf->store);
    if (rc != 0) {
        return ngx_http_inventory_read_failed(r, rc);
    }

    rc = ngx_http_inventory_store_last_seq(imcf->store, &seq);
    ngx_http_inventory_store_read_end(imcf->store);

    if (rc != 0) {
        return ngx_http_inventory_read_failed(r, rc);
    }

    /* the read's own snapshot is at least as new as this one */
    if (seq >= *want) {
        return ngx_http_inventory_read_route(r, ctx);
    }

    if (!final) {
        return NGX_DECLINED;
    }

    return ngx_http_inventory_retry_later(r,
                                    NGX_HTTP_INVENTORY_P_REPLICA_BEHIND,
                                    "this node does not hold that seq yet "
                                    "(Inventory-Min-Seq)",
                                    imcf->follow_url.len ? &imcf->follow_url
                                                         : NULL);
}


static ngx_int_t
ngx_http_inventory_read_route(ngx_http_request_t *r,
    ngx_http_inventory_ctx_t *ctx)
{
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

    case NGX_HTTP_INVENTORY_ROUTE_CHANGES:
        return ngx_http_inventory_get_changes(r, ctx);

    case NGX_HTTP_INVENTORY_ROUTE_QUERY:
        return ngx_http_inventory_post_query(r, ctx);

    default: /* NGX_HTTP_INVENTORY_ROUTE_ITEM */
        return ngx_http_inventory_get_item(r, ctx);
    }
}
