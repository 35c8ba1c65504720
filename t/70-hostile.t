#!/usr/bin/perl
# Hostile input end to end (issue 7, first part): malformed, truncated,
# oversized, deeply nested, non-UTF-8, NUL-containing and numeric-overflow
# bodies on every write route, hostile paths and query strings on every
# route. Nothing may answer 5xx, no worker may die (same pids before and
# after, and the harness fails on "exited on signal" or a sanitizer report),
# and the store must be unchanged: the item keeps its version and the event
# log does not grow.
use strict;
use warnings;
use Test::More;
use InvTest;

my $n = InvTest->start(http_extra => 'client_max_body_size 64k; '
                       . 'client_body_timeout 2s;');
is($n->req(PUT => '/v1/inventory/H-1/s1', json => { on_hand => 10 })
      ->{status}, 201, 'seed H-1/s1');
is($n->req(PUT => '/v1/inventory/H-2/s2', json => { on_hand => 10 })
      ->{status}, 201, 'seed H-2/s2');
my $res = $n->req(POST => '/v1/inventory/H-1/s1/reservations',
                  json => { quantity => 1 });
is($res->{status}, 201, 'a reservation to aim at');
my $rid = $res->{json}{id} // 'r_none';

my @workers = sort { $a <=> $b } $n->worker_pids;
my $seq0 = $n->req(GET => '/v1/health')->{json}{store}{last_seq};

my @bodies = (
    '', ' ', '{', '}', '[', '{"quantity":', '{"quantity":1', '{"quantity":1,}',
    'null', 'true', '0', '"x"', '[1,2,3]', '{"quantity":1}{"quantity":1}',
    '{"quantity":"1"}', '{"quantity":1.0}', '{"quantity":1e3}',
    '{"quantity":-0}', '{"quantity":0x10}', '{"quantity":01}',
    '{"quantity":99999999999999999999999999999999}',
    '{"quantity":9007199254740993}', '{"quantity":-9223372036854775809}',
    '{"delta":1e308}', '{"delta":-1e400}', '{"on_hand":NaN}',
    '{"on_hand":Infinity}', '{"quantity":1,"quantity":2}',
    "{\"quantity\":1,\"reason\":\"a\x00b\"}", "{\"quantity\":1\x00}",
    "\x00\x00\x00\x00", "{\"reason\":\"\xff\xfe\"}", "{\"reason\":\"\xc0\xaf\"}",
    "{\"reason\":\"\xed\xa0\x80\"}", "{\"reason\":\"\\ud800\"}",
    "\xef\xbb\xbf{\"quantity\":1}", "{\"r\xc3\":1}",
    ('[' x 10000) . (']' x 10000), ('{"a":' x 5000) . '1' . ('}' x 5000),
    '{"lines":[' . join(',', ('{"sku":"H-1","location":"s1","quantity":1}')
                             x 5000) . ']}',
    '{"reason":"' . ('x' x 60000) . '"}',
    '{"' . ('k' x 1000) . '":1}', '"' . ("\\u0000" x 1000) . '"',
    '{"quantity":1,"ttl_seconds":18446744073709551616}',
    '{"sku":"H-1","from":"s1","to":"s1","quantity":1}',
    '{"sku":"../../etc/passwd","from":"s1","to":"s2","quantity":1}',
    '{"sku":"H-1","from":"s1","to":"s2","quantity":-1}',
);
my @writes = (
    [ PUT  => '/v1/inventory/H-1/s1' ],
    [ POST => '/v1/inventory/H-1/s1/adjustments' ],
    [ POST => '/v1/inventory/H-1/s1/reservations' ],
    [ POST => '/v1/reservations' ],
    [ POST => '/v1/transfers' ],
    # an id of the right shape that names nothing: any body ends in a 4xx
    [ POST => '/v1/reservations/r_0000000000000000000000/commit' ],
);

my (%bad, $count);
for my $w (@writes) {
    for my $b (@bodies) {
        for my $ct ('application/json', 'text/plain') {
            my $r = $n->req(@$w, body => $b, raw => 1,
                            headers => { 'Content-Type' => $ct });
            $count++;
            push @{ $bad{"$w->[0] $w->[1]"} },
                 "$r->{status} for " . substr($b =~ s/[^ -~]/?/gr, 0, 60)
                if $r->{status} >= 500 || $r->{status} < 400;
        }
    }
}
is_deeply(\%bad, {}, "$count hostile bodies: every one a 4xx")
    or diag explain \%bad;

# truncated bodies: Content-Length promises more than is sent
for my $w (@writes[0 .. 2]) {
    my $r = $n->raw_req(@$w, body => '{"quantity":1',
                        headers => [ 'Content-Type' => 'application/json',
                                     'Content-Length' => 100 ],
                        timeout => 30);
    ok($r->{status} < 500 || $r->{status} == 599,
       "$w->[1]: a truncated body gets no 5xx ($r->{status})");
}

my @paths = (
    '/v1/inventory/../../../etc/passwd', '/v1/inventory/%2e%2e/%2e%2e',
    '/v1/inventory/H-1/s1%00', '/v1/inventory/H%00-1/s1',
    '/v1/inventory/' . ('A' x 5000) . '/s1', '/v1/inventory/H-1/' . ('%ff' x 300),
    '/v1/inventory/H-1/s1/events?after_version=-1',
    '/v1/inventory/H-1/s1/events?after_version=99999999999999999999999',
    '/v1/inventory/H-1/s1/events?limit=0', '/v1/inventory/H-1/s1/events?limit=1e9',
    '/v1/inventory/H-1/s1?as_of=9999-99-99T99:99:99Z',
    '/v1/inventory/H-1/s1?as_of=' . ('9' x 500),
    '/v1/inventory/H-1/s1?as_of=%00', '/v1/events?after=-1',
    '/v1/events?after=18446744073709551616', '/v1/events?limit=%ff',
    '/v1/events?wait=1e9', '/v1/events?wait=-5', '/v1/events?wait=0&after=0&after=1',
    '/v1/low-stock?cursor=' . ('A' x 3000), '/v1/low-stock?cursor=%ff%fe',
    '/v1/low-stock?limit=99999999999999999999', "/v1/reservations/r_" . ('a' x 22),
    '/v1/reservations/' . ('r' x 4000), '/v1/reservations/%00/commit',
    '/v1//inventory//H-1', '/v1/inventory/H-1/s1/reservations/extra/extra',
    '/v1/' . ('a/' x 2000), '/v1/inventory/H-1/s1?' . ('a=1&' x 2000),
);
my @pbad;
for my $p (@paths) {
    for my $m (qw(GET HEAD POST PUT DELETE PATCH OPTIONS)) {
        my $r = $n->raw_req($m, $p, body => ($m =~ /^P/ ? '{}' : undef),
                            headers => [ 'Content-Type' => 'application/json' ]);
        push @pbad, "$m " . substr($p, 0, 60) . ": $r->{status}"
            if $r->{status} >= 500 || $r->{status} == 599
               || ($m =~ /^(?:POST|PUT|PATCH|DELETE)$/ && $r->{status} < 400);
    }
}
is_deeply(\@pbad, [], scalar(@paths) . ' hostile paths x 7 methods: no 5xx, '
          . 'no write accepted') or diag explain \@pbad;

# headers
for my $h ([ 'If-Match' => '"' . ('9' x 500) . '"' ],
           [ 'If-Match' => join(',', ('"1"') x 2000) ],
           [ 'If-None-Match' => "\"1\x01\"" ],
           [ 'Idempotency-Key' => 'k' x 5000 ],
           [ 'Idempotency-Key' => "a\x7fb" ]) {
    my $r = $n->raw_req(PUT => '/v1/inventory/H-1/s1',
                        body => '{"on_hand":10}',
                        headers => [ 'Content-Type' => 'application/json', @$h ]);
    ok($r->{status} >= 400 && $r->{status} < 500 || $r->{status} == 200,
       "hostile $h->[0]: $r->{status}, no 5xx");
}

is_deeply([ sort { $a <=> $b } $n->worker_pids ], \@workers,
          'the same workers serve: none died');
my $h = $n->req(GET => '/v1/health');
is($h->{status}, 200, 'health is 200');
my $item = $n->req(GET => '/v1/inventory/H-1/s1')->{json};
is($item->{reserved}, 1, 'H-1/s1 still has its one reservation');
my $seq1 = $h->{json}{store}{last_seq};
# the only writes that may have passed: a PUT of the same on_hand (10)
my $ev = $n->req(GET => "/v1/events?after=$seq0&limit=1000")->{json}{events}
         // [];
my @other = grep { $_->{type} ne 'StockCounted' || $_->{data}{on_hand} != 10 } @$ev;
is_deeply(\@other, [], 'no hostile request appended an event')
    or diag explain \@other;
$n->allow_log(qr/client sent|too large|invalid/i);
$n->stop;

done_testing;
