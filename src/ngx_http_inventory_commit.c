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

#include <pthread.h>
#include <linux/futex.h>
#include <sys/syscall.h>

#include "ngx_http_inventory_module.h"
#include "ngx_http_inventory_pack.h"
#include "ngx_http_inventory_proc.h"


#define NGX_HTTP_INVENTORY_GUARD      60000    /* ms */
#define NGX_HTTP_INVENTORY_WATCH      50       /* ms between liveness checks */
#define NGX_HTTP_INVENTORY_ORPHAN     1000     /* ms: an owner is checked */

#define NGX_HTTP_INVENTORY_SLOTS      1024

#define NGX_HTTP_INVENTORY_SLOT_FREE    0
#define NGX_HTTP_INVENTORY_SLOT_QUEUED  1
#define NGX_HTTP_INVENTORY_SLOT_TAKEN   2
#define NGX_HTTP_INVENTORY_SLOT_DONE    3

/* body_len of a slot whose body did not fit (never: render_bound()) */
#define NGX_HTTP_INVENTORY_BODY_LOST  0xffffffff


typedef struct {
    ngx_uint_t                  state;
    ngx_pid_t                   owner;
    ngx_pid_t                   taker;
    uint64_t                    owner_start;
    uint64_t                    taker_start;
    uint64_t                    ticket;
    uint64_t                    batch;
    uint64_t                    since;         /* ms: queued, or settled */
    u_char                     *block;         /* the command, then body */
    uint32_t                    cmd_len;
    uint32_t                    body_cap;
    unsigned                    retry_safe:1;

    /* the result, written by the leader */
    int                         rc;
    unsigned                    outcome;
    unsigned                    status;
    unsigned                    appended;
    uint32_t                    body_len;
    uint64_t                    etag;
    uint64_t                    last_seq;
    int64_t                     available;
} ngx_http_inventory_pending_t;


struct ngx_http_inventory_commit_sh_s {
    pthread_mutex_t             mutex;         /* robust: owners may die */
    uint32_t                    settled;       /* a futex: slots are DONE */
    uint64_t                    zone_id;       /* random: names its batches */
    uint64_t                    batch;         /* the last batch number */
    uint64_t                    ticket;        /* the last slot queued */
    ngx_uint_t                  recover;       /* a leader died */
    ngx_uint_t                  hint;          /* where a free slot may be */
    ngx_http_inventory_pending_t  slots[NGX_HTTP_INVENTORY_SLOTS];
};


typedef struct {
    uint64_t                    ticket;
    ngx_uint_t                  index;
} ngx_http_inventory_queued_t;


struct ngx_http_inventory_committer_s {
#if (NGX_THREADS)
    ngx_thread_mutex_t          mutex;         /* guards local */
#endif
    ngx_queue_t                 local;         /* jobs without a slot */
    ngx_queue_t                 waiting;       /* jobs in slots */

    ngx_http_inventory_commit_sh_t  *csh;
    ngx_http_inventory_store_t *store;
    ngx_http_inventory_main_conf_t  *imcf;
    ngx_pid_t                   pid;
    uint64_t                    start;

    /* the lead task's, between its run and its completion */
    ngx_http_inventory_job_t   *batch[NGX_HTTP_INVENTORY_BATCH_MAX];
    ngx_http_inventory_cmd_t   *cmds[NGX_HTTP_INVENTORY_BATCH_MAX];
    ngx_uint_t                  taken[NGX_HTTP_INVENTORY_BATCH_MAX];
    ngx_http_inventory_cmd_t   *unpacked;     /* BATCH_MAX of them */
    ngx_http_inventory_queued_t *queued;      /* SLOTS of them */
    size_t                      nlocal;
    size_t                      ntaken;
    size_t                      rerun;         /* of a dead leader's batch */
    size_t                      unknown;       /* of one, answered 503 */
    size_t                      n;
    size_t                      appended;
    int                         rc;

    /* the watch task's */
    ngx_http_inventory_queued_t *watch;        /* SLOTS of them */
    size_t                      nwatch;
    ngx_uint_t                  dead_leader;

    /* read by the watch task: whole words */
    volatile ngx_uint_t         leading;       /* a lead task is posted */
    volatile ngx_uint_t         lead_running;  /* and has begun */
    ngx_uint_t                  watching;
    uint64_t                    reclaim_at;    /* ms */

    ngx_event_t                 guard;
    ngx_event_t                 retry;         /* the pool refused a task */
    ngx_http_inventory_commit_pt  appended_handler;
    void                       *appended_data;
#if (NGX_THREADS)
    ngx_thread_pool_t          *pool;
    ngx_thread_task_t          *lead_task;
    ngx_thread_task_t          *watch_task;
#endif
};


static ngx_int_t ngx_http_inventory_commit_enqueue(
    ngx_http_inventory_committer_t *cm, ngx_http_inventory_job_t *job);
static void ngx_http_inventory_commit_lead(ngx_http_inventory_committer_t *cm);
static void ngx_http_inventory_commit_lead_run(void *data, ngx_log_t *log);
static void ngx_http_inventory_commit_fill(
    ngx_http_inventory_store_batch_t *b);
static void ngx_http_inventory_commit_take(ngx_http_inventory_committer_t *cm,
    ngx_http_inventory_store_batch_t *b);
static int ngx_http_inventory_commit_ticket_cmp(const void *one,
    const void *two);
static void ngx_http_inventory_commit_recover(
    ngx_http_inventory_committer_t *cm, uint64_t *last_token);
static void ngx_http_inventory_commit_settle(
    ngx_http_inventory_committer_t *cm);
static void ngx_http_inventory_commit_count(
    ngx_http_inventory_committer_t *cm);
static void ngx_http_inventory_commit_lead_done(ngx_event_t *ev);
static void ngx_http_inventory_commit_watch(
    ngx_http_inventory_committer_t *cm);
static void ngx_http_inventory_commit_watch_run(void *data, ngx_log_t *log);
static void ngx_http_inventory_commit_watch_done(ngx_event_t *ev);
static ngx_uint_t ngx_http_inventory_commit_collect(
    ngx_http_inventory_committer_t *cm);
static void ngx_http_inventory_commit_result(ngx_http_inventory_pending_t *s,
    ngx_http_inventory_cmd_t *cmd);
static void ngx_http_inventory_commit_reclaim(
    ngx_http_inventory_committer_t *cm);
static void ngx_http_inventory_commit_idle(ngx_http_inventory_committer_t *cm);
static void ngx_http_inventory_commit_guard(ngx_event_t *ev);
static void ngx_http_inventory_commit_retry(ngx_event_t *ev);
static void ngx_http_inventory_commit_wake(
    ngx_http_inventory_commit_sh_t *csh);
static void ngx_http_inventory_commit_sh_lock(
    ngx_http_inventory_commit_sh_t *csh);
static void ngx_http_inventory_commit_sh_unlock(
    ngx_http_inventory_commit_sh_t *csh);
static void ngx_http_inventory_commit_lock(ngx_http_inventory_committer_t *cm);
static void ngx_http_inventory_commit_unlock(
    ngx_http_inventory_committer_t *cm);


/*
 * In a new zone, at start or when a reload changed its layout: NULL if it
 * has no room, and then every write commits in its worker's own batch.
 */

ngx_http_inventory_commit_sh_t *
ngx_http_inventory_commit_zone_init(ngx_slab_pool_t *shpool)
{
    pthread_mutexattr_t              ma;
    ngx_http_inventory_commit_sh_t  *csh;

    csh = ngx_slab_calloc(shpool, sizeof(ngx_http_inventory_commit_sh_t));
    if (csh == NULL) {
        return NULL;
    }

    if (pthread_mutexattr_init(&ma) != 0) {
        goto failed;
    }

    if (pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED) != 0
        || pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST) != 0
        || pthread_mutex_init(&csh->mutex, &ma) != 0)
    {
        (void) pthread_mutexattr_destroy(&ma);
        goto failed;
    }

    (void) pthread_mutexattr_destroy(&ma);

    /* batch numbers of another zone (a binary upgrade's) are not ours */
    csh->zone_id = ((uint64_t) ngx_time() << 32)
                   ^ ((uint64_t) ngx_pid << 16) ^ (uint64_t) ngx_random()
                   ^ ((uint64_t) ngx_random() << 24);

    if (csh->zone_id == 0) {
        csh->zone_id = 1;
    }

    return csh;

failed:

    ngx_slab_free(shpool, csh);

    return NULL;
}


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


/* the command packed into a free slot of the zone, or NGX_DECLINED */

static ngx_int_t
ngx_http_inventory_commit_enqueue(ngx_http_inventory_committer_t *cm,
    ngx_http_inventory_job_t *job)
{
    u_char                          *block;
    size_t                           len, cap;
    ngx_uint_t                       i, k;
    ngx_slab_pool_t                 *shpool;
    ngx_http_inventory_pending_t    *s;
    ngx_http_inventory_commit_sh_t  *csh;

    csh = cm->csh;

    if (csh == NULL) {
        return NGX_DECLINED;
    }

    shpool = cm->imcf->shpool;

    /*
     * An eighth of the zone's pages stays free for idempotency keys (a hint,
     * read unlocked): writes in flight go to their worker's batch first.
     */
    if (shpool->pfree < (ngx_uint_t) (shpool->end - shpool->start)
                        / ngx_pagesize / 8)
    {
        return NGX_DECLINED;
    }

    len = ngx_http_inventory_pack_size(job->cmd);
    cap = job->answer ? ngx_http_inventory_render_bound(job->cmd) : 0;

    block = ngx_slab_alloc(shpool, len + cap);
    if (block == NULL) {
        return NGX_DECLINED;
    }

    (void) ngx_http_inventory_pack(job->cmd, block);

    ngx_http_inventory_commit_sh_lock(csh);

    for (k = 0; k < NGX_HTTP_INVENTORY_SLOTS; k++) {
        i = (csh->hint + k) % NGX_HTTP_INVENTORY_SLOTS;

        if (csh->slots[i].state == NGX_HTTP_INVENTORY_SLOT_FREE) {
            break;
        }
    }

    if (k == NGX_HTTP_INVENTORY_SLOTS) {
        ngx_http_inventory_commit_sh_unlock(csh);
        ngx_slab_free(shpool, block);
        return NGX_DECLINED;
    }

    csh->hint = (i + 1) % NGX_HTTP_INVENTORY_SLOTS;

    s = &csh->slots[i];
    ngx_memzero(s, sizeof(ngx_http_inventory_pending_t));

    s->owner = cm->pid;
    s->owner_start = cm->start;
    s->ticket = ++csh->ticket;
    s->since = ngx_http_inventory_clock_now();
    s->block = block;
    s->cmd_len = (uint32_t) len;
    s->body_cap = (uint32_t) cap;

    /* run twice, it answers the same: a key replays, an expiry is over */
    s->retry_safe = (job->cmd->idem_key.len
                     || job->cmd->type == NGX_HTTP_INVENTORY_CMD_EXPIRE
                     || job->cmd->type == NGX_HTTP_INVENTORY_CMD_PURGE);

    /* last: a holder killed before this leaves the slot free */
    s->state = NGX_HTTP_INVENTORY_SLOT_QUEUED;

    ngx_http_inventory_commit_sh_unlock(csh);

    job->slot = i;
    job->ticket = s->ticket;

    return NGX_OK;
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


/* every worker's waiting slots, oldest first, into this batch */

static void
ngx_http_inventory_commit_take(ngx_http_inventory_committer_t *cm,
    ngx_http_inventory_store_batch_t *b)
{
    uint64_t                         now, batch;
    ngx_pid_t                        alive, dead;
    ngx_uint_t                       i, n, k;
    ngx_http_inventory_cmd_t        *cmd;
    ngx_http_inventory_pending_t    *s;
    ngx_http_inventory_commit_sh_t  *csh;

    csh = cm->csh;
    now = ngx_http_inventory_clock_now();

    ngx_http_inventory_commit_sh_lock(csh);

    if (csh->recover) {
        ngx_http_inventory_commit_recover(cm, b->last_token);
    }

    n = 0;
    alive = 0;
    dead = 0;

    /* the whole table: a count left wrong by a killed holder misleads */
    for (i = 0; i < NGX_HTTP_INVENTORY_SLOTS; i++) {
        s = &csh->slots[i];

        if (s->state != NGX_HTTP_INVENTORY_SLOT_QUEUED) {
            continue;
        }

        /*
         * An old command of a dead worker: nobody waits for its answer.
         * Each owner is looked up once a scan (a backlog may hold many).
         */
        if (s->owner != cm->pid && now - s->since > NGX_HTTP_INVENTORY_ORPHAN
            && s->owner != alive)
        {
            if (s->owner == dead
                || !ngx_http_inventory_proc_alive(s->owner, s->owner_start))
            {
                dead = s->owner;
                s->state = NGX_HTTP_INVENTORY_SLOT_DONE;
                s->outcome = NGX_HTTP_INVENTORY_UNAVAILABLE;
                s->since = now;
                continue;
            }

            alive = s->owner;
        }

        cm->queued[n].ticket = s->ticket;
        cm->queued[n].index = i;
        n++;
    }

    if (n == 0) {
        ngx_http_inventory_commit_sh_unlock(csh);
        return;
    }

    ngx_qsort(cm->queued, n, sizeof(ngx_http_inventory_queued_t),
              ngx_http_inventory_commit_ticket_cmp);

    if (n > cm->imcf->batch_max) {
        n = cm->imcf->batch_max;
    }

    batch = ++csh->batch;

    for (k = 0; k < n; k++) {
        s = &csh->slots[cm->queued[k].index];

        s->state = NGX_HTTP_INVENTORY_SLOT_TAKEN;
        s->taker = cm->pid;
        s->taker_start = cm->start;
        s->batch = batch;

        cm->taken[k] = cm->queued[k].index;
    }

    cm->ntaken = n;

    ngx_http_inventory_commit_sh_unlock(csh);

    /* whoever settles this batch if we die learns from it if it committed */
    b->token[0] = csh->zone_id;
    b->token[1] = batch;

    for (k = 0; k < n; k++) {
        s = &csh->slots[cm->taken[k]];
        cmd = &cm->unpacked[k];

        if (ngx_http_inventory_unpack(cmd, s->block, s->cmd_len) != 0) {
            /* not a command (cannot happen): answered, not run */
            ngx_http_inventory_cmd_init(cmd);
            cmd->outcome = NGX_HTTP_INVENTORY_UNAVAILABLE;
            ngx_http_inventory_render_outcome(cmd);
            continue;
        }

        cm->cmds[cm->n++] = cmd;
    }
}


static int ngx_libc_cdecl
ngx_http_inventory_commit_ticket_cmp(const void *one, const void *two)
{
    const ngx_http_inventory_queued_t  *a = one, *b = two;

    return (a->ticket > b->ticket) - (a->ticket < b->ticket);
}


/*
 * With the write lock (and the zone) held: the batches of dead leaders.
 * Their transactions are over, committed or not; the store's last token
 * tells which, if no batch of another zone committed since.
 */

static void
ngx_http_inventory_commit_recover(ngx_http_inventory_committer_t *cm,
    uint64_t *last_token)
{
    ngx_uint_t                       i, ours, committed;
    ngx_http_inventory_pending_t    *s;
    ngx_http_inventory_commit_sh_t  *csh;

    csh = cm->csh;
    csh->recover = 0;

    ours = (last_token[0] == csh->zone_id);

    for (i = 0; i < NGX_HTTP_INVENTORY_SLOTS; i++) {
        s = &csh->slots[i];

        if (s->state != NGX_HTTP_INVENTORY_SLOT_TAKEN || s->taker == cm->pid
            || ngx_http_inventory_proc_alive(s->taker, s->taker_start))
        {
            continue;
        }

        committed = ours && last_token[1] >= s->batch;

        if (s->owner != s->taker
            && (s->retry_safe || (ours && !committed)))
        {
            s->state = NGX_HTTP_INVENTORY_SLOT_QUEUED;
            cm->rerun++;
            continue;
        }

        if (s->owner != s->taker) {
            cm->unknown++;
        }

        /* a dead owner's (nobody waits), or applied or not: unknown */
        s->state = NGX_HTTP_INVENTORY_SLOT_DONE;
        s->rc = 0;
        s->outcome = NGX_HTTP_INVENTORY_UNKNOWN;
        s->body_len = 0;
        s->since = ngx_http_inventory_clock_now();
    }

    ngx_http_inventory_commit_wake(csh);
}


/* still on the pool thread: each taken slot gets its result, then DONE */

static void
ngx_http_inventory_commit_settle(ngx_http_inventory_committer_t *cm)
{
    size_t                           k;
    uint64_t                         now;
    ngx_http_inventory_cmd_t        *cmd;
    ngx_http_inventory_pending_t    *s;
    ngx_http_inventory_commit_sh_t  *csh;

    if (cm->ntaken == 0) {
        return;
    }

    csh = cm->csh;

    /* the slots are this thread's until they are DONE */
    for (k = 0; k < cm->ntaken; k++) {
        s = &csh->slots[cm->taken[k]];
        cmd = &cm->unpacked[k];

        s->rc = cm->rc;
        s->outcome = cmd->outcome;
        s->status = cmd->status;
        s->appended = cmd->appended;
        s->etag = cmd->etag;
        s->last_seq = cmd->last_seq;
        s->available = cmd->available;
        s->body_len = 0;

        if (cmd->body) {
            if (cmd->body_len <= s->body_cap) {
                ngx_memcpy(s->block + s->cmd_len, cmd->body, cmd->body_len);
                s->body_len = (uint32_t) cmd->body_len;

            } else if (s->body_cap) {
                s->body_len = NGX_HTTP_INVENTORY_BODY_LOST;
            }

            free(cmd->body);
            cmd->body = NULL;
        }
    }

    now = ngx_http_inventory_clock_now();

    ngx_http_inventory_commit_sh_lock(csh);

    for (k = 0; k < cm->ntaken; k++) {
        s = &csh->slots[cm->taken[k]];
        s->state = NGX_HTTP_INVENTORY_SLOT_DONE;
        s->since = now;
    }

    ngx_http_inventory_commit_sh_unlock(csh);

    ngx_http_inventory_commit_wake(csh);
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


/* on a pool thread: until one of the watched slots is settled */

static void
ngx_http_inventory_commit_watch_run(void *data, ngx_log_t *log)
{
    ngx_http_inventory_committer_t  *cm = data;

    long                             rc;
    size_t                           k;
    uint32_t                         settled;
    ngx_err_t                        err;
    ngx_uint_t                       done, dead;
    struct timespec                  ts;
    ngx_http_inventory_pending_t    *s;
    ngx_http_inventory_commit_sh_t  *csh;

    csh = cm->csh;
    dead = 0;

    ngx_http_inventory_commit_sh_lock(csh);

    for ( ;; ) {
        /*
         * The worker's lead task waits for a thread (the pool may have
         * one): it will answer what is settled, and this one comes back.
         */
        done = (cm->nwatch == 0 || (cm->leading && !cm->lead_running));

        /* settled, or even collected by the lead task's completion */
        for (k = 0; k < cm->nwatch; k++) {
            s = &csh->slots[cm->watch[k].index];

            if (s->state == NGX_HTTP_INVENTORY_SLOT_DONE
                || s->state == NGX_HTTP_INVENTORY_SLOT_FREE
                || s->ticket != cm->watch[k].ticket)
            {
                done = 1;
                break;
            }
        }

        if (done) {
            break;
        }

        /* a change of the counter since it was read ends the wait */
        settled = csh->settled;
        ngx_http_inventory_commit_sh_unlock(csh);

        ts.tv_sec = 0;
        ts.tv_nsec = NGX_HTTP_INVENTORY_WATCH * 1000000L;

        rc = syscall(SYS_futex, &csh->settled, FUTEX_WAIT, settled, &ts,
                     NULL, 0);
        err = errno;

        ngx_http_inventory_commit_sh_lock(csh);

        if (rc == 0 || err != ETIMEDOUT) {
            continue;
        }

        /* a long wait: is the batch's leader still there? */
        for (k = 0; k < cm->nwatch; k++) {
            s = &csh->slots[cm->watch[k].index];

            if (s->state == NGX_HTTP_INVENTORY_SLOT_TAKEN
                && s->taker != cm->pid
                && !ngx_http_inventory_proc_alive(s->taker, s->taker_start))
            {
                csh->recover = 1;
                dead = 1;
            }
        }

        if (dead) {
            break;
        }
    }

    ngx_http_inventory_commit_sh_unlock(csh);

    cm->dead_leader = dead;
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


/*
 * Answers every job whose slot is DONE and frees its slot; watches the
 * rest again.  Returns whether any of them is still queued.
 */

static ngx_uint_t
ngx_http_inventory_commit_collect(ngx_http_inventory_committer_t *cm)
{
    size_t                           appended;
    ngx_uint_t                       queued;
    ngx_queue_t                      done, *q, *next;
    ngx_http_inventory_job_t        *job;
    ngx_http_inventory_pending_t    *s;
    ngx_http_inventory_commit_sh_t  *csh;

    csh = cm->csh;

    if (csh == NULL || ngx_queue_empty(&cm->waiting)) {
        return 0;
    }

    ngx_queue_init(&done);
    queued = 0;

    ngx_http_inventory_commit_sh_lock(csh);

    for (q = ngx_queue_head(&cm->waiting);
         q != ngx_queue_sentinel(&cm->waiting);
         q = next)
    {
        next = ngx_queue_next(q);
        job = ngx_queue_data(q, ngx_http_inventory_job_t, queue);
        s = &csh->slots[job->slot];

        if (s->state == NGX_HTTP_INVENTORY_SLOT_QUEUED) {
            queued = 1;
        }

        if (s->state != NGX_HTTP_INVENTORY_SLOT_DONE) {
            continue;
        }

        ngx_http_inventory_commit_result(s, job->cmd);
        job->rc = s->rc;
        job->block = s->block;

        s->state = NGX_HTTP_INVENTORY_SLOT_FREE;
        s->block = NULL;

        ngx_queue_remove(q);
        ngx_queue_insert_tail(&done, q);
    }

    ngx_http_inventory_commit_sh_unlock(csh);

    appended = 0;

    while (!ngx_queue_empty(&done)) {
        q = ngx_queue_head(&done);
        ngx_queue_remove(q);
        job = ngx_queue_data(q, ngx_http_inventory_job_t, queue);

        ngx_slab_free(cm->imcf->shpool, job->block);
        job->block = NULL;

        if (job->rc != 0) {
            ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                          "inventory: a write transaction failed: %s",
                          ngx_http_inventory_store_strerror(job->rc));
        }

        appended += job->cmd->appended;
        job->done(job);
    }

    if (appended && cm->appended_handler) {
        cm->appended_handler(cm->appended_data);
    }

    ngx_http_inventory_commit_reclaim(cm);

    return queued;
}


/* a settled slot's result into the job's command (the zone's lock held) */

static void
ngx_http_inventory_commit_result(ngx_http_inventory_pending_t *s,
    ngx_http_inventory_cmd_t *cmd)
{
    cmd->outcome = s->outcome;
    cmd->status = s->status;
    cmd->appended = s->appended;
    cmd->etag = s->etag;
    cmd->last_seq = s->last_seq;
    cmd->available = s->available;
    cmd->body = NULL;
    cmd->body_len = 0;

    if (s->outcome == NGX_HTTP_INVENTORY_UNKNOWN) {
        /* settled by the leader after a dead one: answered here */
        ngx_http_inventory_render_outcome(cmd);
        return;
    }

    if (s->body_len == NGX_HTTP_INVENTORY_BODY_LOST) {
        ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0,
                      "inventory: a response did not fit its slot");
        cmd->status = NGX_HTTP_INTERNAL_SERVER_ERROR;
        return;
    }

    if (s->body_len) {
        cmd->body = malloc(s->body_len);

        if (cmd->body == NULL) {
            cmd->status = NGX_HTTP_INTERNAL_SERVER_ERROR;
            return;
        }

        ngx_memcpy(cmd->body, s->block + s->cmd_len, s->body_len);
        cmd->body_len = s->body_len;
    }
}


/*
 * At most once a second: slots settled for a worker that died before it
 * collected them are freed.
 */

static void
ngx_http_inventory_commit_reclaim(ngx_http_inventory_committer_t *cm)
{
    u_char                          *block;
    uint64_t                         now;
    ngx_uint_t                       i;
    ngx_http_inventory_pending_t    *s;
    ngx_http_inventory_commit_sh_t  *csh;

    now = ngx_http_inventory_clock_now();

    if (now < cm->reclaim_at) {
        return;
    }

    cm->reclaim_at = now + NGX_HTTP_INVENTORY_ORPHAN;
    csh = cm->csh;

    for (i = 0; i < NGX_HTTP_INVENTORY_SLOTS; i++) {
        s = &csh->slots[i];

        /* unlocked: a hint only, checked again below */
        if (s->state == NGX_HTTP_INVENTORY_SLOT_TAKEN
            && s->taker != cm->pid
            && now - s->since >= NGX_HTTP_INVENTORY_ORPHAN
            && !ngx_http_inventory_proc_alive(s->taker, s->taker_start))
        {
            /* a dead leader's batch that nobody watches */
            csh->recover = 1;
            continue;
        }

        if (s->state != NGX_HTTP_INVENTORY_SLOT_DONE || s->owner == cm->pid
            || now - s->since < NGX_HTTP_INVENTORY_ORPHAN
            || ngx_http_inventory_proc_alive(s->owner, s->owner_start))
        {
            continue;
        }

        block = NULL;

        ngx_http_inventory_commit_sh_lock(csh);

        if (s->state == NGX_HTTP_INVENTORY_SLOT_DONE && s->owner != cm->pid
            && now - s->since >= NGX_HTTP_INVENTORY_ORPHAN)
        {
            block = s->block;
            s->block = NULL;
            s->state = NGX_HTTP_INVENTORY_SLOT_FREE;
        }

        ngx_http_inventory_commit_sh_unlock(csh);

        if (block) {
            ngx_slab_free(cm->imcf->shpool, block);
        }
    }
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


/*
 * Wakes every watch task.  A futex, not a process-shared condition
 * variable: glibc's can hang a broadcast on a waiter killed while it
 * waited; a futex word keeps no state of its waiters.
 */

static void
ngx_http_inventory_commit_wake(ngx_http_inventory_commit_sh_t *csh)
{
    (void) __atomic_add_fetch(&csh->settled, 1, __ATOMIC_SEQ_CST);
    (void) syscall(SYS_futex, &csh->settled, FUTEX_WAKE, INT_MAX, NULL,
                   NULL, 0);
}


/* the zone's lock: a holder killed with -9 hands it on (robust mutex) */

static void
ngx_http_inventory_commit_sh_lock(ngx_http_inventory_commit_sh_t *csh)
{
    if (pthread_mutex_lock(&csh->mutex) == EOWNERDEAD) {
        (void) pthread_mutex_consistent(&csh->mutex);
    }
}


static void
ngx_http_inventory_commit_sh_unlock(ngx_http_inventory_commit_sh_t *csh)
{
    (void) pthread_mutex_unlock(&csh->mutex);
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


/*
 * Slots of the zone in use: queued, in a batch, or not yet collected.
 * Counted, not kept: a holder killed mid-update cannot leave it wrong.
 */

ngx_uint_t
ngx_http_inventory_commit_slots_used(ngx_http_inventory_commit_sh_t *csh)
{
    ngx_uint_t  i, n;

    n = 0;

    for (i = 0; csh && i < NGX_HTTP_INVENTORY_SLOTS; i++) {
        n += (csh->slots[i].state != NGX_HTTP_INVENTORY_SLOT_FREE);
    }

    return n;
}
