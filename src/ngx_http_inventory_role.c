/*
 * The node's role: a primary, or a follower and of whom.  Set by the
 * configuration (inventory_follow), or in a cluster by the elections
 * (cluster.c), which keep it in the zone for every worker to apply
 * (role_apply(): before each request, and on a tick); and whether the
 * node may answer a write 2xx now.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_inventory_module.h"


/* inventory_follow URL [wait=TIME] [max_lag=TIME] */

char *
ngx_http_inventory_follow_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_inventory_main_conf_t  *imcf = conf;

    ngx_int_t    ms;
    ngx_str_t   *value, s;
    ngx_uint_t   i;
    ngx_msec_t  *set;

    if (imcf->follow_url.len) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_http_inventory_follow_url(cf, NULL, imcf, &value[1]) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "wait=", sizeof("wait=") - 1) == 0) {
            s.data = value[i].data + sizeof("wait=") - 1;
            s.len = value[i].len - (sizeof("wait=") - 1);
            set = &imcf->follow_wait;

        } else if (ngx_strncmp(value[i].data, "max_lag=",
                               sizeof("max_lag=") - 1)
                   == 0)
        {
            s.data = value[i].data + sizeof("max_lag=") - 1;
            s.len = value[i].len - (sizeof("max_lag=") - 1);
            set = &imcf->follow_max_lag;

        } else {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\"", &value[i]);
            return NGX_CONF_ERROR;
        }

        ms = ngx_parse_time(&s, 0);

        if (ms == NGX_ERROR || ms > 60 * 60 * 1000) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid time \"%V\"", &value[i]);
            return NGX_CONF_ERROR;
        }

        *set = (ngx_msec_t) ms;
    }

    return NGX_CONF_OK;
}


/*
 * The URL of the node to follow, from the configuration (inventory_follow)
 * or from the cluster's choice (cluster.c): parsed and resolved now.
 */

ngx_int_t
ngx_http_inventory_follow_url(ngx_conf_t *cf, ngx_log_t *log,
    ngx_http_inventory_main_conf_t *imcf, ngx_str_t *url)
{
    u_char      msg[NGX_MAX_ERROR_STR], *end;
    ngx_url_t   u;
    ngx_pool_t *pool;

    pool = cf ? cf->pool : ngx_cycle->pool;

    if (url->len <= sizeof("http://") - 1
        || ngx_strncasecmp(url->data, (u_char *) "http://",
                           sizeof("http://") - 1) != 0
        || url->data[url->len - 1] != '/')
    {
        end = ngx_snprintf(msg, sizeof(msg) - 1,
                           "inventory_follow needs the http:// URL of an "
                           "inventory_replication location, ending in "
                           "\"/\", not \"%V\"", url);
        goto failed;
    }

    ngx_memzero(&u, sizeof(ngx_url_t));
    u.url.data = url->data + sizeof("http://") - 1;
    u.url.len = url->len - (sizeof("http://") - 1);
    u.default_port = 80;
    u.uri_part = 1;

    if (ngx_parse_url(pool, &u) != NGX_OK || u.naddrs == 0) {
        end = ngx_snprintf(msg, sizeof(msg) - 1, "%s in \"%V\"",
                           u.err ? u.err : "no address", url);
        goto failed;
    }

    imcf->follow_url.data = ngx_pstrdup(pool, url);
    if (imcf->follow_url.data == NULL) {
        return NGX_ERROR;
    }

    imcf->follow_url.len = url->len;
    imcf->role_follower = 1;
    imcf->follow_gen++;

    /* a follower with no location of the module still follows */
    imcf->used = 1;
    imcf->follow = u.addrs[0];
    imcf->follow_uri = u.uri;

    imcf->follow_host.data = ngx_pnalloc(pool, u.host.len + NGX_INT_T_LEN
                                                   + 1);
    if (imcf->follow_host.data == NULL) {
        return NGX_ERROR;
    }

    imcf->follow_host.len = ngx_sprintf(imcf->follow_host.data, "%V:%d",
                                        &u.host, (int) u.port)
                            - imcf->follow_host.data;

    return NGX_OK;

failed:

    /* from the configuration: it fails; from an election: logged */
    *end = '\0';

    if (cf) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%s", msg);

    } else {
        ngx_log_error(NGX_LOG_ERR, log, 0, "inventory: %s", msg);
    }

    return NGX_ERROR;
}


/*
 * With the configuration: a node of a cluster starts as a follower of no
 * one, until the agent learns who leads, or leads itself.
 */

ngx_int_t
ngx_http_inventory_role_conf(ngx_conf_t *cf,
    ngx_http_inventory_main_conf_t *imcf)
{
    if (imcf->follow_url.len) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"inventory_cluster\" and \"inventory_follow\" "
                           "exclude each other: the cluster chooses whom "
                           "to follow");
        return NGX_ERROR;
    }

    imcf->role_follower = 1;

    return NGX_OK;
}


/*
 * In every worker, before each request and on a tick: the role the agent
 * chose, if it changed.  A worker's follower (follow.c) notices a new URL
 * by follow_gen; the expiry sweep and the write path look at
 * role_follower.
 */

void
ngx_http_inventory_role_apply(ngx_http_inventory_main_conf_t *imcf)
{
    u_char                           *url;
    ngx_str_t                         s;
    ngx_uint_t                        role;
    ngx_atomic_uint_t                 gen;
    ngx_http_inventory_cluster_sh_t  *csh;

    if (imcf->cluster_name.len == 0 || imcf->sh == NULL) {
        return;
    }

    csh = &imcf->sh->cluster;
    gen = csh->generation;

    if (gen == imcf->cluster_gen) {
        return;
    }

    url = NULL;

    ngx_shmtx_lock(&imcf->shpool->mutex);

    gen = csh->generation;
    role = csh->role;
    s.len = csh->url_len;

    if (role == NGX_HTTP_INVENTORY_ROLE_FOLLOWER) {
        url = ngx_pnalloc(ngx_cycle->pool, s.len);
        if (url) {
            ngx_memcpy(url, csh->url, s.len);
        }
    }

    ngx_shmtx_unlock(&imcf->shpool->mutex);

    imcf->cluster_gen = gen;

    if (role == NGX_HTTP_INVENTORY_ROLE_FOLLOWER && url) {
        s.data = url;

        if (ngx_http_inventory_follow_url(NULL, ngx_cycle->log, imcf, &s)
            == NGX_OK)
        {
            return;
        }
    }

    /* none (or a URL that does not parse), or the primary: no one */
    ngx_str_null(&imcf->follow_url);
    imcf->follow_gen++;
    imcf->role_follower = (role != NGX_HTTP_INVENTORY_ROLE_PRIMARY);
}


/*
 * Whether this node may answer a write 2xx now: a primary of a cluster
 * while the lease it renewed lasts (less a margin) and it is not handing
 * the lead over; any other primary.
 */

ngx_uint_t
ngx_http_inventory_role_writable(ngx_http_inventory_main_conf_t *imcf)
{
    if (imcf->cluster_name.len == 0) {
        return 1;
    }

    if (imcf->role_follower || imcf->sh == NULL
        || ngx_http_inventory_handover_busy(imcf->sh->cluster.handover.state))
    {
        return 0;
    }

    return ngx_http_inventory_clock_now() < imcf->sh->cluster.writable_until;
}


/* what the election made of this node, for every worker to apply */

void
ngx_http_inventory_role_set(ngx_http_inventory_main_conf_t *imcf,
    ngx_log_t *log, ngx_uint_t role, ngx_str_t *url)
{
    ngx_http_inventory_cluster_sh_t  *csh;

    csh = &imcf->sh->cluster;

    if (url && url->len > sizeof(csh->url)) {
        return;
    }

    if (csh->role == role
        && (url == NULL
            || (csh->url_len == url->len
                && ngx_strncmp(csh->url, url->data, url->len) == 0)))
    {
        return;
    }

    ngx_shmtx_lock(&imcf->shpool->mutex);

    csh->role = role;
    csh->url_len = url ? url->len : 0;

    if (url) {
        ngx_memcpy(csh->url, url->data, url->len);
    }

    csh->generation++;

    ngx_shmtx_unlock(&imcf->shpool->mutex);

    if (url) {
        ngx_log_error(NGX_LOG_NOTICE, log, 0,
                      "inventory cluster: \"%V\" now follows %V",
                      &imcf->cluster_name, url);

    } else {
        ngx_log_error(NGX_LOG_NOTICE, log, 0,
                      "inventory cluster: \"%V\" is now %s",
                      &imcf->cluster_name,
                      role == NGX_HTTP_INVENTORY_ROLE_PRIMARY
                      ? "the primary" : "no one's follower");
    }
}
