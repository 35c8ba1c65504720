/*
 * Leases in the shared zone, for what one worker at a time does (the
 * expiry sweep, a follower's follow): a lease not renewed in time, or held
 * by a worker that is gone, is taken over.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_inventory_module.h"


/* held by the caller: renewed; else taken over if it ran out */

ngx_uint_t
ngx_http_inventory_lease(ngx_atomic_t *lease_pid, ngx_atomic_t *until,
    ngx_log_t *log, uint64_t now, ngx_msec_t ms)
{
    ngx_atomic_uint_t  pid;

    pid = *lease_pid;

    if (pid == (ngx_atomic_uint_t) ngx_pid) {
        *until = now + ms;
        return 1;
    }

    if (pid != 0 && *until > now
        && (kill((ngx_pid_t) pid, 0) == 0 || ngx_errno != NGX_ESRCH))
    {
        return 0;
    }

    if (!ngx_atomic_cmp_set(lease_pid, pid, (ngx_atomic_uint_t) ngx_pid)) {
        return 0;
    }

    *until = now + ms;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, log, 0,
                   "inventory: lease taken over from pid %uA", pid);

    return 1;
}
