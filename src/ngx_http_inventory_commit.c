/*
 * Group commit off the event loop.  Every write of a worker becomes a job in
 * the worker's inbox.  A task on nginx's thread pool first waits for LMDB's
 * write lock (another worker may be committing), then takes every job the
 * inbox holds by then, and commits them in one transaction: a durable commit
 * (fdatasync) never stalls the event loop, and its cost is shared by all the
 * commands that arrived while the previous one ran.  Each job's completion
 * runs back on the event loop, after its transaction is durable.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_inventory_module.h"


#define NGX_HTTP_INVENTORY_GUARD      60000    /* ms */


struct ngx_http_inventory_committer_s {
#if (NGX_THREADS)
    ngx_thread_mutex_t          mutex;         /* guards inbox */
#endif
    ngx_queue_t                 inbox;
    ngx_http_inventory_job_t   *batch[NGX_HTTP_INVENTORY_BATCH_MAX];
    ngx_http_inventory_cmd_t   *cmds[NGX_HTTP_INVENTORY_BATCH_MAX];
    size_t                      n;
    size_t                      appended;
    int                         rc;
    ngx_uint_t                  busy;
    ngx_event_t                 guard;
    ngx_http_inventory_commit_pt  appended_handler;
    void                       *appended_data;
    ngx_http_inventory_store_t *store;
    ngx_http_inventory_main_conf_t  *imcf;
#if (NGX_THREADS)
    ngx_thread_pool_t          *pool;
    ngx_thread_task_t          *task;
#endif
};


static void ngx_http_inventory_commit_start(
    ngx_http_inventory_committer_t *cm);
static void ngx_http_inventory_commit_run(void *data, ngx_log_t *log);
static void ngx_http_inventory_commit_fill(
    ngx_http_inventory_store_batch_t *b);
static size_t ngx_http_inventory_commit_take(
    ngx_http_inventory_committer_t *cm);
static ngx_uint_t ngx_http_inventory_commit_waiting(
    ngx_http_inventory_committer_t *cm);
static void ngx_http_inventory_commit_count(
    ngx_http_inventory_committer_t *cm);
static void ngx_http_inventory_commit_done(ngx_event_t *ev);
static void ngx_http_inventory_commit_finish(
    ngx_http_inventory_committer_t *cm);
static void ngx_http_inventory_commit_guard(ngx_event_t *ev);
static void ngx_http_inventory_commit_lock(ngx_http_inventory_committer_t *cm);
static void ngx_http_inventory_commit_unlock(
    ngx_http_inventory_committer_t *cm);


ngx_int_t
ngx_http_inventory_commit_init(ngx_cycle_t *cycle,
    ngx_http_inventory_main_conf_t *imcf)
{
    ngx_http_inventory_committer_t  *cm;

    cm = ngx_pcalloc(cycle->pool, sizeof(ngx_http_inventory_committer_t));
    if (cm == NULL) {
        return NGX_ERROR;
    }

#if (NGX_THREADS)
    if (ngx_thread_mutex_create(&cm->mutex, cycle->log) != NGX_OK) {
        return NGX_ERROR;
    }
#endif

    ngx_queue_init(&cm->inbox);
    cm->store = imcf->store;
    cm->imcf = imcf;

    cm->guard.handler = ngx_http_inventory_commit_guard;
    cm->guard.data = cm;
    cm->guard.log = cycle->log;

#if (NGX_THREADS)
    cm->pool = ngx_thread_pool_get(cycle, &imcf->thread_pool);

    if (cm->pool == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "inventory: thread pool \"%V\" not found",
                      &imcf->thread_pool);
        return NGX_ERROR;
    }

    cm->task = ngx_thread_task_alloc(cycle->pool, 0);
    if (cm->task == NULL) {
        return NGX_ERROR;
    }

    cm->task->ctx = cm;
    cm->task->handler = ngx_http_inventory_commit_run;
    cm->task->event.handler = ngx_http_inventory_commit_done;
    cm->task->event.data = cm;
    cm->task->event.log = cycle->log;
#endif

    imcf->committer = cm;

    return NGX_OK;
}


/*
 * Who is told, on the event loop, that a batch appended events: the feed's
 * long-polling waiters.  The commit path does not know its listeners.
 */

void
ngx_http_inventory_commit_on_append(ngx_http_inventory_committer_t *cm,
    ngx_http_inventory_commit_pt handler, void *data)
{
    cm->appended_handler = handler;
    cm->appended_data = data;
}


void
ngx_http_inventory_commit_submit(ngx_http_inventory_committer_t *cm,
    ngx_http_inventory_job_t *job)
{
    ngx_http_inventory_commit_lock(cm);
    ngx_queue_insert_tail(&cm->inbox, &job->queue);
    ngx_http_inventory_commit_unlock(cm);

    if (!cm->busy) {
        ngx_http_inventory_commit_start(cm);
    }
}


static void
ngx_http_inventory_commit_start(ngx_http_inventory_committer_t *cm)
{
    cm->busy = 1;

    /*
     * A worker that is shutting down waits for its timers, not for its
     * requests: this one keeps it alive until every commit is answered.
     */
    if (!cm->guard.timer_set) {
        ngx_add_timer(&cm->guard, NGX_HTTP_INVENTORY_GUARD);
    }

#if (NGX_THREADS)
    if (ngx_thread_task_post(cm->pool, cm->task) == NGX_OK) {
        return;
    }

    ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0,
                  "inventory: the thread pool refused a task, "
                  "committing on the event loop");
#endif

    ngx_http_inventory_commit_run(cm, ngx_cycle->log);
    ngx_http_inventory_commit_finish(cm);
}


/*
 * On a pool thread: take the write lock, then what the inbox holds, and
 * commit it in one transaction.  Only the store and the zone's atomic
 * counters are touched here: no nginx pool, no log.
 */

static void
ngx_http_inventory_commit_run(void *data, ngx_log_t *log)
{
    ngx_http_inventory_committer_t  *cm = data;

    ngx_http_inventory_store_batch_t  b;

    b.cmds = cm->cmds;
    b.n = 0;
    b.now = 0;
    b.fill = ngx_http_inventory_commit_fill;
    b.data = cm;

    cm->rc = ngx_http_inventory_store_write(cm->store, &b);

    ngx_http_inventory_commit_count(cm);
}


/* called by the store once the write lock is held */

static void
ngx_http_inventory_commit_fill(ngx_http_inventory_store_batch_t *b)
{
    ngx_http_inventory_committer_t  *cm = b->data;

    /* whatever arrived while another writer held the lock joins in */
    cm->n = ngx_http_inventory_commit_take(cm);

    b->n = cm->n;
    b->now = ngx_http_inventory_clock_now();
}


/*
 * Still on the pool thread, as soon as the transaction is settled: another
 * worker may show its effects at once, and the counters must not lag what
 * any client can read.  Only atomics of the zone are touched.
 */

static void
ngx_http_inventory_commit_count(ngx_http_inventory_committer_t *cm)
{
    size_t                       i, wrote, expired, replays;
    ngx_http_inventory_cmd_t    *cmd;
    ngx_http_inventory_shctx_t  *sh;

    cm->appended = 0;
    sh = cm->imcf->sh;

    if (sh == NULL) {
        return;
    }

    if (cm->rc != 0) {
        (void) ngx_atomic_fetch_add(&sh->write_errors, 1);

        /* a full map is not a broken store: health reports it apart */
        if (cm->rc != NGX_HTTP_INVENTORY_STORE_FULL) {
            sh->store_error = (ngx_atomic_uint_t) (uint32_t) cm->rc;
        }

        return;
    }

    if (cm->n == 0) {
        return;
    }

    /* what the transaction wrote: LMDB commits one with no change unwritten */
    wrote = 0;
    expired = 0;
    replays = 0;

    for (i = 0; i < cm->n; i++) {
        cmd = cm->cmds[i];
        cm->appended += cmd->appended;

        if (cmd->appended
            || (cmd->type == NGX_HTTP_INVENTORY_CMD_PURGE && cmd->available))
        {
            wrote = 1;
        }

        if (cmd->outcome == NGX_HTTP_INVENTORY_REPLAYED) {
            replays++;

        } else if (cmd->type == NGX_HTTP_INVENTORY_CMD_EXPIRE
                   && cmd->outcome == NGX_HTTP_INVENTORY_OK)
        {
            expired++;
        }
    }

    /* only a transaction that reached the disk shows the store works */
    if (wrote) {
        sh->store_error = 0;
    }

    (void) ngx_atomic_fetch_add(&sh->transactions, 1);
    (void) ngx_atomic_fetch_add(&sh->commands, cm->n);
    (void) ngx_atomic_fetch_add(&sh->events, cm->appended);
    (void) ngx_atomic_fetch_add(&sh->expired, expired);
    (void) ngx_atomic_fetch_add(&sh->replays, replays);

    /* batch sizes 1, 2-3, 4-7, ... 128-256 */
    for (i = 0; i < 7 && (cm->n >> (i + 1)); i++) { /* void */ }
    (void) ngx_atomic_fetch_add(&sh->batches[i], 1);
}


static size_t
ngx_http_inventory_commit_take(ngx_http_inventory_committer_t *cm)
{
    size_t                     n;
    ngx_queue_t               *q;
    ngx_http_inventory_job_t  *job;

    n = 0;

    ngx_http_inventory_commit_lock(cm);

    while (!ngx_queue_empty(&cm->inbox) && n < cm->imcf->batch_max) {
        q = ngx_queue_head(&cm->inbox);
        job = ngx_queue_data(q, ngx_http_inventory_job_t, queue);

        ngx_queue_remove(q);

        cm->batch[n] = job;
        cm->cmds[n] = job->cmd;
        n++;
    }

    ngx_http_inventory_commit_unlock(cm);

    return n;
}


static ngx_uint_t
ngx_http_inventory_commit_waiting(ngx_http_inventory_committer_t *cm)
{
    ngx_uint_t  waiting;

    ngx_http_inventory_commit_lock(cm);
    waiting = !ngx_queue_empty(&cm->inbox);
    ngx_http_inventory_commit_unlock(cm);

    return waiting;
}


static void
ngx_http_inventory_commit_done(ngx_event_t *ev)
{
    ngx_http_inventory_commit_finish(ev->data);
}


/* back on the event loop: answer every job, then commit what waited */

static void
ngx_http_inventory_commit_finish(ngx_http_inventory_committer_t *cm)
{
    size_t                     i, n;
    ngx_http_inventory_job_t  *job;

    n = cm->n;
    cm->n = 0;

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "inventory commit: %uz commands, %uz events, rc: %d",
                   n, cm->appended, cm->rc);

    if (cm->rc != 0) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "inventory: a write transaction of %uz commands "
                      "failed: %s", n,
                      ngx_http_inventory_store_strerror(cm->rc));
    }

    for (i = 0; i < n; i++) {
        job = cm->batch[i];
        job->rc = cm->rc;

        /* the command may go with its request */
        job->done(job);
    }

    /*
     * Busy until every job is answered: a write submitted meanwhile waits
     * in the inbox, and the batch is not taken again while it is read.
     */
    cm->busy = 0;

    /* once per batch: waiters of the feed read the store's last seq */
    if (cm->appended && cm->appended_handler) {
        cm->appended_handler(cm->appended_data);
    }

    if (ngx_http_inventory_commit_waiting(cm)) {
        ngx_http_inventory_commit_start(cm);
    }

    if (!cm->busy && cm->guard.timer_set) {
        ngx_del_timer(&cm->guard);
    }
}


static void
ngx_http_inventory_commit_guard(ngx_event_t *ev)
{
    ngx_http_inventory_committer_t  *cm = ev->data;

    if (cm->busy) {
        ngx_log_error(NGX_LOG_WARN, ev->log, 0,
                      "inventory: a commit has taken over %M ms",
                      (ngx_msec_t) NGX_HTTP_INVENTORY_GUARD);
        ngx_add_timer(ev, NGX_HTTP_INVENTORY_GUARD);
    }
}


/* the inbox is shared by the event loop and a pool thread */

static void
ngx_http_inventory_commit_lock(ngx_http_inventory_committer_t *cm)
{
#if (NGX_THREADS)
    (void) ngx_thread_mutex_lock(&cm->mutex, ngx_cycle->log);
#endif
}


static void
ngx_http_inventory_commit_unlock(ngx_http_inventory_committer_t *cm)
{
#if (NGX_THREADS)
    (void) ngx_thread_mutex_unlock(&cm->mutex, ngx_cycle->log);
#endif
}
