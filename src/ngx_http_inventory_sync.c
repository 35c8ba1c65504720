/*
 * Synchronous replication: what a node's followers hold, and the answers of
 * writes that wait for it.
 *
 * A follower names itself (its node_id, node.c) in each request for
 * transactions.  The transaction it asks after is the last one its store
 * committed, so durably applied: once this node found that transaction in
 * its own history, the seq its record names is held by that follower, and
 * is kept in the zone.  With
 * "inventory_sync_replicas N" a write's answer (any answer decided against
 * the store) waits, among the requests of wait.c, until N followers hold
 * the seq it answers with; after the timeout it is 503
 * replication-timeout instead.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_inventory_module.h"


/* a follower not heard from for this long gives its slot to a new one */
#define NGX_HTTP_INVENTORY_PEER_STALE     60000    /* ms */
/* one that polls (every 20 s at most) is heard from within this */
#define NGX_HTTP_INVENTORY_PEER_ATTACHED  25000    /* ms */


typedef struct {
    ngx_http_inventory_wake_pt  answer;
    void                       *data;
} ngx_http_inventory_sync_waiter_t;


static ngx_int_t ngx_http_inventory_sync_wake(ngx_http_request_t *r,
    void *data, ngx_uint_t final);


char *
ngx_http_inventory_sync_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_inventory_main_conf_t  *imcf = conf;

    ngx_int_t    n, ms;
    ngx_str_t   *value, s;
    ngx_uint_t   i;

    if (imcf->sync_timeout != NGX_CONF_UNSET_MSEC) {
        return "is duplicate";
    }

    value = cf->args->elts;

    n = ngx_atoi(value[1].data, value[1].len);

    if (n == NGX_ERROR || n > NGX_HTTP_INVENTORY_PEERS) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "inventory_sync_replicas needs a number of "
                           "followers from 0 to %d, not \"%V\"",
                           NGX_HTTP_INVENTORY_PEERS, &value[1]);
        return NGX_CONF_ERROR;
    }

    imcf->sync_replicas = (ngx_uint_t) n;
    imcf->sync_timeout = 5000;

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "timeout=", sizeof("timeout=") - 1)
            != 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\"", &value[i]);
            return NGX_CONF_ERROR;
        }

        s.data = value[i].data + sizeof("timeout=") - 1;
        s.len = value[i].len - (sizeof("timeout=") - 1);

        ms = ngx_parse_time(&s, 0);

        if (ms == NGX_ERROR || ms == 0 || ms > 60 * 60 * 1000) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid time \"%V\"", &value[i]);
            return NGX_CONF_ERROR;
        }

        imcf->sync_timeout = (ngx_msec_t) ms;
    }

    return NGX_CONF_OK;
}


/* a follower holds seq, durably: as its request for transactions showed */

void
ngx_http_inventory_sync_ack(ngx_http_inventory_main_conf_t *imcf,
    u_char *node, uint64_t seq)
{
    ngx_uint_t                  i;
    ngx_msec_t                  now;
    ngx_http_inventory_peer_t  *p, *empty, *stale;

    if (imcf->sh == NULL) {
        return;
    }

    now = (ngx_msec_t) ngx_http_inventory_clock_now();
    empty = NULL;
    stale = NULL;

    ngx_shmtx_lock(&imcf->shpool->mutex);

    for (i = 0; i < NGX_HTTP_INVENTORY_PEERS; i++) {
        p = &imcf->sh->repl.peers[i];

        if (ngx_memcmp(p->node, node, 16) == 0) {
            break;
        }

        if (p->heard_at == 0) {
            if (empty == NULL) {
                empty = p;
            }

        } else if (now - p->heard_at > NGX_HTTP_INVENTORY_PEER_STALE
                   && (stale == NULL || p->heard_at < stale->heard_at))
        {
            stale = p;
        }
    }

    if (i == NGX_HTTP_INVENTORY_PEERS) {
        p = empty ? empty : stale;

        if (p == NULL) {
            ngx_shmtx_unlock(&imcf->shpool->mutex);
            ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                          "inventory: more than %d followers: one is not "
                          "counted", NGX_HTTP_INVENTORY_PEERS);
            return;
        }

        /* another follower's slot: what it held is not this one's */
        p->seq = 0;
        ngx_memory_barrier();
        ngx_memcpy(p->node, node, 16);
    }

    p->seq = (ngx_atomic_uint_t) seq;
    p->heard_at = (ngx_atomic_uint_t) (now ? now : 1);

    ngx_shmtx_unlock(&imcf->shpool->mutex);
}


/* what a follower heard from lately holds: NGX_DECLINED if none such */

ngx_int_t
ngx_http_inventory_sync_peer(ngx_http_inventory_main_conf_t *imcf,
    u_char *node, uint64_t *seq)
{
    ngx_uint_t                  i;
    ngx_msec_t                  now;
    ngx_http_inventory_peer_t  *p;

    now = (ngx_msec_t) ngx_http_inventory_clock_now();

    for (i = 0; i < NGX_HTTP_INVENTORY_PEERS; i++) {
        p = &imcf->sh->repl.peers[i];

        if (p->heard_at && now - p->heard_at < NGX_HTTP_INVENTORY_PEER_ATTACHED
            && ngx_memcmp(p->node, node, 16) == 0)
        {
            *seq = p->seq;
            return NGX_OK;
        }
    }

    return NGX_DECLINED;
}


/* followers heard from lately, as health and metrics show them */

ngx_uint_t
ngx_http_inventory_sync_followers(ngx_http_inventory_main_conf_t *imcf)
{
    ngx_uint_t          i, n;
    ngx_msec_t          now;
    ngx_atomic_uint_t   heard;

    if (imcf->sh == NULL) {
        return 0;
    }

    now = (ngx_msec_t) ngx_http_inventory_clock_now();
    n = 0;

    for (i = 0; i < NGX_HTTP_INVENTORY_PEERS; i++) {
        heard = imcf->sh->repl.peers[i].heard_at;

        if (heard && now - heard < NGX_HTTP_INVENTORY_PEER_ATTACHED) {
            n++;
        }
    }

    return n;
}


/*
 * A write's answer, at seq: now if enough followers hold it, else once they
 * do, or 503 replication-timeout.  Returns what a content handler does.
 */

ngx_int_t
ngx_http_inventory_sync_wait(ngx_http_request_t *r, uint64_t seq,
    ngx_http_inventory_wake_pt answer, void *data)
{
    ngx_http_inventory_main_conf_t    *imcf;
    ngx_http_inventory_sync_waiter_t  *sw;

    imcf = ngx_http_get_module_main_conf(r, ngx_http_inventory_module);

    if (ngx_http_inventory_wait_acked(imcf) >= seq) {
        return answer(r, data, 0);
    }

    sw = ngx_palloc(r->pool, sizeof(ngx_http_inventory_sync_waiter_t));
    if (sw == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    sw->answer = answer;
    sw->data = data;

    if (imcf->sh) {
        (void) ngx_atomic_fetch_add(&imcf->sh->repl.sync_waits, 1);
    }

    return ngx_http_inventory_wait(r, seq - 1, NGX_HTTP_INVENTORY_AT_ACKED,
                                   imcf->sync_timeout,
                                   ngx_http_inventory_sync_wake, sw);
}


static ngx_int_t
ngx_http_inventory_sync_wake(ngx_http_request_t *r, void *data,
    ngx_uint_t final)
{
    ngx_http_inventory_sync_waiter_t  *sw = data;

    ngx_http_inventory_main_conf_t  *imcf;

    if (!final) {
        return sw->answer(r, sw->data, 0);
    }

    imcf = ngx_http_get_module_main_conf(r, ngx_http_inventory_module);

    if (imcf->sh) {
        (void) ngx_atomic_fetch_add(&imcf->sh->repl.sync_timeouts, 1);
    }

    ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                  "inventory: a write's transaction is not on %ui "
                  "followers after %M ms: answered replication-timeout",
                  imcf->sync_replicas, imcf->sync_timeout);

    return ngx_http_inventory_retry_later(r,
                                NGX_HTTP_INVENTORY_P_REPLICATION_TIMEOUT,
                                "the write is committed here but not yet "
                                "on enough followers: it may stand; retry "
                                "with the same Idempotency-Key", NULL);
}
