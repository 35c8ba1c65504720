/*
 * Shared declarations of the nginx side of the module: configuration,
 * request context, the shared-memory zone, and the entry points of each
 * file, grouped by the file that defines them.  Calls go one way: module ->
 * handler -> {read, write, feed, replication} -> follow -> sync -> wait ->
 * {commit, inflight} -> {ctx, response, lease} -> the pure core and the
 * store.
 */

#ifndef _NGX_HTTP_INVENTORY_MODULE_H_INCLUDED_
#define _NGX_HTTP_INVENTORY_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_inventory_core.h"
#include "ngx_http_inventory_json.h"
#include "ngx_http_inventory_validate.h"
#include "ngx_http_inventory_render.h"
#include "ngx_http_inventory_store.h"
#include "ngx_http_inventory_uri.h"


/* the most commands one group commit takes */
#define NGX_HTTP_INVENTORY_BATCH_MAX  256


/* response statuses counted per route; the last slot takes the rest */
#define NGX_HTTP_INVENTORY_STATUSES  20

/* request duration histogram buckets per route, +Inf included */
#define NGX_HTTP_INVENTORY_LATENCIES  13


/* the replication protocol a stream serves and a follower speaks */
#define NGX_HTTP_INVENTORY_REPL_VERSION  "1"

/* a follower's apply lag histogram: bounds in ms, and +Inf */
#define NGX_HTTP_INVENTORY_LAG_BUCKETS  11
#define NGX_HTTP_INVENTORY_LAG_BOUNDS                                        \
    { 1, 2, 5, 10, 25, 50, 100, 250, 500, 1000 }


/* followers a primary keeps acknowledgements of (inventory_sync_replicas) */
#define NGX_HTTP_INVENTORY_PEERS  16


typedef struct ngx_http_inventory_commit_sh_s
    ngx_http_inventory_commit_sh_t;


/* a follower, as its requests for transactions tell the node it follows */
typedef struct {
    u_char                      node[16];      /* zero: a free slot */
    ngx_atomic_t                seq;           /* durable on it */
    ngx_atomic_t                heard_at;      /* ms */
} ngx_http_inventory_peer_t;


/* replication, as workers share it */
typedef struct {
    ngx_atomic_t                pid;           /* the worker that follows */
    ngx_atomic_t                until;         /* its lease, ms */
    ngx_atomic_t                connected;
    ngx_atomic_t                refused;       /* the primary's is another */
    ngx_atomic_t                heard_at;      /* ms: its last answer */
    ngx_atomic_t                primary_seq;   /* as it last said */
    ngx_atomic_t                primary_tx;
    ngx_atomic_t                pending_at;    /* ms: the oldest not applied */
    ngx_atomic_t                transactions;  /* applied */
    ngx_atomic_t                bytes;
    ngx_atomic_t                reconnects;
    ngx_atomic_t                snapshots;
    ngx_atomic_t                lag[NGX_HTTP_INVENTORY_LAG_BUCKETS];
    ngx_atomic_t                lag_ms;        /* their sum */
    ngx_atomic_t                served_transactions;
    ngx_atomic_t                served_snapshots;
    ngx_atomic_t                sync_waits;    /* answers that waited */
    ngx_atomic_t                sync_timeouts;
    ngx_http_inventory_peer_t   peers[NGX_HTTP_INVENTORY_PEERS];
} ngx_http_inventory_repl_sh_t;


/* a planned handover, asked of the primary (handover.c) */
#define NGX_HTTP_INVENTORY_HANDOVER_NONE       0
#define NGX_HTTP_INVENTORY_HANDOVER_ASKED      1   /* writes stop */
#define NGX_HTTP_INVENTORY_HANDOVER_WAITING    2   /* for the successor */
#define NGX_HTTP_INVENTORY_HANDOVER_SWITCHING  3   /* the key, in etcd */
#define NGX_HTTP_INVENTORY_HANDOVER_DONE       4
#define NGX_HTTP_INVENTORY_HANDOVER_FAILED     5
/* from asked to switched, the primary answers no write 2xx */
#define ngx_http_inventory_handover_busy(state)                              \
    ((state) >= NGX_HTTP_INVENTORY_HANDOVER_ASKED                            \
     && (state) <= NGX_HTTP_INVENTORY_HANDOVER_SWITCHING)

typedef struct {
    ngx_atomic_t                state;
    ngx_atomic_t                ticket;        /* of the request */
    ngx_atomic_t                deadline;      /* ms */
    ngx_atomic_t                seq;           /* the successor must hold */
    size_t                      to_len;        /* asked for, or 0: any */
    u_char                      to[64];
    size_t                      url_len;       /* the successor's */
    u_char                      url[512];
    u_char                      reason[160];   /* why it failed */
} ngx_http_inventory_handover_sh_t;


/* inventory_cluster, as workers share it (cluster.c) */
typedef struct {
    ngx_atomic_t                pid;           /* the worker that runs it */
    ngx_atomic_t                until;         /* its lease, ms */
    ngx_atomic_t                leader_lease;  /* etcd's, while we lead */
    ngx_atomic_t                member_lease;
    ngx_atomic_t                writable_until;  /* ms: writes 2xx before */
    ngx_atomic_t                role;          /* 0: none; follower; primary */
    ngx_atomic_t                generation;    /* of role and url */
    size_t                      url_len;
    u_char                      url[512];      /* the node followed */
    ngx_atomic_t                elections;     /* won */
    ngx_atomic_t                etcd_errors;
    ngx_http_inventory_handover_sh_t  handover;
} ngx_http_inventory_cluster_sh_t;


typedef struct {
    size_t                      size;          /* of this struct: layout */
    ngx_rbtree_t                inflight;      /* idempotency keys */
    ngx_rbtree_node_t           sentinel;
    ngx_atomic_t                lease_pid;     /* the worker that expires */
    ngx_atomic_t                lease_until;   /* ms */
    ngx_atomic_t                requests[NGX_HTTP_INVENTORY_ROUTE_LAST]
                                        [NGX_HTTP_INVENTORY_STATUSES];
    ngx_atomic_t                events;
    ngx_atomic_t                transactions;
    ngx_atomic_t                commands;
    ngx_atomic_t                expired;
    ngx_atomic_t                purged;        /* ended reservations */
    ngx_atomic_t                replays;
    ngx_atomic_t                batches[8];    /* by log2 of the size */
    ngx_atomic_t                latency[NGX_HTTP_INVENTORY_ROUTE_LAST]
                                       [NGX_HTTP_INVENTORY_LATENCIES];
    ngx_atomic_t                latency_ms[NGX_HTTP_INVENTORY_ROUTE_LAST];
    ngx_atomic_t                write_errors;
    ngx_atomic_t                store_error;   /* of the last commit, or 0 */
    ngx_atomic_t                commit_overflow;  /* writes without a slot */
    ngx_http_inventory_repl_sh_t  repl;
    ngx_http_inventory_cluster_sh_t  cluster;
    ngx_http_inventory_commit_sh_t  *commit;   /* NULL: no room for it */
} ngx_http_inventory_shctx_t;


typedef struct ngx_http_inventory_committer_s  ngx_http_inventory_committer_t;
typedef struct ngx_http_inventory_job_s  ngx_http_inventory_job_t;


/* a command waiting for, or in, a group commit */
struct ngx_http_inventory_job_s {
    ngx_queue_t                 queue;
    ngx_http_inventory_cmd_t   *cmd;
    void                      (*done)(ngx_http_inventory_job_t *job);
    void                       *data;
    int                         rc;            /* the transaction's */
    ngx_uint_t                  answer;        /* done() sends cmd's body */
    ngx_uint_t                  slot;          /* in the zone, if waiting */
    uint64_t                    ticket;        /* of the slot, then */
    u_char                     *block;
};


typedef struct {
    ngx_str_t                   store_path;
    size_t                      map_size;
    ngx_flag_t                  sync;
    ngx_msec_t                  idempotency_ttl;
    ngx_msec_t                  reservation_retention;  /* 0: off */
    ngx_shm_zone_t             *shm_zone;
    ngx_slab_pool_t            *shpool;
    ngx_http_inventory_shctx_t *sh;
    ngx_event_t                 reader_check;
    ngx_event_t                 expiry;
    ngx_event_t                 wait_poll;
    ngx_queue_t                 waiters;       /* long-polling requests */
    ngx_http_inventory_store_t *store;      /* this process's; NULL: closed */
    ngx_str_t                   thread_pool;
    ngx_uint_t                  batch_max;
    ngx_http_inventory_committer_t  *committer;
    uint64_t                    purge_at;     /* ms */
    ngx_uint_t                  sweeping;     /* unsigned: 1 */
    ngx_uint_t                  purge_behind; /* unsigned: 1 */
    ngx_uint_t                  used;        /* unsigned: 1 */
    /* inventory_follow: a follower of the node at follow_url */
    ngx_str_t                   follow_url;  /* empty: a primary */
    ngx_addr_t                  follow;
    ngx_str_t                   follow_host; /* host:port */
    ngx_str_t                   follow_uri;  /* the stream's prefix */
    ngx_msec_t                  follow_wait;
    ngx_msec_t                  follow_max_lag;
    void                       *follower;    /* this worker's (follow.c) */
    u_char                      node_id[16]; /* this node's, its own file */
    /* inventory_sync_replicas: followers a write's answer waits for */
    ngx_uint_t                  sync_replicas;
    ngx_msec_t                  sync_timeout;
    ngx_atomic_uint_t           wait_transactions;  /* sh's, last seen */
    ngx_msec_t                  wait_full_at;       /* the store read */
    /* a follower: of follow_url, or, in a cluster, of no one yet */
    ngx_uint_t                  role_follower;
    ngx_uint_t                  follow_gen;       /* follow_url's changes */
    ngx_uint_t                  cluster_gen;      /* the zone's, applied */
    /* inventory_cluster: etcd's endpoints, this node's name and URL */
    ngx_array_t                *cluster_etcd;      /* of ngx_addr_t */
    ngx_str_t                   cluster_name;
    ngx_str_t                   cluster_advertise;
    ngx_msec_t                  cluster_ttl;
    void                       *cluster;          /* this worker's agent */
} ngx_http_inventory_main_conf_t;


/* what a location's content is: the API, the metrics, or neither */
#define NGX_HTTP_INVENTORY_SERVES_NONE     0
#define NGX_HTTP_INVENTORY_SERVES_API      1
#define NGX_HTTP_INVENTORY_SERVES_METRICS  2
#define NGX_HTTP_INVENTORY_SERVES_REPLICATION  3


typedef struct {
    ngx_msec_t                  reservation_ttl;
    ngx_uint_t                  serves;
    ngx_http_complex_value_t   *actor;        /* inventory_actor, or NULL */
} ngx_http_inventory_loc_conf_t;


typedef struct {
    ngx_uint_t                  route;
    const ngx_http_inventory_route_t  *rt;     /* NULL: no such route */
    unsigned                    methods;       /* of every route of path */
    ngx_http_inventory_path_t   ids;
    void                       *inflight;      /* its idempotency key */
    uint64_t                    event_seq;
    uint64_t                    seq;           /* Inventory-Seq */
    ngx_uint_t                  seq_known;     /* unsigned: 1 */
    ngx_http_inventory_cmd_t   *cmd;
} ngx_http_inventory_ctx_t;


typedef void (*ngx_http_inventory_commit_pt)(void *data);

/* a waiting request's answer: NGX_DECLINED to wait on (if not final) */
typedef ngx_int_t (*ngx_http_inventory_wake_pt)(ngx_http_request_t *r,
    void *data, ngx_uint_t final);


extern ngx_module_t  ngx_http_inventory_module;


/* ngx_http_inventory_variables.c */
ngx_int_t ngx_http_inventory_add_variables(ngx_conf_t *cf);

/* ngx_http_inventory_handler.c */
ngx_int_t ngx_http_inventory_handler(ngx_http_request_t *r);

/* ngx_http_inventory_ctx.c */
ngx_http_inventory_ctx_t *ngx_http_inventory_request_ctx(
    ngx_http_request_t *r);
ngx_http_inventory_ctx_t *ngx_http_inventory_saved_ctx(
    ngx_http_request_t *r);
ngx_http_inventory_ctx_t *ngx_http_inventory_location_ctx(
    ngx_http_request_t *r);
ngx_int_t ngx_http_inventory_preaccess(ngx_http_request_t *r);
ngx_uint_t ngx_http_inventory_method(ngx_http_request_t *r);
int ngx_http_inventory_read_begin(ngx_http_request_t *r,
    ngx_http_inventory_store_t *st);

/* ngx_http_inventory_read.c */
ngx_int_t ngx_http_inventory_health(ngx_http_request_t *r);
ngx_int_t ngx_http_inventory_get_item(ngx_http_request_t *r,
    ngx_http_inventory_ctx_t *ctx);
ngx_int_t ngx_http_inventory_get_aggregate(ngx_http_request_t *r,
    ngx_http_inventory_ctx_t *ctx);
ngx_int_t ngx_http_inventory_get_item_events(ngx_http_request_t *r,
    ngx_http_inventory_ctx_t *ctx);
ngx_int_t ngx_http_inventory_get_reservation(ngx_http_request_t *r,
    ngx_http_inventory_ctx_t *ctx);
ngx_int_t ngx_http_inventory_get_low_stock(ngx_http_request_t *r,
    ngx_http_inventory_ctx_t *ctx);

/* ngx_http_inventory_feed.c */
ngx_int_t ngx_http_inventory_get_events(ngx_http_request_t *r,
    ngx_http_inventory_ctx_t *ctx);

/* ngx_http_inventory_wait.c: what a waiter waits to pass */
#define NGX_HTTP_INVENTORY_AT_SEQ    0     /* the store's last seq */
#define NGX_HTTP_INVENTORY_AT_TX     1     /* its last transaction */
#define NGX_HTTP_INVENTORY_AT_ACKED  2     /* seq held by sync followers */

void ngx_http_inventory_wait_init(ngx_http_inventory_main_conf_t *imcf);
ngx_int_t ngx_http_inventory_wait(ngx_http_request_t *r, uint64_t after,
    ngx_uint_t at, ngx_msec_t wait, ngx_http_inventory_wake_pt wake,
    void *data);
void ngx_http_inventory_wait_notify(void *data);
uint64_t ngx_http_inventory_wait_acked(ngx_http_inventory_main_conf_t *imcf);

/* ngx_http_inventory_etcd.c */
typedef struct ngx_http_inventory_etcd_s  ngx_http_inventory_etcd_t;

typedef void (*ngx_http_inventory_etcd_pt)(ngx_http_inventory_etcd_t *e,
    ngx_uint_t status, ngx_http_inventory_json_t *answer);

struct ngx_http_inventory_etcd_s {
    ngx_addr_t                 *endpoints;
    ngx_uint_t                  nendpoints;
    ngx_uint_t                  current;
    ngx_log_t                  *log;
    ngx_pool_t                 *pool;        /* of the last call */
    ngx_buf_t                  *out;
    ngx_buf_t                  *in;
    ngx_peer_connection_t       pc;
    ngx_msec_t                  timeout;
    ngx_uint_t                  busy;
    ngx_http_inventory_etcd_pt  handler;
    void                       *data;
};

ngx_int_t ngx_http_inventory_etcd_call(ngx_http_inventory_etcd_t *e,
    const char *path, u_char *body, size_t len,
    ngx_http_inventory_etcd_pt handler, void *data);
void ngx_http_inventory_etcd_close(ngx_http_inventory_etcd_t *e);
/* the cluster's keys in etcd, under one prefix, and what they hold */
#define NGX_HTTP_INVENTORY_CLUSTER_KEY    "/ngx_inventory/"
u_char *ngx_http_inventory_etcd_key(u_char *p, const char *name,
    ngx_str_t *member);
ngx_int_t ngx_http_inventory_etcd_value(ngx_pool_t *pool,
    ngx_http_inventory_json_t *kv, ngx_str_t *value);
uint64_t ngx_http_inventory_etcd_number(ngx_http_inventory_json_t *obj,
    const char *name);
ngx_int_t ngx_http_inventory_etcd_field(ngx_pool_t *pool, ngx_str_t *json,
    const char *name, ngx_str_t *value);

/* ngx_http_inventory_cluster.c */
char *ngx_http_inventory_cluster_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
void ngx_http_inventory_cluster_start(ngx_cycle_t *cycle,
    ngx_http_inventory_main_conf_t *imcf);
void ngx_http_inventory_cluster_exit(ngx_http_inventory_main_conf_t *imcf);

/* ngx_http_inventory_bulk.c */
ngx_int_t ngx_http_inventory_get_changes(ngx_http_request_t *r,
    ngx_http_inventory_ctx_t *ctx);
ngx_int_t ngx_http_inventory_post_query(ngx_http_request_t *r,
    ngx_http_inventory_ctx_t *ctx);

/* ngx_http_inventory_body.c */
ngx_int_t ngx_http_inventory_read_body(ngx_http_request_t *r, size_t max,
    u_char **data, size_t *len);
ngx_uint_t ngx_http_inventory_is_json(ngx_http_request_t *r);
ngx_uint_t ngx_http_inventory_no_body(ngx_http_request_t *r);
void ngx_http_inventory_body_too_large(ngx_http_inventory_errors_t *errs,
    size_t max);

/* ngx_http_inventory_handover.c */
ngx_int_t ngx_http_inventory_handover_handler(ngx_http_request_t *r);

/* ngx_http_inventory_role.c: a cluster's roles, as the zone keeps them */
#define NGX_HTTP_INVENTORY_ROLE_NONE      0
#define NGX_HTTP_INVENTORY_ROLE_FOLLOWER  1
#define NGX_HTTP_INVENTORY_ROLE_PRIMARY   2

char *ngx_http_inventory_follow_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
ngx_int_t ngx_http_inventory_follow_url(ngx_conf_t *cf, ngx_log_t *log,
    ngx_http_inventory_main_conf_t *imcf, ngx_str_t *url);
ngx_int_t ngx_http_inventory_role_conf(ngx_conf_t *cf,
    ngx_http_inventory_main_conf_t *imcf);
void ngx_http_inventory_role_apply(ngx_http_inventory_main_conf_t *imcf);
ngx_uint_t ngx_http_inventory_role_writable(
    ngx_http_inventory_main_conf_t *imcf);
void ngx_http_inventory_role_set(ngx_http_inventory_main_conf_t *imcf,
    ngx_log_t *log, ngx_uint_t role, ngx_str_t *url);

/* ngx_http_inventory_sync.c */
char *ngx_http_inventory_sync_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
void ngx_http_inventory_sync_ack(ngx_http_inventory_main_conf_t *imcf,
    u_char *node, uint64_t seq);
ngx_int_t ngx_http_inventory_sync_peer(ngx_http_inventory_main_conf_t *imcf,
    u_char *node, uint64_t *seq);
ngx_uint_t ngx_http_inventory_sync_followers(
    ngx_http_inventory_main_conf_t *imcf);
ngx_int_t ngx_http_inventory_sync_wait(ngx_http_request_t *r, uint64_t seq,
    ngx_http_inventory_wake_pt answer, void *data);

/* ngx_http_inventory_write.c */
ngx_int_t ngx_http_inventory_start_write(ngx_http_request_t *r,
    ngx_http_inventory_ctx_t *ctx);

/* ngx_http_inventory_inflight.c */
ngx_int_t ngx_http_inventory_inflight_acquire(ngx_http_request_t *r,
    ngx_str_t *key, void **handle);
void ngx_http_inventory_inflight_release(void *handle);

/* ngx_http_inventory_expiry.c */
char *ngx_http_inventory_retention_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
void ngx_http_inventory_expiry_start(ngx_cycle_t *cycle,
    ngx_http_inventory_main_conf_t *imcf);

/* ngx_http_inventory_node.c */
ngx_int_t ngx_http_inventory_node_files(ngx_conf_t *cf,
    ngx_http_inventory_main_conf_t *imcf);
ngx_uint_t ngx_http_inventory_node_was_follower(ngx_conf_t *cf,
    ngx_http_inventory_main_conf_t *imcf);

/* ngx_http_inventory_lease.c */
ngx_uint_t ngx_http_inventory_lease(ngx_atomic_t *pid, ngx_atomic_t *until,
    ngx_log_t *log, uint64_t now, ngx_msec_t ms);

/* ngx_http_inventory_replication.c */
ngx_int_t ngx_http_inventory_replication_handler(ngx_http_request_t *r);

/* ngx_http_inventory_follow.c */
typedef struct {
    uint64_t                    applied_seq;
    uint64_t                    primary_seq;
    uint64_t                    lag_ms;
    unsigned                    connected:1;
    unsigned                    refused:1;     /* another store */
    unsigned                    silent:1;      /* for longer than max_lag */
} ngx_http_inventory_follow_status_t;

void ngx_http_inventory_follow_start(ngx_cycle_t *cycle,
    ngx_http_inventory_main_conf_t *imcf);
void ngx_http_inventory_follow_exit(ngx_http_inventory_main_conf_t *imcf);
ngx_int_t ngx_http_inventory_follow_status(
    ngx_http_inventory_main_conf_t *imcf,
    ngx_http_inventory_follow_status_t *fs);

/* ngx_http_inventory_commit.c */
ngx_http_inventory_commit_sh_t *ngx_http_inventory_commit_zone_init(
    ngx_slab_pool_t *shpool);
ngx_int_t ngx_http_inventory_commit_init(ngx_cycle_t *cycle,
    ngx_http_inventory_main_conf_t *imcf);
void ngx_http_inventory_commit_exit(ngx_http_inventory_committer_t *cm);
ngx_uint_t ngx_http_inventory_commit_slots_used(
    ngx_http_inventory_commit_sh_t *csh);
void ngx_http_inventory_commit_on_append(ngx_http_inventory_committer_t *cm,
    ngx_http_inventory_commit_pt handler, void *data);
void ngx_http_inventory_commit_submit(ngx_http_inventory_committer_t *cm,
    ngx_http_inventory_job_t *job);

/* ngx_http_inventory_args.c */
ngx_int_t ngx_http_inventory_arg(ngx_http_request_t *r, const char *name,
    ngx_str_t *value);
ngx_int_t ngx_http_inventory_arg_raw(ngx_http_request_t *r, const char *name,
    ngx_str_t *value);
void ngx_http_inventory_arg_uint(ngx_http_request_t *r, const char *name,
    uint64_t min, uint64_t max, uint64_t *value,
    ngx_http_inventory_errors_t *errs);
ngx_table_elt_t *ngx_http_inventory_header_in(ngx_http_request_t *r,
    const char *name);

/* ngx_http_inventory_response.c */
void *ngx_http_inventory_palloc(void *pool, size_t size);
ngx_int_t ngx_http_inventory_send(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *content_type, ngx_http_inventory_buf_t *body,
    uint64_t etag);
ngx_int_t ngx_http_inventory_send_json(ngx_http_request_t *r,
    ngx_uint_t status, ngx_http_inventory_buf_t *body, uint64_t etag);
ngx_int_t ngx_http_inventory_send_problem(ngx_http_request_t *r,
    ngx_http_inventory_problem_t *p);
ngx_int_t ngx_http_inventory_send_item(ngx_http_request_t *r,
    ngx_uint_t status, ngx_http_inventory_slot_t *slot);
ngx_int_t ngx_http_inventory_send_reservation(ngx_http_request_t *r,
    ngx_http_inventory_reservation_t *res);
ngx_int_t ngx_http_inventory_reject(ngx_http_request_t *r, unsigned code,
    const char *detail, ngx_http_inventory_errors_t *errs);
ngx_int_t ngx_http_inventory_not_allowed(ngx_http_request_t *r,
    ngx_str_t *allow);
ngx_int_t ngx_http_inventory_read_failed(ngx_http_request_t *r, int rc);
ngx_int_t ngx_http_inventory_retry_later(ngx_http_request_t *r, unsigned code,
    const char *detail, ngx_str_t *primary);

/* ngx_http_inventory_metrics.c */
ngx_int_t ngx_http_inventory_metrics_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_inventory_metrics_log(ngx_http_request_t *r);


#endif /* _NGX_HTTP_INVENTORY_MODULE_H_INCLUDED_ */
