#!/usr/bin/perl
# Backup and restore as docs/operations.md tells an operator: `mdb_copy -c`
# of the store while nginx serves writes, then a store started from the
# copy. The copy is a consistent snapshot: verify passes, its event log is
# gap-free and equal to the original's first events, every write
# acknowledged before the copy began is in it, and it takes writes.
use strict;
use warnings;
use Test::More;
use File::Temp qw(tempdir);
use HTTP::Tiny;
use POSIX ();
use Time::HiRes qw(sleep);
use InvTest;

my $n = InvTest->start;
for my $i (1 .. 4) {
    is($n->req(PUT => "/v1/inventory/BK-$i/s1", json => { on_hand => 0 })
          ->{status}, 201, "seed BK-$i");
}

my $tmp = tempdir('inventory-t52-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $stop = "$tmp/stop";

# a writer keeps adjusting while the copy is taken
my $writer = fork // die $!;
if (!$writer) {
    my $h = HTTP::Tiny->new(timeout => 10);
    my $i = 0;
    until (-e $stop) {
        $i++;
        $h->request('POST',
            $n->url('/v1/inventory/BK-' . (1 + $i % 4) . '/s1/adjustments'),
            { headers => { 'Content-Type' => 'application/json' },
              content => '{"delta":1}' });
    }
    POSIX::_exit(0);
}

sleep 1;
# every write acknowledged by now has a seq <= this
my $before = $n->req(GET => '/v1/health')->{json}{store}{last_seq};
ok($before > 4, "writes went on before the copy (last_seq $before)");

my $backup = "$tmp/backup";
mkdir $backup or die $!;
my $out = `mdb_copy -c ${\ $n->datadir} $backup 2>&1`;
is($?, 0, 'mdb_copy -c while nginx serves writes') or diag $out;
sleep 0.5;
open my $f, '>', $stop or die $!;
close $f;
waitpid $writer, 0;

my ($rc, $vout, $verr) = InvTest::admin_run('verify', $backup);
is($rc, 0, 'inventory-admin verify passes on the copy') or diag "$vout$verr";

# the original's log, to compare with
my ($orig, $p1) = InvTest::feed_pages($n);
is_deeply($p1, [], 'the original feed is gap-free') or diag "@$p1";

chmod 0755, $tmp;
my $m = InvTest->start(datadir => $backup);
my $last = $m->req(GET => '/v1/health')->{json}{store}{last_seq};
ok($last >= $before, "the copy holds every write acknowledged before it "
   . "began ($last >= $before)");
my ($copy, $p2) = InvTest::feed_pages($m);
is_deeply($p2, [], 'the copy\'s feed is gap-free') or diag "@$p2";
is(scalar @$copy, $last, 'the copy\'s feed has last_seq events');
is_deeply($copy, [ @$orig[0 .. $#$copy] ],
          'the copy\'s events equal the original\'s first events');

# items in the copy are the replay of its events
my %on_hand;
for my $e (@$copy) {
    next unless $e->{type} eq 'StockAdjusted';
    $on_hand{"$e->{sku}"} += $e->{data}{delta};
}
for my $i (1 .. 4) {
    my $r = $m->req(GET => "/v1/inventory/BK-$i/s1");
    is($r->{json}{on_hand}, $on_hand{"BK-$i"} // 0,
       "BK-$i in the copy is its events' sum");
}
is($m->req(POST => '/v1/inventory/BK-1/s1/adjustments', json => { delta => 1 })
      ->{status}, 200, 'the restored store takes writes');
$m->stop;
$n->stop;

done_testing;
