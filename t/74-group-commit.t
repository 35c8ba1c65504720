# Group commit across workers (the shared zone's slots): what happens when
# a worker dies in the middle of it, and when the zone has no room.
#
# Every write is packed into a slot of the shared zone; the pool thread of
# whichever worker gets LMDB's write lock commits every worker's waiting
# slots in one transaction, and the other workers answer their own requests
# from their slots.  A worker killed with -9 leaves either a batch that
# other workers wait on (the leader died) or slots nobody collects (a
# waiter died); a full zone sends writes down the old per-worker path.
#
# (a) The leader killed mid-batch.  2 workers; $CLIENTS forked clients on
#     kept-alive connections, each pinned to one worker (X-Worker: $pid),
#     send +1 adjustments to items GC-A..GC-H/w1 (on_hand 0 at the start),
#     half of them each with a new Idempotency-Key, half without, and
#     journal every request before it is sent and its answer after.
#     $ROUNDS_A times: the worker whose thread holds LMDB's write lock (read
#     from lock.mdb) is stopped (SIGSTOP) while it holds it, so that the
#     other worker's writes pile up, some of them in its batch; 200 ms
#     later it gets SIGKILL; the load goes on for 1 s (the master starts a
#     new worker).  Then:
#       * every request sent on a connection to a worker that was not
#         killed got a complete answer within $TIMEOUT s (no hang), and a
#         write on the survivor succeeded within 2 s of each kill;
#       * every answer is 200 (the item), or 503 `unavailable` with the
#         detail "the worker committing this write died; whether it was
#         applied is unknown" and only for a request without a key (a keyed
#         one is run again by the next leader);
#       * every keyed request without an answer (its connection was to the
#         killed worker), sent again with its key, answers 200 (replayed or
#         applied now);
#       * each item's on_hand is between the acknowledged +1s (a lost
#         acknowledged write falls below) and those plus the unkeyed ones of
#         unknown outcome (a write applied twice, or never sent, goes over);
#         inventory-admin verify passes on the store;
#       * a surviving worker logged "settled a dead worker's batch: N
#         commands run again, M answered as unknown" after at least one
#         kill (the count after each kill is printed); the error log holds
#         nothing at [warn] or above but that and the master's "worker
#         process N exited on signal 9" for the killed pids;
#       * inventory_commit_slots_used returns to 0 while a few more writes
#         are made (slots of the dead are freed at most once a second).
# (b) A waiter's worker killed.  The same load; $ROUNDS_B times the worker
#     that does NOT hold the write lock gets SIGKILL (its writes may be in
#     the other's transaction: committed, never collected).  The survivor
#     answers a write within 2 s of each kill; the same answers, bounds,
#     verify and log checks; inventory_commit_slots_used returns to 0.
# (c) The zone full.  inventory_zone 64k (too small for the slot table of
#     about 140 KB: every write commits in its own worker's batch) and 192k
#     (the table fits, and a few blocks of about 4 KB, the size of a one-line
#     reservation's, but never one of a commit or release, about 29 KB; at
#     256k only ~1% of these writes found no room).  32 clients reserve 1
#     unit at a time from an item with on_hand 500, committing or releasing
#     some of their reservations: never oversold (reserved is exactly the acknowledged
#     reservations still active, on_hand 500 less the committed ones),
#     refusals are 409 insufficient-stock, every request answered;
#     inventory_commit_overflow_total > 0 (64k: every command the store
#     committed; 192k: some but not all); inventory_commit_slots_used 0 at
#     the end; verify passes; the error log stays clean.
#
# INVENTORY_GC_ROUNDS, INVENTORY_GC_CLIENTS and INVENTORY_GC_RESERVES size
# the loops (smaller under the sanitizers, INVENTORY_PRELOAD);
# INVENTORY_GC_PARTS=a,c runs only those parts.
use strict;
use warnings;
use Test::More;
use HTTP::Tiny;
use IO::Socket::INET;
use IO::Select;
use POSIX ();
use Time::HiRes qw(time sleep);
use InvTest qw(encode_json decode_json parallel pid_alive wait_gone
               verify_ok metrics metric_value write_lock_tid sleep_until);

my $SAN = $ENV{INVENTORY_PRELOAD} ? 1 : 0;
# kills in (a) and in (b): a kill may find the leader's batch holding no
# other worker's write (then there is nothing to settle), so (a) kills more
# often
my $ROUNDS_A = $ENV{INVENTORY_GC_ROUNDS} // 6;
my $ROUNDS_B = $ENV{INVENTORY_GC_ROUNDS} // 3;
my $CLIENTS = $ENV{INVENTORY_GC_CLIENTS} // ($SAN ? 12 : 24);
my $RESERVES = $ENV{INVENTORY_GC_RESERVES} // 20;   # 32 x 20 > 500
my %PART = map { $_ => 1 } split /,/, $ENV{INVENTORY_GC_PARTS} // 'a,b,c';
my $TIMEOUT = 10;                 # s: an answer later than this is a hang
my $PROBE = 5;                    # s: a GET that finds a connection's worker

my @ITEMS = map { "GC-$_/w1" } 'A' .. 'H';
my $SPARE = 'GC-Z/w1';            # probes and the writes that reclaim slots
my $UNKNOWN_RE = qr/^the worker committing this write died; whether it was applied is unknown/;
my $WARN_RE = qr/\[warn\] \d+#\d+: inventory: settled a dead worker's batch: \d+ commands run again, \d+ answered as unknown/;

my $T0 = time;
my %CONF = (workers => 2,
            location_extra => 'add_header X-Worker $pid always;',
            server_extra => 'keepalive_requests 1000000; '
                            . 'keepalive_timeout 300s;');

# --- a kept-alive HTTP/1.1 connection -------------------------------------

sub ka_connect {
    my ($n) = @_;
    return IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                 PeerPort => $n->port, Proto => 'tcp',
                                 Timeout => 5);
}

# ka_call($sock, $n, $method, $path, \%headers, $body, $timeout): one
# request on the connection: { status, headers, body, close } once the
# whole answer is read, or { err => 'timeout' | 'eof' | ... }
sub ka_call {
    my ($s, $n, $method, $path, $h, $body, $timeout) = @_;
    my $req = "$method $path HTTP/1.1\r\nHost: 127.0.0.1:" . $n->port
              . "\r\n";
    $req .= "$_: $h->{$_}\r\n" for sort keys %$h;
    $req .= "Content-Type: application/json\r\nContent-Length: "
            . length($body) . "\r\n" if defined $body;
    $req .= "\r\n" . ($body // '');
    my $off = 0;
    while ($off < length $req) {
        my $w = syswrite $s, $req, length($req) - $off, $off;
        return { err => "write: $!" } unless defined $w;
        $off += $w;
    }
    my $sel = IO::Select->new($s);
    my $deadline = time + $timeout;
    my ($buf, $head, %hd, $status) = ('');
    while (1) {
        if (!defined $head && $buf =~ /\r\n\r\n/) {
            ($head, $buf) = split /\r\n\r\n/, $buf, 2;
            ($status) = $head =~ m{^HTTP/1\.[01] (\d{3})}
                or return { err => "bad response: $head" };
            for my $l (split /\r\n/, $head) {
                $hd{ lc $1 } //= $2 if $l =~ /^([^:\s]+):\s*(.*?)\s*$/;
            }
        }
        if (defined $head) {
            my $done;
            my $b = $buf;
            if (defined $hd{'content-length'}) {
                $done = length($b) >= $hd{'content-length'};
                $b = substr($b, 0, $hd{'content-length'});
            } elsif (($hd{'transfer-encoding'} // '') =~ /chunked/i) {
                my $out = '';
                while ($b =~ s/^([0-9a-fA-F]+)[^\r\n]*\r\n//) {
                    my $len = hex $1;
                    if ($len == 0) { $done = $b =~ /^\r\n/; last }
                    last if length($b) < $len + 2;
                    $out .= substr($b, 0, $len, '');
                    $b =~ s/^\r\n//;
                }
                $b = $out;
            }
            return { status => $status + 0, headers => \%hd, body => $b,
                     close => ($hd{connection} // '') =~ /close/i ? 1 : 0 }
                if $done;
        }
        my $left = $deadline - time;
        return { err => 'timeout' } if $left <= 0 || !$sel->can_read($left);
        my $r = sysread $s, $buf, 65536, length $buf;
        return { err => defined $r ? 'eof' : "read: $!" } unless $r;
    }
}

# pinned($n, $i, $stop): a connection and the worker it is on, preferably
# the worker of rank $i % 2 (so that both workers get clients); () when
# none could be opened
sub pinned {
    my ($n, $i, $stop) = @_;
    my @w = $n->worker_pids;
    my $want = @w ? $w[$i % @w] : 0;
    my ($first, $fw);
    for (1 .. 8) {
        last if -e $stop;
        my $s = ka_connect($n) or last;
        my $r = ka_call($s, $n, GET => "/v1/inventory/$ITEMS[0]", {}, undef,
                        $PROBE);
        my $xw = $r->{err} ? undef : $r->{headers}{'x-worker'};
        if (!$xw || $r->{close}) { close $s; next }
        if ($xw == $want) { close $first if $first; return ($s, $xw) }
        if ($first) { close $s } else { ($first, $fw) = ($s, $xw) }
    }
    return $first ? ($first, $fw) : ();
}

# pinned_to($n, $pid): a connection to that worker, or ()
sub pinned_to {
    my ($n, $pid) = @_;
    my @keep;
    my @got;
    # under load the busier worker may accept most new connections
    my $deadline = time + 4 * $PROBE;
    for (1 .. 64) {
        last if time > $deadline;
        my $s = ka_connect($n) or last;
        my $r = ka_call($s, $n, GET => "/v1/inventory/$ITEMS[0]", {}, undef,
                        $PROBE);
        my $xw = $r->{err} ? 0 : $r->{headers}{'x-worker'} // 0;
        if ($xw == $pid && !$r->{close}) { @got = ($s, $xw); last }
        push @keep, $s;     # held open, so that the next lands elsewhere
    }
    close $_ for @keep;
    return @got;
}

# --- processes ------------------------------------------------------------

# the worker one of whose threads holds LMDB's write lock, or undef
sub lock_holder {
    my ($n, $w) = @_;
    my $tid = write_lock_tid($n->datadir);
    return undef unless $tid;
    for my $p (@$w) { return $p if -e "/proc/$p/task/$tid" }
    return undef;
}


# --- the load of (a) and (b) ---------------------------------------------

# A client: +1 adjustments on its pinned connection until $stop exists;
# each request journalled before it is sent (Q) and its answer after (A).
sub client {
    my ($n, $i, $tag, $file, $stop) = @_;
    $SIG{PIPE} = 'IGNORE';
    srand($$ ^ int(time * 1000));
    open my $fh, '>', $file or die "$file: $!";
    $fh->autoflush(1);
    my $keyed = $i % 2;
    my ($s, $w);
    my $k = 0;
    my $deadline = time + 120;
    while (!-e $stop && time < $deadline) {
        if (!$s) {
            ($s, $w) = pinned($n, $i, $stop);
            if (!$s) { sleep 0.05; next }
        }
        my $item = $ITEMS[rand @ITEMS];
        my $id = "$tag-$i-" . ++$k;
        my $q = { id => $id, item => $item, w => $w,
                  ($keyed ? (key => $id) : ()) };
        print {$fh} 'Q ', encode_json($q), "\n";
        my $t0 = time;
        my $r = ka_call($s, $n, POST => "/v1/inventory/$item/adjustments",
                        { $keyed ? ('Idempotency-Key' => $id) : () },
                        '{"delta":1}', $TIMEOUT);
        my $a = { id => $id, dt => sprintf('%.3f', time - $t0) };
        if ($r->{err}) {
            $a->{err} = $r->{err};
        } else {
            my $j = eval { decode_json($r->{body}) };
            $a->{status} = $r->{status};
            $a->{xw} = $r->{headers}{'x-worker'};
            $a->{replayed} = ($r->{headers}{'idempotent-replayed'} // '')
                             eq 'true' ? 1 : 0;
            $a->{body} = substr($r->{body}, 0, 400)
                unless ref $j eq 'HASH';
            if (ref $j eq 'HASH') {
                $a->{$_} = $j->{$_} for grep { defined $j->{$_} }
                                        qw(code detail sku location);
            }
        }
        print {$fh} 'A ', encode_json($a), "\n";
        if ($k == 1) { open my $r, '>', "$file.ready"; close $r }
        if ($r->{err} || $r->{close}) {
            close $s;
            undef $s;
            sleep 0.02 if $r->{err};
        }
    }
    close $fh;
}

# run_load($n, $tag, $controller): $CLIENTS clients while $controller runs
# here; then stops them; returns the controller's result and the journals
# as [ [ $q, $a or undef ], ... ]
sub run_load {
    my ($n, $tag, $controller) = @_;
    my $dir = $n->dir;
    my $stop = "$dir/stop-$tag";
    STDOUT->flush;
    STDERR->flush;
    my @pids;
    for my $i (0 .. $CLIENTS - 1) {
        my $pid = fork // die "fork: $!";
        if (!$pid) {
            eval { client($n, $i, $tag, "$dir/journal-$tag-$i", $stop) };
            POSIX::_exit(0);
        }
        push @pids, $pid;
    }
    my $deadline = time + 15;
    sleep 0.02 while time < $deadline
                     && grep { !-e "$dir/journal-$tag-$_.ready" }
                        0 .. $CLIENTS - 1;
    my $ctl = eval { $controller->() };
    my $err = $@;
    open my $fh, '>', $stop;
    close $fh;
    my @stuck;
    $deadline = time + $TIMEOUT + 5;
    my %left = map { $_ => 1 } @pids;
    while (%left && time < $deadline) {
        for my $p (keys %left) {
            delete $left{$p} if waitpid($p, POSIX::WNOHANG()) != 0;
        }
        sleep 0.02 if %left;
    }
    for my $p (keys %left) {          # one of ours, by its pid
        push @stuck, $p;
        kill 'KILL', $p;
        waitpid $p, 0;
    }
    die $err if $err;
    my @rec;
    for my $i (0 .. $CLIENTS - 1) {
        open my $jf, '<', "$dir/journal-$tag-$i" or next;
        my (@q, %a);
        while (my $l = <$jf>) {
            my ($t, $js) = $l =~ /^([QA]) (.*)$/ or next;
            my $x = eval { decode_json($js) } or next;
            if ($t eq 'Q') { push @q, $x } else { $a{ $x->{id} } = $x }
        }
        close $jf;
        push @rec, map { [ $_, $a{ $_->{id} } ] } @q;
    }
    ok(!@stuck, "$tag: every client stopped within " . ($TIMEOUT + 5)
       . ' s of being told') or diag "stuck clients: @stuck";
    return ($ctl, \@rec);
}

# The rounds: $mode 'leader' stops the worker holding the write lock while
# it holds it, then kills it; 'waiter' kills the other one.  After each
# kill a write is sent on a connection to the survivor (on item $SPARE).
# Returns { kills => [...], problems => [...], at => [log offsets of the
# kills], probes => [...] }
sub kill_rounds {
    my ($n, $mode, $rounds) = @_;
    my (%gone, @kills, @p, @probe_ms, @at);
    my $key = 0;
    for my $r (1 .. $rounds) {
        my @w = $n->workers_now(15, keys %gone);
        if (!@w) { push @p, "round $r: not 2 workers within 15 s"; last }
        sleep 0.3 + rand 0.3;
        # a connection to each worker, opened before the kill
        my %conn;
        for my $pid (@w) {
            my ($s) = pinned_to($n, $pid);
            $conn{$pid} = $s if $s;
        }
        my ($holder, $victim, $tries);
        my $until = time + 2;
        while (!defined $victim && time < $until) {
            $holder = lock_holder($n, \@w);
            if (!$holder) { sleep 0.001; next }
            $tries++;
            if ($mode eq 'leader') {
                kill 'STOP', $holder;
                # stopped, it cannot let go: does it still hold the lock?
                if ((lock_holder($n, \@w) // 0) == $holder) {
                    $victim = $holder;
                } else {
                    kill 'CONT', $holder;
                }
            } else {
                ($victim) = grep { $_ != $holder } @w;
            }
        }
        if (!defined $victim) {
            push @p, "round $r: no worker seen holding LMDB's write lock "
                     . "within 2 s ($mode)";
            next;
        }
        my ($survivor) = grep { $_ != $victim } @w;
        $n->allow_log(qr/\[alert\] \d+#\d+: worker process $victim exited on signal 9$/);
        push @at, length $n->error_log;
        sleep 0.2 if $mode eq 'leader';     # the survivor's writes pile up
        kill 'KILL', $victim;
        my $tk = time;
        $gone{$victim} = 1;
        push @kills, $victim;

        # a write on the survivor, within 2 s of the kill
        my $s = $conn{$survivor};
        if (!$s) {
            push @p, "round $r: no connection to the survivor $survivor";
        } else {
            my $k = "probe-$mode-$r-" . ++$key;
            my $a = ka_call($s, $n, POST => "/v1/inventory/$SPARE/adjustments",
                            { 'Idempotency-Key' => $k }, '{"delta":1}', 3);
            my $ms = int((time - $tk) * 1000);
            push @probe_ms, $ms;
            push @p, "round $r: a write on the survivor $survivor after "
                     . "killing $victim: "
                     . ($a->{err} ? "no answer ($a->{err})"
                                  : "$a->{status} $a->{body}")
                     . " in $ms ms"
                unless !$a->{err} && $a->{status} == 200
                       && ($a->{headers}{'x-worker'} // 0) == $survivor
                       && $ms < 2000;
            if ($a->{err}) {            # wedged: more rounds show nothing
                close $_ for values %conn;
                last;
            }
        }
        close $_ for values %conn;
        wait_gone($victim, 5)
            or push @p, "round $r: killed worker $victim still alive";
        sleep 1;                            # the load goes on
        diag sprintf "(%s) round %d: killed %d (%s, %d tries), survivor %d",
             $mode, $r, $victim,
             $mode eq 'leader' ? 'held the write lock, stopped 200 ms'
                               : "the holder was $holder", $tries, $survivor;
    }
    return { kills => \@kills, problems => \@p, at => \@at,
             probes => \@probe_ms };
}

# The journals against the contract; returns per item the acknowledged and
# unknown-unkeyed counts, after retrying the keyed requests without answer.
sub judge {
    my ($n, $label, $rec, $killed) = @_;
    my %dead = map { $_ => 1 } @$killed;
    my (%ack, %unk, @bad, @retry, %tally);
    for my $x (@$rec) {
        my ($q, $a) = @$x;
        my $kind = $q->{key} ? 'keyed' : 'unkeyed';
        my $show = "$q->{id} ($kind, $q->{item}, on worker $q->{w}): "
                   . ($a ? encode_json($a) : 'no journal entry');
        if (!$a) {
            push @bad, "client journalled no answer: $show";
            next;
        }
        if ($a->{err}) {
            if ($a->{err} ne 'timeout' && $dead{ $q->{w} }) {
                $tally{"$kind no answer (killed worker)"}++;
                if ($q->{key}) { push @retry, $q } else { $unk{ $q->{item} }++ }
            } else {
                push @bad, "no complete answer within $TIMEOUT s on a "
                           . "connection to a live worker: $show";
            }
            next;
        }
        push @bad, "answered by worker " . ($a->{xw} // 'none')
                   . ", not the connection's: $show"
            unless ($a->{xw} // 0) == $q->{w};
        my ($sku, $loc) = split m{/}, $q->{item};
        if ($a->{status} == 200 && ($a->{sku} // '') eq $sku
            && ($a->{location} // '') eq $loc)
        {
            $ack{ $q->{item} }++;
            $tally{"$kind 200" . ($a->{replayed} ? ' replayed' : '')}++;
            push @bad, "an answer to a request without a key is marked "
                       . "replayed: $show"
                if $a->{replayed} && !$q->{key};
        } elsif ($a->{status} == 503 && ($a->{code} // '') eq 'unavailable'
                 && ($a->{detail} // '') =~ $UNKNOWN_RE)
        {
            $tally{"$kind 503 unknown"}++;
            if ($q->{key}) {
                push @bad, "a keyed request answered 503 unknown (it must "
                           . "be run again): $show";
            } else {
                $unk{ $q->{item} }++;
            }
        } else {
            $tally{"$kind $a->{status} " . ($a->{code} // '')}++;
            push @bad, "unexpected answer: $show";
        }
    }
    diag "$label: answers: " . join(', ', map { "$_ x$tally{$_}" }
                                          sort keys %tally);
    ok(!@bad, "$label: " . scalar(@$rec) . " requests: every one on a live "
       . "worker answered within $TIMEOUT s, 200 or (unkeyed only) 503 "
       . "unknown")
        or diag join "\n", @bad[0 .. ($#bad > 20 ? 20 : $#bad)];

    # the keyed requests without an answer, again with their keys
    my $ht = HTTP::Tiny->new(keep_alive => 0, timeout => $TIMEOUT);
    my (@rbad, %rt);
    for my $q (@retry) {
        my $res = $ht->request('POST', $n->url("/v1/inventory/$q->{item}"
                                               . '/adjustments'),
            { headers => { 'Content-Type' => 'application/json',
                           'Idempotency-Key' => $q->{key} },
              content => '{"delta":1}' });
        my $rep = ($res->{headers}{'idempotent-replayed'} // '') eq 'true';
        if ($res->{status} == 200) {
            $ack{ $q->{item} }++;
            $rt{ $rep ? 'replayed' : 'applied now' }++;
        } else {
            push @rbad, "$q->{id}: $res->{status} $res->{content}";
        }
    }
    ok(!@rbad, "$label: " . scalar(@retry) . " keyed requests without an "
       . "answer, sent again with their keys, answered 200 ("
       . join(', ', map { "$rt{$_} $_" } sort keys %rt) . ')')
        or diag join "\n", @rbad[0 .. ($#rbad > 20 ? 20 : $#rbad)];

    # on_hand: no acknowledged write lost, nothing applied beyond the sent
    my @ob;
    my ($sa, $su, $so) = (0, 0, 0);
    for my $it (@ITEMS) {
        my $res = $ht->get($n->url("/v1/inventory/$it"));
        my $j = eval { decode_json($res->{content}) };
        my $oh = ref $j eq 'HASH' ? $j->{on_hand} : undef;
        my ($lo, $hi) = ($ack{$it} // 0, ($ack{$it} // 0) + ($unk{$it} // 0));
        $sa += $lo;
        $su += $hi - $lo;
        $so += $oh // 0;
        push @ob, "$it: on_hand " . ($oh // "unread: $res->{status}")
                  . ", expected $lo..$hi"
            unless defined $oh && $oh >= $lo && $oh <= $hi;
    }
    ok(!@ob, "$label: each item's on_hand is within acknowledged .. "
       . "acknowledged + unknown (in all: $so within $sa .. " . ($sa + $su)
       . ')') or diag join "\n", @ob;
    ok($sa > 100, "$label: $sa writes acknowledged under load");
}

# the error log at [warn] and above: only the allowed lines
sub log_clean {
    my ($n, $label, $killed, $warn_ok) = @_;
    my %dead = map { $_ => 1 } @$killed;
    my (@bad, $warns);
    for my $l (split /\n/, $n->error_log) {
        next unless $l =~ /\[(?:warn|error|crit|alert|emerg)\]/;
        next if $l =~ m{open\(\) "[^"]*/__inventory_harness_ping" failed};
        if ($l =~ /\[alert\] \d+#\d+: worker process (\d+) exited on signal 9$/
            && $dead{$1})
        {
            next;
        }
        if ($l =~ $WARN_RE && $warn_ok) { $warns++; next }
        push @bad, $l;
    }
    ok(!@bad, "$label: the error log has nothing at [warn] or above but "
       . "the killed workers' exits" . ($warn_ok ? ' and the dead-leader '
       . 'warnings (' . ($warns // 0) . ')' : ''))
        or diag join "\n", @bad[0 .. ($#bad > 20 ? 20 : $#bad)];
    return $warns // 0;
}

# nginx still answers: a read on a new connection within $PROBE s
sub responsive_ok {
    my ($n, $label) = @_;
    my $ht = HTTP::Tiny->new(keep_alive => 0, timeout => $PROBE);
    my @got;
    my $res = $ht->get($n->url("/v1/inventory/$ITEMS[0]"));
    push @got, $res->{status} == 200 ? 'ok'
               : "$res->{status} " . substr($res->{content}, 0, 100);
    return ok($got[-1] eq 'ok', "$label: nginx answers a read after the "
              . 'load') || diag("the read: " . join('; ', @got)
                                . "\nthe workers' event loops may be "
                                . 'blocked: the rest of this part is '
                                . 'skipped');
}

# inventory_commit_slots_used back to 0, with a write every 200 ms
sub slots_drain_ok {
    my ($n, $label, $t) = @_;
    my $ht = HTTP::Tiny->new(keep_alive => 0, timeout => $TIMEOUT);
    my $t0 = time;
    my ($v, $writes, @bad) = (undef, 0);
    while (1) {
        $v = metric_value($n, 'inventory_commit_slots_used');
        last if defined $v && $v == 0;
        last if time - $t0 > $t;
        my $res = $ht->request('POST',
            $n->url("/v1/inventory/$SPARE/adjustments"),
            { headers => { 'Content-Type' => 'application/json' },
              content => '{"delta":1}' });
        push @bad, "$res->{status} $res->{content}" if $res->{status} != 200;
        $writes++;
        sleep 0.2;
    }
    ok(defined $v && $v == 0 && !@bad,
       sprintf("%s: inventory_commit_slots_used is 0 (after %.1f s and %d "
               . "writes)", $label, time - $t0, $writes))
        or diag "inventory_commit_slots_used: " . ($v // 'missing')
                . "\n" . join "\n", @bad;
}

sub seed {
    my ($n, $label) = @_;
    my @p;
    for my $it (@ITEMS, $SPARE) {
        my $r = $n->req(PUT => "/v1/inventory/$it", json => { on_hand => 0 });
        push @p, InvTest::show($r) unless $r->{status} == 201;
    }
    ok(!@p, "$label: items GC-A..GC-H and GC-Z created with on_hand 0")
        or diag join "\n", @p;
}

sub crash_subtest {
    my ($mode, $label, $rounds) = @_;
    my $t0 = time;
    my $n = InvTest->start(%CONF);
    seed($n, $label);
    my ($ctl, $rec) = run_load($n, $mode, sub { kill_rounds($n, $mode, $rounds) });
    my @kills = @{ $ctl->{kills} };
    ok(@kills == $rounds && !@{ $ctl->{problems} }, "$label: "
       . scalar(@kills) . " of $rounds rounds killed a worker ($mode); the "
       . "survivor answered a write within 2 s each time ("
       . join(' ', map { "$_ ms" } @{ $ctl->{probes} }) . ')')
        or diag join "\n", @{ $ctl->{problems} };
    if (!responsive_ok($n, $label)) {
        log_clean($n, $label, \@kills, 1);
        $n->stop;
        return;
    }
    judge($n, $label, $rec, \@kills);
    slots_drain_ok($n, $label, 8);
    verify_ok($n->datadir, undef, $label);
    my $warns = log_clean($n, $label, \@kills, 1);
    # the warnings after each kill, until the next kill
    my $log = $n->error_log;
    my @at = (@{ $ctl->{at} }, length $log);
    my @per = map { scalar(() = substr($log, $at[$_], $at[$_ + 1] - $at[$_])
                                =~ /$WARN_RE/g) } 0 .. $#at - 1;
    diag "$label: dead-leader warnings after each kill: @per";
    if ($mode eq 'leader') {
        my $warned = grep { $_ } @per;
        ok($warned >= 1, "$label: the dead-leader warning was logged after "
           . "$warned of " . scalar(@kills) . " kills ($warns lines)");
    }
    $n->stop;
    verify_ok($n->datadir, undef, "$label, after a graceful stop");
    diag sprintf "%s took %.1f s", $label, time - $t0;
}

# --- (a), (b) ------------------------------------------------------------

subtest '(a) the leader killed mid-batch' => sub {
    crash_subtest('leader', '(a)', $ROUNDS_A);
} if $PART{a};

subtest "(b) a waiter's worker killed" => sub {
    crash_subtest('waiter', '(b)', $ROUNDS_B);
} if $PART{b};

# --- (c) the zone full ------------------------------------------------------

sub zone_full {
    my ($size, $label) = @_;
    my $t0 = time;
    my $n = InvTest->start(workers => 2,
                           http_extra => "inventory_zone inventory_small:$size;");
    my $P = '/v1/inventory/GC-R/w1';
    my $m0 = metrics($n) // {};
    my $r = $n->req(PUT => $P, json => { on_hand => 500 });
    is($r->{status}, 201, "$label: item GC-R/w1 with on_hand 500")
        or diag InvTest::show($r);

    my $go = time + 0.5;
    my @out = parallel(32, sub {
        my ($i) = @_;
        srand($$ ^ int(time * 1000));
        my $ht = HTTP::Tiny->new(keep_alive => 1, timeout => $TIMEOUT);
        my %o = (reserved => 0, committed => 0, released => 0, refused => 0,
                 writes => 0, bad => []);
        my @mine;
        my $call = sub {
            my ($path, $body) = @_;
            $o{writes}++;
            my $res = $ht->request('POST', $n->url($path),
                { headers => { 'Content-Type' => 'application/json' },
                  content => $body });
            my $j = eval { decode_json($res->{content}) };
            return ($res, ref $j eq 'HASH' ? $j : {});
        };
        sleep_until($go);
        for (1 .. $RESERVES) {
            my ($res, $j) = $call->("$P/reservations",
                                    '{"quantity":1,"ttl_seconds":3600}');
            if ($res->{status} == 201 && ($j->{state} // '') eq 'active'
                && $j->{id})
            {
                $o{reserved}++;
                push @mine, $j->{id};
            } elsif ($res->{status} == 409
                     && ($j->{code} // '') eq 'insufficient-stock')
            {
                $o{refused}++;
            } else {
                push @{ $o{bad} }, "reserve: $res->{status} $res->{content}";
            }
            next unless @mine && rand() < 0.3;
            my $id = splice @mine, int(rand @mine), 1;
            my $op = rand() < 0.5 ? 'commit' : 'release';
            ($res, $j) = $call->("/v1/reservations/$id/$op", '{}');
            my $want = $op eq 'commit' ? 'committed' : 'released';
            if ($res->{status} == 200 && ($j->{state} // '') eq $want) {
                $o{$want}++;
            } else {
                push @{ $o{bad} }, "$op $id: $res->{status} $res->{content}";
            }
        }
        $o{active} = scalar @mine;
        return encode_json(\%o);
    });
    my (%sum, @bad);
    for my $s (@out) {
        my $o = eval { decode_json($s) };
        if (ref $o ne 'HASH') { push @bad, "client: $s"; next }
        $sum{$_} += $o->{$_} for qw(reserved committed released refused
                                    writes active);
        push @bad, @{ $o->{bad} };
    }
    ok(!@bad, "$label: $sum{writes} writes from 32 clients: every one "
       . "answered, 201/200 or 409 insufficient-stock ($sum{reserved} "
       . "reserved, $sum{refused} refused, $sum{committed} committed, "
       . "$sum{released} released)")
        or diag join "\n", @bad[0 .. ($#bad > 20 ? 20 : $#bad)];
    if (32 * $RESERVES >= 600) {
        ok($sum{refused} > 0, "$label: the reservations ran into the stock "
           . "($sum{refused} refused)");
    }

    $r = $n->req(GET => $P);
    my $j = $r->{json} // {};
    my $want_oh = 500 - $sum{committed};
    ok($r->{status} == 200 && ($j->{on_hand} // -1) == $want_oh
       && ($j->{reserved} // -1) == $sum{active}
       && $j->{reserved} <= $j->{on_hand},
       "$label: not oversold: on_hand $want_oh (500 - committed), reserved "
       . "$sum{active} (the acknowledged reservations still active), "
       . "reserved <= on_hand")
        or diag InvTest::show($r);

    my $m = metrics($n) // {};
    my $ov = ($m->{inventory_commit_overflow_total} // 0)
             - ($m0->{inventory_commit_overflow_total} // 0);
    my $cmds = ($m->{inventory_commands_total} // 0)
               - ($m0->{inventory_commands_total} // 0);
    my $ours = $sum{writes} + 1;
    diag "$label: inventory_commit_overflow_total +$ov, "
         . "inventory_commands_total +$cmds, writes sent $ours";
    ok(defined $m->{inventory_commit_overflow_total}, "$label: "
       . 'inventory_commit_overflow_total is exposed');
    if ($size eq '64k') {
        ok($ov == $cmds && $ov >= $ours, "$label: every command committed "
           . "went without a slot: overflow $ov == commands $cmds >= the "
           . "$ours writes sent");
    } else {
        # a slot table that no longer fits in 192k fails here too
        ok($ov > 0 && $ov < $cmds, "$label: some writes found no room "
           . "and some did: 0 < overflow $ov < commands $cmds");
    }
    my $v;
    my $until = time + 3;
    while (1) {
        $v = metric_value($n, 'inventory_commit_slots_used');
        last if (defined $v && $v == 0) || time > $until;
        sleep 0.1;
    }
    is($v, 0, "$label: inventory_commit_slots_used 0 at the end");
    verify_ok($n->datadir, undef, $label);
    log_clean($n, $label, [], 0);
    $n->stop;
    diag sprintf "%s took %.1f s", $label, time - $t0;
}

subtest '(c) the zone too small for the slot table' => sub {
    zone_full('64k', '(c) 64k');
} if $PART{c};

subtest '(c) room for the slot table, few command blocks' => sub {
    zone_full('192k', '(c) 192k');
} if $PART{c};

diag sprintf "t/74: %.1f s", time - $T0;
done_testing;
