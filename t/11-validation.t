# Bad requests: each gives the right status and problem+json code, and
# changes nothing (the items read back identical, version included).
use strict;
use warnings;
use Test::More;
use InvTest qw(item_ok problem_ok encode_json);

my $n = InvTest->start;

my $BASE = '/v1/inventory/V-1/loc-1';
my $OV   = '/v1/inventory/OV/1';
my $MAX  = 9007199254740991;

item_ok($n->req(PUT => $BASE, json => { on_hand => 10, min_level => 2 }),
        201, { on_hand => 10, min_level => 2, version => 1 }, 'setup: base item');
item_ok($n->req(PUT => $OV, json => { on_hand => $MAX }),
        201, { on_hand => $MAX, version => 1 }, 'setup: item at 2^53-1');

my %snap = map { $_ => $n->req(GET => $_)->{json} } $BASE, $OV;

my %CODE = (400 => 'invalid-request', 404 => 'not-found',
            405 => 'method-not-allowed', 409 => 'insufficient-stock',
            412 => 'version-mismatch', 415 => 'unsupported-media-type');

my @cases;

sub put_case { my ($name, $body, %c) = @_;
    push @cases, { name => $name, method => 'PUT', path => $BASE,
                   body => $body, status => 400, %c } }
sub adj_case { my ($name, $body, %c) = @_;
    push @cases, { name => $name, method => 'POST', path => "$BASE/adjustments",
                   body => $body, status => 400, %c } }

# --- path identifiers ---------------------------------------------------------
my $S65 = 'S' x 65;
my @bad_ids = (
    # [label, sku, location, expected status(es), field]
    ['sku of 65 chars',       $S65,     'loc-1',   400, 'sku'],
    ['location of 65 chars',  'V-1',    'L' x 65,  400, 'location'],
    ["sku with '!'",          'a!b',    'loc-1',   400, 'sku'],
    ["location with '!'",     'V-1',    'x!',      400, 'location'],
    ['sku with %20',          'a%20b',  'loc-1',   400, 'sku'],
    ["sku with '!' as %21",   'a%21b',  'loc-1',   400, 'sku'],
    ["location with %21",     'V-1',    'x%21',    400, 'location'],
    ["sku 'ä' (%C3%A4)",      '%C3%A4', 'loc-1',   400, 'sku'],
    ["location 'ä' (%C3%A4)", 'V-1',    'l%C3%A4', 400, 'location'],
    ['sku with %FF',          'a%FFb',  'loc-1',   400, 'sku'],
    ["sku with '+'",          'a+b',    'loc-1',   400, 'sku'],
    ["sku with ';'",          'a;b',    'loc-1',   400, 'sku'],
    ["sku with '~'",          'a~b',    'loc-1',   400, 'sku'],
    ["sku with '*'",          'a*b',    'loc-1',   400, 'sku'],
    ["sku with '\@'",         'a@b',    'loc-1',   400, 'sku'],
    ["sku with %2F (slash)",  'a%2Fb',  'loc-1',   [400, 404], 'sku'],
    ["sku '..'",              '..',     'loc-1',   [400, 404, 405], 'sku'],
    ["location '..'",         'V-1',    '..',      [400, 404, 405], 'location'],
    ["sku %2E%2E",            '%2E%2E', 'loc-1',   [400, 404, 405], 'sku'],
    ["location %2e%2e",       'V-1',    '%2e%2e',  [400, 404, 405], 'location'],
    ['empty sku segment',     '',       'loc-1',   [400, 404, 405], 'sku'],
    ['empty location segment', 'V-1',   '',        [400, 404, 405], 'location'],
);
for my $b (@bad_ids) {
    my ($label, $sku, $loc, $st, $field) = @$b;
    my $path = "/v1/inventory/$sku/$loc";
    my @absent = ($path);
    push @absent, '/v1/inventory/' . ('S' x 64) . '/loc-1' if $sku eq $S65;
    push @absent, '/v1/inventory/V-1/' . ('L' x 64) if length $loc == 65;
    push @cases,
        { name => "PUT, $label", method => 'PUT', path => $path,
          body => '{"on_hand":1}', status => $st, field => $field,
          absent => \@absent },
        { name => "adjustment, $label", method => 'POST',
          path => "$path/adjustments", body => '{"delta":1}', status => $st,
          field => $field, absent => \@absent },
        { name => "GET, $label", method => 'GET', path => $path,
          status => $st, field => $field };
}
push @cases,
    { name => 'GET aggregate, sku with !', method => 'GET',
      path => '/v1/inventory/a!b', status => 400, field => 'sku' },
    { name => 'GET aggregate, sku of 65 chars', method => 'GET',
      path => "/v1/inventory/$S65", status => 400, field => 'sku' },
    { name => 'PUT, sku with %00', method => 'PUT',
      path => '/v1/inventory/a%00b/loc-1', body => '{"on_hand":1}',
      status => 400, field => 'sku', nginx_ok => 1 };

# --- on_hand -----------------------------------------------------------------
for my $v ('1.5', '1e3', '1E3', '1.0', '1e-3', '0.5e1', '-0.0', '"5"', 'true',
           'false', 'null', '-1', '9007199254740992', '99999999999999999999999',
           '[1]', '{}', '{"x":[1,2,{"y":null}]}', '""')
{
    put_case("on_hand $v", qq({"on_hand":$v}), field => 'on_hand');
}
put_case('on_hand 01 (leading zero)', '{"on_hand":01}', field => [qw(on_hand body)]);
put_case('on_hand missing ({})', '{}', field => 'on_hand');
put_case('on_hand missing (min_level only)', '{"min_level":3}', field => 'on_hand');
put_case('on_hand missing (reason only)', '{"reason":"x"}', field => 'on_hand');

# --- min_level ---------------------------------------------------------------
for my $v ('-1', '1.5', '"3"', '9007199254740992', 'null', 'true', '[]') {
    put_case("min_level $v", qq({"on_hand":1,"min_level":$v}), field => 'min_level');
}

# --- reason ------------------------------------------------------------------
for my $v ('5', 'null', 'true', '[]', '{}') {
    put_case("reason $v", qq({"on_hand":1,"reason":$v}), field => 'reason');
}
put_case('reason of 257 bytes', '{"on_hand":1,"reason":"' . ('r' x 257) . '"}',
         field => 'reason');
put_case('reason of 129 two-byte chars (258 bytes)',
         '{"on_hand":1,"reason":"' . ("\xc3\xa9" x 129) . '"}', field => 'reason');
put_case('reason of 60 KB', '{"on_hand":1,"reason":"' . ('r' x 60000) . '"}',
         field => 'reason');
put_case('reason of 100 KB: the body is over 64 KiB',
         '{"on_hand":1,"reason":"' . ('r' x 100000) . '"}', field => 'body');
put_case('reason with invalid UTF-8 (ff fe)', qq({"on_hand":1,"reason":"a\xff\xfeb"}),
         field => [qw(reason body)]);
put_case('reason with overlong UTF-8 (c0 af)', qq({"on_hand":1,"reason":"a\xc0\xafb"}),
         field => [qw(reason body)]);
put_case('reason with truncated UTF-8 (e2 9c)', qq({"on_hand":1,"reason":"a\xe2\x9c"}),
         field => [qw(reason body)]);

# --- members -----------------------------------------------------------------
put_case('unknown member', '{"on_hand":1,"foo":1}', field => 'foo');
put_case('unknown member first', '{"bar":"x","on_hand":1}', field => 'bar');
put_case('delta is unknown on PUT', '{"on_hand":1,"delta":1}', field => 'delta');
put_case('member names are case-sensitive', '{"On_hand":1}', field => [qw(On_hand on_hand)]);
put_case('unknown member with nested garbage', '{"on_hand":1,"x":{"y":[[[]]],"z":null}}',
         field => 'x');
put_case('duplicate member on_hand', '{"on_hand":1,"on_hand":2}');
put_case('duplicate member reason', '{"on_hand":1,"reason":"a","reason":"b"}');
put_case('1000 unknown members',
         '{"on_hand":1' . join('', map { qq(,"k$_":1) } 1 .. 1000) . '}');

# --- the body as a whole -----------------------------------------------------
for my $c (['not JSON', 'hello'],
           ['truncated object', '{"on_hand":1'],
           ['truncated after colon', '{"on_hand":'],
           ['lone brace', '{'],
           ['JSON array', '[1]'],
           ['empty JSON array', '[]'],
           ['array of the object', '[{"on_hand":1}]'],
           ['JSON string', '"x"'],
           ['JSON number', '1'],
           ['JSON null', 'null'],
           ['trailing garbage', '{"on_hand":1} x'],
           ['two objects', '{"on_hand":1}{"on_hand":2}'],
           ['trailing comma', '{"on_hand":1,}'],
           ['single quotes', q({'on_hand':1})],
           ['unquoted member name', '{on_hand:1}'],
           ['trailing NUL byte', qq({"on_hand":1}\0)],
           ['deeply nested arrays', '[' x 100000])
{
    put_case("body: $c->[0]", $c->[1], field => 'body');
}
put_case('body: empty (Content-Length 0)', '', field => 'body');
put_case('body: none at all', undef, ct => 'application/json', field => 'body');
put_case('body: deep nesting inside a member',
         '{"on_hand":' . ('[' x 5000) . (']' x 5000) . '}',
         field => [qw(on_hand body)]);

# --- Content-Type ------------------------------------------------------------
for my $ct ('text/plain', 'application/jsonx', 'application/json-patch+json',
            'application/x-www-form-urlencoded', 'text/json',
            'multipart/form-data; boundary=x', 'application/problem+json',
            'json')
{
    put_case("Content-Type $ct", '{"on_hand":1}', ct => $ct, status => 415);
}
put_case('Content-Type missing', '{"on_hand":1}', ct => undef, raw => 1,
         status => 415);
put_case('Content-Type empty', '{"on_hand":1}', ct => '', raw => 1,
         status => 415);
put_case('Content-Type missing and no body', undef, ct => undef, raw => 1,
         status => 415);
put_case('Content-Type text/plain with a bad body', 'hello', ct => 'text/plain',
         status => 415);
adj_case('adjustment Content-Type text/plain', '{"delta":1}', ct => 'text/plain',
         status => 415);
adj_case('adjustment Content-Type missing', '{"delta":1}', ct => undef, raw => 1,
         status => 415);

# --- delta -------------------------------------------------------------------
for my $v ('0', '-0', '1000000001', '-1000000001', '2.5', '1e2', '1.0', '"1"',
           'true', 'null', '[1]', '{}', '9007199254740993')
{
    adj_case("delta $v", qq({"delta":$v}), field => 'delta');
}
adj_case('delta missing', '{}', field => 'delta');
adj_case('delta missing (reason only)', '{"reason":"x"}', field => 'delta');
adj_case('on_hand is unknown on adjustments', '{"delta":1,"on_hand":1}',
         field => 'on_hand');
adj_case('min_level is unknown on adjustments', '{"delta":1,"min_level":1}',
         field => 'min_level');
adj_case('adjustment reason of 257 bytes',
         '{"delta":1,"reason":"' . ('r' x 257) . '"}', field => 'reason');
adj_case('adjustment reason not a string', '{"delta":1,"reason":7}',
         field => 'reason');
adj_case('adjustment duplicate delta', '{"delta":1,"delta":1}');
adj_case('adjustment body not JSON', 'x', field => 'body');
adj_case('adjustment body empty', '', field => 'body');
adj_case('adjustment body an array', '[{"delta":1}]', field => 'body');
adj_case('adjustment trailing garbage', '{"delta":1}]', field => 'body');

# --- 409, 412, 404 -----------------------------------------------------------
adj_case('delta -11 below zero', '{"delta":-11}', status => 409,
         available => 10);
adj_case('delta -1000000000 below zero', '{"delta":-1000000000}', status => 409,
         available => 10);
push @cases,
    { name => 'delta +1 past 2^53-1', method => 'POST', path => "$OV/adjustments",
      body => '{"delta":1}', status => 409, available => $MAX },
    { name => 'delta +10^9 past 2^53-1', method => 'POST', path => "$OV/adjustments",
      body => '{"delta":1000000000}', status => 409 };
put_case('PUT If-Match mismatch', '{"on_hand":3}',
         headers => { 'If-Match' => '"999"' }, status => 412);
put_case('PUT If-Match "0"', '{"on_hand":3}',
         headers => { 'If-Match' => '"0"' }, status => 412);
put_case('PUT If-Match list without the version', '{"on_hand":3}',
         headers => { 'If-Match' => '"2", "3"' }, status => 412);
adj_case('adjustment If-Match mismatch', '{"delta":1}',
         headers => { 'If-Match' => '"2"' }, status => 412);
push @cases,
    { name => 'negative adjustment on unknown item', method => 'POST',
      path => '/v1/inventory/V-1/nowhere/adjustments', body => '{"delta":-1}',
      status => 404, absent => ['/v1/inventory/V-1/nowhere'] };

# --- 405 ---------------------------------------------------------------------
for my $c ([DELETE => $BASE, [qw(GET HEAD PUT)]],
           [POST => $BASE, [qw(GET HEAD PUT)]],
           [PATCH => $BASE, [qw(GET HEAD PUT)]],
           [GET => "$BASE/adjustments", ['POST']],
           [PUT => "$BASE/adjustments", ['POST']],
           [DELETE => "$BASE/adjustments", ['POST']],
           [POST => '/v1/inventory/V-1', [qw(GET HEAD)]],
           [PUT => '/v1/inventory/V-1', [qw(GET HEAD)]],
           [DELETE => '/v1/inventory/V-1', [qw(GET HEAD)]])
{
    push @cases, { name => "$c->[0] not allowed", method => $c->[0],
                   path => $c->[1], status => 405, allow => $c->[2] };
}

# --- run ---------------------------------------------------------------------
for my $c (@cases) {
    my %h = %{ $c->{headers} // {} };
    my $ct = exists $c->{ct} ? $c->{ct}
           : defined $c->{body} ? 'application/json' : undef;
    $h{'Content-Type'} = $ct if defined $ct;

    my $r = $n->req($c->{method}, $c->{path}, headers => \%h,
                    (defined $c->{body} ? (body => $c->{body}) : ()),
                    raw => $c->{raw});

    my @st = ref $c->{status} ? @{ $c->{status} } : ($c->{status});
    my ($want) = grep { $_ == $r->{status} } @st;
    $want //= $st[0];
    my $shown_path = length $c->{path} > 60
                     ? substr($c->{path}, 0, 57) . '...' : $c->{path};
    my $name = "$c->{name}: $c->{method} $shown_path -> "
               . join('/', @st);

    if ($c->{nginx_ok} && $r->{status} == 400
        && $r->{content_type} !~ /problem\+json/)
    {
        pass("$name (rejected by nginx itself)");
    } else {
        problem_ok($r, $want, $c->{code} // $CODE{$want}, $name,
                   (defined $c->{field} ? (field => $c->{field}) : ()),
                   ($c->{allow} ? (allow => $c->{allow}) : ()),
                   (defined $c->{available}
                    ? (available => $c->{available}) : ()));
    }

    my @changed;
    for my $p ($BASE, $OV) {
        my $g = $n->req(GET => $p);
        push @changed, "$p now: " . InvTest::show($g)
            unless $g->{status} == 200 && Test::More::eq_array([$g->{json}],
                                                                [$snap{$p}]);
    }
    for my $p (@{ $c->{absent} // [] }) {
        my $g = $n->req(GET => $p);
        push @changed, "$p exists: " . InvTest::show($g)
            if $g->{status} >= 200 && $g->{status} < 300;
    }
    ok(!@changed, "... and nothing changed ($c->{name})")
        or diag join "\n", @changed;
}

# Bodies are capped at 64 KiB by the module, whatever client_max_body_size
# allows (1m here): a longer one is never copied into memory.
{
    my $json = '{"delta": 1}';
    my $at_cap = $json . (' ' x (65536 - length $json));
    my $over = $at_cap . ' ';
    my %ct = ('Content-Type' => 'application/json');

    problem_ok($n->req(POST => "$BASE/adjustments", body => $over,
                       headers => \%ct),
               400, 'invalid-request', 'a 65537-byte body is 400',
               field => 'body');
    my $chunked = sprintf("%x\r\n%s\r\n0\r\n\r\n", length $over, $over);
    problem_ok($n->raw_req(POST => "$BASE/adjustments", body => $chunked,
                           headers => [%ct,
                                       'Transfer-Encoding' => 'chunked']),
               400, 'invalid-request', 'a chunked 65537-byte body is 400',
               field => 'body');
    item_ok($n->req(GET => $BASE), 200, { on_hand => 10, version => 1 },
            '... and neither changed the item');
    item_ok($n->req(POST => "$BASE/adjustments", body => $at_cap,
                    headers => \%ct),
            200, { on_hand => 11, version => 2 }, 'a 65536-byte body is taken');
}

# The store still works after all that.
item_ok($n->req(POST => "$BASE/adjustments", json => { delta => 1 }),
        200, { on_hand => 12, version => 3 }, 'a valid write afterwards');

$n->stop;
done_testing;
