# Idempotency-Key on every POST and PUT: replays return the first answer
# exactly (also domain failures) and change nothing; a reused key is 422;
# validation failures are not stored; keys are global, survive a restart,
# and concurrent repeats apply once.
use strict;
use warnings;
use Test::More;
use POSIX ();
use Time::HiRes qw(sleep time);
use InvTest qw(item_ok problem_ok reservation_ok item_events items_snapshot
               parallel encode_json decode_json);

my $n = InvTest->start(workers => 2);

sub ipath { "/v1/inventory/$_[0]/$_[1]" }
sub get   { $n->req(GET => @_) }
sub K     { ('Idempotency-Key' => $_[0]) }
sub put   { my ($sku, $loc, $j, %o) = @_; $n->req(PUT => ipath($sku, $loc), json => $j, %o) }
sub adj   { my ($sku, $loc, $j, %o) = @_; $n->req(POST => ipath($sku, $loc) . '/adjustments', json => $j, %o) }
sub reserve { my ($sku, $loc, $j, %o) = @_; $n->req(POST => ipath($sku, $loc) . '/reservations', json => $j, %o) }
sub cart  { my ($j, %o) = @_; $n->req(POST => '/v1/reservations', json => $j, %o) }
sub xfer  { my ($j, %o) = @_; $n->req(POST => '/v1/transfers', json => $j, %o) }

sub events { my $e = eval { item_events($n, @_) }; diag $@ if $@; @{ $e // [] } }

sub unchanged {
    my ($before, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $now = items_snapshot($n, sort keys %$before);
    is_deeply($now, $before, $name) or diag explain $now;
}

sub replayed { (($_[0]{headers} // {})->{'idempotent-replayed'} // '') eq 'true' }

# replay_ok($first, $again, $name): same status, same body bytes, the
# Idempotent-Replayed header on the repeat and not on the first
sub replay_ok {
    my ($first, $again, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my @p;
    push @p, "status $again->{status}, first was $first->{status}"
        unless $again->{status} == $first->{status};
    push @p, 'body differs from the first' unless $again->{body} eq $first->{body};
    push @p, 'no Idempotent-Replayed: true on the repeat' unless replayed($again);
    push @p, 'Idempotent-Replayed on the first answer' if replayed($first);
    push @p, "content-type $again->{content_type}, first $first->{content_type}"
        unless $again->{content_type} eq $first->{content_type};
    ok(!@p, $name) or diag join("\n", map { "  - $_" } @p) . "\n--- first:\n"
        . InvTest::show($first) . "\n--- repeat:\n" . InvTest::show($again);
}

sub fresh_ok {
    my ($r, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    ok(!replayed($r), $name) or diag InvTest::show($r);
}

# ==========================================================================
# PUT
# ==========================================================================

my $r1 = put('I-1', 'a', { on_hand => 10 }, headers => { K('put-1') });
item_ok($r1, 201, { on_hand => 10, version => 1 }, 'PUT with a key: 201 created');
fresh_ok($r1, '... not marked replayed');
my $before = items_snapshot($n, ipath('I-1', 'a'));
my $r2 = put('I-1', 'a', { on_hand => 10 }, headers => { K('put-1') });
item_ok($r2, 201, { on_hand => 10, version => 1 },
        'the repeat: 201 again (though the item exists now), same ETag');
replay_ok($r1, $r2, '... the first answer exactly, Idempotent-Replayed: true');
$r2 = $n->req(PUT => ipath('I-1', 'a'), body => encode_json({ on_hand => 10 }),
              headers => { 'Content-Type' => 'application/json', 'idempotency-key' => 'put-1' });
replay_ok($r1, $r2, 'header name in lower case: replayed');
unchanged($before, 'repeats changed nothing');

my $r3 = put('I-1', 'a', { on_hand => 10 }, headers => { K('put-2') });
item_ok($r3, 200, { version => 2 }, 'the same PUT with another key runs again: 200, version 2');
fresh_ok($r3, '... not marked replayed');

$before = items_snapshot($n, ipath('I-1', 'a'), ipath('I-1', 'b'));
problem_ok(put('I-1', 'a', { on_hand => 11 }, headers => { K('put-1') }), 422,
           'idempotency-key-reused', 'same key, different body: 422');
problem_ok(put('I-1', 'b', { on_hand => 10 }, headers => { K('put-1') }), 422,
           'idempotency-key-reused', 'same key and body, different path: 422');
problem_ok(adj('I-1', 'a', { delta => 1 }, headers => { K('put-1') }), 422,
           'idempotency-key-reused', 'same key on another route (adjustments): 422');
problem_ok($n->req(POST => '/v1/reservations/r_AAAAAAAAAAAAAAAAAAAAAA/release',
                   headers => { K('put-1') }),
           422, 'idempotency-key-reused', 'same key on release of an unknown id: 422');
unchanged($before, '422s changed nothing (b not created)');
replay_ok($r1, put('I-1', 'a', { on_hand => 10 }, headers => { K('put-1') }),
          'after the 422s the original still replays');

# ==========================================================================
# adjustments
# ==========================================================================

$r1 = adj('I-1', 'a', { delta => 5, reason => 'delivery' }, headers => { K('adj-1') });
item_ok($r1, 200, { on_hand => 15, version => 3 }, 'adjustment +5 with a key: 200');
$before = items_snapshot($n, ipath('I-1', 'a'));
for my $i (1 .. 3) {
    $r2 = adj('I-1', 'a', { delta => 5, reason => 'delivery' }, headers => { K('adj-1') });
    replay_ok($r1, $r2, "adjustment repeat $i: replayed");
}
unchanged($before, 'on_hand 15: applied once');

$r1 = adj('I-2', 'a', { delta => 7 }, headers => { K('adj-create') });
item_ok($r1, 201, { on_hand => 7, version => 1 }, 'adjustment creating an item: 201');
$r2 = adj('I-2', 'a', { delta => 7 }, headers => { K('adj-create') });
replay_ok($r1, $r2, '... the repeat is the same 201');
item_ok(get(ipath('I-2', 'a')), 200, { on_hand => 7, version => 1 }, '... applied once');

# ==========================================================================
# reservations: item route and cart; commit and release
# ==========================================================================

item_ok(put('I-3', 'a', { on_hand => 10 }), 201, {}, 'setup: I-3 at a, 10');
item_ok(put('I-3', 'b', { on_hand => 10 }), 201, {}, 'setup: I-3 at b, 10');

$r1 = reserve('I-3', 'a', { quantity => 4, reference => 'o-1' }, headers => { K('res-1') });
reservation_ok($r1, 201, { state => 'active' }, 'reservation with a key: 201');
my $rid = ($r1->{json} // {})->{id} // 'r_0000000000000000000000';
$before = items_snapshot($n, ipath('I-3', 'a'));
$r2 = reserve('I-3', 'a', { quantity => 4, reference => 'o-1' }, headers => { K('res-1') });
replay_ok($r1, $r2, 'the repeat: the same 201 body');
is(($r2->{json} // {})->{id}, $rid, '... with the same id');
unchanged($before, '... and reserved counts once (4)');
item_ok(get(ipath('I-3', 'a')), 200, { reserved => 4, version => 2 }, 'reserved 4, one event');
is(scalar(grep { $_->{type} eq 'StockReserved' } events('I-3', 'a')),
   1, 'one StockReserved event');

$r1 = cart({ lines => [ { sku => 'I-3', location => 'a', quantity => 1 },
                        { sku => 'I-3', location => 'b', quantity => 2 } ] },
           headers => { K('cart-1') });
reservation_ok($r1, 201, {}, 'cart with a key: 201');
my $cid = ($r1->{json} // {})->{id} // 'r_0000000000000000000000';
$before = items_snapshot($n, ipath('I-3', 'a'), ipath('I-3', 'b'));
$r2 = cart({ lines => [ { sku => 'I-3', location => 'a', quantity => 1 },
                        { sku => 'I-3', location => 'b', quantity => 2 } ] },
           headers => { K('cart-1') });
replay_ok($r1, $r2, 'cart repeat: replayed');
is(($r2->{json} // {})->{id}, $cid, '... the same id');
unchanged($before, '... reserved counts once per item');

# commit with a key, then the repeat is the 200 again, not a 409
$r1 = $n->req(POST => "/v1/reservations/$rid/commit", headers => { K('commit-1') });
reservation_ok($r1, 200, { id => $rid, state => 'committed' }, 'commit with a key: 200');
$before = items_snapshot($n, ipath('I-3', 'a'));
$r2 = $n->req(POST => "/v1/reservations/$rid/commit", headers => { K('commit-1') });
replay_ok($r1, $r2, 'commit repeat: the 200 replayed, not a 409');
unchanged($before, '... committed once');
item_ok(get(ipath('I-3', 'a')), 200, { on_hand => 6, reserved => 1 },
        'on_hand 6 (one commit of 4), reserved 1 (the cart)');
problem_ok($n->req(POST => "/v1/reservations/$rid/commit", json => {}, headers => { K('commit-1') }),
           422, 'idempotency-key-reused', 'the same commit with {} instead of no body: 422');

# the replay of the creation is the original answer even after the commit
$r2 = reserve('I-3', 'a', { quantity => 4, reference => 'o-1' }, headers => { K('res-1') });
is($r2->{status}, 201, 'creation repeat after the commit: still the first 201');
is(($r2->{json} // {})->{state}, 'active', '... with the state as it was (active)');
ok(replayed($r2), '... marked replayed') or diag InvTest::show($r2);

$r1 = $n->req(POST => "/v1/reservations/$cid/release", json => {}, headers => { K('release-1') });
reservation_ok($r1, 200, { id => $cid, state => 'released' }, 'release with a key: 200');
$before = items_snapshot($n, ipath('I-3', 'a'), ipath('I-3', 'b'));
$r2 = $n->req(POST => "/v1/reservations/$cid/release", json => {}, headers => { K('release-1') });
replay_ok($r1, $r2, 'release repeat: replayed');
unchanged($before, '... released once');
is(scalar(events('I-3', 'b')), 3,
   'I-3 at b: counted, reserved, released; nothing more');

# ==========================================================================
# transfers
# ==========================================================================

$r1 = xfer({ sku => 'I-3', from => 'b', to => 'c', quantity => 3 }, headers => { K('xfer-1') });
is($r1->{status}, 200, 'transfer with a key: 200') or diag InvTest::show($r1);
$before = items_snapshot($n, ipath('I-3', 'b'), ipath('I-3', 'c'));
$r2 = xfer({ sku => 'I-3', from => 'b', to => 'c', quantity => 3 }, headers => { K('xfer-1') });
replay_ok($r1, $r2, 'transfer repeat: replayed');
unchanged($before, '... moved once');
item_ok(get(ipath('I-3', 'c')), 200, { on_hand => 3, version => 1 }, 'c holds 3');

# ==========================================================================
# domain failures are stored and replayed
# ==========================================================================

# 404, then the item appears: the repeat is still the 404
$r1 = reserve('I-4', 'a', { quantity => 1 }, headers => { K('fail-404') });
problem_ok($r1, 404, 'not-found', 'reservation on a missing item with a key: 404');
item_ok(put('I-4', 'a', { on_hand => 5 }), 201, {}, 'now create I-4');
$before = items_snapshot($n, ipath('I-4', 'a'));
$r2 = reserve('I-4', 'a', { quantity => 1 }, headers => { K('fail-404') });
replay_ok($r1, $r2, 'the repeat replays the 404');
unchanged($before, '... and reserves nothing');

# 409, then stock arrives: still the 409
$r1 = reserve('I-4', 'a', { quantity => 8 }, headers => { K('fail-409') });
problem_ok($r1, 409, 'insufficient-stock', 'reserving too much with a key: 409', available => 5);
item_ok(adj('I-4', 'a', { delta => 10 }), 200, { on_hand => 15 }, 'now add 10');
$before = items_snapshot($n, ipath('I-4', 'a'));
$r2 = reserve('I-4', 'a', { quantity => 8 }, headers => { K('fail-409') });
replay_ok($r1, $r2, 'the repeat replays the 409 (available 5 as then)');
unchanged($before, '... and reserves nothing');

# 412
my $v = get(ipath('I-4', 'a'))->{json}{version};
$r1 = put('I-4', 'a', { on_hand => 1 }, headers => { K('fail-412'), 'If-Match' => '"1"' });
problem_ok($r1, 412, 'version-mismatch', 'PUT with a stale If-Match and a key: 412');
$before = items_snapshot($n, ipath('I-4', 'a'));
$r2 = put('I-4', 'a', { on_hand => 1 }, headers => { K('fail-412'), 'If-Match' => '"1"' });
replay_ok($r1, $r2, 'the repeat replays the 412');
unchanged($before, '... and changes nothing');

# 409 reservation-not-active on a commit
$r1 = $n->req(POST => "/v1/reservations/$cid/commit", headers => { K('fail-ended') });
problem_ok($r1, 409, 'reservation-not-active', 'commit of a released reservation with a key: 409');
$r2 = $n->req(POST => "/v1/reservations/$cid/commit", headers => { K('fail-ended') });
replay_ok($r1, $r2, 'the repeat replays the 409');

# 404 on a transfer
$r1 = xfer({ sku => 'I-5', from => 'a', to => 'b', quantity => 1 }, headers => { K('fail-x404') });
problem_ok($r1, 404, 'not-found', 'transfer from a missing item with a key: 404');
item_ok(put('I-5', 'a', { on_hand => 2 }), 201, {}, 'now create I-5 at a');
$r2 = xfer({ sku => 'I-5', from => 'a', to => 'b', quantity => 1 }, headers => { K('fail-x404') });
replay_ok($r1, $r2, 'the transfer repeat replays the 404');
problem_ok(get(ipath('I-5', 'b')), 404, 'not-found', '... and moved nothing');

# ==========================================================================
# validation failures are not stored: a corrected retry runs
# ==========================================================================

$before = items_snapshot($n, ipath('I-6', 'a'));
problem_ok(put('I-6', 'a', { on_hand => -1 }, headers => { K('val-1') }), 400,
           'invalid-request', 'PUT with a bad body and a key: 400', field => 'on_hand');
problem_ok(put('I-6', 'a', { on_hand => 1, x => 1 }, headers => { K('val-1') }), 400,
           'invalid-request', 'another bad body with the same key: 400 (not 422)', field => 'x');
problem_ok($n->req(PUT => ipath('I-6', 'a'), body => '{"on_hand":3}',
                   headers => { K('val-1'), 'Content-Type' => 'text/plain' }),
           415, 'unsupported-media-type', 'a 415 with the same key');
problem_ok(put('I-6', 'a', { on_hand => 3 }, headers => { K('val-1'), 'If-Match' => 'bad' }),
           400, 'invalid-request', 'a bad If-Match with the same key: 400', field => 'If-Match');
unchanged($before, 'nothing created');
$r1 = put('I-6', 'a', { on_hand => 3 }, headers => { K('val-1') });
item_ok($r1, 201, { on_hand => 3, version => 1 }, 'the corrected request with the key runs: 201');
fresh_ok($r1, '... not a replay');
$r2 = put('I-6', 'a', { on_hand => 3 }, headers => { K('val-1') });
replay_ok($r1, $r2, '... and from now on it replays');

$r1 = reserve('I-6', 'a', { quantity => 0 }, headers => { K('val-2') });
problem_ok($r1, 400, 'invalid-request', 'reservation with quantity 0 and a key: 400', field => 'quantity');
$r1 = reserve('I-6', 'a', { quantity => 2 }, headers => { K('val-2') });
reservation_ok($r1, 201, {}, 'the corrected reservation with the key runs: 201');
item_ok(get(ipath('I-6', 'a')), 200, { reserved => 2 }, 'reserved 2');

# ==========================================================================
# the key itself
# ==========================================================================

$before = items_snapshot($n, ipath('I-7', 'a'));
for my $c ([ '', 'empty' ], [ 'k' x 256, '256 characters' ], [ 'a b', 'with a space' ],
           [ "caf\xc3\xa9", 'non-ASCII' ], [ "a\tb", 'with a tab' ], [ "a\x7fb", 'with DEL' ])
{
    my ($key, $what) = @$c;
    problem_ok($n->req(PUT => ipath('I-7', 'a'), json => { on_hand => 1 }, raw => 1,
                       headers => { 'Idempotency-Key' => $key }),
               400, 'invalid-request', "Idempotency-Key $what: 400", field => 'Idempotency-Key');
}
problem_ok(xfer({ sku => 'I-3', from => 'c', to => 'd', quantity => 1 },
                headers => { K('k' x 256) }),
           400, 'invalid-request', 'a bad key on a transfer: 400', field => 'Idempotency-Key');
unchanged($before, 'bad keys changed nothing');
item_ok(get(ipath('I-3', 'c')), 200, { on_hand => 3 }, 'the transfer did not run');

my $visible = join '', map { chr } 0x21 .. 0x7e;
for my $c ([ 'k' x 255, '255 characters' ], [ $visible, 'every visible ASCII character' ],
           [ 'x', 'one character' ])
{
    my ($key, $what) = @$c;
    my $p = ipath('I-7', substr(length($key) . 'k', 0, 10));
    $r1 = $n->req(PUT => $p, json => { on_hand => 1 }, headers => { K($key) });
    item_ok($r1, 201, { version => 1 }, "key of $what: accepted");
    $r2 = $n->req(PUT => $p, json => { on_hand => 1 }, headers => { K($key) });
    replay_ok($r1, $r2, "... and replayed");
}

# keys are exact: case matters
$r1 = adj('I-1', 'a', { delta => 1 }, headers => { K('Case-Key') });
$r2 = adj('I-1', 'a', { delta => 1 }, headers => { K('case-key') });
item_ok($r2, 200, { version => $r1->{json}{version} + 1 }, 'keys differing in case are different keys');
fresh_ok($r2, '... not a replay');

# ==========================================================================
# keys survive a restart
# ==========================================================================

$r1 = adj('I-1', 'a', { delta => 2 }, headers => { K('durable') });
item_ok($r1, 200, {}, 'adjustment with a key before the restart');
$n->restart;
$before = items_snapshot($n, ipath('I-1', 'a'));
$r2 = adj('I-1', 'a', { delta => 2 }, headers => { K('durable') });
replay_ok($r1, $r2, 'after a restart the key still replays');
unchanged($before, '... and changes nothing');

# ==========================================================================
# concurrent repeats of one request apply once
# ==========================================================================

item_ok(put('I-8', 'a', { on_hand => 100 }), 201, {}, 'setup: I-8 at a, 100');
my @res = parallel(12, sub {
    my $r = reserve('I-8', 'a', { quantity => 7 }, headers => { K('race-1') });
    return encode_json({ status => $r->{status}, body => $r->{body},
                         replayed => replayed($r) ? 1 : 0,
                         code => ($r->{json} // {})->{code} // '' });
});
my (@fresh, @again, @busy, @bad);
for my $s (@res) {
    my $j = eval { decode_json($s) };
    if (!$j) { push @bad, $s; next }
    if ($j->{status} == 201) { push @{ $j->{replayed} ? \@again : \@fresh }, $j }
    elsif ($j->{status} == 409 && $j->{code} eq 'idempotency-key-in-flight') { push @busy, $j }
    else { push @bad, $s }
}
ok(!@bad, 'concurrent repeats: only 201 or 409 idempotency-key-in-flight')
    or diag join "\n", @bad;
is(scalar @fresh, 1, sprintf('exactly one ran (%d replayed, %d in flight)',
                             scalar @again, scalar @busy));
my %bodies = map { $_->{body} => 1 } @fresh, @again;
is(scalar keys %bodies, 1, 'every 201 has the same body (one reservation id)');
item_ok(get(ipath('I-8', 'a')), 200, { reserved => 7, version => 2 },
        'reserved 7 once, one StockReserved');

# ==========================================================================
# a repeat sent after the answer was received is a replay, never "in flight"
# ==========================================================================

{
    # 6 clients, each with its own key, each repeating its request as soon
    # as it has the previous answer: every repeat must be a replay
    my @keys = map { "seq-$_" } 0 .. 5;
    for my $i (0 .. $#keys) {
        my $r = adj('I-9', "l$i", { delta => 1 }, headers => { K($keys[$i]) });
        item_ok($r, 201, { on_hand => 1 }, "setup: I-9 at l$i created with key $keys[$i]");
    }
    my @res = parallel(scalar @keys, sub {
        my ($i) = @_;
        my (%st, @odd);
        for (1 .. 60) {
            my $r = adj('I-9', "l$i", { delta => 1 }, headers => { K($keys[$i]) });
            my $tag = $r->{status} . (replayed($r) ? ' replayed' : '');
            $st{$tag}++;
            push @odd, InvTest::show($r) if $tag ne '201 replayed' && @odd < 1;
        }
        return encode_json({ st => \%st, odd => \@odd });
    });
    my (%st, @odd);
    for my $s (@res) {
        my $j = eval { decode_json($s) } // { st => { $s => 1 }, odd => [] };
        $st{$_} += $j->{st}{$_} for keys %{ $j->{st} };
        push @odd, @{ $j->{odd} };
    }
    is($st{'201 replayed'} // 0, 360,
       'sequential repeats, each sent after the previous answer arrived: all '
       . 'replays (' . join(', ', map { "$_ x$st{$_}" } sort keys %st) . ')')
        or diag join "\n", @odd[0 .. ($#odd > 1 ? 1 : $#odd)];
    my @items = map { (get(ipath('I-9', "l$_"))->{json} // {})->{on_hand} // -1 } 0 .. $#keys;
    is("@items", join(' ', (1) x @keys), '... each applied once');
}

$n->stop;

# ==========================================================================
# inventory_idempotency_ttl: a key is forgotten after its time
# ==========================================================================

my $m = InvTest->start(http_extra => 'inventory_idempotency_ttl 1s;');
$r1 = $m->req(POST => ipath('J-1', 'a') . '/adjustments', json => { delta => 2 },
              headers => { K('short') });
item_ok($r1, 201, { on_hand => 2, version => 1 }, 'ttl 1s: adjustment with a key');
$r2 = $m->req(POST => ipath('J-1', 'a') . '/adjustments', json => { delta => 2 },
              headers => { K('short') });
replay_ok($r1, $r2, '... replayed at once');
sleep 2;
$r2 = $m->req(POST => ipath('J-1', 'a') . '/adjustments', json => { delta => 2 },
              headers => { K('short') });
item_ok($r2, 200, { on_hand => 4, version => 2 }, 'after 2 s the same request runs again');
fresh_ok($r2, '... not a replay');
$r2 = $m->req(POST => ipath('J-1', 'a') . '/adjustments', json => { delta => 5 },
              headers => { K('short') });
problem_ok($r2, 422, 'idempotency-key-reused', '... and the key is remembered again');
$m->stop;

# ==========================================================================
# A key held by a worker that was killed is taken over at once, even while
# the dead worker is a zombie the master has not reaped (the master is
# stopped here).  mdb_load, given a header and no records, holds LMDB's
# write lock, so the keyed write waits inside its worker.

# the worker holding the established connection to $port, from /proc
sub conn_owner {
    my ($node, $port) = @_;
    my %inode;
    for my $f ('/proc/net/tcp', '/proc/net/tcp6') {
        open my $fh, '<', $f or next;
        while (<$fh>) {
            my @c = split;
            # local address:port, state 01 (ESTABLISHED), inode
            next unless @c > 9 && $c[1] =~ /:([0-9A-F]{4})$/
                        && hex($1) == $port && $c[3] eq '01';
            $inode{ $c[9] } = 1;
        }
    }
    for my $pid ($node->worker_pids) {
        opendir my $dh, "/proc/$pid/fd" or next;
        for my $fd (readdir $dh) {
            my $l = readlink "/proc/$pid/fd/$fd" // next;
            return $pid if $l =~ /^socket:\[(\d+)\]$/ && $inode{$1};
        }
    }
    return undef;
}

{
    my $z = InvTest->start(workers => 2);
    my $zp = ipath('Z-1', 'a');
    item_ok($z->req(PUT => $zp, json => { on_hand => 5 }), 201,
            { on_hand => 5 }, 'zombie holder: the item');

    pipe my $rd, my $wr or die "pipe: $!";
    my $loader = fork // die "fork: $!";
    if (!$loader) {
        close $wr;
        open STDIN, '<&', $rd or POSIX::_exit(1);
        open STDOUT, '>', '/dev/null';
        { no warnings 'exec';
          exec 'mdb_load', '-s', 'lock-holder', $z->datadir; }
        POSIX::_exit(1);
    }
    close $rd;
    syswrite $wr, "VERSION=3\nformat=bytevalue\ntype=btree\nHEADER=END\n";

    # it holds the lock once lock.mdb names it as the holder
    my $until = time + 10;
    sleep 0.05 until (InvTest::write_lock_tid($z->datadir) // 0) == $loader
                     || time > $until;

    my $client = fork // die "fork: $!";
    if (!$client) {
        $z->req(POST => "$zp/adjustments", json => { delta => 1 },
                headers => { K('zombie-key') });
        POSIX::_exit(0);
    }

    my ($victim, $deadline) = (undef, time + 10);
    until ($victim || time > $deadline) {
        sleep 0.1;
        $victim = conn_owner($z, $z->port);
    }
    ok($victim, 'zombie holder: the worker running the keyed write found')
        or diag 'no established connection owned by a worker';

    my $master = $z->master_pid;
    kill 'STOP', $master;
    $z->allow_log(qr/\[alert\] \d+#\d+: worker process \Q$victim\E exited on signal 9$/);
    kill 'KILL', $victim if $victim;
    kill 'KILL', $loader;
    waitpid $loader, 0;
    waitpid $client, 0;

    my $st = '';
    for (1 .. 100) {
        $st = InvTest::slurp("/proc/$victim/stat") // '';
        last if $st =~ /\)\s+Z\s/;
        sleep 0.05;
    }
    like($st, qr/\)\s+Z\s/, 'zombie holder: the killed worker is a zombie');

    my $again = $z->req(POST => "$zp/adjustments", json => { delta => 1 },
                        headers => { K('zombie-key') });
    kill 'CONT', $master;
    item_ok($again, 200, { on_hand => 6, version => 2 },
            'zombie holder: the retry takes the key over and runs once');
    item_ok($z->req(GET => $zp), 200, { on_hand => 6, version => 2 },
            '... and the item was adjusted once');
    $z->stop;
}

done_testing;
