#!/usr/bin/perl
# Reads answered on the event loop while the same workers' pool threads
# commit writes: every read is answered from the store (200), never "the
# store cannot be read".  This caught two threads sharing one word of the
# store's state (the event loop's read flag and a pool thread's recording
# flag as bit-fields): each lost the other's writes, so reads failed with
# EINVAL and transactions went unrecorded for followers.  wrk drives the
# load (the rate it takes to hit such a race); INVENTORY_RW_SECONDS sets
# its length.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use InvTest qw(which);

my $wrk = which('wrk') or plan skip_all => 'wrk is not installed';
my $seconds = $ENV{INVENTORY_RW_SECONDS} // 4;
my $lua = "$FindBin::Bin/../bench/reserve.lua";

my $n = InvTest->start;
for my $i (0 .. 7) {
    is($n->req(PUT => "/v1/inventory/B-$i/bench",
               json => { on_hand => 1000000000 })->{status}, 201,
       "seed B-$i");
}
my $url = $n->url('');
my $dir = $n->dir;

# writers: reservations on the 8 items, 16 connections
my $pid = fork // die "fork: $!";
if (!$pid) {
    $ENV{ITEMS} = 8;
    open STDOUT, '>', "$dir/writers.out";
    open STDERR, '>&', \*STDOUT;
    exec $wrk, '-t1', '-c16', "-d${seconds}s", '-s', $lua, $url;
    POSIX::_exit(127);
}

# readers: 32 connections on one item
my $reads = `$wrk -t1 -c32 -d${seconds}s $url/v1/inventory/B-1/bench 2>&1`;
waitpid $pid, 0;
my $writes = InvTest::slurp("$dir/writers.out") // '';

my ($rn) = $reads =~ /(\d+) requests in/;
my ($wn) = $writes =~ /(\d+) requests in/;
ok(($rn // 0) > 0 && ($wn // 0) > 0,
   'reads and writes ran side by side (' . ($rn // 0) . ' reads, '
   . ($wn // 0) . ' writes)') or diag "$reads\n$writes";
unlike($reads, qr/Non-2xx or 3xx responses/, 'every read was a 200')
    or diag $reads;
unlike($writes, qr/Non-2xx or 3xx responses/, 'every write was a 2xx')
    or diag $writes;
unlike($n->error_log, qr/read failed|write failed/,
       'no read or write failed');

$n->stop;

done_testing;
