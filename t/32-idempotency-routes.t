# Idempotency-Key on every route that writes (PUT, adjustments, item-route
# and cart reservations, commit, release, transfers): replays return the
# first answer exactly and change nothing; a key reused with another
# request is 422; domain failures (404, 409, 412) are stored and replayed;
# validation failures are not stored, so a corrected retry runs.
use strict;
use warnings;
use Test::More;
use InvTest qw(item_ok problem_ok reservation_ok item_events items_snapshot
               encode_json ipath idem_key replayed unchanged replay_ok
               fresh_ok);

my $n = InvTest->start(workers => 2);

sub events { my $e = eval { item_events($n, @_) }; diag $@ if $@; @{ $e // [] } }

# ==========================================================================
# PUT
# ==========================================================================

my $r1 = $n->put_item('I-1', 'a', { on_hand => 10 }, headers => { idem_key('put-1') });
item_ok($r1, 201, { on_hand => 10, version => 1 }, 'PUT with a key: 201 created');
fresh_ok($r1, '... not marked replayed');
my $before = items_snapshot($n, ipath('I-1', 'a'));
my $r2 = $n->put_item('I-1', 'a', { on_hand => 10 }, headers => { idem_key('put-1') });
item_ok($r2, 201, { on_hand => 10, version => 1 },
        'the repeat: 201 again (though the item exists now), same ETag');
replay_ok($r1, $r2, '... the first answer exactly, Idempotent-Replayed: true');
$r2 = $n->req(PUT => ipath('I-1', 'a'), body => encode_json({ on_hand => 10 }),
              headers => { 'Content-Type' => 'application/json', 'idempotency-key' => 'put-1' });
replay_ok($r1, $r2, 'header name in lower case: replayed');
unchanged($n, $before, 'repeats changed nothing');

my $r3 = $n->put_item('I-1', 'a', { on_hand => 10 }, headers => { idem_key('put-2') });
item_ok($r3, 200, { version => 2 }, 'the same PUT with another key runs again: 200, version 2');
fresh_ok($r3, '... not marked replayed');

$before = items_snapshot($n, ipath('I-1', 'a'), ipath('I-1', 'b'));
problem_ok($n->put_item('I-1', 'a', { on_hand => 11 }, headers => { idem_key('put-1') }), 422,
           'idempotency-key-reused', 'same key, different body: 422');
problem_ok($n->put_item('I-1', 'b', { on_hand => 10 }, headers => { idem_key('put-1') }), 422,
           'idempotency-key-reused', 'same key and body, different path: 422');
problem_ok($n->adjust('I-1', 'a', { delta => 1 }, headers => { idem_key('put-1') }), 422,
           'idempotency-key-reused', 'same key on another route (adjustments): 422');
problem_ok($n->req(POST => '/v1/reservations/r_AAAAAAAAAAAAAAAAAAAAAA/release',
                   headers => { idem_key('put-1') }),
           422, 'idempotency-key-reused', 'same key on release of an unknown id: 422');
unchanged($n, $before, '422s changed nothing (b not created)');
replay_ok($r1, $n->put_item('I-1', 'a', { on_hand => 10 }, headers => { idem_key('put-1') }),
          'after the 422s the original still replays');

# ==========================================================================
# adjustments
# ==========================================================================

$r1 = $n->adjust('I-1', 'a', { delta => 5, reason => 'delivery' }, headers => { idem_key('adj-1') });
item_ok($r1, 200, { on_hand => 15, version => 3 }, 'adjustment +5 with a key: 200');
$before = items_snapshot($n, ipath('I-1', 'a'));
for my $i (1 .. 3) {
    $r2 = $n->adjust('I-1', 'a', { delta => 5, reason => 'delivery' }, headers => { idem_key('adj-1') });
    replay_ok($r1, $r2, "adjustment repeat $i: replayed");
}
unchanged($n, $before, 'on_hand 15: applied once');

$r1 = $n->adjust('I-2', 'a', { delta => 7 }, headers => { idem_key('adj-create') });
item_ok($r1, 201, { on_hand => 7, version => 1 }, 'adjustment creating an item: 201');
$r2 = $n->adjust('I-2', 'a', { delta => 7 }, headers => { idem_key('adj-create') });
replay_ok($r1, $r2, '... the repeat is the same 201');
item_ok($n->get(ipath('I-2', 'a')), 200, { on_hand => 7, version => 1 }, '... applied once');

# ==========================================================================
# reservations: item route and cart; commit and release
# ==========================================================================

item_ok($n->put_item('I-3', 'a', { on_hand => 10 }), 201, {}, 'setup: I-3 at a, 10');
item_ok($n->put_item('I-3', 'b', { on_hand => 10 }), 201, {}, 'setup: I-3 at b, 10');

$r1 = $n->reserve('I-3', 'a', { quantity => 4, reference => 'o-1' }, headers => { idem_key('res-1') });
reservation_ok($r1, 201, { state => 'active' }, 'reservation with a key: 201');
my $rid = ($r1->{json} // {})->{id} // 'r_0000000000000000000000';
$before = items_snapshot($n, ipath('I-3', 'a'));
$r2 = $n->reserve('I-3', 'a', { quantity => 4, reference => 'o-1' }, headers => { idem_key('res-1') });
replay_ok($r1, $r2, 'the repeat: the same 201 body');
is(($r2->{json} // {})->{id}, $rid, '... with the same id');
unchanged($n, $before, '... and reserved counts once (4)');
item_ok($n->get(ipath('I-3', 'a')), 200, { reserved => 4, version => 2 }, 'reserved 4, one event');
is(scalar(grep { $_->{type} eq 'StockReserved' } events('I-3', 'a')),
   1, 'one StockReserved event');

$r1 = $n->cart({ lines => [ { sku => 'I-3', location => 'a', quantity => 1 },
                        { sku => 'I-3', location => 'b', quantity => 2 } ] },
           headers => { idem_key('cart-1') });
reservation_ok($r1, 201, {}, 'cart with a key: 201');
my $cid = ($r1->{json} // {})->{id} // 'r_0000000000000000000000';
$before = items_snapshot($n, ipath('I-3', 'a'), ipath('I-3', 'b'));
$r2 = $n->cart({ lines => [ { sku => 'I-3', location => 'a', quantity => 1 },
                        { sku => 'I-3', location => 'b', quantity => 2 } ] },
           headers => { idem_key('cart-1') });
replay_ok($r1, $r2, 'cart repeat: replayed');
is(($r2->{json} // {})->{id}, $cid, '... the same id');
unchanged($n, $before, '... reserved counts once per item');

# commit with a key, then the repeat is the 200 again, not a 409
$r1 = $n->req(POST => "/v1/reservations/$rid/commit", headers => { idem_key('commit-1') });
reservation_ok($r1, 200, { id => $rid, state => 'committed' }, 'commit with a key: 200');
$before = items_snapshot($n, ipath('I-3', 'a'));
$r2 = $n->req(POST => "/v1/reservations/$rid/commit", headers => { idem_key('commit-1') });
replay_ok($r1, $r2, 'commit repeat: the 200 replayed, not a 409');
unchanged($n, $before, '... committed once');
item_ok($n->get(ipath('I-3', 'a')), 200, { on_hand => 6, reserved => 1 },
        'on_hand 6 (one commit of 4), reserved 1 (the cart)');
problem_ok($n->req(POST => "/v1/reservations/$rid/commit", json => {}, headers => { idem_key('commit-1') }),
           422, 'idempotency-key-reused', 'the same commit with {} instead of no body: 422');

# the replay of the creation is the original answer even after the commit
$r2 = $n->reserve('I-3', 'a', { quantity => 4, reference => 'o-1' }, headers => { idem_key('res-1') });
is($r2->{status}, 201, 'creation repeat after the commit: still the first 201');
is(($r2->{json} // {})->{state}, 'active', '... with the state as it was (active)');
ok(replayed($r2), '... marked replayed') or diag InvTest::show($r2);

$r1 = $n->req(POST => "/v1/reservations/$cid/release", json => {}, headers => { idem_key('release-1') });
reservation_ok($r1, 200, { id => $cid, state => 'released' }, 'release with a key: 200');
$before = items_snapshot($n, ipath('I-3', 'a'), ipath('I-3', 'b'));
$r2 = $n->req(POST => "/v1/reservations/$cid/release", json => {}, headers => { idem_key('release-1') });
replay_ok($r1, $r2, 'release repeat: replayed');
unchanged($n, $before, '... released once');
is(scalar(events('I-3', 'b')), 3,
   'I-3 at b: counted, reserved, released; nothing more');

# ==========================================================================
# transfers
# ==========================================================================

$r1 = $n->transfer({ sku => 'I-3', from => 'b', to => 'c', quantity => 3 }, headers => { idem_key('xfer-1') });
is($r1->{status}, 200, 'transfer with a key: 200') or diag InvTest::show($r1);
$before = items_snapshot($n, ipath('I-3', 'b'), ipath('I-3', 'c'));
$r2 = $n->transfer({ sku => 'I-3', from => 'b', to => 'c', quantity => 3 }, headers => { idem_key('xfer-1') });
replay_ok($r1, $r2, 'transfer repeat: replayed');
unchanged($n, $before, '... moved once');
item_ok($n->get(ipath('I-3', 'c')), 200, { on_hand => 3, version => 1 }, 'c holds 3');

# ==========================================================================
# domain failures are stored and replayed
# ==========================================================================

# 404, then the item appears: the repeat is still the 404
$r1 = $n->reserve('I-4', 'a', { quantity => 1 }, headers => { idem_key('fail-404') });
problem_ok($r1, 404, 'not-found', 'reservation on a missing item with a key: 404');
item_ok($n->put_item('I-4', 'a', { on_hand => 5 }), 201, {}, 'now create I-4');
$before = items_snapshot($n, ipath('I-4', 'a'));
$r2 = $n->reserve('I-4', 'a', { quantity => 1 }, headers => { idem_key('fail-404') });
replay_ok($r1, $r2, 'the repeat replays the 404');
unchanged($n, $before, '... and reserves nothing');

# 409, then stock arrives: still the 409
$r1 = $n->reserve('I-4', 'a', { quantity => 8 }, headers => { idem_key('fail-409') });
problem_ok($r1, 409, 'insufficient-stock', 'reserving too much with a key: 409', available => 5);
item_ok($n->adjust('I-4', 'a', { delta => 10 }), 200, { on_hand => 15 }, 'now add 10');
$before = items_snapshot($n, ipath('I-4', 'a'));
$r2 = $n->reserve('I-4', 'a', { quantity => 8 }, headers => { idem_key('fail-409') });
replay_ok($r1, $r2, 'the repeat replays the 409 (available 5 as then)');
unchanged($n, $before, '... and reserves nothing');

# 412
my $v = $n->get(ipath('I-4', 'a'))->{json}{version};
$r1 = $n->put_item('I-4', 'a', { on_hand => 1 }, headers => { idem_key('fail-412'), 'If-Match' => '"1"' });
problem_ok($r1, 412, 'version-mismatch', 'PUT with a stale If-Match and a key: 412');
$before = items_snapshot($n, ipath('I-4', 'a'));
$r2 = $n->put_item('I-4', 'a', { on_hand => 1 }, headers => { idem_key('fail-412'), 'If-Match' => '"1"' });
replay_ok($r1, $r2, 'the repeat replays the 412');
unchanged($n, $before, '... and changes nothing');

# 409 reservation-not-active on a commit
$r1 = $n->req(POST => "/v1/reservations/$cid/commit", headers => { idem_key('fail-ended') });
problem_ok($r1, 409, 'reservation-not-active', 'commit of a released reservation with a key: 409');
$r2 = $n->req(POST => "/v1/reservations/$cid/commit", headers => { idem_key('fail-ended') });
replay_ok($r1, $r2, 'the repeat replays the 409');

# 404 on a transfer
$r1 = $n->transfer({ sku => 'I-5', from => 'a', to => 'b', quantity => 1 }, headers => { idem_key('fail-x404') });
problem_ok($r1, 404, 'not-found', 'transfer from a missing item with a key: 404');
item_ok($n->put_item('I-5', 'a', { on_hand => 2 }), 201, {}, 'now create I-5 at a');
$r2 = $n->transfer({ sku => 'I-5', from => 'a', to => 'b', quantity => 1 }, headers => { idem_key('fail-x404') });
replay_ok($r1, $r2, 'the transfer repeat replays the 404');
problem_ok($n->get(ipath('I-5', 'b')), 404, 'not-found', '... and moved nothing');

# ==========================================================================
# validation failures are not stored: a corrected retry runs
# ==========================================================================

$before = items_snapshot($n, ipath('I-6', 'a'));
problem_ok($n->put_item('I-6', 'a', { on_hand => -1 }, headers => { idem_key('val-1') }), 400,
           'invalid-request', 'PUT with a bad body and a key: 400', field => 'on_hand');
problem_ok($n->put_item('I-6', 'a', { on_hand => 1, x => 1 }, headers => { idem_key('val-1') }), 400,
           'invalid-request', 'another bad body with the same key: 400 (not 422)', field => 'x');
problem_ok($n->req(PUT => ipath('I-6', 'a'), body => '{"on_hand":3}',
                   headers => { idem_key('val-1'), 'Content-Type' => 'text/plain' }),
           415, 'unsupported-media-type', 'a 415 with the same key');
problem_ok($n->put_item('I-6', 'a', { on_hand => 3 }, headers => { idem_key('val-1'), 'If-Match' => 'bad' }),
           400, 'invalid-request', 'a bad If-Match with the same key: 400', field => 'If-Match');
unchanged($n, $before, 'nothing created');
$r1 = $n->put_item('I-6', 'a', { on_hand => 3 }, headers => { idem_key('val-1') });
item_ok($r1, 201, { on_hand => 3, version => 1 }, 'the corrected request with the key runs: 201');
fresh_ok($r1, '... not a replay');
$r2 = $n->put_item('I-6', 'a', { on_hand => 3 }, headers => { idem_key('val-1') });
replay_ok($r1, $r2, '... and from now on it replays');

$r1 = $n->reserve('I-6', 'a', { quantity => 0 }, headers => { idem_key('val-2') });
problem_ok($r1, 400, 'invalid-request', 'reservation with quantity 0 and a key: 400', field => 'quantity');
$r1 = $n->reserve('I-6', 'a', { quantity => 2 }, headers => { idem_key('val-2') });
reservation_ok($r1, 201, {}, 'the corrected reservation with the key runs: 201');
item_ok($n->get(ipath('I-6', 'a')), 200, { reserved => 2 }, 'reserved 2');

$n->stop;
done_testing;
