/*
 * Automatic failover (inventory_cluster): the nodes naming one etcd
 * cluster elect one primary through an etcd lease, as Patroni does for
 * PostgreSQL; data moves over the replication stream, never through etcd.
 *
 * One worker per node runs the node's part (a lease in the zone), every
 * quarter of the ttl, over etcd's JSON gateway (etcd.c):
 *
 *   * the primary renews the lease its leader key is bound to, and takes
 *     writes (2xx) only until the time it sent the last renewal that
 *     succeeded plus half the ttl: a lease alone does not fence (a paused
 *     holder wakes up believing it still holds it), so it stops before
 *     etcd can have given the key to another, early enough that its
 *     followers publish what they hold (every quarter of the ttl) before
 *     an election reads it; the epochs fence the rest;
 *   * a follower publishes the seq it holds under a member key of its own
 *     lease, follows the node the leader key names, and when there is
 *     none, takes the key (a transaction: create_revision = 0) only if no
 *     live member holds more than it: so the new primary holds every
 *     write acknowledged with inventory_sync_replicas;
 *   * a primary asked to hand over (handover.c) names its successor in the
 *     leader key, under its own lease; the successor, holding what the key
 *     says, renews that lease as its own and is promoted.
 *
 * What the election made of the node (primary, follower of a URL, or
 * none while it is not known) is kept in the zone, and every worker
 * applies it (role.c, before each request, and on a tick): which
 * node it follows, whether it takes writes and sweeps expiries.  A node
 * that wins is promoted first (its epoch grows, on the thread pool).
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_inventory_module.h"
#include "ngx_http_inventory_cluster.h"


#define NGX_HTTP_INVENTORY_CLUSTER_LEASE  1500      /* ms, the agent's */
#define NGX_HTTP_INVENTORY_CLUSTER_APPLY  100       /* ms, every worker */
#define NGX_HTTP_INVENTORY_CLUSTER_HANDOVER  5      /* ms, while one runs */


static void ngx_http_inventory_cluster_tick(ngx_event_t *ev);
static void ngx_http_inventory_cluster_applier(ngx_event_t *ev);
static void ngx_http_inventory_cluster_promote(void *data, ngx_log_t *log);
static void ngx_http_inventory_cluster_promoted(ngx_event_t *ev);
static void ngx_http_inventory_cluster_call(ngx_http_inventory_agent_t *a,
    ngx_http_inventory_agent_step_e step, const char *path, u_char *end);
static void ngx_http_inventory_cluster_answer(ngx_http_inventory_etcd_t *e,
    ngx_uint_t status, ngx_http_inventory_json_t *answer);
static void ngx_http_inventory_cluster_renewed(ngx_http_inventory_agent_t *a,
    ngx_http_inventory_json_t *answer);
static void ngx_http_inventory_cluster_member(ngx_http_inventory_agent_t *a);
static void ngx_http_inventory_cluster_leader(ngx_http_inventory_agent_t *a,
    ngx_http_inventory_json_t *answer);
static void ngx_http_inventory_cluster_members(
    ngx_http_inventory_agent_t *a, ngx_http_inventory_json_t *answer);
static void ngx_http_inventory_cluster_adopt(ngx_http_inventory_agent_t *a,
    ngx_http_inventory_json_t *kv, ngx_str_t *value);
static void ngx_http_inventory_cluster_take(ngx_http_inventory_agent_t *a);
static void ngx_http_inventory_cluster_lead(ngx_http_inventory_agent_t *a,
    const char *how);
static void ngx_http_inventory_cluster_handover(ngx_event_t *ev);


/* inventory_cluster etcd=URL[,URL...] name=NAME advertise=URL [ttl=TIME] */

char *
ngx_http_inventory_cluster_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_inventory_main_conf_t  *imcf = conf;

    u_char      *p, *last, *comma, c;
    ngx_int_t    ms;
    ngx_str_t   *value, s;
    ngx_url_t    u;
    ngx_uint_t   i, k;
    ngx_addr_t  *addr;

    if (imcf->cluster_name.len) {
        return "is duplicate";
    }

    value = cf->args->elts;

    imcf->cluster_ttl = 10000;
    imcf->cluster_etcd = ngx_array_create(cf->pool, 3, sizeof(ngx_addr_t));
    if (imcf->cluster_etcd == NULL) {
        return NGX_CONF_ERROR;
    }

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "etcd=", 5) == 0) {
            p = value[i].data + 5;
            last = value[i].data + value[i].len;

            while (p < last) {
                comma = ngx_strlchr(p, last, ',');
                if (comma == NULL) {
                    comma = last;
                }

                if (comma - p <= 7 || ngx_strncmp(p, "http://", 7) != 0) {
                    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                       "inventory_cluster: etcd needs "
                                       "http:// URLs, not \"%V\"",
                                       &value[i]);
                    return NGX_CONF_ERROR;
                }

                ngx_memzero(&u, sizeof(ngx_url_t));
                u.url.data = p + 7;
                u.url.len = comma - p - 7;
                u.default_port = 2379;

                if (u.url.len && u.url.data[u.url.len - 1] == '/') {
                    u.url.len--;
                }

                if (ngx_parse_url(cf->pool, &u) != NGX_OK || u.naddrs == 0) {
                    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                       "inventory_cluster: %s in \"%V\"",
                                       u.err ? u.err : "no address",
                                       &value[i]);
                    return NGX_CONF_ERROR;
                }

                for (k = 0; k < u.naddrs; k++) {
                    addr = ngx_array_push(imcf->cluster_etcd);
                    if (addr == NULL) {
                        return NGX_CONF_ERROR;
                    }

                    *addr = u.addrs[k];
                }

                p = comma + 1;
            }

        } else if (ngx_strncmp(value[i].data, "name=", 5) == 0) {
            imcf->cluster_name.data = value[i].data + 5;
            imcf->cluster_name.len = value[i].len - 5;

            for (k = 0; k < imcf->cluster_name.len; k++) {
                c = imcf->cluster_name.data[k];

                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
                      || (c >= '0' && c <= '9') || c == '-'
                      || c == '_' || c == '.'))
                {
                    break;
                }
            }

            if (k == 0 || k < imcf->cluster_name.len || k > 64) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "inventory_cluster: a name is 1 to 64 "
                                   "letters, digits, \"-\", \"_\" or "
                                   "\".\", not \"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }

        } else if (ngx_strncmp(value[i].data, "advertise=", 10) == 0) {
            imcf->cluster_advertise.data = value[i].data + 10;
            imcf->cluster_advertise.len = value[i].len - 10;

            s = imcf->cluster_advertise;

            if (s.len <= 7 || s.len > 512
                || ngx_strncmp(s.data, "http://", 7) != 0
                || s.data[s.len - 1] != '/'
                || ngx_strlchr(s.data, s.data + s.len, '"')
                || ngx_strlchr(s.data, s.data + s.len, '\\'))
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "inventory_cluster: advertise needs the "
                                   "http:// URL of this node's "
                                   "inventory_replication location, ending "
                                   "in \"/\", not \"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }

        } else if (ngx_strncmp(value[i].data, "ttl=", 4) == 0) {
            s.data = value[i].data + 4;
            s.len = value[i].len - 4;

            ms = ngx_parse_time(&s, 0);

            if (ms == NGX_ERROR || ms < 1000 || ms > 3600 * 1000) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "inventory_cluster: ttl is 1s to 1h, "
                                   "not \"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }

            imcf->cluster_ttl = (ngx_msec_t) ms;

        } else {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\"", &value[i]);
            return NGX_CONF_ERROR;
        }
    }

    if (imcf->cluster_etcd->nelts == 0 || imcf->cluster_name.len == 0
        || imcf->cluster_advertise.len == 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "inventory_cluster needs etcd=, name= and "
                           "advertise=");
        return NGX_CONF_ERROR;
    }

    imcf->used = 1;

    return NGX_CONF_OK;
}


/* on a worker: the agent; the zone's lease picks the worker that runs it */

void
ngx_http_inventory_cluster_start(ngx_cycle_t *cycle,
    ngx_http_inventory_main_conf_t *imcf)
{
    ngx_http_inventory_agent_t  *a;

    a = ngx_pcalloc(cycle->pool, sizeof(ngx_http_inventory_agent_t));
    if (a == NULL) {
        return;
    }

    a->imcf = imcf;
    a->etcd.endpoints = imcf->cluster_etcd->elts;
    a->etcd.nendpoints = imcf->cluster_etcd->nelts;
    a->etcd.log = cycle->log;
    a->etcd.timeout = ngx_max(imcf->cluster_ttl / 4, 500);

    a->tick.handler = ngx_http_inventory_cluster_tick;
    a->tick.data = a;
    a->tick.log = cycle->log;
    a->tick.cancelable = 1;

    a->handover.handler = ngx_http_inventory_cluster_handover;
    a->handover.data = a;
    a->handover.log = cycle->log;
    a->handover.cancelable = 1;

    a->apply.handler = ngx_http_inventory_cluster_applier;
    a->apply.data = a;
    a->apply.log = cycle->log;
    a->apply.cancelable = 1;

    a->task = ngx_thread_task_alloc(cycle->pool, 0);
    if (a->task == NULL) {
        return;
    }

    a->task->ctx = a;
    a->task->handler = ngx_http_inventory_cluster_promote;
    a->task->event.handler = ngx_http_inventory_cluster_promoted;
    a->task->event.data = a;
    a->task->event.log = cycle->log;

    imcf->cluster = a;

    ngx_add_timer(&a->tick, 100);
    ngx_add_timer(&a->apply, NGX_HTTP_INVENTORY_CLUSTER_APPLY);
}


/* the worker exits: the agent's call to etcd, if any, ends with it */

void
ngx_http_inventory_cluster_exit(ngx_http_inventory_main_conf_t *imcf)
{
    ngx_http_inventory_agent_t  *a = imcf->cluster;

    if (a == NULL) {
        return;
    }

    ngx_http_inventory_etcd_close(&a->etcd);

    if (imcf->sh) {
        (void) ngx_atomic_cmp_set(&imcf->sh->cluster.pid,
                                  (ngx_atomic_uint_t) ngx_pid, 0);
    }
}


static void
ngx_http_inventory_cluster_applier(ngx_event_t *ev)
{
    ngx_http_inventory_agent_t  *a = ev->data;

    if (ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    ngx_http_inventory_role_apply(a->imcf);

    if (a->imcf->sh == NULL) {
        ngx_add_timer(ev, NGX_HTTP_INVENTORY_CLUSTER_APPLY);
        return;
    }

    /* a handover asked of this node, in any worker: the agent's runs it */
    if (ngx_http_inventory_handover_busy(
            a->imcf->sh->cluster.handover.state)
        && !a->handover.timer_set)
    {
        ngx_add_timer(&a->handover, 1);
    }

    ngx_add_timer(ev, NGX_HTTP_INVENTORY_CLUSTER_APPLY);
}


/* a handover's steps, while one runs, in the worker that runs the agent */

static void
ngx_http_inventory_cluster_handover(ngx_event_t *ev)
{
    ngx_http_inventory_agent_t  *a = ev->data;

    u_char                           *end;
    const char                       *path;
    ngx_http_inventory_agent_step_e   step;
    ngx_http_inventory_cluster_sh_t  *csh;

    csh = &a->imcf->sh->cluster;

    if (ngx_exiting || ngx_terminate || ngx_quit
        || csh->pid != (ngx_atomic_uint_t) ngx_pid)
    {
        return;
    }

    if (a->step == ngx_http_inventory_agent_idle) {
        step = ngx_http_inventory_handover_next(a, &path, &end);

        if (step != ngx_http_inventory_agent_idle) {
            ngx_http_inventory_cluster_call(a, step, path, end);
        }
    }

    if (ngx_http_inventory_handover_busy(csh->handover.state)) {
        ngx_add_timer(ev, NGX_HTTP_INVENTORY_CLUSTER_HANDOVER);
    }
}


static void
ngx_http_inventory_cluster_tick(ngx_event_t *ev)
{
    ngx_http_inventory_agent_t  *a = ev->data;

    u_char                          *p;
    uint64_t                         now;
    ngx_http_inventory_cluster_sh_t *csh;
    ngx_http_inventory_identity_t    id;
    ngx_http_inventory_main_conf_t  *imcf;

    imcf = a->imcf;

    if (ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    ngx_add_timer(ev, ngx_max(imcf->cluster_ttl / 4, 250));

    if (imcf->sh == NULL) {
        return;
    }

    csh = &imcf->sh->cluster;
    now = ngx_http_inventory_clock_now();

    /* renewed even while a call runs: a slow etcd moves no agent */
    if (!ngx_http_inventory_lease(&csh->pid, &csh->until, ev->log, now,
                                  NGX_HTTP_INVENTORY_CLUSTER_LEASE)
        || a->step != ngx_http_inventory_agent_idle)
    {
        return;
    }

    if (csh->role == NGX_HTTP_INVENTORY_ROLE_PRIMARY) {
        /* the primary: renew the lease its key is bound to */
        if (csh->leader_lease == 0) {
            ngx_http_inventory_role_set(a->imcf, a->etcd.log,
                                        NGX_HTTP_INVENTORY_ROLE_NONE, NULL);
            return;
        }

        p = ngx_sprintf(a->body, "{\"ID\":\"%uA\"}", csh->leader_lease);
        ngx_http_inventory_cluster_call(a, ngx_http_inventory_agent_renew,
                                        "/v3/lease/keepalive", p);
        return;
    }

    /* a follower: its member lease, what it holds, then who leads */
    a->seq = 0;

    if (ngx_http_inventory_store_read_begin(imcf->store) == 0) {
        if (ngx_http_inventory_store_identity(imcf->store, &id) == 0) {
            a->seq = id.last_seq;
            a->store_epoch = id.epoch;
        }

        ngx_http_inventory_store_read_end(imcf->store);
    }

    if (csh->member_lease == 0) {
        p = ngx_sprintf(a->body, "{\"TTL\":%M}",
                        ngx_max(imcf->cluster_ttl / 1000, 1));
        ngx_http_inventory_cluster_call(a,
                                        ngx_http_inventory_agent_member_lease,
                                        "/v3/lease/grant", p);
        return;
    }

    p = ngx_sprintf(a->body, "{\"ID\":\"%uA\"}", csh->member_lease);
    ngx_http_inventory_cluster_call(a, ngx_http_inventory_agent_member_renew,
                                    "/v3/lease/keepalive", p);
}


/*
 * The bodies sent to etcd are built here with ngx_sprintf, not yajl: they
 * hold numbers, base64 and this node's name and URL, which the directive
 * checked for characters JSON would have to escape.
 */

static void
ngx_http_inventory_cluster_call(ngx_http_inventory_agent_t *a,
    ngx_http_inventory_agent_step_e step, const char *path, u_char *end)
{
    a->step = step;
    a->sent_at = ngx_http_inventory_clock_now();

    if (ngx_http_inventory_etcd_call(&a->etcd, path, a->body,
                                     end - a->body,
                                     ngx_http_inventory_cluster_answer, a)
        != NGX_OK)
    {
        a->step = ngx_http_inventory_agent_idle;
    }
}


static void
ngx_http_inventory_cluster_answer(ngx_http_inventory_etcd_t *e,
    ngx_uint_t status, ngx_http_inventory_json_t *answer)
{
    ngx_http_inventory_agent_t  *a = e->data;

    u_char                           *p;
    ngx_http_inventory_json_t        *ok;
    ngx_http_inventory_agent_step_e   step;
    ngx_http_inventory_cluster_sh_t  *csh;

    step = a->step;
    a->step = ngx_http_inventory_agent_idle;
    csh = &a->imcf->sh->cluster;

    if (answer == NULL || status != NGX_HTTP_OK) {
        (void) ngx_atomic_fetch_add(&csh->etcd_errors, 1);

        if (answer) {
            ngx_log_error(NGX_LOG_WARN, e->log, 0,
                          "inventory cluster: etcd answered %ui", status);
        }

        if (step == ngx_http_inventory_agent_renew) {
            ngx_http_inventory_cluster_renewed(a, NULL);

        } else if (step == ngx_http_inventory_agent_handover_members
                   || step == ngx_http_inventory_agent_handover_switch)
        {
            ngx_http_inventory_handover_answer(a, step, NULL);
        }

        return;
    }

    switch (step) {

    case ngx_http_inventory_agent_renew:
        ngx_http_inventory_cluster_renewed(a, answer);
        return;

    case ngx_http_inventory_agent_member_lease:
        csh->member_lease = ngx_http_inventory_etcd_number(answer, "ID");

        if (csh->member_lease) {
            ngx_http_inventory_cluster_member(a);
        }

        return;

    case ngx_http_inventory_agent_member_renew:
        if (ngx_http_inventory_etcd_number(
                ngx_http_inventory_json_get(answer, "result"), "TTL")
            == 0)
        {
            /* expired: another is granted next round */
            csh->member_lease = 0;
            return;
        }

        ngx_http_inventory_cluster_member(a);
        return;

    case ngx_http_inventory_agent_member_put:
        p = ngx_cpymem(a->body, "{\"key\":\"", sizeof("{\"key\":\"") - 1);
        p = ngx_http_inventory_etcd_key(p, "leader", NULL);
        *p++ = '"';
        *p++ = '}';
        ngx_http_inventory_cluster_call(a, ngx_http_inventory_agent_leader,
                                        "/v3/kv/range", p);
        return;

    case ngx_http_inventory_agent_leader:
        ngx_http_inventory_cluster_leader(a, answer);
        return;

    case ngx_http_inventory_agent_members:
        ngx_http_inventory_cluster_members(a, answer);
        return;

    case ngx_http_inventory_agent_grant:
        a->grant = ngx_http_inventory_etcd_number(answer, "ID");

        if (a->grant) {
            ngx_http_inventory_cluster_take(a);
        }

        return;

    case ngx_http_inventory_agent_take:
        ok = ngx_http_inventory_json_get(answer, "succeeded");

        if (ok == NULL || !ok->boolean) {
            /* another was quicker: it is followed next round */
            return;
        }

        ngx_http_inventory_cluster_lead(a, "was elected");
        return;

    case ngx_http_inventory_agent_adopt:
        if (ngx_http_inventory_etcd_number(
                ngx_http_inventory_json_get(answer, "result"), "TTL")
            == 0)
        {
            /* the lease ran out meanwhile: an election follows */
            return;
        }

        ngx_http_inventory_cluster_lead(a, "took over the lead handed to it "
                                        "and is");
        return;

    case ngx_http_inventory_agent_handover_members:
    case ngx_http_inventory_agent_handover_switch:
        ngx_http_inventory_handover_answer(a, step, answer);
        return;

    default:
        return;
    }
}


/*
 * The primary's renewal came back (answer NULL: it failed): writes are
 * answered 2xx until its send time plus half the ttl; once etcd
 * says the lease is gone, or that time passed, the node steps down.
 */

static void
ngx_http_inventory_cluster_renewed(ngx_http_inventory_agent_t *a,
    ngx_http_inventory_json_t *answer)
{
    uint64_t                          ttl;
    ngx_http_inventory_cluster_sh_t  *csh;

    csh = &a->imcf->sh->cluster;
    ttl = 0;

    if (answer) {
        ttl = ngx_http_inventory_etcd_number(
                  ngx_http_inventory_json_get(answer, "result"), "TTL");
    }

    if (ttl) {
        csh->writable_until = a->sent_at + ttl * 1000 / 2;
        return;
    }

    if (answer || ngx_http_inventory_clock_now() >= csh->writable_until) {
        ngx_log_error(NGX_LOG_WARN, a->etcd.log, 0,
                      "inventory cluster: \"%V\" lost its lease: it takes "
                      "no more writes", &a->imcf->cluster_name);

        csh->writable_until = 0;
        csh->leader_lease = 0;
        ngx_http_inventory_role_set(a->imcf, a->etcd.log,
                                    NGX_HTTP_INVENTORY_ROLE_NONE, NULL);
    }
}


/* a follower publishes the seq it holds, under its member lease */

static void
ngx_http_inventory_cluster_member(ngx_http_inventory_agent_t *a)
{
    u_char                          *p, value[768], *v;
    ngx_str_t                        src, dst;
    ngx_http_inventory_main_conf_t  *imcf;

    imcf = a->imcf;

    /* its URL and node id: whom a primary may hand the lead over to */
    v = ngx_sprintf(value, "{\"name\":\"%V\",\"seq\":%uL,"
                    "\"advertise\":\"%V\",\"node\":\"",
                    &imcf->cluster_name, a->seq, &imcf->cluster_advertise);
    v = ngx_hex_dump(v, imcf->node_id, sizeof(imcf->node_id));
    *v++ = '"';
    *v++ = '}';
    src.data = value;
    src.len = v - value;

    p = ngx_cpymem(a->body, "{\"key\":\"", sizeof("{\"key\":\"") - 1);
    p = ngx_http_inventory_etcd_key(p, "members/", &imcf->cluster_name);
    p = ngx_cpymem(p, "\",\"value\":\"", sizeof("\",\"value\":\"") - 1);

    dst.data = p;
    ngx_encode_base64(&dst, &src);
    p += dst.len;

    p = ngx_sprintf(p, "\",\"lease\":\"%uA\"}",
                    imcf->sh->cluster.member_lease);

    ngx_http_inventory_cluster_call(a, ngx_http_inventory_agent_member_put,
                                    "/v3/kv/put", p);
}


/* who leads: followed; no one: the members' seqs decide who may take it */

static void
ngx_http_inventory_cluster_leader(ngx_http_inventory_agent_t *a,
    ngx_http_inventory_json_t *answer)
{
    u_char                     *p;
    ngx_str_t                   value, name, url;
    ngx_http_inventory_json_t  *kvs;

    kvs = ngx_http_inventory_json_get(answer, "kvs");

    if (kvs && kvs->type == NGX_HTTP_INVENTORY_JSON_ARRAY && kvs->child) {
        if (ngx_http_inventory_etcd_value(a->etcd.pool, kvs->child, &value)
            != NGX_OK
            || ngx_http_inventory_etcd_field(a->etcd.pool, &value,
                                                "name", &name)
               != NGX_OK
            || ngx_http_inventory_etcd_field(a->etcd.pool, &value,
                                                "advertise", &url)
               != NGX_OK)
        {
            ngx_log_error(NGX_LOG_WARN, a->etcd.log, 0,
                          "inventory cluster: the leader key holds no "
                          "leader");
            return;
        }

        if (name.len == a->imcf->cluster_name.len
            && ngx_strncmp(name.data, a->imcf->cluster_name.data, name.len)
               == 0)
        {
            ngx_http_inventory_cluster_adopt(a, kvs->child, &value);
            return;
        }

        ngx_http_inventory_role_set(a->imcf, a->etcd.log,
                                    NGX_HTTP_INVENTORY_ROLE_FOLLOWER, &url);
        return;
    }

    p = ngx_cpymem(a->body, "{\"key\":\"", sizeof("{\"key\":\"") - 1);
    p = ngx_http_inventory_etcd_key(p, "members/", NULL);
    p = ngx_cpymem(p, "\",\"range_end\":\"",
                   sizeof("\",\"range_end\":\"") - 1);
    p = ngx_http_inventory_etcd_key(p, "members0", NULL);
    *p++ = '"';
    *p++ = '}';

    ngx_http_inventory_cluster_call(a, ngx_http_inventory_agent_members,
                                    "/v3/kv/range", p);
}


/*
 * The leader key names this node.  Handed over by a primary (handover.c):
 * the key says what its successor must hold, at which epoch; holding it,
 * this node renews the key's lease and is promoted.  Otherwise the key is
 * this node's from before a restart, or it leads already: its lease runs
 * out first, or is renewed.
 */

static void
ngx_http_inventory_cluster_adopt(ngx_http_inventory_agent_t *a,
    ngx_http_inventory_json_t *kv, ngx_str_t *value)
{
    u_char     *p;
    uint64_t    seq, epoch;
    ngx_str_t   field;

    if (a->imcf->sh->cluster.role == NGX_HTTP_INVENTORY_ROLE_PRIMARY
        || ngx_http_inventory_etcd_field(a->etcd.pool, value, "seq", &field)
           != NGX_OK)
    {
        return;
    }

    seq = (uint64_t) ngx_atoof(field.data, field.len);

    if (ngx_http_inventory_etcd_field(a->etcd.pool, value, "epoch", &field)
        != NGX_OK)
    {
        return;
    }

    epoch = (uint64_t) ngx_atoof(field.data, field.len);

    /* promoted since (a restart after it took over): not handed again */
    if (epoch != a->store_epoch || seq > a->seq) {
        ngx_log_error(NGX_LOG_INFO, a->etcd.log, 0,
                      "inventory cluster: the lead is handed to \"%V\", "
                      "which holds seq %uL at epoch %uL, not seq %uL at "
                      "epoch %uL", &a->imcf->cluster_name, a->seq,
                      a->store_epoch, seq, epoch);
        return;
    }

    a->grant = ngx_http_inventory_etcd_number(kv, "lease");

    if (a->grant == 0) {
        return;
    }

    p = ngx_sprintf(a->body, "{\"ID\":\"%uL\"}", a->grant);
    ngx_http_inventory_cluster_call(a, ngx_http_inventory_agent_adopt,
                                    "/v3/lease/keepalive", p);
}


/* no leader: this node may take the key if no live member holds more */

static void
ngx_http_inventory_cluster_members(ngx_http_inventory_agent_t *a,
    ngx_http_inventory_json_t *answer)
{
    u_char                     *p;
    uint64_t                    seq;
    ngx_str_t                   value, field;
    ngx_http_inventory_json_t  *kvs, *kv;

    kvs = ngx_http_inventory_json_get(answer, "kvs");

    for (kv = kvs ? kvs->child : NULL; kv; kv = kv->next) {
        if (ngx_http_inventory_etcd_value(a->etcd.pool, kv, &value)
            != NGX_OK
            || ngx_http_inventory_etcd_field(a->etcd.pool, &value,
                                                "seq", &field)
               != NGX_OK)
        {
            continue;
        }

        seq = (uint64_t) ngx_atoof(field.data, field.len);

        if (seq > a->seq) {
            ngx_log_error(NGX_LOG_INFO, a->etcd.log, 0,
                          "inventory cluster: no leader; a member holds "
                          "seq %uL, more than this node's %uL: it is left "
                          "to take the lead", seq, a->seq);
            return;
        }
    }

    p = ngx_sprintf(a->body, "{\"TTL\":%M}",
                    ngx_max(a->imcf->cluster_ttl / 1000, 1));
    ngx_http_inventory_cluster_call(a, ngx_http_inventory_agent_grant,
                                    "/v3/lease/grant", p);
}


/* the leader key, created with this node's lease if no one holds it */

static void
ngx_http_inventory_cluster_take(ngx_http_inventory_agent_t *a)
{
    u_char                          *p, *k, value[768], *v;
    ngx_str_t                        src, dst;
    ngx_http_inventory_main_conf_t  *imcf;

    imcf = a->imcf;

    v = ngx_sprintf(value, "{\"name\":\"%V\",\"advertise\":\"%V\"}",
                    &imcf->cluster_name, &imcf->cluster_advertise);
    src.data = value;
    src.len = v - value;

    p = ngx_cpymem(a->body, "{\"compare\":[{\"key\":\"",
                   sizeof("{\"compare\":[{\"key\":\"") - 1);
    k = p;
    p = ngx_http_inventory_etcd_key(p, "leader", NULL);
    src.len = v - value;

    p = ngx_sprintf(p, "\",\"target\":\"CREATE\",\"create_revision\":\"0\"}],"
                    "\"success\":[{\"request_put\":{\"key\":\"%*s\","
                    "\"value\":\"", (size_t) (p - k), k);

    dst.data = p;
    ngx_encode_base64(&dst, &src);
    p += dst.len;

    p = ngx_sprintf(p, "\",\"lease\":\"%uL\"}}]}", a->grant);

    ngx_http_inventory_cluster_call(a, ngx_http_inventory_agent_take,
                                    "/v3/kv/txn", p);
}


/*
 * The key is this node's, bound to the lease a->grant, whose renewal (or
 * grant) was sent at a->sent_at: it leads, once its store is promoted.
 */

static void
ngx_http_inventory_cluster_lead(ngx_http_inventory_agent_t *a,
    const char *how)
{
    ngx_http_inventory_cluster_sh_t  *csh;

    csh = &a->imcf->sh->cluster;

    csh->leader_lease = a->grant;
    csh->writable_until = a->sent_at + a->imcf->cluster_ttl / 2;
    (void) ngx_atomic_fetch_add(&csh->elections, 1);

    ngx_log_error(NGX_LOG_NOTICE, a->etcd.log, 0,
                  "inventory cluster: \"%V\" %s the primary, holding seq "
                  "%uL", &a->imcf->cluster_name, how, a->seq);

    /* it follows no one while its store is promoted */
    ngx_http_inventory_role_set(a->imcf, a->etcd.log,
                                NGX_HTTP_INVENTORY_ROLE_NONE, NULL);
    ngx_http_inventory_role_apply(a->imcf);

    a->step = ngx_http_inventory_agent_promote;

    if (ngx_thread_task_post(ngx_thread_pool_get((ngx_cycle_t *) ngx_cycle,
                                                 &a->imcf->thread_pool),
                             a->task)
        != NGX_OK)
    {
        a->step = ngx_http_inventory_agent_idle;
        csh->leader_lease = 0;
        csh->writable_until = 0;
    }
}


/* on a pool thread: the store, promoted (its epoch one more) */

static void
ngx_http_inventory_cluster_promote(void *data, ngx_log_t *log)
{
    ngx_http_inventory_agent_t  *a = data;

    a->task_rc = ngx_http_inventory_store_promote(a->imcf->store,
                                             ngx_http_inventory_clock_now(),
                                             &a->epoch);
}


static void
ngx_http_inventory_cluster_promoted(ngx_event_t *ev)
{
    ngx_http_inventory_agent_t  *a = ev->data;

    ngx_http_inventory_cluster_sh_t  *csh;

    a->step = ngx_http_inventory_agent_idle;
    csh = &a->imcf->sh->cluster;

    if (a->task_rc != 0) {
        ngx_log_error(NGX_LOG_ALERT, a->etcd.log, 0,
                      "inventory cluster: promoting the store failed: %s: "
                      "the lead is let go", 
                      ngx_http_inventory_store_strerror(a->task_rc));

        /* the lease runs out: another node is elected */
        csh->leader_lease = 0;
        csh->writable_until = 0;
        return;
    }

    ngx_log_error(NGX_LOG_NOTICE, a->etcd.log, 0,
                  "inventory cluster: \"%V\" is the primary, at epoch %uL",
                  &a->imcf->cluster_name, a->epoch);

    ngx_http_inventory_role_set(a->imcf, a->etcd.log,
                                NGX_HTTP_INVENTORY_ROLE_PRIMARY, NULL);
    ngx_http_inventory_role_apply(a->imcf);
}
