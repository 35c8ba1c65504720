/*
 * The global event feed, GET {prefix}events?after=SEQ&limit=N&wait=S, with
 * long polling: a request that finds nothing new waits, costing a queue
 * entry and a timer, until an event is committed by any worker or its time
 * is up.  Each worker with waiters reads the store's last seq every 25 ms,
 * and at once after its own writes: the group commit tells the feed when a
 * batch appended events (a hook set here, at worker start).
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_inventory_module.h"


#define NGX_HTTP_INVENTORY_FEED_LIMIT      100
#define NGX_HTTP_INVENTORY_FEED_LIMIT_MAX  1000
#define NGX_HTTP_INVENTORY_FEED_WAIT_MAX   30
#define NGX_HTTP_INVENTORY_FEED_POLL       25      /* ms */


typedef struct {
    ngx_queue_t                 queue;
    ngx_http_request_t         *request;
    ngx_event_t                 deadline;
    uint64_t                    after;
    size_t                      limit;
    ngx_http_inventory_main_conf_t  *imcf;
} ngx_http_inventory_waiter_t;


typedef struct {
    ngx_http_inventory_page_t   page;
    uint64_t                    last;
} ngx_http_inventory_feed_out_t;


static ngx_int_t ngx_http_inventory_feed_respond(ngx_http_request_t *r,
    uint64_t after, size_t limit, ngx_uint_t final, ngx_uint_t *empty);
static int ngx_http_inventory_feed_event(void *data,
    const ngx_http_inventory_event_t *ev);
static ngx_int_t ngx_http_inventory_feed_wait(ngx_http_request_t *r,
    uint64_t after, size_t limit, ngx_msec_t wait);
static void ngx_http_inventory_feed_timeout(ngx_event_t *ev);
static void ngx_http_inventory_feed_poll(ngx_event_t *ev);
static void ngx_http_inventory_feed_notify(void *data);
static void ngx_http_inventory_feed_wake(ngx_http_inventory_waiter_t *w,
    ngx_uint_t final);
static void ngx_http_inventory_feed_cleanup(void *data);


void
ngx_http_inventory_feed_init(ngx_http_inventory_main_conf_t *imcf)
{
    ngx_queue_init(&imcf->waiters);

    ngx_http_inventory_commit_on_append(imcf->committer,
                                        ngx_http_inventory_feed_notify, imcf);
}


ngx_int_t
ngx_http_inventory_get_events(ngx_http_request_t *r,
    ngx_http_inventory_ctx_t *ctx)
{
    uint64_t                      after, limit, wait;
    ngx_int_t                     rc;
    ngx_uint_t                    empty;
    ngx_http_inventory_errors_t   errs;

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

    if (errs.n) {
        return ngx_http_inventory_reject(r,
                                    NGX_HTTP_INVENTORY_P_INVALID_REQUEST,
                                    "the query is invalid", &errs);
    }

    rc = ngx_http_inventory_feed_respond(r, after, (size_t) limit, wait == 0,
                                         &empty);

    if (rc != NGX_DECLINED) {
        return rc;
    }

    return ngx_http_inventory_feed_wait(r, after, (size_t) limit,
                                        (ngx_msec_t) wait * 1000);
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

    rc = ngx_http_inventory_store_read_begin(imcf->store);
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


static ngx_int_t
ngx_http_inventory_feed_wait(ngx_http_request_t *r, uint64_t after,
    size_t limit, ngx_msec_t wait)
{
    ngx_pool_cleanup_t               *cln;
    ngx_http_inventory_waiter_t      *w;
    ngx_http_inventory_main_conf_t   *imcf;

    imcf = ngx_http_get_module_main_conf(r, ngx_http_inventory_module);

    cln = ngx_pool_cleanup_add(r->pool, sizeof(ngx_http_inventory_waiter_t));
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    w = cln->data;
    ngx_memzero(w, sizeof(ngx_http_inventory_waiter_t));

    w->request = r;
    w->after = after;
    w->limit = limit;
    w->imcf = imcf;

    w->deadline.handler = ngx_http_inventory_feed_timeout;
    w->deadline.data = w;
    w->deadline.log = r->connection->log;

    ngx_queue_insert_tail(&imcf->waiters, &w->queue);
    ngx_add_timer(&w->deadline, wait);

    cln->handler = ngx_http_inventory_feed_cleanup;

    if (!imcf->feed_poll.timer_set) {
        imcf->feed_poll.handler = ngx_http_inventory_feed_poll;
        imcf->feed_poll.data = imcf;
        imcf->feed_poll.log = ngx_cycle->log;
        imcf->feed_poll.cancelable = 1;
        ngx_add_timer(&imcf->feed_poll, NGX_HTTP_INVENTORY_FEED_POLL);
    }

    /* notice a client that goes away while it waits */
    r->read_event_handler = ngx_http_test_reading;
    r->write_event_handler = ngx_http_request_empty_handler;

    r->main->count++;

    return NGX_DONE;
}


static void
ngx_http_inventory_feed_timeout(ngx_event_t *ev)
{
    ngx_http_inventory_feed_wake(ev->data, 1);
}


/* answers every waiter that has something new, as seen in the zone */

static void
ngx_http_inventory_feed_poll(ngx_event_t *ev)
{
    ngx_http_inventory_main_conf_t  *imcf = ev->data;

    ngx_http_inventory_feed_notify(imcf);

    if (!ngx_queue_empty(&imcf->waiters) && !ngx_exiting) {
        ngx_add_timer(ev, NGX_HTTP_INVENTORY_FEED_POLL);
    }
}


static void
ngx_http_inventory_feed_notify(void *data)
{
    ngx_http_inventory_main_conf_t  *imcf = data;

    int                           rc;
    uint64_t                      last;
    ngx_queue_t                  *q, *next;
    ngx_http_inventory_waiter_t  *w;

    if (ngx_queue_empty(&imcf->waiters)) {
        return;
    }

    /*
     * The store itself says what was committed, by any worker of any
     * generation (a binary upgrade runs two sets of workers, each with a
     * zone of its own): a read transaction's renewal and one cursor step.
     */
    if (ngx_http_inventory_store_read_begin(imcf->store) != 0) {
        return;
    }

    rc = ngx_http_inventory_store_last_seq(imcf->store, &last);
    ngx_http_inventory_store_read_end(imcf->store);

    if (rc != 0) {
        return;
    }

    for (q = ngx_queue_head(&imcf->waiters);
         q != ngx_queue_sentinel(&imcf->waiters);
         q = next)
    {
        next = ngx_queue_next(q);
        w = ngx_queue_data(q, ngx_http_inventory_waiter_t, queue);

        if (w->after < last || ngx_exiting) {
            ngx_log_debug2(NGX_LOG_DEBUG_HTTP, w->request->connection->log,
                           0, "inventory feed: waking a waiter after %uL, "
                           "last seq %uL", w->after, last);

            ngx_http_inventory_feed_wake(w, ngx_exiting);
        }
    }
}


static void
ngx_http_inventory_feed_wake(ngx_http_inventory_waiter_t *w,
    ngx_uint_t final)
{
    ngx_int_t            rc;
    ngx_uint_t           empty;
    ngx_http_request_t  *r;

    r = w->request;

    rc = ngx_http_inventory_feed_respond(r, w->after, w->limit, final,
                                         &empty);

    if (rc == NGX_DECLINED) {
        /* nothing readable for it yet: look again next tick */
        return;
    }

    ngx_queue_remove(&w->queue);
    w->request = NULL;

    if (w->deadline.timer_set) {
        ngx_del_timer(&w->deadline);
    }

    ngx_http_finalize_request(r, rc);
}


static void
ngx_http_inventory_feed_cleanup(void *data)
{
    ngx_http_inventory_waiter_t  *w = data;

    if (w->request == NULL) {
        return;
    }

    ngx_queue_remove(&w->queue);

    if (w->deadline.timer_set) {
        ngx_del_timer(&w->deadline);
    }
}
