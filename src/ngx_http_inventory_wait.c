/*
 * Requests that wait for the store to move on: the feed's long polls, a
 * follower's reads with Inventory-Min-Seq, the replication stream's long
 * polls, and on a primary with inventory_sync_replicas the answers of
 * writes until enough followers hold them.  A waiter costs a queue entry
 * and a timer.  Each worker with waiters reads the store's position every
 * 25 ms, and at once after its own commits (a hook set here) or, on a
 * follower, after it applied the primary's transactions.  With sync
 * replicas it looks every millisecond, at the zone's count of commits and
 * the followers' acknowledgements, which cost no read of the store: a
 * write's answer, and a follower's long poll in another worker, wait for
 * nothing but that.  A waiter whose position was passed is asked to
 * answer; it may decline and wait on.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_inventory_module.h"


#define NGX_HTTP_INVENTORY_WAIT_POLL  25      /* ms */
#define NGX_HTTP_INVENTORY_WAIT_FAST  1       /* ms, with sync replicas */


typedef struct {
    ngx_queue_t                 queue;
    ngx_http_request_t         *request;
    ngx_event_t                 deadline;
    uint64_t                    after;
    ngx_uint_t                  at;
    ngx_http_inventory_wake_pt  wake;
    void                       *data;
    ngx_http_inventory_main_conf_t  *imcf;
} ngx_http_inventory_waiter_t;


static void ngx_http_inventory_wait_timeout(ngx_event_t *ev);
static void ngx_http_inventory_wait_poll(ngx_event_t *ev);
static void ngx_http_inventory_wait_pass(ngx_http_inventory_main_conf_t *imcf,
    ngx_uint_t store);
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
 * Parks the request until its position ("at": the store's last seq, its
 * last replication transaction, or the seq sync followers hold) is past
 * "after", then calls wake(r, data, 0),
 * which may decline (NGX_DECLINED) to wait on; at the deadline, or when
 * the worker exits, wake(r, data, 1), which must answer.  Returns what the
 * content handler returns.
 */

ngx_int_t
ngx_http_inventory_wait(ngx_http_request_t *r, uint64_t after,
    ngx_uint_t at, ngx_msec_t wait, ngx_http_inventory_wake_pt wake,
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
    w->at = at;
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
        ngx_add_timer(&imcf->wait_poll, imcf->sync_replicas
                                        ? NGX_HTTP_INVENTORY_WAIT_FAST
                                        : NGX_HTTP_INVENTORY_WAIT_POLL);
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


/*
 * Every 25 ms the store is read; in between, with sync replicas, only the
 * acknowledgements and, when the zone counted a commit, the store.
 */

static void
ngx_http_inventory_wait_poll(ngx_event_t *ev)
{
    ngx_http_inventory_main_conf_t  *imcf = ev->data;

    ngx_uint_t          store;
    ngx_msec_t          now;
    ngx_atomic_uint_t   n;

    now = ngx_current_msec;
    store = 1;

    if (imcf->sync_replicas && imcf->sh) {
        n = imcf->sh->transactions;
        store = (n != imcf->wait_transactions
                 || (ngx_msec_int_t) (now - imcf->wait_full_at)
                    >= NGX_HTTP_INVENTORY_WAIT_POLL);
        imcf->wait_transactions = n;
    }

    if (store) {
        imcf->wait_full_at = now;
    }

    ngx_http_inventory_wait_pass(imcf, store);

    if (!ngx_queue_empty(&imcf->waiters) && !ngx_exiting) {
        ngx_add_timer(ev, imcf->sync_replicas
                          ? NGX_HTTP_INVENTORY_WAIT_FAST
                          : NGX_HTTP_INVENTORY_WAIT_POLL);
    }
}


void
ngx_http_inventory_wait_notify(void *data)
{
    ngx_http_inventory_wait_pass(data, 1);
}


/*
 * Answers every waiter whose position was passed: the store's as read now
 * (if "store"), the acknowledgements' always.
 */

static void
ngx_http_inventory_wait_pass(ngx_http_inventory_main_conf_t *imcf,
    ngx_uint_t store)
{
    int                             rc;
    uint64_t                        last, acked;
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
    if (store) {
        if (ngx_http_inventory_store_read_begin(imcf->store) != 0) {
            store = 0;

        } else {
            rc = ngx_http_inventory_store_identity(imcf->store, &id);
            ngx_http_inventory_store_read_end(imcf->store);
            store = (rc == 0);
        }
    }

    acked = ngx_http_inventory_wait_acked(imcf);

    for (q = ngx_queue_head(&imcf->waiters);
         q != ngx_queue_sentinel(&imcf->waiters);
         q = next)
    {
        next = ngx_queue_next(q);
        w = ngx_queue_data(q, ngx_http_inventory_waiter_t, queue);

        if (w->at == NGX_HTTP_INVENTORY_AT_ACKED) {
            last = acked;

        } else if (!store) {
            continue;

        } else {
            last = (w->at == NGX_HTTP_INVENTORY_AT_TX) ? id.tx : id.last_seq;
        }

        if (w->after < last || ngx_exiting) {
            ngx_log_debug2(NGX_LOG_DEBUG_HTTP, w->request->connection->log,
                           0, "inventory: waking a waiter after %uL, "
                           "now %uL", w->after, last);

            ngx_http_inventory_waiter_wake(w, ngx_exiting);
        }
    }
}


/*
 * The highest seq that inventory_sync_replicas followers all hold: the
 * N-th highest of theirs.  Without sync replicas, any: the answers of
 * writes wait for nothing.
 */

uint64_t
ngx_http_inventory_wait_acked(ngx_http_inventory_main_conf_t *imcf)
{
    uint64_t    top[NGX_HTTP_INVENTORY_PEERS], seq;
    ngx_uint_t  i, j, n, want;

    want = imcf->sync_replicas;

    if (want == 0) {
        return (uint64_t) -1;
    }

    if (imcf->sh == NULL) {
        return 0;
    }

    /* the "want" highest, in descending order */
    n = 0;

    for (i = 0; i < NGX_HTTP_INVENTORY_PEERS; i++) {
        seq = imcf->sh->repl.peers[i].seq;

        for (j = n; j > 0 && top[j - 1] < seq; j--) {
            if (j < want) {
                top[j] = top[j - 1];
            }
        }

        if (j < want) {
            top[j] = seq;

            if (n < want) {
                n++;
            }
        }
    }

    return (n == want) ? top[want - 1] : 0;
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
