/*
 * Group commit off the event loop.  Every write of a worker becomes a job in
 * the worker's queue; while one batch is being committed on a thread of
 * nginx's thread pool, the jobs that arrive wait, and go together into the
 * next transaction.  A durable commit (fdatasync) never stalls the event
 * loop, and its cost is shared by every command of the batch.  Each job's
 * completion runs back on the event loop, after its transaction is durable.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_inventory_module.h"


#define NGX_HTTP_INVENTORY_GUARD      60000    /* ms */


struct ngx_http_inventory_committer_s {
    ngx_queue_t                 pending;
    ngx_http_inventory_job_t   *batch[NGX_HTTP_INVENTORY_BATCH_MAX];
    ngx_http_inventory_cmd_t   *cmds[NGX_HTTP_INVENTORY_BATCH_MAX];
    size_t                      n;
    uint64_t                    now;
    int                         rc;
    ngx_uint_t                  busy;
    ngx_event_t                 guard;
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
static void ngx_http_inventory_commit_done(ngx_event_t *ev);
static void ngx_http_inventory_commit_finish(
    ngx_http_inventory_committer_t *cm);
static void ngx_http_inventory_commit_guard(ngx_event_t *ev);


ngx_int_t
ngx_http_inventory_commit_init(ngx_cycle_t *cycle,
    ngx_http_inventory_main_conf_t *imcf)
{
    ngx_http_inventory_committer_t  *cm;

    cm = ngx_pcalloc(cycle->pool, sizeof(ngx_http_inventory_committer_t));
    if (cm == NULL) {
        return NGX_ERROR;
    }

    ngx_queue_init(&cm->pending);
    cm->store = &imcf->store;

    cm->guard.handler = ngx_http_inventory_commit_guard;
    cm->guard.data = cm;
    cm->guard.log = cycle->log;
    cm->imcf = imcf;

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


void
ngx_http_inventory_commit_submit(ngx_http_inventory_committer_t *cm,
    ngx_http_inventory_job_t *job)
{
    ngx_queue_insert_tail(&cm->pending, &job->queue);

    if (!cm->busy) {
        ngx_http_inventory_commit_start(cm);
    }
}


/* takes what waits into one batch and hands it to a thread */

static void
ngx_http_inventory_commit_start(ngx_http_inventory_committer_t *cm)
{
    ngx_queue_t               *q;
    ngx_http_inventory_job_t  *job;

    cm->n = 0;

    while (!ngx_queue_empty(&cm->pending) && cm->n < cm->imcf->batch_max)
    {
        q = ngx_queue_head(&cm->pending);
        job = ngx_queue_data(q, ngx_http_inventory_job_t, queue);

        ngx_queue_remove(q);

        cm->batch[cm->n] = job;
        cm->cmds[cm->n] = job->cmd;
        cm->n++;
    }

    if (cm->n == 0) {
        return;
    }

    cm->busy = 1;
    cm->now = ngx_http_inventory_now();

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
 * On a pool thread: one write transaction for the whole batch.  Only the
 * store runs here; it touches no nginx pool and logs nothing.
 */

static void
ngx_http_inventory_commit_run(void *data, ngx_log_t *log)
{
    ngx_http_inventory_committer_t  *cm = data;

    cm->rc = ngx_http_inventory_store_execute(cm->store, cm->cmds, cm->n,
                                              cm->now);
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
    size_t                       i, n, b;
    ngx_http_inventory_job_t    *job;
    ngx_http_inventory_shctx_t  *sh;

    n = cm->n;
    cm->busy = 0;
    sh = cm->imcf->sh;

    if (cm->rc != 0) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "inventory: a write transaction of %uz commands "
                      "failed: %s", n, mdb_strerror(cm->rc));

    } else if (sh) {
        (void) ngx_atomic_fetch_add(&sh->transactions, 1);
        (void) ngx_atomic_fetch_add(&sh->commands, n);

        /* batch sizes 1, 2-3, 4-7, ... 128-256 */
        for (b = 0; b < 7 && (n >> (b + 1)); b++) { /* void */ }
        (void) ngx_atomic_fetch_add(&sh->batches[b], 1);
    }

    for (i = 0; i < n; i++) {
        job = cm->batch[i];
        job->rc = cm->rc;
        job->batch_size = n;
        job->done(job);
    }

    if (!ngx_queue_empty(&cm->pending)) {
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
