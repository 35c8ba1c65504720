/*
 * The write side: checks media type and preconditions, reads the body with
 * nginx's request-body API, turns it into a command and hands it to the
 * worker's group commit; the store answers with the response rendered in
 * the same transaction, sent once that transaction is durable.
 * Idempotency keys in flight are held in the shared zone, so two workers
 * never run one key at once.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <ngx_md5.h>

#include "ngx_http_inventory_module.h"


static ngx_int_t ngx_http_inventory_idempotency_key(ngx_http_request_t *r,
    ngx_http_inventory_cmd_t *cmd);
static void ngx_http_inventory_write_body(ngx_http_request_t *r);
static ngx_int_t ngx_http_inventory_write(ngx_http_request_t *r,
    ngx_http_inventory_ctx_t *ctx);
static ngx_int_t ngx_http_inventory_prepare(ngx_http_request_t *r,
    ngx_http_inventory_ctx_t *ctx, u_char *body, size_t len,
    ngx_http_inventory_errors_t *errs);
static ngx_int_t ngx_http_inventory_actor(ngx_http_request_t *r,
    ngx_http_complex_value_t *cv, ngx_http_inventory_str_t *actor);
static void ngx_http_inventory_fingerprint(ngx_http_request_t *r,
    u_char *body, size_t len, unsigned char *digest);
static void ngx_http_inventory_write_done(ngx_http_inventory_job_t *job);
static ngx_int_t ngx_http_inventory_write_answer(ngx_http_request_t *r,
    void *data, ngx_uint_t final);
static ngx_int_t ngx_http_inventory_send_outcome(ngx_http_request_t *r,
    ngx_http_inventory_cmd_t *cmd);
static void ngx_http_inventory_free_body(void *data);


ngx_int_t
ngx_http_inventory_start_write(ngx_http_request_t *r,
    ngx_http_inventory_ctx_t *ctx)
{
    int                             any;
    ngx_int_t                       rc;
    ngx_uint_t                      ends;
    ngx_http_inventory_cmd_t       *cmd;
    ngx_http_inventory_errors_t     errs;
    ngx_http_inventory_loc_conf_t  *ilcf;

    ends = (ctx->route == NGX_HTTP_INVENTORY_ROUTE_COMMIT
            || ctx->route == NGX_HTTP_INVENTORY_ROUTE_RELEASE);

    /* commit and release take no body, or {} */
    if (!ngx_http_inventory_is_json(r)
        && !(ends && ngx_http_inventory_no_body(r)))
    {
        return ngx_http_inventory_reject(r,
                          NGX_HTTP_INVENTORY_P_UNSUPPORTED_MEDIA_TYPE,
                          "the body must be application/json", NULL);
    }

    cmd = ngx_palloc(r->pool, sizeof(ngx_http_inventory_cmd_t));
    if (cmd == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_inventory_cmd_init(cmd);

    ctx->cmd = cmd;
    cmd->type = ctx->rt->cmd;
    cmd->multi_line = (ctx->route == NGX_HTTP_INVENTORY_ROUTE_CART);
    cmd->sku = ctx->ids.sku;
    cmd->location = ctx->ids.location;

    errs.n = 0;

    /* If-Match applies to the writes of one item */
    if (r->headers_in.if_match && ctx->ids.location.data) {
        if (ngx_http_inventory_parse_etags(
                (char *) r->headers_in.if_match->value.data,
                r->headers_in.if_match->value.len, 0, cmd->if_match,
                &cmd->if_match_n, &any)
            != 0)
        {
            ngx_http_inventory_error_set(&errs, "If-Match",
                                         "must be * or a list of at most 16 "
                                         "entity tags such as \"42\"");
        }

        cmd->has_if_match = 1;
        cmd->if_match_any = any ? 1 : 0;
    }

    /* recorded in every event the write appends, which JSON renders */
    ilcf = ngx_http_get_module_loc_conf(r, ngx_http_inventory_module);

    if (ilcf->actor) {
        rc = ngx_http_inventory_actor(r, ilcf->actor, &cmd->actor);

        if (rc == NGX_ERROR) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (rc == NGX_DECLINED) {
            ngx_http_inventory_error_set(&errs, "actor",
                                         "the value inventory_actor takes "
                                         "from the request must be UTF-8 "
                                         "text");
        }
    }

    if (ngx_http_inventory_idempotency_key(r, cmd) != NGX_OK) {
        ngx_http_inventory_error_set(&errs, "Idempotency-Key",
                                     "must be 1 to 255 visible ASCII "
                                     "characters");
    }

    /* a chunked body is measured once read, in read_body() */
    if (r->headers_in.content_length_n
        > (off_t) ngx_http_inventory_body_max(cmd))
    {
        ngx_http_inventory_body_too_large(&errs,
                                          ngx_http_inventory_body_max(cmd));
    }

    if (errs.n) {
        return ngx_http_inventory_reject(r,
                                    NGX_HTTP_INVENTORY_P_INVALID_REQUEST,
                                    "a request header or the body's length is "
                                    "invalid",
                                    &errs);
    }

    r->request_body_in_single_buf = 1;

    rc = ngx_http_read_client_request_body(r, ngx_http_inventory_write_body);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


static ngx_int_t
ngx_http_inventory_idempotency_key(ngx_http_request_t *r,
    ngx_http_inventory_cmd_t *cmd)
{
    ngx_uint_t        k;
    ngx_table_elt_t  *h;

    h = ngx_http_inventory_header_in(r, "Idempotency-Key");

    if (h == NULL) {
        return NGX_OK;
    }

    if (h->value.len == 0 || h->value.len > NGX_HTTP_INVENTORY_IDEM_KEY_MAX) {
        return NGX_ERROR;
    }

    for (k = 0; k < h->value.len; k++) {
        if (h->value.data[k] < 0x21 || h->value.data[k] > 0x7e) {
            return NGX_ERROR;
        }
    }

    cmd->idem_key.data = (char *) h->value.data;
    cmd->idem_key.len = h->value.len;

    return NGX_OK;
}


static void
ngx_http_inventory_write_body(ngx_http_request_t *r)
{
    ngx_http_inventory_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_inventory_module);

    ngx_http_finalize_request(r, ngx_http_inventory_write(r, ctx));
}


static ngx_int_t
ngx_http_inventory_write(ngx_http_request_t *r, ngx_http_inventory_ctx_t *ctx)
{
    u_char                          *data;
    size_t                           len;
    ngx_int_t                        ok;
    void                            *inflight;
    ngx_str_t                        key;
    ngx_pool_cleanup_t              *cln;
    ngx_http_inventory_job_t        *job;
    ngx_http_inventory_cmd_t        *cmd;
    ngx_http_inventory_errors_t      errs;
    ngx_http_inventory_main_conf_t  *imcf;

    imcf = ngx_http_get_module_main_conf(r, ngx_http_inventory_module);
    cmd = ctx->cmd;
    inflight = NULL;

    errs.n = 0;

    ok = ngx_http_inventory_read_body(r, ngx_http_inventory_body_max(cmd),
                                      &data, &len);

    if (ok == NGX_DECLINED) {
        ngx_http_inventory_body_too_large(&errs,
                                          ngx_http_inventory_body_max(cmd));
        return ngx_http_inventory_reject(r,
                                    NGX_HTTP_INVENTORY_P_INVALID_REQUEST,
                                    "the request body is too large", &errs);
    }

    if (ok != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ok = ngx_http_inventory_prepare(r, ctx, data, len, &errs);

    if (ok == NGX_DECLINED) {
        return ngx_http_inventory_reject(r,
                                    NGX_HTTP_INVENTORY_P_INVALID_REQUEST,
                                    "the request body is invalid", &errs);
    }

    if (ok != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (cmd->idem_key.len) {
        key.data = (u_char *) cmd->idem_key.data;
        key.len = cmd->idem_key.len;

        ok = ngx_http_inventory_inflight_acquire(r, &key, &inflight);

        if (ok == NGX_BUSY) {
            return ngx_http_inventory_reject(r,
                           NGX_HTTP_INVENTORY_P_IDEMPOTENCY_KEY_IN_FLIGHT,
                           "a request with this Idempotency-Key is still "
                           "in progress", NULL);
        }

        if (ok == NGX_DECLINED) {
            return ngx_http_inventory_reject(r,
                           NGX_HTTP_INVENTORY_P_UNAVAILABLE,
                           "too many requests with an Idempotency-Key are "
                           "in progress", NULL);
        }

        if (ok != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    job = ngx_pcalloc(r->pool, sizeof(ngx_http_inventory_job_t));

    if (cln == NULL || job == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_inventory_free_body;
    cln->data = cmd;

    ctx->inflight = inflight;

    job->cmd = cmd;
    job->data = r;
    job->done = ngx_http_inventory_write_done;
    job->answer = 1;

    /* the request waits for its group commit: keep it, whatever happens */
    r->main->blocked++;
    r->main->count++;

    ngx_http_inventory_commit_submit(imcf->committer, job);

    return NGX_DONE;
}


/* on the event loop, once the command's transaction is durable */

static void
ngx_http_inventory_write_done(ngx_http_inventory_job_t *job)
{
    ngx_int_t                  rc;
    ngx_connection_t          *c;
    ngx_http_request_t        *r;
    ngx_http_inventory_ctx_t  *ctx;
    ngx_http_inventory_cmd_t  *cmd;

    r = job->data;
    c = r->connection;
    cmd = job->cmd;

    r->main->blocked--;

    ctx = ngx_http_get_module_ctx(r, ngx_http_inventory_module);

    /* committed, with its response stored: a repeat now replays */
    if (ctx->inflight) {
        ngx_http_inventory_inflight_release(ctx->inflight);
        ctx->inflight = NULL;
    }

    ctx->event_seq = cmd->appended ? cmd->last_seq : 0;

    /* a store that failed decided nothing */
    if (job->rc == 0 && cmd->status < 500) {
        ctx->seq = cmd->last_seq;
        ctx->seq_known = 1;

        /* what it says must be on the sync followers too */
        rc = ngx_http_inventory_sync_wait(r, ctx->seq,
                                          ngx_http_inventory_write_answer,
                                          cmd);

    } else {
        rc = ngx_http_inventory_send_outcome(r, cmd);
    }

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


/*
 * The body and the path to a command: NGX_DECLINED, with errs filled in, if
 * they do not make one.
 */

static ngx_int_t
ngx_http_inventory_prepare(ngx_http_request_t *r,
    ngx_http_inventory_ctx_t *ctx, u_char *body, size_t len,
    ngx_http_inventory_errors_t *errs)
{
    ngx_http_inventory_cmd_t       *cmd;
    ngx_http_inventory_loc_conf_t  *ilcf;

    cmd = ctx->cmd;

    ilcf = ngx_http_get_module_loc_conf(r, ngx_http_inventory_module);
    cmd->ttl = ilcf->reservation_ttl;

    /* commit and release: no body is as good as {} */
    if (!(len == 0 && (cmd->type == NGX_HTTP_INVENTORY_CMD_COMMIT
                       || cmd->type == NGX_HTTP_INVENTORY_CMD_RELEASE))
        && ngx_http_inventory_cmd_from_body(cmd, (char *) body, len,
                                            ngx_http_inventory_palloc,
                                            r->pool, errs)
           != 0)
    {
        return NGX_DECLINED;
    }

    switch (cmd->type) {

    case NGX_HTTP_INVENTORY_CMD_RESERVE:
        if (ngx_http_inventory_reservation_id(cmd->res.id,
                                             ngx_http_inventory_clock_now())
            != 0) {
            ngx_log_error(NGX_LOG_ALERT, r->connection->log, ngx_errno,
                          "inventory: getrandom() failed");
            return NGX_ERROR;
        }

        break;

    case NGX_HTTP_INVENTORY_CMD_COMMIT:
    case NGX_HTTP_INVENTORY_CMD_RELEASE:
        ngx_memcpy(cmd->res.id, ctx->ids.id.data,
                   NGX_HTTP_INVENTORY_RES_ID_LEN);
        break;

    case NGX_HTTP_INVENTORY_CMD_TRANSFER:
        ctx->ids.sku = cmd->sku;
        ctx->ids.location = cmd->location;
        break;
    }

    if (cmd->idem_key.len) {
        ngx_http_inventory_fingerprint(r, body, len, cmd->fingerprint);
    }

    return NGX_OK;
}


/*
 * Who asks, as inventory_actor says (an empty value: no one): at most
 * 255 bytes, cut where a UTF-8 character begins; NGX_DECLINED when it is
 * not UTF-8 (an event's JSON could not carry it).
 */

static ngx_int_t
ngx_http_inventory_actor(ngx_http_request_t *r, ngx_http_complex_value_t *cv,
    ngx_http_inventory_str_t *actor)
{
    ngx_str_t  v;

    if (ngx_http_complex_value(r, cv, &v) != NGX_OK) {
        return NGX_ERROR;
    }

    if (v.len > NGX_HTTP_INVENTORY_ACTOR_MAX) {
        v.len = NGX_HTTP_INVENTORY_ACTOR_MAX;

        while (v.len && (v.data[v.len] & 0xc0) == 0x80) {
            v.len--;
        }
    }

    if (!ngx_http_inventory_utf8_valid(v.data, v.len)) {
        return NGX_DECLINED;
    }

    actor->data = (const char *) v.data;
    actor->len = v.len;

    return NGX_OK;
}


/* a repeat is the same method, path and body */

static void
ngx_http_inventory_fingerprint(ngx_http_request_t *r, u_char *body,
    size_t len, unsigned char *digest)
{
    ngx_md5_t  md5;

    ngx_md5_init(&md5);
    ngx_md5_update(&md5, r->method_name.data, r->method_name.len);
    ngx_md5_update(&md5, " ", 1);
    ngx_md5_update(&md5, r->uri.data, r->uri.len);
    ngx_md5_update(&md5, "\n", 1);

    if (len) {
        ngx_md5_update(&md5, body, len);
    }

    ngx_md5_final(digest, &md5);
}


static ngx_int_t
ngx_http_inventory_write_answer(ngx_http_request_t *r, void *data,
    ngx_uint_t final)
{
    ngx_http_inventory_main_conf_t  *imcf;

    imcf = ngx_http_get_module_main_conf(r, ngx_http_inventory_module);

    /*
     * A cluster's primary answers nothing 2xx once its lease may have run
     * out: another node may lead by now.  The write stands here, not
     * acknowledged, as after a replication timeout.
     */
    if (!ngx_http_inventory_role_writable(imcf)) {
        return ngx_http_inventory_retry_later(r,
                                NGX_HTTP_INVENTORY_P_NOT_PRIMARY,
                                "this node's lead ran out while the write "
                                "committed: it may stand here, but is not "
                                "acknowledged; retry with the same "
                                "Idempotency-Key", NULL);
    }

    return ngx_http_inventory_send_outcome(r, data);
}


static ngx_int_t
ngx_http_inventory_send_outcome(ngx_http_request_t *r,
    ngx_http_inventory_cmd_t *cmd)
{
    ngx_table_elt_t           *h;
    ngx_http_inventory_buf_t   body;
    static ngx_str_t           json = ngx_string("application/json");
    static ngx_str_t           problem = ngx_string("application/problem+json");

    if (cmd->status >= NGX_HTTP_INTERNAL_SERVER_ERROR && cmd->body == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (cmd->outcome == NGX_HTTP_INVENTORY_REPLAYED) {
        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        h->hash = 1;
        ngx_str_set(&h->key, "Idempotent-Replayed");
        ngx_str_set(&h->value, "true");
    }

    ngx_memzero(&body, sizeof(ngx_http_inventory_buf_t));
    body.data = cmd->body;
    body.len = cmd->body_len;

    return ngx_http_inventory_send(r, cmd->status,
                                   cmd->status >= NGX_HTTP_BAD_REQUEST
                                   ? &problem : &json,
                                   &body, cmd->etag);
}


static void
ngx_http_inventory_free_body(void *data)
{
    ngx_http_inventory_cmd_t  *cmd = data;

    free(cmd->body);
    cmd->body = NULL;
}
