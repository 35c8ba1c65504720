/*
 * Requests that wait for the store to move on: the feed's long polls, a
 * follower's reads with Inventory-Min-Seq, and the replication stream's
 * long polls.  A waiter costs a queue entry and a timer.  Each worker with
 * waiters reads the store's position every 25 ms, and at once after its own
 * commits (a hook set here) or, on a follower, after it applied the
 * primary's transactions.  A waiter whose seq (or transaction) was passed
 * is asked to answer; it may decline and wait on.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_inventory_module.h"


#define NGX_HTTP_INVENTORY_WAIT_POLL  25      /* ms */


typedef struct {
    ngx_queue_t                 queue;
    ngx_http_request_t         *request;
    ngx_event_t                 deadline;
    uint64_t                    after;
    ngx_uint_t                  on_tx;
    ngx_http_inventory_wake_pt  wake;
    void                       *data;
    ngx_http_inventory_main_conf_t  *imcf;
} ngx_http_inventory_waiter_t;


static void ngx_http_inventory_wait_timeout(ngx_event_t *ev);
static void ngx_http_inventory_wait_poll(ngx_event_t *ev);
static void ngx_http_inventory_waiter_wake(ngx_http_inventory_waiter_t *w,
    ngx_uint_t final);
static void ngx_http_inventory_wait_cleanup(void *data);


void
ngx_http_inventory_wait_init(ngx_http_inventory_main_conf_t *imcf)
{
    ngx_queue_init(&imcf->waiters);

    ngx_http_inventory_commit_on_append(imcf->committer,
                                        ngx_http_inventory_wait_notify, imcf);
}


/*
 * Parks the request until the store's last seq (on_tx: its last
 * replication transaction) is past "after", then calls wake(r, data, 0),
 * which may decline (NGX_DECLINED) to wait on; at the deadline, or when
 * the worker exits, wake(r, data, 1), which must answer.  Returns what the
 * content handler returns.
 */

ngx_int_t
ngx_http_inventory_wait(ngx_http_request_t *r, uint64_t after,
    ngx_uint_t on_tx, ngx_msec_t wait, ngx_http_inventory_wake_pt wake,
    void *data)
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
    w->on_tx = on_tx;
    w->wake = wake;
    w->data = data;
    w->imcf = imcf;

    w->deadline.handler = ngx_http_inventory_wait_timeout;
    w->deadline.data = w;
    w->deadline.log = r->connection->log;

    ngx_queue_insert_tail(&imcf->waiters, &w->queue);
    ngx_add_timer(&w->deadline, wait);

    cln->handler = ngx_http_inventory_wait_cleanup;

    if (!imcf->wait_poll.timer_set) {
        imcf->wait_poll.handler = ngx_http_inventory_wait_poll;
        imcf->wait_poll.data = imcf;
        imcf->wait_poll.log = ngx_cycle->log;
        imcf->wait_poll.cancelable = 1;
        ngx_add_timer(&imcf->wait_poll, NGX_HTTP_INVENTORY_WAIT_POLL);
    }

    /* notice a client that goes away while it waits */
    r->read_event_handler = ngx_http_test_reading;
    r->write_event_handler = ngx_http_request_empty_handler;

    r->main->count++;

    return NGX_DONE;
}


static void
ngx_http_inventory_wait_timeout(ngx_event_t *ev)
{
    ngx_http_inventory_waiter_wake(ev->data, 1);
}


/* answers every waiter that has something new, as seen in the store */

static void
ngx_http_inventory_wait_poll(ngx_event_t *ev)
{
    ngx_http_inventory_main_conf_t  *imcf = ev->data;

    ngx_http_inventory_wait_notify(imcf);

    if (!ngx_queue_empty(&imcf->waiters) && !ngx_exiting) {
        ngx_add_timer(ev, NGX_HTTP_INVENTORY_WAIT_POLL);
    }
}


void
ngx_http_inventory_wait_notify(void *data)
{
    ngx_http_inventory_main_conf_t  *imcf = data;

    int                             rc;
    uint64_t                        last;
    ngx_queue_t                    *q, *next;
    ngx_http_inventory_waiter_t    *w;
    ngx_http_inventory_identity_t   id;

    if (ngx_queue_empty(&imcf->waiters)) {
        return;
    }

    /*
     * The store itself says what was committed, by any worker of any
     * generation (a binary upgrade runs two sets of workers, each with a
     * zone of its own), or applied from a primary.
     */
    if (ngx_http_inventory_store_read_begin(imcf->store) != 0) {
        return;
    }

    rc = ngx_http_inventory_store_identity(imcf->store, &id);
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

        last = w->on_tx ? id.tx : id.last_seq;

        if (w->after < last || ngx_exiting) {
            ngx_log_debug2(NGX_LOG_DEBUG_HTTP, w->request->connection->log,
                           0, "inventory: waking a waiter after %uL, "
                           "now %uL", w->after, last);

            ngx_http_inventory_waiter_wake(w, ngx_exiting);
        }
    }
}


static void
ngx_http_inventory_waiter_wake(ngx_http_inventory_waiter_t *w,
    ngx_uint_t final)
{
    ngx_int_t            rc;
    ngx_http_request_t  *r;

    r = w->request;

    rc = w->wake(r, w->data, final);

    if (rc == NGX_DECLINED) {
        /* nothing for it yet: look again next tick */
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
ngx_http_inventory_wait_cleanup(void *data)
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
