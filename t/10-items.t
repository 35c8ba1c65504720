# Stock-item routes: GET/HEAD/PUT item, adjustments, aggregate; status
# codes, JSON shape, ETag and conditional requests, versions.
use strict;
use warnings;
use Test::More;
use InvTest qw(item_ok problem_ok json_type);

my $n = InvTest->start;

my $ITEM = '/v1/inventory/A-1/store-7';

sub put  { my ($p, $j, %o) = @_; $n->req(PUT => $p, json => $j, %o) }
sub adj  {
    my ($p, $d, %o) = @_;
    my %body = (delta => $d);
    $body{reason} = delete $o{reason} if exists $o{reason};
    $n->req(POST => "$p/adjustments", json => \%body, %o);
}

# --- unknown item ----------------------------------------------------------
problem_ok($n->get($ITEM), 404, 'not-found', 'GET unknown item is 404 not-found');
is($n->req(HEAD => $ITEM)->{status}, 404, 'HEAD unknown item is 404');

# --- PUT creates: StockCounted + LowStockDetected ---------------------------
my $r = put($ITEM, { on_hand => 5, min_level => 10 });
item_ok($r, 201, { sku => 'A-1', location => 'store-7', on_hand => 5,
                   reserved => 0, available => 5, min_level => 10,
                   low_stock => 1, version => 2 },
        'PUT new item: 201, low stock, version 2 (counted + low-stock)');

$r = $n->get($ITEM);
item_ok($r, 200, { sku => 'A-1', location => 'store-7', on_hand => 5,
                   reserved => 0, available => 5, min_level => 10,
                   low_stock => 1, version => 2 },
        'GET returns the item');
my $first = $r->{json};

$r = $n->get($ITEM);
is_deeply($r->{json}, $first, 'GET does not change the item (version, updated_at)')
    or diag InvTest::show($r);

# --- HEAD -------------------------------------------------------------------
$r = $n->req(HEAD => $ITEM);
is($r->{status}, 200, 'HEAD item is 200');
is($r->{body}, '', 'HEAD has no body');
is($r->{headers}{etag}, '"2"', 'HEAD carries the ETag');
like($r->{content_type}, qr{^application/json}i, 'HEAD content type is JSON');

# --- conditional GET --------------------------------------------------------
for my $c (['"2"', 'exact ETag'], ['*', 'star'], ['"1", "2", "3"', 'a list'],
           ['"7","2"', 'a list without spaces'], ['W/"2"', 'weak ETag'])
{
    my ($inm, $what) = @$c;
    $r = $n->req(GET => $ITEM, headers => { 'If-None-Match' => $inm });
    is($r->{status}, 304, "If-None-Match $what ($inm) gives 304")
        or diag InvTest::show($r);
    is($r->{body}, '', "304 ($what) has no body");
}
$r = $n->req(GET => $ITEM, headers => { 'If-None-Match' => '"2"' });
is($r->{headers}{etag}, '"2"', '304 carries the ETag');

$r = $n->req(HEAD => $ITEM, headers => { 'If-None-Match' => '"2"' });
is($r->{status}, 304, 'HEAD with matching If-None-Match gives 304');

$r = $n->req(GET => $ITEM, headers => { 'If-None-Match' => '"1"' });
item_ok($r, 200, { version => 2 }, 'If-None-Match with an old ETag gives 200');
$r = $n->req(GET => $ITEM, headers => { 'If-None-Match' => '"1", W/"3"' });
item_ok($r, 200, { version => 2 }, 'If-None-Match list without the ETag gives 200');
$r = $n->req(GET => $ITEM, headers => { 'If-None-Match' => '"22"' });
item_ok($r, 200, { version => 2 }, 'If-None-Match "22" does not match version 2');

# --- adjustments --------------------------------------------------------------
$r = adj($ITEM, -1);
item_ok($r, 200, { on_hand => 4, available => 4, min_level => 10,
                   low_stock => 1, version => 3 },
        'adjustment -1: 200, still low, version 3 (no new detection)');

$r = adj($ITEM, 100, reason => 'delivery 42');
item_ok($r, 200, { on_hand => 104, available => 104, min_level => 10,
                   low_stock => 0, version => 4 },
        'adjustment +100: 200, not low, version 4');
ok($r->{json}{updated_at} ge $first->{updated_at},
   'updated_at does not go backwards') or diag InvTest::show($r);

$r = $n->req(GET => $ITEM, headers => { 'If-None-Match' => '"2"' });
item_ok($r, 200, { version => 4 }, 'old ETag no longer gives 304 after a write');

# --- PUT existing: min_level kept when omitted ------------------------------
$r = put($ITEM, { on_hand => 1 });
item_ok($r, 200, { on_hand => 1, min_level => 10, low_stock => 1,
                   version => 6 },
        'PUT existing without min_level: 200, min_level kept, version 6 '
        . '(counted + low-stock)');

$r = put($ITEM, { on_hand => 50, min_level => 0, reason => 'recount' });
item_ok($r, 200, { on_hand => 50, min_level => 0, low_stock => 0,
                   version => 7 },
        'PUT with min_level 0 and reason: 200, version 7');

$r = put($ITEM, { on_hand => 50, min_level => 50 });
item_ok($r, 200, { on_hand => 50, min_level => 50, low_stock => 0,
                   version => 8 },
        'available == min_level is not low stock');

$r = put($ITEM, { on_hand => 49 });
item_ok($r, 200, { on_hand => 49, min_level => 50, low_stock => 1,
                   version => 10 },
        'available < min_level turns low (counted + low-stock)');

$r = put($ITEM, { on_hand => 49 });
item_ok($r, 200, { on_hand => 49, min_level => 50, low_stock => 1,
                   version => 11 },
        'PUT with same values still appends one event, no new detection');

$r = $n->get($ITEM);
item_ok($r, 200, { on_hand => 49, version => 11 }, 'GET sees the last write');

# --- If-Match on writes (match) ---------------------------------------------
$r = put($ITEM, { on_hand => 60 }, headers => { 'If-Match' => '"11"' });
item_ok($r, 200, { on_hand => 60, version => 12 }, 'PUT with matching If-Match');
$r = $n->req(POST => "$ITEM/adjustments", json => { delta => 5 },
             headers => { 'If-Match' => '"12"' });
item_ok($r, 200, { on_hand => 65, version => 13 },
        'adjustment with matching If-Match');
$r = put($ITEM, { on_hand => 65 }, headers => { 'If-Match' => '*' });
item_ok($r, 200, { on_hand => 65, version => 14 },
        'PUT with If-Match * on an existing item');

# --- adjustment creates an item ----------------------------------------------
my $B = '/v1/inventory/B-2/dock_1';
$r = adj($B, -1);
problem_ok($r, 404, 'not-found', 'negative adjustment on unknown item is 404');
problem_ok($n->get($B), 404, 'not-found', '... and did not create it');

$r = adj($B, 3, reason => 'first delivery');
item_ok($r, 201, { sku => 'B-2', location => 'dock_1', on_hand => 3,
                   reserved => 0, available => 3, min_level => 0,
                   low_stock => 0, version => 1 },
        'positive adjustment on unknown item creates it: 201, version 1');
$r = adj($B, 2);
item_ok($r, 200, { on_hand => 5, version => 2 }, 'next adjustment is 200');
$r = adj($B, -5);
item_ok($r, 200, { on_hand => 0, available => 0, version => 3,
                   low_stock => 0 },
        'adjustment down to exactly 0 is allowed');

# --- PUT new item without min_level --------------------------------------------
$r = put('/v1/inventory/C.3/loc:9', { on_hand => 0 });
item_ok($r, 201, { sku => 'C.3', location => 'loc:9', on_hand => 0,
                   min_level => 0, low_stock => 0, version => 1 },
        'PUT new item on_hand 0 without min_level: min_level 0, version 1');

# --- boundaries ----------------------------------------------------------------
my $MAX = 9007199254740991;
$r = put('/v1/inventory/MAX/x', { on_hand => $MAX, min_level => $MAX });
item_ok($r, 201, { on_hand => $MAX, min_level => $MAX, available => $MAX,
                   low_stock => 0, version => 1 },
        'on_hand and min_level 2^53-1 accepted');
$r = adj('/v1/inventory/MAX/x', -1000000000);
item_ok($r, 200, { on_hand => $MAX - 1000000000, low_stock => 1,
                   version => 3 },
        'delta -10^9 accepted (and turns low)');
$r = adj('/v1/inventory/MAX/x', 1000000000);
item_ok($r, 200, { on_hand => $MAX, low_stock => 0, version => 4 },
        'delta +10^9 back up to exactly 2^53-1 accepted');
$r = adj('/v1/inventory/MAX/y', 1000000000);
item_ok($r, 201, { on_hand => 1000000000, version => 1 },
        'delta 10^9 creating an item');

my $id64 = 'S' x 64;
my $loc64 = join '', map { ('a' .. 'z', 'A' .. 'Z', 0 .. 9, '.', '_', '-', ':')[$_ % 66] } 0 .. 63;
$r = put("/v1/inventory/$id64/$loc64", { on_hand => 1 });
item_ok($r, 201, { sku => $id64, location => $loc64, version => 1 },
        '64-character sku and location with every allowed character class');
item_ok($n->get("/v1/inventory/$id64/$loc64"), 200, { sku => $id64, location => $loc64 },
        '... and it reads back');

# --- identifiers are exact: no separator collisions, case-sensitive ------------
put('/v1/inventory/K:1/L', { on_hand => 11 });
put('/v1/inventory/K/1:L', { on_hand => 22 });
item_ok($n->get('/v1/inventory/K:1/L'), 200, { sku => 'K:1', location => 'L', on_hand => 11 },
        "sku 'K:1' at 'L' is distinct ...");
item_ok($n->get('/v1/inventory/K/1:L'), 200, { sku => 'K', location => '1:L', on_hand => 22 },
        "... from sku 'K' at '1:L'");
problem_ok($n->get('/v1/inventory/a-1/store-7'), 404, 'not-found',
           'identifiers are case-sensitive (a-1 is not A-1)');

# --- Content-Type variants accepted -------------------------------------------
for my $ct ('application/json; charset=utf-8', 'Application/JSON',
            'application/json;charset=UTF-8')
{
    $r = $n->req(PUT => '/v1/inventory/CT/1', body => '{"on_hand":3}',
                 headers => { 'Content-Type' => $ct });
    ok($r->{status} == 200 || $r->{status} == 201,
       "Content-Type '$ct' is accepted") or diag InvTest::show($r);
}

# --- bodies: UTF-8 reason, whitespace, chunked, large (temp file) ------------
$r = $n->req(POST => '/v1/inventory/CT/1/adjustments',
             body => qq({"delta":1,"reason":"Z\xc3\xa4hlung \xe2\x9c\x93 \\u00e9"}),
             headers => { 'Content-Type' => 'application/json' });
item_ok($r, 200, { on_hand => 4 }, 'UTF-8 reason with a \u escape accepted');

$r = $n->req(PUT => '/v1/inventory/CT/1',
             body => qq( \n\t{ "reason" : "x" , "on_hand" : 7 }\r\n ),
             headers => { 'Content-Type' => 'application/json' });
item_ok($r, 200, { on_hand => 7 }, 'whitespace around tokens and members in any order');

$r = $n->req(PUT => '/v1/inventory/CT/1',
             body => '{"on_hand":8,"reason":"' . ('r' x 256) . '"}',
             headers => { 'Content-Type' => 'application/json' });
item_ok($r, 200, { on_hand => 8 }, 'reason of exactly 256 bytes accepted');

$r = $n->req(PUT => '/v1/inventory/CT/1',
             body => '{"on_hand":9,"reason":"' . ("\xc3\xa9" x 128) . '"}',
             headers => { 'Content-Type' => 'application/json' });
item_ok($r, 200, { on_hand => 9 }, 'reason of 128 two-byte characters (256 bytes) accepted');

my $chunked = "5\r\n{\"on_\r\n" . "4\r\nhand\r\n" . "5\r\n\":10}\r\n" . "0\r\n\r\n";
$r = $n->raw_req(PUT => '/v1/inventory/CT/1',
                 headers => [ 'Content-Type' => 'application/json',
                              'Transfer-Encoding' => 'chunked' ],
                 body => $chunked);
item_ok($r, 200, { on_hand => 10 }, 'chunked request body');

my $big = '{"on_hand":11,' . (' ' x 40000) . '"reason":"big"}';
$r = $n->req(PUT => '/v1/inventory/CT/1', body => $big,
             headers => { 'Content-Type' => 'application/json' });
item_ok($r, 200, { on_hand => 11 },
        '40 KB body (larger than client_body_buffer_size: temp file)');

# --- aggregate -------------------------------------------------------------------
put('/v1/inventory/AGG-1/zeta', { on_hand => 7, min_level => 1 });
put('/v1/inventory/AGG-1/alpha', { on_hand => 5 });
adj('/v1/inventory/AGG-1/m-2', 30);
put('/v1/inventory/AGG/x', { on_hand => 1000 });        # a prefix of AGG-1
put('/v1/inventory/AGG-10/a', { on_hand => 2000 });     # AGG-1 is its prefix

$r = $n->get('/v1/inventory/AGG-1');
{
    my @p;
    push @p, "status $r->{status}" unless $r->{status} == 200;
    push @p, "content-type $r->{content_type}"
        unless $r->{content_type} =~ m{^application/json}i;
    my $j = $r->{json};
    if (ref $j ne 'HASH') {
        push @p, 'not an object';
    } else {
        for my $k (qw(on_hand reserved available)) {
            my $t = json_type($j->{$k});
            push @p, "$k is $t" unless $t eq 'number';
        }
        push @p, "sku is " . ($j->{sku} // 'null') unless ($j->{sku} // '') eq 'AGG-1';
        push @p, "on_hand is $j->{on_hand}, expected 42" unless ($j->{on_hand} // -1) == 42;
        push @p, "reserved is $j->{reserved}, expected 0" unless ($j->{reserved} // -1) == 0;
        push @p, "available is $j->{available}, expected 42" unless ($j->{available} // -1) == 42;
        my @extra = grep { !/^(sku|on_hand|reserved|available|locations)\z/ } sort keys %$j;
        push @p, "unexpected members: @extra" if @extra;
        if (ref $j->{locations} ne 'ARRAY') {
            push @p, 'locations is not an array';
        } else {
            my @locs = map { ref $_ eq 'HASH' ? $_->{location} // '?' : '?' } @{ $j->{locations} };
            push @p, "locations are (@locs), expected (alpha m-2 zeta)"
                unless "@locs" eq 'alpha m-2 zeta';
            for my $it (@{ $j->{locations} }) {
                my @ip = InvTest::item_problems($it, { sku => 'AGG-1' });
                push @p, map { "locations item: $_" } @ip;
            }
            my %by = map { ($_->{location} // '') => $_ } grep { ref $_ eq 'HASH' } @{ $j->{locations} };
            push @p, 'zeta item wrong' unless ($by{zeta}{on_hand} // -1) == 7 && ($by{zeta}{min_level} // -1) == 1;
            push @p, 'm-2 item wrong' unless ($by{'m-2'}{on_hand} // -1) == 30 && ($by{'m-2'}{version} // -1) == 1;
        }
    }
    ok(!@p, 'aggregate: sums over 3 locations, ordered by location, no '
            . 'prefix-sharing SKUs')
        or diag join("\n", @p) . "\n" . InvTest::show($r);
}

$r = $n->get('/v1/inventory/AGG');
my $aj = ref $r->{json} eq 'HASH' ? $r->{json} : {};
ok($r->{status} == 200 && ($aj->{on_hand} // -1) == 1000
   && ref $aj->{locations} eq 'ARRAY' && @{ $aj->{locations} } == 1,
   'aggregate of SKU AGG holds only its own location')
    or diag InvTest::show($r);

$r = $n->req(HEAD => '/v1/inventory/AGG-1');
is($r->{status}, 200, 'HEAD aggregate is 200');
is($r->{body}, '', 'HEAD aggregate has no body');

problem_ok($n->get('/v1/inventory/NOPE'), 404, 'not-found',
           'aggregate of an unknown SKU is 404');

# --- unknown routes --------------------------------------------------------------
# (GET /v1/inventory is the list of changed items: t/38-bulk-reads.t)
for my $p ('/v1/', '/v1/nope', '/v1/inventory/',
           '/v1/inventory/A-1/store-7/nope',
           '/v1/inventory/A-1/store-7/adjustments/x',
           '/v1/inventories/A-1/store-7')
{
    problem_ok($n->get($p), 404, 'not-found', "GET $p is 404 not-found");
}

# --- 405 with Allow ----------------------------------------------------------------
for my $c ([DELETE => $ITEM, [qw(GET HEAD PUT)]],
           [POST => $ITEM, [qw(GET HEAD PUT)]],
           [PATCH => $ITEM, [qw(GET HEAD PUT)]],
           [GET => "$ITEM/adjustments", ['POST']],
           [PUT => "$ITEM/adjustments", ['POST']],
           [DELETE => '/v1/inventory/AGG-1', [qw(GET HEAD)]],
           [PUT => '/v1/inventory/AGG-1', [qw(GET HEAD)]])
{
    my ($m, $p, $allow) = @$c;
    problem_ok($n->req($m => $p), 405, 'method-not-allowed',
               "$m $p is 405 with Allow: @$allow", allow => $allow);
}

item_ok($n->get($ITEM), 200, { on_hand => 65, version => 14 },
        'the item is unchanged by the 404/405 requests');

# --- metrics -------------------------------------------------------------------
$r = $n->get('/metrics');
is($r->{status}, 200, 'GET /metrics is 200');
like($r->{content_type}, qr{^text/plain}i, '/metrics is text/plain');
like($r->{body}, qr/^inventory_/m, '/metrics has inventory_ metric lines');
problem_ok($n->req(POST => '/metrics', json => {}), 405, 'method-not-allowed',
           'POST /metrics is a 405 problem', allow => [qw(GET HEAD)]);
like($r->{body}, qr/^# TYPE inventory_/m, '/metrics has # TYPE lines');

$n->stop;
done_testing;
