package InvTest;

# End-to-end test harness for ngx_http_inventory_module.
#
# Core Perl only: starts a real nginx (the distribution binary) with the
# module loaded, on a free loopback port, in a temporary prefix directory,
# and talks HTTP to it.  See t/*.t for usage.
#
# Sections, in this order:
#   files and processes   slurp, which, free_port, pid_alive, wait_gone,
#                         parallel, parallel_start/parallel_stop,
#                         run_logged, run_tool; the sanitizer environment
#   instances             start, stop, restart, reload, reconfigure, the
#                         error log; binary upgrade (upgrade_begin, upgrade)
#   HTTP                  req, raw_req, async_req/async_wait; shortcuts for
#                         the API's routes (ipath, get, put_item, ...),
#                         random_write, put_n, keyed_writer (a failover
#                         checker's writer)
#   assertions            json_type, show, problem_ok, item_ok,
#                         reservation_ok, counts_ok, unchanged, replay_ok;
#                         hostile input: hostile_bodies, hostile_problems,
#                         json_object, unpaired_surrogates
#   events and the feed   item_events, items_snapshot, event_pages,
#                         feed_pages, last_seq, replay_events;
#                         a follower's applied_seq, wait_applied
#   metrics               parse_metrics, metrics, metric_value
#   store and admin tool  admin_run, verify_ok, owner_problems,
#                         write_lock_tid, same_store_ok
#   time                  ts_ms, sleep_until, wait_until

use strict;
use warnings;

use Test::More ();
use HTTP::Tiny;
use JSON::PP ();
use File::Temp qw(tempdir);
use File::Basename qw(dirname);
use File::Spec;
use Cwd qw(abs_path);
use POSIX ();
use IO::Socket::INET;
use IO::Select;
use Time::HiRes qw(sleep time);
use Scalar::Util qw(blessed refaddr);
use B ();
use Exporter 'import';

our @EXPORT_OK = qw(
    encode_json decode_json TS_RE RES_ID_RE
    slurp which free_port pid_alive wait_gone parallel run_logged run_tool
    parallel_start parallel_stop
    san_env san_files san_reports_ok
    async_req async_wait header ipath idem_key replayed
    random_write put_n keyed_writer acked_after acked_items
    json_type show problem_ok problem_problems item_problems item_ok
    reservation_problems
    reservation_ok counts_ok unchanged replay_ok fresh_ok
    hostile_bodies hostile_problems json_object unpaired_surrogates
    item_events items_snapshot event_pages feed_pages last_seq
    replay_events applied_seq wait_applied
    parse_metrics metrics metric_value
    admin_run verify_ok owner_problems write_lock_tid same_store_ok
    ts_ms sleep_until wait_until
);

our $NGINX = $ENV{INVENTORY_NGINX} // '/usr/sbin/nginx';
our $ROOT = abs_path(File::Spec->catdir(dirname(abs_path(__FILE__)),
                                        '..', '..'));
our $MODULE = $ENV{INVENTORY_MODULE}
    // "$ROOT/build/ngx_http_inventory_module.so";

use constant TS_RE => qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\z/;
use constant RES_ID_RE => qr/^r_[0-9A-Za-z]{22}\z/;

my $JSON = JSON::PP->new->utf8->canonical;
my $JSON_DEC = JSON::PP->new->utf8->allow_nonref;

# Error-log lines that always fail a test (unless allowed by allow_log).
my $BAD_LOG = qr/\[(?:emerg|alert|crit)\]|exited on signal
                 |AddressSanitizer|runtime\ error:|LeakSanitizer/x;

my %LIVE;    # refaddr => instance, for the END safety net

sub encode_json { $JSON->encode($_[0]) }
sub decode_json { $JSON_DEC->decode($_[0]) }

# ==========================================================================
# files and processes
# ==========================================================================

# slurp($file): its contents, undef when it cannot be read
sub slurp {
    my ($f) = @_;
    open my $fh, '<', $f or return undef;
    local $/;
    my $c = <$fh>;
    close $fh;
    return $c;
}

# which($program): its path on $PATH, undef when it is not installed
sub which {
    my ($prog) = @_;
    for my $d (split /:/, $ENV{PATH} // '') {
        return "$d/$prog" if -x "$d/$prog" && !-d "$d/$prog";
    }
    return undef;
}

# free_port(): a TCP port on 127.0.0.1 that nobody listens on right now
sub free_port {
    my $s = IO::Socket::INET->new(
        LocalAddr => '127.0.0.1', LocalPort => 0, Proto => 'tcp',
        Listen => 1, ReuseAddr => 1,
    ) or die "cannot bind a free port: $!";
    my $port = $s->sockport;
    close $s;
    return $port;
}

# pid_alive($pid): the process exists and is not a zombie
sub pid_alive {
    my ($pid) = @_;
    return 0 unless $pid && kill 0, $pid;
    my $st = slurp("/proc/$pid/stat");
    return 1 unless defined $st;            # no procfs: trust kill 0
    my ($state) = $st =~ /\)\s+(\S)/;
    return 0 if defined $state && $state eq 'Z';
    return 1;
}

# wait_gone($pid, $seconds): true once the process has exited (a zombie
# counts as gone)
sub wait_gone {
    my ($pid, $t) = @_;
    my $deadline = time + ($t // 15);
    sleep 0.05 while pid_alive($pid) && time < $deadline;
    return !pid_alive($pid);
}

# --------------------------------------------------------------------------
# parallel($n, sub { my $i = shift; ...; return $string })
# Runs the sub in $n forked children; returns their strings in order.
# A child that dies returns "DIED: <message>".

sub parallel {
    my ($n, $code) = @_;
    my $h = _spawn($n, $code);
    waitpid $_, 0 for @{ $h->{pids} };
    return map { slurp("$h->{tmp}/$_") // 'DIED: child wrote no result' }
           0 .. $n - 1;
}

# the children of parallel and parallel_start: each runs $code->($i, $stop)
# and leaves its string in a file
sub _spawn {
    my ($n, $code) = @_;
    my $tmp = tempdir('inventory-par-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    my $flag = "$tmp/stop";
    my $stop = sub { -e $flag };
    STDOUT->flush;
    STDERR->flush;
    my @pids;
    for my $i (0 .. $n - 1) {
        my $pid = fork // die "fork: $!";
        if (!$pid) {
            my $out = eval { $code->($i, $stop) };
            $out = 'DIED: ' . ($@ || 'unknown') if $@;
            $out //= '';
            if (open my $fh, '>', "$tmp/$i.tmp") {
                print {$fh} $out;
                close $fh;
                rename "$tmp/$i.tmp", "$tmp/$i";
            }
            POSIX::_exit(0);
        }
        push @pids, $pid;
    }
    return { tmp => $tmp, flag => $flag, pids => \@pids, n => $n };
}


# run_logged($out, @cmd): runs the command with stdin from /dev/null and
# stdout and stderr into the file $out (never a pipe: a daemon keeps
# inherited descriptors), in the sanitizer environment; returns (wait
# status, output).
sub run_logged {
    my ($out, @cmd) = @_;
    my %env = san_env();
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', $out or POSIX::_exit(127);
        open STDERR, '>&', \*STDOUT or POSIX::_exit(127);
        @ENV{keys %env} = values %env;
        { no warnings 'exec'; exec { $cmd[0] } @cmd; }
        POSIX::_exit(127);
    }
    waitpid $pid, 0;
    my $rc = $?;
    return ($rc, slurp($out) // '');
}

# run_tool(@cmd): runs a program (a tool, not nginx: outside the sanitizer
# environment) with stdin from /dev/null; returns (exit status, or 128 +
# the signal that ended it, stdout, stderr).
sub run_tool {
    my (@cmd) = @_;
    my $tmp = tempdir('inventory-tool-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', "$tmp/out" or POSIX::_exit(127);
        open STDERR, '>', "$tmp/err" or POSIX::_exit(127);
        { no warnings 'exec'; exec { $cmd[0] } @cmd; }
        POSIX::_exit(127);
    }
    waitpid $pid, 0;
    my $rc = $? & 127 ? 128 + ($? & 127) : $? >> 8;
    return ($rc, slurp("$tmp/out") // '', slurp("$tmp/err") // '');
}

# --------------------------------------------------------------------------
# parallel_start($n, sub { my ($i, $stop) = @_; ...; return $string }): as
# parallel, but returns a handle at once while the $n children run (each
# loops until $stop->() is true).  parallel_stop($h, $timeout) asks them to
# end and returns their strings in order; a child still running $timeout
# seconds (default 30) later is killed and returns "DIED: ...".

sub parallel_start { _spawn(@_) }

sub parallel_stop {
    my ($h, $timeout) = @_;
    if (open my $fh, '>', $h->{flag}) { close $fh }
    my $deadline = time + ($timeout // 30);
    my %left = map { $_ => 1 } @{ $h->{pids} };
    while (%left) {
        for my $p (keys %left) {
            delete $left{$p} if waitpid($p, POSIX::WNOHANG()) != 0;
        }
        last unless %left;
        if (time > $deadline) {
            for my $p (keys %left) { kill 'KILL', $p; waitpid $p, 0 }
            last;
        }
        sleep 0.02;
    }
    return map { slurp("$h->{tmp}/$_") // 'DIED: did not stop in time' }
           0 .. $h->{n} - 1;
}

# --------------------------------------------------------------------------
# The sanitizer environment: with INVENTORY_PRELOAD (the ASan and UBSan
# runtimes) and INVENTORY_ASAN_LOG (a directory), every nginx the tests
# run gets the preload and writes its reports into that directory, after
# any ASAN_OPTIONS/UBSAN_OPTIONS of the caller.

# san_env(): the environment variables to set for a sanitized nginx
sub san_env {
    my %env;
    $env{LD_PRELOAD} = $ENV{INVENTORY_PRELOAD} if $ENV{INVENTORY_PRELOAD};
    my $d = $ENV{INVENTORY_ASAN_LOG};
    if (defined $d && -d $d) {
        my $a = "log_path=$d/san:detect_leaks=0:abort_on_error=1";
        my $u = "log_path=$d/san:print_stacktrace=1:halt_on_error=1";
        $env{ASAN_OPTIONS} = $ENV{ASAN_OPTIONS} ? "$ENV{ASAN_OPTIONS}:$a" : $a;
        $env{UBSAN_OPTIONS} = $ENV{UBSAN_OPTIONS}
                              ? "$ENV{UBSAN_OPTIONS}:$u" : $u;
    }
    return %env;
}

# san_files(): the report files in INVENTORY_ASAN_LOG
sub san_files {
    my $d = $ENV{INVENTORY_ASAN_LOG};
    return () unless defined $d && -d $d;
    return glob("$d/san*");
}

# san_reports_ok(\%seen, $label): one test: no report file appeared that is
# not in %seen (which then holds them all)
sub san_reports_ok {
    my ($seen, $label) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my @new = grep { !$seen->{$_} } san_files();
    $seen->{$_} = 1 for @new;
    Test::More::ok(!@new, 'no sanitizer reports'
                          . (defined $label ? " ($label)" : ''))
        or Test::More::diag(join "\n",
            map { "--- $_:\n" . (slurp($_) // '') } @new);
    return !@new;
}

# ==========================================================================
# instances: start / stop / restart / reload
# ==========================================================================

# InvTest->start(%opt): workers, datadir, store_args, http_extra,
# server_extra, location_extra, log_level (of the error log, default info),
# or conf (a whole configuration with %%PLACEHOLDERS%%)
sub start {
    my ($class, %opt) = @_;

    my $self = bless {
        opt        => \%opt,
        workers    => $opt{workers} // 2,
        allow      => [],
        log_offset => 0,
        owner      => $$,
        running    => 0,
        san_seen   => {},
    }, ref($class) || $class;

    my $dir = tempdir('inventory-t-XXXXXX', TMPDIR => 1,
                      CLEANUP => !$ENV{INVENTORY_KEEP});
    chmod 0755, $dir or die "chmod $dir: $!";
    $self->{dir} = $dir;
    $self->{datadir} = $opt{datadir} // "$dir/data";
    $self->{port} = free_port();
    $self->{module} = $MODULE;
    # addr: the address it listens on (one of a network namespace the
    # test made, with netns => its name: nginx runs inside it)
    $self->{addr} = $opt{addr} // '127.0.0.1';

    Test::More::diag("InvTest: keeping $dir") if $ENV{INVENTORY_KEEP};

    $self->_write_conf;
    $self->_san_snapshot;
    $self->_launch;
    return $self;
}

sub _write_conf {
    my ($self) = @_;
    my $o = $self->{opt};
    my $dir = $self->{dir};
    my $conf;

    if (defined $o->{conf}) {
        $conf = $o->{conf};
        $conf =~ s/%%MODULE%%/$self->{module}/g;
        $conf =~ s/%%PORT%%/$self->{port}/g;
        $conf =~ s/%%DATADIR%%/$self->{datadir}/g;
        $conf =~ s/%%DIR%%/$dir/g;

    } else {
        my $store_args = $o->{store_args} // '';
        my $http_extra = $o->{http_extra} // '';
        my $server_extra = $o->{server_extra} // '';
        my $location_extra = $o->{location_extra} // '';
        my $log_level = $o->{log_level} // 'info';
        $conf = <<"EOF";
load_module $self->{module};
worker_processes $self->{workers};
error_log $dir/error.log $log_level;
pid $dir/nginx.pid;
events { worker_connections 1024; }
http {
    access_log $dir/access.log;
    client_body_temp_path $dir/body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    inventory_store $self->{datadir} $store_args;
    $http_extra
    server {
        listen $self->{addr}:$self->{port};
        $server_extra
        location /v1/ { inventory; $location_extra }
        location = /metrics { inventory_metrics; }
    }
}
EOF
        # the extras may name the instance's own port (an advertised URL)
        $conf =~ s/%%PORT%%/$self->{port}/g;
        $conf =~ s/%%ADDR%%/$self->{addr}/g;
    }

    $self->{conf_text} = $conf;
    $self->{conf_file} = "$dir/nginx.conf";
    open my $fh, '>', $self->{conf_file} or die "write conf: $!";
    print {$fh} $conf;
    close $fh;
}

# The command line: -e sets the startup error log (nginx >= 1.19.5) so that
# a configuration without error_log never writes to the system log; -g adds
# a pid file only when the configuration has none.
sub _nginx_cmd {
    my ($self, @extra) = @_;
    my $dir = $self->{dir};
    my @cmd = ($NGINX, '-p', "$dir/", '-e', "$dir/error.log",
               '-c', $self->{conf_file});
    if ($self->{conf_text} !~ /^\s*pid\s/m) {
        push @cmd, '-g', "pid $dir/nginx.pid;";
    }
    unshift @cmd, 'ip', 'netns', 'exec', $self->{opt}{netns}
        if $self->{opt}{netns};
    return (@cmd, @extra);
}

# $self->_run($tag, @cmd): run_logged into $tag.out in the instance's
# directory
sub _run {
    my ($self, $tag, @cmd) = @_;
    return run_logged("$self->{dir}/$tag.out", @cmd);
}

# example_conf($name): conf/$name, an example configuration tested as it
# is: it must use every placeholder start(conf => ...) fills in
sub example_conf {
    my ($name) = @_;
    my $f = "$ROOT/conf/$name";
    my $c = slurp($f) // die "$f: $!";
    for my $p (qw(MODULE PORT DATADIR DIR)) {
        die "$f lacks the placeholder %%$p%%\n" unless $c =~ /%%$p%%/;
    }
    return $c;
}

sub _launch {
    my ($self) = @_;

    my ($rc, $out) = $self->_run('nginx-t', $self->_nginx_cmd('-t'));
    if ($rc != 0) {
        die "nginx -t failed (rc=$rc):\n$out\n--- error.log:\n"
            . ($self->error_log // '') . "\n--- nginx.conf:\n"
            . $self->{conf_text};
    }

    ($rc, $out) = $self->_run('nginx-start', $self->_nginx_cmd());
    if ($rc != 0) {
        die "nginx failed to start (rc=$rc):\n$out\n--- error.log:\n"
            . ($self->error_log // '');
    }

    $self->{running} = 1;
    $LIVE{refaddr $self} = $self;

    my $deadline = time + 10;
    my $ok = 0;
    while (time < $deadline) {
        my $s = IO::Socket::INET->new(PeerAddr => $self->addr,
                                      PeerPort => $self->{port},
                                      Proto => 'tcp', Timeout => 1);
        if ($s) { close $s; $ok = 1; last; }
        sleep 0.05;
    }

    # The listen socket belongs to the master: accepting a connection does
    # not prove a worker is alive.  Wait for an HTTP answer as well.
    if ($ok) {
        $ok = 0;
        while (time < $deadline) {
            my $r = $self->raw_req('GET', '/__inventory_harness_ping',
                                   timeout => 2);
            if ($r->{status} && $r->{status} < 599) { $ok = 1; last; }
            sleep 0.1;
        }
    }

    if (!$ok) {
        my $log = $self->error_log // '';
        $self->_kill_all;
        $self->{running} = 0;
        delete $LIVE{refaddr $self};
        die "nginx did not answer on port $self->{port} within 10 s\n"
            . "--- start output:\n$out\n--- error.log:\n$log";
    }

    $self->{master} = $self->master_pid;
    return $self;
}

sub master_pid {
    my ($self) = @_;
    my $p = slurp("$self->{dir}/nginx.pid");
    return undef unless defined $p;
    ($p) = $p =~ /(\d+)/;
    return $p;
}

# Children of the master (workers, cache processes), read from /proc.
sub worker_pids {
    my ($self) = @_;
    my $m = $self->master_pid or return ();
    my @pids;
    opendir my $dh, '/proc' or return ();
    for my $p (grep { /^\d+\z/ } readdir $dh) {
        my $st = slurp("/proc/$p/stat") // next;
        my ($state, $ppid) = $st =~ /\)\s+(\S)\s+(\d+)/ or next;
        next if $state eq 'Z';
        push @pids, $p + 0 if $ppid == $m;
    }
    closedir $dh;
    return sort { $a <=> $b } @pids;
}

sub _kill_all {
    my ($self) = @_;
    my $m = $self->master_pid;
    my @w = $self->worker_pids;
    kill 'KILL', $m if $m && pid_alive($m);
    kill 'KILL', $_ for grep { pid_alive($_) } @w;
}

# $n->workers_now($t, @gone): the instance's workers once there are as many
# as it runs and none is one of @gone, within $t s; () if not
sub workers_now {
    my ($self, $t, @gone) = @_;
    my %gone = map { $_ => 1 } grep { defined } @gone;
    my $deadline = time + $t;
    while (time < $deadline) {
        my @w = $self->worker_pids;
        return @w if @w == $self->{workers} && !grep { $gone{$_} } @w;
        sleep 0.02;
    }
    return ();
}

# $n->crash: the whole instance dies at once, as in a power cut: the master
# is stopped (it respawns nothing), then it and its workers get SIGKILL.
# Returns the pids still alive 15 s later (none, normally); the instance
# can then be started again with $n->_launch.
sub crash {
    my ($self) = @_;
    my $m = $self->master_pid;
    kill 'STOP', $m;
    my @w = $self->worker_pids;
    kill 'KILL', $m, @w;
    $self->{running} = 0;
    return grep { !wait_gone($_, 15) } $m, @w;
}

sub stop {
    my ($self) = @_;
    return unless $self->{running};
    return unless $$ == $self->{owner};

    my $m = $self->master_pid;
    my @w = $self->worker_pids;
    my $clean = 1;

    if ($m && pid_alive($m)) {
        kill 'QUIT', $m;
        my $deadline = time + 15;
        sleep 0.05 while pid_alive($m) && time < $deadline;
        if (pid_alive($m)) {
            $clean = 0;
            $self->_kill_all;
            sleep 0.05 while pid_alive($m) && time < $deadline + 5;
        }
    }
    # workers normally exit before the master; never leave one behind
    my $deadline = time + 5;
    sleep 0.05 while (grep { pid_alive($_) } @w) && time < $deadline;
    kill 'KILL', $_ for grep { pid_alive($_) } @w;

    $self->{running} = 0;
    delete $LIVE{refaddr $self};

    Test::More::ok($clean, "nginx stopped gracefully on QUIT within 15 s")
        or Test::More::diag("master $m did not exit; killed\n"
                            . $self->_tail_log(40));
    $self->check_log('at stop');
    $self->_san_check;
    return $self;
}

sub restart {
    my ($self) = @_;
    $self->stop;
    $self->_san_snapshot;
    $self->_launch;
    return $self;
}

sub reload {
    my ($self) = @_;
    my $m = $self->master_pid or die "no master pid";
    my %old = map { $_ => 1 } $self->worker_pids;
    kill 'HUP', $m or die "kill HUP $m: $!";

    my $deadline = time + 10;
    my $new = 0;
    while (time < $deadline) {
        my @now = $self->worker_pids;
        if (grep { !$old{$_} } @now) { $new = 1; last; }
        sleep 0.05;
    }
    die "reload: no new worker processes within 10 s\n" . $self->_tail_log(40)
        unless $new;

    # best effort: let the old workers finish (not an error if they linger)
    while (time < $deadline) {
        last unless grep { $old{$_} } $self->worker_pids;
        sleep 0.05;
    }
    return $self;
}

# $n->reconfigure(store_args => ..., http_extra => ..., ...): change options
# that go into the generated nginx.conf (conf, store_args, http_extra,
# server_extra, location_extra) and rewrite the file; the change takes
# effect at the next reload or restart.  datadir, workers and port stay.
sub reconfigure {
    my ($self, %opt) = @_;
    for my $k (keys %opt) {
        die "reconfigure: option '$k' cannot change\n"
            unless $k =~ /^(?:conf|store_args|http_extra|server_extra
                              |location_extra)\z/x;
        $self->{opt}{$k} = $opt{$k};
    }
    $self->_write_conf;
    return $self;
}

# --------------------------------------------------------------------------
# accessors

sub url     { "http://" . $_[0]->addr . ":$_[0]{port}" . ($_[1] // '/') }
# 127.0.0.1 unless it listens elsewhere (and for stand-ins made by hand)
sub addr    { $_[0]{addr} // '127.0.0.1' }
sub port    { $_[0]{port} }
sub dir     { $_[0]{dir} }
sub datadir { $_[0]{datadir} }

sub error_log {
    my ($self) = @_;
    return slurp("$self->{dir}/error.log") // '';
}

sub _tail_log {
    my ($self, $n) = @_;
    my @l = split /\n/, $self->error_log;
    @l = @l[-$n .. -1] if @l > $n;
    return "--- error.log (tail):\n" . join("\n", @l) . "\n";
}

sub allow_log {
    my ($self, @re) = @_;
    push @{ $self->{allow} }, @re;
    return $self;
}

# Check the part of the error log written since the last check.
sub check_log {
    my ($self, $label) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $log = $self->error_log;
    my $new = substr($log, $self->{log_offset} // 0);
    $self->{log_offset} = length $log;
    my @bad;
    LINE: for my $l (split /\n/, $new) {
        next unless $l =~ $BAD_LOG;
        for my $re (@{ $self->{allow} }) { next LINE if $l =~ $re }
        push @bad, $l;
    }
    Test::More::ok(!@bad, "error log has no emerg/alert/crit/crash lines"
                          . ($label ? " ($label)" : ''))
        or Test::More::diag(join "\n", @bad[0 .. ($#bad > 30 ? 30 : $#bad)]);
    return !@bad;
}

sub _san_snapshot {
    my ($self) = @_;
    $self->{san_seen}{$_} = 1 for san_files();
}

sub _san_check {
    my ($self) = @_;
    my $d = $ENV{INVENTORY_ASAN_LOG};
    return unless defined $d && -d $d;
    san_reports_ok($self->{san_seen});
}

END {
    for my $n (values %LIVE) {
        next unless $n->{owner} == $$;
        local $?;
        $n->stop;
    }
}

sub DESTROY {
    my ($self) = @_;
    return unless $self->{running} && $self->{owner} == $$;
    local ($?, $@);
    eval { $self->stop };
}


# --------------------------------------------------------------------------
# Binary upgrade on the fly (t/64): USR2 starts a new master from the same
# binary and arguments; the old master's pid file becomes nginx.pid.oldbin.

# $n->oldbin_pid: the pid in nginx.pid.oldbin, undef when there is none
sub oldbin_pid {
    my ($self) = @_;
    my $p = slurp("$self->{dir}/nginx.pid.oldbin");
    return undef unless defined $p;
    ($p) = $p =~ /(\d+)/;
    return $p;
}

# $n->workers_of($master): live worker processes of that master (while an
# upgrade runs, the new master is a child of the old one: it is left out);
# their number in scalar context
sub workers_of {
    my ($self, $m) = @_;
    return () unless $m;
    my @pids;
    opendir my $dh, '/proc' or return ();
    for my $p (grep { /^\d+\z/ } readdir $dh) {
        my $st = slurp("/proc/$p/stat") // next;
        my ($state, $ppid) = $st =~ /\)\s+(\S)\s+(\d+)/ or next;
        next if $state eq 'Z' || $ppid != $m;
        my $cmd = slurp("/proc/$p/cmdline") // '';
        next if $cmd =~ /master process/;
        push @pids, $p + 0;
    }
    closedir $dh;
    @pids = sort { $a <=> $b } @pids;
    return wantarray ? @pids : scalar @pids;
}

# $n->upgrade_begin(timeout => 15): USR2 to the master; waits until
# nginx.pid names a new master, nginx.pid.oldbin the old one and the new
# master has all its workers.  Both generations then accept on the same
# listening sockets.  Returns ($old, $new); dies on a timeout.
sub upgrade_begin {
    my ($self, %o) = @_;
    my $old = $self->master_pid or die "no master pid\n";
    kill 'USR2', $old or die "kill USR2 $old: $!\n";
    my $deadline = time + ($o{timeout} // 15);
    my $new;
    while (time < $deadline) {
        my $m = $self->master_pid;
        my $ob = $self->oldbin_pid;
        if ($m && $m != $old && $ob && $ob == $old && pid_alive($m)
            && $self->workers_of($m) >= $self->{workers})
        {
            $new = $m;
            last;
        }
        sleep 0.05;
    }
    die "upgrade: no new master with $self->{workers} workers within "
        . ($o{timeout} // 15) . " s after USR2 to $old\n"
        . $self->_tail_log(40)
        unless $new;
    return ($old, $new);
}

# $n->upgrade(timeout => 15): the whole upgrade: upgrade_begin, then QUIT
# to the old master, which lets its workers finish and exits.  Returns
# ($old, $new); dies when the old master does not exit in time.
sub upgrade {
    my ($self, %o) = @_;
    my ($old, $new) = $self->upgrade_begin(%o);
    kill 'QUIT', $old or die "kill QUIT $old: $!\n";
    wait_gone($old, $o{timeout} // 15)
        or die "upgrade: old master $old did not exit within "
               . ($o{timeout} // 15) . " s of QUIT\n" . $self->_tail_log(40);
    return ($old, $new);
}


# ==========================================================================
# HTTP
# ==========================================================================

sub _finish {
    my ($r) = @_;
    my $ct = $r->{headers}{'content-type'} // '';
    $ct = $ct->[0] if ref $ct;
    $r->{content_type} = $ct;
    $r->{json} = undef;
    if (defined $r->{body} && length $r->{body}
        && $ct =~ m{^application/(?:problem\+)?json\b}i)
    {
        my $j = eval { $JSON_DEC->decode($r->{body}) };
        if ($@) { $r->{json_error} = $@ } else { $r->{json} = $j }
    }
    return $r;
}

# $n->req($method, $path, json => $ref | body => $raw, headers => {...},
#         raw => 1)
# raw => 1 sends exactly the given headers over a plain socket (HTTP::Tiny
# always adds a Content-Type to a body).
sub req {
    my ($self, $method, $path, %o) = @_;
    my %h = %{ $o{headers} // {} };
    my $content;

    if (exists $o{json}) {
        $content = $JSON->encode($o{json});
        $h{'Content-Type'} = 'application/json'
            unless grep { lc eq 'content-type' } keys %h;
    } elsif (defined $o{body}) {
        $content = $o{body};
    }

    if ($o{raw}) {
        return $self->raw_req($method, $path,
                              headers => [%h],
                              (defined $content ? (body => $content) : ()));
    }

    # from => ADDR: the client's address (127.0.0.0/8 is all local)
    my $ht = HTTP::Tiny->new(keep_alive => 0, timeout => 30,
                             max_redirect => 0, agent => 'InvTest/1',
                             ($o{from} ? (local_address => $o{from}) : ()));
    my $res = $ht->request($method, $self->url($path), {
        headers => \%h,
        (defined $content ? (content => $content) : ()),
    });

    return _finish({
        status  => $res->{status},
        reason  => $res->{reason},
        headers => $res->{headers} // {},
        body    => $res->{content} // '',
        method  => $method,
        path    => $path,
    });
}

# Plain-socket request.  headers => [name => value, ...] sent in order, as
# given; Host and Connection: close are added; Content-Length is added for a
# body unless a Content-Length or Transfer-Encoding header is given.
sub raw_req {
    my ($self, $method, $path, %o) = @_;
    my $timeout = $o{timeout} // 30;
    my @h = @{ $o{headers} // [] };
    my $body = $o{body};

    my $s = IO::Socket::INET->new(PeerAddr => $self->addr,
                                  PeerPort => $self->{port},
                                  Proto => 'tcp', Timeout => $timeout)
        or return _finish({ status => 599, headers => {},
                            body => "connect: $!",
                            method => $method, path => $path });

    my $req = "$method $path HTTP/1.1\r\nHost: " . $self->addr
              . ":$self->{port}\r\n"
              . "Connection: close\r\n";
    my %given;
    while (my ($k, $v) = splice @h, 0, 2) {
        $req .= "$k: $v\r\n";
        $given{lc $k} = 1;
    }
    if (defined $body && !$given{'content-length'}
        && !$given{'transfer-encoding'})
    {
        $req .= 'Content-Length: ' . length($body) . "\r\n";
    }
    $req .= "\r\n";
    $req .= $body if defined $body;

    binmode $s;
    my $off = 0;
    while ($off < length $req) {
        my $w = syswrite $s, $req, length($req) - $off, $off;
        last unless defined $w;
        $off += $w;
    }

    my $sel = IO::Select->new($s);
    my $buf = '';
    my $deadline = time + $timeout;
    while (time < $deadline) {
        last unless $sel->can_read($deadline - time);
        my $n = sysread $s, $buf, 65536, length $buf;
        last unless $n;
        last if $method eq 'HEAD' && $buf =~ /\r\n\r\n/;
    }
    close $s;

    return _parse_raw($buf, $method, $path);
}

# $n->async_req($method, $path, headers => [name => value, ...]): sends a
# request on a new connection (Connection: close) and returns a handle at
# once, without reading the answer; collect it with async_wait.
sub async_req {
    my ($self, $method, $path, %o) = @_;
    my @h = @{ $o{headers} // [] };
    my $s = IO::Socket::INET->new(PeerAddr => $self->addr,
                                  PeerPort => $self->{port},
                                  Proto => 'tcp', Timeout => 5)
        or return { failed => "connect: $!", method => $method,
                    path => $path, sent => time };
    my $req = "$method $path HTTP/1.1\r\nHost: " . $self->addr
              . ":$self->{port}\r\n"
              . "Connection: close\r\n";
    while (my ($k, $v) = splice @h, 0, 2) { $req .= "$k: $v\r\n" }
    $req .= "\r\n";
    binmode $s;
    my $off = 0;
    while ($off < length $req) {
        my $w = syswrite $s, $req, length($req) - $off, $off;
        return { failed => "write: $!", method => $method, path => $path,
                 sent => time }
            unless defined $w;
        $off += $w;
    }
    return { sock => $s, buf => '', method => $method, path => $path,
             sent => time };
}

# async_wait(\@handles, $timeout): reads until every handle's connection is
# closed by the server or $timeout seconds pass.  Each finished handle gets
# res (a response as $n->req gives) and done (the time its answer ended);
# an unfinished one keeps its connection (res stays undef) unless
# $opt{close}.  Returns the number of finished handles.
sub async_wait {
    my ($hs, $timeout, %opt) = @_;
    my $deadline = time + $timeout;
    my %by = map { (fileno($_->{sock}) => $_) }
             grep { $_->{sock} && !$_->{res} } @$hs;
    for my $h (grep { $_->{failed} && !$_->{res} } @$hs) {
        $h->{res} = _finish({ status => 599, headers => {},
                              body => $h->{failed}, method => $h->{method},
                              path => $h->{path} });
        $h->{done} = $h->{sent};
    }
    my $sel = IO::Select->new(map { $_->{sock} } values %by);
    while ($sel->count && time < $deadline) {
        my @ready = $sel->can_read($deadline - time);
        my $now = time;
        for my $s (@ready) {
            my $h = $by{ fileno $s };
            my $n = sysread $s, $h->{buf}, 65536, length $h->{buf};
            next if $n;
            next if !defined $n && $!{EAGAIN};
            $sel->remove($s);
            close $s;
            delete $h->{sock};
            $h->{done} = $now;
            $h->{res} = _parse_raw($h->{buf}, $h->{method}, $h->{path});
        }
    }
    if ($opt{close}) {
        for my $h (grep { $_->{sock} } @$hs) { close $h->{sock}; delete $h->{sock} }
    }
    return scalar grep { $_->{res} } @$hs;
}

# a complete HTTP/1.1 response (read until the server closed) into the
# shape $n->req returns
sub _parse_raw {
    my ($buf, $method, $path) = @_;
    my ($head, $rbody) = split /\r\n\r\n/, $buf, 2;
    $rbody //= '';
    my ($status) = ($head // '') =~ m{^HTTP/\d\.\d\s+(\d{3})};
    return _finish({ status => 599, headers => {},
                     body => "bad response: $buf",
                     method => $method, path => $path })
        unless $status;
    my %hd;
    for my $l (split /\r\n/, $head) {
        next unless $l =~ /^([^:\s]+):\s*(.*?)\s*$/;
        my ($k, $v) = (lc $1, $2);
        $hd{$k} = exists $hd{$k} ? [ ref $hd{$k} ? @{ $hd{$k} } : $hd{$k}, $v ]
                                 : $v;
    }
    $rbody = '' if $method eq 'HEAD';
    if (($hd{'transfer-encoding'} // '') =~ /chunked/i) {
        my $out = '';
        while ($rbody =~ s/^([0-9a-fA-F]+)[^\r\n]*\r\n//) {
            my $len = hex $1;
            last if $len == 0;
            $out .= substr($rbody, 0, $len, '');
            $rbody =~ s/^\r\n//;
        }
        $rbody = $out;
    } elsif (defined $hd{'content-length'} && !ref $hd{'content-length'}) {
        $rbody = substr($rbody, 0, $hd{'content-length'});
    }
    return _finish({ status => $status + 0, headers => \%hd, body => $rbody,
                     method => $method, path => $path });
}

# header($r, $name): the first value of a response header (lower case name)
sub header {
    my ($r, $k) = @_;
    my $v = $r->{headers}{$k};
    return ref $v ? $v->[0] : $v;
}

# --------------------------------------------------------------------------
# Shortcuts for the API's routes: $n->get($path, %opt) and the writes below
# are $n->req with the route's path and a JSON body; %opt as for req.

# ipath($sku, $location): the path of an item
sub ipath { "/v1/inventory/$_[0]/$_[1]" }

sub get { my ($self, $path, %o) = @_; $self->req(GET => $path, %o) }

# $n->put_item($sku, $location, \%body, %opt)
sub put_item {
    my ($self, $sku, $loc, $j, %o) = @_;
    return $self->req(PUT => ipath($sku, $loc), json => $j, %o);
}

# $n->adjust($sku, $location, \%body, %opt)
sub adjust {
    my ($self, $sku, $loc, $j, %o) = @_;
    return $self->req(POST => ipath($sku, $loc) . '/adjustments',
                      json => $j, %o);
}

# $n->reserve($sku, $location, \%body, %opt): an item-route reservation
sub reserve {
    my ($self, $sku, $loc, $j, %o) = @_;
    return $self->req(POST => ipath($sku, $loc) . '/reservations',
                      json => $j, %o);
}

# $n->cart(\%body, %opt): a reservation of several lines
sub cart {
    my ($self, $j, %o) = @_;
    return $self->req(POST => '/v1/reservations', json => $j, %o);
}

# $n->commit($id, %opt), $n->release($id, %opt): no body unless %opt has one
sub commit {
    my ($self, $id, %o) = @_;
    return $self->req(POST => "/v1/reservations/$id/commit", %o);
}

sub release {
    my ($self, $id, %o) = @_;
    return $self->req(POST => "/v1/reservations/$id/release", %o);
}

# $n->transfer(\%body, %opt)
sub transfer {
    my ($self, $j, %o) = @_;
    return $self->req(POST => '/v1/transfers', json => $j, %o);
}

# $n->batch(\%body, %opt): POST /v1/batch ({"changes":[...], ...})
sub batch {
    my ($self, $j, %o) = @_;
    return $self->req(POST => '/v1/batch', json => $j, %o);
}

# idem_key($key): the header pair, for headers => { idem_key('k'), ... }
sub idem_key { ('Idempotency-Key' => $_[0]) }

# replayed($r): the answer carries Idempotent-Replayed: true
sub replayed {
    (($_[0]{headers} // {})->{'idempotent-replayed'} // '') eq 'true';
}

# random_write($n, \%st): one write of a random kind on the items
# $st->{items} (["SKU/LOC", ...]): a count (PUT), an adjustment, a
# reservation of one item or a cart of two, the commit or release of one of
# the reservations it made (kept in $st->{active}), a transfer between two
# locations of a SKU; a third of them with an Idempotency-Key
# "$st->{tag}-N".  Reservations last $st->{ttl} seconds (default 600).
# With $st->{states} also the quantity states and the ledger: counts set
# safety_stock and backorder_limit, adjustments name a state, moves
# (kind "move") between any allowed pair of states, and a third of the
# writes carry a reason and a reference (commits and releases then have a
# body).
# Returns { kind, paths (the items written), id (the reservation), r (the
# answer), ok (the status is one the kind may get: its 2xx, or the 404 or
# 409 of a refusal) }.
my %WRITE_OK = (
    put => [200, 201, 409], adjust => [200, 201, 404, 409],
    reserve => [201, 404, 409], cart => [201, 404, 409],
    commit => [200, 409], release => [200, 409],
    transfer => [200, 404, 409], move => [200, 404, 409],
);

# the moves a client may ask for: out of any state, into an on-hand one
our @MOVES = map { my $f = $_; map { [ $f, $_ ] } grep { $_ ne $f }
                                   qw(available damaged quality_control) }
             qw(available damaged quality_control incoming);

sub random_write {
    my ($n, $st) = @_;
    my @items = @{ $st->{items} };
    my $it = $items[rand @items];
    my ($sku, $loc) = split m{/}, $it;
    my @other = grep { m{^\Q$sku\E/} && $_ ne $it } @items;
    my $act = $st->{active} //= [];
    my %h;
    %h = ('Idempotency-Key' => ($st->{tag} // 'rw') . '-' . ++$st->{keyn})
        if rand() < 1 / 3;
    my %o = (headers => \%h);
    my $states = $st->{states};
    # the ledger's members, on a third of the writes with states
    my %l = $states && rand() < 1 / 3
          ? (reason => 'rw ' . int(rand 1000),
             reference => ($st->{tag} // 'rw') . ':' . int(rand 50))
          : ();
    my $x = rand 100;
    my %w;
    if ($states && $x >= 85 && $x < 93) {
        my $m = $MOVES[rand @MOVES];
        %w = (kind => 'move', paths => [$it],
              r => $n->req(POST => "/v1/inventory/$it/moves", %o, json => {
                  from => $m->[0], to => $m->[1],
                  quantity => 1 + int rand 10, %l }));
    } elsif ($x < 15) {
        %w = (kind => 'put', paths => [$it],
              r => $n->req(PUT => "/v1/inventory/$it", %o, json => {
                  on_hand => 500 + int rand 1000,
                  (rand() < 0.5 ? (min_level => int rand 600) : ()),
                  ($states && rand() < 0.5
                   ? (safety_stock => int rand 100) : ()),
                  ($states && rand() < 0.5
                   ? (backorder_limit => int rand 50) : ()), %l }));
    } elsif ($x < 40) {
        my $d = (1 + int rand 20) * (rand() < 0.4 ? -1 : 1);
        my @s = $states ? ((undef, qw(available damaged quality_control
                                      incoming))[rand 5]) : ();
        %w = (kind => 'adjust', paths => [$it],
              r => $n->req(POST => "/v1/inventory/$it/adjustments", %o,
                           json => { delta => $d, %l,
                                     (defined $s[0] ? (state => $s[0])
                                                    : ()) }));
    } elsif ($x < 55) {
        %w = (kind => 'reserve', paths => [$it],
              r => $n->req(POST => "/v1/inventory/$it/reservations", %o,
                           json => { quantity => 1 + int rand 3,
                                     ttl_seconds => $st->{ttl} // 600,
                                     %l }));
    } elsif ($x < 65 && @items > 1) {
        my $two;
        do { $two = $items[rand @items] } while $two eq $it;
        my @l = map { my ($s, $l) = split m{/}; { sku => $s, location => $l,
                      quantity => 1 + int rand 3 } } $it, $two;
        %w = (kind => 'cart', paths => [$it, $two],
              r => $n->req(POST => '/v1/reservations', %o,
                           json => { lines => \@l,
                                     ttl_seconds => $st->{ttl} // 600,
                                     %l }));
    } elsif ($x < 85 && @$act) {
        my $id = splice @$act, int rand @$act, 1;
        my $op = rand() < 0.5 ? 'commit' : 'release';
        %w = (kind => $op, id => $id, paths => [],
              r => $n->req(POST => "/v1/reservations/$id/$op", %o,
                           (%l ? (json => \%l) : ())));
    } elsif (@other) {
        my $to = $other[rand @other];
        my (undef, $tl) = split m{/}, $to;
        %w = (kind => 'transfer', paths => [$it, $to],
              r => $n->req(POST => '/v1/transfers', %o, json => {
                  sku => $sku, from => $loc, to => $tl,
                  quantity => 1 + int rand 10, %l }));
    } else {
        %w = (kind => 'adjust', paths => [$it],
              r => $n->req(POST => "/v1/inventory/$it/adjustments", %o,
                           json => { delta => 1 + int rand 20, %l }));
    }
    $w{key} = $h{'Idempotency-Key'};
    if ($w{kind} =~ /^(?:reserve|cart)\z/ && $w{r}{status} == 201
        && ref $w{r}{json} eq 'HASH' && defined $w{r}{json}{id})
    {
        $w{id} = $w{r}{json}{id};
        push @$act, $w{id};
    }
    $w{ok} = grep { $_ == $w{r}{status} } @{ $WRITE_OK{ $w{kind} } };
    return \%w;
}

# keyed_writer(\@urls, $file, $sku): a child that PUTs $sku-1, $sku-2, ...
# at location L (on_hand the number, Idempotency-Key the same) through the
# nodes at @urls ("http://HOST:PORT/v1/inventory/"), each write retried
# with its key on the next node until it is 2xx; every 2xx is appended to
# $file ("N TIME NODE", NODE its index in @urls).  parallel_stop() ends
# it.
sub keyed_writer {
    my ($urls, $file, $sku) = @_;
    return parallel_start(1, sub {
        my (undef, $stop) = @_;
        my $h = HTTP::Tiny->new(timeout => 2);
        open my $log, '>>', $file or die "$file: $!";
        $log->autoflush(1);
        my ($i, $cur) = (0, 0);
        while (!$stop->()) {
            $i++;
            for my $try (1 .. 400) {
                my $r = $h->request('PUT', $urls->[$cur] . "$sku-$i/L",
                    { headers => { 'Content-Type' => 'application/json',
                                   'Idempotency-Key' => "$sku-$i" },
                      content => qq({"on_hand":$i}) });
                if ($r->{status} =~ /^20[01]$/) {
                    printf {$log} "%d %.3f %d\n", $i, time, $cur;
                    last;
                }
                # another node may lead now
                $cur = ($cur + 1) % @$urls;
                sleep 0.02;
                last if $stop->() && $try > 100;
            }
            sleep 0.01;
        }
        return '';
    });
}

# acked_after($file, $t, $not): the time of the first write keyed_writer
# recorded after $t, not answered by the node of index $not in its URLs
# (one killed at $t may have answered just before), or undef
sub acked_after {
    my ($file, $t, $not) = @_;
    open my $f, '<', $file or return;
    while (<$f>) {
        my ($i, $at, $node) = split;
        return $at if $at > $t && !(defined $not && $node == $not);
    }
    return;
}

# acked_items($file): the numbers of the writes keyed_writer recorded
sub acked_items {
    my ($file) = @_;
    open my $f, '<', $file or return ();
    return map { (split)[0] } <$f>;
}

# put_n($n, $prefix, $count): PUTs $prefix-1 .. $prefix-$count at location
# L, on_hand the number; returns how many were 201
sub put_n {
    my ($n, $prefix, $count) = @_;
    my $ok = 0;
    for my $i (1 .. $count) {
        my $r = $n->req(PUT => ipath("$prefix-$i", 'L'),
                        json => { on_hand => $i });
        $ok++ if $r->{status} == 201;
    }
    return $ok;
}

# ==========================================================================
# assertions
# ==========================================================================

# The JSON type of a value decoded by JSON::PP: number, string, bool, null,
# array, object.  Numbers and strings are told apart by the flags the
# decoder left (call before the value is used in another context).
sub json_type {
    my ($v) = @_;
    return 'null' unless defined $v;
    if (ref $v) {
        return 'bool' if blessed $v && $v->isa('JSON::PP::Boolean');
        return 'array' if ref $v eq 'ARRAY';
        return 'object' if ref $v eq 'HASH';
        return ref $v;
    }
    my $f = B::svref_2object(\$v)->FLAGS;
    # copy semantics: $v is a copy; numeric copies keep IOK/NOK without POK
    return 'string' if $f & B::SVf_POK;
    return 'number' if $f & (B::SVf_IOK | B::SVf_NOK);
    return 'string';
}

sub show {
    my ($r) = @_;
    my $b = $r->{body} // '';
    $b = substr($b, 0, 2000) . '...' if length $b > 2000;
    my $h = join ', ', map {
        "$_: " . (ref $r->{headers}{$_} ? join('|', @{ $r->{headers}{$_} })
                                        : $r->{headers}{$_})
    } sort keys %{ $r->{headers} // {} };
    return sprintf "%s %s -> %s\nheaders: %s\nbody: %s",
        $r->{method} // '?', $r->{path} // '?', $r->{status} // '?', $h, $b;
}

my %CODE_STATUS = (
    'invalid-request' => 400, 'not-found' => 404,
    'method-not-allowed' => 405, 'unsupported-media-type' => 415,
    'insufficient-stock' => 409, 'reservation-not-active' => 409,
    'version-mismatch' => 412, 'idempotency-key-reused' => 422,
    'idempotency-key-in-flight' => 409, 'storage-full' => 507,
    'unavailable' => 503,
);

# problem_ok($r, $status, $code, $name, %opt)
#   field  => 'x' or [alternatives]: some errors[].field must be one of them
#   allow  => [methods]: the Allow header must name each
# Returns true when everything matched.
sub problem_ok {
    my ($r, $status, $code, $name, %opt) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    return _problems_ok([ problem_problems($r, $status, $code, %opt) ],
                        $name, $r);
}

# problem_problems($r, $status, $code, %opt): what problem_ok finds wrong
# with an answer (an empty list: nothing); $status undef: any 4xx, $code
# undef: any code (the one its type names)
sub problem_problems {
    my ($r, $status, $code, %opt) = @_;
    my @p;
    if (defined $status) {
        push @p, "status is $r->{status}, expected $status"
            unless $r->{status} == $status;
    } else {
        push @p, "status is $r->{status}, expected a 4xx"
            unless $r->{status} >= 400 && $r->{status} < 500;
    }
    push @p, "content-type is '$r->{content_type}', expected "
             . "application/problem+json"
        unless $r->{content_type} =~ m{^application/problem\+json\b}i;
    my $j = $r->{json};
    if (ref $j ne 'HASH') {
        push @p, 'body is not a JSON object'
                 . ($r->{json_error} ? ": $r->{json_error}" : '');
    } else {
        for my $m (qw(type title detail code)) {
            my $t = json_type($j->{$m});
            push @p, "member '$m' is $t, expected string" if $t ne 'string';
        }
        my $st = json_type($j->{status});
        push @p, "member 'status' is $st, expected number"
            if $st ne 'number';
        push @p, "member 'status' is " . ($j->{status} // 'null')
                 . ", expected $r->{status} (the HTTP status)"
            if $st eq 'number' && $j->{status} != $r->{status};
        push @p, "code is '" . ($j->{code} // 'null') . "', expected '$code'"
            unless defined $code ? defined $j->{code} && $j->{code} eq $code
                                 : defined $j->{code};
        push @p, "type is '" . ($j->{type} // 'null') . "', expected "
                 . "'urn:inventory:problem:" . ($j->{code} // '') . "'"
            unless defined $j->{code}
                   && ($j->{type} // '') eq "urn:inventory:problem:$j->{code}";

        if (($status // $r->{status}) == 400) {
            my $e = $j->{errors};
            if (ref $e ne 'ARRAY' || !@$e) {
                push @p, "400 without a non-empty 'errors' array";
            } else {
                for my $x (@$e) {
                    if (ref $x ne 'HASH') { push @p, 'errors[] item not an object'; next }
                    for my $m (qw(field message)) {
                        my $t = json_type($x->{$m});
                        push @p, "errors[].$m is $t, expected string"
                            if $t ne 'string';
                    }
                }
                if (defined $opt{field}) {
                    my @want = ref $opt{field} ? @{ $opt{field} } : $opt{field};
                    my %w = map { $_ => 1 } @want;
                    push @p, "no errors[].field in (" . join(', ', @want)
                             . "); got (" . join(', ',
                                 map { ref $_ eq 'HASH' ? $_->{field} // 'null'
                                                        : '?' } @$e) . ')'
                        unless grep { ref $_ eq 'HASH' && defined $_->{field}
                                      && $w{ $_->{field} } } @$e;
                }
            }
        }
        # one item's available, or the short lines (a cart, a commit), or
        # a batch's refused changes
        if (($j->{code} // '') eq 'insufficient-stock') {
            my $t = json_type($j->{available});
            push @p, "409 insufficient-stock without numeric 'available' ($t)"
                    . ", 'lines' or 'errors'"
                if $t ne 'number'
                   && !(ref $j->{lines} eq 'ARRAY' && @{ $j->{lines} })
                   && !(ref $j->{errors} eq 'ARRAY' && @{ $j->{errors} });
            push @p, "available is $j->{available}, expected $opt{available}"
                if $t eq 'number' && defined $opt{available}
                   && $j->{available} != $opt{available};
        }
    }
    if ($opt{allow}) {
        my $a = $r->{headers}{allow};
        $a = join ', ', @$a if ref $a;
        if (!defined $a) {
            push @p, 'no Allow header';
        } else {
            my %have = map { uc($_) => 1 } grep { length } split /[\s,]+/, $a;
            for my $m (@{ $opt{allow} }) {
                push @p, "Allow '$a' does not name $m" unless $have{$m};
            }
        }
    }
    if (defined $code && defined $status && $CODE_STATUS{$code}
        && $CODE_STATUS{$code} != $status)
    {
        push @p, "(test bug: code $code goes with $CODE_STATUS{$code})";
    }
    return @p;
}

# ==========================================================================
# hostile input (t/70-hostile*.t)
# ==========================================================================

# hostile_bodies(): bodies no write route may take: malformed, truncated,
# oversized, deeply nested, non-UTF-8, NUL-containing and numeric-overflow
# JSON, and JSON of the wrong shape or with a wrong member
sub hostile_bodies {
    return (
        '', ' ', '{', '}', '[', '{"quantity":', '{"quantity":1',
        '{"quantity":1,}', 'null', 'true', '0', '"x"', '[1,2,3]',
        '{"quantity":1}{"quantity":1}', '{"quantity":"1"}',
        '{"quantity":1.0}', '{"quantity":1e3}', '{"quantity":-0}',
        '{"quantity":0x10}', '{"quantity":01}',
        '{"quantity":99999999999999999999999999999999}',
        '{"quantity":9007199254740993}',
        '{"quantity":-9223372036854775809}', '{"delta":1e308}',
        '{"delta":-1e400}', '{"on_hand":NaN}', '{"on_hand":Infinity}',
        '{"quantity":1,"quantity":2}',
        "{\"quantity\":1,\"reason\":\"a\x00b\"}", "{\"quantity\":1\x00}",
        "\x00\x00\x00\x00", "{\"reason\":\"\xff\xfe\"}",
        "{\"reason\":\"\xc0\xaf\"}", "{\"reason\":\"\xed\xa0\x80\"}",
        "{\"reason\":\"\\ud800\"}", "\xef\xbb\xbf{\"quantity\":1}",
        "{\"r\xc3\":1}",
        ('[' x 10000) . (']' x 10000), ('{"a":' x 5000) . '1' . ('}' x 5000),
        '{"lines":['
        . join(',', ('{"sku":"H-1","location":"s1","quantity":1}') x 5000)
        . ']}',
        '{"reason":"' . ('x' x 60000) . '"}',
        '{"' . ('k' x 1000) . '":1}', '"' . ("\\u0000" x 1000) . '"',
        '{"quantity":1,"ttl_seconds":18446744073709551616}',
        '{"sku":"H-1","from":"s1","to":"s1","quantity":1}',
        '{"sku":"../../etc/passwd","from":"s1","to":"s2","quantity":1}',
        '{"sku":"H-1","from":"s1","to":"s2","quantity":-1}',
    );
}

# unpaired_surrogates(): JSON strings with a \u escape of half a
# surrogate pair, or a pair in the wrong order: not Unicode, so not UTF-8
# either (yajl turned a lone high one into "?" and paired one with any
# escape after it)
sub unpaired_surrogates {
    return ('"\ud800"', '"a\ud83db"', '"\udbff"', '"\ud800\u0041"',
            '"\ud800\ud800"', '"\udc00"', '"\ude00\ud83d"',
            '"\ud800\\\\ude00"', '"x\ud800\n"');
}

# hostile_problems($n, \@routes, \@bodies): sends each body to each route
# ([method, path]) as application/json and as text/plain.  Returns the
# number of requests and { "METHOD path" => [what was wrong, ...] } of
# the answers that are not a 4xx problem (nginx's own page for a body over
# client_max_body_size aside: 413, text/html)
sub hostile_problems {
    my ($n, $routes, $bodies) = @_;
    my (%bad, $count);
    for my $w (@$routes) {
        for my $b (@$bodies) {
            for my $ct ('application/json', 'text/plain') {
                my $r = $n->req(@$w, body => $b, raw => 1,
                                headers => { 'Content-Type' => $ct });
                $count++;
                next if $r->{status} == 413
                        && $r->{content_type} =~ m{^text/html\b}i;
                my @p = problem_problems($r, undef, undef);
                push @{ $bad{"$w->[0] $w->[1]"} },
                     "$r->{status} for $ct "
                     . substr($b =~ s/[^ -~]/?/gr, 0, 60) . ": $p[0]"
                    if @p;
            }
        }
    }
    return ($count, \%bad);
}

# json_object(\@members): the text of a JSON object of those members
# ([name => value's JSON text, ...]) in order; a name given again replaces
# the value in its place, an undef value leaves the member out
sub json_object {
    my @m = @{ $_[0] };
    my (@out, %at);
    while (my ($k, $v) = splice @m, 0, 2) {
        if (exists $at{$k}) { $out[ $at{$k} ] = [ $k, $v ]; next }
        $at{$k} = @out;
        push @out, [ $k, $v ];
    }
    return '{' . join(',', map { qq{"$_->[0]":$_->[1]} }
                           grep { defined $_->[1] } @out) . '}';
}

my @ITEM_KEYS = qw(available location low_stock min_level on_hand reserved
                   sku updated_at version);

# _json_problems($r, $status): problems with the status and the JSON
# content type of an answer
sub _json_problems {
    my ($r, $status) = @_;
    my @p;
    push @p, "status is $r->{status}, expected $status"
        unless $r->{status} == $status;
    push @p, "content-type is '$r->{content_type}', expected application/json"
        unless $r->{content_type} =~ m{^application/json\b}i;
    return @p;
}

# _problems_ok(\@problems, $name, $r): one test, passed when there is no
# problem; else the problems and the answer as diagnostics
sub _problems_ok {
    my ($p, $name, $r) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $ok = Test::More::ok(!@$p, $name);
    Test::More::diag(join("\n", map { "  - $_" } @$p) . "\n" . show($r))
        unless $ok;
    return $ok;
}

# item_problems($j, \%expect): list of problems with an item object
sub item_problems {
    my ($j, $exp) = @_;
    $exp //= {};
    my @p;
    return ('item is not a JSON object') unless ref $j eq 'HASH';

    my %types = (sku => 'string', location => 'string', on_hand => 'number',
                 reserved => 'number', damaged => 'number',
                 quality_control => 'number', safety_stock => 'number',
                 incoming => 'number', backorder_limit => 'number',
                 available => 'number', min_level => 'number',
                 low_stock => 'bool', seq => 'number', version => 'number',
                 updated_at => 'string');
    for my $k (sort keys %types) {
        my $t = json_type($j->{$k});
        push @p, "'$k' is $t, expected $types{$k}" if $t ne $types{$k};
    }
    my @extra = grep { !exists $types{$_} } sort keys %$j;
    push @p, "unexpected members: @extra" if @extra;
    return @p if @p;

    my $sellable = $j->{on_hand} - $j->{damaged} - $j->{quality_control};
    push @p, 'available != on_hand - damaged - quality_control - '
             . 'safety_stock - reserved'
        unless $j->{available} == $sellable - $j->{safety_stock}
                                  - $j->{reserved};
    push @p, 'a quantity below zero'
        if grep { $j->{$_} < 0 } qw(on_hand reserved damaged quality_control
                                    safety_stock incoming backorder_limit);
    push @p, 'damaged + quality_control > on_hand' if $sellable < 0;
    push @p, 'reserved > on_hand - damaged - quality_control + '
             . 'backorder_limit'
        if $j->{reserved} > $sellable + $j->{backorder_limit};
    push @p, 'seq < 1' unless $j->{seq} >= 1;
    push @p, 'low_stock != (available < min_level)'
        unless (!!$j->{low_stock}) == ($j->{available} < $j->{min_level});
    push @p, "updated_at '$j->{updated_at}' is not RFC 3339 UTC with ms"
        unless $j->{updated_at} =~ TS_RE;
    push @p, 'version < 1' unless $j->{version} >= 1;

    for my $k (sort keys %$exp) {
        my $e = $exp->{$k};
        my $g = $j->{$k};
        if ($k eq 'low_stock') {
            push @p, "low_stock is " . ($g ? 'true' : 'false') . ", expected "
                     . ($e ? 'true' : 'false')
                if (!!$g) != (!!$e);
        } elsif ($e =~ /^-?\d+\z/ && $g =~ /^-?\d+\z/) {
            push @p, "$k is $g, expected $e" if $g != $e;
        } else {
            push @p, "$k is '$g', expected '$e'" if $g ne $e;
        }
    }
    return @p;
}

# item_ok($r, $status, \%expect, $name): status, content type, shape,
# invariants, ETag == "<version>", expected member values.
sub item_ok {
    my ($r, $status, $exp, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my @p = _json_problems($r, $status);
    push @p, item_problems($r->{json}, $exp);
    if (ref $r->{json} eq 'HASH' && defined $r->{json}{version}) {
        my $et = $r->{headers}{etag};
        my $want = qq{"$r->{json}{version}"};
        push @p, 'ETag is ' . ($et // 'missing') . ", expected $want"
            unless defined $et && !ref $et && $et eq $want;
    }
    return _problems_ok(\@p, $name, $r);
}


# reservation_problems($j, \%expect): problems with a reservation object.
# expect: id, state, reference (undef: null), ttl (seconds between
# created_at and expires_at), lines ([[sku, location, quantity], ...]).
sub reservation_problems {
    my ($j, $exp) = @_;
    $exp //= {};
    return ('reservation is not a JSON object') unless ref $j eq 'HASH';
    my @p;
    my %types = (id => 'string', state => 'string', lines => 'array',
                 created_at => 'string', expires_at => 'string');
    for my $k (sort keys %types) {
        my $t = json_type($j->{$k});
        push @p, "'$k' is $t, expected $types{$k}" if $t ne $types{$k};
    }
    my $rt = exists $j->{reference} ? json_type($j->{reference}) : 'missing';
    push @p, "'reference' is $rt, expected string or null"
        unless $rt eq 'string' || $rt eq 'null';
    my $active = ($j->{state} // '') eq 'active';
    if ($active) {
        push @p, "an active reservation has 'ended_at'"
            if exists $j->{ended_at};
    } else {
        my $t = json_type($j->{ended_at});
        push @p, "'ended_at' is $t, expected string" if $t ne 'string';
    }
    my @extra = grep { !/^(?:id|state|lines|reference|created_at|expires_at
                           |ended_at)\z/x } sort keys %$j;
    push @p, "unexpected members: @extra" if @extra;
    return @p if @p;

    push @p, "id '$j->{id}' does not match r_ + 22 base62 characters"
        unless $j->{id} =~ RES_ID_RE;
    push @p, "state '$j->{state}' is not active/committed/released/expired"
        unless $j->{state} =~ /^(?:active|committed|released|expired)\z/;
    for my $k (qw(created_at expires_at ended_at)) {
        next unless defined $j->{$k};
        push @p, "$k '$j->{$k}' is not RFC 3339 UTC with ms"
            unless $j->{$k} =~ TS_RE;
    }
    return @p if @p;
    push @p, 'expires_at is not after created_at'
        unless ts_ms($j->{expires_at}) > ts_ms($j->{created_at});
    push @p, 'ended_at is before created_at'
        if defined $j->{ended_at}
           && ts_ms($j->{ended_at}) < ts_ms($j->{created_at});
    if (!@{ $j->{lines} }) {
        push @p, 'lines is empty';
    }
    for my $i (0 .. $#{ $j->{lines} }) {
        my $l = $j->{lines}[$i];
        if (ref $l ne 'HASH') { push @p, "lines[$i] is not an object"; next }
        for my $k (qw(sku location)) {
            my $t = json_type($l->{$k});
            push @p, "lines[$i].$k is $t, expected string" if $t ne 'string';
        }
        my $t = json_type($l->{quantity});
        push @p, "lines[$i].quantity is $t, expected number"
            if $t ne 'number';
        my @x = grep { !/^(?:sku|location|quantity)\z/ } sort keys %$l;
        push @p, "lines[$i] has unexpected members: @x" if @x;
    }
    return @p if @p;

    for my $k (qw(id state)) {
        push @p, "$k is '$j->{$k}', expected '$exp->{$k}'"
            if defined $exp->{$k} && $j->{$k} ne $exp->{$k};
    }
    if (exists $exp->{reference}) {
        my $e = $exp->{reference};
        my $g = $j->{reference};
        push @p, 'reference is ' . (defined $g ? "'$g'" : 'null')
                 . ', expected ' . (defined $e ? "'$e'" : 'null')
            unless (!defined $e && !defined $g)
                   || (defined $e && defined $g && $e eq $g);
    }
    if (defined $exp->{ttl}) {
        my $d = ts_ms($j->{expires_at}) - ts_ms($j->{created_at});
        push @p, "expires_at - created_at is $d ms, expected "
                 . $exp->{ttl} * 1000
            unless $d == $exp->{ttl} * 1000;
    }
    if ($exp->{lines}) {
        my $got = join ' ', map { "$_->{sku}/$_->{location}=$_->{quantity}" }
                            @{ $j->{lines} };
        my $want = join ' ', map { "$_->[0]/$_->[1]=$_->[2]" }
                             @{ $exp->{lines} };
        push @p, "lines are ($got), expected ($want)" if $got ne $want;
    }
    return @p;
}

# reservation_ok($r, $status, \%expect, $name)
sub reservation_ok {
    my ($r, $status, $exp, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my @p = _json_problems($r, $status);
    push @p, reservation_problems($r->{json}, $exp);
    return _problems_ok(\@p, $name, $r);
}


# counts_ok($n, $sku, $location, $on_hand, $reserved, $name, %more): GET
# the item: 200 with these on_hand and reserved, available the difference,
# and the members of %more
sub counts_ok {
    my ($n, $sku, $loc, $on_hand, $reserved, $name, %more) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    return item_ok($n->get(ipath($sku, $loc)), 200,
                   { on_hand => $on_hand, reserved => $reserved,
                     available => $on_hand - $reserved, %more }, $name);
}

# unchanged($n, $before, $name): is_deeply on item snapshots (see
# items_snapshot): the requests in between changed nothing
sub unchanged {
    my ($n, $before, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $now = items_snapshot($n, sort keys %$before);
    my $ok = Test::More::is_deeply($now, $before, $name);
    Test::More::diag(Test::More::explain($now)) unless $ok;
    return $ok;
}

# replay_ok($first, $again, $name): same status, same body bytes, the
# Idempotent-Replayed header on the repeat and not on the first
sub replay_ok {
    my ($first, $again, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my @p;
    push @p, "status $again->{status}, first was $first->{status}"
        unless $again->{status} == $first->{status};
    push @p, 'body differs from the first' unless $again->{body} eq $first->{body};
    push @p, 'no Idempotent-Replayed: true on the repeat' unless replayed($again);
    push @p, 'Idempotent-Replayed on the first answer' if replayed($first);
    push @p, "content-type $again->{content_type}, first $first->{content_type}"
        unless $again->{content_type} eq $first->{content_type};
    my $ok = Test::More::ok(!@p, $name);
    Test::More::diag(join("\n", map { "  - $_" } @p) . "\n--- first:\n"
        . show($first) . "\n--- repeat:\n" . show($again))
        unless $ok;
    return $ok;
}

# fresh_ok($r, $name): the answer is not marked replayed
sub fresh_ok {
    my ($r, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $ok = Test::More::ok(!replayed($r), $name);
    Test::More::diag(show($r)) unless $ok;
    return $ok;
}

# ==========================================================================
# events and the feed
# ==========================================================================

# item_events($n, $sku, $location, $after_version): every event of the item
# after that version (default 0), following next_after_version; dies on a
# response that is not a well-formed page.
sub item_events {
    my ($n, $sku, $loc, $after) = @_;
    $after //= 0;
    my @ev;
    for (1 .. 1000) {
        my $r = $n->req(GET => "/v1/inventory/$sku/$loc/events"
                               . "?after_version=$after&limit=1000");
        die "item_events: unexpected answer\n" . show($r) . "\n"
            unless $r->{status} == 200 && ref $r->{json} eq 'HASH'
                   && ref $r->{json}{events} eq 'ARRAY';
        push @ev, @{ $r->{json}{events} };
        my $next = $r->{json}{next_after_version};
        return \@ev unless defined $next;
        $after = $next;
    }
    die "item_events: more than 1000 pages\n";
}

# items_snapshot($n, @item_paths): { path => [status, body] } for comparing
# the state of items before and after requests that must change nothing.
sub items_snapshot {
    my ($n, @paths) = @_;
    return { map {
        my $r = $n->req(GET => $_);
        ($_ => [ $r->{status}, $r->{body} ]);
    } @paths };
}

# event_pages($n, $sku, $location, $limit): (\@events, \@problems): every
# event of the item, $limit (default 100) per page, following
# next_after_version.  A missing item gives ([], []) when $opt{missing_ok}.
# Problems name pages that break the paging contract.
sub event_pages {
    my ($n, $sku, $loc, $limit, %opt) = @_;
    $limit //= 100;
    my (@ev, @p);
    my $after = 0;
    for my $page_no (1 .. 100000) {
        my $r = $n->req(GET => "/v1/inventory/$sku/$loc/events"
                               . "?after_version=$after&limit=$limit");
        if ($r->{status} == 404 && $opt{missing_ok} && $page_no == 1) {
            return ([], []);
        }
        unless ($r->{status} == 200 && ref $r->{json} eq 'HASH'
                && ref $r->{json}{events} eq 'ARRAY')
        {
            push @p, "$sku/$loc events page after $after: " . show($r);
            last;
        }
        my $page = $r->{json}{events};
        my $next = $r->{json}{next_after_version};
        push @p, "$sku/$loc page after $after has " . scalar(@$page)
                 . " events, over the limit $limit"
            if @$page > $limit;
        for my $e (@$page) {
            next if ref $e eq 'HASH' && defined $e->{version}
                    && $e->{version} > $after;
            push @p, "$sku/$loc page after $after holds an event at or "
                     . "before it: " . encode_json($e);
            last;
        }
        push @ev, @$page;
        return (\@ev, \@p) unless defined $next;
        if (!@$page || $next != $page->[-1]{version}) {
            push @p, "$sku/$loc page after $after: next_after_version $next "
                     . "is not the version of its last event";
            last;
        }
        $after = $next;
    }
    return (\@ev, \@p);
}

# feed_pages($n, $after, $limit): (\@events, \@problems): the global feed
# after $after, $limit per page, until a page comes back empty.  Problems
# name pages that break the contract: not 200, more than $limit events, a
# seq that does not follow the previous one by exactly 1, last_seq not the
# seq of the page's last event (or, on the empty page, not the last seq).
sub feed_pages {
    my ($n, $after, $limit) = @_;
    $after //= 0;
    my (@ev, @p);
    for (1 .. 100000) {
        my $q = "/v1/events?after=$after" . (defined $limit ? "&limit=$limit" : '');
        my $r = $n->req(GET => $q);
        unless ($r->{status} == 200 && ref $r->{json} eq 'HASH'
                && ref $r->{json}{events} eq 'ARRAY')
        {
            push @p, "feed page after $after: " . show($r);
            last;
        }
        my $page = $r->{json}{events};
        my $last = $r->{json}{last_seq};
        push @p, "feed page after $after has " . @$page . " events, over "
                 . "the limit $limit"
            if defined $limit && @$page > $limit;
        if (!@$page) {
            push @p, "empty feed page after $after has last_seq "
                     . ($last // 'null') . ", expected $after"
                unless defined $last && $last == $after;
            last;
        }
        my $prev = $after;
        for my $e (@$page) {
            my $s = ref $e eq 'HASH' ? $e->{seq} : undef;
            if (!defined $s || $s != $prev + 1) {
                push @p, "feed page after $after: seq " . ($s // 'null')
                         . " follows $prev";
                last if @p > 20;
            }
            $prev = $s // $prev + 1;
        }
        push @ev, @$page;
        push @p, "feed page after $after: last_seq " . ($last // 'null')
                 . " is not the seq of its last event ($prev)"
            unless defined $last && $last == $prev;
        last if @p > 20;
        $after = $prev;
    }
    return (\@ev, \@p);
}

# last_seq($n): the store's last seq, from an empty page of the feed; -1
# when the answer has none
sub last_seq {
    my ($n) = @_;
    my $r = $n->req(GET => '/v1/events?after=9007199254740991');
    return ref $r->{json} eq 'HASH' ? $r->{json}{last_seq} // -1 : -1;
}

# replay_events(\@events, $sku, $location): (\%state, \@problems).
# Replays an item's events from the empty state and checks, event by event:
# sku and location, versions 1, 2, 3... without gaps, seq strictly
# increasing, timestamps, known types and data (a StockAdjusted without a
# state is one of available, as events written before the states read),
# the invariants after every event (every quantity >= 0, damaged +
# quality_control <= on_hand, reserved <= on_hand - damaged -
# quality_control + backorder_limit), and LowStockDetected exactly right
# after each event that turned low_stock from false to true (with the
# available and min_level of that moment).  %state: on_hand, reserved,
# damaged, quality_control, safety_stock, incoming, backorder_limit,
# min_level, available, low_stock, version, seq, updated_at.
sub replay_events {
    my ($events, $sku, $loc) = @_;
    my %s = (on_hand => 0, reserved => 0, damaged => 0, quality_control => 0,
             safety_stock => 0, incoming => 0, backorder_limit => 0,
             min_level => 0, version => 0, seq => 0, updated_at => undef);
    my @p;
    my $last_seq = 0;
    my $want_lsd = 0;
    my $avail = sub {
        $_[0]{on_hand} - $_[0]{damaged} - $_[0]{quality_control}
        - $_[0]{safety_stock} - $_[0]{reserved}
    };
    my $low = sub { $avail->($_[0]) < $_[0]{min_level} };
    my $int = sub { defined $_[0] && !ref $_[0] && $_[0] =~ /^-?\d+\z/ };
    my %state = map { $_ => 1 } qw(available damaged quality_control incoming);
    my %held = (damaged => 'damaged', quality_control => 'quality_control',
                incoming => 'incoming');

    for my $e (@$events) {
        last if @p > 20;
        if (ref $e ne 'HASH' || ref $e->{data} ne 'HASH') {
            push @p, 'event is not an object with data: '
                     . (ref $e ? encode_json($e) : $e // 'null');
            next;
        }
        my $d = $e->{data};
        my $tag = "$sku/$loc v" . ($e->{version} // '?')
                  . " $e->{type}";
        push @p, "$tag: sku/location are $e->{sku}/$e->{location}"
            unless ($e->{sku} // '') eq $sku
                   && ($e->{location} // '') eq $loc;
        push @p, "$tag: version is not " . ($s{version} + 1)
            unless $int->($e->{version}) && $e->{version} == $s{version} + 1;
        push @p, "$tag: seq " . ($e->{seq} // 'null')
                 . " not above the previous $last_seq"
            unless $int->($e->{seq}) && $e->{seq} > $last_seq;
        push @p, "$tag: at '" . ($e->{at} // 'null') . "' is not a timestamp"
            unless defined $e->{at} && $e->{at} =~ TS_RE;
        push @p, "$tag: at goes back in time"
            if defined $s{updated_at} && defined $e->{at}
               && (ts_ms($e->{at}) // 0) < (ts_ms($s{updated_at}) // 0);
        $last_seq = $e->{seq} if $int->($e->{seq});
        $s{version}++;
        $s{seq} = $e->{seq};
        $s{updated_at} = $e->{at};

        my $type = $e->{type} // '';
        if ($want_lsd) {
            $want_lsd = 0;
            if ($type ne 'LowStockDetected') {
                push @p, "$tag: expected LowStockDetected here (the event "
                         . "before turned low_stock on)";
            }
        } elsif ($type eq 'LowStockDetected') {
            push @p, "$tag: LowStockDetected not right after an event "
                     . "that turned low_stock on";
        }

        my $q = $d->{quantity};
        my $need_q = sub {
            push @p, "$tag: data.quantity is not a positive integer"
                unless $int->($q) && $q > 0;
        };
        my $before = $low->(\%s);

        if ($type eq 'StockCounted') {
            if ($int->($d->{on_hand}) && $int->($d->{min_level})) {
                $s{on_hand} = $d->{on_hand};
                $s{min_level} = $d->{min_level};
            } else {
                push @p, "$tag: data lacks integer on_hand/min_level";
            }
            # written before the states: the settings stay as they were
            for my $f (qw(safety_stock backorder_limit)) {
                next unless exists $d->{$f};
                if ($int->($d->{$f})) {
                    $s{$f} = $d->{$f};
                } else {
                    push @p, "$tag: data.$f is not an integer";
                }
            }
        } elsif ($type eq 'StockAdjusted') {
            my $st = $d->{state} // 'available';
            if (!$state{$st}) {
                push @p, "$tag: data.state '$st' is not a state";
            } elsif ($int->($d->{delta}) && $d->{delta} != 0) {
                $s{on_hand} += $d->{delta} unless $st eq 'incoming';
                $s{ $held{$st} } += $d->{delta} if $held{$st};
            } else {
                push @p, "$tag: data.delta is not a nonzero integer";
            }
        } elsif ($type eq 'StockMoved') {
            $need_q->();
            my ($f, $t) = ($d->{from} // '', $d->{to} // '');
            if (!$state{$f} || !$state{$t} || $t eq 'incoming' || $f eq $t) {
                push @p, "$tag: a move from '$f' to '$t'";
            } else {
                $s{on_hand} += $q // 0 if $f eq 'incoming';
                $s{ $held{$f} } -= $q // 0 if $held{$f};
                $s{ $held{$t} } += $q // 0 if $held{$t};
            }
        } elsif ($type eq 'StockReserved') {
            $need_q->();
            $s{reserved} += $q // 0;
        } elsif ($type eq 'ReservationCommitted') {
            $need_q->();
            $s{reserved} -= $q // 0;
            $s{on_hand} -= $q // 0;
        } elsif ($type eq 'ReservationReleased'
                 || $type eq 'ReservationExpired')
        {
            $need_q->();
            $s{reserved} -= $q // 0;
        } elsif ($type eq 'StockTransferredOut') {
            $need_q->();
            $s{on_hand} -= $q // 0;
            push @p, "$tag: data.to is missing" unless defined $d->{to};
        } elsif ($type eq 'StockTransferredIn') {
            $need_q->();
            $s{on_hand} += $q // 0;
            push @p, "$tag: data.from is missing" unless defined $d->{from};
        } elsif ($type eq 'LowStockDetected') {
            my $a = $avail->(\%s);
            push @p, "$tag: data is " . encode_json($d) . ", replay has "
                     . "available $a, min_level $s{min_level}"
                unless $int->($d->{available}) && $int->($d->{min_level})
                       && $d->{available} == $a
                       && $d->{min_level} == $s{min_level};
        } else {
            push @p, "$tag: unknown event type";
        }
        if ($type =~ /^(?:StockReserved|Reservation\w+)\z/) {
            push @p, "$tag: data.reservation_id is missing"
                unless defined $d->{reservation_id}
                       && !ref $d->{reservation_id};
        }
        my @neg = grep { $s{$_} < 0 } qw(on_hand reserved damaged
            quality_control safety_stock incoming backorder_limit);
        my $sellable = $s{on_hand} - $s{damaged} - $s{quality_control};
        push @p, "$tag: replay leaves " . join(', ', map { "$_ $s{$_}" }
                 qw(on_hand reserved damaged quality_control incoming
                    backorder_limit)) . ' (every quantity >= 0, damaged + '
                 . 'quality_control <= on_hand, reserved <= on_hand - '
                 . 'damaged - quality_control + backorder_limit)'
            if @neg || $sellable < 0
               || $s{reserved} > $sellable + $s{backorder_limit};

        $want_lsd = 1
            if $type ne 'LowStockDetected' && !$before && $low->(\%s);
    }
    push @p, "$sku/$loc: the last event turned low_stock on but no "
             . "LowStockDetected follows"
        if $want_lsd;
    $s{available} = $avail->(\%s);
    $s{low_stock} = $s{available} < $s{min_level} ? 1 : 0;
    return (\%s, \@p);
}

# applied_seq($n): a follower's replication.applied_seq from GET
# /v1/health; undef when the answer has none
sub applied_seq {
    my ($n) = @_;
    my $j = $n->req(GET => '/v1/health')->{json};
    return undef unless ref $j eq 'HASH' && ref $j->{replication} eq 'HASH';
    return $j->{replication}{applied_seq};
}

# wait_applied($n, $seq, $seconds): polls a follower until its health shows
# applied_seq >= $seq and its own feed's last_seq is $seq or more; true
# when it did within $seconds (default 30).  False after 3 s already when
# the feed has $seq but the health shows no applied_seq at all.
sub wait_applied {
    my ($n, $seq, $t) = @_;
    my $deadline = time + ($t // 30);
    my $none;
    while (1) {
        my $a = applied_seq($n);
        my $fed = last_seq($n) >= $seq;
        return 1 if defined $a && $a >= $seq && $fed;
        $none = defined $a || !$fed ? undef : $none // time;
        return 0 if time > $deadline || ($none && time - $none > 3);
        sleep 0.05;
    }
}


# ==========================================================================
# metrics
# ==========================================================================

# parse_metrics($text): { 'name' or 'name{labels}' => value } of every
# sample line of a Prometheus text exposition whose value is a number
# (a float, Inf or NaN); comments are left out
my $NUM = qr/[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|Inf)|NaN/;

sub parse_metrics {
    my ($text) = @_;
    my %m;
    for my $l (split /\n/, $text // '') {
        next if $l =~ /^#/;
        $m{$1} = $2 if $l =~ /^([A-Za-z_:][\w:]*(?:\{[^}]*\})?)\s+($NUM)\s*$/;
    }
    return \%m;
}

# metrics($n): parse_metrics of GET /metrics, undef unless it answers 200
sub metrics {
    my ($n) = @_;
    my $r = $n->req(GET => '/metrics');
    return undef unless $r->{status} == 200;
    return parse_metrics($r->{body});
}

# metric_value($n, $name): the value of one metric ('name{labels}' for a
# labelled one) from /metrics, undef when absent
sub metric_value {
    my ($n, $name) = @_;
    my $m = metrics($n) or return undef;
    return $m->{$name};
}

# ==========================================================================
# store and admin tool
# ==========================================================================

# admin_run(@args): runs build/inventory-admin (or $INVENTORY_ADMIN) with
# @args; returns (exit status, stdout, stderr).
our $ADMIN = $ENV{INVENTORY_ADMIN} // "$ROOT/build/inventory-admin";

sub admin_run { run_tool($ADMIN, @_) }

# verify_ok($dir, $events, $label): one test: inventory-admin verify $dir
# exits 0, prints exactly "verify: ok, $events events" and nothing on
# stderr; with $events undef any count will do.  Returns the count.
sub verify_ok {
    my ($dir, $events, $label) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my ($rc, $out, $err) = admin_run('verify', $dir);
    my ($got) = $out =~ /\Averify: ok, (\d+) events\n\z/;
    my $ok = Test::More::ok($rc == 0 && defined $got && $err eq ''
                            && (!defined $events || $got == $events),
        'inventory-admin verify: ok, ' . ($events // $got // '?')
        . " events ($label)");
    Test::More::diag("exit $rc\nstdout: $out\nstderr: $err") unless $ok;
    return $got;
}

# owner_problems($dir, $uid): files in $dir (and $dir itself) not owned by
# $uid: by default nobody when the tests run as root (the master then runs
# the workers as nobody), else the current user.
sub owner_problems {
    my ($dir, $uid) = @_;
    $uid //= $> == 0 ? scalar getpwnam('nobody') : $>;
    return ('no user nobody') unless defined $uid;
    my @p;
    opendir my $dh, $dir or return ("cannot read $dir: $!");
    for my $f ('.', grep { !/^\.\.?\z/ } readdir $dh) {
        my @st = lstat "$dir/$f" or next;
        push @p, "$dir/$f is owned by uid $st[4], not $uid"
            if $st[4] != $uid;
    }
    closedir $dh;
    return @p;
}


# write_lock_tid($datadir): the thread id holding LMDB's write lock, from
# the robust mutex's lock word in lock.mdb right after the MDB_txbody cache
# line (LMDB 0.9, glibc, x86-64: offset 64); 0 when free, undef when the
# file or its layout is not recognized
sub write_lock_tid {
    my ($datadir) = @_;
    open my $fh, '<:raw', "$datadir/lock.mdb" or return undef;
    my $buf = '';
    sysread $fh, $buf, 128;
    close $fh;
    return undef unless length $buf >= 80
                        && unpack('L', $buf) == 0xBEEFC0DE;
    return unpack('l', substr($buf, 64, 4)) & 0x3fffffff;
}

# same_store_ok(\@dirs, $label): the stores hold the same records (a
# follower at its primary's seq): inventory-admin dump (the log) and
# dump --all (every database: name, key hex, value hex a line) of each
# store give the first's output byte for byte; the log's seqs are 1..N
# without a gap or a duplicate; verify passes on each.  One test per
# check; returns true when every one passed.
sub same_store_ok {
    my ($dirs, $label) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my (@dump, @all);
    my $ok = 1;
    for my $d (@$dirs) {
        my ($rc, $out, $err) = admin_run('dump', $d);
        my ($rc2, $out2, $err2) = admin_run('dump', '--all', $d);
        my @bad = grep { !/\A[^\t\n]+\t[0-9a-f]*\t[0-9a-f]*\z/ }
                  split /\n/, $out2;
        my $t = Test::More::ok($rc == 0 && $rc2 == 0 && $err eq ''
                               && $err2 eq '' && length $out2 && !@bad
                               && $out2 =~ /\n\z/,
            "dump and dump --all of $d: exit 0, one 'db<TAB>key hex<TAB>"
            . "value hex' a line ($label)");
        Test::More::diag("dump: exit $rc, stderr $err\ndump --all: exit "
            . "$rc2, stderr $err2\n"
            . join("\n", @bad[0 .. ($#bad > 5 ? 5 : $#bad)])) unless $t;
        $ok &&= $t;
        push @dump, $out;
        push @all, $out2;
    }
    my @seq = map { /"seq":(\d+)/ ? $1 : -1 } split /\n/, $dump[0];
    my @gap = grep { $seq[$_] != $_ + 1 } 0 .. $#seq;
    my @g = @gap[0 .. ($#gap > 10 ? 10 : $#gap)];
    my $t = Test::More::ok(!@gap, "the log's seqs are 1.." . @seq
                                  . ", no gap, no duplicate ($label)");
    Test::More::diag('at lines ' . join(' ', map { $_ + 1 } @g)
                     . ': seqs ' . join(' ', @seq[@g])) unless $t;
    $ok &&= $t;
    for my $i (1 .. $#$dirs) {
        for my $c (['dump', \@dump], ['dump --all', \@all]) {
            my ($what, $o) = @$c;
            my $same = Test::More::ok($o->[$i] eq $o->[0], "$what of "
                . "$dirs->[$i] is that of $dirs->[0], byte for byte "
                . "($label)");
            Test::More::diag(_first_difference($o->[0], $o->[$i]))
                unless $same;
            $ok &&= $same;
        }
    }
    for my $d (@$dirs) {
        my $v = verify_ok($d, scalar @seq, "$label: $d");
        $ok &&= defined $v && $v == @seq;
    }
    return $ok;
}

# _first_difference($a, $b): where two outputs first differ, for a
# diagnostic
sub _first_difference {
    my ($x, $y) = @_;
    my @a = split /\n/, $x, -1;
    my @b = split /\n/, $y, -1;
    my $i = 0;
    $i++ while $i < @a && $i < @b && $a[$i] eq $b[$i];
    my $cut = sub { my $s = $_[0] // '(none)';
                    length $s > 300 ? substr($s, 0, 300) . '...' : $s };
    return sprintf "%d and %d lines; the first difference at line %d:\n"
                   . "  first:  %s\n  second: %s", scalar @a, scalar @b,
                   $i + 1, $cut->($a[$i]), $cut->($b[$i]);
}

# ==========================================================================
# time
# ==========================================================================

# ts_ms('2026-11-22T10:00:00.123Z'): milliseconds since the epoch
sub ts_ms {
    my ($ts) = @_;
    require Time::Local;
    my ($y, $mo, $d, $h, $mi, $s, $ms) = ($ts // '')
        =~ /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)\.(\d{3})Z\z/
        or return undef;
    return Time::Local::timegm($s, $mi, $h, $d, $mo - 1, $y) * 1000 + $ms;
}

# sleep_until($epoch_seconds): sleep (without any request) until then
sub sleep_until {
    my ($t) = @_;
    my $d = $t - time;
    sleep $d if $d > 0;
}

# wait_until($seconds, sub { ... }): polls the sub every 50 ms; true once
# it is true, false when $seconds passed first
sub wait_until {
    my ($secs, $cond) = @_;
    my $deadline = time + $secs;
    while (1) {
        return 1 if $cond->();
        return 0 if time > $deadline;
        sleep 0.05;
    }
}


# ==========================================================================
# InvTest::Etcd: an etcd cluster for the failover tests, Debian's etcd on
# loopback (or the address given), data and logs in a temporary directory.
#
#   my $e = InvTest::Etcd->new(members => 3, host => '127.0.0.1');
#   $e->start($_) for 0 .. 2;   $e->ready(0) or ...;
#   $e->urls ("http://H:P,..." for inventory_cluster etcd=);
#   $e->stop($m, 'KILL'); $e->stop_all; $e->log($m)
# ==========================================================================

package InvTest::Etcd;

use strict;
use warnings;
use File::Temp qw(tempdir);
use HTTP::Tiny;
use POSIX ();
use Time::HiRes qw(sleep);

sub new {
    my ($class, %o) = @_;
    my $n = $o{members} // 3;
    my $self = bless {
        n     => $n,
        host  => $o{host} // '127.0.0.1',
        dir   => tempdir('inventory-etcd-XXXXXX', TMPDIR => 1,
                         CLEANUP => !$ENV{INVENTORY_KEEP}),
        cport => [ map { InvTest::free_port() } 1 .. $n ],
        pport => [ map { InvTest::free_port() } 1 .. $n ],
        pid   => [],
        owner => $$,
    }, $class;
    $self->{initial} = join ',',
        map { "e$_=http://127.0.0.1:$self->{pport}[$_]" } 0 .. $n - 1;
    return $self;
}

sub url  { "http://$_[0]{host}:$_[0]{cport}[$_[1]]" }
sub urls { my ($s) = @_; join ',', map { $s->url($_) } 0 .. $s->{n} - 1 }
sub log  { InvTest::slurp("$_[0]{dir}/etcd-e$_[1].log") // '' }

sub start {
    my ($self, $m) = @_;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDOUT, '>>', "$self->{dir}/etcd-e$m.log";
        open STDERR, '>&', \*STDOUT;
        my $peer = "http://127.0.0.1:$self->{pport}[$m]";
        { no warnings 'exec';
          exec 'etcd', '--data-dir', "$self->{dir}/data-$m", '--name', "e$m",
               '--listen-client-urls', $self->url($m),
               '--advertise-client-urls', $self->url($m),
               '--listen-peer-urls', $peer,
               '--initial-advertise-peer-urls', $peer,
               '--initial-cluster', $self->{initial}; }
        POSIX::_exit(127);
    }
    $self->{pid}[$m] = $pid;
}

# a quorum answers a read through member $m, within 15 s
sub ready {
    my ($self, $m) = @_;
    my $h = HTTP::Tiny->new(timeout => 2);
    for (1 .. 150) {
        my $r = $h->post($self->url($m) . '/v3/kv/range',
                         { content => '{"key":"AA=="}' });
        return 1 if $r->{status} == 200;
        sleep 0.1;
    }
    return 0;
}

sub stop {
    my ($self, $m, $sig) = @_;
    my $pid = $self->{pid}[$m] or return;
    kill $sig // 'TERM', $pid;
    waitpid $pid, 0;
    $self->{pid}[$m] = undef;
}

sub stop_all { my ($s) = @_; $s->stop($_) for 0 .. $s->{n} - 1 }

sub DESTROY {
    my ($self) = @_;
    local $?;
    $self->stop_all if $$ == $self->{owner};
}

1;
