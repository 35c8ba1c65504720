/*
 * The follower's private header: its state, shared by follow.c (what to
 * ask the primary and what to do with its answers) and follow_http.c (the
 * exchange itself on the connection).  Calls go one way, follow.c ->
 * follow_http.c; the other way goes through the callbacks below.
 */

#ifndef _NGX_HTTP_INVENTORY_FOLLOW_H_INCLUDED_
#define _NGX_HTTP_INVENTORY_FOLLOW_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_inventory_module.h"


#define NGX_HTTP_INVENTORY_FOLLOW_TICK       250       /* ms */
#define NGX_HTTP_INVENTORY_FOLLOW_LEASE      1500      /* ms */
#define NGX_HTTP_INVENTORY_FOLLOW_POLL       20        /* s a poll waits */
#define NGX_HTTP_INVENTORY_FOLLOW_TIMEOUT    10000     /* ms beyond it */
/* the primary writes the whole copy before it sends a byte of it */
#define NGX_HTTP_INVENTORY_FOLLOW_SNAPSHOT_TIMEOUT  600000
#define NGX_HTTP_INVENTORY_FOLLOW_BACKOFF    100       /* ms, doubling */
#define NGX_HTTP_INVENTORY_FOLLOW_BACKOFF_MAX  5000
#define NGX_HTTP_INVENTORY_FOLLOW_HEAD       8192
#define NGX_HTTP_INVENTORY_FOLLOW_BODY_MAX   (64 * 1024 * 1024)
#define NGX_HTTP_INVENTORY_FOLLOW_CHUNK      (1024 * 1024)
/* after a small lot, the next request waits this long for more */
#define NGX_HTTP_INVENTORY_FOLLOW_LINGER     5         /* ms */
#define NGX_HTTP_INVENTORY_FOLLOW_LOT        8         /* transactions */


typedef enum {
    ngx_http_inventory_follow_idle = 0,
    ngx_http_inventory_follow_sending,
    ngx_http_inventory_follow_reading,
    ngx_http_inventory_follow_working      /* a task on the pool */
} ngx_http_inventory_follow_state_e;


typedef enum {
    ngx_http_inventory_task_apply = 0,
    ngx_http_inventory_task_write,
    ngx_http_inventory_task_install
} ngx_http_inventory_task_e;


typedef struct ngx_http_inventory_follower_s  ngx_http_inventory_follower_t;

struct ngx_http_inventory_follower_s {
    ngx_http_inventory_main_conf_t  *imcf;
    ngx_log_t                  *log;
    ngx_event_t                 tick;
    ngx_event_t                 linger;
    ngx_peer_connection_t       pc;
    ngx_buf_t                  *head;       /* the request, then the answer */
    ngx_http_request_t         *parse;      /* nginx's parsers' state */
    ngx_http_status_t           status;
    ngx_http_inventory_follow_state_e  state;
    ngx_uint_t                  status_done;
    ngx_uint_t                  head_done;
    ngx_uint_t                  snapshot;   /* this request asks for one */
    ngx_uint_t                  want_snapshot;
    ngx_uint_t                  empty;      /* the store holds nothing */
    ngx_uint_t                  seeded;     /* a snapshot was installed */
    ngx_uint_t                  poll;       /* s a long poll waits */
    ngx_uint_t                  keepalive;
    ngx_uint_t                  answers;    /* on this connection */
    ngx_uint_t                  refused;
    ngx_uint_t                  prompt;     /* the primary waits for us */
    ngx_uint_t                  url_gen;    /* imcf->follow_gen, connected */
    off_t                       length;     /* of the answer's body */
    off_t                       received;
    u_char                     *body;
    size_t                      body_len;
    size_t                      body_size;
    ngx_fd_t                    file;       /* the snapshot, being written */
    off_t                       file_off;
    u_char                     *path;
    ngx_msec_t                  backoff;
    ngx_msec_t                  retry_at;
    unsigned char               store_id[16];    /* the primary's */
    unsigned char               own_id[16];
    uint64_t                    epoch;           /* the primary's, or 0 */
    uint64_t                    own_epoch;
    ngx_thread_task_t          *task;
    ngx_http_inventory_task_e   task_kind;
    int                         task_rc;
    ngx_http_inventory_applied_t  applied;
    /*
     * What follow.c makes of the exchange follow_http.c runs: the body's
     * buffer once the head is in (NGX_ERROR: it failed the connection), a
     * full buffer of a longer body, the whole answer, a failure.
     */
    ngx_int_t                 (*sized)(ngx_http_inventory_follower_t *f);
    void                      (*chunk)(ngx_http_inventory_follower_t *f);
    void                      (*answer)(ngx_http_inventory_follower_t *f);
    void                      (*fail)(ngx_http_inventory_follower_t *f,
                                      const char *why);
};


/* ngx_http_inventory_follow_http.c */
void ngx_http_inventory_follow_write(ngx_event_t *wev);
void ngx_http_inventory_follow_read(ngx_event_t *rev);


#endif /* _NGX_HTTP_INVENTORY_FOLLOW_H_INCLUDED_ */
