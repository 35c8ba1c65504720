/*
 * The group commit's private declarations, shared by its two files:
 * ngx_http_inventory_commit.c (the lead and watch tasks, on each worker)
 * and ngx_http_inventory_commit_zone.c (the slots of the shared zone).
 */

#ifndef _NGX_HTTP_INVENTORY_COMMIT_H_INCLUDED_
#define _NGX_HTTP_INVENTORY_COMMIT_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <pthread.h>

#include "ngx_http_inventory_module.h"


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
    int64_t                     purged;
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


/* ngx_http_inventory_commit_zone.c */
ngx_int_t ngx_http_inventory_commit_enqueue(
    ngx_http_inventory_committer_t *cm, ngx_http_inventory_job_t *job);
void ngx_http_inventory_commit_take(ngx_http_inventory_committer_t *cm,
    ngx_http_inventory_store_batch_t *b);
void ngx_http_inventory_commit_settle(ngx_http_inventory_committer_t *cm);
void ngx_http_inventory_commit_watch_run(void *data, ngx_log_t *log);
ngx_uint_t ngx_http_inventory_commit_collect(
    ngx_http_inventory_committer_t *cm);
void ngx_http_inventory_commit_wake(ngx_http_inventory_commit_sh_t *csh);


#endif /* _NGX_HTTP_INVENTORY_COMMIT_H_INCLUDED_ */
