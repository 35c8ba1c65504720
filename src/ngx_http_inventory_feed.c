/*
 * The global event feed, GET {prefix}events?after=SEQ&limit=N&wait=S, with
 * long polling: a request that finds nothing new waits (wait.c) until an
 * event is committed by any worker, or applied from the primary, or its
 * time is up.  With reference=REF, the events that name that reference,
 * from their index (no long poll).
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_inventory_module.h"


#define NGX_HTTP_INVENTORY_FEED_LIMIT      100
#define NGX_HTTP_INVENTORY_FEED_LIMIT_MAX  1000
#define NGX_HTTP_INVENTORY_FEED_WAIT_MAX   30


typedef struct {
    uint64_t                    after;
    size_t                      limit;
} ngx_http_inventory_feed_wait_t;


typedef struct {
    ngx_http_inventory_page_t   page;
    uint64_t                    last;
} ngx_http_inventory_feed_out_t;


static ngx_int_t ngx_http_inventory_feed_respond(ngx_http_request_t *r,
    uint64_t after, size_t limit, ngx_uint_t final, ngx_uint_t *empty);
static int ngx_http_inventory_feed_event(void *data,
    const ngx_http_inventory_event_t *ev);
static ngx_int_t ngx_http_inventory_feed_wake(ngx_http_request_t *r,
    void *data, ngx_uint_t final);
static ngx_int_t ngx_http_inventory_feed_reference(ngx_http_request_t *r,
    ngx_str_t *reference, uint64_t after, size_t limit);


ngx_int_t
ngx_http_inventory_get_events(ngx_http_request_t *r,
    ngx_http_inventory_ctx_t *ctx)
{
    uint64_t                         after, limit, wait;
    ngx_int_t                        rc, has_ref;
    ngx_str_t                        ref;
    ngx_uint_t                       empty;
    ngx_http_inventory_errors_t      errs;
    ngx_http_inventory_feed_wait_t  *fw;

    errs.n = 0;
    after = 0;
    limit = NGX_HTTP_INVENTORY_FEED_LIMIT;
    wait = 0;

    ngx_http_inventory_arg_uint(r, "after", 0, NGX_HTTP_INVENTORY_QTY_MAX,
                                &after, &errs);
    ngx_http_inventory_arg_uint(r, "limit", 1,
                                NGX_HTTP_INVENTORY_FEED_LIMIT_MAX, &limit,
                                &errs);
    ngx_http_inventory_arg_uint(r, "wait", 0,
                                NGX_HTTP_INVENTORY_FEED_WAIT_MAX, &wait,
                                &errs);

    has_ref = ngx_http_inventory_arg(r, "reference", &ref);

    if (has_ref == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (has_ref == NGX_OK
        && !ngx_http_inventory_reference_valid((char *) ref.data, ref.len))
    {
        ngx_http_inventory_error_set(&errs, "reference",
                                     "must be 1 to 255 visible ASCII "
                                     "characters");

    } else if (has_ref == NGX_OK && wait) {
        ngx_http_inventory_error_set(&errs, "wait",
                                     "is not served with reference");
    }

    if (errs.n) {
        return ngx_http_inventory_reject(r,
                                    NGX_HTTP_INVENTORY_P_INVALID_REQUEST,
                                    "the query is invalid", &errs);
    }

    if (has_ref == NGX_OK) {
        return ngx_http_inventory_feed_reference(r, &ref, after,
                                                 (size_t) limit);
    }

    rc = ngx_http_inventory_feed_respond(r, after, (size_t) limit, wait == 0,
                                         &empty);

    if (rc != NGX_DECLINED) {
        return rc;
    }

    fw = ngx_palloc(r->pool, sizeof(ngx_http_inventory_feed_wait_t));
    if (fw == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    fw->after = after;
    fw->limit = (size_t) limit;

    return ngx_http_inventory_wait(r, after, 0, (ngx_msec_t) wait * 1000,
                                   ngx_http_inventory_feed_wake, fw);
}


/*
 * Sends the events after "after".  With final unset and nothing to send,
 * sends nothing and returns NGX_DECLINED: the request may wait.
 */

static ngx_int_t
ngx_http_inventory_feed_respond(ngx_http_request_t *r, uint64_t after,
    size_t limit, ngx_uint_t final, ngx_uint_t *empty)
{
    int                              rc;
    uint64_t                         last_seq;
    ngx_http_inventory_buf_t         body;
    ngx_http_inventory_feed_out_t    out;
    ngx_http_inventory_main_conf_t  *imcf;

    imcf = ngx_http_get_module_main_conf(r, ngx_http_inventory_module);

    rc = ngx_http_inventory_read_begin(r, imcf->store);
    if (rc != 0) {
        return ngx_http_inventory_read_failed(r, rc);
    }

    rc = ngx_http_inventory_store_last_seq(imcf->store, &last_seq);

    if (rc == 0 && last_seq <= after && !final) {
        ngx_http_inventory_store_read_end(imcf->store);
        *empty = 1;
        return NGX_DECLINED;
    }

    ngx_http_inventory_buf_init(&body, ngx_http_inventory_palloc, r->pool);
    out.last = last_seq;

    if (rc == 0) {
        ngx_http_inventory_page_open(&out.page, &body, "events");

        rc = ngx_http_inventory_store_log(imcf->store, after, limit,
                                          ngx_http_inventory_feed_event,
                                          &out);

        /* where to go on from: the last event sent, or the log's end */
        *empty = (out.page.count == 0);
        ngx_http_inventory_page_close_int(&out.page, "last_seq", 1,
                                          out.last);
    }

    ngx_http_inventory_store_read_end(imcf->store);

    if (rc != 0) {
        return ngx_http_inventory_read_failed(r, rc);
    }

    return ngx_http_inventory_send_json(r, NGX_HTTP_OK, &body, 0);
}


static int
ngx_http_inventory_feed_event(void *data, const ngx_http_inventory_event_t *ev)
{
    ngx_http_inventory_feed_out_t  *out = data;

    ngx_http_inventory_page_event(&out->page, ev);
    out->last = ev->seq;

    return 0;
}


/*
 * The events of a reference after "after": last_seq is where to go on
 * from, the last event sent while more follow, else the log's end.
 */

static ngx_int_t
ngx_http_inventory_feed_reference(ngx_http_request_t *r, ngx_str_t *reference,
    uint64_t after, size_t limit)
{
    int                              rc, more;
    uint64_t                         last_seq;
    ngx_http_inventory_str_t         ref;
    ngx_http_inventory_buf_t         body;
    ngx_http_inventory_feed_out_t    out;
    ngx_http_inventory_main_conf_t  *imcf;

    imcf = ngx_http_get_module_main_conf(r, ngx_http_inventory_module);

    rc = ngx_http_inventory_read_begin(r, imcf->store);
    if (rc != 0) {
        return ngx_http_inventory_read_failed(r, rc);
    }

    ref.data = (const char *) reference->data;
    ref.len = reference->len;

    ngx_http_inventory_buf_init(&body, ngx_http_inventory_palloc, r->pool);
    ngx_http_inventory_page_open(&out.page, &body, "events");
    out.last = after;
    more = 0;

    rc = ngx_http_inventory_store_last_seq(imcf->store, &last_seq);

    if (rc == 0) {
        rc = ngx_http_inventory_store_reference_events(imcf->store, ref,
                                             after, limit,
                                             ngx_http_inventory_feed_event,
                                             &out, &more);
    }

    if (rc == 0) {
        ngx_http_inventory_page_close_int(&out.page, "last_seq", 1,
                                          more ? out.last
                                               : ngx_max(last_seq, after));
    }

    ngx_http_inventory_store_read_end(imcf->store);

    if (rc != 0) {
        return ngx_http_inventory_read_failed(r, rc);
    }

    return ngx_http_inventory_send_json(r, NGX_HTTP_OK, &body, 0);
}


static ngx_int_t
ngx_http_inventory_feed_wake(ngx_http_request_t *r, void *data,
    ngx_uint_t final)
{
    ngx_http_inventory_feed_wait_t  *fw = data;

    ngx_uint_t  empty;

    return ngx_http_inventory_feed_respond(r, fw->after, fw->limit, final,
                                           &empty);
}
