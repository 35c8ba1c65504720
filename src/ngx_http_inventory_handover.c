/*
 * A planned handover, asked of a cluster's primary by an operator
 * (POST {inventory_replication location}handover[?to=NAME]): the lead
 * passes to a follower that holds everything the primary committed, with
 * no wait for a lease to run out:
 *
 *   1. the request (any worker) marks it asked in the zone: from then on
 *      the primary answers no write 2xx (role_writable());
 *   2. the agent (cluster.c, one worker) reads the store's last seq S:
 *      every write answered 2xx committed before the mark, so S covers
 *      them all.  It finds the successor among the members in etcd (the
 *      one named, or the follower holding most) and waits until that
 *      follower has durably applied S, as its requests for transactions
 *      tell (sync.c);
 *   3. it rewrites the leader key under the same lease, only if the key is
 *      still bound to that lease (a txn), to name the successor with S and
 *      this epoch, and follows the successor;
 *   4. the successor finds the key naming it at its next round (cluster.c):
 *      it holds S at that epoch, so it takes over the lease, is promoted
 *      (epoch + 1) and takes writes.
 *
 * A handover that fails before step 3 (no such follower, not caught up in
 * time, etcd not answering) leaves this node the primary: writes go on.
 * When the outcome of step 3 is unknown, the node steps down and the
 * cluster elects as after a failure.  Nothing acknowledged is lost either
 * way: the successor holds S, and the epochs fence the rest.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_inventory_module.h"
#include "ngx_http_inventory_cluster.h"


#define NGX_HTTP_INVENTORY_HANDOVER_TIMEOUT  5000  /* ms, to catch up */
#define NGX_HTTP_INVENTORY_HANDOVER_POLL     10    /* ms, the request's */


typedef struct {
    ngx_http_request_t         *request;
    ngx_event_t                 poll;
    ngx_atomic_uint_t           ticket;
} ngx_http_inventory_handover_ctx_t;


static ngx_uint_t ngx_http_inventory_handover_name(ngx_str_t *name);
static void ngx_http_inventory_handover_poll(ngx_event_t *ev);
static void ngx_http_inventory_handover_cleanup(void *data);
static ngx_int_t ngx_http_inventory_handover_respond(ngx_http_request_t *r,
    ngx_http_inventory_handover_ctx_t *hc);
static void ngx_http_inventory_handover_fail(
    ngx_http_inventory_main_conf_t *imcf, ngx_atomic_uint_t ticket,
    const char *fmt, ...);
static void ngx_http_inventory_handover_chosen(ngx_http_inventory_agent_t *a,
    ngx_http_inventory_json_t *answer);
static u_char *ngx_http_inventory_handover_switch(
    ngx_http_inventory_agent_t *a);
static void ngx_http_inventory_handover_step_down(
    ngx_http_inventory_agent_t *a, const char *why);


ngx_int_t
ngx_http_inventory_handover_handler(ngx_http_request_t *r)
{
    ngx_int_t                           rc;
    ngx_str_t                           to;
    ngx_msec_t                          now;
    ngx_atomic_uint_t                   ticket;
    ngx_pool_cleanup_t                 *cln;
    ngx_http_inventory_errors_t         errs;
    ngx_http_inventory_handover_sh_t   *hsh;
    ngx_http_inventory_handover_ctx_t  *hc;
    ngx_http_inventory_main_conf_t     *imcf;

    imcf = ngx_http_get_module_main_conf(r, ngx_http_inventory_module);

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (imcf->cluster_name.len == 0 || imcf->sh == NULL) {
        return ngx_http_inventory_reject(r, NGX_HTTP_INVENTORY_P_NOT_FOUND,
                                         "a handover passes the lead "
                                         "between the nodes of a cluster "
                                         "(inventory_cluster): this node is "
                                         "in none", NULL);
    }

    ngx_str_null(&to);
    rc = ngx_http_inventory_arg(r, "to", &to);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    errs.n = 0;

    if (rc == NGX_OK && !ngx_http_inventory_handover_name(&to)) {
        ngx_http_inventory_error_set(&errs, "to",
                                     "must name a node of the cluster: 1 to "
                                     "64 letters, digits, '-', '_' or '.'");

    } else if (to.len == imcf->cluster_name.len
               && ngx_strncmp(to.data, imcf->cluster_name.data, to.len) == 0)
    {
        ngx_http_inventory_error_set(&errs, "to",
                                     "names this node, the one that hands "
                                     "over");
    }

    if (errs.n) {
        return ngx_http_inventory_reject(r,
                                         NGX_HTTP_INVENTORY_P_INVALID_REQUEST,
                                         "the handover asked for is invalid",
                                         &errs);
    }

    if (imcf->role_follower) {
        return ngx_http_inventory_retry_later(r,
                                    NGX_HTTP_INVENTORY_P_NOT_PRIMARY,
                                    "this node is a follower: only the "
                                    "primary hands over", &imcf->follow_url);
    }

    hsh = &imcf->sh->cluster.handover;
    now = (ngx_msec_t) ngx_http_inventory_clock_now();

    ngx_shmtx_lock(&imcf->shpool->mutex);

    if (ngx_http_inventory_handover_busy(hsh->state)) {
        ngx_shmtx_unlock(&imcf->shpool->mutex);
        return ngx_http_inventory_retry_later(r,
                                    NGX_HTTP_INVENTORY_P_HANDOVER_FAILED,
                                    "a handover is under way already", NULL);
    }

    if (!ngx_http_inventory_role_writable(imcf)) {
        ngx_shmtx_unlock(&imcf->shpool->mutex);
        return ngx_http_inventory_retry_later(r,
                                    NGX_HTTP_INVENTORY_P_NOT_PRIMARY,
                                    "this node's lead has run out, or is "
                                    "not renewed yet: it has none to hand "
                                    "over", NULL);
    }

    ticket = ++hsh->ticket;
    hsh->deadline = now + NGX_HTTP_INVENTORY_HANDOVER_TIMEOUT;
    hsh->seq = 0;
    hsh->to_len = to.len;

    if (to.len) {
        ngx_memcpy(hsh->to, to.data, to.len);
    }
    hsh->url_len = 0;
    hsh->reason[0] = '\0';
    ngx_memory_barrier();
    hsh->state = NGX_HTTP_INVENTORY_HANDOVER_ASKED;

    ngx_shmtx_unlock(&imcf->shpool->mutex);

    ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                  "inventory cluster: \"%V\" was asked to hand over%s%V: "
                  "it takes no more writes", &imcf->cluster_name,
                  to.len ? " to " : "", &to);

    hc = ngx_pcalloc(r->pool, sizeof(ngx_http_inventory_handover_ctx_t));
    cln = ngx_pool_cleanup_add(r->pool, 0);

    if (hc == NULL || cln == NULL) {
        ngx_http_inventory_handover_fail(imcf, ticket, "out of memory");
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    hc->request = r;
    hc->ticket = ticket;
    hc->poll.handler = ngx_http_inventory_handover_poll;
    hc->poll.data = hc;
    hc->poll.log = r->connection->log;

    cln->handler = ngx_http_inventory_handover_cleanup;
    cln->data = hc;

    ngx_add_timer(&hc->poll, NGX_HTTP_INVENTORY_HANDOVER_POLL);

    r->read_event_handler = ngx_http_test_reading;
    r->write_event_handler = ngx_http_request_empty_handler;
    r->main->count++;

    return NGX_DONE;
}


/* as the directive checks a node's name= */

static ngx_uint_t
ngx_http_inventory_handover_name(ngx_str_t *name)
{
    u_char      c;
    ngx_uint_t  i;

    if (name->len == 0 || name->len > 64) {
        return 0;
    }

    for (i = 0; i < name->len; i++) {
        c = name->data[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
              || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.'))
        {
            return 0;
        }
    }

    return 1;
}


/* the request waits for the agent's outcome */

static void
ngx_http_inventory_handover_poll(ngx_event_t *ev)
{
    ngx_http_inventory_handover_ctx_t  *hc = ev->data;

    ngx_http_request_t                *r;
    ngx_http_inventory_handover_sh_t  *hsh;
    ngx_http_inventory_main_conf_t    *imcf;

    r = hc->request;
    imcf = ngx_http_get_module_main_conf(r, ngx_http_inventory_module);
    hsh = &imcf->sh->cluster.handover;

    if (hsh->ticket == hc->ticket
        && ngx_http_inventory_handover_busy(hsh->state))
    {
        /* no agent took it up (its worker exited): nothing was done */
        if (hsh->state == NGX_HTTP_INVENTORY_HANDOVER_ASKED
            && ngx_http_inventory_clock_now()
               > hsh->deadline + NGX_HTTP_INVENTORY_HANDOVER_TIMEOUT)
        {
            ngx_http_inventory_handover_fail(imcf, hc->ticket,
                                             "no worker took the handover "
                                             "up");

        } else {
            ngx_add_timer(ev, NGX_HTTP_INVENTORY_HANDOVER_POLL);
            return;
        }
    }

    ngx_http_finalize_request(r, ngx_http_inventory_handover_respond(r, hc));
}


static void
ngx_http_inventory_handover_cleanup(void *data)
{
    ngx_http_inventory_handover_ctx_t  *hc = data;

    if (hc->poll.timer_set) {
        ngx_del_timer(&hc->poll);
    }
}


/* 200 with the successor, or 503 handover-failed with the reason */

static ngx_int_t
ngx_http_inventory_handover_respond(ngx_http_request_t *r,
    ngx_http_inventory_handover_ctx_t *hc)
{
    u_char                             reason[160], *detail;
    ngx_uint_t                         state;
    ngx_http_inventory_buf_t           body;
    ngx_http_inventory_handover_t      h;
    ngx_http_inventory_handover_sh_t  *hsh;
    ngx_http_inventory_main_conf_t    *imcf;

    imcf = ngx_http_get_module_main_conf(r, ngx_http_inventory_module);
    hsh = &imcf->sh->cluster.handover;

    ngx_memzero(&h, sizeof(ngx_http_inventory_handover_t));

    h.name = ngx_pnalloc(r->pool, sizeof(hsh->to) + sizeof(hsh->url));
    if (h.name == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h.primary = h.name + sizeof(hsh->to);

    ngx_shmtx_lock(&imcf->shpool->mutex);

    state = (hsh->ticket == hc->ticket) ? hsh->state
                                        : NGX_HTTP_INVENTORY_HANDOVER_FAILED;
    h.name_len = hsh->to_len;
    h.primary_len = hsh->url_len;
    ngx_memcpy((u_char *) h.name, hsh->to, h.name_len);
    ngx_memcpy((u_char *) h.primary, hsh->url, h.primary_len);
    h.seq = hsh->seq;
    ngx_cpystrn(reason, hsh->ticket == hc->ticket ? hsh->reason
                                                  : (u_char *) "another "
                                                    "handover was asked",
                sizeof(reason));

    ngx_shmtx_unlock(&imcf->shpool->mutex);

    if (state != NGX_HTTP_INVENTORY_HANDOVER_DONE) {
        detail = ngx_pnalloc(r->pool, sizeof(reason));
        if (detail == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ngx_memcpy(detail, reason, sizeof(reason));

        return ngx_http_inventory_retry_later(r,
                                    NGX_HTTP_INVENTORY_P_HANDOVER_FAILED,
                                    (char *) detail, NULL);
    }

    ngx_http_inventory_buf_init(&body, ngx_http_inventory_palloc, r->pool);
    ngx_http_inventory_render_handover(&body, &h);

    return ngx_http_inventory_send_json(r, NGX_HTTP_OK, &body, 0);
}


/* the handover ticket, if still running, failed: writes go on */

static void
ngx_http_inventory_handover_fail(ngx_http_inventory_main_conf_t *imcf,
    ngx_atomic_uint_t ticket, const char *fmt, ...)
{
    u_char                            *p;
    va_list                            args;
    ngx_http_inventory_handover_sh_t  *hsh;

    hsh = &imcf->sh->cluster.handover;

    ngx_shmtx_lock(&imcf->shpool->mutex);

    if (hsh->ticket != ticket || !ngx_http_inventory_handover_busy(hsh->state))
    {
        ngx_shmtx_unlock(&imcf->shpool->mutex);
        return;
    }

    va_start(args, fmt);
    p = ngx_vslprintf(hsh->reason, hsh->reason + sizeof(hsh->reason) - 1,
                      fmt, args);
    va_end(args);
    *p = '\0';

    hsh->state = NGX_HTTP_INVENTORY_HANDOVER_FAILED;

    ngx_shmtx_unlock(&imcf->shpool->mutex);

    ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                  "inventory cluster: the handover failed: %s", hsh->reason);
}


/*
 * The agent's part, when it has no call running: what to ask etcd next
 * (a step, with the body in a->body up to *end), or idle.
 */

ngx_http_inventory_agent_step_e
ngx_http_inventory_handover_next(ngx_http_inventory_agent_t *a,
    const char **path, u_char **end)
{
    u_char                            *p;
    uint64_t                           acked;
    ngx_atomic_uint_t                  ticket;
    ngx_http_inventory_identity_t      id;
    ngx_http_inventory_cluster_sh_t   *csh;
    ngx_http_inventory_handover_sh_t  *hsh;
    ngx_http_inventory_main_conf_t    *imcf;

    imcf = a->imcf;
    csh = &imcf->sh->cluster;
    hsh = &csh->handover;
    ticket = hsh->ticket;

    switch (hsh->state) {

    case NGX_HTTP_INVENTORY_HANDOVER_ASKED:

        if (a->ticket == ticket) {
            /* its call did not start */
            ngx_http_inventory_handover_fail(imcf, ticket,
                                             "etcd could not be asked");
            return ngx_http_inventory_agent_idle;
        }

        a->ticket = ticket;

        if (csh->role != NGX_HTTP_INVENTORY_ROLE_PRIMARY
            || csh->leader_lease == 0)
        {
            ngx_http_inventory_handover_fail(imcf, ticket,
                                             "this node leads no more");
            return ngx_http_inventory_agent_idle;
        }

        if (ngx_http_inventory_store_read_begin(imcf->store) != 0) {
            ngx_http_inventory_handover_fail(imcf, ticket,
                                             "the store cannot be read");
            return ngx_http_inventory_agent_idle;
        }

        if (ngx_http_inventory_store_identity(imcf->store, &id) != 0) {
            ngx_http_inventory_store_read_end(imcf->store);
            ngx_http_inventory_handover_fail(imcf, ticket,
                                             "the store cannot be read");
            return ngx_http_inventory_agent_idle;
        }

        ngx_http_inventory_store_read_end(imcf->store);

        hsh->seq = id.last_seq;
        a->store_epoch = id.epoch;

        p = ngx_cpymem(a->body, "{\"key\":\"", sizeof("{\"key\":\"") - 1);
        p = ngx_http_inventory_etcd_key(p, "members/", NULL);
        p = ngx_cpymem(p, "\",\"range_end\":\"",
                       sizeof("\",\"range_end\":\"") - 1);
        p = ngx_http_inventory_etcd_key(p, "members0", NULL);
        *p++ = '"';
        *p++ = '}';

        *path = "/v3/kv/range";
        *end = p;
        return ngx_http_inventory_agent_handover_members;

    case NGX_HTTP_INVENTORY_HANDOVER_WAITING:

        if (a->ticket != ticket) {
            ngx_http_inventory_handover_fail(imcf, ticket,
                                             "the worker that ran it "
                                             "exited");
            return ngx_http_inventory_agent_idle;
        }

        acked = 0;
        (void) ngx_http_inventory_sync_peer(imcf, a->successor, &acked);

        if (acked >= hsh->seq) {
            *path = "/v3/kv/txn";
            *end = ngx_http_inventory_handover_switch(a);
            hsh->state = NGX_HTTP_INVENTORY_HANDOVER_SWITCHING;
            return ngx_http_inventory_agent_handover_switch;
        }

        if (ngx_http_inventory_clock_now() >= hsh->deadline) {
            ngx_http_inventory_handover_fail(imcf, ticket,
                                        "\"%*s\" held seq %uL of %uA "
                                        "after %d ms", hsh->to_len, hsh->to,
                                        acked, hsh->seq,
                                        NGX_HTTP_INVENTORY_HANDOVER_TIMEOUT);
        }

        return ngx_http_inventory_agent_idle;

    case NGX_HTTP_INVENTORY_HANDOVER_SWITCHING:

        if (a->ticket == ticket) {
            /* its call did not start: the key is as it was */
            ngx_http_inventory_handover_fail(imcf, ticket,
                                             "etcd could not be asked");

        } else {
            ngx_http_inventory_handover_step_down(a, "the worker that ran "
                                                  "it exited while etcd "
                                                  "was asked");
        }

        return ngx_http_inventory_agent_idle;

    default:
        return ngx_http_inventory_agent_idle;
    }
}


/* etcd's answer to a step of the handover (NULL: none) */

void
ngx_http_inventory_handover_answer(ngx_http_inventory_agent_t *a,
    ngx_http_inventory_agent_step_e step, ngx_http_inventory_json_t *answer)
{
    ngx_str_t                          url;
    ngx_http_inventory_json_t         *ok;
    ngx_http_inventory_cluster_sh_t   *csh;
    ngx_http_inventory_handover_sh_t  *hsh;

    csh = &a->imcf->sh->cluster;
    hsh = &csh->handover;

    if (step == ngx_http_inventory_agent_handover_members) {
        if (answer == NULL) {
            ngx_http_inventory_handover_fail(a->imcf, a->ticket,
                                             "etcd did not answer");
            return;
        }

        ngx_http_inventory_handover_chosen(a, answer);
        return;
    }

    ok = answer ? ngx_http_inventory_json_get(answer, "succeeded") : NULL;

    if (ok == NULL || !ok->boolean || hsh->ticket != a->ticket) {
        ngx_http_inventory_handover_step_down(a, answer
                                ? "the leader key is not this node's "
                                  "any more"
                                : "etcd did not answer: the outcome is "
                                  "unknown");
        return;
    }

    /* the successor's lease from now: this node neither renews nor writes */
    csh->leader_lease = 0;
    csh->writable_until = 0;

    url.data = hsh->url;
    url.len = hsh->url_len;

    ngx_log_error(NGX_LOG_NOTICE, a->etcd.log, 0,
                  "inventory cluster: \"%V\" handed the lead over to "
                  "\"%*s\", which holds seq %uA", &a->imcf->cluster_name,
                  hsh->to_len, hsh->to, hsh->seq);

    ngx_http_inventory_role_set(a->imcf, a->etcd.log,
                                NGX_HTTP_INVENTORY_ROLE_FOLLOWER, &url);

    hsh->state = NGX_HTTP_INVENTORY_HANDOVER_DONE;
}


/* the successor: the member named, or the follower that holds most */

static void
ngx_http_inventory_handover_chosen(ngx_http_inventory_agent_t *a,
    ngx_http_inventory_json_t *answer)
{
    u_char                             node[16], best[16];
    uint64_t                           acked, most;
    ngx_str_t                          value, name, url, hex, bname, burl;
    ngx_uint_t                         i, found;
    ngx_http_inventory_json_t         *kvs, *kv;
    ngx_http_inventory_handover_sh_t  *hsh;
    ngx_http_inventory_main_conf_t    *imcf;

    imcf = a->imcf;
    hsh = &imcf->sh->cluster.handover;
    found = 0;
    most = 0;
    ngx_str_null(&bname);
    ngx_str_null(&burl);

    kvs = ngx_http_inventory_json_get(answer, "kvs");

    for (kv = kvs ? kvs->child : NULL; kv; kv = kv->next) {
        if (ngx_http_inventory_etcd_value(a->etcd.pool, kv, &value) != NGX_OK
            || ngx_http_inventory_etcd_field(a->etcd.pool, &value, "name",
                                             &name)
               != NGX_OK
            || ngx_http_inventory_etcd_field(a->etcd.pool, &value,
                                             "advertise", &url)
               != NGX_OK
            || ngx_http_inventory_etcd_field(a->etcd.pool, &value, "node",
                                             &hex)
               != NGX_OK
            || hex.len != 2 * sizeof(node)
            || url.len > sizeof(hsh->url) || name.len > sizeof(hsh->to))
        {
            continue;
        }

        if ((name.len == imcf->cluster_name.len
             && ngx_strncmp(name.data, imcf->cluster_name.data, name.len)
                == 0)
            || (hsh->to_len
                && (name.len != hsh->to_len
                    || ngx_strncmp(name.data, hsh->to, name.len) != 0)))
        {
            continue;
        }

        for (i = 0; i < sizeof(node); i++) {
            node[i] = (u_char) ngx_hextoi(hex.data + 2 * i, 2);
        }

        /* a member that does not follow this node cannot catch up */
        if (ngx_http_inventory_sync_peer(imcf, node, &acked) != NGX_OK) {
            continue;
        }

        if (!found || acked > most) {
            found = 1;
            most = acked;
            ngx_memcpy(best, node, sizeof(node));
            bname = name;
            burl = url;
        }
    }

    if (!found && hsh->to_len) {
        ngx_http_inventory_handover_fail(imcf, a->ticket,
                                         "\"%*s\" is no member of the "
                                         "cluster that follows this node",
                                         hsh->to_len, hsh->to);
        return;
    }

    if (!found) {
        ngx_http_inventory_handover_fail(imcf, a->ticket,
                                         "no member of the cluster follows "
                                         "this node");
        return;
    }

    ngx_memcpy(a->successor, best, sizeof(best));

    ngx_shmtx_lock(&imcf->shpool->mutex);

    if (hsh->ticket == a->ticket
        && hsh->state == NGX_HTTP_INVENTORY_HANDOVER_ASKED)
    {
        hsh->to_len = bname.len;
        ngx_memcpy(hsh->to, bname.data, bname.len);
        hsh->url_len = burl.len;
        ngx_memcpy(hsh->url, burl.data, burl.len);
        hsh->state = NGX_HTTP_INVENTORY_HANDOVER_WAITING;
    }

    ngx_shmtx_unlock(&imcf->shpool->mutex);
}


/*
 * The leader key, to the successor, under this node's lease if it is
 * still bound to it; what the successor must hold goes with it.
 */

static u_char *
ngx_http_inventory_handover_switch(ngx_http_inventory_agent_t *a)
{
    u_char                            *p, *k, value[768], *v;
    ngx_str_t                          src, dst;
    ngx_http_inventory_cluster_sh_t   *csh;
    ngx_http_inventory_handover_sh_t  *hsh;

    csh = &a->imcf->sh->cluster;
    hsh = &csh->handover;

    v = ngx_sprintf(value, "{\"name\":\"%*s\",\"advertise\":\"%*s\","
                    "\"seq\":%uA,\"epoch\":%uL}", hsh->to_len, hsh->to,
                    hsh->url_len, hsh->url, hsh->seq, a->store_epoch);
    src.data = value;
    src.len = v - value;

    p = ngx_cpymem(a->body, "{\"compare\":[{\"key\":\"",
                   sizeof("{\"compare\":[{\"key\":\"") - 1);
    k = p;
    p = ngx_http_inventory_etcd_key(p, "leader", NULL);

    p = ngx_sprintf(p, "\",\"target\":\"LEASE\",\"lease\":\"%uA\"}],"
                    "\"success\":[{\"request_put\":{\"key\":\"%*s\","
                    "\"value\":\"", csh->leader_lease, (size_t) (p - k), k);

    dst.data = p;
    ngx_encode_base64(&dst, &src);
    p += dst.len;

    return ngx_sprintf(p, "\",\"lease\":\"%uA\"}}]}", csh->leader_lease);
}


/* whether the key moved is not known: no writes, no lead, an election */

static void
ngx_http_inventory_handover_step_down(ngx_http_inventory_agent_t *a,
    const char *why)
{
    ngx_http_inventory_cluster_sh_t  *csh;

    csh = &a->imcf->sh->cluster;

    csh->writable_until = 0;
    csh->leader_lease = 0;

    ngx_http_inventory_role_set(a->imcf, a->etcd.log,
                                NGX_HTTP_INVENTORY_ROLE_NONE, NULL);

    ngx_http_inventory_handover_fail(a->imcf, csh->handover.ticket,
                                     "%s: this node stepped down, and the "
                                     "cluster elects", why);
}
