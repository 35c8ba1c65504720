# A follower joining late and recovering from crashes, while $CLIENTS
# clients write a random mix of every write route to the primary P.
#
# (a) A new follower F with an empty store joins P, which already holds
#     data, while the writes go on: it takes P's events (a snapshot, then
#     the tail) and, once the writes stop, reaches P's last seq: dump and
#     dump --all of the two stores equal byte for byte, the log 1..N,
#     verify passes on both; at least one snapshot and some transactions
#     applied (metrics).
# (b) Under the same load, $KILLS rounds in each of which every worker of F
#     gets SIGKILL in turn (one of them holds the follow; the worker holding
#     LMDB's write lock, i.e. in the middle of applying a transaction, is
#     killed first when one is seen): after each kill the master starts a
#     new worker and F goes on applying (it reaches the seq P had at the
#     kill).  Then the same convergence checks.
# (c) Under load, the whole of F (master stopped, then it and its workers
#     SIGKILLed); a new nginx on the same data directory (InvTest->start
#     with datadir) resumes from its store (no new snapshot) and converges.
# (d) Under load, P restarted (graceful stop: it must end the follower's
#     long poll; the clients get no answer while it is down): the follower
#     connects again and converges.
# (e) Under load, every process of P SIGKILLed, P started again on its
#     store (sync=on: it holds every transaction it served): the follower
#     reconnects (inventory_replication_reconnects_total grows) and
#     converges.
# (f) Under load, the follower reloaded (HUP): a worker of the new
#     generation follows, with no gap and no duplicate.
# Each time: no gap, no duplicate, dumps equal.
#
# The master logs "worker process N exited on signal 9" at [alert] for
# each worker killed in (b): exactly those lines are allowed.
#
# INVENTORY_REPL_KILLS (rounds in (b)), INVENTORY_REPL_CLIENTS size it;
# SEED=n repeats the clients' choices.
use strict;
use warnings;
use Test::More;
use Time::HiRes qw(time sleep);
use InvTest qw(encode_json decode_json parallel_start parallel_stop
               random_write last_seq applied_seq wait_applied same_store_ok
               metrics wait_gone write_lock_tid);

my $SEED = int($ENV{SEED} // ((time * 1000 % 1e9) ^ $$));
diag "SEED=$SEED";
srand $SEED;

my $SAN = $ENV{INVENTORY_PRELOAD} ? 1 : 0;
my $KILLS = $ENV{INVENTORY_REPL_KILLS} // 2;
my $CLIENTS = $ENV{INVENTORY_REPL_CLIENTS} // ($SAN ? 2 : 3);
my $REPL = 'location /replication/ { inventory_replication; }';
my @ITEMS = map { my $s = $_; map { "$s/$_" } qw(w1 w2 w3) } qw(C-1 C-2 C-3);

my $T0 = time;
my $P = InvTest->start(workers => 2, server_extra => $REPL);
my $PURL = $P->url('/replication/');
my $FOLLOW = "inventory_follow $PURL wait=1s;";

# --- load -------------------------------------------------------------------

# load_start($tag): $CLIENTS clients writing to P until load_stop
sub load_start {
    my ($tag) = @_;
    return parallel_start($CLIENTS, sub {
        my ($i, $stop) = @_;
        srand($SEED + 7919 * ($i + 1) + unpack('%32C*', $tag));
        my %st = (items => \@ITEMS, tag => "$tag-$SEED-$i");
        my (%c, @bad);
        until ($stop->()) {
            my $w = random_write($P, \%st);
            my $s = $w->{r}{status};
            $c{$s}++;
            if ($s == 599) { sleep 0.05; next }     # P is down
            push @bad, "$w->{kind}: " . InvTest::show($w->{r})
                if !$w->{ok} && @bad < 10;
        }
        return encode_json({ c => \%c, bad => \@bad });
    });
}

# load_stop($h, $label, $down_ok): stops the clients; one test: every
# answer was one its kind may get (599, no answer, only when $down_ok)
sub load_stop {
    my ($h, $label, $down_ok) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my (%c, @bad);
    for my $o (parallel_stop($h)) {
        my $j = eval { decode_json($o) };
        if (ref $j ne 'HASH') { push @bad, "a client: $o"; next }
        $c{$_} += $j->{c}{$_} for keys %{ $j->{c} };
        push @bad, @{ $j->{bad} };
    }
    push @bad, "$c{599} requests got no answer" if $c{599} && !$down_ok;
    my $ok = ok(!@bad, "$label: the clients' writes were answered as they "
                       . 'may be') or diag join "\n", @bad;
    diag "$label: statuses " . join(', ', map { "$_ x$c{$_}" } sort keys %c);
    return $ok;
}

# converge($F, $label): F reaches P's last seq; the stores are the same
sub converge {
    my ($F, $label) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $N = last_seq($P);
    my $t = time;
    ok(wait_applied($F, $N, 30), "$label: the follower reaches P's last seq "
       . "$N") or diag 'follower at ' . (applied_seq($F) // 'null')
                       . ', health: ' . $F->req(GET => '/v1/health')->{body};
    diag sprintf '%s: converged %.2f s after the load stopped', $label,
                 time - $t;
    is(last_seq($P), $N, "$label: P wrote nothing more meanwhile");
    same_store_ok([ $P->datadir, $F->datadir ], $label);
    return $N;
}

sub metric {
    my ($n, $name) = @_;
    my $m = metrics($n) // {};
    return $m->{"inventory_replication_$name"};
}

# --- P holds data --------------------------------------------------------------
for my $it (grep { $_ ne 'C-3/w3' } @ITEMS) {
    my $r = $P->req(PUT => "/v1/inventory/$it",
                    json => { on_hand => 1000, min_level => 100 });
    is($r->{status}, 201, "setup: $it") or diag InvTest::show($r);
}
{
    my $h = load_start('pre');
    sleep 1.5;
    load_stop($h, 'setup load');
}
my $N0 = last_seq($P);
diag "P holds $N0 events";

# --- (a) a new follower joins while writes go on -------------------------------
my $F;
{
    my $h = load_start('a');
    sleep 0.5;
    $F = InvTest->start(workers => 2, http_extra => $FOLLOW);
    my ($seen, $deadline) = (undef, time + 20);
    while (time < $deadline) {
        my $a = applied_seq($F) // 0;
        if ($a >= $N0) { $seen = $a; last }
        sleep 0.05;
    }
    ok($seen, "(a) the new follower took P's first $N0 events while the "
       . 'writes went on') or diag $F->req(GET => '/v1/health')->{body};
    sleep 1.5;                       # it tails the writes
    load_stop($h, '(a)');
    converge($F, '(a)');
    my ($snap, $tx) = (metric($F, 'snapshots_total'),
                       metric($F, 'transactions_applied_total'));
    ok(defined $snap && $snap >= 1 && defined $tx && $tx > 0,
       '(a) it started from a snapshot and applied transactions after it '
       . '(inventory_replication_snapshots_total '
       . ($snap // 'absent') . ', transactions_applied_total '
       . ($tx // 'absent') . ')');
    $F->check_log('(a)');
}

# --- (b) every worker of the follower killed, in turn, mid-apply -------------


# the worker holding the store's write lock (applying), undef if none
# is seen within $t s
sub applying_worker {
    my ($n, $w, $t) = @_;
    my $deadline = time + $t;
    while (time < $deadline) {
        my $tid = write_lock_tid($n->datadir);
        return undef unless defined $tid;          # layout not known
        if ($tid) {
            for my $p (@$w) { return $p if -e "/proc/$p/task/$tid" }
        }
        sleep 0.001;
    }
    return undef;
}

{
    my $h = load_start('b');
    sleep 0.5;
    my (@p, @kills);
    for my $round (1 .. $KILLS) {
        my @w = $F->workers_now(15)
            or do { push @p, "round $round: not 2 workers"; last };
        my $holder = applying_worker($F, \@w, 1);
        for my $victim (grep { defined } $holder,
                        grep { $_ != ($holder // 0) } @w)
        {
            my $at = last_seq($P);
            my $dead = "worker process $victim exited on signal 9";
            $F->allow_log(qr/\[alert\] \d+#\d+: \Q$dead\E$/);
            kill 'KILL', $victim;
            my $t = time;
            $F->workers_now(15, $victim)
                or push @p, "round $round: no new worker within 15 s of "
                            . "killing $victim";
            my $ok = 0;
            while (time < $t + 20) {
                if ((applied_seq($F) // 0) >= $at) { $ok = 1; last }
                sleep 0.05;
            }
            push @p, "round $round: after killing $victim the follower "
                     . "did not reach $at (P's seq at the kill) within 20 s"
                unless $ok;
            push @kills, sprintf '%d%s(%.2fs)', $victim,
                (defined $holder && $victim == $holder ? '*' : ''),
                time - $t;
            sleep 0.2 + rand 0.4;
        }
    }
    diag '(b) kills (* = it held the write lock), time to reach P\'s '
         . 'seq at the kill: ' . join(' ', @kills);
    ok(!@p && @kills == 2 * $KILLS, "(b) $KILLS rounds of killing every "
       . 'worker of the follower under load: each time a new worker, and '
       . "the follower went on applying") or diag join "\n", @p;
    load_stop($h, '(b)');
    converge($F, '(b)');
    $F->check_log('(b)');
}

# --- (c) the whole follower killed, started again on its store -------------
my $F2;
{
    my $h = load_start('c');
    sleep 0.8;
    $F->check_log('(c) before the kill');
    my @left = $F->crash;
    ok(!@left, "(c) SIGKILL to the follower's master and workers")
        or diag "alive: @left";
    $F2 = InvTest->start(workers => 2, datadir => $F->datadir,
                         http_extra => $FOLLOW);
    sleep 1;
    load_stop($h, '(c)');
    converge($F2, '(c)');
    my $snap = metric($F2, 'snapshots_total');
    ok(defined $snap && $snap == 0, '(c) the restarted follower resumed '
       . 'from its store, without a snapshot (snapshots_total '
       . ($snap // 'absent') . ')');
    $F2->check_log('(c)');
}

# --- (d) the primary restarted under load ----------------------------------------
{
    my $rc0 = metric($F2, 'reconnects_total') // 0;
    my $h = load_start('d');
    sleep 0.8;
    $P->restart;
    sleep 1;
    load_stop($h, '(d)', 1);
    converge($F2, '(d)');
    # a connection the primary ended gracefully, followed by a new one, is
    # not counted by every implementation: only shown here (see (e))
    diag '(d) reconnects_total ' . $rc0 . ' -> '
         . (metric($F2, 'reconnects_total') // 'absent');
    my $j = $F2->req(GET => '/v1/health')->{json} // {};
    ok(ref $j->{replication} eq 'HASH' && $j->{replication}{connected},
       '(d) its health says connected again')
        or diag encode_json($j);
}

# --- (e) the primary killed (every process, SIGKILL) under load ------------------
# started again on its store as t/71 does (the instance still says running)
{
    my $rc0 = metric($F2, 'reconnects_total') // 0;
    my $h = load_start('e');
    sleep 0.8;
    $P->check_log('(e) before the kill');
    my @left = $P->crash;
    ok(!@left, "(e) SIGKILL to P's master and workers")
        or diag "alive: @left";
    sleep 0.5;
    my $err = eval { $P->_launch; 1 } ? '' : ($@ || 'unknown error');
    ok(!$err, '(e) P starts again on its store') or diag $err;
    sleep 1;
    load_stop($h, '(e)', 1);
    converge($F2, '(e)');
    my $j = $F2->req(GET => '/v1/health')->{json} // {};
    ok(ref $j->{replication} eq 'HASH' && $j->{replication}{connected},
       '(e) the follower is connected again') or diag encode_json($j);
    my $rc = metric($F2, 'reconnects_total');
    ok(defined $rc && $rc > $rc0, "(e) the follower lost its connection and "
       . "reconnected (reconnects_total $rc0 -> " . ($rc // 'absent') . ')');
}

# --- (f) the follower reloaded (HUP) under load: the follow moves to a worker
# of the new generation
{
    my $h = load_start('f');
    sleep 0.5;
    $F2->reload;
    sleep 1.5;
    load_stop($h, '(f)');
    converge($F2, '(f)');
}

$F2->stop;
$P->stop;
diag sprintf 't/91: %.1f s', time - $T0;
done_testing;
