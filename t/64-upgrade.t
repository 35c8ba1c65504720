# Operating it: `nginx -s reload` (HUP) and upgrading the executable on the
# fly (USR2) under load lose no acknowledged write and drop no request.
#
# 2 workers; 8 clients write and read for ~15 s (adjustments with unique
# Idempotency-Keys, reservations then their release, reservations left to
# expire after 1 s, GETs of every kind), one client follows the global feed
# with long polls, one reads over keep-alive connections.  Meanwhile a
# controller does, in this order (nginx.org/en/docs/control.html):
#   * reloads (HUP), two of them back to back, with /metrics read before
#     and after one of them;
#   * an upgrade: USR2 to the master (nginx re-executes /usr/sbin/nginx with
#     the same arguments, the old pid file becomes nginx.pid.oldbin), both
#     generations serve for a while, then QUIT to the old master;
#   * the way back, as documented: USR2, WINCH to the old master (its
#     workers finish and exit, the new generation serves alone), HUP to the
#     old master (it starts workers again without rereading the
#     configuration), QUIT to the new master: nginx.pid names the old master
#     again and it serves on;
#   * another complete upgrade, and a reload of the upgraded master.
# Then every acknowledged write is checked against the store (items, their
# events, the global feed, reservations), the log is replayed, and after a
# quiet reload and a quiet upgrade the metrics are compared.  After stop,
# `inventory-admin verify` must pass on the data directory and the error
# log must hold no [emerg]/[alert]/[crit], no "exited on signal" and no
# module error.
#
# What "drop no request" means, and why that is fair:
# * Writers and readers open a new connection for every request (HTTP::Tiny
#   keep_alive => 0 sends "Connection: close"), as t/20 does.  The listening
#   socket is shared by the master and every worker of every generation (a
#   new binary inherits it), so a connection the kernel has queued is
#   accepted by whichever worker still listens; a worker that shuts down
#   gracefully closes only its idle connections, and a request it has read
#   must be answered (its commit keeps it alive until then).  For these
#   clients every connection-level failure (HTTP::Tiny status 599) and every
#   5xx fails the test, POSTs included, and so does any status other than
#   the one the request must get (stock is ample, keys are unique).
# * Over a keep-alive connection there is a race no server can close: nginx
#   closes the idle keep-alive connections of a worker that shuts down, and
#   a request the client sends just as that happens fails without the server
#   having read it.  RFC 9112 section 9.3.1 leaves this to clients, which
#   retry idempotent requests on a new connection (browsers do; HTTP::Tiny
#   does for some of these errors).  One reader uses keep-alive for GETs and
#   retries a 599 once on a new connection; only a failed retry fails the
#   test (the retries are reported).  No POST is sent over keep-alive: a
#   client cannot tell whether a POST on a closed connection was applied,
#   which is what Idempotency-Key is for.
# * Were a write to fail anyway, its client retries it with the same key (as
#   a real client would), so the data checks also prove that a write whose
#   answer was lost is never applied twice.
#
# Metrics: the zone, and its counters, is kept across a reload, so no
# counter goes down.  A binary upgrade starts a new master process from
# exec(): shared memory is not inherited, the new master creates a new
# zone, and the counters start again from zero (a counter reset, as after a
# restart, which Prometheus' rate() handles); the store's gauges
# (inventory_last_seq) carry on.  Both are asserted below.
#
# SEED=n repeats the clients' choices.
use strict;
use warnings;
use Test::More;
use HTTP::Tiny;
use Time::HiRes qw(time sleep);
use InvTest qw(parallel encode_json decode_json item_events feed_pages
               replay_events admin_run wait_gone pid_alive metrics);

my $SEED = int($ENV{SEED} // ((time * 1000 % 1e9) ^ $$));
diag "SEED=$SEED";

my $CLIENTS = 8;
my $MAX_LOAD = 45;       # a safety net: the controller ends the load
my $START = 1_000_000;   # on_hand of every item at the start: never short

# "env": a new binary started by USR2 gets only the environment variables
# the configuration names (and TZ).  Under the sanitizer build the module
# needs libasan preloaded in every process, and its log options.
my $CONF = <<'EOF';
load_module %%MODULE%%;
worker_processes 2;
env LD_PRELOAD;
env ASAN_OPTIONS;
env UBSAN_OPTIONS;
error_log %%DIR%%/error.log info;
pid %%DIR%%/nginx.pid;
events { worker_connections 1024; }
http {
    access_log %%DIR%%/access.log;
    client_body_temp_path %%DIR%%/body;
    proxy_temp_path %%DIR%%/proxy;
    fastcgi_temp_path %%DIR%%/fastcgi;
    uwsgi_temp_path %%DIR%%/uwsgi;
    scgi_temp_path %%DIR%%/scgi;
    inventory_store %%DATADIR%%;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /v1/ { inventory; }
        location = /metrics { inventory_metrics; }
    }
}
EOF

my $n = InvTest->start(conf => $CONF, workers => 2);
my $DIR = $n->dir;
my $T0 = time;

# Never leave a master of this prefix behind (an upgrade that failed half
# way leaves one that the harness, which follows nginx.pid, does not know).
END {
    for my $m (masters()) {
        next if $n && $n->{running} && $n->master_pid
                && $m == $n->master_pid;
        kill 'QUIT', $m;
        kill 'KILL', $m unless wait_gone($m, 10);
    }
}

# masters of this prefix, found by their command line
sub masters {
    return () unless defined $DIR;
    my @m;
    opendir my $dh, '/proc' or return ();
    for my $p (grep { /^\d+\z/ } readdir $dh) {
        open my $fh, '<', "/proc/$p/cmdline" or next;
        local $/;
        my $c = <$fh> // '';
        close $fh;
        push @m, $p + 0 if $c =~ /^nginx: master process/
                           && index($c, "$DIR/") >= 0
                           && pid_alive($p);
    }
    closedir $dh;
    return sort { $a <=> $b } @m;
}

# the counters (and histogram parts) of a metrics snapshot
sub counters {
    my ($m) = @_;
    return grep { /^inventory_\w+?(?:_total|_count|_sum|_bucket)(?:\{|\z)/ }
           sort keys %$m;
}

# problems when a counter of $before is missing from or lower in $after
sub decreases {
    my ($before, $after, $label) = @_;
    return ("$label: /metrics not readable") unless $before && $after;
    my @p;
    for my $k (counters($before)) {
        push @p, "$label: $k went from $before->{$k} to "
                 . ($after->{$k} // 'absent')
            unless defined $after->{$k} && $after->{$k} >= $before->{$k};
    }
    return @p;
}

# --- setup -------------------------------------------------------------------
my @ITEMS = ('U-1/w1', 'U-1/w2', 'U-2/w1');
for my $it (@ITEMS) {
    my $r = $n->req(PUT => "/v1/inventory/$it", json => { on_hand => $START });
    is($r->{status}, 201, "setup: $it counted") or diag InvTest::show($r);
}

# --- the load and the controller ---------------------------------------------
my $STOP = "$DIR/stop-load";
my $FOLLOWER = $CLIENTS;
my $KEEPALIVE = $CLIENTS + 1;
my $CONTROLLER = $CLIENTS + 2;

sub call {
    my ($ht, $method, $path, $json, $hdr) = @_;
    my %h = %{ $hdr // {} };
    my %o = (headers => \%h);
    if (defined $json) {
        $o{content} = encode_json($json);
        $h{'Content-Type'} = 'application/json';
    }
    my $t0 = time;
    my $res = $ht->request($method, $n->url($path), \%o);
    my $j;
    $j = eval { decode_json($res->{content}) }
        if ($res->{headers}{'content-type'} // '') =~ /json/
           && length($res->{content} // '');
    return { status => $res->{status}, body => $res->{content} // '',
             json => $j, headers => $res->{headers} // {}, t0 => $t0,
             t1 => time, method => $method, path => $path };
}

# A client: its counts by kind and status, the first problems, and what it
# was told: acks [item, version, delta, key, on_hand, reserved],
# reservations [id, item, quantity, expected end state].
sub client {
    my ($i) = @_;
    srand($SEED + 7919 * ($i + 1));
    my $ht = HTTP::Tiny->new(keep_alive => 0, timeout => 10,
                             max_redirect => 0, agent => "t64-$i");
    my (%count, @bad, @acks, @res, @failed_keys);
    my ($nbad, $replays, $nk) = (0, 0, 0);

    my $note = sub {
        my ($kind, $r, $why) = @_;
        $nbad++;
        push @bad, sprintf("%.3f client %d %s: %s %s -> %s%s: %s",
                           $r->{t0} - $T0, $i, $kind, $r->{method},
                           $r->{path}, $r->{status},
                           $why ? " ($why)" : '',
                           substr($r->{body}, 0, 300))
            if @bad < 40;
    };
    my $check = sub {
        my ($kind, $r, @want) = @_;
        $count{"$kind $r->{status}"}++;
        return 1 if grep { $r->{status} == $_ } @want;
        $note->($kind, $r);
        return 0;
    };
    # a write; one that failed is retried with its key (the failure has
    # already failed the test)
    my $write = sub {
        my ($kind, $path, $body, $key, $want) = @_;
        my $r;
        for my $try (1 .. 6) {
            $r = call($ht, POST => $path, $body,
                      { 'Idempotency-Key' => $key });
            last if $check->($kind, $r, $want);
            my $code = ref $r->{json} eq 'HASH' ? $r->{json}{code} // '' : '';
            last unless $r->{status} == 599 || $r->{status} >= 500
                        || $code eq 'idempotency-key-in-flight';
            push @failed_keys, $key if $try == 1;
            sleep 0.2;
        }
        return $r;
    };

    while (!-e $STOP && time - $T0 < $MAX_LOAD) {
        my $x = rand 100;
        my $item = $ITEMS[rand @ITEMS];
        if ($x < 40) {
            my $d = (1 + int rand 9) * (rand() < 0.3 ? -1 : 1);
            my $key = "adj-$i-" . ++$nk;
            my $body = { delta => $d, reason => $key };
            my $path = "/v1/inventory/$item/adjustments";
            my $r = $write->('adjust', $path, $body, $key, 200);
            next unless $r->{status} == 200 && ref $r->{json} eq 'HASH';
            push @acks, [$item, $r->{json}{version}, $d, $key,
                         $r->{json}{on_hand}, $r->{json}{reserved}];
            next unless rand() < 0.1;
            # the same request again: the first answer, replayed
            my $r2 = call($ht, POST => $path, $body,
                          { 'Idempotency-Key' => $key });
            next unless $check->('adjust-again', $r2, 200);
            if (($r2->{headers}{'idempotent-replayed'} // '') ne 'true'
                || $r2->{body} ne $r->{body})
            {
                $note->('adjust-again', $r2,
                        "not the replay of: $r->{body}");
            } else {
                $replays++;
            }
        } elsif ($x < 60) {
            my $q = 1 + int rand 3;
            my $key = "res-$i-" . ++$nk;
            my $r = $write->('reserve', "/v1/inventory/$item/reservations",
                             { quantity => $q, reference => $key,
                               ttl_seconds => 300 }, $key, 201);
            next unless $r->{status} == 201 && ref $r->{json} eq 'HASH';
            my $id = $r->{json}{id};
            my $r2 = $write->('release', "/v1/reservations/$id/release", {},
                              "$key-rel", 200);
            my $state = ref $r2->{json} eq 'HASH' ? $r2->{json}{state} : undef;
            if ($r2->{status} == 200 && ($state // '') ne 'released') {
                $note->('release', $r2, 'state is not released');
            }
            push @res, [$id, $item, $q,
                        ($state // '') eq 'released' ? 'released' : undef];
        } elsif ($x < 64) {
            my $key = "exp-$i-" . ++$nk;
            my $r = $write->('reserve-1s', "/v1/inventory/$item/reservations",
                             { quantity => 1, reference => $key,
                               ttl_seconds => 1 }, $key, 201);
            next unless $r->{status} == 201 && ref $r->{json} eq 'HASH';
            push @res, [$r->{json}{id}, $item, 1, 'expired'];
        } else {
            my $y = int rand 5;
            my $sku = (split m{/}, $item)[0];
            my ($kind, $path) =
                  $y == 0 ? ('get-item', "/v1/inventory/$item")
                : $y == 1 ? ('get-sku', "/v1/inventory/$sku")
                : $y == 2 ? ('get-feed',
                             '/v1/events?limit=5&after=' . int(rand 2000))
                : $y == 3 ? ('get-history', "/v1/inventory/$item/events"
                             . '?limit=5&after_version=' . int(rand 500))
                : @res    ? ('get-reservation', "/v1/reservations/$res[-1][0]")
                :           ('get-health', '/v1/health');
            $check->($kind, call($ht, GET => $path), 200);
        }
    }
    return encode_json({ client => $i, count => \%count, bad => \@bad,
                         nbad => $nbad, acks => \@acks, res => \@res,
                         failed_keys => \@failed_keys,
                         replays => $replays });
}

# The feed follower: long polls (wait=2) from seq 0, each on a new
# connection; every poll must be answered (a worker that shuts down answers
# its waiters) and the events must come gap-free.  A poll that took over
# 1.5 s yet brought events was not woken by the commits but answered at its
# deadline: reported, not a failure.  (Waiters are woken through the zone,
# so while two generations run after USR2, a waiter is not woken by the
# other generation's commits; it still gets them, at its deadline.)
sub follower {
    my $ht = HTTP::Tiny->new(keep_alive => 0, timeout => 10,
                             max_redirect => 0, agent => 't64-feed');
    my ($after, $nbad, $polls, @seen, @bad, %count, @slow) = (0, 0, 0);
    my $done_at;
    while (time - $T0 < $MAX_LOAD + 5) {
        $done_at //= time if -e $STOP;
        last if $done_at && time - $done_at > 1;
        my $r = call($ht, GET => "/v1/events?after=$after&limit=1000&wait=2");
        $polls++;
        $count{"feed-wait $r->{status}"}++;
        unless ($r->{status} == 200 && ref $r->{json} eq 'HASH'
                && ref $r->{json}{events} eq 'ARRAY')
        {
            $nbad++;
            push @bad, sprintf("%.3f follower: GET %s -> %s: %s",
                               $r->{t0} - $T0, $r->{path}, $r->{status},
                               substr($r->{body}, 0, 300))
                if @bad < 20;
            sleep 0.1;
            next;
        }
        my $ev = $r->{json}{events};
        push @slow, sprintf("%.3f+%.2fs", $r->{t0} - $T0, $r->{t1} - $r->{t0})
            if @$ev && $r->{t1} - $r->{t0} > 1.5;
        for my $e (@$ev) {
            if (($e->{seq} // -1) != $after + 1) {
                $nbad++;
                push @bad, "follower: seq " . ($e->{seq} // 'null')
                           . " after $after" if @bad < 20;
            }
            $after = $e->{seq} // $after;
            push @seen, join '|', map { $_ // '' }
                @$e{qw(seq type sku location version)};
        }
    }
    return encode_json({ follower => 1, count => \%count, nbad => $nbad,
                         bad => \@bad, seen => \@seen, polls => $polls,
                         slow => \@slow });
}

# The keep-alive reader: GETs over one persistent connection; a 599 is
# retried once on a new connection (see the top of the file).
sub keepalive_reader {
    my $mk = sub { HTTP::Tiny->new(keep_alive => 1, timeout => 10,
                                   max_redirect => 0, agent => 't64-ka') };
    my $ka = $mk->();
    my ($nbad, $n_req, @bad, @retried, %count) = (0, 0);
    while (!-e $STOP && time - $T0 < $MAX_LOAD) {
        my $path = "/v1/inventory/$ITEMS[rand @ITEMS]";
        my $r = call($ka, GET => $path);
        $n_req++;
        if ($r->{status} == 599) {
            push @retried, sprintf("%.3f %s", $r->{t0} - $T0,
                                   substr($r->{body}, 0, 100));
            $ka = $mk->();
            $r = call(HTTP::Tiny->new(keep_alive => 0, timeout => 10),
                      GET => $path);
        }
        $count{"keepalive-get $r->{status}"}++;
        if ($r->{status} != 200) {
            $nbad++;
            push @bad, sprintf("%.3f keep-alive reader: GET %s -> %s: %s",
                               $r->{t0} - $T0, $path, $r->{status},
                               substr($r->{body}, 0, 300)) if @bad < 20;
        }
        sleep 0.005;
    }
    return encode_json({ keepalive => 1, count => \%count, nbad => $nbad,
                         bad => \@bad, retried => \@retried,
                         n => $n_req });
}

# The controller: reloads, an upgrade, an upgrade rolled back, an upgrade,
# a reload; each step logged with its time.
sub controller {
    my (@log, @p);
    my $t = time;
    my $step = sub {
        push @log, sprintf("%6.3f (%.2fs) %s", time - $T0, time - $t, $_[0]);
        $t = time;
    };
    my $wait_for = sub {
        my ($what, $secs, $cond) = @_;
        my $deadline = time + $secs;
        until ($cond->()) {
            die "$what: not within $secs s\n" . `tail -n 30 $DIR/error.log`
                if time > $deadline;
            sleep 0.05;
        }
    };
    my $ok = eval {
        sleep 1;
        $t = time;

        # reloads (HUP)
        my $m0 = $n->master_pid;
        my $before = metrics($n);
        $n->reload;
        $step->("reload 1 (master $m0)");
        my $after = metrics($n);
        push @p, decreases($before, $after, 'reload under load');
        sleep 0.5;
        $n->reload;
        $step->('reload 2');
        sleep 0.3;
        kill 'HUP', $m0;
        sleep 0.1;
        $n->reload;
        $step->('reloads 3 and 4, back to back');
        push @p, 'the master changed across reloads: ' . $n->master_pid
            unless $n->master_pid == $m0;
        sleep 0.5;

        # an upgrade
        my ($old, $new) = $n->upgrade_begin(timeout => 20);
        $step->("USR2: old master $old, new master $new with workers "
                . join(' ', $n->workers_of($new)));
        sleep 1.5;      # both generations accept
        my @ow = $n->workers_of($old);
        kill 'QUIT', $old;
        wait_gone($old, 20)
            or die "old master $old did not exit within 20 s of QUIT\n"
                   . `tail -n 30 $DIR/error.log`;
        push @p, "old worker $_ outlived its master" for grep {
            pid_alive($_) } @ow;
        push @p, "nginx.pid.oldbin still there after the old master exited"
            if -e "$DIR/nginx.pid.oldbin";
        push @p, "nginx.pid does not name the new master $new"
            unless ($n->master_pid // 0) == $new;
        $step->("QUIT to old master $old (workers @ow): gone");
        sleep 0.5;

        # an upgrade rolled back (nginx.org/en/docs/control.html)
        ($old, $new) = $n->upgrade_begin(timeout => 20);
        $step->("USR2: old master $old, new master $new (to be rolled back)");
        sleep 0.3;
        @ow = $n->workers_of($old);
        kill 'WINCH', $old;
        $wait_for->("old workers @ow exit after WINCH", 20,
                    sub { !grep { pid_alive($_) } @ow });
        $step->("WINCH to old master $old: its workers @ow are gone");
        sleep 0.8;      # the new generation serves alone
        kill 'HUP', $old;
        $wait_for->("old master $old starts workers after HUP", 15,
                    sub { $n->workers_of($old) >= 2 });
        $step->("HUP to old master $old: workers "
                . join(' ', $n->workers_of($old)));
        sleep 0.8;      # both generations accept again
        my @nw = $n->workers_of($new);
        kill 'QUIT', $new;
        wait_gone($new, 20)
            or die "new master $new did not exit within 20 s of QUIT\n"
                   . `tail -n 30 $DIR/error.log`;
        push @p, "new worker $_ outlived its master" for grep {
            pid_alive($_) } @nw;
        $wait_for->("nginx.pid names the old master $old again", 5,
                    sub { ($n->master_pid // 0) == $old
                          && !-e "$DIR/nginx.pid.oldbin" });
        $step->("QUIT to new master $new (workers @nw): gone, "
                . "$old is the master again");
        sleep 0.5;

        # another upgrade, and a reload of the upgraded master
        ($old, $new) = $n->upgrade(timeout => 20);
        $step->("upgrade: USR2 and QUIT to $old, new master $new");
        sleep 0.5;
        $n->reload;
        push @p, 'the master changed across the reload'
            unless ($n->master_pid // 0) == $new;
        $step->("reload 5 (master $new)");
        sleep 1.5;
        1;
    };
    push @p, "controller: $@" unless $ok;
    open my $fh, '>', $STOP;
    close $fh;
    return encode_json({ controller => 1, log => \@log, problems => \@p });
}

my $t_load = time;
my @out = parallel($CLIENTS + 3, sub {
    my ($i) = @_;
    return $i == $CONTROLLER ? controller()
         : $i == $FOLLOWER ? follower()
         : $i == $KEEPALIVE ? keepalive_reader()
         : client($i);
});
diag sprintf "load phase: %.1f s", time - $t_load;

# --- what the clients saw ----------------------------------------------------
my (%count, @bad, $nbad, @acks, @res, @failed_keys, $replays);
my ($ctl, $fol, $kar);
$nbad = 0;
for my $s (@out) {
    my $j = eval { decode_json($s) };
    if (!$j) { fail("child result: " . substr($s, 0, 2000)); next }
    if ($j->{controller}) { $ctl = $j; next }
    $fol = $j if $j->{follower};
    $kar = $j if $j->{keepalive};
    $count{$_} += $j->{count}{$_} for keys %{ $j->{count} };
    push @bad, @{ $j->{bad} };
    $nbad += $j->{nbad};
    next unless defined $j->{client};
    push @acks, @{ $j->{acks} };
    push @res, @{ $j->{res} };
    push @failed_keys, @{ $j->{failed_keys} };
    $replays += $j->{replays};
}

ok($ctl, 'the controller finished') or diag "@out";
diag "controller:\n  " . join("\n  ", @{ $ctl->{log} // [] });
ok(!@{ $ctl->{problems} // ['none'] }, 'reloads and upgrades went as nginx '
   . 'documents them') or diag join "\n", @{ $ctl->{problems} // [] };

my $total = 0;
$total += $_ for values %count;
diag "requests by kind and status:\n  "
     . join("\n  ", map { "$_: $count{$_}" } sort keys %count);
is($nbad, 0, "no request failed: no 599, no 5xx, no unexpected status "
   . "($total requests)")
    or diag join "\n", @bad;
is_deeply(\@failed_keys, [], 'no write had to be retried');
ok(@acks > 200, scalar(@acks) . ' acknowledged adjustments');
ok($replays > 5, "$replays repeated adjustments answered as replays");
ok((grep { ($_->[3] // '') eq 'released' } @res) > 50,
   'reservations were made and released');
ok((grep { ($_->[3] // '') eq 'expired' } @res) > 5,
   'reservations were left to expire');
diag "keep-alive reader: $kar->{n} GETs, " . @{ $kar->{retried} }
     . " retried on a new connection"
     . (@{ $kar->{retried} } ? ":\n  " . join("\n  ", @{ $kar->{retried} })
                             : '')
    if $kar;
diag "feed follower: $fol->{polls} polls, " . @{ $fol->{seen} } . ' events'
     . (@{ $fol->{slow} } ? '; polls answered at their deadline although '
        . 'events existed (not woken across generations?): '
        . join(' ', @{ $fol->{slow} }) : '')
    if $fol;

# --- every acknowledged write is there, nothing else -------------------------
# the reservations left to expire end within 1 s + 2 s
my $deadline = time + 10;
while (time < $deadline) {
    last unless grep { ($n->req(GET => "/v1/inventory/$_")->{json}{reserved}
                        // 1) != 0 } @ITEMS;
    sleep 0.2;
}

my (%events_of, %by_seq, @p);
my $n_item_events = 0;
for my $it (@ITEMS) {
    my ($s, $l) = split m{/}, $it;
    my $ev = item_events($n, $s, $l);
    $events_of{$it} = $ev;
    $n_item_events += @$ev;
    my ($state, $rp) = replay_events($ev, $s, $l);
    ok(!@$rp, "$it: its events replay without a problem")
        or diag join "\n", @$rp;
    my $r = $n->req(GET => "/v1/inventory/$it");
    is_deeply([ @{ $r->{json} // {} }{qw(on_hand reserved version)} ],
              [ @$state{qw(on_hand reserved version)} ],
              "$it: the item is the replay of its events")
        or diag InvTest::show($r);
    is($state->{reserved}, 0, "$it: every reservation ended");
    $by_seq{ $_->{seq} } = $_ for @$ev;
}

# per item and version: the event and the state after it
my %state_at;
for my $it (@ITEMS) {
    my ($oh, $rs) = (0, 0);
    for my $e (@{ $events_of{$it} }) {
        my $d = $e->{data};
        my $t = $e->{type};
        if ($t eq 'StockCounted') { $oh = $d->{on_hand} }
        elsif ($t eq 'StockAdjusted') { $oh += $d->{delta} }
        elsif ($t eq 'StockReserved') { $rs += $d->{quantity} }
        elsif ($t =~ /^Reservation(?:Released|Expired)\z/) {
            $rs -= $d->{quantity};
        }
        $state_at{$it}{ $e->{version} } = [$e, $oh, $rs];
    }
}

my (%sum, %ack_key);
for my $ack (@acks) {
    my ($it, $v, $d, $key, $oh, $rs) = @$ack;
    $sum{$it} += $d;
    $ack_key{$key}++;
    my $at = $state_at{$it}{$v};
    my $e = $at ? $at->[0] : undef;
    if (!$e) {
        push @p, "acknowledged adjustment $key ($it v$v) has no event";
    } elsif ($e->{type} ne 'StockAdjusted' || $e->{data}{delta} != $d
             || ($e->{data}{reason} // '') ne $key)
    {
        push @p, "acknowledged adjustment $key ($it v$v delta $d) is "
                 . encode_json($e);
    } elsif ($at->[1] != $oh || $at->[2] != $rs) {
        push @p, "acknowledged adjustment $key ($it v$v) answered on_hand "
                 . "$oh reserved $rs, the log has $at->[1] / $at->[2]";
    }
    last if @p > 20;
}
ok(!@p, 'every acknowledged adjustment is the event of its version, with '
   . 'its delta, key and the state it answered') or diag join "\n", @p;

for my $it (@ITEMS) {
    my $r = $n->req(GET => "/v1/inventory/$it");
    is($r->{json}{on_hand}, $START + ($sum{$it} // 0),
       "$it: on_hand is the start plus the sum of acknowledged deltas");
}

# each key in the log once, and only acknowledged ones
my (%in_log, %reserved, %ended);
@p = ();
for my $it (@ITEMS) {
    for my $e (@{ $events_of{$it} }) {
        my $d = $e->{data};
        if ($e->{type} eq 'StockAdjusted') {
            $in_log{ $d->{reason} // '' }++;
        } elsif ($e->{type} eq 'StockReserved') {
            $reserved{ $d->{reservation_id} }{"$it $d->{quantity}"}++;
        } elsif ($e->{type} =~ /^Reservation(Released|Expired|Committed)\z/) {
            push @{ $ended{ $d->{reservation_id} } }, lc $1;
        }
    }
}
push @p, "key $_ appears $in_log{$_} times in the log"
    for grep { $in_log{$_} > 1 } sort keys %in_log;
push @p, "the log has an adjustment nobody was told about: $_"
    for grep { !$ack_key{$_} } sort keys %in_log;
push @p, "acknowledged key $_ is not in the log"
    for grep { !$in_log{$_} } sort keys %ack_key;
ok(!@p, 'every adjustment key is in the log exactly once, and no other')
    or diag join "\n", @p[0 .. ($#p > 20 ? 20 : $#p)];

@p = ();
my %known = map { $_->[0] => $_ } @res;
for my $rv (@res) {
    my ($id, $it, $q, $end) = @$rv;
    my $r = $reserved{$id};
    push @p, "reservation $id ($it $q) was reserved "
             . ($r ? encode_json($r) : 'never')
        unless $r && keys %$r == 1 && ($r->{"$it $q"} // 0) == 1;
    my @e = @{ $ended{$id} // [] };
    push @p, "reservation $id ended " . (@e ? "@e" : 'never')
             . ", expected " . ($end // '?')
        unless @e == 1 && (!defined $end || $e[0] eq $end);
    last if @p > 20;
}
push @p, "the log has a reservation nobody was told about: $_"
    for grep { !$known{$_} } sort keys %reserved;
ok(!@p, 'every acknowledged reservation was reserved once and ended once '
   . '(released or expired), and no other') or diag join "\n", @p;

# a sample of the reservations, read back
@p = ();
for my $rv ((grep { ($_->[3] // '') eq 'expired' } @res)[0 .. 19],
            (grep { ($_->[3] // '') eq 'released' } @res)[0 .. 19])
{
    next unless $rv;
    my $r = $n->req(GET => "/v1/reservations/$rv->[0]");
    push @p, "$rv->[0]: " . InvTest::show($r)
        unless $r->{status} == 200 && ($r->{json}{state} // '') eq $rv->[3];
}
ok(!@p, 'reservations read back in the state they ended in')
    or diag join "\n", @p;

# the global feed: gap-free from 1, the same events as the items' logs
my ($feed, $fp) = feed_pages($n, 0, 1000);
ok(!@$fp, 'the feed pages are gap-free from seq 1') or diag join "\n", @$fp;
is(scalar(@$feed), $n_item_events,
   'the feed holds as many events as the items together');
is($feed->[-1]{seq}, scalar(@$feed), 'the last seq is the number of events')
    if @$feed;
@p = ();
for my $e (@$feed) {
    my $ie = $by_seq{ $e->{seq} };
    push @p, "feed seq $e->{seq} is not an event of an item: "
             . encode_json($e) unless $ie;
    push @p, "feed seq $e->{seq}: " . encode_json($e) . " but the item has "
             . encode_json($ie)
        if $ie && encode_json($ie) ne encode_json($e);
    last if @p > 20;
}
# with the count above: the feed and the items' logs hold the same events,
# so the event of every acknowledged write (checked against its item's log)
# is in GET /v1/events under its seq, with the same data
ok(!@p, 'every event of the feed is the same event in its item\'s log')
    or diag join "\n", @p;

if ($fol) {
    my @want = map { join '|', map { $_ // '' }
                         @$_{qw(seq type sku location version)} } @$feed;
    my @seen = @{ $fol->{seen} };
    my $first_diff;
    for my $k (0 .. $#seen) {
        next if defined $want[$k] && $seen[$k] eq $want[$k];
        $first_diff = $k;
        last;
    }
    ok(@seen > 100 && !defined $first_diff,
       'the long-poll follower saw ' . @seen . ' events, the feed from 1 on')
        or diag defined $first_diff
              ? "at $first_diff: saw $seen[$first_diff], feed has "
                . ($want[$first_diff] // 'nothing')
              : 'saw too few events';
}

# --- metrics: kept across a reload, new with a new binary --------------------
{
    my $mb = metrics($n);
    $n->reload;
    my $ma = metrics($n);
    my @d = decreases($mb, $ma, 'quiet reload');
    ok(!@d, 'no counter went down across a reload (the zone is kept)')
        or diag join "\n", @d;
    # (this zone was created by the last upgrade under load: it counts
    # the load since then)
    ok(($mb->{inventory_transactions_total} // 0) > 0
       && ($ma->{inventory_transactions_total} // 0)
          >= $mb->{inventory_transactions_total},
       'the counters kept the load through the reload: '
       . ($mb->{inventory_transactions_total} // 'none') . ' transactions, '
       . 'then ' . ($ma->{inventory_transactions_total} // 'none'));

    # A new binary has a new zone (shared memory does not cross exec()):
    # its counters start from zero.  Only the expiry sweeper may commit a
    # transaction of its own (a purge of idempotency keys) meanwhile.
    my ($old, $new) = $n->upgrade(timeout => 20);
    my $u = metrics($n);
    ok($u && ($u->{inventory_events_appended_total} // -1) == 0
       && ($u->{inventory_transactions_total} // 1e9) < 10,
       'after a binary upgrade the counters start again from zero (new zone)')
        or diag explain $u;
    my $req_b = 0;
    $req_b += $mb->{$_} for grep { /^inventory_requests_total\{/ } keys %$mb;
    my $req_u = 0;
    $req_u += $u->{$_} for grep { /^inventory_requests_total\{/ } keys %$u;
    ok($req_u < 100 && $req_u < $req_b,
       "request counters restarted too ($req_b before, $req_u after)");
    is($u->{inventory_last_seq}, $mb->{inventory_last_seq},
       'inventory_last_seq (read from the store) carries on');
    my $r = $n->req(POST => "/v1/inventory/$ITEMS[0]/adjustments",
                    json => { delta => 1 });
    is($r->{status}, 200, 'the upgraded nginx writes');
    my $u2 = metrics($n);
    is(($u2->{inventory_events_appended_total} // 0)
       - ($u->{inventory_events_appended_total} // 0), 1,
       '... and counts in the new zone');
}

# exactly one master of this prefix is left, with its 2 workers
my @m = masters();
is_deeply(\@m, [ $n->master_pid ], 'one master left, the one in nginx.pid');
my @w = $n->worker_pids;
is(scalar(@w), 2, 'with 2 workers');

# --- after stop: the store verifies, the log is clean ------------------------
$n->stop;
my ($rc, $vout, $verr) = admin_run('verify', $n->datadir);
my $want_events = $n_item_events + 1;
is($rc, 0, 'inventory-admin verify exits 0') or diag "$vout$verr";
is($vout, "verify: ok, $want_events events\n",
   'verify: projections equal the replay of the log');

my $log = $n->error_log;
my @worse = grep { /\[(?:emerg|alert|crit)\]|exited on signal/ }
            split /\n/, $log;
ok(!@worse, 'error log: no emerg/alert/crit, no worker exited on a signal')
    or diag join "\n", @worse[0 .. ($#worse > 30 ? 30 : $#worse)];
my @mod = grep { /\[(?:error|warn)\]/ && /inventory/i
                 && !/__inventory_harness_ping/ } split /\n/, $log;
ok(!@mod, 'error log: no error or warning from the module')
    or diag join "\n", @mod[0 .. ($#mod > 30 ? 30 : $#mod)];
my $upgrades = () = $log =~ /start new binary process/g;
is($upgrades, 4, 'the log shows the 4 binary upgrades (3 under load)');

diag sprintf "t/64 ran %.1f s", time - $T0;
done_testing;
