/*
 * Idempotency keys in flight, shared by all workers in the zone: a key is
 * held from the moment its request is validated until its transaction has
 * committed (or, if the request ends first, until its pool is destroyed),
 * so a second request with the key meanwhile is told 409 instead of running
 * twice.  It is let go before the response is sent: a client that repeats
 * the request on receiving the answer finds the stored response, never the
 * key still held.  A key held by a worker that died is taken over.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_inventory_module.h"
#include "ngx_http_inventory_proc.h"


typedef struct {
    ngx_str_node_t              sn;
    ngx_pid_t                   pid;
    uint64_t                    start;        /* of pid, 0: unknown */
    u_char                      data[1];
} ngx_http_inventory_inflight_t;


static ngx_uint_t ngx_http_inventory_holder_alive(
    ngx_http_inventory_inflight_t *node);
static uint64_t ngx_http_inventory_self_start(void);


typedef struct {
    ngx_slab_pool_t                *shpool;
    ngx_http_inventory_shctx_t     *sh;
    ngx_http_inventory_inflight_t  *node;
} ngx_http_inventory_inflight_cln_t;


/*
 * NGX_OK: held for the request, *handle lets it go early; NGX_BUSY: held by
 * another; NGX_DECLINED: the zone is full.
 */

ngx_int_t
ngx_http_inventory_inflight_acquire(ngx_http_request_t *r, ngx_str_t *key,
    void **handle)
{
    uint32_t                            hash;
    uint64_t                            start;
    ngx_pool_cleanup_t                 *cln;
    ngx_slab_pool_t                    *shpool;
    ngx_http_inventory_shctx_t         *sh;
    ngx_http_inventory_inflight_t      *node;
    ngx_http_inventory_main_conf_t     *imcf;
    ngx_http_inventory_inflight_cln_t  *ic;

    imcf = ngx_http_get_module_main_conf(r, ngx_http_inventory_module);
    shpool = imcf->shpool;
    sh = imcf->sh;

    cln = ngx_pool_cleanup_add(r->pool,
                               sizeof(ngx_http_inventory_inflight_cln_t));
    if (cln == NULL) {
        return NGX_ERROR;
    }

    hash = ngx_crc32_short(key->data, key->len);
    start = ngx_http_inventory_self_start();

    ngx_shmtx_lock(&shpool->mutex);

    node = (ngx_http_inventory_inflight_t *)
               ngx_str_rbtree_lookup(&sh->inflight, key, hash);

    if (node) {
        if (ngx_http_inventory_holder_alive(node)) {
            ngx_shmtx_unlock(&shpool->mutex);
            return NGX_BUSY;
        }

        /* its worker died with the request: the key is ours now */
        node->pid = ngx_pid;
        node->start = start;

    } else {
        node = ngx_slab_alloc_locked(shpool,
                                 offsetof(ngx_http_inventory_inflight_t, data)
                                 + key->len);
        if (node == NULL) {
            ngx_shmtx_unlock(&shpool->mutex);
            return NGX_DECLINED;
        }

        ngx_memcpy(node->data, key->data, key->len);
        node->sn.str.data = node->data;
        node->sn.str.len = key->len;
        node->sn.node.key = hash;
        node->pid = ngx_pid;
        node->start = start;

        ngx_rbtree_insert(&sh->inflight, &node->sn.node);
    }

    ngx_shmtx_unlock(&shpool->mutex);

    ic = cln->data;
    ic->shpool = shpool;
    ic->sh = sh;
    ic->node = node;
    cln->handler = ngx_http_inventory_inflight_release;
    *handle = ic;

    return NGX_OK;
}


void
ngx_http_inventory_inflight_release(void *data)
{
    ngx_http_inventory_inflight_cln_t  *ic = data;

    if (ic->node == NULL) {
        return;
    }

    ngx_shmtx_lock(&ic->shpool->mutex);

    /* unless another worker took it over after believing this one dead */
    if (ic->node->pid == ngx_pid) {
        ngx_rbtree_delete(&ic->sh->inflight, &ic->node->sn.node);
        ngx_slab_free_locked(ic->shpool, ic->node);
    }

    ngx_shmtx_unlock(&ic->shpool->mutex);

    ic->node = NULL;
}


static ngx_uint_t
ngx_http_inventory_holder_alive(ngx_http_inventory_inflight_t *node)
{
    return node->pid == ngx_pid
           || ngx_http_inventory_proc_alive(node->pid, node->start);
}


/* this process's start time, read once (workers are forked after init) */

static uint64_t
ngx_http_inventory_self_start(void)
{
    static ngx_pid_t  pid;
    static uint64_t   start;

    if (pid != ngx_pid) {
        start = ngx_http_inventory_proc_start(ngx_pid);
        pid = ngx_pid;
    }

    return start;
}
