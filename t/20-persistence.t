# Durability across restart, and no lost or doubled writes across a
# graceful reload under write load.
use strict;
use warnings;
use Test::More;
use Time::HiRes qw(time sleep);
use InvTest qw(item_ok problem_ok parallel encode_json decode_json);

my $n = InvTest->start;

my $P1 = '/v1/inventory/P-1/a';
my $P2 = '/v1/inventory/P-2/b';
my $P3 = '/v1/inventory/P-1/c';

# --- restart ------------------------------------------------------------------
item_ok($n->req(PUT => $P1, json => { on_hand => 5, min_level => 10 }), 201,
        { on_hand => 5, version => 2, low_stock => 1 }, 'P-1/a created (v2)');
item_ok($n->req(POST => "$P1/adjustments", json => { delta => 1, reason => 'r' }),
        200, { on_hand => 6, version => 3 }, 'P-1/a adjusted (v3)');
item_ok($n->req(PUT => $P2, json => { on_hand => 7 }), 201,
        { on_hand => 7, version => 1 }, 'P-2/b created (v1)');
item_ok($n->req(POST => "$P2/adjustments", json => { delta => 3 }), 200,
        { on_hand => 10, version => 2 }, 'P-2/b adjusted (v2)');
item_ok($n->req(POST => "$P3/adjustments", json => { delta => 4 }), 201,
        { on_hand => 4, version => 1 }, 'P-1/c created by adjustment (v1)');

my %before = map { $_ => $n->req(GET => $_)->{json} } $P1, $P2, $P3;
my $agg_before = $n->req(GET => '/v1/inventory/P-1')->{json};
my $master1 = $n->master_pid;

$n->restart;
isnt($n->master_pid, $master1, 'restart gave a new master');

for my $p ($P1, $P2, $P3) {
    my $r = $n->req(GET => $p);
    item_ok($r, 200, {}, "$p readable after restart");
    is_deeply($r->{json}, $before{$p}, "$p identical after restart")
        or diag InvTest::show($r);
}
is_deeply($n->req(GET => '/v1/inventory/P-1')->{json}, $agg_before,
          'aggregate identical after restart');
problem_ok($n->req(GET => '/v1/inventory/P-9/a'), 404, 'not-found',
           'unknown item still unknown after restart');

item_ok($n->req(POST => "$P1/adjustments", json => { delta => 1 }), 200,
        { on_hand => 7, version => 4, min_level => 10, low_stock => 1 },
        'next write on P-1/a continues the version counter (v4)');
item_ok($n->req(PUT => $P2, json => { on_hand => 1 }), 200,
        { on_hand => 1, version => 3, min_level => 0 },
        'next write on P-2/b continues the version counter (v3)');

# --- a second instance on the same data directory after stop --------------------
$n->stop;
my $n2 = InvTest->start(datadir => $n->datadir);
item_ok($n2->req(GET => $P1), 200, { on_hand => 7, version => 4 },
        'a new nginx (new prefix) on the same datadir sees the data');
$n2->stop;
$n->restart;

# --- reload under write load ------------------------------------------------------
my $R = '/v1/inventory/R-1/a';
item_ok($n->req(PUT => $R, json => { on_hand => 0, min_level => 0 }), 201,
        { on_hand => 0, version => 1 }, 'R-1/a created (v1)');

my $master = $n->master_pid;
my @old_workers = $n->worker_pids;
my $flag = $n->dir . '/reloads-done';
my $WRITERS = 4;
my $MAX_SECONDS = 20;

my @res = parallel($WRITERS + 1, sub {
    my ($i) = @_;
    if ($i == $WRITERS) {
        # the reloader: two reloads while the writers run
        my @log;
        sleep 0.5;
        for (1 .. 2) {
            my %old = map { $_ => 1 } $n->worker_pids;
            $n->reload;
            my @now = $n->worker_pids;
            push @log, scalar(grep { !$old{$_} } @now);
            sleep 0.7;
        }
        open my $fh, '>', $flag; close $fh;
        return encode_json({ reloader => 1, new_workers => \@log });
    }
    my $delta = $i + 1;
    my ($ok, $sum, %other) = (0, 0);
    my $t0 = time;
    my $done_at;
    while (time - $t0 < $MAX_SECONDS) {
        my $r = $n->req(POST => "$R/adjustments", json => { delta => $delta });
        if ($r->{status} >= 200 && $r->{status} < 300) {
            $ok++;
            $sum += $delta;
        } else {
            my $k = $r->{status} . ' ' . substr($r->{body} // '', 0, 200);
            $other{$k}++;
        }
        if (!$done_at && -e $flag) { $done_at = time }
        last if $done_at && time - $done_at > 0.5;
    }
    return encode_json({ ok => $ok, sum => $sum, other => \%other,
                         saw_flag => $done_at ? 1 : 0 });
});

my ($acked, $sum, %other) = (0, 0);
my $reloader;
for my $s (@res) {
    my $j = eval { decode_json($s) };
    if (!$j) { fail("child result: $s"); next }
    if ($j->{reloader}) { $reloader = $j; next }
    $acked += $j->{ok};
    $sum += $j->{sum};
    $other{$_} += $j->{other}{$_} for keys %{ $j->{other} };
    ok($j->{saw_flag}, 'writer ran until the reloads were done');
}
ok($reloader, 'reloader finished') or diag "@res";
ok(!grep({ !$_ } @{ $reloader->{new_workers} // [0] }),
   'each reload started new workers')
    or diag encode_json($reloader);
is($n->master_pid, $master, 'same master after reloads');
my %old = map { $_ => 1 } @old_workers;
ok(!grep({ $old{$_} } $n->worker_pids), 'the original workers are gone')
    or diag "old: @old_workers; now: " . join(' ', $n->worker_pids);
diag "reload run: $acked acknowledged writes, sum $sum";
ok($acked > 20, "writes went through during the reloads ($acked)");
ok(!%other, 'no failed write during graceful reloads')
    or diag explain \%other;

my $r = $n->req(GET => $R);
item_ok($r, 200, { on_hand => $sum, version => 1 + $acked },
        'on_hand == sum of acknowledged deltas, version == 1 + acknowledged');

$n->restart;
item_ok($n->req(GET => $R), 200, { on_hand => $sum, version => 1 + $acked },
        '... and the same after a restart');

$n->stop;
done_testing;
