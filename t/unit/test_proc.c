/* A process's start time from /proc/PID/stat: alive, zombie, exiting. */

#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tap.h"
#include "ngx_http_inventory_proc.h"


static unsigned long long
stat_start(const char *line)
{
    return ngx_http_inventory_proc_stat_start(line, strlen(line));
}


void
test_proc(void)
{
    pid_t     child;
    int       i;
    uint64_t  self;

    /* fields 3 (state), 9 (flags) and 22 (starttime) */
    is_int(stat_start("42 (nginx) S 1 42 42 0 -1 4194560 77 0 0 0 3 1 0 0 "
                      "20 0 3 0 123456 1000 20 18446744073709551615\n"),
           123456, "a sleeping process: its start time");
    is_int(stat_start("42 (a) b) c) R 1 42 42 0 -1 4194560 77 0 0 0 3 1 0 0 "
                      "20 0 3 0 98765 1000 20\n"),
           98765, "comm with spaces and parentheses");
    is_int(stat_start("42 (nginx) Z 1 42 42 0 -1 4227340 77 0 0 0 3 1 0 0 "
                      "20 0 1 0 123456 0 0\n"),
           0, "a zombie is dead");
    is_int(stat_start("42 (nginx) X 1 42 42 0 -1 4227340 77 0 0 0 3 1 0 0 "
                      "20 0 1 0 123456 0 0\n"),
           0, "a process being reaped is dead");
    /* 4194564 = PF_RANDOMIZE | PF_EXITING (0x400004) */
    is_int(stat_start("42 (nginx) R 1 42 42 0 -1 4194564 77 0 0 0 3 1 0 0 "
                      "20 0 3 0 123456 1000 20\n"),
           0, "a process that is exiting (PF_EXITING) is dead");
    is_int(stat_start("42 (nginx) R 1 42 42 0 -1 4194568 77 0 0 0 3 1 0 0 "
                      "20 0 3 0 123456 1000 20\n"),
           123456, "other flags (0x8 beside it) do not");
    is_int(stat_start("42 (nginx"), 0, "a truncated line");
    is_int(stat_start(""), 0, "an empty line");

    /* the real thing: this process, a live child, then its zombie */
    self = ngx_http_inventory_proc_start(getpid());
    ok(self > 0, "this process has a start time (%llu)",
       (unsigned long long) self);

    child = fork();
    if (child == 0) {
        pause();
        _exit(0);
    }

    ok(child > 0 && ngx_http_inventory_proc_start(child) >= self,
       "a live child starts no earlier than its parent");

    (void) kill(child, SIGKILL);

    /* not reaped yet: a zombie once the kill is done */
    for (i = 0; i < 1000; i++) {
        if (ngx_http_inventory_proc_start(child) == 0) {
            break;
        }
        usleep(1000);
    }

    is_int(ngx_http_inventory_proc_start(child), 0,
           "a killed child, not yet reaped, is dead");

    (void) waitpid(child, NULL, 0);

    is_int(ngx_http_inventory_proc_start(child), 0,
           "a reaped child is gone");
}
