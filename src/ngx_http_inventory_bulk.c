/*
 * Reads of many items at once:
 *
 *   GET {prefix}inventory?changed_after=SEQ&limit=N
 *       the items whose latest event is after SEQ, in the order of that
 *       seq, from the changes index: a store site asks what changed since
 *       it last looked, then goes on from next_changed_after;
 *   POST {prefix}inventory/query {"items":[{"sku","location"}, ...]}
 *       up to 500 items in one snapshot: those found in the order asked,
 *       and those missing.  A read: it appends nothing, and a follower
 *       answers it.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_inventory_module.h"


#define NGX_HTTP_INVENTORY_CHANGES_LIMIT      100
#define NGX_HTTP_INVENTORY_CHANGES_LIMIT_MAX  1000
#define NGX_HTTP_INVENTORY_QUERY_MAX          500
/* 500 items of two identifiers of 64 bytes, escaped, and more */
#define NGX_HTTP_INVENTORY_QUERY_BODY_MAX     (512 * 1024)


static int ngx_http_inventory_changes_out(void *data,
    ngx_http_inventory_str_t sku, ngx_http_inventory_str_t location,
    const ngx_http_inventory_item_t *item);
static void ngx_http_inventory_query_body(ngx_http_request_t *r);
static ngx_int_t ngx_http_inventory_query_respond(ngx_http_request_t *r);


ngx_int_t
ngx_http_inventory_get_changes(ngx_http_request_t *r,
    ngx_http_inventory_ctx_t *ctx)
{
    int                              rc;
    uint64_t                         after, limit, next;
    ngx_http_inventory_buf_t         body;
    ngx_http_inventory_page_t        page;
    ngx_http_inventory_errors_t      errs;
    ngx_http_inventory_main_conf_t  *imcf;

    errs.n = 0;
    after = 0;
    limit = NGX_HTTP_INVENTORY_CHANGES_LIMIT;

    ngx_http_inventory_arg_uint(r, "changed_after", 0,
                                NGX_HTTP_INVENTORY_QTY_MAX, &after, &errs);
    ngx_http_inventory_arg_uint(r, "limit", 1,
                                NGX_HTTP_INVENTORY_CHANGES_LIMIT_MAX, &limit,
                                &errs);

    if (errs.n) {
        return ngx_http_inventory_reject(r,
                                    NGX_HTTP_INVENTORY_P_INVALID_REQUEST,
                                    "the query is invalid", &errs);
    }

    imcf = ngx_http_get_module_main_conf(r, ngx_http_inventory_module);

    rc = ngx_http_inventory_read_begin(r, imcf->store);
    if (rc != 0) {
        return ngx_http_inventory_read_failed(r, rc);
    }

    ngx_http_inventory_buf_init(&body, ngx_http_inventory_palloc, r->pool);
    ngx_http_inventory_page_open(&page, &body, "items");

    rc = ngx_http_inventory_store_changed_items(imcf->store, after,
                                                (size_t) limit,
                                                ngx_http_inventory_changes_out,
                                                &page, &next);
    ngx_http_inventory_store_read_end(imcf->store);

    ngx_http_inventory_page_close_int(&page, "next_changed_after", next != 0,
                                      next);

    if (rc != 0) {
        return ngx_http_inventory_read_failed(r, rc);
    }

    (void) ctx;

    return ngx_http_inventory_send_json(r, NGX_HTTP_OK, &body, 0);
}


static int
ngx_http_inventory_changes_out(void *data, ngx_http_inventory_str_t sku,
    ngx_http_inventory_str_t location, const ngx_http_inventory_item_t *item)
{
    ngx_http_inventory_page_item(data, sku, location, item);

    return 0;
}


ngx_int_t
ngx_http_inventory_post_query(ngx_http_request_t *r,
    ngx_http_inventory_ctx_t *ctx)
{
    ngx_int_t                    rc;
    ngx_http_inventory_errors_t  errs;

    if (!ngx_http_inventory_is_json(r)) {
        return ngx_http_inventory_reject(r,
                          NGX_HTTP_INVENTORY_P_UNSUPPORTED_MEDIA_TYPE,
                          "the body must be application/json", NULL);
    }

    if (r->headers_in.content_length_n > NGX_HTTP_INVENTORY_QUERY_BODY_MAX) {
        errs.n = 0;
        ngx_http_inventory_body_too_large(&errs,
                                          NGX_HTTP_INVENTORY_QUERY_BODY_MAX);
        return ngx_http_inventory_reject(r,
                                    NGX_HTTP_INVENTORY_P_INVALID_REQUEST,
                                    "the request body is too large", &errs);
    }

    (void) ctx;

    r->request_body_in_single_buf = 1;

    rc = ngx_http_read_client_request_body(r, ngx_http_inventory_query_body);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


static void
ngx_http_inventory_query_body(ngx_http_request_t *r)
{
    ngx_http_finalize_request(r, ngx_http_inventory_query_respond(r));
}


static ngx_int_t
ngx_http_inventory_query_respond(ngx_http_request_t *r)
{
    int                              rc;
    char                             err[NGX_HTTP_INVENTORY_JSON_ERR_LEN];
    size_t                           len, n, i, dup_len;
    u_char                          *data;
    const char                      *dup;
    ngx_int_t                        ok;
    ngx_http_inventory_json_t       *root;
    ngx_http_inventory_line_t       *items;
    ngx_http_inventory_found_t      *found;
    ngx_http_inventory_buf_t         body;
    ngx_http_inventory_errors_t      errs;
    ngx_http_inventory_main_conf_t  *imcf;

    errs.n = 0;

    ok = ngx_http_inventory_read_body(r, NGX_HTTP_INVENTORY_QUERY_BODY_MAX,
                                      &data, &len);

    if (ok == NGX_DECLINED) {
        ngx_http_inventory_body_too_large(&errs,
                                          NGX_HTTP_INVENTORY_QUERY_BODY_MAX);
        return ngx_http_inventory_reject(r,
                                    NGX_HTTP_INVENTORY_P_INVALID_REQUEST,
                                    "the request body is too large", &errs);
    }

    if (ok != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    root = ngx_http_inventory_json_parse((char *) data, len,
                                         ngx_http_inventory_palloc, r->pool,
                                         err, &dup, &dup_len);

    items = ngx_palloc(r->pool, NGX_HTTP_INVENTORY_QUERY_MAX
                                * sizeof(ngx_http_inventory_line_t));
    if (items == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (root == NULL) {
        if (dup) {
            ngx_http_inventory_error_add(&errs, dup, dup_len,
                                         "duplicate member");

        } else {
            ngx_http_inventory_error_set(&errs, "body", err);
        }

    } else {
        (void) ngx_http_inventory_query_from_json(root, items,
                                                  NGX_HTTP_INVENTORY_QUERY_MAX,
                                                  &n, &errs);
    }

    if (errs.n) {
        return ngx_http_inventory_reject(r,
                                    NGX_HTTP_INVENTORY_P_INVALID_REQUEST,
                                    "the request body is invalid", &errs);
    }

    found = ngx_pcalloc(r->pool, n * sizeof(ngx_http_inventory_found_t));
    if (found == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    imcf = ngx_http_get_module_main_conf(r, ngx_http_inventory_module);

    rc = ngx_http_inventory_read_begin(r, imcf->store);
    if (rc != 0) {
        return ngx_http_inventory_read_failed(r, rc);
    }

    for (i = 0; i < n; i++) {
        found[i].sku = items[i].sku;
        found[i].location = items[i].location;

        rc = ngx_http_inventory_store_get_item(imcf->store, items[i].sku,
                                               items[i].location,
                                               &found[i].item);

        if (rc == NGX_HTTP_INVENTORY_STORE_NOT_FOUND) {
            continue;
        }

        if (rc != 0) {
            break;
        }

        found[i].found = 1;
    }

    ngx_http_inventory_store_read_end(imcf->store);

    if (i < n) {
        return ngx_http_inventory_read_failed(r, rc);
    }

    ngx_http_inventory_buf_init(&body, ngx_http_inventory_palloc, r->pool);
    ngx_http_inventory_render_query(&body, found, n);

    return ngx_http_inventory_send_json(r, NGX_HTTP_OK, &body, 0);
}
