# Cart reservations (POST /v1/reservations): three items reserved ->
# committed and reserved -> released with their events end to end, lines
# naming one item adding up, 409s naming every short line, every error path
# changing nothing, 100 lines at the most.
use strict;
use warnings;
use Test::More;
use InvTest qw(item_ok problem_ok json_type reservation_ok item_events
               items_snapshot encode_json TS_RE ipath counts_ok unchanged);

my $n = InvTest->start;

# 409 insufficient-stock of a cart: "lines" names every short item with the
# summed demand and what is available; no top-level "available".
sub cart_short_ok {
    my ($r, $want, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my @p;
    push @p, "status is $r->{status}, expected 409" unless $r->{status} == 409;
    push @p, "content-type is '$r->{content_type}'"
        unless $r->{content_type} =~ m{^application/problem\+json\b}i;
    my $j = $r->{json};
    if (ref $j ne 'HASH') {
        push @p, 'body is not a JSON object';
    } else {
        for my $m (qw(type title detail code)) {
            my $t = json_type($j->{$m});
            push @p, "'$m' is $t, expected string" if $t ne 'string';
        }
        push @p, "code is '" . ($j->{code} // 'null') . "'"
            unless ($j->{code} // '') eq 'insufficient-stock';
        push @p, "status member is not 409"
            unless json_type($j->{status}) eq 'number' && $j->{status} == 409;
        push @p, 'a cart 409 has a top-level available' if exists $j->{available};
        if (ref $j->{lines} ne 'ARRAY') {
            push @p, "'lines' is not an array";
        } else {
            my @got;
            for my $l (@{ $j->{lines} }) {
                if (ref $l ne 'HASH') { push @p, 'lines[] item not an object'; next }
                for my $k (qw(quantity available)) {
                    my $t = json_type($l->{$k});
                    push @p, "lines[].$k is $t, expected number" if $t ne 'number';
                }
                push @got, join '/', map { $_ // 'null' }
                    @{$l}{qw(sku location quantity available)};
            }
            my $g = join ' ', sort @got;
            my $w = join ' ', sort map { join '/', @$_ } @$want;
            push @p, "short lines are ($g), expected ($w)" if $g ne $w;
        }
    }
    ok(!@p, $name) or diag join("\n", map { "  - $_" } @p) . "\n" . InvTest::show($r);
}

my ($r, $before);

# ==========================================================================
# cart: three items, reserve -> commit and reserve -> release, events
# ==========================================================================

item_ok($n->put_item('C-1', 'w1', { on_hand => 10 }), 201, { version => 1 }, 'setup: C-1/w1 10');
item_ok($n->put_item('C-2', 'w1', { on_hand => 5, min_level => 2 }), 201, { version => 1 },
        'setup: C-2/w1 5, min_level 2');
item_ok($n->put_item('C-3', 'w2', { on_hand => 8 }), 201, { version => 1 }, 'setup: C-3/w2 8');
my @CART = ([ 'C-1', 'w1' ], [ 'C-2', 'w1' ], [ 'C-3', 'w2' ]);

$r = $n->cart({ lines => [ { sku => 'C-1', location => 'w1', quantity => 4 },
                       { sku => 'C-2', location => 'w1', quantity => 2 },
                       { sku => 'C-3', location => 'w2', quantity => 3 } ],
            ttl_seconds => 300, reference => 'cart-1' });
reservation_ok($r, 201, { state => 'active', reference => 'cart-1', ttl => 300,
                          lines => [[ 'C-1', 'w1', 4 ], [ 'C-2', 'w1', 2 ], [ 'C-3', 'w2', 3 ]] },
               'cart of 3 lines: 201, lines in order');
my $cart1 = $r->{json} // {};
my $cid1 = $cart1->{id} // 'r_0000000000000000000000';
counts_ok($n, 'C-1', 'w1', 10, 4, 'cart reserved: C-1 10/4/6', version => 2);
counts_ok($n, 'C-2', 'w1', 5, 2, 'cart reserved: C-2 5/2/3, not low (3 >= 2)',
          version => 2, low_stock => 0);
counts_ok($n, 'C-3', 'w2', 8, 3, 'cart reserved: C-3 8/3/5', version => 2);
is_deeply($n->get("/v1/reservations/$cid1")->{json}, $cart1, 'GET cart reservation');

$r = $n->commit($cid1);
reservation_ok($r, 200, { id => $cid1, state => 'committed',
                          lines => [[ 'C-1', 'w1', 4 ], [ 'C-2', 'w1', 2 ], [ 'C-3', 'w2', 3 ]] },
               'commit the cart: 200 committed');
my $cart1c = $r->{json} // {};
counts_ok($n, 'C-1', 'w1', 6, 0, 'after commit: C-1 6/0/6', version => 3);
counts_ok($n, 'C-2', 'w1', 3, 0, 'after commit: C-2 3/0/3', version => 3);
counts_ok($n, 'C-3', 'w2', 5, 0, 'after commit: C-3 5/0/5', version => 3);

# the events of C-1 end to end: counted, reserved, committed
{
    my $ev = eval { item_events($n, 'C-1', 'w1') } // [];
    diag $@ if $@;
    my @types = map { $_->{type} // '?' } @$ev;
    is("@types", 'StockCounted StockReserved ReservationCommitted',
       'C-1 events: StockCounted, StockReserved, ReservationCommitted');
    my @p;
    for my $i (0 .. $#$ev) {
        my $e = $ev->[$i];
        push @p, "event $i: version $e->{version}, expected " . ($i + 1)
            unless ($e->{version} // 0) == $i + 1;
        push @p, "event $i: sku/location wrong"
            unless ($e->{sku} // '') eq 'C-1' && ($e->{location} // '') eq 'w1';
        push @p, "event $i: at is not a timestamp" unless ($e->{at} // '') =~ TS_RE;
        push @p, "event $i: seq is not a number" unless json_type($e->{seq}) eq 'number';
        push @p, "event $i: seq not increasing"
            if $i && !($e->{seq} > $ev->[$i - 1]{seq});
        my @x = grep { !/^(?:seq|type|sku|location|version|at|data)\z/ } sort keys %$e;
        push @p, "event $i: unexpected members @x" if @x;
    }
    my ($res_ev, $com_ev) = @{$ev}[1, 2];
    push @p, 'StockReserved data is not {reservation_id, quantity 4}'
        unless ref $res_ev eq 'HASH' && ($res_ev->{data}{reservation_id} // '') eq $cid1
               && ($res_ev->{data}{quantity} // 0) == 4;
    push @p, 'ReservationCommitted data is not {reservation_id, quantity 4}'
        unless ref $com_ev eq 'HASH' && ($com_ev->{data}{reservation_id} // '') eq $cid1
               && ($com_ev->{data}{quantity} // 0) == 4;
    push @p, 'StockReserved at != created_at'
        unless ref $res_ev eq 'HASH' && ($res_ev->{at} // '') eq ($cart1->{created_at} // '-');
    push @p, 'ReservationCommitted at != ended_at'
        unless ref $com_ev eq 'HASH' && ($com_ev->{at} // '') eq ($cart1c->{ended_at} // '-');
    ok(!@p, 'C-1 events: versions 1..3, increasing seq, data and times match')
        or diag join("\n", @p) . "\n" . explain $ev;

    # the three StockReserved events of one cart are one transaction
    my @all = map { my $e = eval { item_events($n, @$_) } // []; @$e } @CART;
    my @rs = sort { $a <=> $b } map { $_->{seq} } grep { $_->{type} eq 'StockReserved' } @all;
    my @cs = sort { $a <=> $b } map { $_->{seq} } grep { $_->{type} eq 'ReservationCommitted' } @all;
    ok(@rs == 3 && $rs[2] - $rs[0] == 2, 'one StockReserved per line, consecutive seqs')
        or diag "@rs";
    ok(@cs == 3 && $cs[2] - $cs[0] == 2, 'one ReservationCommitted per line, consecutive seqs')
        or diag "@cs";
}

# reserve -> release over the same three items
$r = $n->cart({ lines => [ { sku => 'C-3', location => 'w2', quantity => 5 },
                       { sku => 'C-1', location => 'w1', quantity => 1 },
                       { sku => 'C-2', location => 'w1', quantity => 2 } ] });
reservation_ok($r, 201, { state => 'active', reference => undef, ttl => 900 },
               'second cart: 201, default ttl, no reference');
my $cid2 = ($r->{json} // {})->{id} // 'r_0000000000000000000000';
counts_ok($n, 'C-1', 'w1', 6, 1, 'second cart: C-1 6/1/5');
counts_ok($n, 'C-2', 'w1', 3, 2, 'second cart: C-2 3/2/1, low stock', low_stock => 1,
          version => 5);
counts_ok($n, 'C-3', 'w2', 5, 5, 'second cart: C-3 5/5/0');
{
    my $ev = eval { item_events($n, 'C-2', 'w1', 3) } // [];
    my @types = map { $_->{type} // '?' } @$ev;
    is("@types", 'StockReserved LowStockDetected',
       'reserving below min_level: StockReserved then LowStockDetected');
    is_deeply($ev->[1]{data} // {}, { available => 1, min_level => 2 },
              'LowStockDetected data: available 1, min_level 2');
}

$r = $n->release($cid2);
reservation_ok($r, 200, { id => $cid2, state => 'released' }, 'release the cart: 200');
counts_ok($n, 'C-1', 'w1', 6, 0, 'after release: C-1 6/0/6');
counts_ok($n, 'C-2', 'w1', 3, 0, 'after release: C-2 3/0/3, not low', low_stock => 0,
          version => 6);
counts_ok($n, 'C-3', 'w2', 5, 0, 'after release: C-3 5/0/5');
{
    my $ev = eval { item_events($n, 'C-3', 'w2', 3) } // [];
    my @d = map { "$_->{type}:" . ($_->{data}{reservation_id} // '') . ':'
                  . ($_->{data}{quantity} // '') } @$ev;
    is("@d", "StockReserved:$cid2:5 ReservationReleased:$cid2:5",
       'C-3 events: StockReserved and ReservationReleased with id and quantity');
}

# --- lines naming one item add up ------------------------------------------------
$r = $n->cart({ lines => [ { sku => 'C-1', location => 'w1', quantity => 2 },
                       { sku => 'C-1', location => 'w1', quantity => 3 } ] });
reservation_ok($r, 201, { lines => [[ 'C-1', 'w1', 2 ], [ 'C-1', 'w1', 3 ]] },
               'two lines on one item: 201');
my $cid3 = ($r->{json} // {})->{id} // 'r_0000000000000000000000';
counts_ok($n, 'C-1', 'w1', 6, 5, '... reserved adds up to 5');
$before = items_snapshot($n, map { ipath(@$_) } @CART);
cart_short_ok($n->cart({ lines => [ { sku => 'C-1', location => 'w1', quantity => 1 },
                                { sku => 'C-1', location => 'w1', quantity => 1 } ] }),
              [[ 'C-1', 'w1', 2, 1 ]],
              'two lines of 1 on an item with 1 available: 409 naming the summed demand 2');
$r = $n->commit($cid3);
reservation_ok($r, 200, { state => 'committed' }, 'commit the two-line cart');
counts_ok($n, 'C-1', 'w1', 1, 0, '... on_hand drops by 5');

# --- cart failures ------------------------------------------------------------------
$before = items_snapshot($n, map { ipath(@$_) } @CART, [ 'C-4', 'w1' ]);
cart_short_ok($n->cart({ lines => [ { sku => 'C-1', location => 'w1', quantity => 2 },
                                { sku => 'C-2', location => 'w1', quantity => 1 },
                                { sku => 'C-3', location => 'w2', quantity => 6 } ] }),
              [[ 'C-1', 'w1', 2, 1 ], [ 'C-3', 'w2', 6, 5 ]],
              'cart with two short items: 409 naming both, not the one that fits');
cart_short_ok($n->cart({ lines => [ { sku => 'C-3', location => 'w2', quantity => 1000000000 } ] }),
              [[ 'C-3', 'w2', 1000000000, 5 ]], 'cart line of 10^9: 409');
problem_ok($n->cart({ lines => [ { sku => 'C-1', location => 'w1', quantity => 1 },
                             { sku => 'C-4', location => 'w1', quantity => 1 } ] }),
           404, 'not-found', 'cart with an unknown item: 404');
problem_ok($n->cart({ lines => [ { sku => 'C-1', location => 'w9', quantity => 1 } ] }),
           404, 'not-found', 'cart with an unknown location: 404');

my @hundred1 = map { { sku => 'C-2', location => 'w1', quantity => 1 } } 1 .. 101;
for my $c ([ {}, 'lines', 'no lines' ],
           [ { lines => [] }, 'lines', '0 lines' ],
           [ { lines => \@hundred1 }, 'lines', '101 lines' ],
           [ { lines => {} }, 'lines', 'lines an object' ],
           [ { lines => 'C-1' }, 'lines', 'lines a string' ],
           [ { lines => [ 1 ] }, 'lines[0]', 'a line that is a number' ],
           [ { lines => [ { location => 'w1', quantity => 1 } ] }, 'lines[0].sku', 'line without sku' ],
           [ { lines => [ { sku => 'C-1', location => 'w1', quantity => 1 },
                          { sku => 'C-1', location => 'a b', quantity => 1 } ] },
             'lines[1].location', 'bad location in line 1' ],
           [ { lines => [ { sku => '', location => 'w1', quantity => 1 } ] }, 'lines[0].sku', 'empty sku' ],
           [ { lines => [ { sku => 'x' x 65, location => 'w1', quantity => 1 } ] }, 'lines[0].sku', '65-char sku' ],
           [ { lines => [ { sku => 'C-1', location => 'w1', quantity => 1 },
                          { sku => 'C-1', location => 'w1', quantity => 1 },
                          { sku => 'C-2', location => 'w1', quantity => 0 } ] },
             'lines[2].quantity', 'quantity 0 in line 2' ],
           [ { lines => [ { sku => 'C-1', location => 'w1', quantity => '1' } ] }, 'lines[0].quantity', 'quantity "1"' ],
           [ { lines => [ { sku => 'C-1', location => 'w1' } ] }, 'lines[0].quantity', 'quantity missing' ],
           [ { lines => [ { sku => 'C-1', location => 'w1', quantity => 1 },
                          { sku => 'C-1', location => 'w1', quantity => 1, x => 1 } ] },
             'lines[1].x', 'unknown member in line 1' ],
           [ { lines => [ { sku => 'C-1', location => 'w1', quantity => 1 } ], ttl_seconds => 0 },
             'ttl_seconds', 'ttl_seconds 0' ],
           [ { lines => [ { sku => 'C-1', location => 'w1', quantity => 1 } ], ttl_seconds => 86401 },
             'ttl_seconds', 'ttl_seconds 86401' ],
           [ { lines => [ { sku => 'C-1', location => 'w1', quantity => 1 } ], reference => 'r' x 257 },
             'reference', 'reference of 257 bytes' ],
           [ { lines => [ { sku => 'C-1', location => 'w1', quantity => 1 } ], reference => JSON::PP::false },
             'reference', 'reference false' ],
           [ { lines => [ { sku => 'C-1', location => 'w1', quantity => 1 } ], quantity => 1 },
             'quantity', 'unknown top-level member' ])
{
    my ($body, $field, $what) = @$c;
    problem_ok($n->cart($body), 400, 'invalid-request', "cart, $what: 400 field $field",
               field => $field);
}
problem_ok($n->req(POST => '/v1/reservations', body => '{"lines":[{"sku":"C-1","location":"w1","quantity":2.0}]}',
                   headers => { 'Content-Type' => 'application/json' }),
           400, 'invalid-request', 'cart quantity 2.0: 400', field => 'lines[0].quantity');
problem_ok($n->req(POST => '/v1/reservations', body => encode_json({ lines => [] })),
           415, 'unsupported-media-type', 'cart without Content-Type: 415');
unchanged($n, $before, 'no failed cart changed anything');

# --- 100 lines is the maximum -------------------------------------------------------
item_ok($n->put_item('C-100', 'w1', { on_hand => 1000 }), 201, {}, 'setup: C-100/w1 1000');
$r = $n->cart({ lines => [ map { { sku => 'C-100', location => 'w1', quantity => 1 } } 1 .. 100 ] });
reservation_ok($r, 201, { state => 'active' }, 'a cart of 100 lines: 201');
is(scalar @{ ($r->{json} // {})->{lines} // [] }, 100, '... with 100 lines');
counts_ok($n, 'C-100', 'w1', 1000, 100, '... reserving 100, one event per line',
          version => 101);
$r = $n->release(($r->{json} // {})->{id} // 'r_0000000000000000000000');
reservation_ok($r, 200, { state => 'released' }, 'release the 100 lines');
counts_ok($n, 'C-100', 'w1', 1000, 0, '... all returned', version => 201);

$n->stop;
done_testing;
