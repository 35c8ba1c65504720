#!/usr/bin/perl
# The quantity states of an item and the ledger of every write:
#
# * PUT sets safety_stock and backorder_limit (0 for a new item, kept when
#   omitted); available = on_hand - damaged - quality_control -
#   safety_stock - reserved, and low_stock follows it;
# * adjustments of a state (available, damaged, quality_control move
#   on_hand with them; incoming does not);
# * moves between states (StockMoved): among the on-hand states on_hand
#   stays, from incoming it is a receipt; what a move may not do (400) and
#   cannot do (409, nothing written);
# * backorders: reservations down to available = -backorder_limit, never
#   more; a backordered hold is committed only once its stock is on hand;
# * the invariants refused with 409 and nothing written, by PUT, adjustment
#   and move;
# * reason, reference and actor (inventory_actor) in every event's data;
#   a bad reference is 400 and writes nothing;
# * history, as_of and the log's replay (inventory-admin verify) give the
#   new fields.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use InvTest qw(item_ok problem_ok reservation_ok items_snapshot unchanged
               ipath item_events verify_ok last_seq);

my $n = InvTest->start(location_extra => 'inventory_actor $http_x_actor;');

sub move {
    my ($sku, $loc, $j, %o) = @_;
    return $n->req(POST => ipath($sku, $loc) . '/moves', json => $j, %o);
}

sub last_event {
    my ($sku, $loc) = @_;
    my $ev = item_events($n, $sku, $loc);
    return $ev->[-1] // {};
}

# --- PUT: the settings ----------------------------------------------------
my $r = $n->put_item('S-1', 'w', { on_hand => 10 });
item_ok($r, 201, { safety_stock => 0, backorder_limit => 0, damaged => 0,
                   quality_control => 0, incoming => 0, available => 10,
                   seq => 1 },
        'a new item: every state 0, seq 1');
$r = $n->put_item('S-1', 'w', { on_hand => 10, safety_stock => 3,
                                backorder_limit => 4, min_level => 8 });
item_ok($r, 200, { safety_stock => 3, backorder_limit => 4, available => 7,
                   min_level => 8, low_stock => 1 },
        'PUT safety_stock 3: available 7, below min_level 8: low');
is(last_event('S-1', 'w')->{type}, 'LowStockDetected',
   '... LowStockDetected follows the new available');
my $seq = $r->{json}{seq};
$r = $n->put_item('S-1', 'w', { on_hand => 12 });
item_ok($r, 200, { safety_stock => 3, backorder_limit => 4, min_level => 8,
                   available => 9, low_stock => 0 },
        'PUT without them: safety_stock, backorder_limit and min_level kept');
is($r->{json}{seq}, $seq + 1, 'seq is the latest event\'s');
is_deeply(last_event('S-1', 'w')->{data},
          { on_hand => 12, min_level => 8, safety_stock => 3,
            backorder_limit => 4 },
          'StockCounted carries the settings as they are after it');
for my $bad ([ { on_hand => 1, safety_stock => -1 }, 'safety_stock' ],
             [ { on_hand => 1, backorder_limit => 1.5 }, 'backorder_limit' ],
             [ { on_hand => 1, safety_stock => '3' }, 'safety_stock' ],
             [ { on_hand => 1, backorder_limit => 9007199254740992 },
               'backorder_limit' ],
             [ { on_hand => 1, damaged => 1 }, 'damaged' ]) {
    my $before = items_snapshot($n, ipath('S-1', 'w'));
    problem_ok($n->put_item('S-1', 'w', $bad->[0]), 400, 'invalid-request',
               "PUT with a bad $bad->[1]: 400", field => $bad->[1]);
    unchanged($n, $before, '... nothing written');
}

# --- adjustments of a state -------------------------------------------------
$n->put_item('A-1', 'w', { on_hand => 20 });
item_ok($n->adjust('A-1', 'w', { delta => 2, state => 'damaged' }), 200,
        { on_hand => 22, damaged => 2, available => 20 },
        'damaged +2: on_hand and damaged grow, available does not');
is(last_event('A-1', 'w')->{data}{state}, 'damaged', '... StockAdjusted '
   . 'names the state');
item_ok($n->adjust('A-1', 'w', { delta => 3, state => 'quality_control' }),
        200, { on_hand => 25, quality_control => 3, available => 20 },
        'quality_control +3');
item_ok($n->adjust('A-1', 'w', { delta => 40, state => 'incoming' }), 200,
        { on_hand => 25, incoming => 40, available => 20 },
        'incoming +40: not on hand');
item_ok($n->adjust('A-1', 'w', { delta => -1, state => 'damaged' }), 200,
        { on_hand => 24, damaged => 1, available => 20 },
        'damaged -1 (written off): on_hand drops with it');
item_ok($n->adjust('A-1', 'w', { delta => -5 }), 200,
        { on_hand => 19, available => 15 },
        'no state: available, as before');
is(last_event('A-1', 'w')->{data}{state}, 'available',
   '... and the event says available');
{
    my $before = items_snapshot($n, ipath('A-1', 'w'));
    problem_ok($n->adjust('A-1', 'w', { delta => -2, state => 'damaged' }),
               409, 'insufficient-stock', 'damaged below zero: 409');
    problem_ok($n->adjust('A-1', 'w', { delta => -41, state => 'incoming' }),
               409, 'insufficient-stock', 'incoming below zero: 409');
    problem_ok($n->adjust('A-1', 'w', { delta => -16 }), 409,
               'insufficient-stock',
               'on_hand below damaged + quality_control: 409');
    problem_ok($n->adjust('A-1', 'w', { delta => 1, state => 'lost' }), 400,
               'invalid-request', 'an unknown state: 400', field => 'state');
    problem_ok($n->adjust('A-1', 'w', { delta => 1, state => 1 }), 400,
               'invalid-request', 'a state that is not a string: 400',
               field => 'state');
    unchanged($n, $before, '... nothing written by any of them');
}
problem_ok($n->adjust('NEW-1', 'w', { delta => -1, state => 'incoming' }),
           404, 'not-found', 'a negative delta on an unknown item: 404');
item_ok($n->adjust('NEW-1', 'w', { delta => 5, state => 'incoming' }), 201,
        { on_hand => 0, incoming => 5, available => 0 },
        'incoming +5 on an unknown item creates it');

# --- moves --------------------------------------------------------------------
# A-1: on_hand 19, damaged 1, quality_control 3, incoming 40, available 15
item_ok(move('A-1', 'w', { from => 'incoming', to => 'available',
                           quantity => 30, reference => 'po:4711' }),
        200, { on_hand => 49, incoming => 10, available => 45 },
        'incoming -> available: a receipt');
is_deeply(last_event('A-1', 'w')->{data},
          { from => 'incoming', to => 'available', quantity => 30,
            reference => 'po:4711' }, 'StockMoved data');
item_ok(move('A-1', 'w', { from => 'incoming', to => 'damaged',
                           quantity => 2 }),
        200, { on_hand => 51, incoming => 8, damaged => 3, available => 45 },
        'incoming -> damaged: received damaged');
item_ok(move('A-1', 'w', { from => 'available', to => 'damaged',
                           quantity => 4 }),
        200, { on_hand => 51, damaged => 7, available => 41 },
        'available -> damaged: on_hand stays');
item_ok(move('A-1', 'w', { from => 'quality_control', to => 'available',
                           quantity => 3 }),
        200, { on_hand => 51, quality_control => 0, available => 44 },
        'quality_control -> available: passed');
item_ok(move('A-1', 'w', { from => 'damaged', to => 'quality_control',
                           quantity => 1 }),
        200, { damaged => 6, quality_control => 1, available => 44 },
        'damaged -> quality_control');
{
    my $before = items_snapshot($n, ipath('A-1', 'w'));
    problem_ok(move('A-1', 'w', { from => 'damaged', to => 'available',
                                  quantity => 7 }),
               409, 'insufficient-stock', 'more than damaged holds: 409');
    problem_ok(move('A-1', 'w', { from => 'incoming', to => 'available',
                                  quantity => 9 }),
               409, 'insufficient-stock', 'more than incoming holds: 409');
    problem_ok(move('A-1', 'w', { from => 'available', to => 'damaged',
                                  quantity => 45 }),
               409, 'insufficient-stock', 'more than available: 409');
    problem_ok(move('A-1', 'w', { from => 'available', to => 'incoming',
                                  quantity => 1 }),
               400, 'invalid-request', 'into incoming: 400', field => 'to');
    problem_ok(move('A-1', 'w', { from => 'damaged', to => 'damaged',
                                  quantity => 1 }),
               400, 'invalid-request', 'from = to: 400', field => 'to');
    problem_ok(move('A-1', 'w', { from => 'damaged', to => 'available' }),
               400, 'invalid-request', 'no quantity: 400',
               field => 'quantity');
    problem_ok(move('A-1', 'w', { from => 'damaged', to => 'available',
                                  quantity => 0 }),
               400, 'invalid-request', 'quantity 0: 400',
               field => 'quantity');
    problem_ok(move('A-1', 'w', { to => 'available', quantity => 1 }),
               400, 'invalid-request', 'no from: 400', field => 'from');
    problem_ok(move('A-1', 'w', { from => 'damaged', to => 'available',
                                  quantity => 1, state => 'x' }),
               400, 'invalid-request', 'an unknown member: 400',
               field => 'state');
    problem_ok(move('A-1', 'w', { from => 'damaged', to => 'available',
                                  quantity => 1 },
                    headers => { 'If-Match' => '"1"' }),
               412, 'version-mismatch', 'If-Match of another version: 412');
    unchanged($n, $before, '... nothing written by any of them');
}
problem_ok(move('NOPE', 'w', { from => 'damaged', to => 'available',
                               quantity => 1 }),
           404, 'not-found', 'a move on an unknown item: 404');
is($n->req(GET => ipath('A-1', 'w') . '/moves')->{status}, 405,
   'GET on moves: 405');

# --- safety stock only lowers available -------------------------------------
$n->put_item('SS-1', 'w', { on_hand => 5, safety_stock => 8 });
item_ok($n->get(ipath('SS-1', 'w')), 200, { available => -3 },
        'safety_stock above on_hand: available -3, allowed');
problem_ok($n->reserve('SS-1', 'w', { quantity => 1 }), 409,
           'insufficient-stock', 'nothing to reserve');

# --- backorders ---------------------------------------------------------------
$n->put_item('B-1', 'w', { on_hand => 2, backorder_limit => 5 });
$r = $n->reserve('B-1', 'w', { quantity => 6 });
reservation_ok($r, 201, { state => 'active' },
               'reserve 6 with 2 on hand and backorder_limit 5: 201');
my $bo = ($r->{json} // {})->{id} // 'r_0000000000000000000000';
item_ok($n->get(ipath('B-1', 'w')), 200, { reserved => 6, available => -4 },
        '... available -4');
$r = $n->reserve('B-1', 'w', { quantity => 2 });
problem_ok($r, 409, 'insufficient-stock',
           'another 2 would go past -backorder_limit: 409');
is($r->{json}{available}, -4, '... with available -4');
reservation_ok($n->reserve('B-1', 'w', { quantity => 1 }), 201,
               { state => 'active' }, 'exactly down to -5: 201');
{
    my $before = items_snapshot($n, ipath('B-1', 'w'));
    $r = $n->commit($bo);
    problem_ok($r, 409, 'insufficient-stock',
               'commit of 6 with 2 on hand: 409 (backordered)');
    is(join(',', map { "$_->{sku}:$_->{quantity}" }
                 @{ $r->{json}{lines} // [] }), 'B-1:6', '... naming it');
    unchanged($n, $before, '... nothing written');
    problem_ok($n->put_item('B-1', 'w', { on_hand => 2,
                                          backorder_limit => 4 }),
               409, 'insufficient-stock',
               'lowering backorder_limit below what is held: 409');
    problem_ok($n->adjust('B-1', 'w', { delta => -1 }), 409,
               'insufficient-stock', 'nor taking on_hand lower');
    unchanged($n, $before, '... nothing written');
}
$n->adjust('B-1', 'w', { delta => 10, state => 'incoming' });
move('B-1', 'w', { from => 'incoming', to => 'available', quantity => 10 });
reservation_ok($n->commit($bo), 200, { state => 'committed' },
               'once received: the commit ships');
item_ok($n->get(ipath('B-1', 'w')), 200,
        { on_hand => 6, reserved => 1, available => 5 }, '... and takes it');

# --- a cart naming one item twice counts the sum (cf. Medusa #16502) --------------
$n->put_item('R-1', 'w', { on_hand => 2, backorder_limit => 1 });
{
    my $before = items_snapshot($n, ipath('R-1', 'w'));
    $r = $n->cart({ lines => [ { sku => 'R-1', location => 'w', quantity => 2 },
                               { sku => 'R-1', location => 'w',
                                 quantity => 2 } ] });
    problem_ok($r, 409, 'insufficient-stock',
               'a cart of 2 + 2 of one item with 2 + 1 to give: 409');
    is(join(',', map { "$_->{sku}:$_->{quantity}" }
                 @{ $r->{json}{lines} // [] }), 'R-1:4',
       '... naming the item once, with the sum');
    unchanged($n, $before, '... nothing held');
}
$r = $n->cart({ lines => [ { sku => 'R-1', location => 'w', quantity => 1 },
                           { sku => 'R-1', location => 'w', quantity => 2 } ] });
reservation_ok($r, 201, { state => 'active' }, '1 + 2 of it: 201');
my $rr = ($r->{json} // {})->{id} // 'r_0000000000000000000000';
item_ok($n->get(ipath('R-1', 'w')), 200, { reserved => 3, available => -1 },
        '... 3 held, one of them backordered');
problem_ok($n->commit($rr), 409, 'insufficient-stock',
           'its commit needs the sum on hand: 409');
$n->adjust('R-1', 'w', { delta => 1 });
reservation_ok($n->commit($rr), 200, { state => 'committed' },
               'with 3 on hand it ships');

# --- damaged stock is not sold, nor committed -----------------------------------
$n->put_item('D-1', 'w', { on_hand => 3 });
reservation_ok($n->reserve('D-1', 'w', { quantity => 3 }), 201,
               { state => 'active' }, 'D-1: all 3 reserved');
problem_ok(move('D-1', 'w', { from => 'available', to => 'damaged',
                              quantity => 1 }),
           409, 'insufficient-stock', 'reserved stock cannot be moved away');
item_ok($n->adjust('D-1', 'w', { delta => 1, state => 'damaged' }), 200,
        { on_hand => 4, damaged => 1, reserved => 3, available => 0 },
        'a damaged unit found: on_hand 4, damaged 1');
problem_ok($n->put_item('D-1', 'w', { on_hand => 3 }), 409,
           'insufficient-stock',
           'a count leaving reserved above the sellable units: 409');

# --- the ledger: reason, reference, actor ------------------------------------------
$n->put_item('L-1', 'w', { on_hand => 10, reason => 'stocktake',
                           reference => 'count:7' },
             headers => { 'X-Actor' => 'alice' });
is_deeply(last_event('L-1', 'w')->{data},
          { on_hand => 10, min_level => 0, safety_stock => 0,
            backorder_limit => 0, reason => 'stocktake',
            reference => 'count:7', actor => 'alice' },
          'StockCounted: reason, reference, actor');
$r = $n->reserve('L-1', 'w', { quantity => 2, reference => 'order-1',
                               reason => 'web' },
                 headers => { 'X-Actor' => 'shop' });
my $lr = ($r->{json} // {})->{id} // 'r_0000000000000000000000';
is_deeply(last_event('L-1', 'w')->{data},
          { reservation_id => $lr, quantity => 2, reason => 'web',
            reference => 'order-1', actor => 'shop' },
          'StockReserved: the reservation\'s reference');
$n->commit($lr, json => { reason => 'shipped' });
is_deeply(last_event('L-1', 'w')->{data},
          { reservation_id => $lr, quantity => 2, reason => 'shipped',
            reference => 'order-1' },
          'ReservationCommitted: its reason; the reservation\'s reference; '
          . 'no actor when the header is absent');
$n->transfer({ sku => 'L-1', from => 'w', to => 'v', quantity => 1,
               reference => 'to:55' }, headers => { 'X-Actor' => 'bob' });
is(last_event('L-1', 'v')->{data}{reference}, 'to:55',
   'StockTransferredIn carries the reference');
is(last_event('L-1', 'w')->{data}{actor}, 'bob', '... Out the actor');
$n->adjust('L-1', 'v', { delta => 1 }, headers => { 'X-Actor' => '' });
ok(!exists last_event('L-1', 'v')->{data}{actor},
   'an empty actor records none');
$n->adjust('L-1', 'v', { delta => 1 },
           headers => { 'X-Actor' => 'x' x 300 });
is(length(last_event('L-1', 'v')->{data}{actor} // ''), 255,
   'an actor is cut at 255 bytes');

# the actor is request bytes: cut at a character's start, and refused when
# not UTF-8 (no event's JSON could carry it); HTTP::Tiny sends ASCII only
sub adjust_as {
    my ($actor) = @_;
    return $n->raw_req(POST => ipath('L-1', 'v') . '/adjustments',
                       headers => [ 'X-Actor' => $actor,
                                    'Content-Type' => 'application/json' ],
                       body => '{"delta":1}');
}
for my $c ([ 'x' x 254 . "\xc3\xa9", 254, 'a 2-byte character at 255' ],
           [ 'x' x 253 . "\xe2\x82\xac", 253, 'a 3-byte one at 254' ],
           [ "caf\xc3\xa9", 5, 'UTF-8 kept whole' ])
{
    my ($actor, $len, $what) = @$c;
    is(adjust_as($actor)->{status}, 200, "an actor with $what: 200");
    my $got = last_event('L-1', 'v')->{data}{actor} // '';
    utf8::encode($got);
    is($got, substr($actor, 0, $len), "... recorded as its first $len bytes");
}
is(adjust_as("ok\x01\x1f")->{status}, 200, 'an actor with control bytes');
is(last_event('L-1', 'v')->{data}{actor}, "ok\x01\x1f",
   '... escaped in the JSON, read back as they were');
for my $bad ("\xff\xfe", "caf\xe9", "x\xc3", "\xed\xa0\x80", "\xc0\xaf") {
    my $before = items_snapshot($n, ipath('L-1', 'v'));
    my $seq = last_seq($n);
    problem_ok(adjust_as($bad), 400, 'invalid-request',
               'an actor that is not UTF-8: 400', field => 'actor');
    unchanged($n, $before, '... nothing written');
    is(last_seq($n), $seq, '... no event appended');
}
my $feed = $n->req(GET => '/v1/events?after=0&limit=1000');
ok($feed->{status} == 200 && ref $feed->{json} eq 'HASH',
   'the feed is JSON that decodes');
for my $bad ('', 'two words', 'x' x 256, "caf\x{e9}", 5) {
    my $before = items_snapshot($n, ipath('L-1', 'v'));
    problem_ok($n->adjust('L-1', 'v', { delta => 1, reference => $bad }),
               400, 'invalid-request', 'a bad reference: 400',
               field => 'reference');
    unchanged($n, $before, '... nothing written');
}

# --- history and as_of give the new fields -------------------------------------
{
    my $ev = item_events($n, 'A-1', 'w');
    my $at = $ev->[5]{at};
    my $then = $n->get(ipath('A-1', 'w') . "?as_of=$at");
    item_ok($then, 200, { version => $ev->[5]{version},
                          seq => $ev->[5]{seq} },
            'as_of: the item at that event, with its seq');
    ok(exists $then->{json}{incoming}, '... and the new fields');
}

$n->stop;
verify_ok($n->datadir, undef, 'the log replays into every projection');

done_testing;
