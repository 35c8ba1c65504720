/*
 * Group commit across all workers, off the event loop.  LMDB has one write
 * lock for the machine, and a durable commit holds it through two syncs: if
 * every worker committed its own batch, each batch would wait behind the
 * others'.  So every write is packed into a slot of the shared zone, and
 * the pool thread of whichever worker gets the write lock takes every
 * worker's waiting slots into its transaction: one transaction, one pair of
 * syncs, for the machine.
 *
 * Each worker runs up to two tasks on nginx's thread pool:
 *   * a lead task, while the worker has slots waiting: it waits for the
 *     write lock, takes every waiting slot (its own and the others'), and
 *     commits them; it writes each result (status, ETag, body) into its
 *     slot and wakes the waiters (a futex word in the zone);
 *   * a watch task, while the worker has slots unanswered: it waits on that
 *     futex until one of them is settled, by any worker's lead task.
 * Each completion runs on the worker's event loop, which answers its own
 * requests from their slots.
 *
 * A worker killed with -9 is a leader that dies mid-batch, or an owner
 * whose slots are never collected.  A watcher that finds its slot taken by
 * a dead process marks the zone for recovery; the next leader, holding the
 * write lock, settles the dead batch from the batch token its transaction
 * would have left in the store: not committed, or safe to run again (an
 * Idempotency-Key replays its stored answer), it is queued again;
 * otherwise it is answered 503 (applied or not, unknown).  Slots of a dead
 * owner are dropped unrun if they waited over a second, and freed.
 *
 * A write that finds no room in the zone commits in its worker's own batch,
 * as a local job of the worker's lead task.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_inventory_commit.h"
#include "ngx_http_inventory_proc.h"


#define NGX_HTTP_INVENTORY_GUARD      60000    /* ms */


static void ngx_http_inventory_commit_lead(ngx_http_inventory_committer_t *cm);
static void ngx_http_inventory_commit_lead_run(void *data, ngx_log_t *log);
static void ngx_http_inventory_commit_fill(
    ngx_http_inventory_store_batch_t *b);
static void ngx_http_inventory_commit_count(
    ngx_http_inventory_committer_t *cm);
static void ngx_http_inventory_commit_lead_done(ngx_event_t *ev);
static void ngx_http_inventory_commit_watch(
    ngx_http_inventory_committer_t *cm);
static void ngx_http_inventory_commit_watch_done(ngx_event_t *ev);
static void ngx_http_inventory_commit_idle(ngx_http_inventory_committer_t *cm);
static void ngx_http_inventory_commit_guard(ngx_event_t *ev);
static void ngx_http_inventory_commit_retry(ngx_event_t *ev);
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

    ngx_queue_init(&cm->local);
    ngx_queue_init(&cm->waiting);
    cm->store = imcf->store;
    cm->imcf = imcf;
    cm->pid = ngx_pid;
    cm->start = ngx_http_inventory_proc_start(ngx_pid);

    cm->guard.handler = ngx_http_inventory_commit_guard;
    cm->guard.data = cm;
    cm->guard.log = cycle->log;

    cm->retry.handler = ngx_http_inventory_commit_retry;
    cm->retry.data = cm;
    cm->retry.log = cycle->log;

#if (NGX_THREADS)
    /* waiting on another worker needs a thread: without, each on its own */
    cm->csh = imcf->sh ? imcf->sh->commit : NULL;

    cm->pool = ngx_thread_pool_get(cycle, &imcf->thread_pool);

    if (cm->pool == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "inventory: thread pool \"%V\" not found",
                      &imcf->thread_pool);
        return NGX_ERROR;
    }

    cm->lead_task = ngx_thread_task_alloc(cycle->pool, 0);
    cm->watch_task = ngx_thread_task_alloc(cycle->pool, 0);

    if (cm->lead_task == NULL || cm->watch_task == NULL) {
        return NGX_ERROR;
    }

    cm->lead_task->ctx = cm;
    cm->lead_task->handler = ngx_http_inventory_commit_lead_run;
    cm->lead_task->event.handler = ngx_http_inventory_commit_lead_done;
    cm->lead_task->event.data = cm;
    cm->lead_task->event.log = cycle->log;

    cm->watch_task->ctx = cm;
    cm->watch_task->handler = ngx_http_inventory_commit_watch_run;
    cm->watch_task->event.handler = ngx_http_inventory_commit_watch_done;
    cm->watch_task->event.data = cm;
    cm->watch_task->event.log = cycle->log;
#endif

    cm->unpacked = ngx_alloc(NGX_HTTP_INVENTORY_BATCH_MAX
                             * sizeof(ngx_http_inventory_cmd_t), cycle->log);
    cm->queued = ngx_palloc(cycle->pool, NGX_HTTP_INVENTORY_SLOTS
                                         * sizeof(ngx_http_inventory_queued_t));
    cm->watch = ngx_palloc(cycle->pool, NGX_HTTP_INVENTORY_SLOTS
                                        * sizeof(ngx_http_inventory_queued_t));

    if (cm->unpacked == NULL || cm->queued == NULL || cm->watch == NULL) {
        return NGX_ERROR;
    }

    imcf->committer = cm;

    return NGX_OK;
}


void
ngx_http_inventory_commit_exit(ngx_http_inventory_committer_t *cm)
{
    /* a task still running (a fast shutdown) keeps what it uses */
    if (cm && !cm->leading) {
        ngx_free(cm->unpacked);
        cm->unpacked = NULL;
    }
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
    if (ngx_http_inventory_commit_enqueue(cm, job) == NGX_OK) {
        ngx_queue_insert_tail(&cm->waiting, &job->queue);

        if (!cm->watching) {
            ngx_http_inventory_commit_watch(cm);
        }

    } else {
        ngx_http_inventory_commit_lock(cm);
        ngx_queue_insert_tail(&cm->local, &job->queue);
        ngx_http_inventory_commit_unlock(cm);

        if (cm->imcf->sh) {
            (void) ngx_atomic_fetch_add(&cm->imcf->sh->commit_overflow, 1);
        }
    }

    /*
     * A worker that is shutting down waits for its timers, not for its
     * requests: this one keeps it alive until every commit is answered.
     */
    if (!cm->guard.timer_set) {
        ngx_add_timer(&cm->guard, NGX_HTTP_INVENTORY_GUARD);
    }

    if (!cm->leading) {
        ngx_http_inventory_commit_lead(cm);
    }
}


static void
ngx_http_inventory_commit_lead(ngx_http_inventory_committer_t *cm)
{
    cm->leading = 1;

#if (NGX_THREADS)
    if (ngx_thread_task_post(cm->pool, cm->lead_task) == NGX_OK) {
        /* a watch task may hold the pool's only thread: it lets go */
        if (cm->watching) {
            ngx_http_inventory_commit_wake(cm->csh);
        }

        return;
    }

    ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0,
                  "inventory: the thread pool refused a task, "
                  "committing on the event loop");
#endif

    ngx_http_inventory_commit_lead_run(cm, ngx_cycle->log);
    ngx_http_inventory_commit_lead_done(&cm->guard);
}


/*
 * On a pool thread: take the write lock, then every waiting command of the
 * machine, and commit them in one transaction.  Only the store, the zone's
 * slots and atomic counters are touched here: no nginx pool, no log.
 */

static void
ngx_http_inventory_commit_lead_run(void *data, ngx_log_t *log)
{
    ngx_http_inventory_committer_t  *cm = data;

    ngx_http_inventory_store_batch_t  b;

    cm->lead_running = 1;

    ngx_memzero(&b, sizeof(ngx_http_inventory_store_batch_t));
    b.cmds = cm->cmds;
    b.fill = ngx_http_inventory_commit_fill;
    b.data = cm;

    cm->rc = ngx_http_inventory_store_write(cm->store, &b);

    ngx_http_inventory_commit_count(cm);
    ngx_http_inventory_commit_settle(cm);
}


/* called by the store once the write lock is held (or could not be) */

static void
ngx_http_inventory_commit_fill(ngx_http_inventory_store_batch_t *b)
{
    ngx_http_inventory_committer_t  *cm = b->data;

    ngx_queue_t               *q;
    ngx_http_inventory_job_t  *job;

    cm->n = 0;
    cm->ntaken = 0;
    cm->nlocal = 0;
    cm->rerun = 0;
    cm->unknown = 0;

    if (cm->csh) {
        ngx_http_inventory_commit_take(cm, b);
    }

    /* the worker's own jobs that found no room in the zone */
    ngx_http_inventory_commit_lock(cm);

    while (!ngx_queue_empty(&cm->local) && cm->n < cm->imcf->batch_max) {
        q = ngx_queue_head(&cm->local);
        job = ngx_queue_data(q, ngx_http_inventory_job_t, queue);

        ngx_queue_remove(q);

        cm->batch[cm->nlocal++] = job;
        cm->cmds[cm->n++] = job->cmd;
    }

    ngx_http_inventory_commit_unlock(cm);

    b->n = cm->n;
    b->now = ngx_http_inventory_clock_now();
}


/*
 * Still on the pool thread, as soon as the transaction is settled: another
 * worker may show its effects at once, and the counters must not lag what
 * any client can read.  The leader counts for every worker in its batch.
 */

static void
ngx_http_inventory_commit_count(ngx_http_inventory_committer_t *cm)
{
    size_t                       i, wrote, expired, replays;
    int64_t                      purged;
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
    purged = 0;

    for (i = 0; i < cm->n; i++) {
        cmd = cm->cmds[i];
        cm->appended += cmd->appended;

        if (cmd->type == NGX_HTTP_INVENTORY_CMD_PURGE) {
            purged += cmd->purged;
        }

        if (cmd->appended
            || (cmd->type == NGX_HTTP_INVENTORY_CMD_PURGE
                && (cmd->available || cmd->purged)))
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
    (void) ngx_atomic_fetch_add(&sh->purged, purged);
    (void) ngx_atomic_fetch_add(&sh->replays, replays);

    /* batch sizes 1, 2-3, 4-7, ... 128-256 */
    for (i = 0; i < 7 && (cm->n >> (i + 1)); i++) { /* void */ }
    (void) ngx_atomic_fetch_add(&sh->batches[i], 1);
}


/* back on the event loop: answer the local jobs and this worker's slots */

static void
ngx_http_inventory_commit_lead_done(ngx_event_t *ev)
{
    ngx_http_inventory_committer_t  *cm = ev->data;

    size_t                     i, n;
    ngx_uint_t                 queued;
    ngx_http_inventory_job_t  *job;

    n = cm->nlocal;
    cm->nlocal = 0;

    ngx_log_debug4(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "inventory commit: %uz commands (%uz of the zone), "
                   "%uz events, rc: %d",
                   cm->n, cm->ntaken, cm->appended, cm->rc);

    if (cm->rc != 0) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "inventory: a write transaction of %uz commands "
                      "failed: %s", cm->n,
                      ngx_http_inventory_store_strerror(cm->rc));
    }

    if (cm->rerun || cm->unknown) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "inventory: settled a dead worker's batch: "
                      "%uz commands run again, %uz answered as unknown",
                      cm->rerun, cm->unknown);
    }

    for (i = 0; i < n; i++) {
        job = cm->batch[i];
        job->rc = cm->rc;

        /* the command may go with its request */
        job->done(job);
    }

    /* once per batch: waiters of the feed read the store's last seq */
    if (cm->appended && cm->appended_handler) {
        cm->appended_handler(cm->appended_data);
    }

    cm->leading = 0;
    cm->lead_running = 0;

    queued = ngx_http_inventory_commit_collect(cm);

    ngx_http_inventory_commit_lock(cm);
    queued |= !ngx_queue_empty(&cm->local);
    ngx_http_inventory_commit_unlock(cm);

    /* more than one batch waited; or another leader took ours meanwhile */
    if (queued && !cm->leading) {
        ngx_http_inventory_commit_lead(cm);
    }

    ngx_http_inventory_commit_idle(cm);
}


static void
ngx_http_inventory_commit_watch(ngx_http_inventory_committer_t *cm)
{
    ngx_queue_t               *q;
    ngx_http_inventory_job_t  *job;

    cm->nwatch = 0;

    for (q = ngx_queue_head(&cm->waiting);
         q != ngx_queue_sentinel(&cm->waiting);
         q = ngx_queue_next(q))
    {
        job = ngx_queue_data(q, ngx_http_inventory_job_t, queue);
        cm->watch[cm->nwatch].index = job->slot;
        cm->watch[cm->nwatch].ticket = job->ticket;
        cm->nwatch++;
    }

    cm->watching = 1;
    cm->dead_leader = 0;

#if (NGX_THREADS)
    if (ngx_thread_task_post(cm->pool, cm->watch_task) == NGX_OK) {
        return;
    }
#endif

    /* never block the event loop on another worker: look again soon */
    ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0,
                  "inventory: the thread pool refused a task");

    cm->watching = 0;

    if (!cm->retry.timer_set) {
        ngx_add_timer(&cm->retry, 1);
    }
}


static void
ngx_http_inventory_commit_watch_done(ngx_event_t *ev)
{
    ngx_http_inventory_committer_t  *cm = ev->data;

    ngx_uint_t  queued;

    cm->watching = 0;

    queued = ngx_http_inventory_commit_collect(cm);

    /* a dead leader's batch is settled by the next leader */
    if ((queued || cm->dead_leader) && !cm->leading) {
        ngx_http_inventory_commit_lead(cm);
    }

    ngx_http_inventory_commit_idle(cm);
}


/* busy while a task runs or a job waits: the guard keeps the worker alive */

static void
ngx_http_inventory_commit_idle(ngx_http_inventory_committer_t *cm)
{
    if (!ngx_queue_empty(&cm->waiting) && !cm->watching
        && !cm->retry.timer_set)
    {
        ngx_http_inventory_commit_watch(cm);
    }

    if (!cm->leading && !cm->watching && ngx_queue_empty(&cm->waiting)
        && cm->guard.timer_set)
    {
        ngx_del_timer(&cm->guard);
    }
}


static void
ngx_http_inventory_commit_guard(ngx_event_t *ev)
{
    ngx_http_inventory_committer_t  *cm = ev->data;

    if (cm->leading || cm->watching || !ngx_queue_empty(&cm->waiting)) {
        ngx_log_error(NGX_LOG_WARN, ev->log, 0,
                      "inventory: a commit has taken over %M ms",
                      (ngx_msec_t) NGX_HTTP_INVENTORY_GUARD);
        ngx_add_timer(ev, NGX_HTTP_INVENTORY_GUARD);
    }
}


static void
ngx_http_inventory_commit_retry(ngx_event_t *ev)
{
    ngx_http_inventory_committer_t  *cm = ev->data;

    (void) ngx_http_inventory_commit_collect(cm);

    if (!cm->leading) {
        ngx_http_inventory_commit_lead(cm);
    }

    ngx_http_inventory_commit_idle(cm);
}


/* the local inbox is shared by the event loop and a pool thread */

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
