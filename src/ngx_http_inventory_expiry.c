/*
 * Reservation expiry and idempotency-key purging, run by one worker at a
 * time: every worker ticks, and the one holding the lease in the shared
 * zone sweeps.  A lease not renewed in time, or held by a dead worker, is
 * taken over, so expiry goes on when that worker is killed.  Correctness
 * does not rest on the lease: expiry is a store command that refuses
 * reservations no longer active, so two sweepers could never expire one
 * twice.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_inventory_module.h"


#define NGX_HTTP_INVENTORY_EXPIRY_TICK    250     /* ms */
#define NGX_HTTP_INVENTORY_LEASE          1500    /* ms */
#define NGX_HTTP_INVENTORY_EXPIRY_BATCH   64
#define NGX_HTTP_INVENTORY_EXPIRY_ROUNDS  8
#define NGX_HTTP_INVENTORY_PURGE_BATCH    1000


static void ngx_http_inventory_expiry_tick(ngx_event_t *ev);
static ngx_uint_t ngx_http_inventory_lease(ngx_http_inventory_shctx_t *sh,
    uint64_t now);
static ngx_int_t ngx_http_inventory_expire_due(
    ngx_http_inventory_main_conf_t *imcf, ngx_log_t *log, uint64_t now);


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
    size_t                           purged;
    uint64_t                         now;
    ngx_uint_t                       round;
    ngx_http_inventory_main_conf_t  *imcf;

    imcf = ev->data;

    if (ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    now = ngx_http_inventory_now();

    if (imcf->sh && ngx_http_inventory_lease(imcf->sh, now)) {

        for (round = 0; round < NGX_HTTP_INVENTORY_EXPIRY_ROUNDS; round++) {
            if (ngx_http_inventory_expire_due(imcf, ev->log, now) != NGX_AGAIN)
            {
                break;
            }
        }

        if (ngx_http_inventory_store_purge_keys(&imcf->store, now,
                                                NGX_HTTP_INVENTORY_PURGE_BATCH,
                                                &purged)
            != 0)
        {
            ngx_log_error(NGX_LOG_ERR, ev->log, 0,
                          "inventory: purging idempotency keys failed");
        }
    }

    ngx_add_timer(ev, NGX_HTTP_INVENTORY_EXPIRY_TICK);
}


static ngx_uint_t
ngx_http_inventory_lease(ngx_http_inventory_shctx_t *sh, uint64_t now)
{
    ngx_atomic_uint_t  pid;

    pid = sh->lease_pid;

    if (pid == (ngx_atomic_uint_t) ngx_pid) {
        sh->lease_until = now + NGX_HTTP_INVENTORY_LEASE;
        return 1;
    }

    if (pid != 0 && sh->lease_until > now
        && (kill((ngx_pid_t) pid, 0) == 0 || ngx_errno != NGX_ESRCH))
    {
        return 0;
    }

    if (!ngx_atomic_cmp_set(&sh->lease_pid, pid, (ngx_atomic_uint_t) ngx_pid))
    {
        return 0;
    }

    sh->lease_until = now + NGX_HTTP_INVENTORY_LEASE;

    return 1;
}


/* NGX_AGAIN when a full batch was expired and more may be due */

static ngx_int_t
ngx_http_inventory_expire_due(ngx_http_inventory_main_conf_t *imcf,
    ngx_log_t *log, uint64_t now)
{
    int                        rc;
    size_t                     n, i, expired;
    ngx_http_inventory_cmd_t  *cmds, *batch[NGX_HTTP_INVENTORY_EXPIRY_BATCH];
    char                       ids[NGX_HTTP_INVENTORY_EXPIRY_BATCH]
                                  [NGX_HTTP_INVENTORY_RES_ID_LEN];

    rc = ngx_http_inventory_store_read_begin(&imcf->store);

    if (rc == 0) {
        rc = ngx_http_inventory_store_due(&imcf->store, now, ids,
                                          NGX_HTTP_INVENTORY_EXPIRY_BATCH,
                                          &n);
        ngx_http_inventory_store_read_end(&imcf->store);
    }

    if (rc != 0) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "inventory: reading due reservations failed: %s",
                      mdb_strerror(rc));
        return NGX_ERROR;
    }

    if (n == 0) {
        return NGX_OK;
    }

    cmds = ngx_calloc(n * sizeof(ngx_http_inventory_cmd_t), log);
    if (cmds == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < n; i++) {
        cmds[i].type = NGX_HTTP_INVENTORY_CMD_EXPIRE;
        ngx_memcpy(cmds[i].res.id, ids[i], NGX_HTTP_INVENTORY_RES_ID_LEN);
        batch[i] = &cmds[i];
    }

    rc = ngx_http_inventory_store_execute(&imcf->store, batch, n, now);

    expired = 0;

    for (i = 0; i < n; i++) {
        if (cmds[i].outcome == NGX_HTTP_INVENTORY_OK) {
            expired++;
            ngx_http_inventory_feed_publish(imcf, cmds[i].last_seq);

            if (imcf->sh) {
                (void) ngx_atomic_fetch_add(&imcf->sh->events,
                                            cmds[i].appended);
            }
        }

        free(cmds[i].body);
    }

    ngx_free(cmds);

    if (rc != 0) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "inventory: expiring reservations failed: %s",
                      mdb_strerror(rc));
        return NGX_ERROR;
    }

    if (imcf->sh) {
        (void) ngx_atomic_fetch_add(&imcf->sh->expired, expired);
        (void) ngx_atomic_fetch_add(&imcf->sh->transactions, 1);
        (void) ngx_atomic_fetch_add(&imcf->sh->commands, n);
    }

    return n == NGX_HTTP_INVENTORY_EXPIRY_BATCH ? NGX_AGAIN : NGX_OK;
}
