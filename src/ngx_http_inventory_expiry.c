/*
 * Reservation expiry, and the purge of idempotency keys and of ended
 * reservations past inventory_reservation_retention, run by one worker at a
 * time: every worker ticks, and the one holding the lease in the shared
 * zone sweeps, through the group commit like any write.  A lease not
 * renewed in time, or held by a dead worker, is taken over, so expiry goes
 * on when that worker is killed.  Correctness does not rest on the lease:
 * expiry is a store command that refuses reservations no longer active, so
 * two sweepers could never expire one twice.
 *
 * A sweep expires up to a batch of due reservations; when it found a full
 * batch, the next sweep follows its commit at once rather than at the next
 * tick, so a burst of any size is expired at the speed of the commits.
 * Every 10 s, or every quarter of a retention shorter than 40 s (an ended
 * reservation then goes within 1.25 times it), a sweep also purges, a
 * bounded batch of each kind in one transaction: a full batch has the
 * next sweep purge again, a tick later, so that a backlog (a million ended
 * reservations) goes in short transactions with the write path free
 * between them.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_inventory_module.h"


#define NGX_HTTP_INVENTORY_EXPIRY_TICK    250     /* ms */
#define NGX_HTTP_INVENTORY_LEASE          1500    /* ms */
#define NGX_HTTP_INVENTORY_EXPIRY_BATCH   64
/* keys, and reservations: a full batch is followed by another one */
#define NGX_HTTP_INVENTORY_PURGE_BATCH    2000
#define NGX_HTTP_INVENTORY_PURGE_EVERY    10000   /* ms */


typedef struct {
    ngx_http_inventory_main_conf_t  *imcf;
    size_t                           pending;
    ngx_uint_t                       behind;     /* unsigned: 1 */
    ngx_http_inventory_job_t        *jobs;
    ngx_http_inventory_cmd_t        *cmds;
} ngx_http_inventory_sweep_t;


static void ngx_http_inventory_expiry_tick(ngx_event_t *ev);
static void ngx_http_inventory_sweep(ngx_http_inventory_main_conf_t *imcf,
    ngx_log_t *log, uint64_t now);
static void ngx_http_inventory_sweep_done(ngx_http_inventory_job_t *job);


/*
 * inventory_reservation_retention TIME | off: how long an ended
 * reservation is kept; off keeps them for ever, and 0, which could mean
 * either that or "not at all", is refused.
 */

char *
ngx_http_inventory_retention_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_inventory_main_conf_t  *imcf = conf;

    ngx_int_t   ms;
    ngx_str_t  *value;

    if (imcf->reservation_retention != NGX_CONF_UNSET_MSEC) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        imcf->reservation_retention = 0;
        return NGX_CONF_OK;
    }

    ms = ngx_parse_time(&value[1], 0);

    if (ms == NGX_ERROR || ms == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "inventory_reservation_retention needs a time "
                           "of more than 0 (such as 30d, 12h or 10m) or "
                           "\"off\", not \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    imcf->reservation_retention = (ngx_msec_t) ms;

    return NGX_CONF_OK;
}


void
ngx_http_inventory_expiry_start(ngx_cycle_t *cycle,
    ngx_http_inventory_main_conf_t *imcf)
{
    imcf->expiry.handler = ngx_http_inventory_expiry_tick;
    imcf->expiry.data = imcf;
    imcf->expiry.log = cycle->log;
    imcf->expiry.cancelable = 1;

    ngx_add_timer(&imcf->expiry, NGX_HTTP_INVENTORY_EXPIRY_TICK);
}


static void
ngx_http_inventory_expiry_tick(ngx_event_t *ev)
{
    uint64_t                         now;
    ngx_http_inventory_main_conf_t  *imcf;

    imcf = ev->data;

    if (ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    now = ngx_http_inventory_clock_now();

    /* a cluster's node sweeps only while it is the primary */
    if (imcf->sh && !imcf->sweeping && !imcf->role_follower
        && ngx_http_inventory_lease(&imcf->sh->lease_pid,
                                    &imcf->sh->lease_until, ev->log, now,
                                    NGX_HTTP_INVENTORY_LEASE))
    {
        ngx_http_inventory_sweep(imcf, ev->log, now);
    }

    ngx_add_timer(ev, NGX_HTTP_INVENTORY_EXPIRY_TICK);
}


/*
 * Hands the due reservations (and, now and then, the purge of expired
 * idempotency keys) to the group commit, as commands of their own.
 */

static void
ngx_http_inventory_sweep(ngx_http_inventory_main_conf_t *imcf, ngx_log_t *log,
    uint64_t now)
{
    int                         rc;
    size_t                      n, i;
    ngx_msec_t                  every;
    ngx_uint_t                  purge;
    ngx_http_inventory_sweep_t *sw;
    char                        ids[NGX_HTTP_INVENTORY_EXPIRY_BATCH]
                                   [NGX_HTTP_INVENTORY_RES_ID_LEN];

    rc = ngx_http_inventory_store_read_begin(imcf->store);

    if (rc == 0) {
        rc = ngx_http_inventory_store_due(imcf->store, now, ids,
                                          NGX_HTTP_INVENTORY_EXPIRY_BATCH,
                                          &n);
        ngx_http_inventory_store_read_end(imcf->store);
    }

    if (rc != 0) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "inventory: reading due reservations failed: %s",
                      ngx_http_inventory_store_strerror(rc));
        return;
    }

    /* while behind, a purge at every sweep (4 a second or more) */
    purge = (now >= imcf->purge_at || imcf->purge_behind);

    if (purge) {
        every = NGX_HTTP_INVENTORY_PURGE_EVERY;

        if (imcf->reservation_retention
            && imcf->reservation_retention / 4 < every)
        {
            every = ngx_max(imcf->reservation_retention / 4,
                            NGX_HTTP_INVENTORY_EXPIRY_TICK);
        }

        imcf->purge_at = now + every;
    }

    if (n == 0 && !purge) {
        return;
    }

    sw = ngx_calloc(sizeof(ngx_http_inventory_sweep_t)
                    + (n + 1) * (sizeof(ngx_http_inventory_job_t)
                                 + sizeof(ngx_http_inventory_cmd_t)),
                    log);
    if (sw == NULL) {
        return;
    }

    sw->imcf = imcf;
    sw->behind = (n == NGX_HTTP_INVENTORY_EXPIRY_BATCH);
    sw->jobs = (ngx_http_inventory_job_t *) (sw + 1);
    sw->cmds = (ngx_http_inventory_cmd_t *) (sw->jobs + n + 1);

    for (i = 0; i < n; i++) {
        sw->cmds[i].type = NGX_HTTP_INVENTORY_CMD_EXPIRE;
        ngx_memcpy(sw->cmds[i].res.id, ids[i], NGX_HTTP_INVENTORY_RES_ID_LEN);
    }

    if (purge) {
        sw->cmds[n].type = NGX_HTTP_INVENTORY_CMD_PURGE;
        sw->cmds[n].quantity = NGX_HTTP_INVENTORY_PURGE_BATCH;
        sw->cmds[n].ttl = imcf->reservation_retention;
        n++;
    }

    sw->pending = n;
    imcf->sweeping = 1;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, log, 0,
                   "inventory expiry: %uz due, purge: %ui",
                   n - (purge ? 1 : 0), purge);

    for (i = 0; i < n; i++) {
        sw->jobs[i].cmd = &sw->cmds[i];
        sw->jobs[i].data = sw;
        sw->jobs[i].done = ngx_http_inventory_sweep_done;

        ngx_http_inventory_commit_submit(imcf->committer, &sw->jobs[i]);
    }
}


static void
ngx_http_inventory_sweep_done(ngx_http_inventory_job_t *job)
{
    ngx_http_inventory_sweep_t      *sw = job->data;
    ngx_http_inventory_cmd_t        *cmd;
    ngx_http_inventory_main_conf_t  *imcf;

    imcf = sw->imcf;
    cmd = job->cmd;

    if (cmd->type == NGX_HTTP_INVENTORY_CMD_PURGE) {
        imcf->purge_behind = (job->rc == 0
                              && (cmd->available == cmd->quantity
                                  || cmd->purged == cmd->quantity));

        if (job->rc == 0 && (cmd->available || cmd->purged)) {
            ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                          "inventory: purged %L ended reservations and %L "
                          "idempotency keys", cmd->purged, cmd->available);
        }
    }

    /* a failing store is not retried faster than the tick */
    if (job->rc != 0) {
        sw->behind = 0;
    }

    free(cmd->body);

    if (--sw->pending == 0) {
        imcf->sweeping = 0;

        if (sw->behind && imcf->expiry.timer_set) {
            ngx_del_timer(&imcf->expiry);
            ngx_add_timer(&imcf->expiry, 1);
        }

        ngx_free(sw);
    }
}
