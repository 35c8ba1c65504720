#!/usr/bin/perl
# Hostile input end to end (issue 7, first part): malformed, truncated,
# oversized, deeply nested, non-UTF-8, NUL-containing and numeric-overflow
# bodies on every write route, hostile paths and query strings on every
# route. Nothing may answer 5xx, no worker may die (same pids before and
# after, and the harness fails on "exited on signal" or a sanitizer report),
# and the store must be unchanged: the item keeps its version and the event
# log does not grow.
#
# The stock states: moves get every hostile body the other routes get, and
# bodies that are valid JSON but break a rule of the move (from/to not a
# state name, to incoming, from = to, quantity not an integer of 1..10^9,
# an unknown member), of an adjustment's state, of PUT's safety_stock and
# backorder_limit, and of the ledger's reference (spaces, control
# characters, 256 characters, non-ASCII, not a string) on every write
# route: each one 400 naming the field; a reason or reference with half a
# surrogate pair (\ud800 alone) is 400 naming the body.  The item they aim at holds stock
# in every state, so any of them that slipped through would write.
use strict;
use warnings;
use Test::More;
use InvTest qw(hostile_bodies hostile_problems json_object
               unpaired_surrogates);

my $n = InvTest->start(http_extra => 'client_max_body_size 64k; '
                       . 'client_body_timeout 2s;');
is($n->req(PUT => '/v1/inventory/H-1/s1', json => { on_hand => 10 })
      ->{status}, 201, 'seed H-1/s1');
is($n->req(PUT => '/v1/inventory/H-2/s2', json => { on_hand => 10 })
      ->{status}, 201, 'seed H-2/s2');
for my $st (qw(incoming damaged quality_control)) {
    is($n->req(POST => '/v1/inventory/H-1/s1/adjustments',
               json => { delta => 2, state => $st })->{status}, 200,
       "H-1/s1 holds 2 $st");
}
my $res = $n->req(POST => '/v1/inventory/H-1/s1/reservations',
                  json => { quantity => 1 });
is($res->{status}, 201, 'a reservation to aim at');
my $rid = $res->{json}{id} // 'r_none';
my @SNAP = ('/v1/inventory/H-1/s1', '/v1/inventory/H-2/s2',
            "/v1/reservations/$rid");
my $snap = InvTest::items_snapshot($n, @SNAP);

my @workers = sort { $a <=> $b } $n->worker_pids;
my $seq0 = $n->req(GET => '/v1/health')->{json}{store}{last_seq};

my @bodies = hostile_bodies();
my @writes = (
    [ PUT  => '/v1/inventory/H-1/s1' ],
    [ POST => '/v1/inventory/H-1/s1/adjustments' ],
    [ POST => '/v1/inventory/H-1/s1/reservations' ],
    [ POST => '/v1/reservations' ],
    [ POST => '/v1/transfers' ],
    # an id of the right shape that names nothing: any body ends in a 4xx
    [ POST => '/v1/reservations/r_0000000000000000000000/commit' ],
    [ POST => '/v1/reservations/r_0000000000000000000000/release' ],
    [ POST => '/v1/inventory/H-1/s1/moves' ],
);

my ($count, $bad) = hostile_problems($n, \@writes, \@bodies);
is_deeply($bad, {}, "$count hostile bodies: every one a 4xx problem")
    or diag explain $bad;

# --- valid JSON that breaks a rule: 400 naming the field ------------------
#
# [route, body members (JSON text of each value, in order; undef leaves the
# member out), the field the 400 must name]
my %ROUTE = (
    put => '/v1/inventory/H-1/s1', adjust => '/v1/inventory/H-1/s1/adjustments',
    move => '/v1/inventory/H-1/s1/moves',
    reserve => '/v1/inventory/H-1/s1/reservations', cart => '/v1/reservations',
    transfer => '/v1/transfers', commit => "/v1/reservations/$rid/commit",
    release => "/v1/reservations/$rid/release",
);
# a valid body of each route (with the reservation $rid: the commit and the
# release would end it)
my %VALID = (
    put => [ on_hand => '10' ],
    adjust => [ delta => '1', state => '"damaged"' ],
    move => [ from => '"incoming"', to => '"available"', quantity => '1' ],
    reserve => [ quantity => '1' ],
    cart => [ lines => '[{"sku":"H-1","location":"s1","quantity":1}]' ],
    transfer => [ sku => '"H-1"', from => '"s1"', to => '"s2"',
                  quantity => '1' ],
    commit => [ reason => '"x"' ],
    release => [ reason => '"x"' ],
);
my @STATES = qw(available damaged quality_control incoming);
my @NOT_STATE = ('1', '0', '1.5', 'true', 'false', 'null', '[]', '{}',
                 '["available"]', '{"available":1}', '""', '"Available"',
                 '"AVAILABLE"', '"lost"', '"available "', '" available"',
                 '"avail"', '"available_"', '"quality-control"',
                 '"qualitycontrol"', '"available\u0000"',
                 '"incoming\u0000x"', '"damaged\n"', '"d\u0061maged\u0000"',
                 '"' . ('a' x 5000) . '"', '"\u00e9"');
my @NOT_QTY = ('0', '-1', '-0', '-1000000000', '1000000001', '1.5', '1.0',
               '1e3', '1E0', '-1e0', '"1"', 'null', 'true', '[]', '{}',
               '[1]', '9007199254740993', '18446744073709551617',
               '99999999999999999999999999', '-9223372036854775809');
my @NOT_REF = ('""', '" "', '"a b"', '"a\tb"', '"a\nb"', '"\u0001"',
               '"a\u0000b"', '"\u007f"', '"x\u0080"',
               '"' . ('x' x 256) . '"', '"' . ('x' x 5000) . '"',
               qq{"caf\xc3\xa9"}, '"caf\u00e9"', '"\ud83d\ude00"', '5',
               'null', 'true', '[]', '{}', '["po:1"]');
my @rules;
for my $v (@NOT_STATE) {
    push @rules, [ move => [ from => $v, to => '"available"',
                             quantity => '1' ], 'from' ],
                 [ move => [ from => '"incoming"', to => $v,
                             quantity => '1' ], 'to' ],
                 [ adjust => [ delta => '1', state => $v ], 'state' ];
}
for my $st (@STATES) {
    push @rules, [ move => [ from => qq{"$st"}, to => '"incoming"',
                             quantity => '1' ], 'to' ],
                 [ move => [ from => qq{"$st"}, to => qq{"$st"},
                             quantity => '1' ], 'to' ];
}
for my $v (@NOT_QTY) {
    push @rules, [ move => [ from => '"incoming"', to => '"available"',
                             quantity => $v ], 'quantity' ];
}
for my $v ('0', '-0', '1.5', '1.0', '1e3', '-1E0', '"1"', 'null', 'true',
           '[]', '{}', '1000000001', '-1000000001', '9007199254740993',
           '-99999999999999999999999999') {
    push @rules, [ adjust => [ delta => $v, state => '"damaged"' ], 'delta' ];
}
for my $m (qw(from to quantity)) {
    push @rules, [ move => [ from => '"incoming"', to => '"available"',
                             quantity => '1', $m => undef ], $m ];
}
for my $x ([ state => '"damaged"' ], [ sku => '"H-1"' ], [ delta => '1' ],
           [ location => '"s1"' ], [ on_hand => '1' ], [ From => '"a"' ],
           [ 'from ' => '"a"' ], [ lines => '[]' ], [ ttl_seconds => '60' ],
           [ x => 'null' ], [ 'r\u00e9ason' => '"a"' ]) {
    push @rules, [ move => [ @{ $VALID{move} }, @$x ],
                   $x->[0] =~ s/\\u00e9/\x{e9}/r ];
}
push @rules, [ put => [ on_hand => '10', state => '"damaged"' ], 'state' ],
             [ reserve => [ quantity => '1', state => '"damaged"' ], 'state' ],
             [ transfer => [ @{ $VALID{transfer} }, state => '"damaged"' ],
               'state' ],
             [ adjust => [ delta => '1', state => '"damaged"',
                           from => '"incoming"' ], 'from' ];
for my $k (qw(safety_stock backorder_limit)) {
    push @rules, [ put => [ on_hand => '10', $k => $_ ], $k ]
        for '-1', '1.5', '1e3', '"3"', 'null', 'true', '[]',
            '9007199254740992', '99999999999999999999';
}
for my $route (sort keys %VALID) {
    for my $v (@NOT_REF) {
        push @rules, [ $route => [ @{ $VALID{$route} }, reference => $v ],
                       'reference' ];
    }
    for my $v ('"' . ('x' x 257) . '"', '5', 'null', '[]') {
        push @rules, [ $route => [ @{ $VALID{$route} }, reason => $v ],
                       'reason' ];
    }
    # half a surrogate pair is not UTF-8: the body is invalid (a lone
    # high one was taken as "?", and written)
    for my $m (qw(reason reference)) {
        push @rules, [ $route => [ @{ $VALID{$route} }, $m => $_ ], 'body' ]
            for unpaired_surrogates();
    }
}

my @rbad;
for my $x (@rules) {
    my ($route, $members, $field) = @$x;
    my $b = json_object($members);
    my $r = $n->req(POST => $ROUTE{$route}, body => $b, raw => 1,
                    headers => { 'Content-Type' => 'application/json' });
    $r = $n->req(PUT => $ROUTE{$route}, body => $b, raw => 1,
                 headers => { 'Content-Type' => 'application/json' })
        if $route eq 'put';
    my $j = ref $r->{json} eq 'HASH' ? $r->{json} : {};
    my @f = map { ref $_ eq 'HASH' ? $_->{field} // 'null' : '?' }
            @{ ref $j->{errors} eq 'ARRAY' ? $j->{errors} : [] };
    push @rbad, "$route " . substr($b =~ s/[^ -~]/?/gr, 0, 100) . ": "
                . "$r->{status} " . ($j->{code} // '') . " fields (@f), "
                . "expected 400 invalid-request naming $field"
        unless $r->{status} == 400 && ($j->{code} // '') eq 'invalid-request'
               && grep { $_ eq $field } @f;
}
is_deeply(\@rbad, [], scalar(@rules) . ' bodies that break a rule of the '
          . 'move, of a state, of the settings or of the ledger: each 400 '
          . 'invalid-request naming the field') or diag explain \@rbad;

# A member whose name holds a NUL ("reason\u0000", valid JSON) is unknown:
# 400, nothing written, on every route of the states.  The 400 should name
# it whole (api.md: the field of an unknown member is the member's name);
# the server names it cut at the NUL, "reason", a member the route allows.
{
    my (@bad, @cut);
    for my $route (qw(move adjust put)) {
        for my $name ('reason\u0000', 'from\u0000', 'state\u0000x',
                      'reference\u0000') {
            my $b = json_object([ @{ $VALID{$route} }, $name => '"a"' ]);
            my $r = $n->req($route eq 'put' ? 'PUT' : 'POST', $ROUTE{$route},
                            body => $b, raw => 1,
                            headers => { 'Content-Type' => 'application/json' });
            my $j = ref $r->{json} eq 'HASH' ? $r->{json} : {};
            my @f = map { ref $_ eq 'HASH' ? $_->{field} // 'null' : '?' }
                    @{ ref $j->{errors} eq 'ARRAY' ? $j->{errors} : [] };
            push @bad, "$route $b: $r->{status} fields (@f)"
                unless $r->{status} == 400
                       && ($j->{code} // '') eq 'invalid-request' && @f;
            my $whole = $name =~ s/\\u0000/\x00/r;
            push @cut, "$route $b: fields ("
                       . join(', ', map { s/\x00/\\u0000/gr } @f) . ')'
                unless grep { $_ eq $whole } @f;
        }
    }
    is_deeply(\@bad, [], 'a member name with a NUL in it: 400 '
              . 'invalid-request') or diag explain \@bad;
    is_deeply(\@cut, [], '... naming the member whole')
        or diag explain \@cut;
}

# the valid bodies pass (else the 400s above prove nothing), but on items
# where nothing may change: an unknown item (404), or If-Match of another
# version (412), which is decided after the body
my @vbad;
for my $route (sort keys %VALID) {
    my $b = json_object($VALID{$route});
    my $path = $ROUTE{$route};
    my %h = ('Content-Type' => 'application/json', 'If-Match' => '"999"');
    my $want = 412;
    if ($route =~ /^(?:commit|release)\z/) {
        $path =~ s{/r_[^/]+/}{/r_0000000000000000000000/};
        delete $h{'If-Match'};
        $want = 404;
    } elsif ($route =~ /^(?:reserve|cart|transfer)\z/) {
        delete $h{'If-Match'};
        $b =~ s/"H-1"/"NOPE-1"/g;
        $path =~ s{/H-1/}{/NOPE-1/};
        $want = 404;
    }
    my $r = $n->req($route eq 'put' ? 'PUT' : 'POST', $path, body => $b,
                    raw => 1, headers => \%h);
    push @vbad, "$route $path $b: " . InvTest::show($r)
        unless $r->{status} == $want;
}
is_deeply(\@vbad, [], 'the valid bodies are valid (412 or 404 where '
          . 'nothing may change)') or diag explain \@vbad;
InvTest::unchanged($n, $snap, 'the items and the reservation are unchanged '
                   . 'by every hostile body');

# truncated bodies: Content-Length promises more than is sent
for my $w (@writes[0 .. 2], $writes[-1]) {
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
    '/v1/inventory/H-1/s1/moves/extra', '/v1/inventory/H-1/s1/moves%00',
    '/v1/inventory/H-1/s1/moves?from=incoming&to=available&quantity=1',
    '/v1/inventory/H-1/s1/Moves', '/v1/inventory/H-1/s1/' . ('moves/' x 500),
    '/v1/inventory/H-1/moves', '/v1/inventory/moves',
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
# a valid move with a hostile If-Match or Idempotency-Key: refused (a
# move that passed would show in the log, checked below)
for my $h ([ 'If-Match' => '"' . ('9' x 500) . '"' ],
           [ 'If-Match' => join(',', ('"1"') x 2000) ],
           [ 'If-Match' => 'W/"1", "' ],
           [ 'If-Match' => "\"1\x01\"" ],
           [ 'Idempotency-Key' => 'k' x 5000 ],
           [ 'Idempotency-Key' => "a\x7fb" ],
           [ 'Idempotency-Key' => '' ]) {
    my $r = $n->raw_req(POST => '/v1/inventory/H-1/s1/moves',
                        body => '{"from":"incoming","to":"available",'
                                . '"quantity":1}',
                        headers => [ 'Content-Type' => 'application/json',
                                     @$h ]);
    ok($r->{status} == 400 || $r->{status} == 412,
       "a move with a hostile $h->[0]: $r->{status}");
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
