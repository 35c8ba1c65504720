/*
 * A request's JSON body: its media type, and the whole of it in one piece,
 * up to a limit of the route's.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_inventory_module.h"


/*
 * The whole body in one piece, from memory buffers or the temp file;
 * NGX_DECLINED if it is longer than any valid body, which then is never
 * copied: what a request costs does not grow with its body.
 */

ngx_int_t
ngx_http_inventory_read_body(ngx_http_request_t *r, size_t max, u_char **data,
    size_t *len)
{
    u_char       *p;
    off_t         size;
    ssize_t       n;
    ngx_chain_t  *cl;

    *data = NULL;
    *len = 0;

    if (r->request_body == NULL || r->request_body->bufs == NULL) {
        return NGX_OK;
    }

    if (r->request_body->temp_file) {
        size = r->request_body->temp_file->file.offset;

        if (size > (off_t) max) {
            return NGX_DECLINED;
        }

        p = ngx_pnalloc(r->pool, size ? size : 1);
        if (p == NULL) {
            return NGX_ERROR;
        }

        n = ngx_read_file(&r->request_body->temp_file->file, p, size, 0);
        if (n != size) {
            return NGX_ERROR;
        }

        *data = p;
        *len = size;

        return NGX_OK;
    }

    size = 0;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        size += ngx_buf_size(cl->buf);
    }

    if (size == 0) {
        return NGX_OK;
    }

    if (size > (off_t) max) {
        return NGX_DECLINED;
    }

    /* a chunked body may end in empty buffers: one piece is used as is */
    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        if (ngx_buf_size(cl->buf) == size) {
            *data = cl->buf->pos;
            *len = size;
            return NGX_OK;
        }
    }

    p = ngx_pnalloc(r->pool, size);
    if (p == NULL) {
        return NGX_ERROR;
    }

    *data = p;
    *len = size;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        if (ngx_buf_size(cl->buf)) {
            p = ngx_cpymem(p, cl->buf->pos, cl->buf->last - cl->buf->pos);
        }
    }

    return NGX_OK;
}


ngx_uint_t
ngx_http_inventory_is_json(ngx_http_request_t *r)
{
    u_char     *p, *last;
    ngx_str_t  *ct;

    if (r->headers_in.content_type == NULL) {
        return 0;
    }

    ct = &r->headers_in.content_type->value;

    if (ct->len < sizeof("application/json") - 1
        || ngx_strncasecmp(ct->data, (u_char *) "application/json",
                           sizeof("application/json") - 1) != 0)
    {
        return 0;
    }

    p = ct->data + sizeof("application/json") - 1;
    last = ct->data + ct->len;

    while (p < last && (*p == ' ' || *p == '\t')) {
        p++;
    }

    return p == last || *p == ';';
}


ngx_uint_t
ngx_http_inventory_no_body(ngx_http_request_t *r)
{
    return r->headers_in.content_length_n <= 0
           && r->headers_in.chunked == 0;
}


/* 400: the body is longer than max */

void
ngx_http_inventory_body_too_large(ngx_http_inventory_errors_t *errs,
    size_t max)
{
    char  msg[64];

    ngx_sprintf((u_char *) msg, "must be at most %uz bytes%Z", max);
    ngx_http_inventory_error_set(errs, "body", msg);
}
