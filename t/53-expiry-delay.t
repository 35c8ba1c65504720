#!/usr/bin/perl
# inventory_reservations_overdue_seconds, the sweep's delay that the alert
# InventoryExpiryBehind watches: how long the earliest active reservation is
# past its expiry.
#
# A primary P sweeps its own reservations: the gauge is 0 before any is
# due and once the due ones are expired.  A follower F does not sweep: its
# reservations end when P's expiries arrive.  With P paused (SIGSTOP), F's
# reservations outlive their expiry and F's gauge shows by how much: at
# least the time since the earliest one was due, and growing.  When P goes
# on, its sweep expires them, F applies that, and F's gauge is 0 again.
use strict;
use warnings;
use Test::More;
use Time::HiRes qw(time sleep);
use InvTest qw(metric_value wait_applied wait_until last_seq);

my $REPL = 'location /replication/ { inventory_replication; }';
my $P = InvTest->start(workers => 2, server_extra => $REPL);
my $F = InvTest->start(workers => 2, http_extra => 'inventory_follow '
                       . $P->url('/replication/') . ' wait=2s;');

sub overdue {
    my $v = metric_value($_[0], 'inventory_reservations_overdue_seconds');
    return defined $v ? $v + 0 : -1;
}

cmp_ok(overdue($P), '==', 0, 'P: 0 without reservations');
cmp_ok(overdue($F), '==', 0, 'F: 0 without reservations');

is($P->put_item('OD-1', 's1', { on_hand => 100 })->{status}, 201, 'an item');
my $r = $P->reserve('OD-1', 's1', { quantity => 1, ttl_seconds => 600 });
is($r->{status}, 201, 'a reservation due in 10 minutes');
cmp_ok(overdue($P), '==', 0, 'P: 0 while none is due');

# three reservations due in 2 s; F holds them before P is paused
my $t_due = time + 2;
for my $i (1 .. 3) {
    my $x = $P->reserve('OD-1', 's1', { quantity => 1, ttl_seconds => 2 });
    is($x->{status}, 201, "a reservation due in 2 s ($i)");
}
ok(wait_applied($F, last_seq($P)), 'F holds them');
cmp_ok(overdue($F), '==', 0, 'F: 0 while none is due');

my @paused = ($P->master_pid, $P->worker_pids);
kill 'STOP', @paused;
sleep 0.2 while time < $t_due + 2.5;
my $first = overdue($F);
cmp_ok($first, '>=', 2, "F, its primary paused: the earliest is $first s "
       . 'past its expiry (due 2.5 s ago or more)');
sleep 1;
my $second = overdue($F);
cmp_ok($second, '>', $first, "and it grows ($second s a second later)");
is($F->req(GET => "/v1/inventory/OD-1/s1")->{json}{reserved}, 4,
   'F still counts them reserved');

kill 'CONT', @paused;
ok(wait_until(20, sub { overdue($F) == 0 }),
   'P going on: its sweep expires them, F applies that and reads 0');
cmp_ok(overdue($P), '==', 0,
       'P: 0 with only the 10-minute reservation active');
is($F->req(GET => "/v1/inventory/OD-1/s1")->{json}{reserved}, 1,
   'F: only the 10-minute reservation is held');

$F->stop;
$P->stop;
done_testing();
