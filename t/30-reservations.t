# Reservations: item-route and cart reservations, GET, commit, release,
# expiry; stock counters and events end to end; every error path, each
# changing nothing; If-Match on item-route reservations.
use strict;
use warnings;
use Test::More;
use Time::HiRes qw(sleep time);
use InvTest qw(item_ok problem_ok json_type reservation_ok item_events
               items_snapshot ts_ms encode_json TS_RE RES_ID_RE);

my $n = InvTest->start;

sub ipath { "/v1/inventory/$_[0]/$_[1]" }
sub get   { $n->req(GET => @_) }
sub put   { my ($sku, $loc, $j) = @_; $n->req(PUT => ipath($sku, $loc), json => $j) }
sub reserve {
    my ($sku, $loc, $body, %o) = @_;
    $n->req(POST => ipath($sku, $loc) . '/reservations', json => $body, %o);
}
sub cart   { my ($body, %o) = @_; $n->req(POST => '/v1/reservations', json => $body, %o) }
sub commit  { my ($id, %o) = @_; $n->req(POST => "/v1/reservations/$id/commit", %o) }
sub release { my ($id, %o) = @_; $n->req(POST => "/v1/reservations/$id/release", %o) }

# is_deeply on item snapshots: the requests in between changed nothing
sub unchanged {
    my ($before, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $now = items_snapshot($n, sort keys %$before);
    is_deeply($now, $before, $name) or diag explain $now;
}

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

sub counts_ok {
    my ($sku, $loc, $on_hand, $reserved, $name, %more) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    item_ok(get(ipath($sku, $loc)), 200,
            { on_hand => $on_hand, reserved => $reserved,
              available => $on_hand - $reserved, %more }, $name);
}

# ==========================================================================
# item-route reservation
# ==========================================================================

item_ok(put('R-1', 's1', { on_hand => 10 }), 201, { version => 1 },
        'setup: R-1 at s1, on_hand 10');

my $t0 = time;
my $r = reserve('R-1', 's1', { quantity => 3, ttl_seconds => 600,
                               reference => 'order-1' });
reservation_ok($r, 201, { state => 'active', reference => 'order-1', ttl => 600,
                          lines => [[ 'R-1', 's1', 3 ]] },
               'item-route reservation: 201 active, one line, reference, ttl 600');
my $res1 = $r->{json} // {};
my $id1 = $res1->{id} // 'r_0000000000000000000000';
ok(abs(ts_ms($res1->{created_at} // '') / 1000 - $t0) < 5,
   'created_at is the current time') or diag InvTest::show($r);

counts_ok('R-1', 's1', 10, 3, 'reserved 3, available 7, on_hand unchanged',
          version => 2);

$r = get("/v1/reservations/$id1");
reservation_ok($r, 200, { id => $id1, state => 'active' },
               'GET /v1/reservations/{id}: 200');
is_deeply($r->{json}, $res1, 'GET returns the reservation as created')
    or diag InvTest::show($r);

$r = $n->req(HEAD => "/v1/reservations/$id1");
is($r->{status}, 200, 'HEAD reservation is 200');
is($r->{body}, '', 'HEAD reservation has no body');

# defaults: inventory_reservation_ttl 15m, reference null
$r = reserve('R-1', 's1', { quantity => 1 });
reservation_ok($r, 201, { state => 'active', reference => undef, ttl => 900,
                          lines => [[ 'R-1', 's1', 1 ]] },
               'no ttl_seconds: 15 minutes (the default); no reference: null');
my $id2 = ($r->{json} // {})->{id} // 'r_0000000000000000000000';
isnt($id2, $id1, 'each reservation has its own id');

# boundaries that are accepted
$r = reserve('R-1', 's1', { quantity => 1, ttl_seconds => 86400,
                            reference => 'x' x 256 });
reservation_ok($r, 201, { ttl => 86400, reference => 'x' x 256 },
               'ttl_seconds 86400 and a 256-byte reference accepted');
my $id3 = ($r->{json} // {})->{id} // 'r_0000000000000000000000';
$r = reserve('R-1', 's1', { quantity => 1, reference => "caf\x{e9} \x{2713}" });
reservation_ok($r, 201, { reference => "caf\x{e9} \x{2713}" },
               'a UTF-8 reference round-trips');
my $id4 = ($r->{json} // {})->{id} // 'r_0000000000000000000000';
counts_ok('R-1', 's1', 10, 6, 'four reservations hold 3+1+1+1');

# exactly what is available, then nothing more
$r = reserve('R-1', 's1', { quantity => 4 });
reservation_ok($r, 201, { lines => [[ 'R-1', 's1', 4 ]] },
               'reserving exactly the available quantity is allowed');
my $id5 = ($r->{json} // {})->{id} // 'r_0000000000000000000000';
counts_ok('R-1', 's1', 10, 10, 'available is 0');

my $before = items_snapshot($n, ipath('R-1', 's1'), ipath('R-1', 's2'),
                            ipath('R-2', 's1'));
problem_ok(reserve('R-1', 's1', { quantity => 1 }), 409, 'insufficient-stock',
           'reserving 1 with 0 available: 409 insufficient-stock, available 0',
           available => 0);
unchanged($before, '... and changed nothing');
is(release($id5)->{status}, 200, 'release the 4');
$before = items_snapshot($n, ipath('R-1', 's1'), ipath('R-1', 's2'),
                         ipath('R-2', 's1'));
problem_ok(reserve('R-1', 's1', { quantity => 5 }), 409, 'insufficient-stock',
           'Q > available: 409 insufficient-stock with available 4',
           available => 4);
problem_ok(reserve('R-1', 's1', { quantity => 1000000000 }), 409,
           'insufficient-stock', 'Q = 10^9 (valid, too many): 409', available => 4);
problem_ok(reserve('R-1', 's2', { quantity => 1 }), 404, 'not-found',
           'unknown location of a known SKU: 404');
problem_ok(reserve('R-2', 's1', { quantity => 1 }), 404, 'not-found',
           'unknown SKU: 404');
problem_ok(get(ipath('R-1', 's2')), 404, 'not-found',
           '... and the 404 did not create the item');

# --- validation ------------------------------------------------------------
for my $c ([ { }, 'quantity', 'missing quantity' ],
           [ { quantity => 0 }, 'quantity', 'quantity 0' ],
           [ { quantity => -1 }, 'quantity', 'quantity -1' ],
           [ { quantity => 1000000001 }, 'quantity', 'quantity 10^9+1' ],
           [ { quantity => '2' }, 'quantity', 'quantity "2"' ],
           [ { quantity => JSON::PP::true }, 'quantity', 'quantity true' ],
           [ { quantity => undef }, 'quantity', 'quantity null' ],
           [ { quantity => 1, ttl_seconds => 0 }, 'ttl_seconds', 'ttl_seconds 0' ],
           [ { quantity => 1, ttl_seconds => 86401 }, 'ttl_seconds', 'ttl_seconds 86401' ],
           [ { quantity => 1, ttl_seconds => -5 }, 'ttl_seconds', 'ttl_seconds -5' ],
           [ { quantity => 1, ttl_seconds => '60' }, 'ttl_seconds', 'ttl_seconds "60"' ],
           [ { quantity => 1, reference => 'x' x 257 }, 'reference', 'reference of 257 bytes' ],
           [ { quantity => 1, reference => 42 }, 'reference', 'reference 42' ],
           [ { quantity => 1, reference => [] }, 'reference', 'reference []' ],
           [ { quantity => 1, sku => 'R-1' }, 'sku', 'unknown member sku' ],
           [ { quantity => 1, lines => [] }, 'lines', 'unknown member lines' ])
{
    my ($body, $field, $what) = @$c;
    problem_ok(reserve('R-1', 's1', $body), 400, 'invalid-request',
               "item-route reservation, $what: 400 field $field", field => $field);
}
for my $c ([ '{"quantity":1.5}', 'quantity', 'quantity 1.5' ],
           [ '{"quantity":1e1}', 'quantity', 'quantity 1e1' ],
           [ '{"quantity":1,"ttl_seconds":1.0}', 'ttl_seconds', 'ttl_seconds 1.0' ],
           [ '{"quantity":1,"quantity":2}', 'quantity', 'duplicate member' ],
           [ '{"quantity":1', 'body', 'truncated JSON' ],
           [ '[{"quantity":1}]', 'body', 'an array' ],
           [ '', 'body', 'an empty body' ])
{
    my ($body, $field, $what) = @$c;
    problem_ok($n->req(POST => ipath('R-1', 's1') . '/reservations', body => $body,
                       headers => { 'Content-Type' => 'application/json' }),
               400, 'invalid-request', "item-route reservation, $what: 400 field $field",
               field => $field);
}
{
    my $r2 = reserve('R-1', 's1', { quantity => 0, ttl_seconds => 0, x => 1 });
    problem_ok($r2, 400, 'invalid-request', 'several problems in one body: 400');
    my %f = map { $_->{field} => 1 } @{ ($r2->{json} // {})->{errors} // [] };
    ok($f{quantity} && $f{ttl_seconds} && $f{x},
       '... listing quantity, ttl_seconds and x') or diag InvTest::show($r2);
}
problem_ok($n->req(POST => ipath('R-1', 's1') . '/reservations',
                   body => '{"quantity":1}', headers => { 'Content-Type' => 'text/plain' }),
           415, 'unsupported-media-type', 'text/plain body: 415');
problem_ok($n->req(POST => ipath('R-1', 's1') . '/reservations', body => '{"quantity":1}'),
           415, 'unsupported-media-type', 'no Content-Type: 415');
problem_ok($n->req(POST => '/v1/inventory/bad%20sku/s1/reservations', json => { quantity => 1 }),
           400, 'invalid-request', 'bad sku in the path: 400 field sku', field => 'sku');
problem_ok($n->req(POST => '/v1/inventory/R-1/' . ('l' x 65) . '/reservations',
                   json => { quantity => 1 }),
           400, 'invalid-request', '65-character location: 400 field location',
           field => 'location');
problem_ok(get(ipath('R-1', 's1') . '/reservations'), 405, 'method-not-allowed',
           'GET on the item reservations route: 405, Allow POST', allow => ['POST']);

unchanged($before, 'no failed item-route reservation changed anything');

# --- If-Match on item-route reservations ------------------------------------
my $v = get(ipath('R-1', 's1'))->{json}{version};
$before = items_snapshot($n, ipath('R-1', 's1'));
$r = reserve('R-1', 's1', { quantity => 1 }, headers => { 'If-Match' => '"' . ($v - 1) . '"' });
problem_ok($r, 412, 'version-mismatch', 'If-Match with an old version: 412');
is(($r->{json} // {})->{current_version}, $v, '... with current_version')
    or diag InvTest::show($r);
problem_ok(reserve('R-1', 's1', { quantity => 1 }, headers => { 'If-Match' => qq{W/"$v"} }),
           412, 'version-mismatch', 'If-Match with a weak tag never matches: 412');
problem_ok(reserve('R-1', 's1', { quantity => 1 }, headers => { 'If-Match' => '"1", "2"' }),
           412, 'version-mismatch', 'If-Match list without the version: 412');
problem_ok(reserve('R-1', 's1', { quantity => 1 }, headers => { 'If-Match' => 'nonsense' }),
           400, 'invalid-request', 'malformed If-Match: 400', field => 'If-Match');
problem_ok(reserve('R-1', 's2', { quantity => 1 }, headers => { 'If-Match' => '*' }),
           412, 'version-mismatch', 'If-Match * on an unknown item: 412');
problem_ok(reserve('R-1', 's1', { quantity => 99 }, headers => { 'If-Match' => qq{"$v"} }),
           409, 'insufficient-stock', 'matching If-Match but too many: 409', available => 4);
unchanged($before, 'the If-Match failures changed nothing');

$r = reserve('R-1', 's1', { quantity => 1 }, headers => { 'If-Match' => qq{"$v"} });
reservation_ok($r, 201, { state => 'active' }, 'matching If-Match: 201');
my $id6 = ($r->{json} // {})->{id} // 'r_0000000000000000000000';
$v++;
$r = reserve('R-1', 's1', { quantity => 1 }, headers => { 'If-Match' => qq{"1", "$v", "99"} });
reservation_ok($r, 201, { state => 'active' }, 'If-Match list naming the version: 201');
my $id7 = ($r->{json} // {})->{id} // 'r_0000000000000000000000';
$r = reserve('R-1', 's1', { quantity => 1 }, headers => { 'If-Match' => '*' });
reservation_ok($r, 201, { state => 'active' }, 'If-Match * on an existing item: 201');
my $id8 = ($r->{json} // {})->{id} // 'r_0000000000000000000000';
counts_ok('R-1', 's1', 10, 9, 'three more reservations of 1');

# --- reserved stock protects on_hand ------------------------------------------
$before = items_snapshot($n, ipath('R-1', 's1'));
problem_ok(put('R-1', 's1', { on_hand => 8 }), 409, 'insufficient-stock',
           'PUT on_hand below reserved: 409');
problem_ok($n->req(POST => ipath('R-1', 's1') . '/adjustments', json => { delta => -2 }),
           409, 'insufficient-stock', 'adjustment below reserved: 409', available => 1);
unchanged($before, '... and nothing changed');

# ==========================================================================
# GET / commit / release: unknown and malformed ids, methods
# ==========================================================================

for my $bad ('r_AAAAAAAAAAAAAAAAAAAAAA', 'r_xxx', 'r_' . ('A' x 23), 'x_' . ('A' x 22),
             'r_AAAAAAAAAAAAAAAAAAAA-_', substr($id1, 0, 23) . '%2A')
{
    problem_ok(get("/v1/reservations/$bad"), 404, 'not-found', "GET reservation '$bad': 404");
    problem_ok(commit($bad), 404, 'not-found', "commit '$bad': 404");
    problem_ok(release($bad), 404, 'not-found', "release '$bad': 404");
}
problem_ok(get('/v1/reservations/'), 404, 'not-found', 'GET /v1/reservations/: 404');
problem_ok(get("/v1/reservations/$id1/nope"), 404, 'not-found', 'unknown sub-route: 404');
for my $c ([ GET => '/v1/reservations', ['POST'] ],
           [ PUT => "/v1/reservations/$id1", [qw(GET HEAD)] ],
           [ DELETE => "/v1/reservations/$id1", [qw(GET HEAD)] ],
           [ POST => "/v1/reservations/$id1", [qw(GET HEAD)] ],
           [ GET => "/v1/reservations/$id1/commit", ['POST'] ],
           [ PUT => "/v1/reservations/$id1/release", ['POST'] ])
{
    my ($m, $p, $allow) = @$c;
    problem_ok($n->req($m => $p), 405, 'method-not-allowed', "$m $p: 405", allow => $allow);
}
reservation_ok(get("/v1/reservations/$id1"), 200, { state => 'active' },
               'the reservation is still active');

# --- commit / release bodies ---------------------------------------------------
$before = items_snapshot($n, ipath('R-1', 's1'));
problem_ok(commit($id1, json => { x => 1 }), 400, 'invalid-request',
           'commit with a member: 400', field => 'x');
problem_ok(release($id1, json => { reason => 'r' }), 400, 'invalid-request',
           'release with a member: 400', field => 'reason');
problem_ok(commit($id1, body => '[]', headers => { 'Content-Type' => 'application/json' }),
           400, 'invalid-request', 'commit with a JSON array: 400', field => 'body');
problem_ok(release($id1, body => '{', headers => { 'Content-Type' => 'application/json' }),
           400, 'invalid-request', 'release with broken JSON: 400', field => 'body');
problem_ok(commit($id1, body => '{}', headers => { 'Content-Type' => 'text/plain' }),
           415, 'unsupported-media-type', 'commit with a text/plain body: 415');
unchanged($before, 'failed commits and releases changed nothing');
reservation_ok(get("/v1/reservations/$id1"), 200, { state => 'active' },
               '... the reservation is still active');

# --- commit ---------------------------------------------------------------------
$r = commit($id1);
reservation_ok($r, 200, { id => $id1, state => 'committed', reference => 'order-1',
                          lines => [[ 'R-1', 's1', 3 ]] },
               'commit without a body: 200 committed, with ended_at');
is_deeply([ @{ $r->{json} // {} }{qw(created_at expires_at)} ],
          [ @{$res1}{qw(created_at expires_at)} ], '... created_at and expires_at kept');
counts_ok('R-1', 's1', 7, 6, 'commit: on_hand and reserved both drop by 3');
my $committed = $r->{json};
reservation_ok(get("/v1/reservations/$id1"), 200, { state => 'committed' },
               'GET shows it committed');
is_deeply(get("/v1/reservations/$id1")->{json}, $committed, '... the same body as the commit');

$before = items_snapshot($n, ipath('R-1', 's1'));
for my $c ([ \&commit, 'commit' ], [ \&release, 'release' ]) {
    $r = $c->[0]->($id1);
    problem_ok($r, 409, 'reservation-not-active', "$c->[1] after commit: 409");
    is(($r->{json} // {})->{state}, 'committed', '... with state committed')
        or diag InvTest::show($r);
}
unchanged($before, '... and changed nothing');

$r = commit($id2, json => {});
reservation_ok($r, 200, { id => $id2, state => 'committed' }, 'commit with {}: 200');
counts_ok('R-1', 's1', 6, 5, 'on_hand 6, reserved 5');

# --- release ----------------------------------------------------------------------
$r = release($id3);
reservation_ok($r, 200, { id => $id3, state => 'released', reference => 'x' x 256 },
               'release without a body: 200 released');
counts_ok('R-1', 's1', 6, 4, 'release: reserved drops, on_hand stays');
$r = release($id4, json => {});
reservation_ok($r, 200, { id => $id4, state => 'released' }, 'release with {}: 200');
counts_ok('R-1', 's1', 6, 3, 'reserved 3');
$before = items_snapshot($n, ipath('R-1', 's1'));
for my $c ([ \&commit, 'commit' ], [ \&release, 'release' ]) {
    $r = $c->[0]->($id3);
    problem_ok($r, 409, 'reservation-not-active', "$c->[1] after release: 409");
    is(($r->{json} // {})->{state}, 'released', '... with state released')
        or diag InvTest::show($r);
}
unchanged($before, '... and changed nothing');
reservation_ok(get("/v1/reservations/$id5"), 200, { state => 'released' },
               'the earlier release reads back');
is(release($_)->{status}, 200, 'cleanup: release') for $id6, $id7, $id8;
counts_ok('R-1', 's1', 6, 0, 'R-1 at s1: everything released');

# ==========================================================================
# cart: three items, reserve -> commit and reserve -> release, events
# ==========================================================================

item_ok(put('C-1', 'w1', { on_hand => 10 }), 201, { version => 1 }, 'setup: C-1/w1 10');
item_ok(put('C-2', 'w1', { on_hand => 5, min_level => 2 }), 201, { version => 1 },
        'setup: C-2/w1 5, min_level 2');
item_ok(put('C-3', 'w2', { on_hand => 8 }), 201, { version => 1 }, 'setup: C-3/w2 8');
my @CART = ([ 'C-1', 'w1' ], [ 'C-2', 'w1' ], [ 'C-3', 'w2' ]);

$r = cart({ lines => [ { sku => 'C-1', location => 'w1', quantity => 4 },
                       { sku => 'C-2', location => 'w1', quantity => 2 },
                       { sku => 'C-3', location => 'w2', quantity => 3 } ],
            ttl_seconds => 300, reference => 'cart-1' });
reservation_ok($r, 201, { state => 'active', reference => 'cart-1', ttl => 300,
                          lines => [[ 'C-1', 'w1', 4 ], [ 'C-2', 'w1', 2 ], [ 'C-3', 'w2', 3 ]] },
               'cart of 3 lines: 201, lines in order');
my $cart1 = $r->{json} // {};
my $cid1 = $cart1->{id} // 'r_0000000000000000000000';
counts_ok('C-1', 'w1', 10, 4, 'cart reserved: C-1 10/4/6', version => 2);
counts_ok('C-2', 'w1', 5, 2, 'cart reserved: C-2 5/2/3, not low (3 >= 2)',
          version => 2, low_stock => 0);
counts_ok('C-3', 'w2', 8, 3, 'cart reserved: C-3 8/3/5', version => 2);
is_deeply(get("/v1/reservations/$cid1")->{json}, $cart1, 'GET cart reservation');

$r = commit($cid1);
reservation_ok($r, 200, { id => $cid1, state => 'committed',
                          lines => [[ 'C-1', 'w1', 4 ], [ 'C-2', 'w1', 2 ], [ 'C-3', 'w2', 3 ]] },
               'commit the cart: 200 committed');
my $cart1c = $r->{json} // {};
counts_ok('C-1', 'w1', 6, 0, 'after commit: C-1 6/0/6', version => 3);
counts_ok('C-2', 'w1', 3, 0, 'after commit: C-2 3/0/3', version => 3);
counts_ok('C-3', 'w2', 5, 0, 'after commit: C-3 5/0/5', version => 3);

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
$r = cart({ lines => [ { sku => 'C-3', location => 'w2', quantity => 5 },
                       { sku => 'C-1', location => 'w1', quantity => 1 },
                       { sku => 'C-2', location => 'w1', quantity => 2 } ] });
reservation_ok($r, 201, { state => 'active', reference => undef, ttl => 900 },
               'second cart: 201, default ttl, no reference');
my $cid2 = ($r->{json} // {})->{id} // 'r_0000000000000000000000';
counts_ok('C-1', 'w1', 6, 1, 'second cart: C-1 6/1/5');
counts_ok('C-2', 'w1', 3, 2, 'second cart: C-2 3/2/1, low stock', low_stock => 1,
          version => 5);
counts_ok('C-3', 'w2', 5, 5, 'second cart: C-3 5/5/0');
{
    my $ev = eval { item_events($n, 'C-2', 'w1', 3) } // [];
    my @types = map { $_->{type} // '?' } @$ev;
    is("@types", 'StockReserved LowStockDetected',
       'reserving below min_level: StockReserved then LowStockDetected');
    is_deeply($ev->[1]{data} // {}, { available => 1, min_level => 2 },
              'LowStockDetected data: available 1, min_level 2');
}

$r = release($cid2);
reservation_ok($r, 200, { id => $cid2, state => 'released' }, 'release the cart: 200');
counts_ok('C-1', 'w1', 6, 0, 'after release: C-1 6/0/6');
counts_ok('C-2', 'w1', 3, 0, 'after release: C-2 3/0/3, not low', low_stock => 0,
          version => 6);
counts_ok('C-3', 'w2', 5, 0, 'after release: C-3 5/0/5');
{
    my $ev = eval { item_events($n, 'C-3', 'w2', 3) } // [];
    my @d = map { "$_->{type}:" . ($_->{data}{reservation_id} // '') . ':'
                  . ($_->{data}{quantity} // '') } @$ev;
    is("@d", "StockReserved:$cid2:5 ReservationReleased:$cid2:5",
       'C-3 events: StockReserved and ReservationReleased with id and quantity');
}

# --- lines naming one item add up ------------------------------------------------
$r = cart({ lines => [ { sku => 'C-1', location => 'w1', quantity => 2 },
                       { sku => 'C-1', location => 'w1', quantity => 3 } ] });
reservation_ok($r, 201, { lines => [[ 'C-1', 'w1', 2 ], [ 'C-1', 'w1', 3 ]] },
               'two lines on one item: 201');
my $cid3 = ($r->{json} // {})->{id} // 'r_0000000000000000000000';
counts_ok('C-1', 'w1', 6, 5, '... reserved adds up to 5');
$before = items_snapshot($n, map { ipath(@$_) } @CART);
cart_short_ok(cart({ lines => [ { sku => 'C-1', location => 'w1', quantity => 1 },
                                { sku => 'C-1', location => 'w1', quantity => 1 } ] }),
              [[ 'C-1', 'w1', 2, 1 ]],
              'two lines of 1 on an item with 1 available: 409 naming the summed demand 2');
$r = commit($cid3);
reservation_ok($r, 200, { state => 'committed' }, 'commit the two-line cart');
counts_ok('C-1', 'w1', 1, 0, '... on_hand drops by 5');

# --- cart failures ------------------------------------------------------------------
$before = items_snapshot($n, map { ipath(@$_) } @CART, [ 'C-4', 'w1' ]);
cart_short_ok(cart({ lines => [ { sku => 'C-1', location => 'w1', quantity => 2 },
                                { sku => 'C-2', location => 'w1', quantity => 1 },
                                { sku => 'C-3', location => 'w2', quantity => 6 } ] }),
              [[ 'C-1', 'w1', 2, 1 ], [ 'C-3', 'w2', 6, 5 ]],
              'cart with two short items: 409 naming both, not the one that fits');
cart_short_ok(cart({ lines => [ { sku => 'C-3', location => 'w2', quantity => 1000000000 } ] }),
              [[ 'C-3', 'w2', 1000000000, 5 ]], 'cart line of 10^9: 409');
problem_ok(cart({ lines => [ { sku => 'C-1', location => 'w1', quantity => 1 },
                             { sku => 'C-4', location => 'w1', quantity => 1 } ] }),
           404, 'not-found', 'cart with an unknown item: 404');
problem_ok(cart({ lines => [ { sku => 'C-1', location => 'w9', quantity => 1 } ] }),
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
    problem_ok(cart($body), 400, 'invalid-request', "cart, $what: 400 field $field",
               field => $field);
}
problem_ok($n->req(POST => '/v1/reservations', body => '{"lines":[{"sku":"C-1","location":"w1","quantity":2.0}]}',
                   headers => { 'Content-Type' => 'application/json' }),
           400, 'invalid-request', 'cart quantity 2.0: 400', field => 'lines[0].quantity');
problem_ok($n->req(POST => '/v1/reservations', body => encode_json({ lines => [] })),
           415, 'unsupported-media-type', 'cart without Content-Type: 415');
unchanged($before, 'no failed cart changed anything');

# --- 100 lines is the maximum -------------------------------------------------------
item_ok(put('C-100', 'w1', { on_hand => 1000 }), 201, {}, 'setup: C-100/w1 1000');
$r = cart({ lines => [ map { { sku => 'C-100', location => 'w1', quantity => 1 } } 1 .. 100 ] });
reservation_ok($r, 201, { state => 'active' }, 'a cart of 100 lines: 201');
is(scalar @{ ($r->{json} // {})->{lines} // [] }, 100, '... with 100 lines');
counts_ok('C-100', 'w1', 1000, 100, '... reserving 100, one event per line',
          version => 101);
$r = release(($r->{json} // {})->{id} // 'r_0000000000000000000000');
reservation_ok($r, 200, { state => 'released' }, 'release the 100 lines');
counts_ok('C-100', 'w1', 1000, 0, '... all returned', version => 201);

# ==========================================================================
# short TTL: expiry by the module
# ==========================================================================

item_ok(put('E-1', 'x', { on_hand => 5, min_level => 0 }), 201, {}, 'setup: E-1/x 5');
item_ok(put('E-2', 'x', { on_hand => 4, min_level => 0 }), 201, {}, 'setup: E-2/x 4');
my $te = time;
$r = reserve('E-1', 'x', { quantity => 2, ttl_seconds => 1 });
reservation_ok($r, 201, { ttl => 1 }, 'reservation with ttl_seconds 1: 201');
my $eid1 = ($r->{json} // {})->{id} // 'r_0000000000000000000000';
$r = cart({ lines => [ { sku => 'E-1', location => 'x', quantity => 1 },
                       { sku => 'E-2', location => 'x', quantity => 4 } ], ttl_seconds => 1 });
reservation_ok($r, 201, { ttl => 1 }, 'cart with ttl_seconds 1: 201');
my $eid2 = ($r->{json} // {})->{id} // 'r_0000000000000000000000';
my $eid2_exp = ts_ms(($r->{json} // {})->{expires_at} // '');
$r = reserve('E-1', 'x', { quantity => 1, ttl_seconds => 1 });
my $eid3 = ($r->{json} // {})->{id} // 'r_0000000000000000000000';
counts_ok('E-1', 'x', 5, 4, 'E-1 holds 2+1+1');
counts_ok('E-2', 'x', 4, 4, 'E-2 holds 4');

# commit just after expires_at, most likely before the sweeper ran
sleep 0.02 while time * 1000 < ($eid2_exp // 0) + 30 && time - $te < 3;
$r = commit($eid2);
problem_ok($r, 409, 'reservation-not-active', 'commit just after expires_at: 409');
is(($r->{json} // {})->{state}, 'expired', '... with state expired')
    or diag InvTest::show($r);

sleep 0.1 while time - $te < 2.5;
my %st;
# the contract: expired within 2 s of expires_at (t/34 checks the bound
# from the events' times; here, with room for a slow setup)
for (1 .. 100) {
    %st = map { $_ => (get("/v1/reservations/$_")->{json} // {})->{state} // '?' }
          $eid1, $eid2, $eid3;
    last if 3 == grep { $_ eq 'expired' } values %st;
    last if time - $te > 10;
    sleep 0.1;
}
my $r1 = get("/v1/reservations/$eid1");
reservation_ok($r1, 200, { id => $eid1, state => 'expired' },
               sprintf('after %.1f s the ttl-1 reservation is expired, with ended_at',
                       time - $te));
reservation_ok(get("/v1/reservations/$eid2"), 200, { id => $eid2, state => 'expired' },
               'the ttl-1 cart is expired');
is($st{$eid3}, 'expired', 'the third ttl-1 reservation is expired');
counts_ok('E-1', 'x', 5, 0, 'E-1: stock returned');
counts_ok('E-2', 'x', 4, 0, 'E-2: stock returned');
{
    my $ev = eval { item_events($n, 'E-1', 'x') } // [];
    my @exp = grep { $_->{type} eq 'ReservationExpired' } @$ev;
    my %q = map { ($_->{data}{reservation_id} // '') => $_->{data}{quantity} } @exp;
    is_deeply(\%q, { $eid1 => 2, $eid2 => 1, $eid3 => 1 },
              'E-1: one ReservationExpired per reservation, with id and quantity')
        or diag explain $ev;
    my ($e) = grep { ($_->{data}{reservation_id} // '') eq $eid1 } @exp;
    is($e->{at}, $r1->{json}{ended_at}, 'ReservationExpired at == ended_at')
        if $e && ref $r1->{json} eq 'HASH';
    my $ev2 = eval { item_events($n, 'E-2', 'x') } // [];
    is(join(' ', map { $_->{type} } @$ev2),
       'StockCounted StockReserved ReservationExpired', 'E-2 events end in ReservationExpired');
}
for my $c ([ \&commit, 'commit' ], [ \&release, 'release' ]) {
    $r = $c->[0]->($eid1);
    problem_ok($r, 409, 'reservation-not-active', "$c->[1] of an expired reservation: 409");
    is(($r->{json} // {})->{state}, 'expired', '... with state expired')
        or diag InvTest::show($r);
}
counts_ok('E-1', 'x', 5, 0, 'E-1 unchanged by them');

$n->stop;
done_testing;
