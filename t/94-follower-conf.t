#!/usr/bin/perl
# The example configurations conf/primary.conf and conf/follower.conf, as
# they stand (placeholders filled in): a primary, a follower of it and a
# follower of that follower.  Reads are answered by each node from its own
# copy; writes sent to either follower reach the primary through the
# configuration's forwarding, with the primary's answer (Inventory-Seq,
# idempotent replays); a follower whose primary cannot be reached answers
# writes 503 problem+json and goes on answering reads.
use strict;
use warnings;
use Test::More;
use Time::HiRes qw(sleep time);
use FindBin;
use lib "$FindBin::Bin/lib";
use InvTest qw(ipath admin_run verify_ok);

sub follower_conf {
    my ($of) = @_;
    my $c = InvTest::example_conf('follower.conf');
    $c =~ s/%%PRIMARY%%/127.0.0.1:$of/g;
    return $c;
}

sub health { $_[0]->req(GET => '/v1/health')->{json} // {} }

sub wait_seq {
    my ($n, $seq, $label) = @_;
    my $deadline = time + 20;
    my $got;
    while (time < $deadline) {
        $got = health($n)->{store}{last_seq} // -1;
        last if $got >= $seq;
        sleep 0.05;
    }
    is($got, $seq, "$label: at seq $seq");
}

my $p = InvTest->start(conf => InvTest::example_conf('primary.conf'));
for my $i (1 .. 10) {
    is($p->req(PUT => ipath("CONF-$i", 'store-1'),
               json => { on_hand => 10 })->{status}, 201, "seed CONF-$i");
}
my $seq = health($p)->{store}{last_seq};

my $f1 = InvTest->start(conf => follower_conf($p->port));
my $f2 = InvTest->start(conf => follower_conf($f1->port));
wait_seq($f1, $seq, 'the follower');
wait_seq($f2, $seq, 'the follower of the follower');

for my $x (['F1', $f1], ['F2', $f2]) {
    my ($name, $f) = @$x;
    my $h = health($f);
    is($h->{role}, 'follower', "$name: role follower");
    is($h->{store_id}, health($p)->{store_id}, "$name: the primary's store");
    ok($h->{replication} && $h->{replication}{connected},
       "$name: connected to its primary");

    my $r = $f->req(GET => ipath('CONF-3', 'store-1'));
    is($r->{status}, 200, "$name: a read is answered");
    is($r->{headers}{'inventory-seq'}, $seq, "$name: from its copy at $seq");
}

# a write to each follower is the primary's, with the primary's answer
for my $x (['F1', $f1], ['F2', $f2]) {
    my ($name, $f) = @$x;
    my %key = ('Idempotency-Key' => "conf-$name");
    my $w = $f->req(POST => ipath('CONF-1', 'store-1') . '/adjustments',
                    json => { delta => 1 }, headers => \%key);
    is($w->{status}, 200, "$name: a write sent here is answered 200");
    my $s = $w->{headers}{'inventory-seq'} // 0;
    is($s, health($p)->{store}{last_seq},
       "$name: with the primary's Inventory-Seq");

    my $again = $f->req(POST => ipath('CONF-1', 'store-1') . '/adjustments',
                        json => { delta => 1 }, headers => \%key);
    is($again->{headers}{'idempotent-replayed'}, 'true',
       "$name: a retry with its key is replayed by the primary");

    my $r = $f->req(GET => ipath('CONF-1', 'store-1'),
                    headers => { 'Inventory-Min-Seq' => $s });
    is($r->{status}, 200, "$name: a read with Inventory-Min-Seq $s");
    ok(($r->{headers}{'inventory-seq'} // 0) >= $s,
       "$name: sees the write's seq");
}

is($p->req(GET => ipath('CONF-1', 'store-1'))->{json}{on_hand}, 12,
   'the primary applied each write once');

# every copy holds the same bytes
$seq = health($p)->{store}{last_seq};
wait_seq($f1, $seq, 'F1 after the writes');
wait_seq($f2, $seq, 'F2 after the writes');
my @dumps = map { (admin_run('dump', $_->datadir, '--all'))[1] } $p, $f1, $f2;
ok(length $dumps[0] && $dumps[0] eq $dumps[1] && $dumps[1] eq $dumps[2],
   'dump --all is the same on all three');
verify_ok($_->datadir, undef, 'an example node') for $f1, $f2;

# the stream is counted as a route of its own on the node that serves it
my $m = InvTest::metrics($p) // {};
ok(($m->{'inventory_requests_total{route="replication",status="200"}'} // 0)
   > 0, 'the primary counts the stream it serves as route "replication"');
ok(($m->{inventory_replication_served_transactions_total} // 0) > 0,
   'and the transactions it served');

# the primary gone: writes 503 problem+json, reads go on
$p->stop;
$f1->allow_log(qr/connect\(\) failed|upstream|inventory follow/);
$f2->allow_log(qr/connect\(\) failed|upstream|inventory follow/);
for my $path (ipath('CONF-2', 'store-1') . '/adjustments',
              '/v1/inventory/CONF-2/page.html')
{
    my $w = $f1->req(POST => $path, json => { delta => 1 });
    is($w->{status}, 503, "a write with the primary gone: 503 ($path)");
    like($w->{headers}{'content-type'} // '', qr{^application/problem\+json},
         "problem+json ($path)");
    is($w->{headers}{'retry-after'}, 1, "Retry-After ($path)");
    is($w->{json}{code}, 'unavailable', "code unavailable ($path)");
}
is($f1->req(GET => ipath('CONF-2', 'store-1'))->{status}, 200,
   'reads go on with the primary gone');
{
    my $q = $f1->req(POST => '/v1/inventory/query',
                     json => { items => [ { sku => 'CONF-2',
                                            location => 'store-1' } ] });
    is($q->{status}, 200, 'the query of many items, a read with a body, '
                          . 'is answered by the follower itself');
    is(scalar @{ $q->{json}{items} // [] }, 1, '... from its copy');
}

$f2->stop;
$f1->stop;

done_testing;
