/*
 * Directives, configuration, the shared-memory zone, variables and the life
 * of the LMDB environment across nginx's processes: the master checks and
 * creates the store at every (re)configuration and closes it before the
 * fork; each worker opens its own environment and closes it at exit.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_inventory_module.h"


#define NGX_HTTP_INVENTORY_DEFAULT_MAP_SIZE   (1024 * 1024 * 1024)
#define NGX_HTTP_INVENTORY_DEFAULT_ZONE_SIZE  (16 * 1024 * 1024)
#define NGX_HTTP_INVENTORY_READER_CHECK       10000


static void *ngx_http_inventory_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_inventory_init_main_conf(ngx_conf_t *cf, void *conf);
static ngx_http_handler_pt ngx_http_inventory_content_handler(
    ngx_uint_t serves);
static void *ngx_http_inventory_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_inventory_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static ngx_int_t ngx_http_inventory_postconfiguration(ngx_conf_t *cf);
static char *ngx_http_inventory_store_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_inventory_zone_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_inventory_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_inventory_reservation_ttl_check(ngx_conf_t *cf,
    void *post, void *data);
static ngx_int_t ngx_http_inventory_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_int_t ngx_http_inventory_check_store(ngx_conf_t *cf,
    ngx_http_inventory_main_conf_t *imcf);
static ngx_int_t ngx_http_inventory_worker_user(ngx_conf_t *cf,
    ngx_uid_t *uid, ngx_gid_t *gid);
static ngx_int_t ngx_http_inventory_prepare_dir(ngx_cycle_t *cycle,
    ngx_str_t *path, ngx_uid_t uid, ngx_gid_t gid);
static ngx_int_t ngx_http_inventory_reachable(ngx_cycle_t *cycle,
    ngx_str_t *path, ngx_uid_t uid, ngx_gid_t gid);
static ngx_int_t ngx_http_inventory_init_process(ngx_cycle_t *cycle);
static void ngx_http_inventory_exit_process(ngx_cycle_t *cycle);
static void ngx_http_inventory_reader_check(ngx_event_t *ev);


static ngx_conf_num_bounds_t  ngx_http_inventory_batch_bounds = {
    ngx_conf_check_num_bounds, 1, NGX_HTTP_INVENTORY_BATCH_MAX
};


static ngx_conf_post_t  ngx_http_inventory_reservation_ttl_post = {
    ngx_http_inventory_reservation_ttl_check
};


static ngx_command_t  ngx_http_inventory_commands[] = {

    { ngx_string("inventory_store"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_inventory_store_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("inventory_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_inventory_zone_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("inventory"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_inventory_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      NGX_HTTP_INVENTORY_SERVES_API,
      NULL },

    { ngx_string("inventory_metrics"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_inventory_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      NGX_HTTP_INVENTORY_SERVES_METRICS,
      NULL },

    { ngx_string("inventory_replication"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_inventory_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      NGX_HTTP_INVENTORY_SERVES_REPLICATION,
      NULL },

    { ngx_string("inventory_follow"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_inventory_follow_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("inventory_cluster"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_inventory_cluster_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("inventory_sync_replicas"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE12,
      ngx_http_inventory_sync_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("inventory_reservation_ttl"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_inventory_loc_conf_t, reservation_ttl),
      &ngx_http_inventory_reservation_ttl_post },

    { ngx_string("inventory_actor"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_inventory_loc_conf_t, actor),
      NULL },

    { ngx_string("inventory_thread_pool"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_inventory_main_conf_t, thread_pool),
      NULL },

    { ngx_string("inventory_commit_batch"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_inventory_main_conf_t, batch_max),
      &ngx_http_inventory_batch_bounds },

    { ngx_string("inventory_idempotency_ttl"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_inventory_main_conf_t, idempotency_ttl),
      NULL },

    { ngx_string("inventory_reservation_retention"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_inventory_retention_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_inventory_module_ctx = {
    ngx_http_inventory_add_variables,      /* preconfiguration */
    ngx_http_inventory_postconfiguration,  /* postconfiguration */

    ngx_http_inventory_create_main_conf,   /* create main configuration */
    ngx_http_inventory_init_main_conf,     /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_inventory_create_loc_conf,    /* create location configuration */
    ngx_http_inventory_merge_loc_conf      /* merge location configuration */
};


ngx_module_t  ngx_http_inventory_module = {
    NGX_MODULE_V1,
    &ngx_http_inventory_module_ctx,        /* module context */
    ngx_http_inventory_commands,           /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_inventory_init_process,       /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_inventory_exit_process,       /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static void *
ngx_http_inventory_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_inventory_main_conf_t  *imcf;

    imcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_inventory_main_conf_t));
    if (imcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     imcf->store_path = { 0, NULL };
     *     imcf->shm_zone = NULL;
     *     imcf->store = NULL;
     */

    imcf->map_size = NGX_CONF_UNSET_SIZE;
    imcf->sync = NGX_CONF_UNSET;
    imcf->idempotency_ttl = NGX_CONF_UNSET_MSEC;
    imcf->reservation_retention = NGX_CONF_UNSET_MSEC;
    imcf->batch_max = NGX_CONF_UNSET_UINT;
    imcf->follow_wait = NGX_CONF_UNSET_MSEC;
    imcf->follow_max_lag = NGX_CONF_UNSET_MSEC;
    imcf->sync_timeout = NGX_CONF_UNSET_MSEC;

    return imcf;
}


static char *
ngx_http_inventory_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_inventory_main_conf_t  *imcf = conf;

    ngx_conf_init_size_value(imcf->map_size,
                             NGX_HTTP_INVENTORY_DEFAULT_MAP_SIZE);
    ngx_conf_init_value(imcf->sync, 1);
    ngx_conf_init_msec_value(imcf->idempotency_ttl, 24 * 60 * 60 * 1000);
    ngx_conf_init_msec_value(imcf->reservation_retention,
                             (ngx_msec_t) 30 * 24 * 60 * 60 * 1000);

    ngx_conf_init_uint_value(imcf->batch_max, NGX_HTTP_INVENTORY_BATCH_MAX);
    ngx_conf_init_msec_value(imcf->follow_wait, 1000);
    ngx_conf_init_msec_value(imcf->follow_max_lag, 10000);
    ngx_conf_init_msec_value(imcf->sync_timeout, 5000);

    if (imcf->thread_pool.data == NULL) {
        ngx_str_set(&imcf->thread_pool, "default");
    }

    return NGX_CONF_OK;
}


static ngx_http_handler_pt
ngx_http_inventory_content_handler(ngx_uint_t serves)
{
    switch (serves) {

    case NGX_HTTP_INVENTORY_SERVES_API:
        return ngx_http_inventory_handler;

    case NGX_HTTP_INVENTORY_SERVES_METRICS:
        return ngx_http_inventory_metrics_handler;

    case NGX_HTTP_INVENTORY_SERVES_REPLICATION:
        return ngx_http_inventory_replication_handler;

    default:
        return NULL;
    }
}


static void *
ngx_http_inventory_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_inventory_loc_conf_t  *ilcf;

    ilcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_inventory_loc_conf_t));
    if (ilcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     ilcf->serves = NGX_HTTP_INVENTORY_SERVES_NONE;
     */

    ilcf->reservation_ttl = NGX_CONF_UNSET_MSEC;
    ilcf->actor = NGX_CONF_UNSET_PTR;

    return ilcf;
}


static char *
ngx_http_inventory_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_inventory_loc_conf_t  *prev = parent;
    ngx_http_inventory_loc_conf_t  *conf = child;

    ngx_http_core_loc_conf_t       *clcf;

    ngx_conf_merge_msec_value(conf->reservation_ttl, prev->reservation_ttl,
                              15 * 60 * 1000);
    ngx_conf_merge_ptr_value(conf->actor, prev->actor, NULL);

    /* a limit_except block serves its location's content, as proxy_pass */
    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (conf->serves == NGX_HTTP_INVENTORY_SERVES_NONE && clcf->lmt_excpt
        && clcf->handler == NULL)
    {
        conf->serves = prev->serves;
        clcf->handler = ngx_http_inventory_content_handler(conf->serves);
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_inventory_reservation_ttl_check(ngx_conf_t *cf, void *post,
    void *data)
{
    ngx_msec_t  *ttl = data;

    if (*ttl < 1000 || *ttl > 24 * 60 * 60 * 1000) {
        return "must be from 1s to 24h";
    }

    return NGX_CONF_OK;
}


/* inventory_store PATH [map_size=SIZE] [sync=on|off] */

static char *
ngx_http_inventory_store_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_inventory_main_conf_t  *imcf = conf;

    ssize_t     size;
    ngx_str_t  *value, s;
    ngx_uint_t  i;

    if (imcf->store_path.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    imcf->store_path = value[1];

    if (imcf->store_path.len == 0) {
        return "needs a path";
    }

    if (ngx_conf_full_name(cf->cycle, &imcf->store_path, 0) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "map_size=", sizeof("map_size=") - 1)
            == 0)
        {
            s.data = value[i].data + sizeof("map_size=") - 1;
            s.len = value[i].len - (sizeof("map_size=") - 1);

            size = ngx_parse_offset(&s);

            /* LMDB needs room for its meta pages and the named databases */
            if (size == NGX_ERROR || size < 1024 * 1024) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid map_size \"%V\", "
                                   "at least 1m is needed", &value[i]);
                return NGX_CONF_ERROR;
            }

            imcf->map_size = (size_t) size;
            continue;
        }

        if (ngx_strcmp(value[i].data, "sync=on") == 0) {
            imcf->sync = 1;
            continue;
        }

        if (ngx_strcmp(value[i].data, "sync=off") == 0) {
            imcf->sync = 0;
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* inventory_zone NAME:SIZE */

static char *
ngx_http_inventory_zone_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_inventory_main_conf_t  *imcf = conf;

    u_char     *p;
    ssize_t     size;
    ngx_str_t  *value, name, s;

    if (imcf->shm_zone) {
        return "is duplicate";
    }

    value = cf->args->elts;

    p = (u_char *) ngx_strchr(value[1].data, ':');

    if (p == NULL || p == value[1].data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid zone \"%V\", NAME:SIZE expected",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    name.data = value[1].data;
    name.len = p - value[1].data;

    s.data = p + 1;
    s.len = value[1].data + value[1].len - s.data;

    size = ngx_parse_size(&s);

    if (size == NGX_ERROR || size < (ssize_t) (8 * ngx_pagesize)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid zone size \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    imcf->shm_zone = ngx_shared_memory_add(cf, &name, size,
                                           &ngx_http_inventory_module);
    if (imcf->shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    if (imcf->shm_zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "zone \"%V\" is already used", &name);
        return NGX_CONF_ERROR;
    }

    imcf->shm_zone->init = ngx_http_inventory_init_zone;
    imcf->shm_zone->data = imcf;

    return NGX_CONF_OK;
}


/* "inventory" and "inventory_metrics": cmd->offset says what it serves */

static char *
ngx_http_inventory_directive(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_inventory_loc_conf_t *ilcf = conf;

    ngx_http_core_loc_conf_t        *clcf;
    ngx_http_inventory_main_conf_t  *imcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->handler) {
        return "is duplicate";
    }

    ilcf->serves = cmd->offset;
    clcf->handler = ngx_http_inventory_content_handler(ilcf->serves);

    imcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_inventory_module);
    imcf->used = 1;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_inventory_postconfiguration(ngx_conf_t *cf)
{
    ngx_str_t                        name;
    ngx_http_handler_pt             *h;
    ngx_http_core_main_conf_t       *cmcf;
    ngx_http_inventory_main_conf_t  *imcf;

    imcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_inventory_module);

    if (!imcf->used) {
        return NGX_OK;
    }

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    /* pushed after limit_req's, so it runs before: the keys can use ours */
    h = ngx_array_push(&cmcf->phases[NGX_HTTP_PREACCESS_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_inventory_preaccess;

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_inventory_metrics_log;

    if (imcf->store_path.data == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"inventory\" and \"inventory_metrics\" need "
                           "\"inventory_store\" in the http block");
        return NGX_ERROR;
    }

    if (ngx_http_inventory_check_store(cf, imcf) != NGX_OK) {
        return NGX_ERROR;
    }

#if (NGX_THREADS)
    /* commits run on this pool; "default" exists once it is asked for */
    if (ngx_thread_pool_add(cf, &imcf->thread_pool) == NULL) {
        return NGX_ERROR;
    }
#endif

    if (imcf->shm_zone == NULL) {
        ngx_str_set(&name, "inventory");

        imcf->shm_zone = ngx_shared_memory_add(cf, &name,
                                         NGX_HTTP_INVENTORY_DEFAULT_ZONE_SIZE,
                                         &ngx_http_inventory_module);
        if (imcf->shm_zone == NULL) {
            return NGX_ERROR;
        }

        imcf->shm_zone->init = ngx_http_inventory_init_zone;
        imcf->shm_zone->data = imcf;
    }

    return NGX_OK;
}


/* counters live on across reloads: an old zone's context is taken over */

static ngx_int_t
ngx_http_inventory_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_inventory_main_conf_t  *oimcf = data;

    ngx_slab_pool_t                 *shpool;
    ngx_http_inventory_main_conf_t  *imcf;

    imcf = shm_zone->data;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    imcf->shpool = shpool;

    /* a full zone is answered (503) or worked around, and counted */
    shpool->log_nomem = 0;

    /* a reload keeps the counters, unless the zone's layout changed */
    if (oimcf && oimcf->sh->size == sizeof(ngx_http_inventory_shctx_t)) {
        imcf->sh = oimcf->sh;
        return NGX_OK;
    }

    if (shm_zone->shm.exists) {
        imcf->sh = shpool->data;
        return NGX_OK;
    }

    imcf->sh = ngx_slab_calloc(shpool, sizeof(ngx_http_inventory_shctx_t));
    if (imcf->sh == NULL) {
        return NGX_ERROR;
    }

    imcf->sh->size = sizeof(ngx_http_inventory_shctx_t);
    shpool->data = imcf->sh;

    ngx_rbtree_init(&imcf->sh->inflight, &imcf->sh->sentinel,
                    ngx_str_rbtree_insert_value);

    /* without room for it, each worker commits on its own */
    imcf->sh->commit = ngx_http_inventory_commit_zone_init(shpool);

    if (imcf->sh->commit == NULL) {
        ngx_log_error(NGX_LOG_NOTICE, shm_zone->shm.log, 0,
                      "inventory: zone \"%V\" has no room for the group "
                      "commit's slots: each worker commits its own writes",
                      &shm_zone->shm.name);
    }

    return NGX_OK;
}


static ngx_http_inventory_main_conf_t *
ngx_http_inventory_cycle_conf(ngx_cycle_t *cycle)
{
    ngx_http_inventory_main_conf_t  *imcf;

    if (ngx_get_conf(cycle->conf_ctx, ngx_http_module) == NULL) {
        return NULL;
    }

    imcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_inventory_module);

    if (imcf == NULL || imcf->store_path.data == NULL) {
        return NULL;
    }

    return imcf;
}


/*
 * At configuration time, in the master (at start, at every reload, and for
 * nginx -t): create the store's directory and databases, hand them to the
 * worker user, and prove the store opens, then close it before any fork.
 * A problem fails the configuration: nginx does not start, or a reload is
 * refused and the running workers go on.
 */

static ngx_int_t
ngx_http_inventory_check_store(ngx_conf_t *cf,
    ngx_http_inventory_main_conf_t *imcf)
{
    int                         rc;
    uint64_t                    epoch;
    ngx_uid_t                   uid;
    ngx_gid_t                   gid;
    ngx_uint_t                  promote;
    ngx_http_inventory_store_t *st;

    if (ngx_http_inventory_worker_user(cf, &uid, &gid) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_http_inventory_prepare_dir(cf->cycle, &imcf->store_path, uid,
                                       gid)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    rc = ngx_http_inventory_store_open(&st, (char *) imcf->store_path.data,
                                       imcf->map_size, imcf->sync,
                                       NGX_HTTP_INVENTORY_STORE_CREATE);
    if (rc != 0) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "inventory_store \"%V\" cannot be opened: %s",
                      &imcf->store_path,
                      ngx_http_inventory_store_strerror(rc));
        return NGX_ERROR;
    }

    /* in a cluster, what the last election made of this node */
    if (imcf->cluster_name.len
        && ngx_http_inventory_role_conf(cf, imcf) != NGX_OK)
    {
        ngx_http_inventory_store_close(st);
        return NGX_ERROR;
    }

    /*
     * A follower configured as the primary now is promoted: its epoch
     * grows, and every copy of an older epoch is fenced off from it.  Not
     * by "nginx -t", which only looks.
     */
    promote = !ngx_test_config && !imcf->role_follower
              && ngx_http_inventory_node_was_follower(cf, imcf);

    if (promote) {
        rc = ngx_http_inventory_store_promote(st,
                                        ngx_http_inventory_clock_now(),
                                        &epoch);
        if (rc != 0) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "inventory_store \"%V\" cannot be promoted: %s",
                          &imcf->store_path,
                          ngx_http_inventory_store_strerror(rc));
            ngx_http_inventory_store_close(st);
            return NGX_ERROR;
        }

        ngx_log_error(NGX_LOG_NOTICE, cf->log, 0,
                      "inventory: the store \"%V\", a follower's until now, "
                      "is the primary's at epoch %uL", &imcf->store_path,
                      epoch);
    }

    ngx_http_inventory_store_close(st);

    /* "nginx -t" changes nothing: the role it read stays for the start */
    if (!ngx_test_config
        && ngx_http_inventory_node_files(cf, imcf) != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* the databases may have just been created by root */
    return ngx_http_inventory_prepare_dir(cf->cycle, &imcf->store_path, uid,
                                          gid);
}


/*
 * The user workers will run as: nginx settles its default only after the
 * configuration is read, so the same default is looked up here.  (uid_t)
 * -1 when workers keep the master's user.
 */

static ngx_int_t
ngx_http_inventory_worker_user(ngx_conf_t *cf, ngx_uid_t *uid,
    ngx_gid_t *gid)
{
    struct group     *grp;
    struct passwd    *pwd;
    ngx_core_conf_t  *ccf;

    *uid = (ngx_uid_t) NGX_CONF_UNSET_UINT;
    *gid = (ngx_gid_t) NGX_CONF_UNSET_UINT;

    if (geteuid() != 0) {
        return NGX_OK;
    }

    ccf = (ngx_core_conf_t *) ngx_get_conf(cf->cycle->conf_ctx,
                                           ngx_core_module);

    if (ccf->user != (ngx_uid_t) NGX_CONF_UNSET_UINT) {
        *uid = ccf->user;
        *gid = ccf->group;
        return NGX_OK;
    }

    pwd = getpwnam(NGX_USER);
    grp = getgrnam(NGX_GROUP);

    if (pwd == NULL || grp == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "inventory_store: cannot find the worker user "
                           "\"" NGX_USER "\" or group \"" NGX_GROUP "\"");
        return NGX_ERROR;
    }

    *uid = pwd->pw_uid;
    *gid = grp->gr_gid;

    return NGX_OK;
}


static ngx_int_t
ngx_http_inventory_prepare_dir(ngx_cycle_t *cycle, ngx_str_t *path,
    ngx_uid_t uid, ngx_gid_t gid)
{
    u_char            *dir, *file;
    ngx_uint_t         i;
    ngx_file_info_t    fi;
    static const char *files[] = { "data.mdb", "lock.mdb", "role",
                                   "node_id" };

    dir = ngx_pnalloc(cycle->pool, path->len + 1);
    if (dir == NULL) {
        return NGX_ERROR;
    }

    /* the parents, 0755; the store itself below, 0700 */
    ngx_sprintf(dir, "%V%Z", path);

    if (ngx_create_full_path(dir, 0755) != 0 && ngx_errno != NGX_EEXIST) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_errno,
                      "inventory_store: cannot create \"%V\"", path);
        return NGX_ERROR;
    }

    if (ngx_create_dir(path->data, 0700) == NGX_FILE_ERROR
        && ngx_errno != NGX_EEXIST)
    {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_errno,
                      "inventory_store: cannot create \"%V\"", path);
        return NGX_ERROR;
    }

    if (ngx_file_info(path->data, &fi) == NGX_FILE_ERROR
        || !ngx_is_dir(&fi))
    {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_errno,
                      "inventory_store: \"%V\" is not a directory", path);
        return NGX_ERROR;
    }

    if (uid == (ngx_uid_t) NGX_CONF_UNSET_UINT) {
        return NGX_OK;
    }

    /* workers run as ccf->user: they must own the store and reach it */

    file = ngx_pnalloc(cycle->pool, path->len + sizeof("/lock.mdb"));
    if (file == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < 1 + sizeof(files) / sizeof(files[0]); i++) {
        if (i == 0) {
            ngx_sprintf(file, "%V%Z", path);

        } else {
            ngx_sprintf(file, "%V/%s%Z", path, files[i - 1]);

            if (ngx_file_info(file, &fi) == NGX_FILE_ERROR) {
                continue;
            }
        }

        if (chown((char *) file, uid, gid) == -1) {
            ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_errno,
                          "inventory_store: chown(\"%s\") failed", file);
            return NGX_ERROR;
        }
    }

    return ngx_http_inventory_reachable(cycle, path, uid, gid);
}


/* every directory above the store must let the worker user pass */

static ngx_int_t
ngx_http_inventory_reachable(ngx_cycle_t *cycle, ngx_str_t *path,
    ngx_uid_t uid, ngx_gid_t gid)
{
    u_char           *p, *dir;
    ngx_uint_t        ok;
    ngx_file_info_t   fi;

    dir = ngx_pnalloc(cycle->pool, path->len + 1);
    if (dir == NULL) {
        return NGX_ERROR;
    }

    ngx_cpystrn(dir, path->data, path->len + 1);

    for (p = dir + 1; /* void */ ; p++) {

        if (*p != '/' && *p != '\0') {
            continue;
        }

        *p = '\0';

        if (ngx_file_info(dir, &fi) == NGX_FILE_ERROR) {
            ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_errno,
                          "inventory_store: stat(\"%s\") failed", dir);
            return NGX_ERROR;
        }

        if (fi.st_uid == uid) {
            ok = fi.st_mode & S_IXUSR;

        } else if (fi.st_gid == gid) {
            ok = fi.st_mode & S_IXGRP;

        } else {
            ok = fi.st_mode & S_IXOTH;
        }

        if (!ok) {
            ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                          "inventory_store: the worker user cannot enter "
                          "\"%s\"; allow it (chmod o+x) or move the store",
                          dir);
            return NGX_ERROR;
        }

        if (p == dir + path->len) {
            return NGX_OK;
        }

        *p = '/';
    }
}


static ngx_int_t
ngx_http_inventory_init_process(ngx_cycle_t *cycle)
{
    int                              rc;
    ngx_http_inventory_main_conf_t  *imcf;

    imcf = ngx_http_inventory_cycle_conf(cycle);
    if (imcf == NULL) {
        return NGX_OK;
    }

    rc = ngx_http_inventory_store_open(&imcf->store,
                                       (char *) imcf->store_path.data,
                                       imcf->map_size, imcf->sync, 0);
    if (rc != 0) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "inventory_store \"%V\" cannot be opened: %s",
                      &imcf->store_path,
                      ngx_http_inventory_store_strerror(rc));
        return NGX_ERROR;
    }

    ngx_http_inventory_store_set_idem_ttl(imcf->store, imcf->idempotency_ttl);

    if (ngx_http_inventory_commit_init(cycle, imcf) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_http_inventory_wait_init(imcf);

    /*
     * A follower's expiries come from its primary, as transactions; in a
     * cluster the role changes with elections, and both wait for it.
     */
    if (imcf->follow_url.len || imcf->cluster_name.len) {
        ngx_http_inventory_follow_start(cycle, imcf);
    }

    if (!imcf->role_follower || imcf->cluster_name.len) {
        ngx_http_inventory_expiry_start(cycle, imcf);
    }

    if (imcf->cluster_name.len) {
        ngx_http_inventory_cluster_start(cycle, imcf);
    }

    imcf->reader_check.handler = ngx_http_inventory_reader_check;
    imcf->reader_check.data = imcf;
    imcf->reader_check.log = cycle->log;
    imcf->reader_check.cancelable = 1;

    ngx_add_timer(&imcf->reader_check, NGX_HTTP_INVENTORY_READER_CHECK);

    return NGX_OK;
}


static void
ngx_http_inventory_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_inventory_main_conf_t  *imcf;

    imcf = ngx_http_inventory_cycle_conf(cycle);

    if (imcf == NULL || imcf->store == NULL) {
        return;
    }

    ngx_http_inventory_follow_exit(imcf);
    ngx_http_inventory_cluster_exit(imcf);
    ngx_http_inventory_commit_exit(imcf->committer);
    ngx_http_inventory_store_close(imcf->store);
    imcf->store = NULL;
}


/* a worker killed inside a read transaction leaves its reader slot taken */

static void
ngx_http_inventory_reader_check(ngx_event_t *ev)
{
    int                              dead;
    ngx_http_inventory_main_conf_t  *imcf;

    imcf = ev->data;

    if (ngx_http_inventory_store_reader_check(imcf->store, &dead) == 0
        && dead > 0)
    {
        ngx_log_error(NGX_LOG_NOTICE, ev->log, 0,
                      "inventory: cleared %d stale LMDB reader slots", dead);
    }

    if (!ngx_exiting && !ngx_terminate && !ngx_quit) {
        ngx_add_timer(ev, NGX_HTTP_INVENTORY_READER_CHECK);
    }
}
