/*
 * The cluster agent's private header: its state, shared by cluster.c (the
 * directive, the elections) and handover.c (a planned handover, which the
 * agent runs as steps of its own).  Calls go one way, cluster.c ->
 * handover.c.
 */

#ifndef _NGX_HTTP_INVENTORY_CLUSTER_H_INCLUDED_
#define _NGX_HTTP_INVENTORY_CLUSTER_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_inventory_module.h"


typedef enum {
    ngx_http_inventory_agent_idle = 0,
    ngx_http_inventory_agent_renew,          /* the leader's lease */
    ngx_http_inventory_agent_member_lease,   /* a member's, granted */
    ngx_http_inventory_agent_member_renew,
    ngx_http_inventory_agent_member_put,
    ngx_http_inventory_agent_leader,         /* who leads */
    ngx_http_inventory_agent_members,        /* what each holds */
    ngx_http_inventory_agent_grant,          /* a lease to lead with */
    ngx_http_inventory_agent_take,           /* the key, if free */
    ngx_http_inventory_agent_adopt,          /* a lease handed over */
    ngx_http_inventory_agent_promote,        /* the store, on the pool */
    ngx_http_inventory_agent_handover_members,   /* whom to hand over to */
    ngx_http_inventory_agent_handover_switch     /* the key, to it */
} ngx_http_inventory_agent_step_e;


typedef struct {
    ngx_http_inventory_main_conf_t  *imcf;
    ngx_http_inventory_etcd_t    etcd;
    ngx_event_t                  tick;
    ngx_event_t                  apply;
    ngx_event_t                  handover;    /* drives one, while it runs */
    ngx_thread_task_t           *task;
    int                          task_rc;
    uint64_t                     epoch;       /* promoted to */
    ngx_http_inventory_agent_step_e  step;
    ngx_msec_t                   sent_at;     /* of the call running */
    uint64_t                     seq;         /* the store's, this round */
    uint64_t                     store_epoch; /* the store's, this round */
    uint64_t                     grant;       /* a lease to lead with */
    ngx_atomic_uint_t            ticket;      /* the handover it runs */
    u_char                       successor[16];  /* its node id */
    u_char                       body[2048];
} ngx_http_inventory_agent_t;


ngx_http_inventory_agent_step_e ngx_http_inventory_handover_next(
    ngx_http_inventory_agent_t *a, const char **path, u_char **end);
void ngx_http_inventory_handover_answer(ngx_http_inventory_agent_t *a,
    ngx_http_inventory_agent_step_e step, ngx_http_inventory_json_t *answer);


#endif /* _NGX_HTTP_INVENTORY_CLUSTER_H_INCLUDED_ */
