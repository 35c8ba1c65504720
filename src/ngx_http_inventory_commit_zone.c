/*
 * The slots of the shared zone where every worker's writes wait for the
 * group commit (see ngx_http_inventory_commit.c): a write packed into a
 * slot, taken into a batch by whichever worker's lead task holds LMDB's
 * write lock, settled with its answer, collected by its own worker; a
 * dead leader's batch settled by the next, a dead owner's slots freed.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <linux/futex.h>
#include <sys/syscall.h>

#include "ngx_http_inventory_commit.h"
#include "ngx_http_inventory_pack.h"
#include "ngx_http_inventory_proc.h"


static int ngx_http_inventory_commit_ticket_cmp(const void *one,
    const void *two);
static void ngx_http_inventory_commit_recover(
    ngx_http_inventory_committer_t *cm, uint64_t *last_token);
static void ngx_http_inventory_commit_result(ngx_http_inventory_pending_t *s,
    ngx_http_inventory_cmd_t *cmd);
static void ngx_http_inventory_commit_reclaim(
    ngx_http_inventory_committer_t *cm);
static void ngx_http_inventory_commit_sh_lock(
    ngx_http_inventory_commit_sh_t *csh);
static void ngx_http_inventory_commit_sh_unlock(
    ngx_http_inventory_commit_sh_t *csh);


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


/* the command packed into a free slot of the zone, or NGX_DECLINED */

ngx_int_t
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


/* every worker's waiting slots, oldest first, into this batch */

void
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

void
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
        s->purged = cmd->purged;
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


/* on a pool thread: until one of the watched slots is settled */

void
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


/*
 * Answers every job whose slot is DONE and frees its slot; watches the
 * rest again.  Returns whether any of them is still queued.
 */

ngx_uint_t
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
    cmd->purged = s->purged;
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


/*
 * Wakes every watch task.  A futex, not a process-shared condition
 * variable: glibc's can hang a broadcast on a waiter killed while it
 * waited; a futex word keeps no state of its waiters.
 */

void
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
