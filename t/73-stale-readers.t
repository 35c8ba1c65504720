#!/usr/bin/perl
# Issue 7, "stale readers": a process killed inside an LMDB read
# transaction leaves its reader slot behind, pinning the snapshot it read;
# until the slot is cleared, no page freed after that snapshot can be
# reused and every write grows the file.  The module clears the slots of
# dead processes when a worker starts and every 10 s
# (docs/operations.md, "Readers"); the reader table is read with
# `mdb_stat -r`, which lists it without clearing anything (`-rr` would
# clear, so it is never used here).
#
# A. The timer: `mdb_dump` blocked on a full pipe holds a read transaction;
#    while it lives, writes grow the store (the control); once it is
#    SIGKILLed, no worker restarts, and the workers' periodic check must
#    clear its slot (logging the notice) so that writes reuse freed pages
#    again instead of growing the file.
# B. Worker start: under a heavy read load (large pages of the feed), a
#    worker is caught by SIGSTOP inside a read transaction and SIGKILLed;
#    its slot must leave the table once the master has respawned it, and
#    writes must reuse pages again.  Then 30 more workers are killed under
#    read and write load: the reader table keeps only live processes, the
#    slots in use stay bounded, reads and writes keep working, no
#    acknowledged write is lost and the log stays gap-free.
use strict;
use warnings;
use Test::More;
use File::Temp qw(tempdir);
use Time::HiRes qw(sleep time);
use HTTP::Tiny;
use POSIX ();
use InvTest qw(parallel feed_pages metric_value replay_events item_events
               admin_run pid_alive encode_json decode_json wait_until);

my $T0 = time;
my $MDB_STAT = InvTest::which('mdb_stat');
my $MDB_DUMP = InvTest::which('mdb_dump');
plan skip_all => 'mdb_stat and mdb_dump (lmdb-utils) are needed'
    unless $MDB_STAT && $MDB_DUMP;

my $WORKERS = 2;
my $n = InvTest->start(workers => $WORKERS, store_args => 'map_size=8m');
# the master reports every worker killed here, and only that is allowed
$n->allow_log(qr/\[alert\] \d+#\d+: worker process \d+ exited on signal 9$/);
my $D = $n->datadir;
my $TMP = tempdir('inventory-t73-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $REASON = 'r' x 200;

# the reader table: ([pid, txnid or '-'], ...), without clearing anything
sub reader_table {
    open my $fh, '-|', $MDB_STAT, '-r', $D
        or die "cannot run $MDB_STAT: $!";
    my @rows;
    my $all = '';
    while (my $l = <$fh>) {
        $all .= $l;
        push @rows, [ $1 + 0, $2 ]
            if $l =~ /^\s*(\d+)\s+[0-9a-f]+\s+(\d+|-)\s*$/;
    }
    close $fh;
    # its exit status follows the last line printed: only the output counts
    die "mdb_stat -r $D failed ($?):\n$all"
        unless $all =~ /^Reader\ Table\ Status\n
                        (?:\(no\ active\ readers\)
                          |\s+pid\s+thread\s+txnid)\n/x;
    return @rows;
}

sub slot_of {
    my ($pid, @rows) = @_;
    my ($s) = grep { $_->[0] == $pid } @rows;
    return $s;
}

sub used { metric_value($n, 'inventory_store_used_bytes') // -1 }

sub new_http { HTTP::Tiny->new(keep_alive => 0, timeout => 30) }

sub adjust_once {
    my ($path, $delta) = @_;
    return new_http()->request('POST', $n->url("$path/adjustments"),
        { headers => { 'Content-Type' => 'application/json' },
          content => encode_json({ delta => $delta }) })->{status};
}

# $k overwrite-writes on one item (+1, -1, ...): how many answered 200
sub overwrite {
    my ($path, $k) = @_;
    my $ok = 0;
    for my $i (1 .. $k) {
        $ok++ if adjust_once($path, $i % 2 ? 1 : -1) == 200;
    }
    return $ok;
}

# the master has $WORKERS workers again, none of them $dead
sub respawned {
    my ($dead) = @_;
    return wait_until(15, sub {
        my @w = $n->worker_pids;
        @w == $WORKERS && !grep { $_ == $dead } @w;
    });
}

# --- a store with 1,000 events ---------------------------------------------
my @seed = parallel(4, sub {
    my ($c) = @_;
    my $ok = 0;
    for my $i (0 .. 49) {
        my $r = new_http()->request('PUT',
            $n->url("/v1/inventory/SR-$c-$i/s1"),
            { headers => { 'Content-Type' => 'application/json' },
              content => encode_json({ on_hand => 1000,
                                       reason => $REASON }) });
        $ok++ if $r->{status} == 201;
    }
    for my $i (0 .. 199) {
        my $r = new_http()->request('POST',
            $n->url("/v1/inventory/SR-$c-" . ($i % 50) . '/s1/adjustments'),
            { headers => { 'Content-Type' => 'application/json' },
              content => encode_json({ delta => 1, reason => $REASON }) });
        $ok++ if $r->{status} == 200;
    }
    return $ok;
});
is(eval { my $s = 0; $s += $_ for @seed; $s }, 1000,
   'setup: 1,000 writes (200 items, 800 adjustments) acknowledged');
my $W = '/v1/inventory/OW-1/s1';
is(new_http()->request('PUT', $n->url($W),
       { headers => { 'Content-Type' => 'application/json' },
         content => '{"on_hand":1000}' })->{status}, 201,
   'setup: the item the overwrite-writes go to');
is(metric_value($n, 'inventory_store_max_readers'), 256,
   'inventory_store_max_readers is 256');

# --- A. a dead reader outside nginx: only the periodic check can clear it --
{
    pipe(my $rd, my $wr) or die "pipe: $!";
    my $dump = fork // die "fork: $!";
    if (!$dump) {
        close $rd;
        open STDOUT, '>&', $wr or POSIX::_exit(127);
        open STDERR, '>', '/dev/null';
        { no warnings 'exec'; exec { $MDB_DUMP } $MDB_DUMP, '-a', $D; }
        POSIX::_exit(127);
    }
    close $wr;
    my $pin;
    wait_until(15, sub {
        my $s = slot_of($dump, reader_table());
        $pin = $s->[1] if $s && $s->[1] ne '-';
        defined $pin;
    });
    ok(defined $pin, 'mdb_dump, blocked on its full pipe, holds a read '
                     . 'transaction (txnid ' . ($pin // 'none') . ')')
        or diag explain [ reader_table() ];
    my @w = $n->worker_pids;

    # the control: a live pinned snapshot makes every write grow the store
    my $u0 = used();
    my $ok = overwrite($W, 50);
    my $grew = used() - $u0;
    is($ok, 50, 'control: 50 overwrite-writes while the snapshot is pinned');
    cmp_ok($grew, '>=', 50 * 4096,
           "control: they grew the store by $grew bytes (no page freed "
           . 'after the pinned snapshot can be reused)');

    my $readers0 = metric_value($n, 'inventory_store_readers') // -1;
    my $log0 = length $n->error_log;
    kill 'KILL', $dump;
    waitpid $dump, 0;
    close $rd;
    my $t = time;
    my $gone = wait_until(25, sub { !slot_of($dump, reader_table()) });
    ok($gone, sprintf 'the slot of the killed mdb_dump is cleared (after '
                      . '%.1f s; the check runs every 10 s)', time - $t)
        or diag explain [ reader_table() ];
    my $new = substr($n->error_log, $log0);
    like($new, qr/\[notice\]\ \d+\#\d+:\ inventory:\ cleared\ [1-9]\d*
                  \ stale\ LMDB\ reader\ slots/x,
         'the worker logs the cleared slot at notice');
    is_deeply([ $n->worker_pids ], \@w,
              'no worker restarted meanwhile: the periodic check cleared it');
    # a worker may take a slot of its own meanwhile: compare with the
    # table (mdb_stat lists without taking one), not with $readers0 - 1;
    # a high-water mark would still count the dump's slot
    my ($readers, $rows) = (-1, -2);
    wait_until(5, sub {
        $readers = metric_value($n, 'inventory_store_readers') // -1;
        $rows = () = reader_table();
        $readers == $rows });
    is($readers, $rows,
       "inventory_store_readers counts the slots taken: $readers0 with "
       . "the mdb_dump, $readers once its slot is cleared, as in the table");

    # freed pages are reused again: 400 writes, the store does not grow
    # (with the slot still pinned they would need megabytes: the map is 8m)
    my $u1 = used();
    $ok = overwrite($W, 400);
    $grew = used() - $u1;
    is($ok, 400, 'after the clearing: 400 overwrite-writes answer 200');
    cmp_ok($grew, '<', 512 * 1024,
           "after the clearing: they grew the store by $grew bytes only");
}

# --- B. workers killed inside read transactions -----------------------------
my $STOP = "$TMP/stop";

# read clients: large feed pages, items, an aggregate; statuses counted
sub start_load {
    my ($k) = @_;
    unlink $STOP;
    my @pids;
    for my $c (0 .. $k - 1) {
        my $pid = fork // die "fork: $!";
        if (!$pid) {
            my %st;
            my $h = HTTP::Tiny->new(keep_alive => 1, timeout => 30);
            my $i = 0;
            until (-e $STOP) {
                my $path = $i % 3 == 2
                    ? '/v1/inventory/SR-' . ($i % 4) . '-' . ($i % 50) . '/s1'
                    : '/v1/events?after=' . ($i % 7) . '&limit=1000';
                my $r = $h->get($n->url($path));
                $st{ $r->{status} }++;
                $h = HTTP::Tiny->new(keep_alive => 1, timeout => 30)
                    if $r->{status} == 599;
                $i++;
            }
            open my $fh, '>', "$TMP/load-$c.tmp";
            print {$fh} encode_json(\%st);
            close $fh;
            rename "$TMP/load-$c.tmp", "$TMP/load-$c";
            POSIX::_exit(0);
        }
        push @pids, $pid;
    }
    return \@pids;
}

# stop the clients; their statuses summed
sub stop_load {
    my ($pids) = @_;
    open my $fh, '>', $STOP;
    close $fh;
    waitpid $_, 0 for @$pids;
    my %sum;
    for my $f (glob "$TMP/load-*") {
        next if $f =~ /\.tmp\z/;
        my $j = eval { decode_json(InvTest::slurp($f)) } // { DIED => 1 };
        $sum{$_} += $j->{$_} for keys %$j;
        unlink $f;
    }
    return \%sum;
}

sub reads_ok {
    my ($st, $label) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my @odd = grep { $_ != 200 && $_ != 599 } keys %$st;
    ok(($st->{200} // 0) > 0 && !@odd,
       "$label: reads answered 200 (" . ($st->{200} // 0) . '), or were cut '
       . 'by a kill (' . ($st->{599} // 0) . '), nothing else')
        or diag explain $st;
}

my $kills = 0;
{
    my $load = start_load(4);
    sleep 0.5;
    my ($victim, $txn, $tries);
    for my $try (1 .. 400) {
        $tries = $try;
        my @w = $n->worker_pids;
        next unless @w == $WORKERS;
        my $w = $w[$try % @w];
        kill 'STOP', $w;
        sleep 0.02;
        my $s = slot_of($w, reader_table());
        if ($s && $s->[1] ne '-') { ($victim, $txn) = ($w, $s->[1]); last }
        kill 'CONT', $w;
        sleep 0.01 + rand 0.03;
    }
    ok($victim, "a worker was stopped inside a read transaction (txnid "
                . ($txn // 'none') . ", try $tries)");
    if (!$victim) {
        ($victim) = $n->worker_pids;
        kill 'STOP', $victim;
    }
    kill 'KILL', $victim;
    $kills++;
    ok(respawned($victim), "the master replaced the killed worker $victim");
    my $t = time;
    my $gone = wait_until(25, sub { !slot_of($victim, reader_table()) });
    ok($gone, sprintf 'the dead worker\'s slot left the reader table (%.1f s '
                      . 'after the kill)', time - $t)
        or diag explain [ reader_table() ];
    reads_ok(stop_load($load), 'under the first kill');

    my $u1 = used();
    my $ok = overwrite($W, 400);
    my $grew = used() - $u1;
    is($ok, 400, 'after the dead worker\'s slot was cleared: 400 '
                 . 'overwrite-writes answer 200');
    cmp_ok($grew, '<', 512 * 1024,
           "and grew the store by $grew bytes only (its snapshot no longer "
           . 'pins freed pages)');
}

# 30 more kills under read and write load
my $K = '/v1/inventory/KW-1/s1';
is(new_http()->request('PUT', $n->url($K),
       { headers => { 'Content-Type' => 'application/json' },
         content => '{"on_hand":0}' })->{status}, 201,
   'setup: the item the writer adjusts');
{
    my $load = start_load(3);
    my $writer = fork // die "fork: $!";
    if (!$writer) {
        my %r = (acked => 0, cut => 0, odd => []);
        until (-e $STOP) {
            my $st = adjust_once($K, 1);
            if ($st == 200) { $r{acked}++ }
            elsif ($st == 599) { $r{cut}++ }
            else { push @{ $r{odd} }, $st }
        }
        open my $fh, '>', "$TMP/writer.tmp";
        print {$fh} encode_json(\%r);
        close $fh;
        rename "$TMP/writer.tmp", "$TMP/writer";
        POSIX::_exit(0);
    }
    sleep 0.3;
    my ($caught, $ok) = (0, 1);
    for my $k (1 .. 30) {
        my @w = $n->worker_pids;
        my $w = $w[$k % @w];
        kill 'STOP', $w;
        sleep 0.01;
        my $s = slot_of($w, reader_table());
        $caught++ if $s && $s->[1] ne '-';
        kill 'KILL', $w;
        $kills++;
        if (!respawned($w)) { $ok = 0; last }
    }
    ok($ok, "30 workers killed (SIGSTOP, then SIGKILL), each replaced "
            . "($caught of them caught inside a read transaction)");
    open my $fh, '>', $STOP;
    close $fh;
    waitpid $writer, 0;
    my $wr = eval { decode_json(InvTest::slurp("$TMP/writer")) }
             // { acked => 0, cut => 0, odd => ['no result'] };
    reads_ok(stop_load($load), 'under 30 kills');

    # the reader table: live processes only, and few slots
    my @rows;
    my $clean = wait_until(25, sub {
        @rows = reader_table();
        !grep { !pid_alive($_->[0]) } @rows;
    });
    ok($clean, 'after 30 kills the reader table lists live processes only')
        or diag explain \@rows;
    cmp_ok(scalar @rows, '<=', $WORKERS,
           'and no more slots than workers (' . scalar(@rows) . ')');
    my $readers = metric_value($n, 'inventory_store_readers');
    ok(defined $readers && $readers <= 8,
       'inventory_store_readers stays bounded after ' . $kills . ' kills: '
       . ($readers // 'absent') . ' of '
       . (metric_value($n, 'inventory_store_max_readers') // '?')
       . ' (slots of dead workers are reused)');
    my $h = $n->req(GET => '/v1/health');
    is($h->{status}, 200, 'health is 200') or diag InvTest::show($h);

    # writes: none answered anything but 200 or a cut connection; none lost
    is_deeply($wr->{odd}, [], "the writer's adjustments answered 200 "
              . "($wr->{acked}) or were cut by a kill ($wr->{cut})");
    ok($wr->{acked} > 0, 'writes went on between the kills');
    my $it = $n->req(GET => $K)->{json} // {};
    my $oh = $it->{on_hand} // -1;
    ok($oh >= $wr->{acked} && $oh <= $wr->{acked} + $wr->{cut},
       "KW-1 holds every acknowledged adjustment: on_hand $oh, acknowledged "
       . "$wr->{acked}, in doubt $wr->{cut}");
    my $ev = eval { item_events($n, 'KW-1', 's1') } // [];
    my ($st, $p) = replay_events($ev, 'KW-1', 's1');
    ok(!@$p && $st->{on_hand} == $oh
       && $st->{version} == ($it->{version} // -1),
       'KW-1 is the replay of its events')
        or diag join "\n", @$p;
    my $more = 0;
    for (1 .. 20) { $more++ if adjust_once($K, 1) == 200 }
    is($more, 20, 'after the kills, 20 more writes answer 200');
    is($n->req(GET => $K)->{json}{on_hand}, $oh + 20, 'and are applied');
}

my ($feed, $fp) = feed_pages($n, 0, 1000);
ok(!@$fp, 'the event log is gap-free') or diag join "\n", @$fp[0 .. 5];
my $last = $n->req(GET => '/v1/events?after=1000000000')->{json}{last_seq};
is(scalar @$feed, $last, "the log holds last_seq ($last) events");
my @signal = $n->error_log =~ /worker process \d+ exited on signal 9/g;
is(scalar @signal, $kills, "the master logged each of the $kills kills");
my ($rc, $out, $err) = admin_run('verify', $D);
ok($rc == 0 && $out eq "verify: ok, $last events\n",
   'inventory-admin verify passes') or diag "exit $rc\n$out$err";
$n->stop;

note sprintf 'took %.1f s', time - $T0;
done_testing;
