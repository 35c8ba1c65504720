# Transfers: POST /v1/transfers moves stock between two locations of one
# SKU atomically (creating the destination), never moving reserved stock;
# events on both sides; every error path changing nothing; concurrent
# transfers conserve stock.
use strict;
use warnings;
use Test::More;
use InvTest qw(item_ok problem_ok json_type item_events items_snapshot
               parallel encode_json decode_json TS_RE ipath unchanged);

my $n = InvTest->start(workers => 2);

# transfer_ok($r, \%from, \%to, $name): 200 {"from":item,"to":item}
sub transfer_ok {
    my ($r, $from, $to, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my @p;
    push @p, "status is $r->{status}, expected 200" unless $r->{status} == 200;
    push @p, "content-type is '$r->{content_type}'"
        unless $r->{content_type} =~ m{^application/json\b}i;
    my $j = $r->{json};
    if (ref $j ne 'HASH') {
        push @p, 'body is not an object';
    } else {
        my @x = grep { !/^(?:from|to)\z/ } sort keys %$j;
        push @p, "unexpected members: @x" if @x;
        push @p, map { "from: $_" } InvTest::item_problems($j->{from}, $from);
        push @p, map { "to: $_" } InvTest::item_problems($j->{to}, $to);
    }
    ok(!@p, $name) or diag join("\n", map { "  - $_" } @p) . "\n" . InvTest::show($r);
    return !@p;
}

# ==========================================================================
# success
# ==========================================================================

item_ok($n->put_item('T-1', 'a', { on_hand => 10 }), 201, { version => 1 }, 'setup: T-1 at a, 10');

my $r = $n->transfer({ sku => 'T-1', from => 'a', to => 'b', quantity => 3, reason => 'rebalance' });
transfer_ok($r, { sku => 'T-1', location => 'a', on_hand => 7, reserved => 0, version => 2 },
                { sku => 'T-1', location => 'b', on_hand => 3, reserved => 0, min_level => 0,
                  low_stock => 0, version => 1 },
            'transfer 3 from a to a new location b: 200, b created');
my $x1 = $r->{json} // {};
is_deeply($n->get(ipath('T-1', 'a'))->{json}, $x1->{from}, 'GET a equals the "from" item');
is_deeply($n->get(ipath('T-1', 'b'))->{json}, $x1->{to}, 'GET b equals the "to" item');
is(($x1->{from} // {})->{updated_at}, ($x1->{to} // {})->{updated_at},
   'both sides have the same updated_at (one transaction)');

{
    my $out = eval { item_events($n, 'T-1', 'a', 1) } // [];
    my $in = eval { item_events($n, 'T-1', 'b') } // [];
    is(scalar @$out, 1, 'a: one new event');
    is(scalar @$in, 1, 'b: one event');
    my ($o, $i) = ($out->[0] // {}, $in->[0] // {});
    is($o->{type}, 'StockTransferredOut', 'a: StockTransferredOut');
    is_deeply($o->{data}, { quantity => 3, to => 'b', reason => 'rebalance' },
              '... data quantity, to, reason');
    is($o->{version}, 2, '... version 2');
    is($i->{type}, 'StockTransferredIn', 'b: StockTransferredIn');
    is_deeply($i->{data}, { quantity => 3, from => 'a', reason => 'rebalance' },
              '... data quantity, from, reason');
    is($i->{version}, 1, '... version 1');
    ok(json_type($o->{seq}) eq 'number' && json_type($i->{seq}) eq 'number'
       && abs($o->{seq} - $i->{seq}) == 1, 'the two events have adjacent seqs')
        or diag explain [$o, $i];
    is($o->{at}, $i->{at}, 'the two events have the same time');
    like($o->{at} // '', TS_RE, '... an RFC 3339 timestamp');
}

$r = $n->transfer({ sku => 'T-1', from => 'a', to => 'b', quantity => 2 });
transfer_ok($r, { on_hand => 5, version => 3 }, { on_hand => 5, version => 2 },
            'transfer into an existing location, no reason: 200');
{
    my $out = eval { item_events($n, 'T-1', 'a', 2) } // [];
    my $in = eval { item_events($n, 'T-1', 'b', 1) } // [];
    my ($o, $i) = ($out->[0] // {}, $in->[0] // {});
    is_deeply([ @{ $o->{data} // {} }{qw(quantity to)} ], [ 2, 'b' ], 'out: quantity 2, to b');
    is_deeply([ @{ $i->{data} // {} }{qw(quantity from)} ], [ 2, 'a' ], 'in: quantity 2, from a');
    ok(!defined(($o->{data} // {})->{reason}) && !defined(($i->{data} // {})->{reason}),
       'no reason given: none recorded') or diag explain [$o, $i];
}

$r = $n->transfer({ sku => 'T-1', from => 'b', to => 'a', quantity => 5 });
transfer_ok($r, { location => 'b', on_hand => 0, available => 0 },
            { location => 'a', on_hand => 10 }, 'transfer everything back: b at 0');

# min_level is per item: the new item starts at 0; low stock detected on "from"
item_ok($n->put_item('T-1', 'a', { on_hand => 10, min_level => 8 }), 200, { low_stock => 0 },
        'setup: a min_level 8');
my $va = $n->get(ipath('T-1', 'a'))->{json}{version};
$r = $n->transfer({ sku => 'T-1', from => 'a', to => 'c', quantity => 3, reason => 'x' x 256 });
transfer_ok($r, { on_hand => 7, low_stock => 1, version => $va + 2 },
            { location => 'c', on_hand => 3, min_level => 0, low_stock => 0, version => 1 },
            'transfer below min_level (256-byte reason): from version +2');
{
    my $out = eval { item_events($n, 'T-1', 'a', $va) } // [];
    is(join(' ', map { $_->{type} } @$out), 'StockTransferredOut LowStockDetected',
       'from: StockTransferredOut then LowStockDetected');
    is_deeply($out->[1]{data} // {},
              { available => 7, min_level => 8, reason => 'x' x 256 },
              'LowStockDetected data, with the reason of the write that '
              . 'appended it');
}

# If-Match does not apply to transfers (a two-item write)
$r = $n->transfer({ sku => 'T-1', from => 'c', to => 'a', quantity => 1 },
          headers => { 'If-Match' => '"999"' });
transfer_ok($r, { location => 'c', on_hand => 2 }, { location => 'a', on_hand => 8 },
            'If-Match is ignored on transfers');

# identifiers at their limits
my $s64 = 'S' x 64;
item_ok($n->put_item($s64, 'l.1', { on_hand => 1 }), 201, {}, 'setup: a 64-character SKU');
$r = $n->transfer({ sku => $s64, from => 'l.1', to => 'L:2_' . ('z' x 60), quantity => 1 });
transfer_ok($r, { on_hand => 0 }, { location => 'L:2_' . ('z' x 60), on_hand => 1 },
            '64-character sku and location');

# ==========================================================================
# reserved stock cannot be transferred
# ==========================================================================

item_ok($n->put_item('T-2', 'a', { on_hand => 10 }), 201, {}, 'setup: T-2 at a, 10');
$r = $n->req(POST => ipath('T-2', 'a') . '/reservations', json => { quantity => 6 });
is($r->{status}, 201, 'reserve 6 of T-2 at a') or diag InvTest::show($r);
my $rid = ($r->{json} // {})->{id} // 'r_0000000000000000000000';

my $before = items_snapshot($n, ipath('T-2', 'a'), ipath('T-2', 'b'));
problem_ok($n->transfer({ sku => 'T-2', from => 'a', to => 'b', quantity => 5 }), 409,
           'insufficient-stock', 'transfer of more than available (reserved held): 409',
           available => 4);
problem_ok($n->transfer({ sku => 'T-2', from => 'a', to => 'b', quantity => 11 }), 409,
           'insufficient-stock', 'transfer of more than on_hand: 409', available => 4);
problem_ok($n->transfer({ sku => 'T-2', from => 'a', to => 'b', quantity => 1000000000 }), 409,
           'insufficient-stock', 'transfer of 10^9: 409', available => 4);
unchanged($n, $before, '409s changed nothing; "to" was not created');

$r = $n->transfer({ sku => 'T-2', from => 'a', to => 'b', quantity => 4 });
transfer_ok($r, { on_hand => 6, reserved => 6, available => 0 }, { on_hand => 4 },
            'transfer exactly the available 4: 200');
problem_ok($n->transfer({ sku => 'T-2', from => 'a', to => 'b', quantity => 1 }), 409,
           'insufficient-stock', 'then 1 more: 409 available 0', available => 0);
$r = $n->req(POST => "/v1/reservations/$rid/commit");
is($r->{status}, 200, 'commit the reservation') or diag InvTest::show($r);
item_ok($n->get(ipath('T-2', 'a')), 200, { on_hand => 0, reserved => 0 }, 'T-2 at a is empty');

# ==========================================================================
# errors
# ==========================================================================

item_ok($n->put_item('T-3', 'a', { on_hand => 5 }), 201, {}, 'setup: T-3 at a, 5');
item_ok($n->put_item('T-3', 'full', { on_hand => 9007199254740991 }), 201, {},
        'setup: T-3 at full, 2^53-1');
$before = items_snapshot($n, ipath('T-3', 'a'), ipath('T-3', 'b'), ipath('T-3', 'full'),
                         ipath('T-3', 'nowhere'), ipath('T-9', 'a'), ipath('T-9', 'b'));

problem_ok($n->transfer({ sku => 'T-3', from => 'nowhere', to => 'a', quantity => 1 }), 404,
           'not-found', 'unknown "from" location: 404');
problem_ok($n->transfer({ sku => 'T-9', from => 'a', to => 'b', quantity => 1 }), 404,
           'not-found', 'unknown SKU: 404');
problem_ok($n->transfer({ sku => 'T-3', from => 'a', to => 'full', quantity => 1 }), 409,
           'insufficient-stock', '"to" would exceed 2^53-1: 409');

for my $c ([ { from => 'a', to => 'b', quantity => 1 }, 'sku', 'missing sku' ],
           [ { sku => 'T-3', to => 'b', quantity => 1 }, 'from', 'missing from' ],
           [ { sku => 'T-3', from => 'a', quantity => 1 }, 'to', 'missing to' ],
           [ { sku => 'T-3', from => 'a', to => 'b' }, 'quantity', 'missing quantity' ],
           [ { sku => 'T-3', from => 'a', to => 'a', quantity => 1 }, 'to', 'from == to' ],
           [ { sku => 'T-3', from => 'a', to => 'b', quantity => 0 }, 'quantity', 'quantity 0' ],
           [ { sku => 'T-3', from => 'a', to => 'b', quantity => -2 }, 'quantity', 'quantity -2' ],
           [ { sku => 'T-3', from => 'a', to => 'b', quantity => 1000000001 }, 'quantity',
             'quantity 10^9+1' ],
           [ { sku => 'T-3', from => 'a', to => 'b', quantity => '1' }, 'quantity', 'quantity "1"' ],
           [ { sku => 'T-3', from => 'a', to => 'b', quantity => undef }, 'quantity', 'quantity null' ],
           [ { sku => 'T 3', from => 'a', to => 'b', quantity => 1 }, 'sku', 'sku with a space' ],
           [ { sku => '', from => 'a', to => 'b', quantity => 1 }, 'sku', 'empty sku' ],
           [ { sku => 'x' x 65, from => 'a', to => 'b', quantity => 1 }, 'sku', '65-char sku' ],
           [ { sku => 7, from => 'a', to => 'b', quantity => 1 }, 'sku', 'numeric sku' ],
           [ { sku => 'T-3', from => 'a/b', to => 'b', quantity => 1 }, 'from', 'from with a slash' ],
           [ { sku => 'T-3', from => 'a', to => "b\x{e9}", quantity => 1 }, 'to', 'non-ASCII to' ],
           [ { sku => 'T-3', from => 'a', to => 'b', quantity => 1, reason => 'r' x 257 },
             'reason', 'reason of 257 bytes' ],
           [ { sku => 'T-3', from => 'a', to => 'b', quantity => 1, reason => 5 },
             'reason', 'numeric reason' ],
           [ { sku => 'T-3', from => 'a', to => 'b', quantity => 1, location => 'a' },
             'location', 'unknown member' ])
{
    my ($body, $field, $what) = @$c;
    problem_ok($n->transfer($body), 400, 'invalid-request', "transfer, $what: 400 field $field",
               field => $field);
}
for my $c ([ '{"sku":"T-3","from":"a","to":"b","quantity":1.5}', 'quantity', 'quantity 1.5' ],
           [ '{"sku":"T-3","from":"a","to":"b","quantity":1,"quantity":1}', 'quantity',
             'duplicate member' ],
           [ '{"sku":"T-3","from":"a","to":"b","quantity":1}}', 'body', 'trailing data' ],
           [ '"T-3"', 'body', 'a string' ],
           [ '', 'body', 'an empty body' ])
{
    my ($body, $field, $what) = @$c;
    problem_ok($n->req(POST => '/v1/transfers', body => $body,
                       headers => { 'Content-Type' => 'application/json' }),
               400, 'invalid-request', "transfer, $what: 400 field $field", field => $field);
}
{
    my $r2 = $n->transfer({ sku => 'T-3', from => 'a', to => 'a', quantity => 0, y => 1 });
    problem_ok($r2, 400, 'invalid-request', 'several problems: 400');
    my %f = map { $_->{field} => 1 } @{ ($r2->{json} // {})->{errors} // [] };
    ok($f{quantity} && $f{y}, '... listing quantity and y') or diag InvTest::show($r2);
}
problem_ok($n->req(POST => '/v1/transfers',
                   body => encode_json({ sku => 'T-3', from => 'a', to => 'b', quantity => 1 })),
           415, 'unsupported-media-type', 'no Content-Type: 415');
problem_ok($n->req(POST => '/v1/transfers', body => '{}',
                   headers => { 'Content-Type' => 'application/x-www-form-urlencoded' }),
           415, 'unsupported-media-type', 'form Content-Type: 415');
for my $m (qw(GET PUT DELETE)) {
    problem_ok($n->req($m => '/v1/transfers'), 405, 'method-not-allowed',
               "$m /v1/transfers: 405, Allow POST", allow => ['POST']);
}
problem_ok($n->req(POST => '/v1/transfers/x', json => {}), 404, 'not-found',
           'POST /v1/transfers/x: 404');
unchanged($n, $before, 'no failed transfer changed anything');

# ==========================================================================
# concurrent transfers in both directions conserve stock
# ==========================================================================

item_ok($n->put_item('P-1', 'x', { on_hand => 30 }), 201, {}, 'setup: P-1 at x, 30');
item_ok($n->put_item('P-1', 'y', { on_hand => 30 }), 201, {}, 'setup: P-1 at y, 30');
my @res = parallel(8, sub {
    my ($i) = @_;
    my ($ok, $short, @bad) = (0, 0);
    for my $k (1 .. 15) {
        my ($f, $t) = ($i + $k) % 2 ? ('x', 'y') : ('y', 'x');
        my $q = 1 + ($i * 7 + $k) % 9;
        my $r = $n->transfer({ sku => 'P-1', from => $f, to => $t, quantity => $q });
        if ($r->{status} == 200) {
            $ok++;
            my $j = $r->{json} // {};
            push @bad, "bad sides: $r->{body}"
                unless ($j->{from}{location} // '') eq $f && ($j->{to}{location} // '') eq $t
                       && $j->{from}{on_hand} >= 0 && $j->{to}{on_hand} >= $q;
        } elsif ($r->{status} == 409 && ($r->{json} // {})->{code} eq 'insufficient-stock') {
            $short++;
        } else {
            push @bad, InvTest::show($r) if @bad < 3;
        }
    }
    return encode_json({ ok => $ok, short => $short, bad => \@bad });
});
my ($ok, $short, @bad) = (0, 0);
for my $s (@res) {
    my $j = eval { decode_json($s) };
    if (!$j) { push @bad, "child: $s"; next }
    $ok += $j->{ok};
    $short += $j->{short};
    push @bad, @{ $j->{bad} };
}
ok(!@bad, 'concurrent transfers: every answer is 200 or 409 insufficient-stock')
    or diag join "\n", @bad;
is($ok + $short, 120, "all 120 answered ($ok moved, $short short)");
{
    my $x = $n->get(ipath('P-1', 'x'))->{json} // {};
    my $y = $n->get(ipath('P-1', 'y'))->{json} // {};
    is(($x->{on_hand} // 0) + ($y->{on_hand} // 0), 60, 'stock is conserved: x + y = 60');
    my $ex = eval { item_events($n, 'P-1', 'x') } // [];
    my $ey = eval { item_events($n, 'P-1', 'y') } // [];
    my $moves = grep { $_->{type} =~ /^StockTransfer/ } @$ex;
    is($moves, $ok, 'x has one transfer event per successful transfer');
    is(($x->{version} // 0), scalar @$ex, 'x: version counts its events');
    is(($y->{version} // 0), scalar @$ey, 'y: version counts its events');
    my $sum = 0;
    for my $e (@$ex) {
        $sum = $e->{data}{on_hand} if $e->{type} eq 'StockCounted';
        $sum -= $e->{data}{quantity} if $e->{type} eq 'StockTransferredOut';
        $sum += $e->{data}{quantity} if $e->{type} eq 'StockTransferredIn';
    }
    is($sum, $x->{on_hand}, 'replaying x events gives its on_hand');
}

$n->stop;
done_testing;
