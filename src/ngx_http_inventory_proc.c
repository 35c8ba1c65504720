/*
 * A process's start time from /proc/PID/stat, 0 when it is gone or dying.
 * With its pid it names one process: a pid may be reused once reaped.
 */

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include "ngx_http_inventory_proc.h"


/* the kernel's task flag of a process that has begun to exit */
#define NGX_HTTP_INVENTORY_PF_EXITING  0x00000004


uint64_t
ngx_http_inventory_proc_start(pid_t pid)
{
    int      fd;
    char     path[64], buf[512];
    ssize_t  n;

    (void) snprintf(path, sizeof(path), "/proc/%ld/stat", (long) pid);

    fd = open(path, O_RDONLY);
    if (fd == -1) {
        return 0;
    }

    n = read(fd, buf, sizeof(buf));
    (void) close(fd);

    return n > 0 ? ngx_http_inventory_proc_stat_start(buf, (size_t) n) : 0;
}


/*
 * "pid (comm) state ... flags ... starttime ...": 0 for a zombie, and for
 * a process that is exiting (PF_EXITING), which closes its connections
 * before it turns zombie: a client's retry may come in between.
 */

uint64_t
ngx_http_inventory_proc_stat_start(const char *buf, size_t len)
{
    unsigned     field;
    uint64_t     flags, start;
    const char  *p, *last;

    /* comm may hold spaces and parentheses: it ends at the last ')' */
    last = buf + len;
    for (p = last - 1; p > buf && *p != ')'; p--) { /* void */ }

    if (p == buf || last - p < 4 || p[2] == 'Z' || p[2] == 'X') {
        return 0;
    }

    /* state is field 3, flags field 9, starttime field 22 */
    flags = 0;
    start = 0;

    for (field = 2; p < last && field <= 22; p++) {
        if (*p == ' ') {
            field++;

        } else if (*p >= '0' && *p <= '9') {
            if (field == 9) {
                flags = flags * 10 + (uint64_t) (*p - '0');

            } else if (field == 22) {
                start = start * 10 + (uint64_t) (*p - '0');
            }
        }
    }

    return (flags & NGX_HTTP_INVENTORY_PF_EXITING) ? 0 : start;
}


/*
 * Whether the process recorded as pid and start (0: unknown, without
 * procfs) still runs: a killed one stays a zombie until its parent reaps
 * it, and its pid may be reused then.
 */

int
ngx_http_inventory_proc_alive(pid_t pid, uint64_t start)
{
    if (start == 0) {
        return kill(pid, 0) == 0 || errno != ESRCH;
    }

    return ngx_http_inventory_proc_start(pid) == start;
}
