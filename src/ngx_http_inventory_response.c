/*
 * Sending responses: JSON bodies with their ETag, and problem details,
 * among them the answers every route shares (405, a store that cannot be
 * read).
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_inventory_module.h"


static ngx_str_t  ngx_http_inventory_json_type =
    ngx_string("application/json");
static ngx_str_t  ngx_http_inventory_problem_type =
    ngx_string("application/problem+json");


void *
ngx_http_inventory_palloc(void *pool, size_t size)
{
    return ngx_palloc(pool, size);
}


ngx_int_t
ngx_http_inventory_send(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *content_type, ngx_http_inventory_buf_t *body, uint64_t etag)
{
    ngx_int_t                  rc;
    ngx_buf_t                 *b;
    ngx_chain_t                out;
    ngx_table_elt_t           *h;
    ngx_http_inventory_ctx_t  *ctx;

    /* our own If-Match and If-None-Match rules apply, not the filter's */
    r->disable_not_modified = 1;

    r->headers_out.status = status;

    /* codes nginx 1.22 has no reason phrase for */
    if (status == 422) {
        ngx_str_set(&r->headers_out.status_line, "422 Unprocessable Content");

    } else if (status == 507) {
        ngx_str_set(&r->headers_out.status_line, "507 Insufficient Storage");
    }

    if (etag) {
        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        h->value.data = ngx_pnalloc(r->pool, NGX_INT64_LEN + 2);
        if (h->value.data == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        h->hash = 1;
        ngx_str_set(&h->key, "ETag");
        h->value.len = ngx_sprintf(h->value.data, "\"%uL\"", etag)
                       - h->value.data;
        r->headers_out.etag = h;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_inventory_module);

    /* an answer decided against the store says against which seq */
    if (ctx && ctx->seq_known && status < 500) {
        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        h->value.data = ngx_pnalloc(r->pool, NGX_INT64_LEN);
        if (h->value.data == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        h->hash = 1;
        ngx_str_set(&h->key, "Inventory-Seq");
        h->value.len = ngx_sprintf(h->value.data, "%uL", ctx->seq)
                       - h->value.data;
    }

    if (body && body->failed) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (body == NULL || body->len == 0) {
        r->header_only = 1;
        r->headers_out.content_length_n = 0;

        if (status == NGX_HTTP_NOT_MODIFIED) {
            r->headers_out.content_length_n = -1;
        }

        return ngx_http_send_header(r);
    }

    r->headers_out.content_type = *content_type;
    r->headers_out.content_type_len = content_type->len;
    r->headers_out.content_length_n = body->len;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->pos = body->data;
    b->last = body->data + body->len;
    b->memory = 1;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


ngx_int_t
ngx_http_inventory_send_problem(ngx_http_request_t *r,
    ngx_http_inventory_problem_t *p)
{
    ngx_http_inventory_buf_t  body;

    ngx_http_inventory_buf_init(&body, ngx_http_inventory_palloc, r->pool);
    ngx_http_inventory_render_problem_body(&body, p);

    return ngx_http_inventory_send(r,
                                   ngx_http_inventory_problem_status(p->code),
                                   &ngx_http_inventory_problem_type, &body,
                                   0);
}


ngx_int_t
ngx_http_inventory_send_item(ngx_http_request_t *r, ngx_uint_t status,
    ngx_http_inventory_slot_t *slot)
{
    ngx_http_inventory_buf_t  body;

    ngx_http_inventory_buf_init(&body, ngx_http_inventory_palloc, r->pool);
    ngx_http_inventory_render_item_body(&body, slot);

    return ngx_http_inventory_send_json(r, status, &body, slot->item.version);
}


ngx_int_t
ngx_http_inventory_send_reservation(ngx_http_request_t *r,
    ngx_http_inventory_reservation_t *res)
{
    ngx_http_inventory_buf_t  body;

    ngx_http_inventory_buf_init(&body, ngx_http_inventory_palloc, r->pool);
    ngx_http_inventory_render_reservation_body(&body, res);

    return ngx_http_inventory_send_json(r, NGX_HTTP_OK, &body, 0);
}


ngx_int_t
ngx_http_inventory_send_json(ngx_http_request_t *r, ngx_uint_t status,
    ngx_http_inventory_buf_t *body, uint64_t etag)
{
    return ngx_http_inventory_send(r, status, &ngx_http_inventory_json_type,
                                   body, etag);
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


/* a read that failed in the store: logged, and 503 without its details */

ngx_int_t
ngx_http_inventory_read_failed(ngx_http_request_t *r, int rc)
{
    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "inventory: read failed: %s",
                  ngx_http_inventory_store_strerror(rc));

    return ngx_http_inventory_reject(r, NGX_HTTP_INVENTORY_P_UNAVAILABLE,
                                     "the store cannot be read", NULL);
}


/*
 * 503 not-primary or replica-behind: with Retry-After, and the primary's
 * URL when this node knows it.
 */

ngx_int_t
ngx_http_inventory_retry_later(ngx_http_request_t *r, unsigned code,
    const char *detail, ngx_str_t *primary)
{
    ngx_table_elt_t               *h;
    ngx_http_inventory_problem_t   p;

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Retry-After");
    ngx_str_set(&h->value, "1");

    ngx_memzero(&p, sizeof(ngx_http_inventory_problem_t));
    p.code = code;
    p.detail = detail;

    if (primary && primary->len) {
        p.primary = (char *) ngx_pnalloc(r->pool, primary->len + 1);
        if (p.primary == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        (void) ngx_cpystrn((u_char *) p.primary, primary->data,
                           primary->len + 1);
    }

    return ngx_http_inventory_send_problem(r, &p);
}
